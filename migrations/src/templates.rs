//! The content templates registry: the Twilio ContentSid a restaurant
//! uses for a named message in a language, and whether WhatsApp approved it
//! (only approved templates may be sent outside the customer's 24-hour
//! window). Names are the bot's template names (`waiter_bot::ui::templates`)
//! plus [`TICKET`], the staff order ticket.
//!
//! The one call for "the approved template of restaurant R for message M in
//! language L" is [`approved`].

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// The staff order ticket (sent by the conversation stage on CONFIRMED).
pub const TICKET: &str = "ticket";

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ContentTemplate {
    pub name: String,
    pub language: String,
    pub content_sid: String,
    pub approved: bool,
    pub updated_at: DateTime<Utc>,
}

/// Whether `sid` looks like a Twilio ContentSid (`HX` + 32 hex digits).
pub fn is_content_sid(sid: &str) -> bool {
    sid.len() == 34 && sid.starts_with("HX") && sid[2..].chars().all(|c| c.is_ascii_hexdigit())
}

/// Registers (or replaces) a restaurant's template for a message and language.
pub async fn set(
    pool: &PgPool,
    restaurant_id: Uuid,
    name: &str,
    language: &str,
    content_sid: &str,
    approved: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO content_templates (restaurant_id, name, language, content_sid, approved) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (restaurant_id, name, language) DO UPDATE SET \
            content_sid = EXCLUDED.content_sid, approved = EXCLUDED.approved, updated_at = now()",
    )
    .bind(restaurant_id)
    .bind(name)
    .bind(language)
    .bind(content_sid)
    .bind(approved)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Removes a registration; returns whether there was one.
pub async fn remove(
    pool: &PgPool,
    restaurant_id: Uuid,
    name: &str,
    language: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM content_templates WHERE restaurant_id = $1 AND name = $2 AND language = $3",
    )
    .bind(restaurant_id)
    .bind(name)
    .bind(language)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Every template of a restaurant, by name then language.
pub async fn list(pool: &PgPool, restaurant_id: Uuid) -> Result<Vec<ContentTemplate>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, language, content_sid, approved, updated_at FROM content_templates \
         WHERE restaurant_id = $1 ORDER BY name, language",
    )
    .bind(restaurant_id)
    .fetch_all(pool)
    .await
}

/// The approved template of a restaurant for a message in a language, if
/// one is registered: what may be sent outside the 24-hour window.
pub async fn approved(
    pool: &PgPool,
    restaurant_id: Uuid,
    name: &str,
    language: &str,
) -> Result<Option<ContentTemplate>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, language, content_sid, approved, updated_at FROM content_templates \
         WHERE restaurant_id = $1 AND name = $2 AND language = $3 AND approved",
    )
    .bind(restaurant_id)
    .bind(name)
    .bind(language)
    .fetch_optional(pool)
    .await
}
