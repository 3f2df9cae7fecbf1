use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::BusError;

/// Header carrying the trace id that follows one customer message through
/// every stage.
pub const TRACE_HEADER: &str = "Waiter-Trace-Id";
/// Header naming the payload type, so tools can decode without guessing.
pub const KIND_HEADER: &str = "Waiter-Kind";

/// A message body that travels on the bus.
pub trait Payload: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// A stable name for the payload type (`ingest.inbound`, ...).
    const KIND: &'static str;
    /// Bumped when a change is not compatible with older readers. Adding an
    /// optional field is compatible: envelopes are encoded with field names.
    const VERSION: u16 = 1;
}

/// The versioned wrapper every payload travels in. `id` becomes the
/// `Nats-Msg-Id`, so publishing the same envelope twice stores it once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope<T> {
    pub v: u16,
    pub kind: String,
    pub id: String,
    pub trace_id: String,
    pub produced_at: DateTime<Utc>,
    pub body: T,
}

impl<T: Payload> Envelope<T> {
    pub fn new(id: impl Into<String>, trace_id: impl Into<String>, body: T) -> Self {
        Self {
            v: T::VERSION,
            kind: T::KIND.to_string(),
            id: id.into(),
            trace_id: trace_id.into(),
            produced_at: Utc::now(),
            body,
        }
    }

    /// A new envelope caused by this one: it keeps the trace id.
    pub fn follow<U: Payload>(&self, id: impl Into<String>, body: U) -> Envelope<U> {
        Envelope::new(id, self.trace_id.clone(), body)
    }

    /// MessagePack with field names (an added field never breaks an older
    /// reader) in its human-readable form (ids and times as strings), so
    /// `just replay` can show any envelope as JSON.
    pub fn encode(&self) -> Result<Vec<u8>, BusError> {
        let mut bytes = Vec::with_capacity(512);
        let mut serializer = rmp_serde::Serializer::new(&mut bytes)
            .with_struct_map()
            .with_human_readable();
        self.serialize(&mut serializer)
            .map_err(|source| BusError::Encode {
                kind: T::KIND,
                source,
            })?;
        Ok(bytes)
    }

    /// Decodes an envelope. One written by a newer schema version than
    /// this reader knows is [`BusError::NewerSchema`] (a rolling deploy:
    /// wait for the newer reader), not a poison message.
    pub fn decode(bytes: &[u8]) -> Result<Self, BusError> {
        let mut deserializer = rmp_serde::Deserializer::from_read_ref(bytes).with_human_readable();
        match Self::deserialize(&mut deserializer) {
            Ok(envelope) if envelope.v > T::VERSION => Err(BusError::NewerSchema {
                kind: T::KIND,
                version: T::VERSION,
                found: envelope.v,
            }),
            Ok(envelope) => Ok(envelope),
            Err(e) => match schema_version(bytes) {
                Some(found) if found > T::VERSION => Err(BusError::NewerSchema {
                    kind: T::KIND,
                    version: T::VERSION,
                    found,
                }),
                _ => Err(BusError::Decode {
                    kind: T::KIND,
                    version: T::VERSION,
                    reason: e.to_string(),
                }),
            },
        }
    }
}

/// The schema version of an envelope whose body this reader cannot decode.
fn schema_version(bytes: &[u8]) -> Option<u16> {
    #[derive(Deserialize)]
    struct Version {
        v: u16,
    }
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(bytes).with_human_readable();
    Version::deserialize(&mut deserializer).ok().map(|v| v.v)
}

/// Decodes any envelope into JSON for inspection (`just replay`).
pub fn decode_to_json(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(bytes).with_human_readable();
    serde_json::Value::deserialize(&mut deserializer).map_err(|e| e.to_string())
}

/// A new random id for an envelope that has no natural one.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    struct Ping {
        text: String,
    }
    impl Payload for Ping {
        const KIND: &'static str = "test.ping";
    }

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    struct WithId {
        id: uuid::Uuid,
    }
    impl Payload for WithId {
        const KIND: &'static str = "test.with_id";
    }

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    struct PingV1Reader {}
    impl Payload for PingV1Reader {
        const KIND: &'static str = "test.ping";
    }

    #[test]
    fn round_trips_and_keeps_trace() {
        let env = Envelope::new(
            "id-1",
            "trace-1",
            Ping {
                text: "مرحبا 👋".into(),
            },
        );
        let back = Envelope::<Ping>::decode(&env.encode().unwrap()).unwrap();
        assert_eq!(back, env);
        let next = back.follow("id-2", Ping { text: "x".into() });
        assert_eq!(next.trace_id, "trace-1");
        assert_eq!(next.id, "id-2");
        let json = decode_to_json(&env.encode().unwrap()).unwrap();
        assert_eq!(json["body"]["text"], "مرحبا 👋");
        // Ids (uuids) and times are strings, not byte arrays.
        let with_id = Envelope::new(
            "id-3",
            "t",
            WithId {
                id: uuid::Uuid::nil(),
            },
        );
        let json = decode_to_json(&with_id.encode().unwrap()).unwrap();
        assert_eq!(json["body"]["id"], uuid::Uuid::nil().to_string());
        assert!(json["produced_at"].is_string());
    }

    #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
    struct PingV2 {
        text: u64,
    }
    impl Payload for PingV2 {
        const KIND: &'static str = "test.ping";
        const VERSION: u16 = 2;
    }

    #[test]
    fn a_newer_schema_is_told_apart_from_garbage() {
        let newer = Envelope::new("id", "t", PingV2 { text: 7 })
            .encode()
            .unwrap();
        // Whether or not the old reader could parse the body.
        assert!(matches!(
            Envelope::<Ping>::decode(&newer),
            Err(BusError::NewerSchema {
                version: 1,
                found: 2,
                ..
            })
        ));
        assert!(matches!(
            Envelope::<PingV1Reader>::decode(&newer),
            Err(BusError::NewerSchema { found: 2, .. })
        ));
        assert!(Envelope::<PingV2>::decode(&newer).is_ok());
    }

    #[test]
    fn an_older_reader_ignores_new_fields_and_garbage_is_an_error() {
        let env = Envelope::new("id", "t", Ping { text: "hi".into() });
        assert!(Envelope::<PingV1Reader>::decode(&env.encode().unwrap()).is_ok());
        assert!(matches!(
            Envelope::<Ping>::decode(b"\x01\x02garbage"),
            Err(BusError::Decode { .. })
        ));
    }
}
