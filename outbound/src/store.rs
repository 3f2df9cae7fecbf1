//! The stage's queries on `messages`. Every write is one statement whose
//! `WHERE` makes it idempotent: a redelivered message or a duplicate
//! callback changes nothing the second time.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;
use waiter_nats::events::MessageView;

use crate::decision::{FAILED, QUEUED};

/// How long after a change a redelivery re-publishes the change's event.
/// The event ids are deterministic and JetStream drops a repeated id within
/// its duplicate window (10 minutes), so inside this shorter window a
/// re-publish is either the first copy (the earlier attempt stopped between
/// the database and the bus) or dropped as a duplicate; a replay after it
/// publishes nothing.
const REPUBLISH_WINDOW: &str = "interval '2 minutes'";

const VIEW_COLUMNS: &str = "id, restaurant_id, conversation_id, direction, author, kind, body, \
    status, wa_sid, limited_reason IS NOT NULL AS limited, payload, created_at, error_code, \
    error_message";

/// An outbound row as the send handler sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboundRow {
    pub id: Uuid,
    pub restaurant_id: Uuid,
    pub conversation_id: Uuid,
    pub direction: String,
    pub author: String,
    pub kind: String,
    pub body: String,
    pub status: String,
    pub wa_sid: Option<String>,
    pub limited: bool,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Sent (sid recorded) within the re-publish window.
    pub sent_recently: bool,
    /// Failed by this stage (no sid) within the re-publish window.
    pub failed_recently: bool,
}

impl OutboundRow {
    pub fn view(&self) -> MessageView {
        MessageView {
            id: self.id,
            restaurant_id: self.restaurant_id,
            conversation_id: self.conversation_id,
            direction: self.direction.clone(),
            author: self.author.clone(),
            kind: self.kind.clone(),
            body: self.body.clone(),
            status: self.status.clone(),
            wa_sid: self.wa_sid.clone(),
            limited: self.limited,
            payload: self.payload.clone(),
            created_at: self.created_at,
            error_code: self.error_code.clone(),
            error_message: self.error_message.clone(),
        }
    }

    pub fn status_change(&self) -> StatusChange {
        StatusChange {
            message_id: self.id,
            restaurant_id: self.restaurant_id,
            conversation_id: self.conversation_id,
            wa_sid: self.wa_sid.clone(),
            status: self.status.clone(),
            error_code: self.error_code.clone(),
            error_message: self.error_message.clone(),
        }
    }
}

pub async fn load(pool: &PgPool, id: Uuid) -> Result<Option<OutboundRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {VIEW_COLUMNS}, \
            (wa_sid IS NOT NULL AND sent_at > now() - {REPUBLISH_WINDOW}) AS sent_recently, \
            (wa_sid IS NULL AND status = $2 AND updated_at > now() - {REPUBLISH_WINDOW}) \
                AS failed_recently \
         FROM messages WHERE id = $1"
    ))
    .bind(id)
    .bind(FAILED)
    .fetch_optional(pool)
    .await
}

#[derive(sqlx::FromRow)]
struct ViewRow {
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

impl From<ViewRow> for MessageView {
    fn from(r: ViewRow) -> Self {
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

/// Records Twilio's sid right after the 201 (the row must still be unsent).
/// `None` when the row was no longer unsent.
pub async fn mark_sent(
    pool: &PgPool,
    id: Uuid,
    sid: &str,
    queued_rank: i32,
) -> Result<Option<MessageView>, sqlx::Error> {
    let row: Option<ViewRow> = sqlx::query_as(&format!(
        "UPDATE messages SET wa_sid = $2, status = $4, status_rank = $3, \
            error_code = NULL, error_message = NULL, sent_at = now(), updated_at = now() \
         WHERE id = $1 AND wa_sid IS NULL AND status IN ('pending', 'retrying') \
         RETURNING {VIEW_COLUMNS}"
    ))
    .bind(id)
    .bind(sid)
    .bind(queued_rank)
    .bind(QUEUED)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(MessageView::from))
}

/// A status change dashboards hear about (`message.status`).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StatusChange {
    pub message_id: Uuid,
    #[serde(skip)]
    pub restaurant_id: Uuid,
    pub conversation_id: Uuid,
    pub wa_sid: Option<String>,
    pub status: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

const CHANGE_COLUMNS: &str = "m.id AS message_id, m.restaurant_id, m.conversation_id, m.wa_sid, \
    m.status, m.error_code, m.error_message";

/// Gives up on an unsent row. `None` when it was no longer unsent.
pub async fn mark_failed(
    pool: &PgPool,
    id: Uuid,
    failed_rank: i32,
    error_code: Option<&str>,
    error_message: &str,
) -> Result<Option<StatusChange>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE messages m SET status = $5, status_rank = $2, error_code = $3, \
            error_message = $4, updated_at = now() \
         WHERE m.id = $1 AND m.wa_sid IS NULL AND m.status IN ('pending', 'retrying') \
         RETURNING {CHANGE_COLUMNS}"
    ))
    .bind(id)
    .bind(failed_rank)
    .bind(error_code)
    .bind(error_message)
    .bind(FAILED)
    .fetch_optional(pool)
    .await
}

