//! Marketing consent per restaurant and customer (`marketing_consent`):
//! who said STOP, when and how. The one question every sender of
//! marketing (promo links, broadcasts) asks is [`opted_out_sql`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// What changed a customer's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The customer wrote an opt-out or opt-in word.
    Keyword,
    /// Twilio refused a send or reported it failed with 21610
    /// ("Attempt to send to unsubscribed recipient").
    Twilio21610,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Keyword => "keyword",
            Source::Twilio21610 => "twilio_21610",
        }
    }
}

/// Twilio's error code for a recipient who unsubscribed.
pub const UNSUBSCRIBED_ERROR: &str = "21610";

/// A customer's consent as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Consent {
    pub opted_out: bool,
    /// `keyword` or `twilio_21610`.
    pub source: String,
    pub keyword: Option<String>,
    pub changed_at: DateTime<Utc>,
}

/// Records an opt-out (`opted_out`) or opt-in. Returns whether it changed
/// anything: a second STOP is not a change (and is not confirmed again),
/// nor is a START from a customer who never stopped (no row is written).
pub async fn set(
    tx: &mut PgConnection,
    restaurant_id: Uuid,
    customer: &str,
    opted_out: bool,
    source: Source,
    keyword: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let sql = match opted_out {
        true => {
            "INSERT INTO marketing_consent (restaurant_id, customer, opted_out, source, keyword) \
             VALUES ($1, $2, true, $3, $4) \
             ON CONFLICT (restaurant_id, customer) DO UPDATE SET \
                opted_out = true, source = EXCLUDED.source, \
                keyword = EXCLUDED.keyword, changed_at = now() \
             WHERE NOT marketing_consent.opted_out"
        }
        false => {
            "UPDATE marketing_consent SET opted_out = false, source = $3, keyword = $4, \
                changed_at = now() \
             WHERE restaurant_id = $1 AND customer = $2 AND opted_out"
        }
    };
    let changed = sqlx::query(sql)
        .bind(restaurant_id)
        .bind(customer)
        .bind(source.as_str())
        .bind(keyword)
        .execute(&mut *tx)
        .await?;
    Ok(changed.rows_affected() == 1)
}

/// A customer's consent, if they ever changed it.
pub async fn get(
    tx: &mut PgConnection,
    restaurant_id: Uuid,
    customer: &str,
) -> Result<Option<Consent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT opted_out, source, keyword, changed_at FROM marketing_consent \
         WHERE restaurant_id = $1 AND customer = $2",
    )
    .bind(restaurant_id)
    .bind(customer)
    .fetch_optional(&mut *tx)
    .await
}

/// The SQL expression that is true when the customer (`customer`, an
/// SQL expression such as `$3`) opted out of the restaurant's
/// (`restaurant`) marketing: what every sender of marketing checks, read
/// inside the statement that loads what it sends from.
pub fn opted_out_sql(restaurant: &str, customer: &str) -> String {
    format!(
        "COALESCE((SELECT c.opted_out FROM marketing_consent c \
            WHERE c.restaurant_id = {restaurant} AND c.customer = {customer}), false)"
    )
}

/// Twilio said the recipient of a conversation's message unsubscribed
/// (21610): they are opted out of the restaurant's marketing. Not
/// confirmed to them (Twilio would refuse that message too).
pub async fn unsubscribed_by_twilio(
    pool: &sqlx::PgPool,
    conversation_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO marketing_consent (restaurant_id, customer, opted_out, source) \
         SELECT restaurant_id, customer, true, $2 FROM conversations WHERE id = $1 \
         ON CONFLICT (restaurant_id, customer) DO UPDATE SET \
            opted_out = true, source = EXCLUDED.source, keyword = NULL, changed_at = now() \
         WHERE NOT marketing_consent.opted_out",
    )
    .bind(conversation_id)
    .bind(Source::Twilio21610.as_str())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
