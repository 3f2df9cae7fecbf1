//! The notifier's queries. Every query is scoped by restaurant id: a row of
//! another restaurant is indistinguishable from a missing one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{types::Json, FromRow, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;
use waiter_nats::{
    events::{ConversationView, MessageView, OrderLineView, OrderView},
    messages::{Fulfilment, OrderStatus},
};

use crate::{error::ApiError, paging::Cursor};

// ---------------------------------------------------------- conversations

#[derive(FromRow)]
struct ConversationRow {
    id: Uuid,
    restaurant_id: Uuid,
    customer: String,
    customer_name: Option<String>,
    unread_count: i32,
    bot_active: bool,
    last_message_at: Option<DateTime<Utc>>,
    last_inbound_at: Option<DateTime<Utc>>,
}

impl From<ConversationRow> for ConversationView {
    fn from(r: ConversationRow) -> Self {
        ConversationView {
            id: r.id,
            restaurant_id: r.restaurant_id,
            customer: r.customer,
            customer_name: r.customer_name,
            unread_count: r.unread_count,
            bot_active: r.bot_active,
            last_message_at: r.last_message_at,
            last_inbound_at: r.last_inbound_at,
        }
    }
}

const CONVERSATION_COLUMNS: &str = "id, restaurant_id, customer, customer_name, unread_count, \
     bot_active, last_message_at, last_inbound_at";

pub async fn restaurant_exists(pool: &PgPool, restaurant_id: Uuid) -> Result<bool, ApiError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM restaurants WHERE id = $1)")
            .bind(restaurant_id)
            .fetch_one(pool)
            .await?,
    )
}

pub async fn conversation(
    pool: &PgPool,
    restaurant_id: Uuid,
    conversation_id: Uuid,
) -> Result<ConversationView, ApiError> {
    let row: Option<ConversationRow> = sqlx::query_as(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1 AND restaurant_id = $2"
    ))
    .bind(conversation_id)
    .bind(restaurant_id)
    .fetch_optional(pool)
    .await?;
    row.map(Into::into).ok_or(ApiError::NotFound)
}

/// The newest message of a conversation, for the list's preview line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct LastMessage {
    /// `in` or `out`.
    pub direction: String,
    /// `customer`, `bot`, `staff` or `system`.
    pub author: String,
    pub kind: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// A conversation as the list shows it: the conversation and its newest
/// message.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct ConversationSummary {
    #[serde(flatten)]
    pub conversation: ConversationView,
    pub last_message: Option<LastMessage>,
    /// Whether staff may write free-form now: the customer wrote within
    /// the last 24 hours (else only an approved template goes).
    pub window_open: bool,
    /// When the customer's 24-hour window closes (or closed); null if
    /// they never wrote.
    pub window_closes_at: Option<DateTime<Utc>>,
    /// The customer's marketing consent, if they ever opted out: while
    /// `opted_out`, no promo link or broadcast goes to them.
    pub marketing: Option<MarketingConsent>,
}

/// A customer's latest marketing opt-out or opt-in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct MarketingConsent {
    pub opted_out: bool,
    /// `keyword` (the customer wrote STOP / START or their Arabic words) or
    /// `twilio_21610` (Twilio reported the number unsubscribed).
    pub source: String,
    pub changed_at: DateTime<Utc>,
}

impl ConversationSummary {
    fn new(
        conversation: ConversationView,
        last_message: Option<LastMessage>,
        marketing: Option<MarketingConsent>,
    ) -> Self {
        use waiter_migrations::templates::{window_closes_at, window_open};
        let last_inbound = conversation.last_inbound_at;
        ConversationSummary {
            conversation,
            last_message,
            window_open: window_open(last_inbound, Utc::now()),
            window_closes_at: window_closes_at(last_inbound),
            marketing,
        }
    }
}

/// Whom a staff reply goes to: when they last wrote and in which language
/// the bot speaks with them.
#[derive(Debug, FromRow)]
pub struct Recipient {
    pub last_inbound_at: Option<DateTime<Utc>>,
    pub language: String,
}

pub async fn recipient(
    pool: &PgPool,
    restaurant_id: Uuid,
    conversation_id: Uuid,
) -> Result<Recipient, ApiError> {
    sqlx::query_as(
        "SELECT c.last_inbound_at, COALESCE(c.dialogue->>'language', r.default_language) AS language \
         FROM conversations c JOIN restaurants r ON r.id = c.restaurant_id \
         WHERE c.id = $1 AND c.restaurant_id = $2",
    )
    .bind(conversation_id)
    .bind(restaurant_id)
    .fetch_optional(pool)
    .await?
    .ok_or(ApiError::NotFound)
}

#[derive(FromRow)]
struct SummaryRow {
    #[sqlx(flatten)]
    conversation: ConversationRow,
    last_message: Option<Json<LastMessage>>,
    marketing: Option<Json<MarketingConsent>>,
}