/// Applies a status callback in one statement, only if it moves the row
/// forward. Only a row sent from the callback's Twilio account matches, so
/// one tenant's callbacks can never touch another's messages.
pub async fn apply_status(
    pool: &PgPool,
    wa_sid: &str,
    account_sid: &str,
    status: &str,
    rank: i32,
    error_code: Option<&str>,
    error_message: Option<&str>,
) -> Result<Option<StatusChange>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE messages m SET status = $2, status_rank = $3, \
            error_code = COALESCE($4, m.error_code), \
            error_message = COALESCE($5, m.error_message), updated_at = now() \
         FROM restaurants r \
         WHERE m.wa_sid = $1 AND m.direction = 'out' AND m.status_rank < $3 \
           AND r.id = m.restaurant_id AND r.twilio_account_sid = $6 \
         RETURNING {CHANGE_COLUMNS}"
    ))
    .bind(wa_sid)
    .bind(status)
    .bind(rank)
    .bind(error_code)
    .bind(error_message)
    .bind(account_sid)
    .fetch_optional(pool)
    .await
}

/// One status callback to apply, as [`apply_statuses`] takes them.
#[derive(Debug, Clone)]
pub struct StatusUpdate<'a> {
    pub wa_sid: &'a str,
    pub account_sid: &'a str,
    pub status: &'a str,
    pub rank: i32,
    pub error_code: Option<&'a str>,
    pub error_message: Option<&'a str>,
}

/// [`apply_status`] for several callbacks in one statement. The sids must
/// be distinct (an `UPDATE … FROM` uses only one input row per target
/// row). Returns the changes made, by sid; a callback without one was
/// not news or names no message of its account.
pub async fn apply_statuses(
    pool: &PgPool,
    updates: &[StatusUpdate<'_>],
) -> Result<Vec<StatusChange>, sqlx::Error> {
    let column = |f: fn(&StatusUpdate<'_>) -> Option<String>| -> Vec<Option<String>> {
        updates.iter().map(f).collect()
    };
    let ranks: Vec<i32> = updates.iter().map(|u| u.rank).collect();
    sqlx::query_as(&format!(
        "UPDATE messages m SET status = u.status, status_rank = u.rank, \
            error_code = COALESCE(u.error_code, m.error_code), \
            error_message = COALESCE(u.error_message, m.error_message), updated_at = now() \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[]) \
                AS u(wa_sid, account_sid, status, rank, error_code, error_message), \
              restaurants r \
         WHERE m.wa_sid = u.wa_sid AND m.direction = 'out' AND m.status_rank < u.rank \
           AND r.id = m.restaurant_id AND r.twilio_account_sid = u.account_sid \
         RETURNING {CHANGE_COLUMNS}"
    ))
    .bind(column(|u| Some(u.wa_sid.to_string())))
    .bind(column(|u| Some(u.account_sid.to_string())))
    .bind(column(|u| Some(u.status.to_string())))
    .bind(ranks)
    .bind(column(|u| u.error_code.map(str::to_string)))
    .bind(column(|u| u.error_message.map(str::to_string)))
    .fetch_all(pool)
    .await
}

/// Where a row stands when a callback changed nothing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CurrentStatus {
    #[sqlx(flatten)]
    pub change: StatusChange,
    pub status_rank: i32,
    /// Changed within the re-publish window.
    pub recent: bool,
}

pub async fn current_status(
    pool: &PgPool,
    wa_sid: &str,
    account_sid: &str,
) -> Result<Option<CurrentStatus>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CHANGE_COLUMNS}, m.status_rank, \
            m.updated_at > now() - {REPUBLISH_WINDOW} AS recent \
         FROM messages m JOIN restaurants r ON r.id = m.restaurant_id \
         WHERE m.wa_sid = $1 AND m.direction = 'out' AND r.twilio_account_sid = $2"
    ))
    .bind(wa_sid)
    .bind(account_sid)
    .fetch_optional(pool)
    .await
}
