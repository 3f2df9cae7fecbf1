//! The notifier's queries. Every query is scoped by restaurant id: a row of
//! another restaurant is indistinguishable from a missing one.

use std::collections::BTreeMap;

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
}

#[derive(FromRow)]
struct SummaryRow {
    #[sqlx(flatten)]
    conversation: ConversationRow,
    last_message: Option<Json<LastMessage>>,
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
                 ORDER BY m.created_at DESC, m.seq DESC LIMIT 1) AS last_message
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
        .map(|r| ConversationSummary {
            conversation: r.conversation.into(),
            last_message: r.last_message.map(|m| m.0),
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

// -------------------------------------------------------------- analytics

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Analytics {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub orders: OrderVolume,
    pub ratings: RatingDistribution,
    pub median_first_response_seconds: Option<f64>,
    pub top_items: Vec<TopItem>,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct OrderVolume {
    pub total: i64,
    /// Every status, with 0 when there is none.
    pub by_status: BTreeMap<String, i64>,
    /// Orders created per day (days at the viewer's `utc_offset`), only
    /// days that have orders, oldest first.
    pub per_day: Vec<DayVolume>,
}

#[derive(Debug, Clone, Serialize, PartialEq, FromRow, ToSchema)]
pub struct DayVolume {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub orders: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct RatingDistribution {
    #[serde(rename = "1")]
    pub one: i64,
    #[serde(rename = "2")]
    pub two: i64,
    #[serde(rename = "3")]
    pub three: i64,
    #[serde(rename = "4")]
    pub four: i64,
    #[serde(rename = "5")]
    pub five: i64,
    /// Null when nothing was rated.
    pub average: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, FromRow, ToSchema)]
pub struct TopItem {
    pub name: String,
    pub quantity: i64,
}

/// How many top items the analytics list.
pub const TOP_ITEMS: i64 = 10;

/// Analytics over `[from, to)`:
/// - order volume: orders created in the range, by status;
/// - ratings: orders rated in the range (`rated_at`, else `updated_at`);
/// - median first response: per conversation with an inbound message in the
///   range, the time from its first such message to the first outbound
///   message at or after it (conversations never answered are left out);
/// - top items: quantities over the lines of orders created in the range,
///   except drafts and cancelled orders, by item name.
pub async fn analytics(
    pool: &PgPool,
    restaurant_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    utc_offset_minutes: i32,
) -> Result<Analytics, ApiError> {
    let by_status: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM orders
         WHERE restaurant_id = $1 AND created_at >= $2 AND created_at < $3
         GROUP BY status",
    )
    .bind(restaurant_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let total = by_status.iter().map(|(_, n)| n).sum();
    // Every status is listed, with 0 when there is none.
    let mut counts: BTreeMap<String, i64> = OrderStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    counts.extend(by_status);

    let per_day: Vec<DayVolume> = sqlx::query_as(
        "SELECT to_char(date_trunc('day', (created_at AT TIME ZONE 'UTC')
                                           + make_interval(mins => $4)), 'YYYY-MM-DD') AS day,
                count(*) AS orders
         FROM orders
         WHERE restaurant_id = $1 AND created_at >= $2 AND created_at < $3
         GROUP BY 1 ORDER BY 1",
    )
    .bind(restaurant_id)
    .bind(from)
    .bind(to)
    .bind(utc_offset_minutes)
    .fetch_all(pool)
    .await?;

    let ratings: Vec<(i16, i64)> = sqlx::query_as(
        "SELECT rating, count(*) FROM orders
         WHERE restaurant_id = $1 AND rating IS NOT NULL
           AND COALESCE(rated_at, updated_at) >= $2 AND COALESCE(rated_at, updated_at) < $3
         GROUP BY rating",
    )
    .bind(restaurant_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let count = |r: i16| {
        ratings
            .iter()
            .find(|(rating, _)| *rating == r)
            .map_or(0, |(_, n)| *n)
    };
    let rated: i64 = ratings.iter().map(|(_, n)| n).sum();
    let average = (rated > 0).then(|| {
        let sum: i64 = ratings.iter().map(|(r, n)| i64::from(*r) * n).sum();
        (sum as f64 / rated as f64 * 100.0).round() / 100.0
    });

    let median: Option<f64> = sqlx::query_scalar(
        "WITH first_in AS (
             SELECT conversation_id, min(created_at) AS at
             FROM messages
             WHERE restaurant_id = $1 AND direction = 'in'
               AND created_at >= $2 AND created_at < $3
             GROUP BY conversation_id
         ), answered AS (
             SELECT f.at AS in_at,
                    (SELECT min(m.created_at) FROM messages m
                     WHERE m.conversation_id = f.conversation_id
                       AND m.direction = 'out' AND m.created_at >= f.at) AS out_at
             FROM first_in f
         )
         SELECT percentile_cont(0.5) WITHIN GROUP
                    (ORDER BY EXTRACT(EPOCH FROM (out_at - in_at))::float8)
         FROM answered WHERE out_at IS NOT NULL",
    )
    .bind(restaurant_id)
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;

    let top_items: Vec<TopItem> = sqlx::query_as(
        "SELECT line->>'name' AS name, sum((line->>'quantity')::bigint)::bigint AS quantity
         FROM orders,
              jsonb_array_elements(CASE WHEN jsonb_typeof(orders.lines) = 'array'
                                        THEN orders.lines ELSE '[]'::jsonb END) AS line
         WHERE restaurant_id = $1 AND created_at >= $2 AND created_at < $3
           AND status NOT IN ('DRAFT', 'CANCELLED')
           AND line->>'name' IS NOT NULL
         GROUP BY line->>'name'
         ORDER BY quantity DESC, name
         LIMIT $4",
    )
    .bind(restaurant_id)
    .bind(from)
    .bind(to)
    .bind(TOP_ITEMS)
    .fetch_all(pool)
    .await?;

    Ok(Analytics {
        from,
        to,
        orders: OrderVolume {
            total,
            by_status: counts,
            per_day,
        },
        ratings: RatingDistribution {
            one: count(1),
            two: count(2),
            three: count(3),
            four: count(4),
            five: count(5),
            average,
        },
        median_first_response_seconds: median,
        top_items,
    })
}
