//! Customer data requests: everything held about one customer of one
//! restaurant ([`export`]), and erasing their personal data ([`forget`])
//! while the restaurant keeps anonymised orders for its books. Both leave
//! a row in `customer_requests`. What the streams still hold and when it
//! expires: `docs/DATA.md`.

use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0:?} is not a WhatsApp address (whatsapp:+ and 7 to 15 digits)")]
    BadAddress(String),
    #[error("the restaurant holds nothing about {0}")]
    Unknown(String),
}

/// Checks `whatsapp:+<E.164 digits>`, the form Twilio writes in `From`.
pub fn check_address(customer: &str) -> Result<&str, CustomerError> {
    let digits = customer
        .strip_prefix("whatsapp:+")
        .filter(|d| (7..=15).contains(&d.len()) && d.chars().all(|c| c.is_ascii_digit()));
    match digits {
        Some(_) => Ok(customer),
        None => Err(CustomerError::BadAddress(customer.to_string())),
    }
}

/// The number without the `whatsapp:` prefix, as texts (staff tickets) show it.
fn bare(customer: &str) -> &str {
    customer.strip_prefix("whatsapp:").unwrap_or(customer)
}

async fn rows(tx: &mut PgConnection, sql: &str, id: Uuid) -> Result<Value, sqlx::Error> {
    sqlx::query_scalar(sql).bind(id).fetch_one(&mut *tx).await
}

/// Everything held about the customer at the restaurant, as one JSON
/// document: the conversation, its messages, the orders with their
/// history, the ratings, the marketing consent and the webhook audit rows
/// that carry the number. Recorded in `customer_requests`.
pub async fn export(
    pool: &PgPool,
    restaurant_id: Uuid,
    customer: &str,
    operator: &str,
) -> Result<Value, CustomerError> {
    check_address(customer)?;
    let mut tx = pool.begin().await?;
    let conversation: Option<(Uuid, Value)> = sqlx::query_as(
        "SELECT id, to_jsonb(c) FROM conversations c WHERE restaurant_id = $1 AND customer = $2",
    )
    .bind(restaurant_id)
    .bind(customer)
    .fetch_optional(&mut *tx)
    .await?;
    let consent: Option<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(mc) - 'restaurant_id' - 'customer' FROM marketing_consent mc \
         WHERE restaurant_id = $1 AND customer = $2",
    )
    .bind(restaurant_id)
    .bind(customer)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((conversation_id, conversation)) = conversation else {
        return match consent {
            None => Err(CustomerError::Unknown(customer.to_string())),
            Some(consent) => Ok(json!({
                "customer": customer, "conversations": [], "messages": [], "orders": [],
                "ratings": [], "marketing_consent": consent, "webhook_audit": [],
            })),
        };
    };
    let messages = rows(
        &mut tx,
        "SELECT COALESCE(jsonb_agg(to_jsonb(m) - 'body_original' ORDER BY m.created_at, m.seq), '[]') \
         FROM messages m WHERE m.conversation_id = $1",
        conversation_id,
    )
    .await?;
    let orders = rows(
        &mut tx,
        "SELECT COALESCE(jsonb_agg(to_jsonb(o) || jsonb_build_object('history', \
            (SELECT COALESCE(jsonb_agg(to_jsonb(h) - 'order_id' ORDER BY h.at, h.id), '[]') \
             FROM order_status_history h WHERE h.order_id = o.id)) ORDER BY o.created_at), '[]') \
         FROM orders o WHERE o.conversation_id = $1",
        conversation_id,
    )
    .await?;
    let ratings = rows(
        &mut tx,
        "SELECT COALESCE(jsonb_agg(jsonb_build_object('order_number', o.number, 'rating', o.rating, \
            'comment', o.rating_comment, 'rated_at', o.rated_at) ORDER BY o.rated_at), '[]') \
         FROM orders o WHERE o.conversation_id = $1 AND o.rating IS NOT NULL",
        conversation_id,
    )
    .await?;
    let audit: Value = sqlx::query_scalar(
        "SELECT COALESCE(jsonb_agg(to_jsonb(a) ORDER BY a.received_at), '[]') FROM webhook_audit a \
         WHERE a.restaurant_id = $1 AND strpos(a.params::text, $2) > 0",
    )
    .bind(restaurant_id)
    .bind(customer)
    .fetch_one(&mut *tx)
    .await?;
    let count = |v: &Value| v.as_array().map_or(0, Vec::len);
    let counts = json!({
        "messages": count(&messages), "orders": count(&orders), "webhook_audit": count(&audit),
    });
    record(
        &mut tx,
        restaurant_id,
        Some(conversation_id),
        "export",
        operator,
        &counts,
    )
    .await?;
    tx.commit().await?;
    Ok(json!({
        "customer": customer,
        "conversations": [conversation],
        "messages": messages,
        "orders": orders,
        "ratings": ratings,
        "marketing_consent": consent,
        "webhook_audit": audit,
    }))
}