/// Newest first by `last_message_at` (conversations without messages last),
/// ties by id; `before` continues after a cursor. Returns `limit + 1` rows
/// at most, so the caller knows whether another page exists.
pub async fn conversations(
    pool: &PgPool,
    restaurant_id: Uuid,
    before: Option<Cursor>,
    limit: i64,
) -> Result<Vec<ConversationSummary>, ApiError> {
    let (has_cursor, at, id) = match before {
        Some(c) => (true, c.at, c.id),
        None => (false, None, Uuid::nil()),
    };
    let rows: Vec<SummaryRow> = sqlx::query_as(&format!(
        "SELECT {CONVERSATION_COLUMNS},
                (SELECT jsonb_build_object('direction', m.direction, 'author', m.author,
                                           'kind', m.kind, 'body', m.body,
                                           'created_at', m.created_at)
                 FROM messages m WHERE m.conversation_id = conversations.id
                 ORDER BY m.created_at DESC, m.seq DESC LIMIT 1) AS last_message,
                (SELECT jsonb_build_object('opted_out', mc.opted_out, 'source', mc.source,
                                           'changed_at', mc.changed_at)
                 FROM marketing_consent mc WHERE mc.restaurant_id = conversations.restaurant_id
                   AND mc.customer = conversations.customer) AS marketing
         FROM conversations
         WHERE restaurant_id = $1
           AND (NOT $2
                OR ($3::timestamptz IS NOT NULL
                    AND (last_message_at < $3
                         OR (last_message_at = $3 AND id > $4)
                         OR last_message_at IS NULL))
                OR ($3::timestamptz IS NULL AND last_message_at IS NULL AND id > $4))
         ORDER BY last_message_at DESC NULLS LAST, id
         LIMIT $5"
    ))
    .bind(restaurant_id)
    .bind(has_cursor)
    .bind(at)
    .bind(id)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            ConversationSummary::new(
                r.conversation.into(),
                r.last_message.map(|m| m.0),
                r.marketing.map(|m| m.0),
            )
        })
        .collect())
}

/// Marks a conversation read; None when it is not this restaurant's.
pub async fn mark_read(
    pool: &PgPool,
    restaurant_id: Uuid,
    conversation_id: Uuid,
) -> Result<ConversationView, ApiError> {
    let row: Option<ConversationRow> = sqlx::query_as(&format!(
        "UPDATE conversations SET unread_count = 0
         WHERE id = $1 AND restaurant_id = $2
         RETURNING {CONVERSATION_COLUMNS}"
    ))
    .bind(conversation_id)
    .bind(restaurant_id)
    .fetch_optional(pool)
    .await?;
    row.map(Into::into).ok_or(ApiError::NotFound)
}

// --------------------------------------------------------------- messages

#[derive(FromRow)]
struct MessageRow {
    id: Uuid,
    restaurant_id: Uuid,
    conversation_id: Uuid,
    direction: String,
    author: String,
    kind: String,
    body: String,
    status: String,
    wa_sid: Option<String>,
    limited: bool,
    payload: serde_json::Value,
    created_at: DateTime<Utc>,
    error_code: Option<String>,
    error_message: Option<String>,
}

impl From<MessageRow> for MessageView {
    fn from(r: MessageRow) -> Self {
        MessageView {
            id: r.id,
            restaurant_id: r.restaurant_id,
            conversation_id: r.conversation_id,
            direction: r.direction,
            author: r.author,
            kind: r.kind,
            body: r.body,
            status: r.status,
            wa_sid: r.wa_sid,
            limited: r.limited,
            payload: r.payload,
            created_at: r.created_at,
            error_code: r.error_code,
            error_message: r.error_message,
        }
    }
}

/// The most recent messages (before a cursor), newest first; at most
/// `limit + 1`. Messages of one instant are ordered as they were written
/// (`seq`): a customer's message before the bot's replies to it. A cursor
/// names its last message; a timestamp (nil id) excludes that instant.
pub async fn messages_newest_first(
    pool: &PgPool,
    restaurant_id: Uuid,
    conversation_id: Uuid,
    before: Option<Cursor>,
    limit: i64,
) -> Result<Vec<MessageView>, ApiError> {
    let (has_cursor, at, id) = match before {
        Some(c) => (true, c.at, c.id),
        None => (false, None, Uuid::nil()),
    };
    let rows: Vec<MessageRow> = sqlx::query_as(
        "SELECT id, restaurant_id, conversation_id, direction, author, kind, body, status,
                wa_sid, limited_reason IS NOT NULL AS limited, payload, created_at,
                error_code, error_message
         FROM messages
         WHERE conversation_id = $1 AND restaurant_id = $2
           AND (NOT $3 OR (created_at, seq) < ($4::timestamptz,
                COALESCE((SELECT c.seq FROM messages c
                          WHERE c.id = $5 AND c.conversation_id = $1), 0)))
         ORDER BY created_at DESC, seq DESC
         LIMIT $6",
    )
    .bind(conversation_id)
    .bind(restaurant_id)
    .bind(has_cursor)
    .bind(at)
    .bind(id)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

// ----------------------------------------------------------------- orders

#[derive(FromRow)]
struct OrderRow {
    id: Uuid,
    restaurant_id: Uuid,
    conversation_id: Uuid,
    number: i64,
    status: String,
    fulfilment: String,
    payment_method: String,
    lines: Json<serde_json::Value>,
    subtotal: i64,
    delivery_fee: i64,
    total: i64,
    currency: String,
    rating: Option<i16>,
    rating_comment: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    customer: String,
    customer_name: Option<String>,
    address: Option<String>,
    branch_id: Option<Uuid>,
    branch_name_en: Option<String>,
    branch_name_ar: Option<String>,
}

/// The branch an order is for, in both languages.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct BranchRef {
    pub id: Uuid,
    pub name_en: String,
    pub name_ar: String,
}

