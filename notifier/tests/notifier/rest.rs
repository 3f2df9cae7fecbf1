//! The REST API: auth, tenant confinement, paging, commands, analytics.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy};
use chrono::{TimeZone, Utc};
use futures::StreamExt;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;
use waiter_harness::{eventually, jwt};
use waiter_nats::{
    events::{DashboardEvent, EventType, OrderView},
    messages::{Actor, ConversationInput, OrderAction, OrderCommand, OrderReply, OrderStatus},
    Bus, Envelope, StreamKind,
};

use crate::common::{self, Stage, SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_401_with_a_reason() {
    let stage = Stage::start().await;
    let url = stage.api(stage.a.id, "conversations");
    let a = stage.a.id;
    let cases = [
        ("expired", jwt::token(SECRET, a, "staff", -120)),
        (
            "wrong secret",
            jwt::token("some-other-secret-0000", a, "staff", 3600),
        ),
        ("garbage", "not.a.jwt".to_string()),
        ("unknown role", jwt::token(SECRET, a, "owner", 3600)),
    ];
    for (what, token) in cases {
        let (status, body) = stage.get(&url, &token).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"], "unauthorized", "{what}");
        assert!(
            body["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{what}"
        );
    }
    let response = stage.http.get(&url).send().await.unwrap();
    let (status, body) = common::status_and_json(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(body["reason"], "missing bearer token");
    let token = stage.staff(a);
    let response = stage
        .http
        .get(&url)
        .header("authorization", format!("Basic {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // The ops routes need no token.
    let health = stage.http.get(stage.url("/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let metrics = stage.http.get(stage.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    // Unknown paths answer JSON too.
    let (status, body) = stage.get(&stage.url("/api/nothing"), &token).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sees_only_its_own_restaurant() {
    let stage = Stage::start().await;
    let pool = stage.pool();
    let now = Utc::now();
    let a_conv =
        common::conversation(pool, stage.a.id, "whatsapp:+15550000001", Some(now), 1).await;
    let b_conv =
        common::conversation(pool, stage.b.id, "whatsapp:+15550000002", Some(now), 1).await;
    common::message(pool, stage.b.id, b_conv, "in", "secret of b", now).await;
    let b_order = common::order(
        pool,
        stage.b.id,
        b_conv,
        1,
        "CONFIRMED",
        &[("Tea", 1, 500)],
        now,
        None,
    )
    .await;
    let a_token = stage.staff(stage.a.id);
    let b = stage.b.id;

    let gets = [
        stage.api(b, "conversations"),
        stage.api(b, &format!("conversations/{b_conv}/messages")),
        stage.api(b, "orders"),
        stage.api(b, "analytics"),
        // B's conversation under A's own id is not found either.
        stage.api(stage.a.id, &format!("conversations/{b_conv}/messages")),
    ];
    for url in &gets {
        let (status, body) = stage.get(url, &a_token).await;
        assert_eq!(status, 404, "{url}: {body}");
        assert_eq!(body["error"], "not_found");
        assert!(!body.to_string().contains("secret of b"));
    }
    let (status, _) = stage
        .get(&stage.url("/api/restaurants/not-a-uuid/orders"), &a_token)
        .await;
    assert_eq!(status, 404);
    for (url, body) in [
        (
            stage.api(b, &format!("conversations/{b_conv}/send")),
            Some(json!({"message": "hi"})),
        ),
        (
            stage.api(stage.a.id, &format!("conversations/{b_conv}/send")),
            Some(json!({"message": "hi"})),
        ),
        (
            stage.api(b, &format!("conversations/{b_conv}/bot")),
            Some(json!({"active": false})),
        ),
        (stage.api(b, &format!("conversations/{b_conv}/read")), None),
        (
            stage.api(stage.a.id, &format!("conversations/{b_conv}/read")),
            None,
        ),
    ] {
        let (status, body) = stage.post(&url, &a_token, body).await;
        assert_eq!(status, 404, "{url}: {body}");
    }
    let (status, _) = stage
        .patch(
            &stage.api(b, &format!("orders/{b_order}/status")),
            &a_token,
            json!({"status": "PREPARING"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = stage
        .patch(
            &stage.api(stage.a.id, &format!("orders/{b_order}/status")),
            &a_token,
            json!({"status": "PREPARING"}),
        )
        .await;
    assert_eq!(status, 404);
    // Nothing of B was touched.
    let unread: i32 = sqlx::query_scalar("SELECT unread_count FROM conversations WHERE id = $1")
        .bind(b_conv)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(unread, 1);

    // A's own list holds A's conversation only.
    let (status, body) = stage
        .get(&stage.api(stage.a.id, "conversations"), &a_token)
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a_conv.to_string()]);

    // An admin sees B.
    let admin = stage.admin();
    let (status, body) = stage.get(&stage.api(b, "conversations"), &admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["conversations"][0]["id"], b_conv.to_string());
    let (status, body) = stage
        .get(
            &stage.api(b, &format!("conversations/{b_conv}/messages")),
            &admin,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["messages"][0]["body"], "secret of b");
    let (status, body) = stage.get(&stage.api(b, "orders"), &admin).await;
    assert_eq!(status, 200);
    assert_eq!(body["orders"][0]["id"], b_order.to_string());
    // ... but not a restaurant that does not exist.
    let (status, _) = stage
        .get(&stage.api(Uuid::new_v4(), "conversations"), &admin)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_are_paged_newest_first() {
    let stage = Stage::start().await;
    let pool = stage.pool();
    let base = Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap();
    let mut expected = vec![];
    // Five conversations a minute apart, two of them at the same instant,
    // and one without messages (listed last).
    for (i, minutes) in [0i64, 1, 2, 2, 4].iter().enumerate() {
        let at = base + chrono::Duration::minutes(*minutes);
        let id = common::conversation(
            pool,
            stage.a.id,
            &format!("whatsapp:+1555000010{i}"),
            Some(at),
            0,
        )
        .await;
        expected.push((at, id));
    }
    let silent = common::conversation(pool, stage.a.id, "whatsapp:+15550000199", None, 0).await;
    common::conversation(pool, stage.b.id, "whatsapp:+15550000200", Some(base), 0).await;
    expected.sort_by(|(at1, id1), (at2, id2)| at2.cmp(at1).then(id1.cmp(id2)));
    let mut expected: Vec<String> = expected.into_iter().map(|(_, id)| id.to_string()).collect();
    expected.push(silent.to_string());

    let token = stage.staff(stage.a.id);
    let mut seen = vec![];
    let mut url = stage.api(stage.a.id, "conversations?limit=2");
    let mut pages = 0;
    loop {
        let (status, body) = stage.get(&url, &token).await;
        assert_eq!(status, 200, "{body}");
        let page = body["conversations"].as_array().unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|c| c["id"].as_str().unwrap().to_string()));
        pages += 1;
        match body["next"].as_str() {
            Some(next) => {
                url = stage.api(stage.a.id, &format!("conversations?limit=2&before={next}"))
            }
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);

    // `before` as a timestamp: strictly older conversations, then the silent one.
    let (status, body) = stage
        .get(
            &stage.api(stage.a.id, "conversations?before=2024-06-01T12:02:00Z"),
            &token,
        )
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            expected[3].as_str(),
            expected[4].as_str(),
            expected[5].as_str()
        ]
    );
    assert_eq!(
        body["conversations"][0]["customer_name"]
            .as_str()
            .map(|s| s.starts_with("name of")),
        Some(true)
    );

    for bad in ["limit=0", "limit=abc", "before=yesterday"] {
        let (status, body) = stage
            .get(
                &stage.api(stage.a.id, &format!("conversations?{bad}")),
                &token,
            )
            .await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"], "bad_request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_come_oldest_first_within_the_latest_page() {
    let stage = Stage::start().await;
    let pool = stage.pool();
    let base = Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap();
    let conv = common::conversation(pool, stage.a.id, "whatsapp:+15550000301", Some(base), 0).await;
    let other =
        common::conversation(pool, stage.a.id, "whatsapp:+15550000302", Some(base), 0).await;
    for i in 0..5 {
        let direction = if i % 2 == 0 { "in" } else { "out" };
        common::message(
            pool,
            stage.a.id,
            conv,
            direction,
            &format!("m{i}"),
            base + chrono::Duration::seconds(i),
        )
        .await;
    }
    common::message(pool, stage.a.id, other, "in", "elsewhere", base).await;
    let token = stage.staff(stage.a.id);

    let (status, body) = stage
        .get(
            &stage.api(
                stage.a.id,
                &format!("conversations/{conv}/messages?limit=3"),
            ),
            &token,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let bodies: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, vec!["m2", "m3", "m4"]);
    assert_eq!(body["messages"][1]["direction"], "out");
    assert_eq!(body["messages"][0]["conversation_id"], conv.to_string());
    let next = body["next"].as_str().expect("an older page").to_string();

    let (status, body) = stage
        .get(
            &stage.api(
                stage.a.id,
                &format!("conversations/{conv}/messages?limit=3&before={next}"),
            ),
            &token,
        )
        .await;
    assert_eq!(status, 200);
    let bodies: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, vec!["m0", "m1"]);
    assert!(body["next"].is_null());

    let (status, _) = stage
        .get(
            &stage.api(
                stage.a.id,
                &format!("conversations/{}/messages", Uuid::new_v4()),
            ),
            &token,
        )
        .await;
    assert_eq!(status, 404);
}

/// The last envelope on a subject of a stream.
async fn last_on<T: waiter_nats::Payload>(
    bus: &Bus,
    kind: StreamKind,
    subject: &str,
) -> Envelope<T> {
    let stream = bus
        .jetstream()
        .get_stream(bus.topology().stream_name(kind))
        .await
        .unwrap();
    let message = stream
        .get_last_raw_message_by_subject(subject)
        .await
        .unwrap();
    Envelope::decode(&message.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_publishes_a_staff_reply_on_the_conversations_partition() {
    let stage = Stage::start().await;
    let customer = "whatsapp:+15550000401";
    let conv = common::conversation(stage.pool(), stage.a.id, customer, Some(Utc::now()), 0).await;
    let token = stage.staff(stage.a.id);
    let url = stage.api(stage.a.id, &format!("conversations/{conv}/send"));

    let (status, body) = stage
        .post(
            &url,
            &token,
            Some(json!({"message": "Your order is on its way 🚗"})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let message_id: Uuid = body["message_id"].as_str().unwrap().parse().unwrap();

    let topology = stage.bus().topology();
    let subject = topology.conversation(topology.conversation_partition(&stage.a.id, customer));
    let envelope: Envelope<ConversationInput> =
        last_on(stage.bus(), StreamKind::Conversation, &subject).await;
    assert_eq!(envelope.id, message_id.to_string());
    match envelope.body {
        ConversationInput::StaffReply(reply) => {
            assert_eq!(reply.message_id, message_id);
            assert_eq!(reply.restaurant_id, stage.a.id);
            assert_eq!(reply.conversation_id, conv);
            assert_eq!(reply.staff, "test-user");
            assert_eq!(reply.text, "Your order is on its way 🚗");
        }
        other => panic!("expected a staff reply, got {other:?}"),
    }

    let too_long = "ش".repeat(1601);
    for body in [
        json!({"message": ""}),
        json!({"message": "  "}),
        json!({"message": too_long}),
        json!({"text": "hi"}),
    ] {
        let (status, answer) = stage.post(&url, &token, Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"], "bad_request");
        assert!(answer["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    let (status, answer) = stage.post_raw(&url, &token, "{\"message\": ").await;
    assert_eq!(status, 400);
    assert!(
        answer["reason"].as_str().unwrap().contains("invalid JSON"),
        "{answer}"
    );
    let (status, _) = stage
        .post(&url, &token, Some(json!({"message": "ش".repeat(1600)})))
        .await;
    assert_eq!(status, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_message_with_control_characters_is_refused_and_nothing_is_queued() {
    let stage = Stage::start().await;
    let customer = "whatsapp:+15550000402";
    let conv = common::conversation(stage.pool(), stage.a.id, customer, Some(Utc::now()), 0).await;
    let token = stage.staff(stage.a.id);
    let url = stage.api(stage.a.id, &format!("conversations/{conv}/send"));
    let stream = stage
        .bus()
        .jetstream()
        .get_stream(stage.bus().topology().stream_name(StreamKind::Conversation))
        .await
        .unwrap();
    let held = |mut s: async_nats::jetstream::stream::Stream| async move {
        s.info().await.unwrap().state.messages
    };
    let before = held(stream.clone()).await;
    for hostile in ["hi\u{0}", "ring\u{7}", "\u{1b}[2Jcleared", "next\u{85}line"] {
        let (status, answer) = stage
            .post(&url, &token, Some(json!({ "message": hostile })))
            .await;
        assert_eq!(status, 400, "{hostile:?}: {answer}");
        assert!(
            answer["reason"]
                .as_str()
                .is_some_and(|r| r.contains("control character U+")),
            "{answer}"
        );
    }
    assert_eq!(held(stream.clone()).await, before, "nothing was queued");
    let (status, answer) = stage
        .post(
            &url,
            &token,
            Some(json!({"message": "Two lines:\n\t\u{200f}طلبك جاهز"})),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(held(stream).await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_toggle_publishes_set_bot_active() {
    let stage = Stage::start().await;
    let customer = "whatsapp:+15550000501";
    let conv = common::conversation(stage.pool(), stage.a.id, customer, Some(Utc::now()), 0).await;
    let token = stage.staff(stage.a.id);
    let url = stage.api(stage.a.id, &format!("conversations/{conv}/bot"));
    let (status, body) = stage
        .post(&url, &token, Some(json!({"active": false})))
        .await;
    assert_eq!(status, 202, "{body}");
    let topology = stage.bus().topology();
    let subject = topology.conversation(topology.conversation_partition(&stage.a.id, customer));
    let envelope: Envelope<ConversationInput> =
        last_on(stage.bus(), StreamKind::Conversation, &subject).await;
    match envelope.body {
        ConversationInput::SetBotActive(set) => {
            assert!(!set.active);
            assert_eq!(set.conversation_id, conv);
            assert_eq!(set.restaurant_id, stage.a.id);
            assert_eq!(set.actor, "test-user");
        }
        other => panic!("expected set-bot-active, got {other:?}"),
    }
    let (status, _) = stage
        .post(&url, &token, Some(json!({"active": "no"})))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_clears_unread_and_announces_it() {
    let stage = Stage::start().await;
    let conv = common::conversation(
        stage.pool(),
        stage.a.id,
        "whatsapp:+15550000601",
        Some(Utc::now()),
        3,
    )
    .await;
    let token = stage.staff(stage.a.id);
    let mut socket = common::Socket::connect(&stage.ws_url(), common::Auth::Header(&token))
        .await
        .unwrap();
    socket
        .subscribe(&common::channels(stage.a.id, &["conversations"]), None)
        .await;

    let (status, body) = stage
        .post(
            &stage.api(stage.a.id, &format!("conversations/{conv}/read")),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], conv.to_string());
    assert_eq!(body["unread_count"], 0);
    let unread: i32 = sqlx::query_scalar("SELECT unread_count FROM conversations WHERE id = $1")
        .bind(conv)
        .fetch_one(stage.pool())
        .await
        .unwrap();
    assert_eq!(unread, 0);

    let event = socket
        .wait_for("conversation.updated", Duration::from_secs(10))
        .await
        .expect("event");
    assert_eq!(event["data"]["id"], conv.to_string());
    assert_eq!(event["data"]["unread_count"], 0);
    assert!(event["seq"].as_u64().unwrap() > 0);
}

/// Plays the order stage: answers each command on its inbox. PREPARING is
/// accepted with the order in the reply; OUT_FOR_DELIVERY is accepted after
/// updating the row, with no order in the reply; anything else is refused.
async fn fake_order_stage(
    bus: Bus,
    pool: PgPool,
    template: OrderView,
) -> mpsc::UnboundedReceiver<OrderCommand> {
    let topology = bus.topology().clone();
    let stream = bus
        .jetstream()
        .get_stream(topology.stream_name(StreamKind::Order))
        .await
        .unwrap();
    let consumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("fake-order".into()),
            filter_subject: topology.stream_subjects(StreamKind::Order),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let (seen, commands) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = messages.next().await {
            let envelope = Envelope::<OrderCommand>::decode(&message.payload).unwrap();
            message.ack().await.unwrap();
            let command = envelope.body;
            let OrderAction::Transition { to, .. } = command.action.clone() else {
                continue;
            };
            let reply = match to {
                OrderStatus::Preparing => OrderReply {
                    command_id: command.command_id,
                    accepted: true,
                    reason: None,
                    order: Some(OrderView {
                        status: to,
                        ..template.clone()
                    }),
                },
                OrderStatus::OutForDelivery => {
                    sqlx::query("UPDATE orders SET status = $2, updated_at = now() WHERE id = $1")
                        .bind(command.order_id)
                        .bind(to.as_str())
                        .execute(&pool)
                        .await
                        .unwrap();
                    OrderReply {
                        command_id: command.command_id,
                        accepted: true,
                        reason: None,
                        order: None,
                    }
                }
                other => OrderReply {
                    command_id: command.command_id,
                    accepted: false,
                    reason: Some(format!("cannot move from CONFIRMED to {}", other.as_str())),
                    order: None,
                },
            };
            let inbox = command.reply_to.clone().unwrap();
            // A stray answer for another command first: it must be ignored.
            let stray = OrderReply {
                command_id: Uuid::new_v4(),
                accepted: false,
                reason: Some("stray".into()),
                order: None,
            };
            bus.client()
                .publish(inbox.clone(), serde_json::to_vec(&stray).unwrap().into())
                .await
                .unwrap();
            bus.client()
                .publish(inbox, serde_json::to_vec(&reply).unwrap().into())
                .await
                .unwrap();
            let _ = seen.send(command);
        }
    });
    commands
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_status_changes_are_decided_by_the_order_stage() {
    let stage = Stage::start().await;
    let pool = stage.pool();
    let conv = common::conversation(
        pool,
        stage.a.id,
        "whatsapp:+15550000701",
        Some(Utc::now()),
        0,
    )
    .await;
    let order_id = common::order(
        pool,
        stage.a.id,
        conv,
        7,
        "CONFIRMED",
        &[("Shawarma", 2, 1500)],
        Utc::now(),
        None,
    )
    .await;
    let token = stage.staff(stage.a.id);
    let (_, listed) = stage.get(&stage.api(stage.a.id, "orders"), &token).await;
    let template: OrderView = serde_json::from_value(listed["orders"][0].clone()).unwrap();
    assert_eq!(template.lines[0].name, "Shawarma");
    assert_eq!(template.lines[0].line_total, 3000);
    let mut commands = fake_order_stage(stage.bus().clone(), pool.clone(), template).await;
    let url = stage.api(stage.a.id, &format!("orders/{order_id}/status"));

    let (status, body) = stage
        .patch(&url, &token, json!({"status": "PREPARING"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], order_id.to_string());
    assert_eq!(body["status"], "PREPARING");
    let command = tokio::time::timeout(Duration::from_secs(10), commands.recv())
        .await
        .expect("the order stage saw the command")
        .unwrap();
    assert_eq!(command.order_id, order_id);
    assert_eq!(command.restaurant_id, stage.a.id);
    assert_eq!(command.actor, Actor::Staff("test-user".into()));
    assert_eq!(
        command.action,
        OrderAction::Transition {
            to: OrderStatus::Preparing,
            reason: None
        }
    );

    let (status, body) = stage
        .patch(&url, &token, json!({"status": "OUT_FOR_DELIVERY"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "OUT_FOR_DELIVERY");
    assert_eq!(body["number"], 7);

    let (status, body) = stage.patch(&url, &token, json!({"status": "RATED"})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "illegal_transition");
    assert_eq!(body["reason"], "cannot move from CONFIRMED to RATED");

    let (status, body) = stage
        .patch(&url, &token, json!({"status": "COOKING"}))
        .await;
    assert_eq!(status, 400);
    assert!(body["reason"].as_str().unwrap().contains("COOKING"));
    let (status, _) = stage
        .patch(
            &stage.api(stage.a.id, &format!("orders/{}/status", Uuid::new_v4())),
            &token,
            json!({"status": "PREPARING"}),
        )
        .await;
    assert_eq!(status, 404);

    // Listing by status.
    let (status, body) = stage
        .get(
            &stage.api(stage.a.id, "orders?status=OUT_FOR_DELIVERY"),
            &token,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["orders"].as_array().unwrap().len(), 1);
    let (_, body) = stage
        .get(&stage.api(stage.a.id, "orders?status=CONFIRMED"), &token)
        .await;
    assert!(body["orders"].as_array().unwrap().is_empty());
    let (status, body) = stage
        .get(&stage.api(stage.a.id, "orders?status=LOST"), &token)
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_order_stage_is_a_504() {
    let stage = Stage::start_with(|c| c.command_timeout = Duration::from_millis(300)).await;
    let conv = common::conversation(
        stage.pool(),
        stage.a.id,
        "whatsapp:+15550000801",
        Some(Utc::now()),
        0,
    )
    .await;
    let order_id = common::order(
        stage.pool(),
        stage.a.id,
        conv,
        1,
        "CONFIRMED",
        &[("Tea", 1, 500)],
        Utc::now(),
        None,
    )
    .await;
    let token = stage.staff(stage.a.id);
    let (status, body) = stage
        .patch(
            &stage.api(stage.a.id, &format!("orders/{order_id}/status")),
            &token,
            json!({"status": "PREPARING"}),
        )
        .await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"], "timeout");
    // The command is on the order partition all the same.
    let topology = stage.bus().topology();
    let subject = topology.order_command(topology.order_partition(&order_id));
    let envelope: Envelope<OrderCommand> = last_on(stage.bus(), StreamKind::Order, &subject).await;
    assert_eq!(envelope.body.order_id, order_id);
    assert!(envelope.body.reply_to.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_over_a_small_fixture() {
    let stage = Stage::start().await;
    let pool = stage.pool();
    let a = stage.a.id;
    let t0 = Utc.with_ymd_and_hms(2024, 6, 10, 12, 0, 0).unwrap();
    let c1 = common::conversation(pool, a, "whatsapp:+15550000901", Some(t0), 0).await;
    let c2 = common::conversation(pool, a, "whatsapp:+15550000902", Some(t0), 0).await;
    let c3 = common::conversation(pool, a, "whatsapp:+15550000903", Some(t0), 0).await;
    let c4 = common::conversation(pool, a, "whatsapp:+15550000904", Some(t0), 0).await;
    let s = chrono::Duration::seconds;
    // c1 answered after 10 s, c2 after 30 s (its second inbound does not
    // count), c3 never; c4's only inbound is outside the range.
    common::message(pool, a, c1, "out", "earlier bot message", t0 - s(100)).await;
    common::message(pool, a, c1, "in", "hi", t0).await;
    common::message(pool, a, c1, "out", "hello", t0 + s(10)).await;
    common::message(pool, a, c1, "out", "menu", t0 + s(11)).await;
    common::message(pool, a, c2, "in", "hi", t0 + s(60)).await;
    common::message(pool, a, c2, "in", "anyone?", t0 + s(80)).await;
    common::message(pool, a, c2, "out", "yes", t0 + s(90)).await;
    common::message(pool, a, c3, "in", "hello?", t0 + s(5)).await;
    common::message(pool, a, c4, "in", "old", t0 - chrono::Duration::days(40)).await;
    common::message(
        pool,
        a,
        c4,
        "out",
        "old answer",
        t0 - chrono::Duration::days(40) + s(1),
    )
    .await;

    common::order(
        pool,
        a,
        c1,
        1,
        "DELIVERED",
        &[("Shawarma", 2, 1500), ("Tea", 1, 500)],
        t0,
        Some(5),
    )
    .await;
    common::order(
        pool,
        a,
        c2,
        2,
        "RATED",
        &[("Shawarma", 1, 1500)],
        t0 + s(100),
        Some(2),
    )
    .await;
    common::order(
        pool,
        a,
        c3,
        3,
        "CANCELLED",
        &[("Falafel", 9, 800)],
        t0 + s(200),
        None,
    )
    .await;
    common::order(
        pool,
        a,
        c3,
        4,
        "PREPARING",
        &[("Falafel", 1, 800), ("Tea", 2, 500)],
        t0 + s(300),
        None,
    )
    .await;
    common::order(
        pool,
        a,
        c4,
        5,
        "RATED",
        &[("Kunafa", 50, 900)],
        t0 - chrono::Duration::days(40),
        Some(1),
    )
    .await;
    // Another restaurant's order never counts.
    let b_conv = common::conversation(pool, stage.b.id, "whatsapp:+15550000905", Some(t0), 0).await;
    common::order(
        pool,
        stage.b.id,
        b_conv,
        1,
        "DELIVERED",
        &[("Shawarma", 99, 1)],
        t0,
        Some(1),
    )
    .await;

    let token = stage.staff(a);
    let url = stage.api(
        a,
        "analytics?from=2024-06-01T00:00:00Z&to=2024-06-30T00:00:00%2B00:00",
    );
    let (status, body) = stage.get(&url, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["orders"]["total"], 4);
    assert_eq!(body["orders"]["by_status"]["DELIVERED"], 1);
    assert_eq!(body["orders"]["by_status"]["RATED"], 1);
    assert_eq!(body["orders"]["by_status"]["CANCELLED"], 1);
    assert_eq!(body["orders"]["by_status"]["PREPARING"], 1);
    assert_eq!(body["orders"]["by_status"]["DRAFT"], 0);
    assert_eq!(
        body["ratings"],
        json!({"1": 0, "2": 1, "3": 0, "4": 0, "5": 1, "average": 3.5})
    );
    assert_eq!(body["median_first_response_seconds"], 20.0);
    assert_eq!(
        body["top_items"],
        json!([
            {"name": "Shawarma", "quantity": 3},
            {"name": "Tea", "quantity": 3},
            {"name": "Falafel", "quantity": 1},
        ])
    );

    // A range with nothing in it.
    let (status, body) = stage
        .get(
            &stage.api(
                a,
                "analytics?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z",
            ),
            &token,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["orders"]["total"], 0);
    assert!(body["median_first_response_seconds"].is_null());
    assert!(body["ratings"]["average"].is_null());
    assert_eq!(body["top_items"], json!([]));

    // The default range is the last 30 days: the fixture is older.
    let (status, body) = stage.get(&stage.api(a, "analytics"), &token).await;
    assert_eq!(status, 200);
    assert_eq!(body["orders"]["total"], 0);

    for bad in [
        "from=june",
        "from=2024-06-30T00:00:00Z&to=2024-06-01T00:00:00Z",
    ] {
        let (status, body) = stage
            .get(&stage.api(a, &format!("analytics?{bad}")), &token)
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

/// Events published by `read` are real DashboardEvents on the EVENTS stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_event_is_on_the_events_stream() {
    let stage = Stage::start().await;
    let conv = common::conversation(
        stage.pool(),
        stage.a.id,
        "whatsapp:+15550001001",
        Some(Utc::now()),
        2,
    )
    .await;
    let token = stage.staff(stage.a.id);
    let (status, _) = stage
        .post(
            &stage.api(stage.a.id, &format!("conversations/{conv}/read")),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let subject = stage
        .bus()
        .topology()
        .event(&stage.a.id, EventType::ConversationUpdated.as_str());
    let envelope: Envelope<DashboardEvent> =
        eventually("the event", Duration::from_secs(5), || {
            let bus = stage.bus().clone();
            let subject = subject.clone();
            async move {
                let stream = bus
                    .jetstream()
                    .get_stream(bus.topology().stream_name(StreamKind::Events))
                    .await
                    .ok()?;
                let message = stream
                    .get_last_raw_message_by_subject(&subject)
                    .await
                    .ok()?;
                Envelope::decode(&message.payload).ok()
            }
        })
        .await;
    assert_eq!(envelope.body.restaurant_id, stage.a.id);
    assert_eq!(envelope.body.data["unread_count"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_one_instant_keep_the_order_they_were_written_in() {
    // A customer's message and the bot's replies share their transaction's
    // now(); their ids are random, so only the order written can order them.
    let stage = Stage::start().await;
    let pool = stage.pool();
    let at = Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap();
    let conv = common::conversation(pool, stage.a.id, "whatsapp:+15550000401", Some(at), 0).await;
    let written = ["question", "answer 1", "answer 2", "answer 3", "answer 4"];
    for (i, body) in written.iter().enumerate() {
        let direction = if i == 0 { "in" } else { "out" };
        common::message(pool, stage.a.id, conv, direction, body, at).await;
    }
    let token = stage.staff(stage.a.id);
    let page = |query: String| {
        let url = stage.api(
            stage.a.id,
            &format!("conversations/{conv}/messages?{query}"),
        );
        let token = token.clone();
        let stage = &stage;
        async move {
            let (status, body) = stage.get(&url, &token).await;
            assert_eq!(status, 200, "{body}");
            let bodies: Vec<String> = body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["body"].as_str().unwrap().to_string())
                .collect();
            (bodies, body["next"].as_str().map(str::to_string))
        }
    };
    let (all, _) = page("limit=10".into()).await;
    assert_eq!(all, written);
    // Paging inside the instant loses nothing and repeats nothing.
    let (newest, next) = page("limit=2".into()).await;
    assert_eq!(newest, ["answer 3", "answer 4"]);
    let (older, next) = page(format!("limit=2&before={}", next.unwrap())).await;
    assert_eq!(older, ["answer 1", "answer 2"]);
    let (oldest, next) = page(format!("limit=2&before={}", next.unwrap())).await;
    assert_eq!((oldest, next), (vec!["question".to_string()], None));
    // A timestamp excludes the whole instant.
    let (before, _) = page("before=2024-06-01T12:00:00Z".into()).await;
    assert!(before.is_empty());
}
