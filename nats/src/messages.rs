//! Payloads that travel between stages.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::Payload;

// ---------------------------------------------------------------- ingest

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Media {
    pub url: String,
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub address: Option<String>,
    pub label: Option<String>,
}

/// A tap on a quick-reply button.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ButtonReply {
    pub text: Option<String>,
    pub payload: Option<String>,
    pub button_type: Option<String>,
}

/// A choice from a list picker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ListReply {
    pub id: String,
    pub title: Option<String>,
}

/// An inbound WhatsApp message as Twilio posted it to `/whatsapp/webhook`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct InboundMessage {
    pub message_sid: String,
    pub account_sid: String,
    pub messaging_service_sid: Option<String>,
    /// `whatsapp:+E164` or `whatsapp:<business-scoped id>`: never assume a phone.
    pub from: String,
    pub to: String,
    /// The text as shown and stored. PostgreSQL text cannot hold U+0000, so
    /// ingest replaces each NUL (in this and every other field) with U+FFFD.
    pub body: String,
    /// Base64 of the `Body` exactly as received, only when it differs from
    /// `body` (it carried a NUL); stored in `messages.body_original`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_original: Option<String>,
    pub profile_name: Option<String>,
    pub wa_id: Option<String>,
    pub message_type: Option<String>,
    pub media: Vec<Media>,
    pub location: Option<Location>,
    pub button: Option<ButtonReply>,
    pub list_reply: Option<ListReply>,
    pub original_replied_message_sid: Option<String>,
    pub external_user_id: Option<String>,
    pub parent_external_user_id: Option<String>,
    pub forwarded: bool,
    pub frequently_forwarded: bool,
    /// Click-to-WhatsApp ad fields (`ReferralBody`, ...), by name.
    pub referral: BTreeMap<String, String>,
    /// Every parameter as received, in order, for the audit trail.
    pub params: Vec<(String, String)>,
    pub received_at: DateTime<Utc>,
}

impl Payload for InboundMessage {
    const KIND: &'static str = "ingest.inbound";
}

/// A status callback for a message we sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct StatusCallback {
    pub message_sid: String,
    pub account_sid: String,
    pub status: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub params: Vec<(String, String)>,
    pub received_at: DateTime<Utc>,
}

impl Payload for StatusCallback {
    const KIND: &'static str = "ingest.status";
}

/// What happened to one webhook request, as the audit log records it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum WebhookOutcome {
    Accepted,
    Duplicate,
    BadSignature,
    UnknownAccount,
    UnknownNumber,
    AccountMismatch,
    RateLimited,
    Malformed,
    TooLarge,
    /// The restaurant is disabled.
    Disabled,
}

impl WebhookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Accepted => "accepted",
            WebhookOutcome::Duplicate => "duplicate",
            WebhookOutcome::BadSignature => "bad_signature",
            WebhookOutcome::UnknownAccount => "unknown_account",
            WebhookOutcome::UnknownNumber => "unknown_number",
            WebhookOutcome::AccountMismatch => "account_mismatch",
            WebhookOutcome::RateLimited => "rate_limited",
            WebhookOutcome::Malformed => "malformed",
            WebhookOutcome::TooLarge => "too_large",
            WebhookOutcome::Disabled => "disabled",
        }
    }
}

/// Refused (or duplicate) webhooks of one kind from one source address in
/// one minute, as one ingest process counted them: ingest publishes counts
/// and a few truncated samples, never every request, so unsigned traffic
/// cannot fill the broker or the database.
///
/// `count` and `samples` are cumulative for (`ingest_id`, `minute`,
/// `endpoint`, `outcome`, `source`): a later report replaces an earlier one,
/// so storing them is idempotent and order does not matter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RefusedWebhooks {
    /// The ingest process that counted (random per start).
    pub ingest_id: Uuid,
    /// The start of the minute.
    pub minute: DateTime<Utc>,
    /// `message` or `status`.
    pub endpoint: String,
    pub outcome: WebhookOutcome,
    /// The client address (or `other` past the per-minute cap of sources).
    pub source: String,
    /// The reason of the first refusal counted.
    pub reason: String,
    pub count: u64,
    /// Requests answered without a sample or a log line because their
    /// source was over its per-minute threshold.
    pub throttled: u64,
    pub samples: Vec<RefusedSample>,
}

impl Payload for RefusedWebhooks {
    const KIND: &'static str = "ingest.refused";
}

/// One refused request, truncated: a bounded number of parameters, each
/// name and value cut to a bounded length, NUL replaced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct RefusedSample {
    pub reason: String,
    pub account_sid: Option<String>,
    pub message_sid: Option<String>,
    pub to: Option<String>,
    pub params: Vec<(String, String)>,
    /// Parameters left out past the cap.
    pub params_dropped: usize,
    pub received_at: DateTime<Utc>,
}

// ---------------------------------------------------------- conversation

/// Everything that happens to one conversation travels on its partition of
/// the conversation stream, so it is handled in order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConversationInput {
    Customer(Box<CustomerMessage>),
    StaffReply(StaffReply),
    SetBotActive(SetBotActive),
    OrderChanged(OrderNotice),
    /// The order stage refused to place an order; the bot tells the customer why.
    OrderRefused(OrderRefusal),
}

impl Payload for ConversationInput {
    const KIND: &'static str = "conv.input";
}

