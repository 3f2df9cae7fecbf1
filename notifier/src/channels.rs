//! The WebSocket protocol, as pure functions: what a client may send, which
//! of the channels it asks for it may have, and the frames it receives.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;
use waiter_nats::events::{DashboardEvent, EventType};

use crate::auth::Principal;

/// The channel suffixes a dashboard can subscribe to (`EventType::channel`).
pub const CHANNEL_KINDS: [&str; 3] = ["messages", "orders", "conversations"];

/// A set of channel kinds as bits (bit `i` = `CHANNEL_KINDS[i]`), so the
/// fan-out tests an event against a subscriber with one AND.
pub type KindSet = u8;

/// The bit of one channel kind (0 for a name that is not a kind).
pub fn kind_bit(kind: &str) -> KindSet {
    CHANNEL_KINDS
        .iter()
        .position(|k| *k == kind)
        .map_or(0, |i| 1 << i)
}

/// One dashboard channel: `ws:restaurant:<id>:<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Channel {
    pub restaurant_id: Uuid,
    pub kind: &'static str,
}

impl Channel {
    pub fn parse(raw: &str) -> Option<Channel> {
        let rest = raw.strip_prefix("ws:restaurant:")?;
        let (id, kind) = rest.split_once(':')?;
        let restaurant_id = Uuid::parse_str(id).ok()?;
        let kind = CHANNEL_KINDS.into_iter().find(|k| *k == kind)?;
        Some(Channel {
            restaurant_id,
            kind,
        })
    }

    pub fn name(&self) -> String {
        format!("ws:restaurant:{}:{}", self.restaurant_id, self.kind)
    }
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ClientRequest {
    /// Replaces the socket's subscription. `since` is the last JetStream
    /// sequence the client saw: delivery resumes right after it.
    Subscribe {
        channels: Vec<String>,
        #[serde(default)]
        since: Option<u64>,
    },
    /// An application-level keepalive for clients that cannot send
    /// WebSocket pings (browsers); answered with `{"type":"pong"}`.
    Ping,
}

impl ClientRequest {
    pub fn parse(text: &str) -> Result<ClientRequest, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

/// The channels a subscription grants, by restaurant, and the ones it refuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    pub allowed: BTreeMap<Uuid, BTreeSet<&'static str>>,
    /// Refused channels with their error frames, in request order.
    pub refused: Vec<Value>,
}

impl Grant {
    /// Splits the requested channels into granted and refused ones:
    /// another restaurant's channel is `forbidden` (unless admin), anything
    /// that is not a channel name is `bad_channel`, and a channel past the
    /// first `max_channels` distinct ones is `too_many_channels`.
    pub fn decide(principal: &Principal, requested: &[String], max_channels: usize) -> Grant {
        let mut grant = Grant::default();
        let mut granted = 0;
        for raw in requested {
            match Channel::parse(raw) {
                None => grant
                    .refused
                    .push(error_frame("bad_channel", Some(raw), None)),
                Some(c) if !principal.may_access(c.restaurant_id) => grant
                    .refused
                    .push(error_frame("forbidden", Some(raw), None)),
                Some(c) if grant.has(&c) => {}
                Some(_) if granted >= max_channels => grant.refused.push(error_frame(
                    "too_many_channels",
                    Some(raw),
                    Some(&format!("at most {max_channels} channels per socket")),
                )),
                Some(c) => {
                    granted += 1;
                    grant
                        .allowed
                        .entry(c.restaurant_id)
                        .or_default()
                        .insert(c.kind);
                }
            }
        }
        grant
    }

    fn has(&self, channel: &Channel) -> bool {
        self.allowed
            .get(&channel.restaurant_id)
            .is_some_and(|kinds| kinds.contains(channel.kind))
    }

    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    /// The granted restaurants, each with its channel kinds as bits.
    pub fn kind_sets(&self) -> impl Iterator<Item = (Uuid, KindSet)> + '_ {
        self.allowed
            .iter()
            .map(|(id, kinds)| (*id, kinds.iter().fold(0, |set, k| set | kind_bit(k))))
    }

