//! The webhook audit log: one row per message ingest accepted (with the
//! router's verdict on it), and the counts of what ingest refused.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use waiter_nats::{
    messages::{RefusedWebhooks, WebhookOutcome},
    Delivery, Envelope, Failure, Handler, Outcome,
};

/// One audit row. `event_id` makes writing it idempotent.
pub struct AuditRecord<'a> {
    pub event_id: &'a str,
    pub endpoint: &'a str,
    pub restaurant_id: Option<Uuid>,
    pub account_sid: Option<&'a str>,
    pub message_sid: Option<&'a str>,
    pub outcome: WebhookOutcome,
    pub reason: Option<&'a str>,
    pub params: &'a [(String, String)],
    pub received_at: DateTime<Utc>,
}

/// Writes the audit rows of a batch in one statement (rows written
/// before are kept as they are).
pub async fn record_all(pool: &PgPool, rows: &[AuditRecord<'_>]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&AuditRecord<'_>) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let restaurants: Vec<Option<Uuid>> = rows.iter().map(|r| r.restaurant_id).collect();
    let params: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::to_value(r.params).unwrap_or_default())
        .collect();
    let received: Vec<DateTime<Utc>> = rows.iter().map(|r| r.received_at).collect();
    sqlx::query(
        "INSERT INTO webhook_audit (event_id, endpoint, restaurant_id, account_sid, message_sid, \
            outcome, reason, params, received_at) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], \
            $6::text[], $7::text[], $8::jsonb[], $9::timestamptz[]) \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(column(|r| Some(r.event_id.to_string())))
    .bind(column(|r| Some(r.endpoint.to_string())))
    .bind(restaurants)
    .bind(column(|r| r.account_sid.map(str::to_string)))
    .bind(column(|r| r.message_sid.map(str::to_string)))
    .bind(column(|r| Some(r.outcome.as_str().to_string())))
    .bind(column(|r| r.reason.map(str::to_string)))
    .bind(params)
    .bind(received)
    .execute(pool)
    .await?;
    for r in rows {
        metrics::counter!("waiter_router_audit_total", "outcome" => r.outcome.as_str())
            .increment(1);
    }
    Ok(())
}

/// Stores ingest's counts of refused (and duplicate) webhooks. A report is
/// cumulative for its key, so the row keeps the larger count and the longer
/// sample list: a redelivered or late report changes nothing.
pub struct Refusals {
    pool: PgPool,
}

impl Refusals {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

pub async fn record_refusals(pool: &PgPool, r: &RefusedWebhooks) -> Result<(), sqlx::Error> {
    // Ingest replaced NUL already; an older or foreign producer may not have.
    let text = |s: &str| s.replace('\0', "\u{FFFD}");
    let mut samples = serde_json::to_value(&r.samples).unwrap_or_default();
    without_nul(&mut samples);
    sqlx::query(
        "INSERT INTO webhook_refusals (ingest_id, minute, endpoint, outcome, source, reason, \
            count, throttled, samples) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (minute, ingest_id, endpoint, outcome, source) DO UPDATE SET \
            count = GREATEST(webhook_refusals.count, EXCLUDED.count), \
            throttled = GREATEST(webhook_refusals.throttled, EXCLUDED.throttled), \
            samples = CASE WHEN jsonb_array_length(EXCLUDED.samples) > jsonb_array_length(webhook_refusals.samples) \
                THEN EXCLUDED.samples ELSE webhook_refusals.samples END, \
            recorded_at = now()",
    )
    .bind(r.ingest_id)
    .bind(r.minute)
    .bind(text(&r.endpoint))
    .bind(r.outcome.as_str())
    .bind(text(&r.source))
    .bind(text(&r.reason))
    .bind(i64::try_from(r.count).unwrap_or(i64::MAX))
    .bind(i64::try_from(r.throttled).unwrap_or(i64::MAX))
    .bind(samples)
    .execute(pool)
    .await?;
    metrics::counter!("waiter_router_refusals_total", "outcome" => r.outcome.as_str()).increment(1);
    Ok(())
}

/// PostgreSQL's jsonb cannot hold U+0000 in a string.
fn without_nul(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        serde_json::Value::Array(items) => items.iter_mut().for_each(without_nul),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(without_nul),
        _ => {}
    }
}

impl Handler for Refusals {
    type Message = RefusedWebhooks;

    async fn handle(&self, envelope: Envelope<RefusedWebhooks>, _delivery: Delivery) -> Outcome {
        match record_refusals(&self.pool, &envelope.body).await {
            Ok(()) => Outcome::Ack,
            Err(e) => Outcome::Retry(Failure::from(e).while_doing("audit")),
        }
    }
}
