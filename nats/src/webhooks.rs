//! Order events for the restaurants' webhook endpoints (Standard
//! Webhooks): what the order stage stages and the outbound stage posts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    envelope::Payload,
    events::{EventType, OrderView},
    messages::OrderStatus,
};

/// The event types an endpoint receives.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum WebhookEvent {
    #[serde(rename = "order.created")]
    Created,
    #[serde(rename = "order.updated")]
    Updated,
    #[serde(rename = "order.rated")]
    Rated,
    #[serde(rename = "order.cancelled")]
    Cancelled,
}

impl WebhookEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::Created => "order.created",
            WebhookEvent::Updated => "order.updated",
            WebhookEvent::Rated => "order.rated",
            WebhookEvent::Cancelled => "order.cancelled",
        }
    }

    /// The webhook of a dashboard order event, if it has one (a low-rating
    /// alert is for staff only). A cancellation is told as such.
    pub fn of(event: EventType, order: &OrderView) -> Option<Self> {
        match event {
            EventType::OrderCreated => Some(WebhookEvent::Created),
            EventType::OrderUpdated if order.status == OrderStatus::Cancelled => {
                Some(WebhookEvent::Cancelled)
            }
            EventType::OrderUpdated => Some(WebhookEvent::Updated),
            EventType::OrderRated => Some(WebhookEvent::Rated),
            _ => None,
        }
    }
}

/// One order event for one endpoint. The envelope id is
/// `webhook:<webhook id>:<endpoint>`; `webhook_id` is the same for every
/// endpoint and every attempt, so receivers deduplicate on it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderWebhook {
    pub webhook_id: String,
    pub endpoint_id: Uuid,
    pub restaurant_id: Uuid,
    pub order_id: Uuid,
    pub event: WebhookEvent,
    /// When the order changed (the body's `timestamp`).
    pub occurred_at: DateTime<Utc>,
    pub order: OrderView,
}

impl Payload for OrderWebhook {
    const KIND: &'static str = "webhooks.order";
}

impl OrderWebhook {
    /// `msg_` + a UUID derived from the order event's own id, stable
    /// across the stage's retries and redeliveries.
    pub fn webhook_id_of(event_id: &str) -> String {
        format!(
            "msg_{}",
            Uuid::new_v5(&Uuid::NAMESPACE_OID, event_id.as_bytes()).simple()
        )
    }

    pub fn envelope_id(&self) -> String {
        format!("webhook:{}:{}", self.webhook_id, self.endpoint_id)
    }

    /// The JSON body posted: `{"type", "timestamp", "data"}` as the
    /// Standard Webhooks specification suggests.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "type": self.event.as_str(),
            "timestamp": self.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": self.order,
        }))
        .expect("a JSON value always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_ids_are_stable_per_event_and_distinct_between_events() {
        let a = OrderWebhook::webhook_id_of("order.created:1");
        assert_eq!(a, OrderWebhook::webhook_id_of("order.created:1"));
        assert_ne!(a, OrderWebhook::webhook_id_of("order.updated:1"));
        assert!(a.starts_with("msg_") && a.len() == 36, "{a}");
    }
}
