//! Sending: one OutboundMessage (already a `pending` row in `messages`)
//! becomes one Messages API request, its sid recorded before the ack.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use secrecy::ExposeSecret;
use uuid::Uuid;
use waiter_migrations::Restaurant;
use waiter_nats::{
    events::{DashboardEvent, EventType},
    messages::{DeadLetter, OutboundMessage},
    Bus, BusError, Delivery, Envelope, Handler, Outcome,
};

use crate::{
    decision::{
        self, after_transient, already_handled, classify, rate_decision, status_rank,
        AfterTransient, RateDecision, Verdict,
    },
    store::{self, OutboundRow, StatusChange},
    tenants::{TenantError, Tenants},
    twilio::{form_params, valid_account_sid, Sender, TwilioClient},
};

/// The stage name in dead letters and the bus's consumer names.
pub const STAGE: &str = "outbound";

/// How the send handler behaves; from [`crate::Config`].
#[derive(Debug, Clone)]
pub struct SendSettings {
    pub status_callback_url: Option<String>,
    pub max_attempts: i64,
    /// Deliveries while the row does not exist yet before giving up.
    pub missing_row_attempts: i64,
    /// How long one delivery may wait in place for the tenant's rate limit.
    pub rate_limit_wait: Duration,
}

/// Why handling failed in a way the handler did not decide itself.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl SendError {
    /// Constraint violations and encoding failures will fail again; the
    /// rest (database or broker unreachable) may pass later.
    pub fn is_transient(&self) -> bool {
        match self {
            SendError::Db(sqlx::Error::Database(db)) => !matches!(
                db.kind(),
                sqlx::error::ErrorKind::UniqueViolation
                    | sqlx::error::ErrorKind::ForeignKeyViolation
                    | sqlx::error::ErrorKind::NotNullViolation
                    | sqlx::error::ErrorKind::CheckViolation
            ),
            SendError::Db(_) => true,
            SendError::Bus(BusError::Encode { .. } | BusError::Decode { .. }) => false,
            SendError::Bus(_) => true,
        }
    }
}

/// Why a message is given up on, for `waiter_outbound_failed_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailReason {
    Permanent,
    RetriesExhausted,
    MissingRow,
    UnknownRestaurant,
    Mismatch,
    Internal,
}

impl FailReason {
    fn label(self) -> &'static str {
        match self {
            FailReason::Permanent => "permanent",
            FailReason::RetriesExhausted => "retries_exhausted",
            FailReason::MissingRow => "missing_row",
            FailReason::UnknownRestaurant => "unknown_restaurant",
            FailReason::Mismatch => "mismatch",
            FailReason::Internal => "internal",
        }
    }
}

pub struct SendHandler {
    pool: sqlx::PgPool,
    bus: Bus,
    twilio: TwilioClient,
    tenants: Arc<Tenants>,
    settings: SendSettings,
    /// Sids Twilio gave us that could not be written yet (database down
    /// after the 201). A redelivery to this process records the sid instead
    /// of sending again; see `record_sent`.
    unrecorded: moka::future::Cache<Uuid, String>,
}

type Env = Envelope<OutboundMessage>;