/// An order as the dashboard's board shows it: the order (as its events
/// carry it) plus who ordered, where it goes, and the statuses staff may
/// move it to next (from the order stage's state machine).
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct OrderCard {
    #[serde(flatten)]
    pub order: OrderView,
    /// The customer's WhatsApp address (`whatsapp:+…`).
    pub customer: String,
    pub customer_name: Option<String>,
    /// The delivery address the customer gave (delivery orders).
    pub address: Option<String>,
    /// The branch that prepares it (or where it is picked up).
    pub branch: Option<BranchRef>,
    /// Legal next statuses for staff, forward steps first.
    pub next_statuses: Vec<OrderStatus>,
}

impl TryFrom<OrderRow> for OrderCard {
    type Error = ApiError;

    fn try_from(r: OrderRow) -> Result<Self, ApiError> {
        let status = OrderStatus::parse(&r.status).ok_or_else(|| {
            ApiError::Internal(format!("order {} has unknown status {:?}", r.id, r.status))
        })?;
        let lines: Vec<OrderLineView> = serde_json::from_value(r.lines.0)
            .map_err(|e| ApiError::Internal(format!("order {} has malformed lines: {e}", r.id)))?;
        let fulfilment = fulfilment(&r.fulfilment);
        let branch = match (r.branch_id, r.branch_name_en, r.branch_name_ar) {
            (Some(id), Some(name_en), Some(name_ar)) => Some(BranchRef {
                id,
                name_en,
                name_ar,
            }),
            _ => None,
        };
        Ok(OrderCard {
            next_statuses: order::machine::staff_next(status, fulfilment),
            order: OrderView {
                id: r.id,
                restaurant_id: r.restaurant_id,
                conversation_id: r.conversation_id,
                number: r.number,
                status,
                fulfilment: r.fulfilment,
                payment_method: r.payment_method,
                lines,
                subtotal: r.subtotal,
                delivery_fee: r.delivery_fee,
                total: r.total,
                currency: r.currency,
                rating: r.rating,
                rating_comment: r.rating_comment,
                created_at: r.created_at,
                updated_at: r.updated_at,
            },
            customer: r.customer,
            customer_name: r.customer_name,
            address: r.address,
            branch,
        })
    }
}

/// An order's `fulfilment` column (`delivery` | `pickup`).
pub fn fulfilment(column: &str) -> Fulfilment {
    match column {
        "pickup" => Fulfilment::Pickup,
        _ => Fulfilment::Delivery,
    }
}

const ORDER_QUERY: &str = "SELECT o.id, o.restaurant_id, o.conversation_id, o.number, o.status, \
     o.fulfilment, o.payment_method, o.lines, o.subtotal, o.delivery_fee, o.total, o.currency, \
     o.rating, o.rating_comment, o.created_at, o.updated_at, c.customer, c.customer_name, \
     o.address, o.branch_id, b.name_en AS branch_name_en, b.name_ar AS branch_name_ar \
     FROM orders o JOIN conversations c ON c.id = o.conversation_id \
     LEFT JOIN branches b ON b.id = o.branch_id";

/// Newest first, optionally of one status.
pub async fn orders(
    pool: &PgPool,
    restaurant_id: Uuid,
    status: Option<OrderStatus>,
    limit: i64,
) -> Result<Vec<OrderCard>, ApiError> {
    let rows: Vec<OrderRow> = sqlx::query_as(&format!(
        "{ORDER_QUERY}
         WHERE o.restaurant_id = $1 AND ($2::text IS NULL OR o.status = $2)
         ORDER BY o.created_at DESC, o.id DESC
         LIMIT $3"
    ))
    .bind(restaurant_id)
    .bind(status.map(OrderStatus::as_str))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(TryInto::try_into).collect()
}

pub async fn order(
    pool: &PgPool,
    restaurant_id: Uuid,
    order_id: Uuid,
) -> Result<OrderCard, ApiError> {
    let row: Option<OrderRow> = sqlx::query_as(&format!(
        "{ORDER_QUERY} WHERE o.id = $1 AND o.restaurant_id = $2"
    ))
    .bind(order_id)
    .bind(restaurant_id)
    .fetch_optional(pool)
    .await?;
    row.ok_or(ApiError::NotFound)?.try_into()
}