/// A customer's message, routed to its restaurant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CustomerMessage {
    pub restaurant_id: Uuid,
    /// The customer's address as the conversation key (`From`).
    pub customer: String,
    /// Set when the message is over an inbound limit: it is stored and
    /// shown, but the bot does not answer it.
    pub limited: Option<String>,
    pub inbound: InboundMessage,
}

/// A message staff typed on the dashboard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StaffReply {
    pub message_id: Uuid,
    pub restaurant_id: Uuid,
    pub conversation_id: Uuid,
    pub staff: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SetBotActive {
    pub restaurant_id: Uuid,
    pub conversation_id: Uuid,
    pub active: bool,
    pub actor: String,
}

/// An order changed state; the conversation tells the customer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderNotice {
    pub restaurant_id: Uuid,
    pub conversation_id: Uuid,
    pub order_id: Uuid,
    pub order_number: i64,
    pub status: OrderStatus,
    pub previous: Option<OrderStatus>,
    pub rating: Option<i16>,
    /// The command that caused the change (the notice's idempotency key).
    pub command_id: Uuid,
}

/// A placement the order stage refused, with what the customer needs to
/// hear and the cart to give back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderRefusal {
    pub restaurant_id: Uuid,
    pub conversation_id: Uuid,
    pub order_id: Uuid,
    pub reason: RefusalReason,
    pub lines: Vec<CartLine>,
    /// The refused placement command (the notice's idempotency key).
    pub command_id: Uuid,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RefusalReason {
    /// The branch was closed when the order was confirmed.
    BranchClosed {
        branch_id: Uuid,
        /// When it opens next, if within the schedule's lookahead.
        opens_at: Option<DateTime<Utc>>,
    },
}

// ----------------------------------------------------------------- order

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Draft,
    Confirmed,
    Preparing,
    OutForDelivery,
    Delivered,
    Rated,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::Draft,
        OrderStatus::Confirmed,
        OrderStatus::Preparing,
        OrderStatus::OutForDelivery,
        OrderStatus::Delivered,
        OrderStatus::Rated,
        OrderStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Draft => "DRAFT",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Preparing => "PREPARING",
            OrderStatus::OutForDelivery => "OUT_FOR_DELIVERY",
            OrderStatus::Delivered => "DELIVERED",
            OrderStatus::Rated => "RATED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Fulfilment {
    Delivery,
    Pickup,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    Cash,
    Online,
}

/// Who asked for a change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// The customer, through the bot.
    Customer(String),
    /// A dashboard user (the JWT's `sub`).
    Staff(String),
    /// Waiter itself (timers, the rating flow).
    System,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Customer(id) => format!("customer:{id}"),
            Actor::Staff(id) => format!("staff:{id}"),
            Actor::System => "system".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CartLine {
    pub item_id: Uuid,
    pub quantity: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum OrderAction {
    /// Create the order as a DRAFT from a cart.
    Place {
        conversation_id: Uuid,
        fulfilment: Fulfilment,
        branch_id: Option<Uuid>,
        address: Option<String>,
        payment: PaymentMethod,
        lines: Vec<CartLine>,
    },
    /// Move to a new status (CONFIRMED, PREPARING, ..., CANCELLED).
    Transition {
        to: OrderStatus,
        reason: Option<String>,
    },
    /// A customer's rating (1–5) and optional comment.
    Rate {
        rating: i16,
        comment: Option<String>,
    },
    /// The free-text comment that follows a rating (stored once).
    Comment { comment: String },
}

/// A command for the order state machine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderCommand {
    /// Idempotency key: a command applied once is never applied again.
    pub command_id: Uuid,
    pub restaurant_id: Uuid,
    pub order_id: Uuid,
    pub actor: Actor,
    pub action: OrderAction,
    /// A core NATS inbox waiting for the [`OrderReply`] (dashboard PATCH).
    pub reply_to: Option<String>,
}

impl Payload for OrderCommand {
    const KIND: &'static str = "order.command";
}

/// The answer to a command, sent to its `reply_to` inbox as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderReply {
    pub command_id: Uuid,
    pub accepted: bool,
    /// Why a refused command was refused.
    pub reason: Option<String>,
    pub order: Option<crate::events::OrderView>,
}

// -------------------------------------------------------------- outbound

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutboundContent {
    Text {
        body: String,
    },
    Media {
        body: Option<String>,
        urls: Vec<String>,
    },
    /// An interactive or approved template: `ContentSid` + `ContentVariables`.
    Template {
        content_sid: String,
        variables: BTreeMap<String, String>,
    },
}

/// One message to send, already recorded as a row in `messages`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutboundMessage {
    pub message_id: Uuid,
    pub restaurant_id: Uuid,
    pub conversation_id: Uuid,
    pub to: String,
    pub content: OutboundContent,
}

impl Payload for OutboundMessage {
    const KIND: &'static str = "outbound.message";
}

/// A message given up on, with why; `original` is the envelope as it was.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeadLetter {
    pub stage: String,
    pub reason: String,
    pub error_code: Option<i64>,
    pub original_subject: String,
    pub original: Vec<u8>,
    pub attempts: i64,
    pub failed_at: DateTime<Utc>,
}

impl Payload for DeadLetter {
    const KIND: &'static str = "dlq.letter";
}
