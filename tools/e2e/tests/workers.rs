//! Every consuming stage on the shared worker loop, in the whole
//! pipeline: a poison message and a permanent error on router,
//! conversation, order and outbound end in the dead-letter stream with
//! that stage's name and reason, and a later message on the same
//! partition is answered; `/ready` follows PostgreSQL and workers.

use std::time::{Duration, Instant};

use twilio_sim::{Fault, InboundSpec};
use uuid::Uuid;
use waiter_e2e::{Options, Pipeline};
use waiter_harness::eventually;
use waiter_nats::{
    messages::{
        Actor, CartLine, ConversationInput, DeadLetter, Fulfilment, InboundMessage, OrderAction,
        OrderCommand, OrderStatus, PaymentMethod, StaffReply,
    },
    Envelope, StreamKind,
};

const WAIT: Duration = Duration::from_secs(60);
/// How long a bad message may hold its partition (invariant 7): two
/// attempts of a permanent failure, or a Twilio refusal, plus the time the
/// pipeline takes on this shared machine.
const BOUND: Duration = Duration::from_secs(30);

fn customer(n: u32) -> String {
    format!("whatsapp:+9665{:08}", 70_000_000 + n)
}

/// The dead letters of one stage, oldest first.
async fn letters(p: &Pipeline, stage: &str) -> Vec<DeadLetter> {
    let bus = &p.env.bus.bus;
    waiter_harness::read_stream(
        bus,
        StreamKind::DeadLetter,
        bus.topology().dead_letter(stage),
    )
    .await
    .iter()
    .map(|m| {
        Envelope::<DeadLetter>::decode(&m.payload)
            .expect("a dead letter")
            .body
    })
    .collect()
}

async fn letters_within(p: &Pipeline, stage: &str, n: usize) -> Vec<DeadLetter> {
    eventually(&format!("{n} dead letters from {stage}"), WAIT, || async {
        let letters = letters(p, stage).await;
        (letters.len() >= n).then_some(letters)
    })
    .await
}

/// Not MessagePack: what a broken or hostile publisher might send.
async fn poison(p: &Pipeline, subject: String) {
    let client = p.env.bus.bus.client();
    client
        .publish(subject, "\u{1}\u{2} not an envelope".into())
        .await
        .expect("publish poison");
    client.flush().await.expect("flush");
}

fn assert_poison(letter: &DeadLetter, stage: &str, subject: &str) {
    assert_eq!(letter.stage, stage);
    assert_eq!(letter.reason_class, "poison", "{letter:?}");
    assert_eq!(letter.original_subject, subject);
    assert_eq!(letter.original, b"\x01\x02 not an envelope");
}

/// Sends a text as the customer and waits for `replies` replies in all.
async fn answered(p: &Pipeline, from: &str, text: &str, replies: usize) {
    let r = p.restaurant(0);
    let answer = p
        .sim
        .send_inbound(InboundSpec::text(&r.account_sid, from, &r.number, text))
        .await
        .expect("webhook");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let sent = p.sim.wait_for_sent(from, replies, WAIT).await;
    assert!(sent.len() >= replies, "{from}: {sent:?}");
}

