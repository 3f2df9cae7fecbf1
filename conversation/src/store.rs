//! The conversations and messages tables.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;
use waiter_nats::events::{ConversationView, MessageView};

mod arrival;
pub use arrival::{arrive, Arrival, Arrived};

/// Ids derived from what identifies a thing, so every replica and every
/// redelivery computes the same one.
pub mod ids {
    use uuid::Uuid;

    const NAMESPACE: Uuid = Uuid::from_u128(0x5f0c_41d2_8a7e_4b1c_9d3e_2a6f_7b8c_9d0e);

    pub fn conversation(restaurant_id: Uuid, customer: &str) -> Uuid {
        Uuid::new_v5(&restaurant_id, customer.as_bytes())
    }

    pub fn inbound_message(message_sid: &str) -> Uuid {
        Uuid::new_v5(&NAMESPACE, format!("in:{message_sid}").as_bytes())
    }

    /// The n-th message decided in answer to an input.
    pub fn reply(input_id: &str, n: usize) -> Uuid {
        Uuid::new_v5(&NAMESPACE, format!("reply:{input_id}:{n}").as_bytes())
    }

    pub fn derived(input_id: &str, what: &str) -> Uuid {
        Uuid::new_v5(&NAMESPACE, format!("{what}:{input_id}").as_bytes())
    }
}

#[derive(sqlx::FromRow, Clone)]
pub struct ConversationRow {
    pub id: Uuid,
    pub restaurant_id: Uuid,
    pub customer: String,
    pub customer_name: Option<String>,
    pub unread_count: i32,
    pub bot_active: bool,
    pub bot_paused_at: Option<DateTime<Utc>>,
    pub dialogue: serde_json::Value,
    pub last_message_at: Option<DateTime<Utc>>,
    pub last_inbound_at: Option<DateTime<Utc>>,
}

impl ConversationRow {
    pub fn view(&self) -> ConversationView {
        ConversationView {
            id: self.id,
            restaurant_id: self.restaurant_id,
            customer: self.customer.clone(),
            customer_name: self.customer_name.clone(),
            unread_count: self.unread_count,
            bot_active: self.bot_active,
            last_message_at: self.last_message_at,
            last_inbound_at: self.last_inbound_at,
        }
    }
}

const CONVERSATION: &str = "id, restaurant_id, customer, customer_name, unread_count, bot_active, \
    bot_paused_at, dialogue, last_message_at, last_inbound_at";

/// A conversation as [`open`] finds it, with the customer's marketing
/// consent read in the same statement.
#[derive(sqlx::FromRow)]
pub struct Opened {
    #[sqlx(flatten)]
    pub conversation: ConversationRow,
    /// The customer opted out of the restaurant's marketing.
    pub marketing_opted_out: bool,
}

/// The conversation of a customer with a restaurant, created on first contact.
pub async fn open(
    tx: &mut PgConnection,
    restaurant_id: Uuid,
    customer: &str,
    customer_name: Option<&str>,
    wa_id: Option<&str>,
) -> Result<Opened, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO conversations (id, restaurant_id, customer, customer_name, wa_id) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (restaurant_id, customer) DO UPDATE SET \
            customer_name = COALESCE(EXCLUDED.customer_name, conversations.customer_name), \
            wa_id = COALESCE(EXCLUDED.wa_id, conversations.wa_id) \
         RETURNING {CONVERSATION}, {} AS marketing_opted_out",
        waiter_migrations::consent::opted_out_sql("$2", "$3")
    ))
    .bind(ids::conversation(restaurant_id, customer))
    .bind(restaurant_id)
    .bind(customer)
    .bind(customer_name)
    .bind(wa_id)
    .fetch_one(&mut *tx)
    .await
}

pub async fn lock(
    tx: &mut PgConnection,
    restaurant_id: Uuid,
    id: Uuid,
) -> Result<Option<ConversationRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CONVERSATION} FROM conversations WHERE id = $1 AND restaurant_id = $2 FOR UPDATE"
    ))
    .bind(id)
    .bind(restaurant_id)
    .fetch_optional(&mut *tx)
    .await
}

pub async fn touch(tx: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE conversations SET last_message_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Stores the dialogue; `touched`: a message was sent since the
/// conversation's `last_message_at` was last written (see [`touch`]).
pub async fn save_dialogue(
    tx: &mut PgConnection,
    id: Uuid,
    dialogue: &serde_json::Value,
    touched: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE conversations SET dialogue = $2, \
            last_message_at = CASE WHEN $3 THEN now() ELSE last_message_at END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(dialogue)
    .bind(touched)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Pauses (staff took over) or resumes the bot.
pub async fn set_bot(
    tx: &mut PgConnection,
    id: Uuid,
    active: bool,
) -> Result<ConversationRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE conversations SET bot_active = $2, \
            bot_paused_at = CASE WHEN $2 THEN NULL ELSE now() END \
         WHERE id = $1 RETURNING {CONVERSATION}"
    ))
    .bind(id)
    .bind(active)
    .fetch_one(&mut *tx)
    .await
}

