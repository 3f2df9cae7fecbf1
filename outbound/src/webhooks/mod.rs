//! Delivering order events to the restaurants' webhook endpoints
//! (Standard Webhooks): one message of the WEBHOOKS stream is one order
//! event for one endpoint, posted as JSON with `webhook-id` (the event's,
//! the same on every attempt), `webhook-timestamp` and `webhook-signature`
//! (signed at each attempt). Keyed lanes per (order, endpoint): an order's
//! events reach an endpoint in order, and an endpoint that keeps failing
//! holds up only its own lanes. 408, 429, 5xx, timeouts and refused
//! connections are retried in place with the worker's backoff and
//! dead-lettered (stage `webhooks`) at the last attempt
//! (`WEBHOOK_MAX_ATTEMPTS`); other answers are permanent failures.

pub mod answer;

use std::{sync::Arc, time::Duration};

use secrecy::ExposeSecret;
use sqlx::PgPool;
use waiter_migrations::webhooks::{endpoint_with_secret, WebhookError};
use waiter_nats::{
    webhooks::OrderWebhook, worker::lane_of, Delivery, Envelope, Failure, Handler, LaneHandler,
    LetterContext, Outcome,
};
use waiter_secrets::{webhook::sign, Keyring};

use self::answer::{judge, Judgement, Posted};

/// The consumer group, its consumers' prefix and the dead letters' stage.
pub const STAGE: &str = "webhooks";

/// How deliveries behave; from [`crate::Config`].
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Posts of one event to one endpoint before it is dead-lettered.
    pub max_attempts: u32,
    /// Timeout of one post.
    pub timeout: Duration,
}

pub struct WebhookHandler {
    pool: PgPool,
    keys: Keyring,
    client: reqwest::Client,
    settings: WebhookSettings,
}

impl WebhookHandler {
    pub fn new(
        pool: PgPool,
        keys: Keyring,
        settings: WebhookSettings,
    ) -> Result<Arc<Self>, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Waiter-Webhooks/1")
            .build()?;
        Ok(Arc::new(Self {
            pool,
            keys,
            client,
            settings,
        }))
    }

    async fn post(&self, url: &str, secret: &str, hook: &OrderWebhook) -> Result<Posted, Failure> {
        let body = hook.body();
        let timestamp = chrono::Utc::now().timestamp();
        let signature = sign(secret, &hook.webhook_id, timestamp, &body)
            .map_err(|e| Failure::permanent(format!("endpoint secret: {e}")))?;
        let answer = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &hook.webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        Ok(match answer {
            Ok(answer) => Posted::Status(answer.status().as_u16()),
            Err(e) if e.is_timeout() => Posted::TimedOut,
            // Without the URL, which may carry the receiver's own token.
            Err(e) => Posted::Unreachable(e.without_url().to_string()),
        })
    }
}

impl Handler for WebhookHandler {
    type Message = OrderWebhook;

    async fn handle(&self, envelope: Envelope<OrderWebhook>, delivery: Delivery) -> Outcome {
        let hook = &envelope.body;
        let context = LetterContext {
            restaurant_id: Some(hook.restaurant_id),
            conversation_id: Some(hook.order.conversation_id),
            recipient: None,
        };
        let counted = |outcome: &'static str| {
            metrics::counter!("waiter_webhook_posts_total", "outcome" => outcome).increment(1);
        };
        let (endpoint, secret) =
            match endpoint_with_secret(&self.pool, &self.keys, hook.endpoint_id).await {
                Ok(Some(found)) => found,
                Ok(None) => {
                    // Removed since: nobody to tell any more.
                    counted("endpoint_removed");
                    return Outcome::Ack;
                }
                Err(WebhookError::Database(e)) => {
                    return Outcome::Retry(
                        Failure::from(e)
                            .while_doing("webhook endpoint")
                            .with_context(context),
                    )
                }
                Err(e) => return Outcome::DeadLetter(Failure::permanent(e).with_context(context)),
            };
        let posted = match self.post(&endpoint.url, secret.expose_secret(), hook).await {
            Ok(posted) => posted,
            Err(failure) => return Outcome::DeadLetter(failure.with_context(context)),
        };
        let what = format!(
            "{} {} to endpoint {}, attempt {} of {}",
            hook.event.as_str(),
            hook.webhook_id,
            endpoint.id,
            delivery.attempt,
            self.settings.max_attempts
        );
        match judge(&posted, self.settings.timeout) {
            Judgement::Delivered => {
                counted("delivered");
                Outcome::Ack
            }
            Judgement::Retry { reason, code } => {
                counted("retry");
                tracing::info!(endpoint = %endpoint.id, webhook_id = %hook.webhook_id,
                    attempt = delivery.attempt, %reason, "webhook not taken");
                let mut failure =
                    Failure::transient(format!("{what}: {reason}")).with_context(context);
                if let Some(code) = code {
                    failure = failure.with_code(code);
                }
                if delivery.attempt >= self.settings.max_attempts {
                    Outcome::DeadLetter(failure)
                } else {
                    Outcome::Retry(failure)
                }
            }
            Judgement::Refused { reason, code } => {
                counted("refused");
                Outcome::Retry(
                    Failure::permanent(format!("{what}: {reason}"))
                        .with_code(code)
                        .with_context(context),
                )
            }
        }
    }
}

impl LaneHandler for WebhookHandler {
    fn lane(&self, hook: &OrderWebhook) -> u64 {
        lane_of(&(hook.order_id, hook.endpoint_id))
    }
}
