//! The routing decision for one inbound message.

use std::{sync::Arc, time::Duration};

use moka::future::Cache;
use sqlx::PgPool;
use waiter_migrations::Restaurant;
use waiter_nats::{
    messages::{ConversationInput, CustomerMessage, InboundMessage, WebhookOutcome},
    worker::LimitShare,
    Bus, Delivery, Envelope, Failure, Handler, LetterContext, Outcome,
};

use crate::{
    audit::{self, AuditRecord},
    limits::InboundLimits,
};

/// Why a message is not forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownNumber,
    AccountMismatch,
    ServiceMismatch,
    /// An operator disabled the restaurant (`waiterctl restaurant disable`).
    Disabled,
}

impl Refusal {
    fn outcome(&self) -> WebhookOutcome {
        match self {
            Refusal::UnknownNumber => WebhookOutcome::UnknownNumber,
            Refusal::AccountMismatch | Refusal::ServiceMismatch => WebhookOutcome::AccountMismatch,
            Refusal::Disabled => WebhookOutcome::Disabled,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Refusal::UnknownNumber => "no restaurant has this WhatsApp number",
            Refusal::AccountMismatch => {
                "the request's AccountSid is not this restaurant's Twilio account"
            }
            Refusal::ServiceMismatch => {
                "the request's MessagingServiceSid is not this restaurant's"
            }
            Refusal::Disabled => "the restaurant is disabled: not routed, not answered",
        }
    }
}

/// Checks that a message may enter this restaurant: the account that signed
/// the request must be the restaurant's own, and a messaging service, when
/// both sides name one, must agree; a disabled restaurant takes nothing
/// (the request is still audited, so nothing is lost from its history).
pub fn admit(restaurant: &Restaurant, message: &InboundMessage) -> Result<(), Refusal> {
    if restaurant.twilio_account_sid != message.account_sid {
        return Err(Refusal::AccountMismatch);
    }
    if restaurant.is_disabled() {
        return Err(Refusal::Disabled);
    }
    if let (Some(theirs), Some(ours)) = (
        &message.messaging_service_sid,
        &restaurant.messaging_service_sid,
    ) {
        if theirs != ours {
            return Err(Refusal::ServiceMismatch);
        }
    }
    Ok(())
}

pub struct Router {
    bus: Bus,
    pool: PgPool,
    by_number: Cache<String, Option<Arc<Restaurant>>>,
    limits: InboundLimits,
    /// This replica's part of each restaurant's inbound limit.
    share: LimitShare,
}

impl Router {
    /// Limits each restaurant's inbound messages to this replica's part.
    pub fn sharing(mut self, share: LimitShare) -> Self {
        self.share = share;
        self
    }

    pub fn new(bus: Bus, pool: PgPool, ttl: Duration) -> Self {
        Self {
            bus,
            pool,
            by_number: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
            limits: InboundLimits::default(),
            share: LimitShare::whole(),
        }
    }

    async fn restaurant(&self, number: &str) -> Result<Option<Arc<Restaurant>>, sqlx::Error> {
        if let Some(hit) = self.by_number.get(number).await {
            return Ok(hit);
        }
        let found = waiter_migrations::restaurants::by_number(&self.pool, number)
            .await?
            .map(Arc::new);
        self.by_number
            .insert(number.to_string(), found.clone())
            .await;
        Ok(found)
    }

    async fn audit(
        &self,
        envelope: &Envelope<InboundMessage>,
        restaurant: Option<&Restaurant>,
        outcome: WebhookOutcome,
        reason: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let m = &envelope.body;
        audit::record(
            &self.pool,
            AuditRecord {
                event_id: &format!("inbound:{}", m.message_sid),
                endpoint: "message",
                restaurant_id: restaurant.map(|r| r.id),
                account_sid: Some(&m.account_sid),
                message_sid: Some(&m.message_sid),
                outcome,
                reason,
                params: &m.params,
                received_at: m.received_at,
            },
        )
        .await
    }
}

impl Router {
    /// Audits a refused message and acknowledges it: it can never be
    /// routed, and the audit row is its record (a dead letter per spam
    /// message to an unknown number would let anyone fill that stream).
    async fn refuse(
        &self,
        envelope: &Envelope<InboundMessage>,
        restaurant: Option<&Restaurant>,
        refusal: Refusal,
    ) -> Outcome {
        let m = &envelope.body;
        tracing::warn!(to = %m.to, account = %m.account_sid, sid = %m.message_sid,
            reason = refusal.reason(), "inbound message refused");
        match self
            .audit(
                envelope,
                restaurant,
                refusal.outcome(),
                Some(refusal.reason()),
            )
            .await
        {
            Ok(()) => {
                metrics::counter!("waiter_router_refused_total", "outcome" => refusal.outcome().as_str())
                    .increment(1);
                Outcome::Ack
            }
            Err(e) => Outcome::Retry(Failure::from(e).while_doing("audit").with_context(
                LetterContext {
                    restaurant_id: restaurant.map(|r| r.id),
                    recipient: Some(envelope.body.from.clone()),
                    ..LetterContext::default()
                },
            )),
        }
    }
}

impl Handler for Router {
    type Message = InboundMessage;

    async fn handle(&self, envelope: Envelope<InboundMessage>, _delivery: Delivery) -> Outcome {
        let message = &envelope.body;
        let restaurant = match self.restaurant(&message.to).await {
            Ok(found) => found,
            Err(e) => return Outcome::Retry(Failure::from(e).while_doing("restaurant lookup")),
        };
        let restaurant = match restaurant {
            None => return self.refuse(&envelope, None, Refusal::UnknownNumber).await,
            Some(r) => match admit(&r, message) {
                Ok(()) => r,
                Err(refusal) => return self.refuse(&envelope, Some(&r), refusal).await,
            },
        };
        let decision = self.limits.check(
            restaurant.id,
            restaurant.restaurant_rate_per_minute.max(1) as u32,
            restaurant.customer_rate_per_minute.max(1) as u32,
            &message.from,
            self.share.get(),
        );
        let limited = decision.reason().map(str::to_string);
        let (outcome, reason) = match &limited {
            None => (WebhookOutcome::Accepted, None),
            Some(reason) => (WebhookOutcome::RateLimited, Some(reason.as_str())),
        };
        let context = LetterContext {
            restaurant_id: Some(restaurant.id),
            recipient: Some(message.from.clone()),
            ..LetterContext::default()
        };
        if let Err(e) = self
            .audit(&envelope, Some(&restaurant), outcome, reason)
            .await
        {
            return Outcome::Retry(Failure::from(e).while_doing("audit").with_context(context));
        }
        let topology = self.bus.topology();
        let customer = message.from.clone();
        let partition = topology.conversation_partition(&restaurant.id, &customer);
        let input = ConversationInput::Customer(Box::new(CustomerMessage {
            restaurant_id: restaurant.id,
            customer,
            limited,
            inbound: message.clone(),
        }));
        let forward = envelope.follow(message.message_sid.clone(), input);
        match self
            .bus
            .publish(topology.conversation(partition), &forward)
            .await
        {
            Ok(_) => {
                metrics::counter!("waiter_router_forwarded_total", "outcome" => outcome.as_str())
                    .increment(1);
                Outcome::Ack
            }
            Err(e) => Outcome::Retry(
                Failure::from(e)
                    .while_doing("forward")
                    .with_context(context),
            ),
        }
    }
}