#[derive(sqlx::FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub restaurant_id: Uuid,
    pub conversation_id: Uuid,
    pub wa_sid: Option<String>,
    pub direction: String,
    pub author: String,
    pub kind: String,
    pub body: String,
    pub payload: serde_json::Value,
    pub status: String,
    pub limited_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl MessageRow {
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
            limited: self.limited_reason.is_some(),
            payload: self.payload.clone(),
            created_at: self.created_at,
            error_code: None,
            error_message: None,
        }
    }
}

pub struct NewMessage<'a> {
    pub id: Uuid,
    pub restaurant_id: Uuid,
    pub conversation_id: Uuid,
    pub wa_sid: Option<&'a str>,
    pub direction: &'a str,
    pub author: &'a str,
    pub kind: &'a str,
    pub body: &'a str,
    pub payload: serde_json::Value,
    pub status: &'a str,
    pub limited_reason: Option<&'a str>,
    pub reply_to: Option<Uuid>,
    pub reply_index: i32,
}

const MESSAGE: &str =
    "id, restaurant_id, conversation_id, wa_sid, direction, author, kind, body, payload, \
    status, limited_reason, created_at";

/// Stores a message once: `None` if a message with this id or Twilio sid
/// is already stored.
pub async fn insert_message(
    tx: &mut PgConnection,
    m: NewMessage<'_>,
) -> Result<Option<MessageRow>, sqlx::Error> {
    let sql = format!("{INSERT_MESSAGE} RETURNING {MESSAGE}");
    bind_message(sqlx::query_as(&sql), m)
        .fetch_optional(&mut *tx)
        .await
}

/// An outgoing message decided inside a window, written with the others
/// of the window in one statement just before the outbox
/// ([`insert_replies`]): one round trip per window instead of one per
/// message. Its id is derived from the input that decided it, so only a
/// repeated input could meet it already stored.
pub struct Reply {
    pub id: Uuid,
    pub restaurant_id: Uuid,
    pub conversation_id: Uuid,
    pub author: String,
    pub kind: &'static str,
    pub body: String,
    pub payload: serde_json::Value,
    pub reply_to: Option<Uuid>,
    pub reply_index: i32,
}

