use thiserror::Error;

/// Failures talking to the bus. Every variant is transient from the point of
/// view of a message being handled (the broker may come back), except
/// [`BusError::Encode`] and [`BusError::Decode`], which mark a poison
/// message, and [`BusError::NewerSchema`], which asks for a newer reader.
#[derive(Debug, Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("JetStream refused to set up {what}: {reason}")]
    Setup { what: String, reason: String },
    #[error("publish to {subject} failed: {reason}")]
    Publish { subject: String, reason: String },
    #[error("JetStream did not acknowledge the publish to {subject} in time")]
    PublishTimeout { subject: String },
    #[error("cannot encode {kind}: {source}")]
    Encode {
        kind: &'static str,
        #[source]
        source: rmp_serde::encode::Error,
    },
    #[error("cannot decode {kind} (schema v{version}): {reason}")]
    Decode {
        kind: &'static str,
        version: u16,
        reason: String,
    },
    #[error("{kind} written with schema v{found}; this reader knows v{version}")]
    NewerSchema {
        kind: &'static str,
        version: u16,
        found: u16,
    },
    #[error("{subject} changed since it was read (compare-and-set lost)")]
    Conflict { subject: String },
    #[error("consumer {consumer} failed: {reason}")]
    Consumer { consumer: String, reason: String },
    #[error("key-value bucket {bucket}: {reason}")]
    KeyValue { bucket: String, reason: String },
}
