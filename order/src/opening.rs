//! Whether an order's branch takes orders at the moment it was placed: its
//! opening hours (`waiter-hours`) in the restaurant's time zone. A refused
//! placement is recorded in `refused_orders`.

use chrono::{DateTime, Utc};
use sqlx::{types::Json, PgConnection};
use uuid::Uuid;
use waiter_hours::Schedule;

/// The branch is closed; when it opens next, if it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub branch_name: String,
    pub opens_at: Option<DateTime<Utc>>,
}

impl Closed {
    pub fn reason(&self) -> String {
        match self.opens_at {
            Some(at) => format!(
                "branch {} is closed (opens {})",
                self.branch_name,
                at.format("%Y-%m-%d %H:%M UTC")
            ),
            None => format!("branch {} is closed", self.branch_name),
        }
    }
}

/// `Some` when the restaurant's branch does not take orders at `at`
/// (closed by its hours, or deactivated). An unknown branch is not judged
/// here (pricing refuses what does not belong to the restaurant).
pub async fn closed_at(
    tx: &mut PgConnection,
    restaurant_id: Uuid,
    branch_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Option<Closed>, sqlx::Error> {
    let row: Option<(String, bool, Json<Schedule>, String)> = sqlx::query_as(
        "SELECT b.name_en, b.active, b.schedule, r.time_zone FROM branches b \
         JOIN restaurants r ON r.id = b.restaurant_id \
         WHERE b.id = $1 AND b.restaurant_id = $2",
    )
    .bind(branch_id)
    .bind(restaurant_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((branch_name, active, schedule, time_zone)) = row else {
        return Ok(None);
    };
    if !active {
        return Ok(Some(Closed {
            branch_name,
            opens_at: None,
        }));
    }
    let tz = time_zone.parse().unwrap_or(chrono_tz::UTC);
    Ok(match schedule.0.status(tz, at) {
        waiter_hours::Status::Open { .. } => None,
        waiter_hours::Status::Closed { opens } => Some(Closed {
            branch_name,
            opens_at: opens,
        }),
    })
}

pub async fn record_refusal(
    tx: &mut PgConnection,
    order_id: Uuid,
    restaurant_id: Uuid,
    conversation_id: Uuid,
    branch_id: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refused_orders (order_id, restaurant_id, conversation_id, branch_id, reason) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(order_id)
    .bind(restaurant_id)
    .bind(conversation_id)
    .bind(branch_id)
    .bind(reason)
    .execute(&mut *tx)
    .await
    .map(|_| ())
}

/// Why the placement of this order was refused, if it was.
pub async fn refusal_of(
    tx: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT reason FROM refused_orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await
}
