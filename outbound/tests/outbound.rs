//! The outbound stage against real NATS, real PostgreSQL and the Twilio
//! simulator as the Messages API.

use std::{collections::BTreeMap, time::Duration};

use async_nats::jetstream::consumer::PullConsumer;
use outbound::Config;
use twilio_sim::{Fault, SimConfig, Simulator, StatusCallbackMode};
use uuid::Uuid;
use waiter_harness::{add_restaurant, eventually, TestEnv, TestRestaurant};
use waiter_nats::{
    events::DashboardEvent,
    messages::{DeadLetter, OutboundContent, OutboundMessage, StatusCallback},
    Bus, Envelope, Payload, StreamKind,
};

const WAIT: Duration = Duration::from_secs(20);
const CALLBACK_URL: &str = "http://127.0.0.1:9/whatsapp/status";

struct Fixture {
    env: TestEnv,
    sim: Simulator,
    restaurant: TestRestaurant,
    conversation_id: Uuid,
    customer: String,
}

impl Fixture {
    /// A restaurant, one conversation with a customer, and the simulator
    /// knowing the restaurant's account (no status callbacks, no 24-hour
    /// window). Outbound is not started yet.
    async fn new() -> Fixture {
        let env = TestEnv::new().await;
        // As the producers would have: messages may be waiting before
        // outbound starts.
        env.bus
            .bus
            .ensure_streams(&[StreamKind::Outbound, StreamKind::Ingest])
            .await
            .expect("streams");
        let restaurant = add_restaurant(env.pool(), "grill", "en").await;
        let customer = format!(
            "whatsapp:+9665{:08}",
            Uuid::new_v4().as_u128() % 100_000_000
        );
        let conversation_id = Uuid::new_v4();
        sqlx::query("INSERT INTO conversations (id, restaurant_id, customer) VALUES ($1, $2, $3)")
            .bind(conversation_id)
            .bind(restaurant.id)
            .bind(&customer)
            .execute(env.pool())
            .await
            .expect("insert conversation");
        let sim = Simulator::start(
            SimConfig {
                accounts: vec![(
                    restaurant.account_sid.clone(),
                    restaurant.auth_token.clone(),
                )],
                status_callbacks: StatusCallbackMode::Off,
                enforce_session_window: false,
                ..SimConfig::default()
            },
            env.shutdown.clone(),
        )
        .await
        .expect("start the simulator");
        Fixture {
            env,
            sim,
            restaurant,
            conversation_id,
            customer,
        }
    }

    fn config(&self) -> Config {
        let mut config = Config::for_tests(&self.sim.base_url());
        config.status_callback_url = Some(CALLBACK_URL.to_string());
        config
    }

    async fn start(&self, config: Config) -> outbound::Running {
        // A pool of its own, as in production: the harness's pool is closed
        // when the test ends, and closing waits for connections that
        // outbound's tasks (on the test's now blocked runtime) may hold.
        let pool = waiter_runtime::db::lazy_pool(&self.env.db.url, 8).expect("outbound pool");
        outbound::start(config, self.bus().clone(), pool, self.env.shutdown.clone())
            .await
            .expect("start outbound")
    }

    fn bus(&self) -> &Bus {
        &self.env.bus.bus
    }

    /// A `pending` outbound row, as the conversation stage writes it.
    async fn pending_row(&self, body: &str) -> Uuid {
        let id = Uuid::new_v4();
        insert_row(self, id, body, "pending", 0, None).await;
        id
    }

    fn message(&self, message_id: Uuid, content: OutboundContent) -> OutboundMessage {
        OutboundMessage {
            message_id,
            restaurant_id: self.restaurant.id,
            conversation_id: self.conversation_id,
            to: self.customer.clone(),
            content,
        }
    }

    fn partition_subject(&self) -> String {
        let t = self.bus().topology();
        t.outbound(t.conversation_partition(&self.restaurant.id, &self.customer))
    }

