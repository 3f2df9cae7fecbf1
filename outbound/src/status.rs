//! Status callbacks: Twilio's word on what became of a message we sent,
//! applied monotonically (a late `delivered` never undoes `read`).

use waiter_nats::{
    events::{DashboardEvent, EventType},
    messages::StatusCallback,
    Bus, Delivery, Envelope, Failure, Handler, Outcome,
};

use crate::{
    decision::{self, callback_rank},
    store::{self, StatusChange},
};
use waiter_migrations::consent;

/// The durable consumer every replica shares.
pub const CONSUMER: &str = "outbound-status";
/// Messages handled at once by one replica.
pub const IN_FLIGHT: i64 = 64;

pub struct StatusHandler {
    pool: sqlx::PgPool,
    bus: Bus,
    /// Deliveries of a callback whose sid is not (yet) in `messages`
    /// before it is dropped.
    unknown_sid_attempts: i64,
}

impl StatusHandler {
    pub fn new(pool: sqlx::PgPool, bus: Bus, unknown_sid_attempts: i64) -> Self {
        Self {
            pool,
            bus,
            unknown_sid_attempts,
        }
    }

    async fn publish(
        &self,
        env: &Envelope<StatusCallback>,
        change: &StatusChange,
    ) -> Result<(), waiter_nats::BusError> {
        // MessageSid + status: the same callback twice is one event.
        let id = format!("message.status:{}:{}", env.body.message_sid, change.status);
        let event = DashboardEvent::new(change.restaurant_id, EventType::MessageStatus, change);
        let subject = event.subject(self.bus.topology());
        self.bus.publish(subject, &env.follow(id, event)).await?;
        Ok(())
    }
}

impl Handler for StatusHandler {
    type Message = StatusCallback;

    async fn handle(&self, env: Envelope<StatusCallback>, delivery: Delivery) -> Outcome {
        let callback = &env.body;
        let sid = callback.message_sid.trim();
        let status = callback.status.trim().to_ascii_lowercase();
        let Some(rank) = callback_rank(&status) else {
            tracing::debug!(sid, status = %callback.status, "status says nothing about delivery; ignored");
            metrics::counter!("waiter_outbound_status_ignored_total").increment(1);
            return Outcome::Ack;
        };
        if sid.is_empty() {
            tracing::warn!(status = %status, "status callback without a MessageSid; ignored");
            metrics::counter!("waiter_outbound_status_ignored_total").increment(1);
            return Outcome::Ack;
        }
        let error_code = callback
            .error_code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        let error_message = callback
            .error_message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(decision::error_message);

        // The UPDATE and the look-up after it are two statements: the row
        // can get its sid between them (step 5 of sending). Then the row is
        // found below its rank and the UPDATE is simply tried again.
        for _ in 0..3 {
            let applied = store::apply_status(
                &self.pool,
                sid,
                &callback.account_sid,
                &status,
                rank,
                error_code,
                error_message.as_deref(),
            )
            .await;
            let current = match applied {
                Err(e) => {
                    return Outcome::Retry(
                        Failure::from(e).while_doing(&format!("apply status {status} of {sid}")),
                    )
                }
                Ok(Some(change)) => {
                    if change.error_code.as_deref() == Some(consent::UNSUBSCRIBED_ERROR) {
                        if let Err(e) =
                            consent::unsubscribed_by_twilio(&self.pool, change.conversation_id)
                                .await
                        {
                            return Outcome::Retry(Failure::from(e));
                        }
                    }
                    metrics::counter!("waiter_outbound_status_applied_total", "status" => change.status.clone())
                        .increment(1);
                    tracing::debug!(sid, status = %change.status, message_id = %change.message_id,
                        "status applied");
                    return match self.publish(&env, &change).await {
                        Ok(()) => Outcome::Ack,
                        Err(e) => Outcome::Retry(Failure::from(e)),
                    };
                }
                Ok(None) => {
                    match store::current_status(&self.pool, sid, &callback.account_sid).await {
                        Ok(current) => current,
                        Err(e) => {
                            return Outcome::Retry(
                                Failure::from(e).while_doing(&format!("read {sid}")),
                            )
                        }
                    }
                }
            };
            let Some(current) = current else {
                if i64::from(delivery.attempt) < self.unknown_sid_attempts {
                    // The callback can overtake our UPDATE after the 201.
                    return Outcome::transient(format!("no outbound message with sid {sid} yet"));
                }
                tracing::warn!(sid, status = %status, account_sid = %callback.account_sid,
                    attempts = delivery.attempt,
                    "status callback for a message we do not know; dropped");
                metrics::counter!("waiter_outbound_status_unknown_total").increment(1);
                return Outcome::Ack;
            };
            if current.status_rank < rank {
                continue;
            }
            // Already at or past this status. If it got here just now through
            // this very status, the earlier delivery may have stopped before
            // its event: publish it again (same id, so JetStream drops a copy).
            if current.recent && current.change.status == status && status != decision::QUEUED {
                if let Err(e) = self.publish(&env, &current.change).await {
                    return Outcome::Retry(Failure::from(e));
                }
            }
            tracing::debug!(sid, status = %status, current = %current.change.status,
                "status is not news; nothing to change");
            return Outcome::Ack;
        }
        Outcome::transient(format!(
            "status {status} of {sid} kept racing other writers"
        ))
    }
}