async fn conversation_of(p: &Pipeline, customer: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM conversations WHERE customer = $1")
        .bind(customer)
        .fetch_one(p.env.pool())
        .await
        .expect("the conversation")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_dead_letters_poison_and_permanent_errors_and_its_partition_moves_on() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let from = customer(1);
    let topology = p.env.bus.bus.topology().clone();
    let subject = topology.inbound_message(topology.inbound_partition(&r.number, &from));
    let started = Instant::now();
    poison(&p, subject.clone()).await;
    // A NUL in the MessageSid: PostgreSQL refuses the audit row (22021).
    let broken = InboundMessage {
        message_sid: "SM\u{0}broken".into(),
        account_sid: r.account_sid.clone(),
        from: from.clone(),
        to: r.number.clone(),
        body: "hello".into(),
        received_at: chrono::Utc::now(),
        ..InboundMessage::default()
    };
    p.env
        .bus
        .bus
        .publish(
            subject.clone(),
            &Envelope::new("SMbroken", "trace-broken", broken),
        )
        .await
        .expect("publish");
    answered(&p, &from, "hello", 1).await;
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
    let letters = letters_within(&p, "router", 2).await;
    assert_poison(&letters[0], "router", &subject);
    let permanent = &letters[1];
    assert_eq!(permanent.reason_class, "permanent", "{permanent:?}");
    assert_eq!(permanent.code.as_deref(), Some("22021"));
    assert!(
        permanent.reason.starts_with("audit:"),
        "{}",
        permanent.reason
    );
    assert_eq!(permanent.restaurant_id, Some(r.id));
    assert_eq!(permanent.recipient.as_deref(), Some(from.as_str()));
    assert_eq!(permanent.trace_id.as_deref(), Some("trace-broken"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_dead_letters_poison_and_permanent_errors_and_its_partition_moves_on() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let from = customer(2);
    answered(&p, &from, "hello", 1).await;
    let before = p.sim.sent_to(&from).len();
    let conversation = conversation_of(&p, &from).await;
    let topology = p.env.bus.bus.topology().clone();
    let subject = topology.conversation(topology.conversation_partition(&r.id, &from));
    let started = Instant::now();
    poison(&p, subject.clone()).await;
    // A staff reply with a NUL (accepted by an API that does not check):
    // PostgreSQL refuses it on every attempt (22021).
    let reply = ConversationInput::StaffReply(StaffReply {
        message_id: Uuid::new_v4(),
        restaurant_id: r.id,
        conversation_id: conversation,
        staff: "staff-1".into(),
        text: "hi\u{0}".into(),
        content_sid: None,
    });
    p.env
        .bus
        .bus
        .publish(
            subject.clone(),
            &Envelope::new("staff-nul", "trace-staff", reply),
        )
        .await
        .expect("publish");
    answered(&p, &from, "menu", before + 1).await;
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
    let letters = letters_within(&p, "conversation", 2).await;
    assert_poison(&letters[0], "conversation", &subject);
    let permanent = &letters[1];
    assert_eq!(permanent.reason_class, "permanent", "{permanent:?}");
    assert_eq!(permanent.code.as_deref(), Some("22021"));
    assert_eq!(permanent.conversation_id, Some(conversation));
    assert_eq!(permanent.restaurant_id, Some(r.id));
    assert_eq!(permanent.attempts, 2, "WORKER_PERMANENT_ATTEMPTS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_dead_letters_poison_and_commands_that_can_never_pass_and_its_partition_moves_on() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let from = customer(3);
    answered(&p, &from, "hello", 1).await;
    let conversation = conversation_of(&p, &from).await;
    let topology = p.env.bus.bus.topology().clone();
    let ghost = Uuid::new_v4();
    let partition = topology.order_partition(&ghost);
    let subject = topology.order_command(partition);
    // A real order on the same partition, placed after the bad ones.
    let order_id = std::iter::repeat_with(Uuid::new_v4)
        .find(|id| topology.order_partition(id) == partition)
        .unwrap();
    let item: Uuid = sqlx::query_scalar(
        "SELECT id FROM menu_items WHERE restaurant_id = $1 AND available LIMIT 1",
    )
    .bind(r.id)
    .fetch_one(p.env.pool())
    .await
    .expect("a menu item");
    let command = |order_id: Uuid, action: OrderAction| {
        let command_id = Uuid::new_v4();
        Envelope::new(
            format!("order-command:{command_id}"),
            "trace-order",
            OrderCommand {
                command_id,
                restaurant_id: r.id,
                order_id,
                actor: Actor::Staff("staff-1".into()),
                action,
                reply_to: None,
            },
        )
    };
    let started = Instant::now();
    poison(&p, subject.clone()).await;
    let bus = &p.env.bus.bus;
    bus.publish(
        subject.clone(),
        &command(
            ghost,
            OrderAction::Transition {
                to: OrderStatus::Preparing,
                reason: None,
            },
        ),
    )
    .await
    .expect("publish");
    bus.publish(
        subject.clone(),
        &command(
            order_id,
            OrderAction::Place {
                conversation_id: conversation,
                fulfilment: Fulfilment::Pickup,
                branch_id: None,
                address: None,
                payment: PaymentMethod::Cash,
                lines: vec![CartLine {
                    item_id: item,
                    quantity: 2,
                }],
            },
        ),
    )
    .await
    .expect("publish");
    eventually("the order behind them placed", WAIT, || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_one(p.env.pool())
            .await
            .ok()?;
        (n == 1).then_some(())
    })
    .await;
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
    let letters = letters_within(&p, "order", 2).await;
    assert_poison(&letters[0], "order", &subject);
    let refused = &letters[1];
    assert_eq!(refused.reason_class, "rejected", "{refused:?}");
    assert_eq!(refused.reason, "no such order");
    assert_eq!(refused.restaurant_id, Some(r.id));
    assert_eq!(refused.attempts, 1, "dead-lettered at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_dead_letters_poison_and_twilio_refusals_and_the_conversation_moves_on() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    let from = customer(4);
    let topology = p.env.bus.bus.topology().clone();
    let subject = topology.outbound(topology.conversation_partition(&r.id, &from));
    poison(&p, subject.clone()).await;
    // Twilio refuses the first reply for good: not a valid number.
    p.sim
        .inject_fault(Fault::new(400, 21211).times(1).only_to(from.clone()));
    let started = Instant::now();
    let answer = p
        .sim
        .send_inbound(InboundSpec::text(&r.account_sid, &from, &r.number, "hello"))
        .await
        .expect("webhook");
    assert_eq!(answer.status, 200);
    let letters = letters_within(&p, "outbound", 2).await;
    assert_poison(&letters[0], "outbound", &subject);
    let refused = &letters[1];
    assert_eq!(refused.reason_class, "rejected", "{refused:?}");
    assert_eq!(refused.error_code, Some(21211));
    assert_eq!(refused.code.as_deref(), Some("21211"));
    assert_eq!(refused.recipient.as_deref(), Some(from.as_str()));
    assert_eq!(refused.original_subject, subject);
    // The same conversation's next reply leaves.
    let before = p.sim.sent_to(&from).len();
    answered(&p, &from, "menu", before + 1).await;
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
}

async fn ready(addr: std::net::SocketAddr) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("http://{addr}/ready"))
        .await
        .expect("GET /ready");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_follows_postgres_and_a_deleted_consumer_is_recreated() {
    let p = Pipeline::start_with(Options {
        postgres_proxy: true,
        ..Options::default()
    })
    .await;
    for (stage, &addr) in &p.ops {
        eventually(&format!("{stage} ready"), WAIT, || async {
            (ready(addr).await.0 == 200).then_some(())
        })
        .await;
        let status: serde_json::Value = reqwest::get(format!("http://{addr}/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(status["stage"], *stage);
        assert_eq!(status["ready"], true, "{status}");
        // Outbound runs two lease groups (sends and order webhooks).
        let groups = if *stage == "outbound" { 2 } else { 1 };
        assert_eq!(
            status["owned_partitions"].as_array().map(Vec::len),
            Some(4 * groups),
            "the only replica owns every partition of each group: {status}"
        );
    }
    let conversation = p.ops["conversation"];

    // PostgreSQL cut: not ready (alive all the same); back: ready.
    let proxy = p.postgres.as_ref().expect("proxy");
    proxy.cut();
    let body = eventually(
        "conversation not ready without PostgreSQL",
        WAIT,
        || async {
            let (status, body) = ready(conversation).await;
            (status == 503).then_some(body)
        },
    )
    .await;
    assert_eq!(body["checks"]["postgres"], false, "{body}");
    let health = reqwest::get(format!("http://{conversation}/health"))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200, "alive without PostgreSQL");
    proxy.restore();
    eventually("ready again", WAIT, || async {
        (ready(conversation).await.0 == 200).then_some(())
    })
    .await;

    // A partition consumer deleted under the stage comes back, and the
    // partition flows again.
    let r = p.restaurant(0);
    let from = customer(5);
    answered(&p, &from, "hello", 1).await;
    let bus = &p.env.bus.bus;
    let topology = bus.topology();
    let durable = topology.partition_consumer(
        "conversation",
        topology.conversation_partition(&r.id, &from),
    );
    let stream = bus
        .jetstream()
        .get_stream(topology.stream_name(StreamKind::Conversation))
        .await
        .unwrap();
    eventually("the consumer deleted", WAIT, || async {
        stream.delete_consumer(&durable).await.ok()
    })
    .await;
    answered(&p, &from, "menu", 2).await;
    let exists = stream.consumer_info(&durable).await;
    assert!(exists.is_ok(), "re-created: {exists:?}");
    eventually("ready after the consumer is back", WAIT, || async {
        (ready(conversation).await.0 == 200).then_some(())
    })
    .await;
}