    fn partition_consumer(&self) -> String {
        let t = self.bus().topology();
        t.partition_consumer(
            "outbound",
            t.conversation_partition(&self.restaurant.id, &self.customer),
        )
    }

    async fn publish_as(&self, envelope_id: &str, message: OutboundMessage) {
        let env = Envelope::new(envelope_id, Uuid::new_v4().to_string(), message);
        self.bus()
            .publish(self.partition_subject(), &env)
            .await
            .expect("publish outbound message");
    }

    async fn publish(&self, message: OutboundMessage) {
        let id = format!("outbound:{}", message.message_id);
        self.publish_as(&id, message).await;
    }

    async fn text(&self, body: &str) -> Uuid {
        let id = self.pending_row(body).await;
        self.publish(self.message(id, OutboundContent::Text { body: body.into() }))
            .await;
        id
    }

    /// Publishes three texts of the conversation and checks that they
    /// leave in that order, each recorded with its sid.
    async fn three_leave_in_order(&self) {
        let ids = [
            self.text("1. Welcome").await,
            self.text("2. Menu").await,
            self.text("3. Cart").await,
        ];
        let sent = self.sim.wait_for_sent(&self.customer, 3, WAIT).await;
        let bodies: Vec<_> = sent
            .iter()
            .map(|m| m.body.clone().unwrap_or_default())
            .collect();
        assert_eq!(bodies, ["1. Welcome", "2. Menu", "3. Cart"]);
        for (id, message) in ids.iter().zip(&sent) {
            let row = self.row_with_status(*id, "queued").await;
            assert_eq!(row.2.as_deref(), Some(message.sid.as_str()));
        }
    }

    async fn row(&self, id: Uuid) -> Row {
        sqlx::query_as(
            "SELECT status, status_rank, wa_sid, error_code, error_message, sent_at IS NOT NULL \
             FROM messages WHERE id = $1",
        )
        .bind(id)
        .fetch_one(self.env.pool())
        .await
        .expect("message row")
    }

    async fn row_with_status(&self, id: Uuid, status: &str) -> Row {
        eventually(&format!("message {id} to be {status}"), WAIT, || async {
            let row = self.row(id).await;
            (row.0 == status).then_some(row)
        })
        .await
    }

    /// Waits until the durable consumer has settled everything it was given.
    async fn drained(&self, stream: StreamKind, durable: &str) {
        let bus = self.bus().clone();
        eventually(&format!("{durable} to settle its messages"), WAIT, || {
            let bus = bus.clone();
            async move {
                let stream = bus
                    .jetstream()
                    .get_stream(bus.topology().stream_name(stream))
                    .await
                    .ok()?;
                let mut consumer: PullConsumer = stream.get_consumer(durable).await.ok()?;
                let info = consumer.info().await.ok()?;
                (info.num_pending == 0
                    && info.num_ack_pending == 0
                    && info.delivered.stream_sequence > 0)
                    .then_some(())
            }
        })
        .await
    }

    async fn events(&self, event_type: &str) -> Vec<Envelope<DashboardEvent>> {
        let subject = self.bus().topology().event(&self.restaurant.id, event_type);
        read_stream(self.bus(), StreamKind::Events, subject).await
    }

    async fn dead_letters(&self) -> Vec<Envelope<DeadLetter>> {
        let subject = self.bus().topology().dead_letter("outbound");
        read_stream(self.bus(), StreamKind::DeadLetter, subject).await
    }

    async fn callback(&self, envelope_id: &str, sid: &str, status: &str, error_code: Option<&str>) {
        self.callback_from(
            envelope_id,
            &self.restaurant.account_sid.clone(),
            sid,
            status,
            error_code,
        )
        .await
    }

