//! What a restaurant owes its customers, through the whole pipeline with
//! the Twilio simulator: the 24-hour window on every send, marketing
//! opt-out, customer data requests, analytics that tell the truth, and
//! signed order webhooks.

mod analytics;
mod consent;
mod customer;
mod webhooks;
mod window;

use serde_json::{json, Value};
use waiter_e2e::{chat::*, Pipeline};

/// A ContentSid as Twilio writes them (`HX` + 32 hex digits).
pub fn content_sid(n: u8) -> String {
    format!("HX{:032x}", n)
}

/// `METHOD /api/restaurants/<restaurant 0>/<path>` as its staff; (HTTP status, JSON body).
pub async fn api(
    p: &Pipeline,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(
            method,
            format!(
                "http://{}/api/restaurants/{}/{path}",
                p.notifier,
                p.restaurant(0).id
            ),
        )
        .bearer_auth(p.token(0));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// The dashboard's list entry of a conversation.
pub async fn listed(p: &Pipeline, conversation: uuid::Uuid) -> Value {
    let (status, page) = api(p, reqwest::Method::GET, "conversations?limit=100", None).await;
    assert_eq!(status, 200, "{page}");
    page["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == conversation.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("conversation {conversation} not listed: {page}"))
}

/// Has staff move a delivery `order` to DELIVERED, then the customer rate
/// it `stars` from the rating prompt: the replies to the rating.
pub async fn deliver_and_rate(p: &Pipeline, chat: &Chat<'_>, order: &Order, stars: u8) -> Vec<Out> {
    for status in ["PREPARING", "OUT_FOR_DELIVERY", "DELIVERED"] {
        let (code, body) = api(
            p,
            reqwest::Method::PATCH,
            &format!("orders/{}/status", order.id),
            Some(json!({ "status": status })),
        )
        .await;
        assert_eq!(code, 200, "{status}: {body}");
    }
    chat.received(&format!("Order #{} has been delivered", order.number))
        .await;
    let prompt = chat.last_sent("rating_prompt").await;
    let choices = chat
        .tap(&opt(
            std::slice::from_ref(&prompt),
            &format!("rate:{}:now", order.id),
            "",
        ))
        .await;
    chat.pick(&opt(&choices, &format!("rate:{}:{stars}", order.id), ""))
        .await
}

/// Lets a test's customers chat faster than a person would.
pub async fn many_messages_a_minute(p: &Pipeline, restaurant: uuid::Uuid) {
    sqlx::query("UPDATE restaurants SET customer_rate_per_minute = 200 WHERE id = $1")
        .bind(restaurant)
        .execute(p.env.pool())
        .await
        .unwrap();
}
