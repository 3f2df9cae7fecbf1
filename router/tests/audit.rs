//! The audit log's storage: refusal counts stored idempotently, old rows
//! pruned.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use router::{audit, retention};
use waiter_harness::TestDb;
use waiter_nats::messages::{RefusedSample, RefusedWebhooks, WebhookOutcome};

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
