//! The webhook audit log: every request, accepted or refused.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use waiter_nats::{
    messages::{RejectedWebhook, WebhookOutcome},
    Delivery, Envelope, Handler, Outcome,
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

pub async fn record(pool: &PgPool, r: AuditRecord<'_>) -> Result<(), sqlx::Error> {
    let params = serde_json::to_value(r.params).unwrap_or_default();
    sqlx::query(
        "INSERT INTO webhook_audit (event_id, endpoint, restaurant_id, account_sid, message_sid, \
            outcome, reason, params, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(r.event_id)
    .bind(r.endpoint)
    .bind(r.restaurant_id)
    .bind(r.account_sid)
    .bind(r.message_sid)
    .bind(r.outcome.as_str())
    .bind(r.reason)
    .bind(params)
    .bind(r.received_at)
    .execute(pool)
    .await?;
    metrics::counter!("waiter_router_audit_total", "outcome" => r.outcome.as_str()).increment(1);
    Ok(())
}

/// Writes the audit rows of webhooks ingest refused or found duplicate.
pub struct Auditor {
    pool: PgPool,
}

impl Auditor {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl Handler for Auditor {
    type Message = RejectedWebhook;

    async fn handle(&self, envelope: Envelope<RejectedWebhook>, _delivery: Delivery) -> Outcome {
        let w = &envelope.body;
        let restaurant_id = match &w.to {
            Some(to) => match waiter_migrations::restaurants::by_number(&self.pool, to).await {
                Ok(found) => found.map(|r| r.id),
                Err(e) => return Outcome::retry(e),
            },
            None => None,
        };
        let result = record(
            &self.pool,
            AuditRecord {
                event_id: &envelope.id,
                endpoint: &w.endpoint,
                restaurant_id,
                account_sid: w.account_sid.as_deref(),
                message_sid: w.message_sid.as_deref(),
                outcome: w.outcome,
                reason: Some(&w.reason),
                params: &w.params,
                received_at: w.received_at,
            },
        )
        .await;
        match result {
            Ok(()) => Outcome::Ack,
            Err(e) => Outcome::retry(e),
        }
    }
}
