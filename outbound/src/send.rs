//! Sending: one OutboundMessage (already a `pending` row in `messages`)
//! becomes one Messages API request, its sid recorded before the ack.

use std::{sync::Arc, time::Duration};

use secrecy::ExposeSecret;
use uuid::Uuid;
use waiter_migrations::{consent, Restaurant};
use waiter_nats::{
    events::{DashboardEvent, EventType},
    messages::OutboundMessage,
    worker::{lane_of, Backoff, LimitShare},
    Bus, BusError, Delivery, Envelope, Failure, Handler, LaneHandler, LetterContext, Outcome,
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
    /// How long one attempt may wait in place for the tenant's rate limit.
    pub rate_limit_wait: Duration,
}

/// How long recording a sid after Twilio's 201 may take, retries
/// included (see [`SendHandler::record_sent`]).
pub const RECORD_SID_BUDGET: Duration = Duration::from_millis(3200);

/// Why handling failed in a way the handler did not decide itself.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl From<SendError> for Failure {
    /// Constraint violations and encoding failures will fail again; the
    /// rest (database or broker unreachable) may pass later.
    fn from(e: SendError) -> Self {
        match e {
            SendError::Db(e) => Failure::from(e),
            SendError::Bus(e) => Failure::from(e),
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
}

impl FailReason {
    fn label(self) -> &'static str {
        match self {
            FailReason::Permanent => "permanent",
            FailReason::RetriesExhausted => "retries_exhausted",
            FailReason::MissingRow => "missing_row",
            FailReason::UnknownRestaurant => "unknown_restaurant",
            FailReason::Mismatch => "mismatch",
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
    /// Calls made to Twilio per message: what `OUTBOUND_MAX_ATTEMPTS`
    /// counts (not rate-limit waits, not database retries).
    twilio_calls: moka::future::Cache<Uuid, u32>,
    /// This replica's part of each restaurant's rate.
    share: LimitShare,
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
            twilio_calls: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            share: LimitShare::whole(),
        }
    }

    /// Sends each restaurant's messages at this replica's part of its rate.
    pub fn sharing(mut self, share: LimitShare) -> Self {
        self.share = share;
        self
    }

    async fn try_handle(&self, env: &Env, delivery: &Delivery) -> Result<Outcome, SendError> {
        let msg = &env.body;

        // 1. The row: it decides whether this delivery sends at all.
        let Some(row) = store::load(&self.pool, msg.message_id).await? else {
            if i64::from(delivery.attempt) < self.settings.missing_row_attempts {
                // The writer's transaction may not have committed yet.
                return Ok(Outcome::transient(format!(
                    "message {} has no row yet",
                    msg.message_id
                )));
            }
            count_failed(FailReason::MissingRow);
            return Ok(Outcome::DeadLetter(self.failure(
                env,
                format!(
                    "message {} has no row in messages after {} attempts",
                    msg.message_id, delivery.attempt
                ),
                None,
            )));
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
            count_failed(FailReason::Mismatch);
            return Ok(Outcome::DeadLetter(self.failure(env, reason, None)));
        }
        if already_handled(&row.status, row.wa_sid.as_deref()) {
            tracing::debug!(message_id = %msg.message_id, status = %row.status,
                "already handled; not sending again");
            return self.finish_earlier_attempt(env, &row).await;
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
                    .fail(env, FailReason::UnknownRestaurant, None, &reason)
                    .await;
            }
            Err(e @ TenantError::Db(_)) => return Ok(Outcome::transient(e)),
        };
        if !valid_account_sid(&restaurant.twilio_account_sid) {
            let reason = format!(
                "restaurant {} has an unusable Twilio account sid",
                restaurant.id
            );
            return self.fail(env, FailReason::Permanent, None, &reason).await;
        }

        let auth_token = match self.tenants.auth_token(&restaurant) {
            Ok(token) => token,
            Err(e) => {
                // A configuration problem (the key is not in WAITER_SECRET_KEY):
                // dead-lettered with the reason, `just dlq-retry` once fixed.
                tracing::error!(restaurant = %restaurant.id, error = %e, "cannot open the auth token");
                let reason = e.to_string();
                return self.fail(env, FailReason::Permanent, None, &reason).await;
            }
        };

        // 3. The restaurant's rate limit. Short waits happen here; a longer
        // one defers the message in place: its conversation waits (order
        // kept), the other conversations go on, and it is not an attempt.
        if let Some(delay) = self.wait_for_quota(&restaurant).await {
            metrics::counter!("waiter_outbound_rate_limited_total", "restaurant" => restaurant.id.to_string())
                .increment(1);
            return Ok(Outcome::defer(
                delay,
                format!("restaurant {} is over its outbound rate", restaurant.id),
            ));
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
        // Calls before this one: those this process made, or at least one per
        // earlier delivery (a crashed process made them).
        let earlier = u32::try_from(delivery.delivered - 1).unwrap_or(0);
        let calls = self
            .twilio_calls
            .get(&msg.message_id)
            .await
            .unwrap_or(0)
            .max(earlier)
            + 1;
        self.twilio_calls.insert(msg.message_id, calls).await;
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
                match after_transient(i64::from(calls), self.settings.max_attempts) {
                    AfterTransient::Retry => {
                        metrics::counter!("waiter_outbound_retries_total").increment(1);
                        tracing::info!(message_id = %msg.message_id, calls,
                            code = ?code, reason = %reason, "transient Twilio failure; will retry");
                        if let Some(wait) = answer.retry_after() {
                            // Twilio said when: the restaurant's sends wait
                            // that long on this replica, and this message
                            // comes back then (the call already counted).
                            self.tenants.pause(restaurant.id, wait);
                            return Ok(Outcome::defer(wait, reason));
                        }
                        let failure = Failure::transient(reason);
                        Ok(Outcome::Retry(match code {
                            Some(code) => failure.with_code(code),
                            None => failure,
                        }))
                    }
                    AfterTransient::GiveUp => {
                        let reason = format!("gave up after {calls} attempts: {reason}");
                        self.fail(env, FailReason::RetriesExhausted, code, &reason)
                            .await
                    }
                }
            }
            Verdict::Permanent { code, reason } => {
                if code == Some(20003) {
                    // Credentials may have been rotated since we cached them.
                    self.tenants.forget(restaurant.id).await;
                }
                self.fail(env, FailReason::Permanent, code, &reason).await
            }
        }
    }

    /// A failure of this message, with who it concerns.
    fn failure(&self, env: &Env, reason: String, code: Option<i64>) -> Failure {
        let failure = Failure::permanent(reason).with_context(LetterContext {
            restaurant_id: Some(env.body.restaurant_id),
            conversation_id: Some(env.body.conversation_id),
            recipient: Some(env.body.to.clone()),
        });
        match code {
            Some(code) => failure.with_code(code),
            None => failure,
        }
    }

    /// Waits for a free slot of the restaurant's quota for up to the
    /// configured budget. `Some(delay)` when the message should come back
    /// later instead.
    async fn wait_for_quota(&self, restaurant: &Restaurant) -> Option<Duration> {
        let mut waited = Duration::ZERO;
        loop {
            let wait = match self.tenants.try_acquire(
                restaurant.id,
                restaurant.outbound_rate_per_second,
                self.share.get(),
            ) {
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
        // Five tries over at most 3.1 s, jittered like every other retry.
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        let mut attempt = 0;
        let view = loop {
            attempt += 1;
            match store::mark_sent(&self.pool, msg.message_id, sid, queued_rank).await {
                Ok(view) => break view,
                Err(e) if attempt <= 5 => {
                    tracing::warn!(message_id = %msg.message_id, sid, error = %e,
                        "cannot record the sid yet; trying again");
                    tokio::time::sleep(backoff.jittered(attempt)).await;
                }
                Err(e) => {
                    tracing::error!(message_id = %msg.message_id, sid, error = %e,
                        "Twilio took the message but its sid is not recorded");
                    return Err(e.into());
                }
            }
        };
        self.unrecorded.invalidate(&msg.message_id).await;
        metrics::counter!("waiter_outbound_sent_total", "restaurant" => msg.restaurant_id.to_string())
            .increment(1);
        match view {
            Some(view) => {
                // Per message: the stream, the metrics and `just trace` tell it.
                tracing::debug!(message_id = %msg.message_id, sid, "sent");
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
    /// would have (same ids, so JetStream drops copies) and give the same
    /// answer (a failed message is dead-lettered again: the letter's id is
    /// its stream sequence, so a second copy is dropped too).
    async fn finish_earlier_attempt(
        &self,
        env: &Env,
        row: &OutboundRow,
    ) -> Result<Outcome, SendError> {
        let msg = &env.body;
        if row.sent_recently {
            let event = DashboardEvent::new(msg.restaurant_id, EventType::MessageSent, row.view());
            self.publish_event(env, sent_event_id(msg.message_id), event)
                .await?;
        } else if row.failed_recently {
            self.publish_status(env, &row.status_change()).await?;
            let reason = row
                .error_message
                .clone()
                .unwrap_or_else(|| "failed".to_string());
            let code = row.error_code.as_deref().and_then(|c| c.parse().ok());
            return Ok(Outcome::DeadLetter(self.failure(env, reason, code)));
        }
        Ok(Outcome::Ack)
    }

    /// Gives up on a message on purpose: the row says failed and why,
    /// dashboards hear it, and the loop dead-letters the envelope.
    async fn fail(
        &self,
        env: &Env,
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
        if let Some(change) = change {
            self.publish_status(env, &change).await?;
        }
        if code_text.as_deref() == Some(consent::UNSUBSCRIBED_ERROR) {
            consent::unsubscribed_by_twilio(&self.pool, msg.conversation_id).await?;
        }
        count_failed(why);
        tracing::warn!(message_id = %msg.message_id, code = ?code, reason, "message failed");
        Ok(Outcome::DeadLetter(self.failure(
            env,
            reason.to_string(),
            code,
        )))
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
            Err(e) => {
                metrics::counter!("waiter_outbound_retries_total").increment(1);
                let failure = Failure::from(e).with_context(LetterContext {
                    restaurant_id: Some(env.body.restaurant_id),
                    conversation_id: Some(env.body.conversation_id),
                    recipient: Some(env.body.to.clone()),
                });
                Outcome::Retry(failure)
            }
        }
    }
}

/// One conversation's replies leave in order; conversations in parallel.
impl LaneHandler for SendHandler {
    fn lane(&self, message: &OutboundMessage) -> u64 {
        lane_of(&message.conversation_id)
    }
}