impl SendHandler {
    pub fn new(
        pool: sqlx::PgPool,
        bus: Bus,
        twilio: TwilioClient,
        tenants: Arc<Tenants>,
        settings: SendSettings,
    ) -> Self {
        Self {
            pool,
            bus,
            twilio,
            tenants,
            settings,
            unrecorded: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }

    async fn try_handle(&self, env: &Env, delivery: &Delivery) -> Result<Outcome, SendError> {
        let msg = &env.body;

        // 1. The row: it decides whether this delivery sends at all.
        let Some(row) = store::load(&self.pool, msg.message_id).await? else {
            if delivery.delivered < self.settings.missing_row_attempts {
                return Ok(Outcome::retry(format!(
                    "message {} has no row yet",
                    msg.message_id
                )));
            }
            let reason = format!(
                "message {} has no row in messages after {} deliveries",
                msg.message_id, delivery.delivered
            );
            self.dead_letter(env, delivery, &reason, None).await?;
            count_failed(FailReason::MissingRow);
            return Ok(Outcome::reject(reason));
        };
        if row.direction != "out" || row.restaurant_id != msg.restaurant_id {
            let reason = format!(
                "message {} is a {} row of restaurant {}, not an outbound one of {}",
                msg.message_id,
                if row.direction == "out" {
                    "outbound"
                } else {
                    "inbound"
                },
                row.restaurant_id,
                msg.restaurant_id
            );
            self.dead_letter(env, delivery, &reason, None).await?;
            count_failed(FailReason::Mismatch);
            return Ok(Outcome::reject(reason));
        }
        if already_handled(&row.status, row.wa_sid.as_deref()) {
            self.finish_earlier_attempt(env, delivery, &row).await?;
            tracing::debug!(message_id = %msg.message_id, status = %row.status,
                "already handled; not sending again");
            return Ok(Outcome::Ack);
        }
        if let Some(sid) = self.unrecorded.get(&msg.message_id).await {
            tracing::info!(message_id = %msg.message_id, sid = %sid,
                "Twilio took this message before; recording its sid instead of sending again");
            return self.record_sent(env, &sid).await;
        }

        // 2. The restaurant: sender and credentials.
        let restaurant = match self.tenants.get(msg.restaurant_id).await {
            Ok(r) => r,
            Err(TenantError::NotFound(id)) => {
                let reason = format!("restaurant {id} does not exist");
                return self
                    .fail(env, delivery, FailReason::UnknownRestaurant, None, &reason)
                    .await;
            }
            Err(e @ TenantError::Db(_)) => return Ok(Outcome::retry(e)),
        };
        if !valid_account_sid(&restaurant.twilio_account_sid) {
            let reason = format!(
                "restaurant {} has an unusable Twilio account sid",
                restaurant.id
            );
            return self
                .fail(env, delivery, FailReason::Permanent, None, &reason)
                .await;
        }

        let auth_token = match self.tenants.auth_token(&restaurant) {
            Ok(token) => token,
            Err(e) => {
                // A configuration problem (the key is not in WAITER_SECRET_KEY):
                // dead-lettered with the reason, `just dlq-retry` once fixed.
                tracing::error!(restaurant = %restaurant.id, error = %e, "cannot open the auth token");
                let reason = e.to_string();
                return self
                    .fail(env, delivery, FailReason::Permanent, None, &reason)
                    .await;
            }
        };

        // 3. The restaurant's rate limit. Short waits happen here; a longer
        // one hands the message back, which holds the partition (order kept).
        if let Some(delay) = self.wait_for_quota(&restaurant).await {
            metrics::counter!("waiter_outbound_rate_limited_total").increment(1);
            return Ok(Outcome::RetryAfter {
                delay,
                reason: format!("restaurant {} is over its outbound rate", restaurant.id),
            });
        }

        // 4. Twilio.
        let sender = match &restaurant.messaging_service_sid {
            Some(service) if !service.trim().is_empty() => Sender::Service(service.clone()),
            _ => Sender::From(restaurant.whatsapp_number.clone()),
        };
        let params = form_params(
            &msg.to,
            &sender,
            &msg.content,
            self.settings.status_callback_url.as_deref(),
        );
        let answer = self
            .twilio
            .send(
                &restaurant.twilio_account_sid,
                auth_token.expose_secret(),
                &params,
            )
            .await;

        // 5./6. What Twilio said.
        match classify(&answer) {
            Verdict::Sent { sid, .. } => {
                self.unrecorded.insert(msg.message_id, sid.clone()).await;
                self.record_sent(env, &sid).await
            }
            Verdict::Transient { code, reason } => {
                match after_transient(delivery.delivered, self.settings.max_attempts) {
                    AfterTransient::Retry => {
                        metrics::counter!("waiter_outbound_retries_total").increment(1);
                        tracing::info!(message_id = %msg.message_id, delivered = delivery.delivered,
                            code = ?code, reason = %reason, "transient Twilio failure; will retry");
                        Ok(Outcome::retry(reason))
                    }
                    AfterTransient::GiveUp => {
                        let reason =
                            format!("gave up after {} attempts: {reason}", delivery.delivered);
                        self.fail(env, delivery, FailReason::RetriesExhausted, code, &reason)
                            .await
                    }
                }
            }
            Verdict::Permanent { code, reason } => {
                if code == Some(20003) {
                    // Credentials may have been rotated since we cached them.
                    self.tenants.forget(restaurant.id).await;
                }
                self.fail(env, delivery, FailReason::Permanent, code, &reason)
                    .await
            }
        }
    }

    /// Waits for a free slot of the restaurant's quota for up to the
    /// configured budget. `Some(delay)` when the message should come back
    /// later instead.
    async fn wait_for_quota(&self, restaurant: &Restaurant) -> Option<Duration> {
        let mut waited = Duration::ZERO;
        loop {
            let wait = match self
                .tenants
                .try_acquire(restaurant.id, restaurant.outbound_rate_per_second)
            {
                Ok(()) => return None,
                Err(wait) => wait,
            };
            match rate_decision(wait, waited, self.settings.rate_limit_wait) {
                RateDecision::Wait(wait) => {
                    tokio::time::sleep(wait).await;
                    waited += wait;
                }
                RateDecision::Defer(delay) => return Some(delay),
            }
        }
    }

    /// Step 5: the sid goes into the row before the ack. This is what
    /// narrows invariant 2's window to a crash between Twilio's 201 and
    /// this UPDATE: the write is retried here for a few seconds, and while
    /// it fails the sid stays in memory so a redelivery to this process
    /// records it instead of sending again.
    async fn record_sent(&self, env: &Env, sid: &str) -> Result<Outcome, SendError> {
        let msg = &env.body;
        let queued_rank = status_rank(decision::QUEUED).unwrap_or(1);
        let mut pause = Duration::from_millis(100);
        let view = loop {
            match store::mark_sent(&self.pool, msg.message_id, sid, queued_rank).await {
                Ok(view) => break view,
                Err(e) if pause <= Duration::from_secs(2) => {
                    tracing::warn!(message_id = %msg.message_id, sid, error = %e,
                        "cannot record the sid yet; trying again");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => {
                    tracing::error!(message_id = %msg.message_id, sid, error = %e,
                        "Twilio took the message but its sid is not recorded");
                    return Err(e.into());
                }
            }
        };
        self.unrecorded.invalidate(&msg.message_id).await;
        metrics::counter!("waiter_outbound_sent_total").increment(1);
        match view {
            Some(view) => {
                tracing::info!(message_id = %msg.message_id, sid, "sent");
                let event = DashboardEvent::new(msg.restaurant_id, EventType::MessageSent, view);
                self.publish_event(env, sent_event_id(msg.message_id), event)
                    .await?;
            }
            None => {
                // Someone else moved the row on while we sent (a second
                // delivery after an ack timeout): the message left twice.
                tracing::warn!(message_id = %msg.message_id, sid,
                    "row was no longer pending after the send; sid not recorded");
            }
        }
        Ok(Outcome::Ack)
    }

    /// A redelivery of a message that was handled: if the earlier attempt
    /// may have stopped between the database and the bus, publish what it
    /// would have (same ids, so JetStream drops copies).
    async fn finish_earlier_attempt(
        &self,
        env: &Env,
        delivery: &Delivery,
        row: &OutboundRow,
    ) -> Result<(), SendError> {
        let msg = &env.body;
        if row.sent_recently {
            let event = DashboardEvent::new(msg.restaurant_id, EventType::MessageSent, row.view());
            self.publish_event(env, sent_event_id(msg.message_id), event)
                .await?;
        } else if row.failed_recently {
            let reason = row
                .error_message
                .clone()
                .unwrap_or_else(|| "failed".to_string());
            let code = row.error_code.as_deref().and_then(|c| c.parse().ok());
            self.dead_letter(env, delivery, &reason, code).await?;
            self.publish_status(env, &row.status_change()).await?;
        }
        Ok(())
    }

    /// Gives up on a message on purpose: the row says failed and why, the
    /// dead-letter stream has the envelope, dashboards hear it. Then ack.
    async fn fail(
        &self,
        env: &Env,
        delivery: &Delivery,
        why: FailReason,
        code: Option<i64>,
        reason: &str,
    ) -> Result<Outcome, SendError> {
        let msg = &env.body;
        let failed_rank = status_rank(decision::FAILED).unwrap_or(4);
        let code_text = code.map(|c| c.to_string());
        let change = store::mark_failed(
            &self.pool,
            msg.message_id,
            failed_rank,
            code_text.as_deref(),
            &decision::error_message(reason),
        )
        .await?;
        self.dead_letter(env, delivery, reason, code).await?;
        if let Some(change) = change {
            self.publish_status(env, &change).await?;
        }
        count_failed(why);
        tracing::warn!(message_id = %msg.message_id, code = ?code, reason, delivered = delivery.delivered,
            "message failed");
        Ok(Outcome::Ack)
    }

    async fn dead_letter(
        &self,
        env: &Env,
        delivery: &Delivery,
        reason: &str,
        error_code: Option<i64>,
    ) -> Result<(), SendError> {
        let letter = DeadLetter {
            stage: STAGE.to_string(),
            reason: reason.to_string(),
            error_code,
            original_subject: delivery.subject.clone(),
            original: env.encode()?,
            attempts: delivery.delivered,
            failed_at: Utc::now(),
        };
        let topology = self.bus.topology();
        let letter = env.follow(format!("dlq:{STAGE}:{}", env.body.message_id), letter);
        self.bus
            .publish(topology.dead_letter(STAGE), &letter)
            .await?;
        Ok(())
    }

    async fn publish_status(&self, env: &Env, change: &StatusChange) -> Result<(), SendError> {
        let id = format!("message.status:{}:{}", change.message_id, change.status);
        let event = DashboardEvent::new(change.restaurant_id, EventType::MessageStatus, change);
        self.publish_event(env, id, event).await
    }

    async fn publish_event(
        &self,
        env: &Env,
        id: String,
        event: DashboardEvent,
    ) -> Result<(), SendError> {
        let subject = event.subject(self.bus.topology());
        self.bus.publish(subject, &env.follow(id, event)).await?;
        Ok(())
    }
}

fn sent_event_id(message_id: Uuid) -> String {
    format!("message.sent:{message_id}")
}

fn count_failed(why: FailReason) {
    metrics::counter!("waiter_outbound_failed_total", "reason" => why.label()).increment(1);
}

impl Handler for SendHandler {
    type Message = OutboundMessage;

    async fn handle(&self, env: Env, delivery: Delivery) -> Outcome {
        match self.try_handle(&env, &delivery).await {
            Ok(outcome) => outcome,
            Err(e) if e.is_transient() => {
                metrics::counter!("waiter_outbound_retries_total").increment(1);
                Outcome::retry(e)
            }
            Err(e) => {
                let reason = format!("cannot handle message {}: {e}", env.body.message_id);
                if let Err(dlq) = self.dead_letter(&env, &delivery, &reason, None).await {
                    tracing::error!(error = %dlq, "cannot dead-letter; retrying instead");
                    return Outcome::retry(reason);
                }
                count_failed(FailReason::Internal);
                Outcome::reject(reason)
            }
        }
    }
}
