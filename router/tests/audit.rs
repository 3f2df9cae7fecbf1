//! The audit log's storage: refusal counts stored idempotently, old rows
//! pruned; a window of messages routed with one audit statement and its
//! forwards published together, nothing written or forwarded twice.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use router::{audit, retention};
use waiter_harness::TestDb;
use waiter_nats::messages::{InboundMessage, RefusedSample, RefusedWebhooks, WebhookOutcome};

fn report(count: u64, samples: usize, minute: chrono::DateTime<Utc>) -> RefusedWebhooks {
    RefusedWebhooks {
        ingest_id: uuid::Uuid::from_u128(7),
        minute,
        endpoint: "message".into(),
        outcome: WebhookOutcome::BadSignature,
        source: "203.0.113.9".into(),
        reason: "X-Twilio-Signature does not match".into(),
        count,
        throttled: count.saturating_sub(60),
        samples: (0..samples)
            .map(|i| RefusedSample {
                reason: "bad".into(),
                to: Some(format!("whatsapp:+1\0{i}")),
                params: vec![("Body\0".into(), "\0".into())],
                ..RefusedSample::default()
            })
            .collect(),
    }
}

async fn stored(db: &TestDb) -> (i64, i64, i32) {
    sqlx::query_as("SELECT count, throttled, jsonb_array_length(samples) FROM webhook_refusals")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn refusal_counts_keep_the_largest_report_whatever_the_order() {
    let db = TestDb::new().await;
    let minute = Utc::now();
    audit::record_refusals(&db.pool, &report(10, 2, minute))
        .await
        .unwrap();
    audit::record_refusals(&db.pool, &report(100, 0, minute))
        .await
        .unwrap();
    // Redelivered, or late: changes nothing.
    audit::record_refusals(&db.pool, &report(10, 2, minute))
        .await
        .unwrap();
    assert_eq!(stored(&db).await, (100, 40, 2));
    audit::record_refusals(&db.pool, &report(101, 3, minute))
        .await
        .unwrap();
    assert_eq!(stored(&db).await, (101, 41, 3));
    let text: String = sqlx::query_scalar("SELECT samples::text FROM webhook_refusals")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(
        !text.contains("\\u0000") && text.contains('\u{FFFD}'),
        "{text}"
    );
}

#[tokio::test]
async fn rows_older_than_the_retention_are_pruned() {
    let db = TestDb::new().await;
    let now = Utc::now();
    for (i, age_days) in [(1, 40), (2, 31), (3, 1)] {
        let at = now - TimeDelta::days(age_days);
        sqlx::query(
            "INSERT INTO webhook_audit (event_id, endpoint, outcome, received_at) \
             VALUES ($1, 'message', 'accepted', $2)",
        )
        .bind(format!("inbound:SM{i}"))
        .bind(at)
        .execute(&db.pool)
        .await
        .unwrap();
        audit::record_refusals(&db.pool, &report(i, 1, at))
            .await
            .unwrap();
    }
    let removed = retention::prune(&db.pool, Duration::from_secs(30 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!(removed, 4, "two audit rows and two refusal rows");
    let left: Vec<String> = sqlx::query_scalar("SELECT event_id FROM webhook_audit")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, vec!["inbound:SM3".to_string()]);
    let counts: Vec<i64> = sqlx::query_scalar("SELECT count FROM webhook_refusals")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(counts, vec![3]);
    assert_eq!(
        retention::prune(&db.pool, Duration::from_secs(30 * 24 * 3600))
            .await
            .unwrap(),
        0
    );
}

fn inbound(
    sid: &str,
    to: &str,
    account_sid: &str,
    from: &str,
) -> waiter_nats::Incoming<InboundMessage> {
    let message = InboundMessage {
        message_sid: sid.into(),
        account_sid: account_sid.into(),
        from: from.into(),
        to: to.into(),
        body: "hello".into(),
        params: vec![("Body".into(), "hello".into())],
        received_at: Utc::now(),
        ..InboundMessage::default()
    };
    waiter_nats::Incoming {
        envelope: waiter_nats::Envelope::new(sid, format!("trace-{sid}"), message),
        delivery: waiter_nats::Delivery {
            subject: "test".into(),
            stream_sequence: 1,
            delivered: 1,
            attempt: 1,
            trace_id: None,
        },
    }
}

#[tokio::test]
async fn a_window_is_audited_in_one_statement_and_forwarded_once() {
    use waiter_nats::{BatchHandler, Outcome, StreamKind};
    let env = waiter_harness::TestEnv::new().await;
    let r = waiter_harness::add_restaurant(env.pool(), "routed", "en").await;
    let bus = env.bus.bus.clone();
    bus.ensure_streams(&[StreamKind::Ingest, StreamKind::Conversation])
        .await
        .unwrap();
    let router =
        router::route::Router::new(bus.clone(), env.pool().clone(), Duration::from_secs(10));
    let batch = || {
        vec![
            inbound("SMone", &r.number, &r.account_sid, "whatsapp:+966500000201"),
            inbound(
                "SMnobody",
                "whatsapp:+10000000000",
                &r.account_sid,
                "whatsapp:+966500000202",
            ),
            inbound("SMtwo", &r.number, &r.account_sid, "whatsapp:+966500000203"),
            inbound(
                "SMforeign",
                &r.number,
                "AC0000000000000000000000000000dead",
                "whatsapp:+966500000204",
            ),
        ]
    };
    let forwarded = || async {
        let stream = bus
            .jetstream()
            .get_stream(bus.topology().stream_name(StreamKind::Conversation))
            .await
            .unwrap();
        stream.cached_info().state.messages
    };
    for round in 0..2 {
        let outcomes = router
            .handle_batch(waiter_nats::Batch::detached(batch()))
            .await;
        assert_eq!(outcomes, vec![Outcome::Ack; 4], "round {round}");
        let audited: Vec<(String, String)> =
            sqlx::query_as("SELECT message_sid, outcome FROM webhook_audit ORDER BY message_sid")
                .fetch_all(env.pool())
                .await
                .unwrap();
        assert_eq!(
            audited,
            vec![
                ("SMforeign".to_string(), "account_mismatch".to_string()),
                ("SMnobody".to_string(), "unknown_number".to_string()),
                ("SMone".to_string(), "accepted".to_string()),
                ("SMtwo".to_string(), "accepted".to_string()),
            ],
            "round {round}: one row per message, kept once"
        );
        assert_eq!(
            forwarded().await,
            2,
            "round {round}: the two accepted messages, stored once"
        );
    }
}
