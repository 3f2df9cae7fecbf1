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
    /// The approved template staff chose (outside the customer's 24-hour
    /// window): sent as this ContentSid with `text` as its variable `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sid: Option<String>,
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

/// A message a stage gave up on, published by the worker loop (never by a
/// handler) to `<ns>.dlq.<stage>` before the original is acknowledged.
/// `original` and `original_headers` are the message exactly as it was
/// delivered, so `just dlq-retry` can send it again. Fields after
/// `failed_at` were added with the shared worker loop; letters written
/// before it decode with their defaults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeadLetter {
    pub stage: String,
    pub reason: String,
    /// A provider's numeric error code (Twilio's), when there is one.
    pub error_code: Option<i64>,
    pub original_subject: String,
    pub original: Vec<u8>,
    /// Handler attempts, in place and across deliveries (deferrals not counted).
    pub attempts: i64,
    pub failed_at: DateTime<Utc>,
    /// `rejected`, `permanent`, `exhausted`, `max_deliver` or `poison`.
    #[serde(default)]
    pub reason_class: String,
    /// The failure's code: a SQLSTATE (`23505`), a Twilio code, ...
    #[serde(default)]
    pub code: Option<String>,
    /// The durable consumer the message came from.
    #[serde(default)]
    pub consumer: String,
    #[serde(default)]
    pub original_headers: Vec<(String, String)>,
    #[serde(default)]
    pub stream_sequence: u64,
    /// JetStream's delivery count when it was given up on.
    #[serde(default)]
    pub delivered: i64,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub restaurant_id: Option<Uuid>,
    #[serde(default)]
    pub conversation_id: Option<Uuid>,
    /// The customer (or staff) address the message was for or from.
    #[serde(default)]
    pub recipient: Option<String>,
}

impl Payload for DeadLetter {
    const KIND: &'static str = "dlq.letter";
}

// --------------------------------------------------------------- workers

/// Who owns one partition of a consumer group (`<ns>.lease.<group>.p.<n>`),
/// written with compare-and-set on the subject's last sequence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaseRecord {
    pub owner: Option<String>,
    /// Set on release: the last owner settled or handed back (nak, in
    /// stream order) everything it held, so the next owner need not wait
    /// for the ack wait before pulling.
    pub clean: bool,
    /// Wall clock of the writer, for people reading it; no decision uses it.
    pub written_at: DateTime<Utc>,
}

impl Payload for LeaseRecord {
    const KIND: &'static str = "lease.partition";
}

/// One consumer as a replica reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ConsumerReport {
    /// The durable consumer's name (`conversation-p3`, `outbound-status`).
    pub name: String,
    /// `partition` or `shared`.
    pub kind: String,
    /// The consumer exists and this replica is bound to it.
    pub bound: bool,
    /// A pull request ended normally within the last few seconds.
    pub pulling: bool,
    pub in_flight: u64,
    pub handled: u64,
    /// Milliseconds since the last pull request ended normally.
    pub last_pull_ms: Option<u64>,
    /// Pull requests that failed in a row.
    pub pull_failures: u32,
    /// Taken over from an owner that did not release it cleanly: waiting
    /// for its deliveries to expire before the first pull (so the
    /// redeliveries come first, in order). Counts as pulling.
    #[serde(default)]
    pub waiting: bool,
}

/// A replica's heartbeat in its group (`<ns>.lease.<group>.m.<replica>`),
/// every TTL/6, and what `/status` serves: what `just ps` needs to show
/// the process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MemberRecord {
    pub stage: String,
    pub group: String,
    pub replica: String,
    pub pid: u32,
    pub host: String,
    /// Where its `/health`, `/ready`, `/status` and `/metrics` answer.
    pub ops_addr: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    /// The replica's wall clock when it wrote this (for people only).
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Every worker bound and pulling.
    pub ready: bool,
    /// Takes partitions (false while starting up or draining).
    pub accepting: bool,
    /// Said goodbye (graceful shutdown): not waited for.
    pub stopped: bool,
    /// Messages acknowledged.
    pub handled: u64,
    /// Failed attempts that were retried.
    pub failed: u64,
    pub deferred: u64,
    pub dead_lettered: u64,
    /// Delivered and not yet settled.
    pub in_flight: u64,
    pub owned_partitions: Vec<u16>,
    pub consumers: Vec<ConsumerReport>,
}

impl Payload for MemberRecord {
    const KIND: &'static str = "lease.member";
}