/// Stores the window's outgoing messages (pending, in the order decided);
/// returns the ids that were already stored, whose sends must not go out
/// again.
pub async fn insert_replies(
    tx: &mut PgConnection,
    replies: &[Reply],
) -> Result<Vec<Uuid>, sqlx::Error> {
    if replies.is_empty() {
        return Ok(vec![]);
    }
    let ids: Vec<Uuid> = replies.iter().map(|r| r.id).collect();
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO messages (id, restaurant_id, conversation_id, direction, author, kind, \
            body, payload, status, reply_to, reply_index) \
         SELECT id, restaurant_id, conversation_id, 'out', author, kind, body, payload, \
            'pending', reply_to, reply_index \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], \
            $7::jsonb[], $8::uuid[], $9::int4[]) WITH ORDINALITY \
            AS r(id, restaurant_id, conversation_id, author, kind, body, payload, reply_to, \
                reply_index, n) \
         ORDER BY n ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&ids)
    .bind(replies.iter().map(|r| r.restaurant_id).collect::<Vec<_>>())
    .bind(
        replies
            .iter()
            .map(|r| r.conversation_id)
            .collect::<Vec<_>>(),
    )
    .bind(
        replies
            .iter()
            .map(|r| r.author.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(replies.iter().map(|r| r.kind).collect::<Vec<_>>())
    .bind(replies.iter().map(|r| r.body.as_str()).collect::<Vec<_>>())
    .bind(replies.iter().map(|r| &r.payload).collect::<Vec<_>>())
    .bind(replies.iter().map(|r| r.reply_to).collect::<Vec<_>>())
    .bind(replies.iter().map(|r| r.reply_index).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    if inserted.len() == ids.len() {
        return Ok(vec![]);
    }
    Ok(ids
        .into_iter()
        .filter(|id| !inserted.contains(id))
        .collect())
}

/// A query that inserts a message.
type Insert<'q, O> = sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>;

const INSERT_MESSAGE: &str =
    "INSERT INTO messages (id, restaurant_id, conversation_id, wa_sid, direction, author, kind, \
        body, payload, status, limited_reason, reply_to, reply_index) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING";

/// The thirteen values of `INSERT_MESSAGE`, in its order.
fn bind_message<'q, O>(query: Insert<'q, O>, m: NewMessage<'q>) -> Insert<'q, O> {
    query
        .bind(m.id)
        .bind(m.restaurant_id)
        .bind(m.conversation_id)
        .bind(m.wa_sid)
        .bind(m.direction)
        .bind(m.author)
        .bind(m.kind)
        .bind(m.body)
        .bind(m.payload)
        .bind(m.status)
        .bind(m.limited_reason)
        .bind(m.reply_to)
        .bind(m.reply_index)
}

/// Keeps the body exactly as the customer sent it, when the visible body
/// differs (it had U+0000, which `text` cannot hold).
pub async fn keep_original_body(
    tx: &mut PgConnection,
    message_id: Uuid,
    original: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE messages SET body_original = $2 WHERE id = $1")
        .bind(message_id)
        .bind(original)
        .execute(&mut *tx)
        .await
        .map(|_| ())
}

/// The total and fulfilment of an order, for telling the customer.
pub async fn order_summary(
    tx: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT total, fulfilment FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await
}

/// What an order ticket for the restaurant's staff shows, and where it goes.
#[derive(sqlx::FromRow)]
pub struct OrderTicket {
    pub number: i64,
    pub fulfilment: String,
    pub address: Option<String>,
    pub payment_method: String,
    /// The priced lines as the order stage stored them (`OrderLineView`s).
    pub lines: serde_json::Value,
    pub subtotal: i64,
    pub delivery_fee: i64,
    pub total: i64,
    pub currency: String,
    pub branch_name_en: Option<String>,
    pub branch_name_ar: Option<String>,
    /// The order's branch's staff number, else the restaurant's (blank
    /// counts as unset); `None` when neither is configured.
    pub staff_whatsapp: Option<String>,
}

pub async fn order_ticket(
    tx: &mut PgConnection,
    restaurant_id: Uuid,
    order_id: Uuid,
) -> Result<Option<OrderTicket>, sqlx::Error> {
    sqlx::query_as(
        "SELECT o.number, o.fulfilment, o.address, o.payment_method, o.lines, o.subtotal, \
            o.delivery_fee, o.total, o.currency, b.name_en AS branch_name_en, b.name_ar AS branch_name_ar, \
            COALESCE(NULLIF(btrim(b.staff_whatsapp), ''), NULLIF(btrim(r.staff_whatsapp), '')) AS staff_whatsapp \
         FROM orders o JOIN restaurants r ON r.id = o.restaurant_id \
         LEFT JOIN branches b ON b.id = o.branch_id \
         WHERE o.id = $1 AND o.restaurant_id = $2",
    )
    .bind(order_id)
    .bind(restaurant_id)
    .fetch_optional(&mut *tx)
    .await
}

/// Whether `address` (`whatsapp:+E164`) is a staff number of the
/// restaurant or of one of its branches (stored with or without the
/// `whatsapp:` prefix).
pub async fn is_staff_number(
    tx: &mut PgConnection,
    restaurant_id: Uuid,
    address: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM restaurants WHERE id = $1 \
                AND $2 IN (btrim(staff_whatsapp), 'whatsapp:' || btrim(staff_whatsapp))) \
            OR EXISTS (SELECT 1 FROM branches WHERE restaurant_id = $1 \
                AND $2 IN (btrim(staff_whatsapp), 'whatsapp:' || btrim(staff_whatsapp)))",
    )
    .bind(restaurant_id)
    .bind(address)
    .fetch_one(&mut *tx)
    .await
}

/// Schedules the bot to come back to an order later (rating "Later").
pub async fn remind(
    tx: &mut PgConnection,
    id: Uuid,
    conversation: &ConversationRow,
    order_id: Uuid,
    due_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO reminders (id, restaurant_id, conversation_id, order_id, due_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(conversation.restaurant_id)
    .bind(conversation.id)
    .bind(order_id)
    .bind(due_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A reminder whose time has come, with what its notice needs.
#[derive(sqlx::FromRow)]
pub struct DueReminder {
    pub id: Uuid,
    pub restaurant_id: Uuid,
    pub conversation_id: Uuid,
    pub order_id: Uuid,
    pub order_number: i64,
    pub order_status: String,
    pub customer: String,
}

pub async fn due_reminders(
    pool: &sqlx::PgPool,
    limit: i64,
) -> Result<Vec<DueReminder>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id, r.restaurant_id, r.conversation_id, r.order_id, o.number AS order_number, \
            o.status AS order_status, c.customer \
         FROM reminders r JOIN orders o ON o.id = r.order_id JOIN conversations c ON c.id = r.conversation_id \
         WHERE r.fired_at IS NULL AND r.due_at <= now() ORDER BY r.due_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn reminder_fired(pool: &sqlx::PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE reminders SET fired_at = now() WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}
