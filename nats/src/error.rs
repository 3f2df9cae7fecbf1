use thiserror::Error;

/// Failures talking to the bus. Every variant is transient from the point of
/// view of a message being handled (the broker may come back), except
/// [`BusError::Decode`], which marks a poison message.
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
    #[error("consumer {consumer} failed: {reason}")]
    Consumer { consumer: String, reason: String },
    #[error("key-value bucket {bucket}: {reason}")]
    KeyValue { bucket: String, reason: String },
}
