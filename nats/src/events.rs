//! Events for dashboards and the views they carry (also the REST shapes).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{envelope::Payload, messages::OrderStatus, topology::Topology};

/// The event types a dashboard receives, with the channel each belongs to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum EventType {
    #[serde(rename = "message.received")]
    MessageReceived,
    #[serde(rename = "message.sent")]
    MessageSent,
    #[serde(rename = "message.status")]
    MessageStatus,
    #[serde(rename = "conversation.updated")]
    ConversationUpdated,
    #[serde(rename = "order.created")]
    OrderCreated,
    #[serde(rename = "order.updated")]
    OrderUpdated,
    #[serde(rename = "order.rated")]
    OrderRated,
    #[serde(rename = "alert.low_rating")]
    LowRating,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::MessageReceived,
        EventType::MessageSent,
        EventType::MessageStatus,
        EventType::ConversationUpdated,
        EventType::OrderCreated,
        EventType::OrderUpdated,
        EventType::OrderRated,
        EventType::LowRating,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageReceived => "message.received",
            EventType::MessageSent => "message.sent",
            EventType::MessageStatus => "message.status",
            EventType::ConversationUpdated => "conversation.updated",
            EventType::OrderCreated => "order.created",
            EventType::OrderUpdated => "order.updated",
            EventType::OrderRated => "order.rated",
            EventType::LowRating => "alert.low_rating",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The dashboard channel suffix (`ws:restaurant:<id>:<channel>`).
    pub fn channel(self) -> &'static str {
        match self {
            EventType::MessageReceived | EventType::MessageSent | EventType::MessageStatus => {
                "messages"
            }
            EventType::ConversationUpdated => "conversations",
            EventType::OrderCreated
            | EventType::OrderUpdated
            | EventType::OrderRated
            | EventType::LowRating => "orders",
        }
    }
}

/// One event for one restaurant's dashboards.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DashboardEvent {
    pub restaurant_id: Uuid,
    pub event_type: EventType,
    pub data: serde_json::Value,
}

impl Payload for DashboardEvent {
    const KIND: &'static str = "events.dashboard";
}

impl DashboardEvent {
    pub fn new(restaurant_id: Uuid, event_type: EventType, data: impl Serialize) -> Self {
        Self {
            restaurant_id,
            event_type,
            data: serde_json::to_value(data).unwrap_or(serde_json::Value::Null),
        }
    }

    pub fn subject(&self, topology: &Topology) -> String {
        topology.event(&self.restaurant_id, self.event_type.as_str())
    }
}

/// A message as dashboards see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageView {
    pub id: Uuid,
    pub restaurant_id: Uuid,
    pub conversation_id: Uuid,
    /// `in` or `out`.
    pub direction: String,
    /// `customer`, `bot` or `staff`.
    pub author: String,
    pub kind: String,
    pub body: String,
    pub status: String,
    pub wa_sid: Option<String>,
    pub limited: bool,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// Twilio's error code of a failed outbound message.
    #[serde(default)]
    pub error_code: Option<String>,
    /// Twilio's reason for that failure.
    #[serde(default)]
    pub error_message: Option<String>,
}

/// A conversation as dashboards list it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationView {
    pub id: Uuid,
    pub restaurant_id: Uuid,
    pub customer: String,
    pub customer_name: Option<String>,
    pub unread_count: i32,
    pub bot_active: bool,
    pub last_message_at: Option<DateTime<Utc>>,
    pub last_inbound_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderLineView {
    pub item_id: Uuid,
    pub name: String,
    pub quantity: i32,
    pub unit_price: i64,
    pub line_total: i64,
}

/// An order as dashboards see it. Amounts are in minor units (fils, cents).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderView {
    pub id: Uuid,
    pub restaurant_id: Uuid,
    pub conversation_id: Uuid,
    pub number: i64,
    pub status: OrderStatus,
    pub fulfilment: String,
    pub payment_method: String,
    pub lines: Vec<OrderLineView>,
    pub subtotal: i64,
    pub delivery_fee: i64,
    pub total: i64,
    pub currency: String,
    pub rating: Option<i16>,
    pub rating_comment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;

    #[test]
    fn event_types_round_trip_and_have_channels() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        assert_eq!(EventType::LowRating.channel(), "orders");
        assert_eq!(EventType::MessageStatus.channel(), "messages");
    }

    #[test]
    fn json_data_survives_messagepack() {
        let event = DashboardEvent::new(
            Uuid::nil(),
            EventType::MessageReceived,
            serde_json::json!({"body": "شكرا", "n": 3, "nested": {"ok": true}}),
        );
        let env = Envelope::new("e1", "t1", event.clone());
        let back = Envelope::<DashboardEvent>::decode(&env.encode().unwrap()).unwrap();
        assert_eq!(back.body, event);
    }
}