    /// The granted channel names (sorted).
    pub fn channel_names(&self) -> Vec<String> {
        self.allowed
            .iter()
            .flat_map(|(id, kinds)| {
                kinds.iter().map(move |kind| {
                    Channel {
                        restaurant_id: *id,
                        kind,
                    }
                    .name()
                })
            })
            .collect()
    }

    /// The single restaurant when there is exactly one (the usual case: the
    /// consumer then filters on that restaurant's subjects).
    pub fn single_restaurant(&self) -> Option<Uuid> {
        match self.allowed.len() {
            1 => self.allowed.keys().next().copied(),
            _ => None,
        }
    }

    /// Whether an event belongs to a granted channel.
    pub fn admits(&self, event: &DashboardEvent) -> bool {
        self.allowed
            .get(&event.restaurant_id)
            .is_some_and(|kinds| kinds.contains(event.event_type.channel()))
    }
}

/// `{"type": "<event type>", "seq": n, "data": {...}}`.
pub fn event_frame(event_type: EventType, seq: u64, data: &Value) -> String {
    json!({"type": event_type.as_str(), "seq": seq, "data": data}).to_string()
}

pub fn subscribed_frame(channels: &[String]) -> String {
    json!({"type": "subscribed", "channels": channels}).to_string()
}

pub fn pong_frame() -> String {
    json!({"type": "pong"}).to_string()
}

/// Told to a client whose `since` cannot be served from the stream (older
/// than what the stream keeps, or more events than a catch-up may carry):
/// the events after `since` and before `first_seq` will not be delivered,
/// so it reloads its state over REST; delivery goes on from `first_seq`.
pub fn events_missed_frame(first_seq: u64, reason: &str) -> String {
    json!({"type": "error", "code": "events_missed", "first_seq": first_seq, "reason": reason})
        .to_string()
}