/// What [`forget`] changed, by table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Forgotten {
    pub conversation_id: Option<Uuid>,
    pub messages: u64,
    /// Staff tickets (on the staff number's conversation) naming the customer.
    pub tickets: u64,
    pub orders: u64,
    pub order_history: u64,
    pub webhook_audit: u64,
    pub outbox: u64,
    pub marketing_consent: u64,
}

/// Erases the customer's personal data at the restaurant, in one
/// transaction: message bodies and attachments (media, locations, buttons),
/// their name, number and WhatsApp id, the dialogue (cart, address,
/// location), order addresses and rating comments, the staff tickets that
/// name them, the number in order history and in the webhook audit, the
/// published outbox rows, and their marketing consent. Orders stay, with
/// their lines and totals, on a conversation renamed `erased:<id>`.
pub async fn forget(
    pool: &PgPool,
    restaurant_id: Uuid,
    customer: &str,
    operator: &str,
) -> Result<Forgotten, CustomerError> {
    check_address(customer)?;
    let mut tx = pool.begin().await?;
    let conversation: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM conversations WHERE restaurant_id = $1 AND customer = $2 FOR UPDATE",
    )
    .bind(restaurant_id)
    .bind(customer)
    .fetch_optional(&mut *tx)
    .await?;
    let mut done = Forgotten {
        conversation_id: conversation,
        ..Forgotten::default()
    };
    done.marketing_consent =
        sqlx::query("DELETE FROM marketing_consent WHERE restaurant_id = $1 AND customer = $2")
            .bind(restaurant_id)
            .bind(customer)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if conversation.is_none() && done.marketing_consent == 0 {
        return Err(CustomerError::Unknown(customer.to_string()));
    }
    let run = |sql: &'static str| sqlx::query(sql).bind(restaurant_id).bind(customer);
    done.webhook_audit = run(
        "UPDATE webhook_audit SET params = '[]', message_sid = NULL, reason = NULL \
         WHERE restaurant_id = $1 AND strpos(params::text, $2) > 0",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if let Some(id) = conversation {
        let on = |sql: &'static str| sqlx::query(sql).bind(id);
        done.webhook_audit += on(
            "UPDATE webhook_audit SET params = '[]', message_sid = NULL, reason = NULL \
             WHERE message_sid IN (SELECT wa_sid FROM messages WHERE conversation_id = $1)",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        done.messages = on(
            "UPDATE messages SET body = '', payload = '{}', body_original = NULL, wa_sid = NULL, \
                error_message = NULL, limited_reason = NULL, updated_at = now() \
             WHERE conversation_id = $1",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        done.orders = on(
            "UPDATE orders SET address = NULL, rating_comment = NULL, updated_at = now() \
             WHERE conversation_id = $1",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        done.order_history = sqlx::query(
            "UPDATE order_status_history SET actor = 'customer:erased' \
             WHERE order_id IN (SELECT id FROM orders WHERE conversation_id = $1) \
               AND actor = 'customer:' || $2",
        )
        .bind(id)
        .bind(customer)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        done.outbox = on(
            "DELETE FROM outbox WHERE published_at IS NOT NULL AND (aggregate_id = $1 \
                OR aggregate_id IN (SELECT id FROM orders WHERE conversation_id = $1))",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        on(
            "UPDATE conversations SET customer = 'erased:' || id, customer_name = NULL, \
                wa_id = NULL, language = NULL, dialogue = '{}' WHERE id = $1",
        )
        .execute(&mut *tx)
        .await?;
    }
    // Order tickets on the staff number's conversation show the number.
    done.tickets = sqlx::query(
        "UPDATE messages SET body = '', payload = '{}', body_original = NULL, updated_at = now() \
         WHERE restaurant_id = $1 AND author = 'system' AND strpos(body, $2) > 0",
    )
    .bind(restaurant_id)
    .bind(bare(customer))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let counts = serde_json::to_value(&done).unwrap_or_default();
    record(
        &mut tx,
        restaurant_id,
        conversation,
        "forget",
        operator,
        &counts,
    )
    .await?;
    tx.commit().await?;
    Ok(done)
}

async fn record(
    tx: &mut PgConnection,
    restaurant_id: Uuid,
    conversation_id: Option<Uuid>,
    kind: &str,
    operator: &str,
    counts: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customer_requests (id, restaurant_id, conversation_id, kind, operator, counts) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(Uuid::new_v4())
    .bind(restaurant_id)
    .bind(conversation_id)
    .bind(kind)
    .bind(operator)
    .bind(counts)
    .execute(&mut *tx)
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whatsapp_addresses_are_accepted() {
        assert!(check_address("whatsapp:+966500000001").is_ok());
        for bad in [
            "+966500000001",
            "whatsapp:966500000001",
            "whatsapp:+",
            "whatsapp:+12ab567",
            "whatsapp:+1234567890123456",
            "%",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
        assert_eq!(bare("whatsapp:+966500000001"), "+966500000001");
    }
}