    async fn callback_from(
        &self,
        envelope_id: &str,
        account_sid: &str,
        sid: &str,
        status: &str,
        error_code: Option<&str>,
    ) {
        let callback = StatusCallback {
            message_sid: sid.to_string(),
            account_sid: account_sid.to_string(),
            status: status.to_string(),
            error_code: error_code.map(str::to_string),
            error_message: error_code.map(|c| format!("error {c}")),
            from: Some(self.restaurant.number.clone()),
            to: Some(self.customer.clone()),
            params: vec![],
            received_at: chrono::Utc::now(),
        };
        let env = Envelope::new(envelope_id, Uuid::new_v4().to_string(), callback);
        self.bus()
            .publish(self.bus().topology().status_callback(), &env)
            .await
            .expect("publish status callback");
    }
}

/// status, status_rank, wa_sid, error_code, error_message, sent_at set.
type Row = (
    String,
    i32,
    Option<String>,
    Option<String>,
    Option<String>,
    bool,
);

async fn insert_row(f: &Fixture, id: Uuid, body: &str, status: &str, rank: i32, sid: Option<&str>) {
    sqlx::query(
        "INSERT INTO messages (id, restaurant_id, conversation_id, direction, author, kind, body, \
            status, status_rank, wa_sid) \
         VALUES ($1, $2, $3, 'out', 'bot', 'text', $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(f.restaurant.id)
    .bind(f.conversation_id)
    .bind(body)
    .bind(status)
    .bind(rank)
    .bind(sid)
    .execute(f.env.pool())
    .await
    .expect("insert message row");
}

/// Every envelope on `subject` of a stream, oldest first.
async fn read_stream<T: Payload>(bus: &Bus, kind: StreamKind, subject: String) -> Vec<Envelope<T>> {
    waiter_harness::read_stream(bus, kind, subject)
        .await
        .iter()
        .map(|m| Envelope::<T>::decode(&m.payload).expect("decodable envelope"))
        .collect()
}

fn sid_like(sid: &str) -> bool {
    sid.len() == 34 && sid.starts_with("SM")
}

// ------------------------------------------------------------------ sending

#[tokio::test]
async fn a_text_leaves_with_the_tenants_credentials_and_its_sid_is_recorded() {
    let f = Fixture::new().await;
    let running = f.start(f.config()).await;
    let id = f.text("Your order is confirmed ✅").await;

    let sent = f.sim.wait_for_sent(&f.customer, 1, WAIT).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let sent = &sent[0];
    assert!(sid_like(&sent.sid), "{}", sent.sid);
    assert_eq!(sent.account_sid, f.restaurant.account_sid);
    assert_eq!(sent.from.as_deref(), Some(f.restaurant.number.as_str()));
    assert_eq!(sent.body.as_deref(), Some("Your order is confirmed ✅"));
    assert_eq!(sent.status_callback.as_deref(), Some(CALLBACK_URL));

    let requests = f.sim.requests();
    assert_eq!(requests.len(), 1);
    // The simulator answers 201 only to the account's own token.
    assert_eq!(requests[0].http_status, 201);
    assert_eq!(
        requests[0].auth_user.as_deref(),
        Some(f.restaurant.account_sid.as_str())
    );
    assert_eq!(requests[0].param("To"), Some(f.customer.as_str()));
    assert_eq!(requests[0].param("MessagingServiceSid"), None);

    let row = f.row_with_status(id, "queued").await;
    assert_eq!(row.1, 1, "status_rank of queued");
    assert_eq!(row.2.as_deref(), Some(sent.sid.as_str()));
    assert!(row.5, "sent_at is set");

    let events = eventually("a message.sent event", WAIT, || async {
        let events = f.events("message.sent").await;
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id, format!("message.sent:{id}"));
    let data = &events[0].body.data;
    assert_eq!(data["id"], id.to_string());
    assert_eq!(data["wa_sid"], sent.sid.as_str());
    assert_eq!(data["status"], "queued");
    assert_eq!(data["direction"], "out");
    assert_eq!(events[0].body.restaurant_id, f.restaurant.id);

    // The ops port.
    let http = reqwest::Client::new();
    let health = http
        .get(format!("http://{}/health", running.addr))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(health.status(), 200);
    let health: serde_json::Value = health.json().await.expect("health JSON");
    assert_eq!(health["stage"], "outbound");
    assert_eq!(health["checks"]["nats"], true);
    let metrics = http
        .get(format!("http://{}/metrics", running.addr))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(metrics.contains("waiter_outbound_sent_total"), "{metrics}");
    assert!(
        metrics.contains("waiter_outbound_twilio_seconds"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_redelivered_message_is_not_sent_twice() {
    let f = Fixture::new().await;
    let id = f.pending_row("only once").await;
    let message = f.message(
        id,
        OutboundContent::Text {
            body: "only once".into(),
        },
    );
    // Two envelope ids: JetStream stores both, as after a producer retry
    // beyond the duplicate window or a replay.
    f.publish_as(&format!("outbound:{id}"), message.clone())
        .await;
    f.publish_as(&format!("outbound:{id}:again"), message).await;
    f.start(f.config()).await;
    // A later message of the same conversation: once it left, both copies
    // before it were handled (the partition is ordered).
    f.text("marker").await;

    let sent = f.sim.wait_for_sent(&f.customer, 2, WAIT).await;
    let bodies: Vec<_> = sent
        .iter()
        .map(|m| m.body.clone().unwrap_or_default())
        .collect();
    assert_eq!(bodies, ["only once", "marker"]);
    f.drained(StreamKind::Outbound, &f.partition_consumer())
        .await;
    assert_eq!(f.sim.requests().len(), 2);
    assert_eq!(f.sim.sent_to(&f.customer).len(), 2);
    let row = f.row(id).await;
    assert_eq!(row.2.as_deref(), Some(sent[0].sid.as_str()));
    let events = f.events("message.sent").await;
    let for_id: Vec<_> = events
        .iter()
        .filter(|e| e.id == format!("message.sent:{id}"))
        .collect();
    assert_eq!(for_id.len(), 1, "one message.sent event per message");
}

#[tokio::test]
async fn messages_of_a_conversation_leave_in_order_even_when_one_is_retried() {
    let f = Fixture::new().await;
    // The first send is throttled once: the two after it must wait for it.
    f.sim
        .inject_fault(Fault::new(429, 20429).times(1).only_to(f.customer.clone()));
    f.start(f.config()).await;
    f.three_leave_in_order().await;
    assert_eq!(f.sim.requests().len(), 4, "three sends and one throttled");
}

#[tokio::test]
async fn twilio_429_is_retried_until_the_message_is_sent_once() {
    let f = Fixture::new().await;
    f.sim
        .inject_fault(Fault::new(429, 20429).times(2).only_to(f.customer.clone()));
    f.start(f.config()).await;
    let id = f.text("after two 429s").await;

    let sent = f.sim.wait_for_sent(&f.customer, 1, WAIT).await;
    assert_eq!(sent.len(), 1);
    let row = f.row_with_status(id, "queued").await;
    assert_eq!(row.2.as_deref(), Some(sent[0].sid.as_str()));
    f.drained(StreamKind::Outbound, &f.partition_consumer())
        .await;
    let requests = f.sim.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.http_status).collect();
    assert_eq!(statuses, [429, 429, 201]);
    assert_eq!(f.sim.sent().len(), 1);
    assert!(f.dead_letters().await.is_empty());
}

#[tokio::test]
async fn a_permanent_error_fails_fast_into_the_dead_letter_stream() {
    let f = Fixture::new().await;
    f.sim
        .inject_fault(Fault::new(400, 21211).only_to(f.customer.clone()));
    f.start(f.config()).await;
    let id = f.text("to a bad number").await;

    let row = f.row_with_status(id, "failed").await;
    assert_eq!(row.1, 4, "status_rank of failed");
    assert_eq!(row.2, None, "no sid");
    assert_eq!(row.3.as_deref(), Some("21211"));
    assert!(
        row.4
            .as_deref()
            .unwrap_or_default()
            .contains("not a valid phone number"),
        "{row:?}"
    );

    let letters = eventually("a dead letter", WAIT, || async {
        let letters = f.dead_letters().await;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0].body;
    assert_eq!(letter.stage, "outbound");
    assert_eq!(letter.error_code, Some(21211));
    assert!(letter.reason.contains("21211"), "{}", letter.reason);
    assert_eq!(letter.attempts, 1);
    assert_eq!(letter.original_subject, f.partition_subject());
    let original =
        Envelope::<OutboundMessage>::decode(&letter.original).expect("original envelope");
    assert_eq!(original.body.message_id, id);
    assert_eq!(original.id, format!("outbound:{id}"));

    let status = eventually("a message.status event", WAIT, || async {
        let events = f.events("message.status").await;
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].body.data["status"], "failed");
    assert_eq!(status[0].body.data["error_code"], "21211");
    assert_eq!(status[0].body.data["message_id"], id.to_string());

    f.drained(StreamKind::Outbound, &f.partition_consumer())
        .await;
    assert_eq!(f.sim.requests().len(), 1, "never retried");
    assert!(f.sim.sent().is_empty());
}

#[tokio::test]
async fn transient_errors_are_dead_lettered_after_the_last_attempt() {
    let f = Fixture::new().await;
    f.sim.inject_fault(
        Fault::new(500, 20500)
            .times(1000)
            .only_to(f.customer.clone()),
    );
    let mut config = f.config();
    config.max_attempts = 3;
    f.start(config).await;
    let id = f.text("Twilio is down").await;

    let letters = eventually("a dead letter", WAIT, || async {
        let letters = f.dead_letters().await;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body.attempts, 3);
    assert_eq!(letters[0].body.error_code, Some(20500));
    assert!(
        letters[0].body.reason.contains("gave up after 3 attempts"),
        "{}",
        letters[0].body.reason
    );
    let row = f.row_with_status(id, "failed").await;
    assert_eq!(row.3.as_deref(), Some("20500"));

    f.drained(StreamKind::Outbound, &f.partition_consumer())
        .await;
    let statuses: Vec<u16> = f.sim.requests().iter().map(|r| r.http_status).collect();
    assert_eq!(statuses, [500, 500, 500]);
}

#[tokio::test]
async fn waiting_for_the_rate_limit_is_not_an_attempt() {
    let f = Fixture::new().await;
    // One send a second, never waited for in place: every send over the
    // rate is deferred. Two calls to Twilio per message at most.
    sqlx::query("UPDATE restaurants SET outbound_rate_per_second = 1 WHERE id = $1")
        .bind(f.restaurant.id)
        .execute(f.env.pool())
        .await
        .expect("rate");
    f.sim
        .inject_fault(Fault::new(500, 20500).times(1).only_to(f.customer.clone()));
    let mut config = f.config();
    config.max_attempts = 2;
    config.rate_limit_wait = Duration::ZERO;
    let running = f.start(config).await;
    f.three_leave_in_order().await;
    let statuses: Vec<u16> = f.sim.requests().iter().map(|r| r.http_status).collect();
    assert_eq!(statuses, [500, 201, 201, 201], "two calls for the first");
    assert!(f.dead_letters().await.is_empty());
    let status: serde_json::Value = reqwest::get(format!("http://{}/status", running.addr))
        .await
        .expect("GET /status")
        .json()
        .await
        .expect("status JSON");
    assert!(
        status["deferred"].as_u64() >= Some(2),
        "sends over the rate were deferred, many times more than attempts allow: {status}"
    );
}

#[tokio::test]
async fn a_template_goes_as_content_sid_and_variables_without_a_body() {
    let f = Fixture::new().await;
    f.start(f.config()).await;
    let id = f.pending_row("rate us").await;
    let content_sid = format!("HX{}", Uuid::new_v4().simple());
    let variables = BTreeMap::from([
        ("1".to_string(), "Ahmed".to_string()),
        ("2".to_string(), "طلب #12".to_string()),
    ]);
    f.publish(f.message(
        id,
        OutboundContent::Template {
            content_sid: content_sid.clone(),
            variables,
        },
    ))
    .await;

    let sent = f.sim.wait_for_sent(&f.customer, 1, WAIT).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].content_sid.as_deref(), Some(content_sid.as_str()));
    assert_eq!(sent[0].body, None);
    let vars: serde_json::Value = serde_json::from_str(
        sent[0]
            .content_variables
            .as_deref()
            .expect("ContentVariables"),
    )
    .expect("ContentVariables is JSON");
    assert_eq!(vars, serde_json::json!({"1": "Ahmed", "2": "طلب #12"}));
    let request = &f.sim.requests()[0];
    assert_eq!(request.param("Body"), None);
    assert_eq!(request.param("MediaUrl"), None);
    f.row_with_status(id, "queued").await;
}

#[tokio::test]
async fn media_goes_as_repeated_media_urls_through_a_messaging_service() {
    let f = Fixture::new().await;
    sqlx::query("UPDATE restaurants SET messaging_service_sid = $2 WHERE id = $1")
        .bind(f.restaurant.id)
        .bind("MG0123456789abcdef0123456789abcdef")
        .execute(f.env.pool())
        .await
        .expect("set messaging service");
    f.start(f.config()).await;
    let id = f.pending_row("the menu").await;
    f.publish(f.message(
        id,
        OutboundContent::Media {
            body: Some("Our menu".into()),
            urls: vec![
                "https://cdn.example/menu-1.jpg".into(),
                "https://cdn.example/menu-2.jpg".into(),
            ],
        },
    ))
    .await;

    let sent = f.sim.wait_for_sent(&f.customer, 1, WAIT).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].from, None);
    assert_eq!(
        sent[0].messaging_service_sid.as_deref(),
        Some("MG0123456789abcdef0123456789abcdef")
    );
    assert_eq!(sent[0].body.as_deref(), Some("Our menu"));
    assert_eq!(
        sent[0].media_urls,
        [
            "https://cdn.example/menu-1.jpg",
            "https://cdn.example/menu-2.jpg"
        ]
    );
    f.row_with_status(id, "queued").await;
}

#[tokio::test]
async fn a_message_whose_row_appears_late_is_sent_and_one_without_a_row_is_dead_lettered() {
    let f = Fixture::new().await;
    let mut config = f.config();
    config.missing_row_attempts = 4;
    let running = f.start(config).await;

    // Published before its row commits (the writer's transaction in flight).
    let late = Uuid::new_v4();
    f.publish(f.message(
        late,
        OutboundContent::Text {
            body: "late row".into(),
        },
    ))
    .await;
    // The first attempt finds no row and is retried in place (not handed
    // back: the message stays with its conversation's lane): `/status`
    // counts the failed attempt.
    let http = reqwest::Client::new();
    eventually("the first attempt to fail", WAIT, || async {
        let status: serde_json::Value = http
            .get(format!("http://{}/status", running.addr))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (status["failed"].as_u64() >= Some(1)).then_some(())
    })
    .await;
    insert_row(&f, late, "late row", "pending", 0, None).await;
    let sent = f.sim.wait_for_sent(&f.customer, 1, WAIT).await;
    assert_eq!(sent[0].body.as_deref(), Some("late row"));
    f.row_with_status(late, "queued").await;

    // Never written: dead-lettered, nothing sent.
    let ghost = Uuid::new_v4();
    f.publish(f.message(
        ghost,
        OutboundContent::Text {
            body: "ghost".into(),
        },
    ))
    .await;
    let letters = eventually("a dead letter for the ghost", WAIT, || async {
        let letters = f.dead_letters().await;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].body.reason.contains("no row"),
        "{}",
        letters[0].body.reason
    );
    assert_eq!(letters[0].body.attempts, 4);
    f.drained(StreamKind::Outbound, &f.partition_consumer())
        .await;
    assert_eq!(f.sim.requests().len(), 1);
}

#[tokio::test]
async fn a_message_naming_another_restaurant_is_refused() {
    let f = Fixture::new().await;
    let other = add_restaurant(f.env.pool(), "other", "ar").await;
    f.sim.add_account(&other.account_sid, &other.auth_token);
    f.start(f.config()).await;
    let id = f.pending_row("not yours").await;
    let mut message = f.message(
        id,
        OutboundContent::Text {
            body: "not yours".into(),
        },
    );
    message.restaurant_id = other.id;
    f.publish(message).await;

    let letters = eventually("a dead letter", WAIT, || async {
        let letters = f.dead_letters().await;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert!(
        letters[0].body.reason.contains("not an outbound one of"),
        "{}",
        letters[0].body.reason
    );
    f.drained(StreamKind::Outbound, &f.partition_consumer())
        .await;
    assert!(f.sim.requests().is_empty());
    assert_eq!(f.row(id).await.0, "pending", "the row is left alone");
}

// --------------------------------------------------------- status callbacks

#[tokio::test]
async fn status_callbacks_apply_monotonically_and_announce_each_change_once() {
    let f = Fixture::new().await;
    f.start(f.config()).await;
    let read_first = Uuid::new_v4();
    let failed_first = Uuid::new_v4();
    let sid_a = format!("SM{}", Uuid::new_v4().simple());
    let sid_b = format!("SM{}", Uuid::new_v4().simple());
    insert_row(&f, read_first, "a", "queued", 1, Some(&sid_a)).await;
    insert_row(&f, failed_first, "b", "queued", 1, Some(&sid_b)).await;

    // read, then a late delivered: stays read.
    f.callback(&format!("{sid_a}:read"), &sid_a, "read", None)
        .await;
    f.row_with_status(read_first, "read").await;
    f.callback(&format!("{sid_a}:delivered"), &sid_a, "delivered", None)
        .await;
    // A status that says nothing about delivery is ignored.
    f.callback(&format!("{sid_a}:accepted"), &sid_a, "accepted", None)
        .await;

    // failed, then delivered: delivery proven, delivered wins.
    f.callback(&format!("{sid_b}:failed"), &sid_b, "failed", Some("63024"))
        .await;
    let row = f.row_with_status(failed_first, "failed").await;
    assert_eq!(row.3.as_deref(), Some("63024"));
    f.callback(&format!("{sid_b}:delivered"), &sid_b, "delivered", None)
        .await;
    let row = f.row_with_status(failed_first, "delivered").await;
    assert_eq!(row.1, 5);
    // Twilio sending the same callback again: stored twice, applied once.
    f.callback(
        &format!("{sid_b}:delivered:retry"),
        &sid_b,
        "delivered",
        None,
    )
    .await;
    f.callback(
        &format!("{sid_b}:failed:retry"),
        &sid_b,
        "failed",
        Some("63024"),
    )
    .await;

    f.drained(StreamKind::Ingest, "outbound-status").await;
    let row = f.row(read_first).await;
    assert_eq!((row.0.as_str(), row.1), ("read", 6));
    let row = f.row(failed_first).await;
    assert_eq!((row.0.as_str(), row.1), ("delivered", 5));

    let events = f.events("message.status").await;
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            format!("message.status:{sid_a}:read"),
            format!("message.status:{sid_b}:failed"),
            format!("message.status:{sid_b}:delivered"),
        ]
    );
    let failed = &events[1].body.data;
    assert_eq!(failed["message_id"], failed_first.to_string());
    assert_eq!(failed["conversation_id"], f.conversation_id.to_string());
    assert_eq!(failed["wa_sid"], sid_b.as_str());
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error_code"], "63024");
}

/// Callbacks that arrive together are applied as one window (one
/// statement per round): every transition of every message is applied
/// and announced once, lowest status first, whatever order they came in.
#[tokio::test]
async fn a_burst_of_callbacks_is_applied_together_and_every_change_is_announced() {
    let f = Fixture::new().await;
    f.bus()
        .ensure_streams(&[StreamKind::Ingest, StreamKind::Events])
        .await
        .unwrap();
    let (c, d) = (Uuid::new_v4(), Uuid::new_v4());
    let sid_c = format!("SM{}", Uuid::new_v4().simple());
    let sid_d = format!("SM{}", Uuid::new_v4().simple());
    insert_row(&f, c, "c", "queued", 1, Some(&sid_c)).await;
    insert_row(&f, d, "d", "queued", 1, Some(&sid_d)).await;
    // All waiting before the stage starts, so its first window holds them.
    for (sid, status) in [
        (&sid_c, "read"),
        (&sid_d, "sent"),
        (&sid_c, "sent"),
        (&sid_c, "delivered"),
        (&sid_d, "delivered"),
        (&sid_c, "undelivered-ish"),
    ] {
        f.callback(&format!("{sid}:{status}"), sid, status, None)
            .await;
    }
    f.start(f.config()).await;
    f.drained(StreamKind::Ingest, "outbound-status").await;

    assert_eq!(f.row(c).await.0, "read");
    assert_eq!(f.row(d).await.0, "delivered");
    let events = f.events("message.status").await;
    let of = |sid: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e.body.data["wa_sid"] == sid)
            .map(|e| {
                e.body.data["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(of(&sid_c), ["sent", "delivered", "read"]);
    assert_eq!(of(&sid_d), ["sent", "delivered"]);
    assert_eq!(events.len(), 5, "each change announced once");
}

#[tokio::test]
async fn a_callback_that_overtakes_the_sid_is_applied_once_the_sid_is_recorded() {
    let f = Fixture::new().await;
    f.start(f.config()).await;
    let id = f.pending_row("racing").await;
    let sid = format!("SM{}", Uuid::new_v4().simple());
    f.callback(&format!("{sid}:sent"), &sid, "sent", None).await;
    // Handed back at least once: the row has no such sid yet.
    let bus = f.bus().clone();
    eventually("the callback to be retried", WAIT, || {
        let bus = bus.clone();
        async move {
            let stream = bus
                .jetstream()
                .get_stream(bus.topology().stream_name(StreamKind::Ingest))
                .await
                .ok()?;
            let mut consumer: PullConsumer = stream.get_consumer("outbound-status").await.ok()?;
            let info = consumer.info().await.ok()?;
            (info.num_redelivered > 0 || info.num_ack_pending > 0).then_some(())
        }
    })
    .await;
    assert_eq!(f.row(id).await.0, "pending");
    // What step 5 of sending does after Twilio's 201.
    sqlx::query(
        "UPDATE messages SET wa_sid = $2, status = 'queued', status_rank = 1 WHERE id = $1",
    )
    .bind(id)
    .bind(&sid)
    .execute(f.env.pool())
    .await
    .expect("record sid");
    let row = f.row_with_status(id, "sent").await;
    assert_eq!(row.1, 3);
}

#[tokio::test]
async fn a_callback_from_another_account_changes_nothing() {
    let f = Fixture::new().await;
    let mut config = f.config();
    config.unknown_sid_attempts = 2;
    f.start(config).await;
    let id = Uuid::new_v4();
    let sid = format!("SM{}", Uuid::new_v4().simple());
    insert_row(&f, id, "mine", "queued", 1, Some(&sid)).await;
    let stranger = format!("AC{}", Uuid::new_v4().simple());
    f.callback_from(&format!("{sid}:read"), &stranger, &sid, "read", None)
        .await;
    f.drained(StreamKind::Ingest, "outbound-status").await;
    assert_eq!(f.row(id).await.0, "queued");
    assert!(f.events("message.status").await.is_empty());
}