/// `{"type": "error", "code": ..., "channel"?: ..., "reason"?: ...}`.
pub fn error_frame(code: &str, channel: Option<&str>, reason: Option<&str>) -> Value {
    let mut frame = json!({"type": "error", "code": code});
    if let Some(channel) = channel {
        frame["channel"] = channel.into();
    }
    if let Some(reason) = reason {
        frame["reason"] = reason.into();
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn staff(restaurant_id: Uuid) -> Principal {
        Principal {
            sub: "u".into(),
            restaurant_id,
            role: Role::Staff,
            expires_at: i64::MAX,
        }
    }

    #[test]
    fn parses_channel_names() {
        let id = Uuid::new_v4();
        let c = Channel::parse(&format!("ws:restaurant:{id}:orders")).unwrap();
        assert_eq!(c.restaurant_id, id);
        assert_eq!(c.kind, "orders");
        assert_eq!(c.name(), format!("ws:restaurant:{id}:orders"));
        for bad in [
            format!("ws:restaurant:{id}:menu"),
            format!("ws:restaurant:{id}"),
            "ws:restaurant:nope:orders".to_string(),
            format!("restaurant:{id}:orders"),
            format!("ws:restaurant:{id}:orders:x"),
            String::new(),
        ] {
            assert_eq!(Channel::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn grants_own_channels_only() {
        let mine = Uuid::new_v4();
        let theirs = Uuid::new_v4();
        let requested = vec![
            format!("ws:restaurant:{mine}:orders"),
            format!("ws:restaurant:{theirs}:orders"),
            "nonsense".to_string(),
            format!("ws:restaurant:{mine}:messages"),
        ];
        let grant = Grant::decide(&staff(mine), &requested, 30);
        assert_eq!(grant.single_restaurant(), Some(mine));
        assert_eq!(
            grant.kind_sets().collect::<Vec<_>>(),
            vec![(mine, kind_bit("messages") | kind_bit("orders"))]
        );
        assert_eq!(
            grant.channel_names(),
            vec![
                format!("ws:restaurant:{mine}:messages"),
                format!("ws:restaurant:{mine}:orders"),
            ]
        );
        assert_eq!(grant.refused.len(), 2);
        assert_eq!(grant.refused[0]["code"], "forbidden");
        assert_eq!(grant.refused[0]["channel"], requested[1]);
        assert_eq!(grant.refused[1]["code"], "bad_channel");

        let order = DashboardEvent::new(mine, EventType::OrderCreated, json!({}));
        let alert = DashboardEvent::new(mine, EventType::LowRating, json!({}));
        let conv = DashboardEvent::new(mine, EventType::ConversationUpdated, json!({}));
        let other = DashboardEvent::new(theirs, EventType::OrderCreated, json!({}));
        assert!(grant.admits(&order));
        assert!(grant.admits(&alert));
        assert!(!grant.admits(&conv));
        assert!(!grant.admits(&other));

        let admin = Principal {
            role: Role::Admin,
            ..staff(mine)
        };
        let grant = Grant::decide(&admin, &requested, 30);
        assert_eq!(grant.allowed.len(), 2);
        assert_eq!(grant.single_restaurant(), None);
        assert!(grant.admits(&other));
    }

    #[test]
    fn caps_the_channels_of_one_socket() {
        let admin = Principal {
            role: Role::Admin,
            ..staff(Uuid::nil())
        };
        let restaurants: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let mut requested: Vec<String> = restaurants
            .iter()
            .map(|r| format!("ws:restaurant:{r}:orders"))
            .collect();
        // A repeated channel is granted once and does not count twice.
        requested.insert(1, requested[0].clone());
        let grant = Grant::decide(&admin, &requested, 2);
        assert_eq!(grant.channel_names().len(), 2);
        assert_eq!(grant.refused.len(), 1, "{:?}", grant.refused);
        assert_eq!(grant.refused[0]["code"], "too_many_channels");
        assert_eq!(grant.refused[0]["channel"], requested[3]);
        assert_eq!(grant.refused[0]["reason"], "at most 2 channels per socket");
        assert_eq!(kind_bit("menu"), 0);
    }

    #[test]
    fn parses_client_requests() {
        assert_eq!(
            ClientRequest::parse(r#"{"action":"subscribe","channels":["a"],"since":7}"#),
            Ok(ClientRequest::Subscribe {
                channels: vec!["a".into()],
                since: Some(7)
            })
        );
        assert_eq!(
            ClientRequest::parse(r#"{"action":"subscribe","channels":[]}"#),
            Ok(ClientRequest::Subscribe {
                channels: vec![],
                since: None
            })
        );
        assert_eq!(
            ClientRequest::parse(r#"{"action":"ping"}"#),
            Ok(ClientRequest::Ping)
        );
        for bad in [
            "{",
            r#"{"action":"dance"}"#,
            r#"{"action":"subscribe"}"#,
            r#"{"action":"subscribe","channels":[],"since":-1}"#,
            "[]",
        ] {
            assert!(ClientRequest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn frames_have_the_contract_shape() {
        let frame: Value = serde_json::from_str(&event_frame(
            EventType::MessageReceived,
            42,
            &json!({"body": "hi"}),
        ))
        .unwrap();
        assert_eq!(
            frame,
            json!({"type": "message.received", "seq": 42, "data": {"body": "hi"}})
        );
        assert_eq!(
            error_frame("bad_request", None, Some("x")),
            json!({"type": "error", "code": "bad_request", "reason": "x"})
        );
        let missed: Value = serde_json::from_str(&events_missed_frame(7, "why")).unwrap();
        assert_eq!(
            missed,
            json!({"type": "error", "code": "events_missed", "first_seq": 7, "reason": "why"})
        );
    }
}
