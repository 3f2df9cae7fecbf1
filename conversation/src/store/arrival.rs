//! A customer's message as it arrives: its first application, the
//! conversation's upsert, the message stored once and counted on its
//! conversation, in one statement.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ids, ConversationRow, MessageRow};

/// A customer's message for [`arrive`].
pub struct Arrival<'a> {
    /// The stage applying it and its envelope id (`applied_inputs`).
    pub stage: &'a str,
    pub input_id: &'a str,
    pub restaurant_id: Uuid,
    pub customer: &'a str,
    pub customer_name: Option<&'a str>,
    pub wa_id: Option<&'a str>,
    pub message_id: Uuid,
    pub message_sid: &'a str,
    pub kind: &'static str,
    pub body: &'a str,
    pub payload: serde_json::Value,
    pub limited_reason: Option<&'a str>,
    pub received_at: DateTime<Utc>,
}

/// What [`arrive`] found and did.
pub struct Arrived {
    /// The conversation as it counted the message (created on first contact).
    pub conversation: ConversationRow,
    /// The customer opted out of the restaurant's marketing.
    pub marketing_opted_out: bool,
    /// When the customer last wrote before this message.
    pub previous_inbound: Option<DateTime<Utc>>,
    /// The message as stored; `None` if a message with its id or Twilio
    /// sid was stored before (under another envelope id), which leaves
    /// the conversation's counts unchanged.
    pub stored: Option<MessageRow>,
}

#[derive(sqlx::FromRow)]
struct Row {
    customer: String,
    customer_name: Option<String>,
    unread_count: i32,
    bot_active: bool,
    bot_paused_at: Option<DateTime<Utc>>,
    dialogue: serde_json::Value,
    last_message_at: Option<DateTime<Utc>>,
    last_inbound_at: Option<DateTime<Utc>>,
    marketing_opted_out: bool,
    previous_inbound: Option<DateTime<Utc>>,
    stored_at: Option<DateTime<Utc>>,
}

/// Applies a customer's message's arrival in one round trip: records the
/// input's first application, upserts the conversation, stores the
/// message once and counts it (unread, last message and inbound times).
/// `None` when the input was applied before; nothing is changed then.
///
/// The statements of one query see the same snapshot, so the message is
/// counted through the upsert itself (a row may change once per query),
/// and the foreign key of a first message is checked at the end of the
/// query, after its conversation is inserted.
pub async fn arrive(tx: &mut PgConnection, a: Arrival<'_>) -> Result<Option<Arrived>, sqlx::Error> {
    let conversation_id = ids::conversation(a.restaurant_id, a.customer);
    let row: Option<Row> = sqlx::query_as(&format!(
        "WITH first AS ( \
            INSERT INTO applied_inputs (stage, input_id) VALUES ($6, $7) \
            ON CONFLICT DO NOTHING RETURNING 1), \
         m AS ( \
            INSERT INTO messages (id, restaurant_id, conversation_id, wa_sid, direction, author, \
                kind, body, payload, status, limited_reason) \
            SELECT $8::uuid, $2::uuid, $1::uuid, $9::text, 'in', 'customer', $10::text, \
                $11::text, $12::jsonb, 'received', $13::text \
            WHERE EXISTS (SELECT 1 FROM first) \
            ON CONFLICT DO NOTHING RETURNING created_at), \
         counted AS ( \
            SELECT count(*)::int4 AS n, CASE WHEN count(*) > 0 THEN $14::timestamptz END AS at \
            FROM m), \
         c AS ( \
            INSERT INTO conversations (id, restaurant_id, customer, customer_name, wa_id, \
                unread_count, last_message_at, last_inbound_at) \
            SELECT $1::uuid, $2::uuid, $3::text, $4::text, $5::text, n, at, at FROM counted \
            WHERE EXISTS (SELECT 1 FROM first) \
            ON CONFLICT (restaurant_id, customer) DO UPDATE SET \
                customer_name = COALESCE(EXCLUDED.customer_name, conversations.customer_name), \
                wa_id = COALESCE(EXCLUDED.wa_id, conversations.wa_id), \
                unread_count = conversations.unread_count + EXCLUDED.unread_count, \
                last_message_at = GREATEST(conversations.last_message_at, EXCLUDED.last_message_at), \
                last_inbound_at = GREATEST(conversations.last_inbound_at, EXCLUDED.last_inbound_at) \
            RETURNING customer, customer_name, unread_count, bot_active, bot_paused_at, dialogue, \
                last_message_at, last_inbound_at, {} AS marketing_opted_out) \
         SELECT c.*, \
            (SELECT last_inbound_at FROM conversations WHERE id = $1) AS previous_inbound, \
            (SELECT created_at FROM m) AS stored_at \
         FROM c",
        waiter_migrations::consent::opted_out_sql("$2", "$3")
    ))
    .bind(conversation_id)
    .bind(a.restaurant_id)
    .bind(a.customer)
    .bind(a.customer_name)
    .bind(a.wa_id)
    .bind(a.stage)
    .bind(a.input_id)
    .bind(a.message_id)
    .bind(a.message_sid)
    .bind(a.kind)
    .bind(a.body)
    .bind(&a.payload)
    .bind(a.limited_reason)
    .bind(a.received_at)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(|r| Arrived {
        stored: r.stored_at.map(|created_at| MessageRow {
            id: a.message_id,
            restaurant_id: a.restaurant_id,
            conversation_id,
            wa_sid: Some(a.message_sid.to_string()),
            direction: "in".into(),
            author: "customer".into(),
            kind: a.kind.into(),
            body: a.body.to_string(),
            payload: a.payload,
            status: "received".into(),
            limited_reason: a.limited_reason.map(str::to_string),
            created_at,
        }),
        conversation: ConversationRow {
            id: conversation_id,
            restaurant_id: a.restaurant_id,
            customer: r.customer,
            customer_name: r.customer_name,
            unread_count: r.unread_count,
            bot_active: r.bot_active,
            bot_paused_at: r.bot_paused_at,
            dialogue: r.dialogue,
            last_message_at: r.last_message_at,
            last_inbound_at: r.last_inbound_at,
        },
        marketing_opted_out: r.marketing_opted_out,
        previous_inbound: r.previous_inbound,
    }))
}
