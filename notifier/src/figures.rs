//! The analytics' queries: what a restaurant's dashboard charts, over a
//! bounded range, each query served by an index on (restaurant, time)
//! (`orders_restaurant_created`, `messages_restaurant_inbound`; see
//! migration 0202), never a scan of every tenant's rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;
use waiter_nats::messages::OrderStatus;

use crate::error::ApiError;

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct Analytics {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The restaurant's time zone (IANA), where `orders.per_day`'s days
    /// begin unless the request gave a `utc_offset`.
    pub time_zone: String,
    pub orders: OrderVolume,
    pub ratings: RatingDistribution,
    /// The median over conversations of the first reply by the bot or
    /// staff (whichever came first); see `first_response`.
    pub median_first_response_seconds: Option<f64>,
    pub first_response: FirstResponse,
    pub top_items: Vec<TopItem>,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct OrderVolume {
    pub total: i64,
    /// Every status, with 0 when there is none.
    pub by_status: BTreeMap<String, i64>,
    /// Orders created per day, only days that have orders, oldest first.
    pub per_day: Vec<DayVolume>,
}

#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct DayVolume {
    /// `YYYY-MM-DD`, in the restaurant's time zone (or at `utc_offset`).
    pub day: String,
    pub orders: i64,
    /// The day's orders by their status now; only statuses that occur.
    pub by_status: BTreeMap<String, i64>,
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

/// First-response times: per conversation with a customer message in the
/// range, from its first such message to the `sent` time (Twilio accepted
/// it) of the first reply at or after it. System notes and staff tickets
/// are not replies; a reply never sent does not count.
#[derive(Debug, Clone, Serialize, PartialEq, ToSchema)]
pub struct FirstResponse {
    pub bot: ResponseTimes,
    pub staff: ResponseTimes,
}

#[derive(Debug, Clone, Serialize, PartialEq, FromRow, ToSchema)]
pub struct ResponseTimes {
    /// Null when no conversation was answered by this author.
    pub median_seconds: Option<f64>,
    /// Conversations answered by this author.
    pub conversations: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, FromRow, ToSchema)]
pub struct TopItem {
    /// In the restaurant's language (the menu's name now; the name the
    /// order was priced with for an item no longer on the menu).
    pub name: String,
    pub quantity: i64,
}

/// How many top items the analytics list.
pub const TOP_ITEMS: i64 = 10;

/// Analytics over `[from, to)`:
/// - order volume: orders created in the range, by status and per day;
/// - ratings: orders rated in the range (`rated_at`, else `updated_at`);
/// - first response: see [`FirstResponse`];
/// - top items: quantities over the lines of orders created in the range,
///   except drafts and cancelled orders.
pub async fn analytics(
    pool: &PgPool,
    restaurant_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    utc_offset_minutes: Option<i32>,
) -> Result<Analytics, ApiError> {
    let (time_zone, language): (String, String) =
        sqlx::query_as("SELECT time_zone, default_language FROM restaurants WHERE id = $1")
            .bind(restaurant_id)
            .fetch_optional(pool)
            .await?
            .ok_or(ApiError::NotFound)?;
    let days: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT to_char(CASE WHEN $4::int IS NULL THEN created_at AT TIME ZONE $5
                             ELSE (created_at AT TIME ZONE 'UTC') + make_interval(mins => $4::int)
                        END, 'YYYY-MM-DD') AS day,
                status, count(*)
         FROM orders
         WHERE restaurant_id = $1 AND created_at >= $2 AND created_at < $3
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(restaurant_id)
    .bind(from)
    .bind(to)
    .bind(utc_offset_minutes)
    .bind(&time_zone)
    .fetch_all(pool)
    .await?;
    // Every status is listed, with 0 when there is none.
    let mut by_status: BTreeMap<String, i64> = OrderStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    let mut per_day: Vec<DayVolume> = vec![];
    for (day, status, n) in days {
        *by_status.entry(status.clone()).or_default() += n;
        match per_day.last_mut() {
            Some(last) if last.day == day => {
                last.orders += n;
                last.by_status.insert(status, n);
            }
            _ => per_day.push(DayVolume {
                day,
                orders: n,
                by_status: [(status, n)].into(),
            }),
        }
    }
    let total = per_day.iter().map(|d| d.orders).sum();

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

    let (any, bot, staff) = first_responses(pool, restaurant_id, from, to).await?;

    let top_items: Vec<TopItem> = sqlx::query_as(
        "SELECT COALESCE(NULLIF(CASE WHEN $5 = 'ar' THEN i.name_ar ELSE i.name_en END, ''),
                         line->>'name') AS name,
                sum((line->>'quantity')::bigint)::bigint AS quantity
         FROM orders o
         CROSS JOIN jsonb_array_elements(CASE WHEN jsonb_typeof(o.lines) = 'array'
                                              THEN o.lines ELSE '[]'::jsonb END) AS line
         LEFT JOIN menu_items i ON i.restaurant_id = o.restaurant_id
              AND i.id::text = line->>'item_id'
         WHERE o.restaurant_id = $1 AND o.created_at >= $2 AND o.created_at < $3
           AND o.status NOT IN ('DRAFT', 'CANCELLED')
           AND line->>'name' IS NOT NULL
         GROUP BY 1
         ORDER BY quantity DESC, name
         LIMIT $4",
    )
    .bind(restaurant_id)
    .bind(from)
    .bind(to)
    .bind(TOP_ITEMS)
    .bind(&language)
    .fetch_all(pool)
    .await?;

    Ok(Analytics {
        from,
        to,
        time_zone,
        orders: OrderVolume {
            total,
            by_status,
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
        median_first_response_seconds: any.median_seconds,
        first_response: FirstResponse { bot, staff },
        top_items,
    })
}

/// The first-response medians: (bot or staff, bot, staff).
async fn first_responses(
    pool: &PgPool,
    restaurant_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(ResponseTimes, ResponseTimes, ResponseTimes), ApiError> {
    let rows: Vec<(String, Option<f64>, i64)> = sqlx::query_as(
        "WITH first_in AS (
             SELECT conversation_id, min(created_at) AS at
             FROM messages
             WHERE restaurant_id = $1 AND direction = 'in'
               AND created_at >= $2 AND created_at < $3
             GROUP BY conversation_id
         ), replies AS (
             SELECT f.conversation_id, f.at AS in_at, a.author,
                    (SELECT min(m.sent_at) FROM messages m
                     WHERE m.conversation_id = f.conversation_id AND m.direction = 'out'
                       AND m.author = a.author AND m.sent_at IS NOT NULL
                       AND m.created_at >= f.at) AS out_at
             FROM first_in f CROSS JOIN (VALUES ('bot'), ('staff')) AS a (author)
         ), firsts AS (
             SELECT author, in_at, out_at FROM replies WHERE out_at IS NOT NULL
             UNION ALL
             SELECT 'any', in_at, min(out_at) FROM replies WHERE out_at IS NOT NULL
             GROUP BY conversation_id, in_at
         )
         SELECT author,
                percentile_cont(0.5) WITHIN GROUP
                    (ORDER BY EXTRACT(EPOCH FROM (out_at - in_at))::float8),
                count(*)
         FROM firsts GROUP BY author",
    )
    .bind(restaurant_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let of = |author: &str| {
        rows.iter()
            .find(|(a, _, _)| a == author)
            .map(|(_, median, n)| ResponseTimes {
                median_seconds: *median,
                conversations: *n,
            })
            .unwrap_or(ResponseTimes {
                median_seconds: None,
                conversations: 0,
            })
    };
    Ok((of("any"), of("bot"), of("staff")))
}
