//! The orders table and its history.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;
use waiter_nats::{
    events::{OrderLineView, OrderView},
    messages::{OrderStatus, PaymentMethod},
};

#[derive(sqlx::FromRow)]
pub struct OrderRow {
    pub id: Uuid,
    pub restaurant_id: Uuid,
    pub conversation_id: Uuid,
    pub number: i64,
    pub status: String,
    pub fulfilment: String,
    pub payment_method: String,
    pub lines: serde_json::Value,
    pub subtotal: i64,
    pub delivery_fee: i64,
    pub total: i64,
    pub currency: String,
    pub rating: Option<i16>,
    pub rating_comment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl OrderRow {
    pub fn status(&self) -> OrderStatus {
        OrderStatus::parse(&self.status).unwrap_or(OrderStatus::Draft)
    }

    pub fn fulfilment(&self) -> waiter_nats::messages::Fulfilment {
        if self.fulfilment == "pickup" {
            waiter_nats::messages::Fulfilment::Pickup
        } else {
            waiter_nats::messages::Fulfilment::Delivery
        }
    }

    pub fn view(&self) -> OrderView {
        OrderView {
            id: self.id,
            restaurant_id: self.restaurant_id,
            conversation_id: self.conversation_id,
            number: self.number,
            status: self.status(),
            fulfilment: self.fulfilment.clone(),
            payment_method: self.payment_method.clone(),
            lines: serde_json::from_value::<Vec<OrderLineView>>(self.lines.clone())
                .unwrap_or_default(),
            subtotal: self.subtotal,
            delivery_fee: self.delivery_fee,
            total: self.total,
            currency: self.currency.clone(),
            rating: self.rating,
            rating_comment: self.rating_comment.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

const COLUMNS: &str =
    "id, restaurant_id, conversation_id, number, status, fulfilment, payment_method, \
    lines, subtotal, delivery_fee, total, currency, rating, rating_comment, created_at, updated_at";

pub async fn lock(
    tx: &mut PgConnection,
    restaurant_id: Uuid,
    order_id: Uuid,
) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM orders WHERE id = $1 AND restaurant_id = $2 FOR UPDATE"
    ))
    .bind(order_id)
    .bind(restaurant_id)
    .fetch_optional(&mut *tx)
    .await
}

pub async fn get(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1"))
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await
}

/// A menu item priced for an order.
#[derive(sqlx::FromRow)]
pub struct PricedItem {
    pub id: Uuid,
    pub name_en: String,
    pub name_ar: String,
    pub price: i64,
    pub discount_percent: i32,
    pub available: bool,
}

impl PricedItem {
    /// The unit price after the item's discount, rounded to the nearest
    /// minor unit (as the bot shows it).
    pub fn unit_price(&self) -> i64 {
        (self.price * i64::from(100 - self.discount_percent.clamp(0, 100)) + 50) / 100
    }
}

pub async fn items(
    tx: &mut PgConnection,
    restaurant_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<PricedItem>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name_en, name_ar, price, discount_percent, available FROM menu_items \
         WHERE restaurant_id = $1 AND id = ANY($2)",
    )
    .bind(restaurant_id)
    .bind(ids)
    .fetch_all(&mut *tx)
    .await
}

/// The next order number of a restaurant: short, sequential, said aloud.
pub async fn next_number(
    tx: &mut PgConnection,
    restaurant_id: Uuid,
) -> Result<Option<(i64, i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE restaurants SET next_order_number = next_order_number + 1 WHERE id = $1 \
         RETURNING next_order_number - 1, delivery_fee, currency",
    )
    .bind(restaurant_id)
    .fetch_optional(&mut *tx)
    .await
}

pub struct NewOrder<'a> {
    pub id: Uuid,
    pub restaurant_id: Uuid,
    pub conversation_id: Uuid,
    pub number: i64,
    pub fulfilment: &'a str,
    pub branch_id: Option<Uuid>,
    pub address: Option<&'a str>,
    pub payment: PaymentMethod,
    pub lines: serde_json::Value,
    pub subtotal: i64,
    pub delivery_fee: i64,
    pub currency: &'a str,
}

pub async fn insert(tx: &mut PgConnection, o: NewOrder<'_>) -> Result<OrderRow, sqlx::Error> {
    let payment = match o.payment {
        PaymentMethod::Cash => "cash",
        PaymentMethod::Online => "online",
    };
    sqlx::query_as(&format!(
        "INSERT INTO orders (id, restaurant_id, conversation_id, number, status, fulfilment, branch_id, \
            address, payment_method, lines, subtotal, delivery_fee, total, currency) \
         VALUES ($1, $2, $3, $4, 'DRAFT', $5, $6, $7, $8, $9, $10, $11, $10 + $11, $12) RETURNING {COLUMNS}"
    ))
    .bind(o.id)
    .bind(o.restaurant_id)
    .bind(o.conversation_id)
    .bind(o.number)
    .bind(o.fulfilment)
    .bind(o.branch_id)
    .bind(o.address)
    .bind(payment)
    .bind(o.lines)
    .bind(o.subtotal)
    .bind(o.delivery_fee)
    .bind(o.currency)
    .fetch_one(&mut *tx)
    .await
}

pub async fn set_status(
    tx: &mut PgConnection,
    order_id: Uuid,
    to: OrderStatus,
) -> Result<OrderRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE orders SET status = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(order_id)
    .bind(to.as_str())
    .fetch_one(&mut *tx)
    .await
}

pub async fn set_rating(
    tx: &mut PgConnection,
    order_id: Uuid,
    rating: i16,
    comment: Option<&str>,
) -> Result<OrderRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE orders SET status = 'RATED', rating = $2, rating_comment = $3, rated_at = now(), \
            updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(order_id)
    .bind(rating)
    .bind(comment)
    .fetch_one(&mut *tx)
    .await
}

pub async fn set_comment(
    tx: &mut PgConnection,
    order_id: Uuid,
    comment: &str,
) -> Result<OrderRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE orders SET rating_comment = $2, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(order_id)
    .bind(comment)
    .fetch_one(&mut *tx)
    .await
}

pub async fn record_history(
    tx: &mut PgConnection,
    order_id: Uuid,
    command_id: Uuid,
    from: Option<OrderStatus>,
    to: OrderStatus,
    actor: &str,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_status_history (order_id, command_id, from_status, to_status, actor, reason) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(order_id)
    .bind(command_id)
    .bind(from.map(|s| s.as_str()))
    .bind(to.as_str())
    .bind(actor)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn customer_of(
    tx: &mut PgConnection,
    conversation_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT customer FROM conversations WHERE id = $1")
        .bind(conversation_id)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(row.map(|r| r.0))
}
