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
/// As a template (a staff number outside its window) its variables are
/// `1` the order number, `2` the items on one line, `3` the total.
pub const TICKET: &str = "ticket";

/// A staff reply typed on the dashboard, sent outside the customer's
/// window when staff choose it; its variable `1` is the text they typed.
pub const STAFF_REPLY: &str = "staff_reply";

/// WhatsApp's customer-service window: free-form messages may be sent for
/// this long after the recipient's last message.
pub const SESSION_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// When the recipient's window closes (or closed); `None` if they never wrote.
pub fn window_closes_at(last_inbound: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    last_inbound.map(|at| at + SESSION_WINDOW)
}

/// Whether a free-form message may be sent now.
pub fn window_open(last_inbound: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    window_closes_at(last_inbound).is_some_and(|closes| now < closes)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_open_for_24_hours_after_the_last_inbound_message() {
        let now = Utc::now();
        assert!(!window_open(None, now));
        assert!(window_open(Some(now - chrono::TimeDelta::hours(23)), now));
        assert!(!window_open(Some(now - chrono::TimeDelta::hours(24)), now));
        assert_eq!(
            window_closes_at(Some(now)),
            Some(now + chrono::TimeDelta::hours(24))
        );
    }
}
