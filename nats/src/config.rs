use std::time::Duration;

use crate::topology::Topology;

/// How a process reaches the bus and which namespace it lives in.
///
/// `WAITER_NAMESPACE` keeps deployments (and tests) that share one NATS
/// server apart: every stream, subject, consumer and bucket name carries it.
/// `WAITER_PARTITIONS` must be the same for every process of a deployment:
/// changing it remaps conversations to partitions, so drain first.
#[derive(Debug, Clone)]
pub struct BusConfig {
    pub url: String,
    pub namespace: String,
    pub partitions: u16,
    /// How long a publish waits for the PubAck before giving up.
    pub publish_timeout: Duration,
    /// Replicas for every stream: 1 on a single server, 3 on a cluster.
    pub replicas: usize,
    /// How long a delivered message may go unacknowledged before JetStream
    /// gives it to another replica (a replica killed mid-message holds its
    /// partition this long).
    pub ack_wait: Duration,
}

impl BusConfig {
    pub const DEFAULT_URL: &'static str = "nats://127.0.0.1:4222";
    pub const DEFAULT_NAMESPACE: &'static str = "waiter";
    pub const DEFAULT_PARTITIONS: u16 = 16;

    /// Reads `NATS_URL`, `WAITER_NAMESPACE`, `WAITER_PARTITIONS`,
    /// `NATS_PUBLISH_TIMEOUT_MS` and `NATS_STREAM_REPLICAS`.
    pub fn from_env() -> Result<Self, String> {
        let url = std::env::var("NATS_URL").unwrap_or_else(|_| Self::DEFAULT_URL.to_string());
        let namespace = std::env::var("WAITER_NAMESPACE")
            .unwrap_or_else(|_| Self::DEFAULT_NAMESPACE.to_string());
        Topology::validate_namespace(&namespace)?;
        let partitions = parse_env("WAITER_PARTITIONS", Self::DEFAULT_PARTITIONS)?;
        if partitions == 0 || partitions > 1024 {
            return Err(format!(
                "WAITER_PARTITIONS must be between 1 and 1024, got {partitions}"
            ));
        }
        let timeout_ms: u64 = parse_env("NATS_PUBLISH_TIMEOUT_MS", 5_000)?;
        let replicas: usize = parse_env("NATS_STREAM_REPLICAS", 1)?;
        if !(1..=5).contains(&replicas) {
            return Err(format!(
                "NATS_STREAM_REPLICAS must be between 1 and 5, got {replicas}"
            ));
        }
        let ack_wait_ms: u64 = parse_env("NATS_ACK_WAIT_MS", 30_000)?;
        if ack_wait_ms < 1_000 {
            return Err(format!(
                "NATS_ACK_WAIT_MS must be at least 1000, got {ack_wait_ms}"
            ));
        }
        Ok(Self {
            url,
            namespace,
            partitions,
            publish_timeout: Duration::from_millis(timeout_ms),
            replicas,
            ack_wait: Duration::from_millis(ack_wait_ms),
        })
    }

    /// A configuration for a local server and the given namespace (tests, tools).
    pub fn local(namespace: &str, partitions: u16) -> Self {
        Self {
            url: std::env::var("NATS_URL").unwrap_or_else(|_| Self::DEFAULT_URL.to_string()),
            namespace: namespace.to_string(),
            partitions,
            publish_timeout: Duration::from_secs(5),
            replicas: 1,
            ack_wait: crate::streams::ACK_WAIT,
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.namespace, self.partitions)
    }
}

fn parse_env<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(raw) => raw
            .trim()
            .parse()
            .map_err(|_| format!("{name}={raw:?} is not a valid number")),
        Err(_) => Ok(default),
    }
}
