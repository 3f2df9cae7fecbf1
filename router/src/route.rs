//! The routing decision for one inbound message.

use std::{sync::Arc, time::Duration};

use moka::future::Cache;
use sqlx::PgPool;
use waiter_migrations::Restaurant;
use waiter_nats::{
    messages::{ConversationInput, CustomerMessage, InboundMessage, WebhookOutcome},
    worker::LimitShare,
    Bus, BusError, EncodedMessage, Envelope, Failure, LetterContext, Outcome,
};

use crate::{audit::AuditRecord, limits::InboundLimits};

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
    pub(crate) fn outcome(&self) -> WebhookOutcome {
        match self {
            Refusal::UnknownNumber => WebhookOutcome::UnknownNumber,
            Refusal::AccountMismatch | Refusal::ServiceMismatch => WebhookOutcome::AccountMismatch,
            Refusal::Disabled => WebhookOutcome::Disabled,
        }
    }

    pub(crate) fn reason(&self) -> &'static str {
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
    pub(crate) bus: Bus,
    pub(crate) pool: PgPool,
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
}

/// What the router decided about one message, before anything is written.
pub(crate) enum Verdict {
    Refused {
        restaurant: Option<Arc<Restaurant>>,
        refusal: Refusal,
    },
    Forward {
        restaurant: Arc<Restaurant>,
        /// Why the bot will not answer (over an inbound limit).
        limited: Option<String>,
    },
}

impl Verdict {
    pub(crate) fn restaurant(&self) -> Option<&Restaurant> {
        match self {
            Verdict::Refused { restaurant, .. } => restaurant.as_deref(),
            Verdict::Forward { restaurant, .. } => Some(restaurant),
        }
    }

    pub(crate) fn outcome(&self) -> WebhookOutcome {
        match self {
            Verdict::Refused { refusal, .. } => refusal.outcome(),
            Verdict::Forward { limited: None, .. } => WebhookOutcome::Accepted,
            Verdict::Forward {
                limited: Some(_), ..
            } => WebhookOutcome::RateLimited,
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Refused { refusal, .. } => Some(refusal.reason()),
            Verdict::Forward { limited, .. } => limited.as_deref(),
        }
    }

    /// The audit row of `envelope` under this verdict (`event_id` is
    /// [`event_id`] of it).
    pub(crate) fn audit<'a>(
        &'a self,
        envelope: &'a Envelope<InboundMessage>,
        event_id: &'a str,
    ) -> AuditRecord<'a> {
        let m = &envelope.body;
        AuditRecord {
            event_id,
            endpoint: "message",
            restaurant_id: self.restaurant().map(|r| r.id),
            account_sid: Some(&m.account_sid),
            message_sid: Some(&m.message_sid),
            outcome: self.outcome(),
            reason: self.reason(),
            params: &m.params,
            received_at: m.received_at,
        }
    }

    /// Who a dead letter of this message concerns.
    pub(crate) fn context(&self, message: &InboundMessage) -> LetterContext {
        LetterContext {
            restaurant_id: self.restaurant().map(|r| r.id),
            recipient: Some(message.from.clone()),
            ..LetterContext::default()
        }
    }
}

/// The idempotency key of a message's audit row.
pub(crate) fn event_id(message: &InboundMessage) -> String {
    format!("inbound:{}", message.message_sid)
}

impl Router {
    /// Decides about one message: its restaurant (cached), whether it may
    /// enter, and the inbound limits. Only the restaurant lookup can fail.
    pub(crate) async fn decide(&self, message: &InboundMessage) -> Result<Verdict, Outcome> {
        let restaurant = match self.restaurant(&message.to).await {
            Ok(found) => found,
            Err(e) => {
                return Err(Outcome::Retry(
                    Failure::from(e).while_doing("restaurant lookup"),
                ))
            }
        };
        let restaurant = match restaurant {
            None => {
                return Ok(Verdict::Refused {
                    restaurant: None,
                    refusal: Refusal::UnknownNumber,
                })
            }
            Some(r) => match admit(&r, message) {
                Ok(()) => r,
                Err(refusal) => {
                    return Ok(Verdict::Refused {
                        restaurant: Some(r),
                        refusal,
                    })
                }
            },
        };
        let decision = self.limits.check(
            restaurant.id,
            restaurant.restaurant_rate_per_minute.max(1) as u32,
            restaurant.customer_rate_per_minute.max(1) as u32,
            &message.from,
            self.share.get(),
            message.received_at,
        );
        let limited = decision.reason().map(str::to_string);
        Ok(Verdict::Forward {
            restaurant,
            limited,
        })
    }

    /// The conversation input a forwarded message becomes, encoded for its
    /// partition of CONV (its id is the MessageSid, so a second forward of
    /// it is stored once).
    pub(crate) fn forward(
        &self,
        envelope: &Envelope<InboundMessage>,
        restaurant: &Restaurant,
        limited: Option<String>,
    ) -> Result<EncodedMessage, BusError> {
        let message = &envelope.body;
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
        EncodedMessage::of(topology.conversation(partition), &forward)
    }
}
