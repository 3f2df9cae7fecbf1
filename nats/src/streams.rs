//! Stream and durable consumer definitions, created idempotently at start-up.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use crate::{
    error::BusError,
    topology::{StreamKind, Topology},
    worker::WorkerConfig,
};

/// How long JetStream remembers a `Nats-Msg-Id`. Twilio retries a webhook
/// at most once, within its 15 s budget; our own retries after a 503 or a
/// restart come within minutes. Ten minutes covers both with room, while
/// keeping the server's id table small (rate × 600 s entries). Anything
/// older is caught by the unique keys in PostgreSQL.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

/// How long a message may take before JetStream gives it to another worker.
pub const ACK_WAIT: Duration = Duration::from_secs(30);

fn retention(kind: StreamKind) -> Duration {
    const DAY: u64 = 24 * 60 * 60;
    match kind {
        StreamKind::DeadLetter => Duration::from_secs(30 * DAY),
        _ => Duration::from_secs(7 * DAY),
    }
}

/// What a full stream does with the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// Deletes its oldest messages (consumed ones, unless a consumer is a
    /// whole cap behind).
    Old,
    /// Refuses the publish: the producer sees an error and retries.
    New,
}

/// A stream's size caps. JetStream reserves `max_bytes` of its store for
/// the stream when it is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    pub max_bytes: i64,
    pub max_messages: i64,
    pub discard: Discard,
}

impl StreamLimits {
    const MIB: i64 = 1 << 20;

    /// Production defaults. The work and event streams keep 7 days for
    /// `just replay` and drop their oldest (long consumed) messages when
    /// full, so old history never stops new traffic; their caps are far
    /// above a week of refused-request counts, which is all unsigned
    /// traffic can add. The tenant directory refuses instead: dropping an
    /// entry would make a restaurant unknown.
    pub fn default_for(kind: StreamKind) -> Self {
        let (max_bytes, max_messages, discard) = match kind {
            StreamKind::Ingest => (1024 * Self::MIB, 5_000_000, Discard::Old),
            StreamKind::Conversation => (1024 * Self::MIB, 5_000_000, Discard::Old),
            StreamKind::Order => (512 * Self::MIB, 2_000_000, Discard::Old),
            // One message per order event and endpoint, consumed within
            // minutes unless an endpoint keeps failing (then dead-lettered).
            StreamKind::Webhooks => (512 * Self::MIB, 2_000_000, Discard::Old),
            StreamKind::Outbound => (1024 * Self::MIB, 5_000_000, Discard::Old),
            StreamKind::Events => (1024 * Self::MIB, 5_000_000, Discard::Old),
            StreamKind::DeadLetter => (256 * Self::MIB, 500_000, Discard::Old),
            StreamKind::Directory => (16 * Self::MIB, 100_000, Discard::New),
            // One record per partition and per live replica: never near its
            // cap. Full, it refuses (heartbeats fail, partitions stop: safe)
            // rather than drop a lease record, which would look free.
            StreamKind::Leases => (16 * Self::MIB, 100_000, Discard::New),
        };
        Self {
            max_bytes,
            max_messages,
            discard,
        }
    }

    /// Small caps for test namespaces, many of which share one server.
    pub fn for_tests(kind: StreamKind) -> Self {
        Self {
            max_bytes: 32 * Self::MIB,
            max_messages: 1_000_000,
            ..Self::default_for(kind)
        }
    }

    fn apply(&self, config: &mut stream::Config) {
        config.max_bytes = self.max_bytes;
        config.max_messages = self.max_messages;
        config.discard = match self.discard {
            Discard::Old => stream::DiscardPolicy::Old,
            Discard::New => stream::DiscardPolicy::New,
        };
    }

    fn matches(&self, config: &stream::Config) -> bool {
        let mut wanted = config.clone();
        self.apply(&mut wanted);
        wanted.max_bytes == config.max_bytes
            && wanted.max_messages == config.max_messages
            && wanted.discard == config.discard
    }
}

/// The definition of one stream. Every stream keeps its messages for a
/// while after they are consumed (limits retention), so `just replay` can
/// read them back; consumers track their own position.
pub fn stream_config(
    topology: &Topology,
    kind: StreamKind,
    replicas: usize,
    limits: StreamLimits,
) -> stream::Config {
    let mut config = if kind == StreamKind::Directory || kind == StreamKind::Leases {
        // Only the newest entry per account (lease, replica) matters.
        stream::Config {
            name: topology.stream_name(kind),
            subjects: vec![topology.stream_subjects(kind)],
            storage: stream::StorageType::File,
            max_messages_per_subject: 1,
            num_replicas: replicas,
            ..Default::default()
        }
    } else {
        stream::Config {
            name: topology.stream_name(kind),
            subjects: vec![topology.stream_subjects(kind)],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_age: retention(kind),
            duplicate_window: DUPLICATE_WINDOW,
            num_replicas: replicas,
            ..Default::default()
        }
    };
    limits.apply(&mut config);
    config
}

/// Creates the stream, or brings an existing one's limits to the
/// configured ones (nothing else of an existing stream is changed).
pub async fn ensure_stream(
    js: &jetstream::Context,
    topology: &Topology,
    kind: StreamKind,
    replicas: usize,
    limits: StreamLimits,
) -> Result<stream::Stream, BusError> {
    let setup_error = |e: String| BusError::Setup {
        what: format!("stream {}", topology.stream_name(kind)),
        reason: e,
    };
    let config = stream_config(topology, kind, replicas, limits);
    let mut stream = js
        .get_or_create_stream(config)
        .await
        .map_err(|e| setup_error(e.to_string()))?;
    let current = stream
        .info()
        .await
        .map_err(|e| setup_error(e.to_string()))?
        .config
        .clone();
    if !limits.matches(&current) {
        let mut updated = current;
        limits.apply(&mut updated);
        tracing::info!(stream = %updated.name, max_bytes = limits.max_bytes,
            max_msgs = limits.max_messages, discard = ?limits.discard, "updating stream limits");
        js.update_stream(updated)
            .await
            .map_err(|e| setup_error(format!("updating its limits: {e}")))?;
    }
    Ok(stream)
}

/// A durable pull consumer: explicit ack, bounded ack-pending, bounded
/// redelivery.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub stream: StreamKind,
    pub durable: String,
    pub filter_subject: String,
    /// The window: how many messages may be delivered and not yet
    /// acknowledged. On a partition only its one owner pulls, so the
    /// window can be wider than one message without breaking order.
    pub max_ack_pending: i64,
    pub ack_wait: Duration,
    pub max_deliver: i64,
    /// Where a consumer that has to be created anew starts: after this
    /// stream sequence (the last one its worker acknowledged before the
    /// consumer was deleted). `None`: from the start of the stream.
    pub resume_after: Option<u64>,
}

impl ConsumerSpec {
    /// The consumer a stage uses for one partition of a partitioned stream.
    pub fn partition(topology: &Topology, stream: StreamKind, stage: &str, partition: u16) -> Self {
        Self {
            stream,
            durable: topology.partition_consumer(stage, partition),
            filter_subject: topology
                .partition_subject(stream, partition)
                .expect("partitioned stream"),
            max_ack_pending: i64::from(WorkerConfig::default().window),
            ack_wait: ACK_WAIT,
            max_deliver: WorkerConfig::default().max_deliver,
            resume_after: None,
        }
    }

    /// A consumer shared by every replica of a stage, for messages whose
    /// order does not matter.
    pub fn shared(
        stream: StreamKind,
        durable: &str,
        filter_subject: String,
        in_flight: i64,
    ) -> Self {
        Self {
            stream,
            durable: durable.to_string(),
            filter_subject,
            max_ack_pending: in_flight,
            ack_wait: ACK_WAIT,
            max_deliver: WorkerConfig::default().max_deliver,
            resume_after: None,
        }
    }

    pub fn config(&self) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(self.durable.clone()),
            filter_subject: self.filter_subject.clone(),
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: match self.resume_after {
                Some(seq) => consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: seq + 1,
                },
                None => consumer::DeliverPolicy::All,
            },
            max_ack_pending: self.max_ack_pending,
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver,
            ..Default::default()
        }
    }
}

/// The last stream sequence a replacement of this consumer may skip:
/// everything after it is delivered again (some of it a second time —
/// handlers are idempotent — but nothing pending is lost).
fn recreate_after(info: &consumer::Info) -> u64 {
    let floor = info.ack_floor.stream_sequence;
    if info.num_ack_pending == 0 {
        // Nothing pending: everything up to the last delivery is settled.
        return floor.max(info.delivered.stream_sequence);
    }
    match info.config.deliver_policy {
        consumer::DeliverPolicy::ByStartSequence { start_sequence } => {
            floor.max(start_sequence.saturating_sub(1))
        }
        _ => floor,
    }
}

/// What [`ensure_consumer`] had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// It was there as specified.
    Found,
    Created,
    /// Window, ack wait or max deliver changed in place (nats-server 2.9
    /// edits these on a live consumer; its position is kept).
    Updated,
    /// A field that cannot (or must not) be edited in place differed: the
    /// consumer was replaced by one starting after its ack floor, so
    /// nothing acknowledged is delivered again and nothing pending is lost.
    Recreated {
        after: u64,
    },
}

/// Makes the durable consumer match `spec` without ever replaying what it
/// already acknowledged: created if missing, edited in place when only
/// editable fields differ, otherwise recreated from its ack floor.
pub async fn ensure_consumer(
    js: &jetstream::Context,
    topology: &Topology,
    spec: &ConsumerSpec,
) -> Result<(consumer::PullConsumer, Ensured), BusError> {
    use consumer::{pull, FromConsumer};
    use jetstream::context::ConsumerInfoErrorKind;

    let stream_name = topology.stream_name(spec.stream);
    let setup_error = |e: String| BusError::Setup {
        what: format!("consumer {} on {stream_name}", spec.durable),
        reason: e,
    };
    let stream = js
        .get_stream(&stream_name)
        .await
        .map_err(|e| setup_error(e.to_string()))?;
    let create = |config: pull::Config| async {
        stream
            .create_consumer(config)
            .await
            .map_err(|e| setup_error(e.to_string()))
    };
    let info = match stream.consumer_info(&spec.durable).await {
        Ok(info) => info,
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
            return Ok((create(spec.config()).await?, Ensured::Created));
        }
        Err(e) => return Err(setup_error(e.to_string())),
    };
    let existing = &info.config;
    // Editing the filter in place would silently skip the messages between
    // the old filter's position and the new one's: never done.
    if existing.filter_subject != spec.filter_subject
        || existing.ack_policy != consumer::AckPolicy::Explicit
    {
        let after = recreate_after(&info);
        tracing::warn!(consumer = %spec.durable, after,
            old_filter = %existing.filter_subject, new_filter = %spec.filter_subject,
            "consumer differs in a field that cannot be edited; recreating it after its ack floor");
        stream
            .delete_consumer(&spec.durable)
            .await
            .map_err(|e| setup_error(e.to_string()))?;
        let mut config = spec.config();
        config.deliver_policy = consumer::DeliverPolicy::ByStartSequence {
            start_sequence: after + 1,
        };
        return Ok((create(config).await?, Ensured::Recreated { after }));
    }
    if existing.max_ack_pending == spec.max_ack_pending
        && existing.ack_wait == spec.ack_wait
        && existing.max_deliver == spec.max_deliver
    {
        let config = pull::Config::try_from_consumer_config(existing.clone())
            .map_err(|e| setup_error(e.to_string()))?;
        return Ok((
            consumer::Consumer::new(config, info.clone(), js.clone()),
            Ensured::Found,
        ));
    }
    let mut config = pull::Config::try_from_consumer_config(existing.clone())
        .map_err(|e| setup_error(e.to_string()))?;
    config.max_ack_pending = spec.max_ack_pending;
    config.ack_wait = spec.ack_wait;
    config.max_deliver = spec.max_deliver;
    tracing::info!(consumer = %spec.durable, max_ack_pending = spec.max_ack_pending,
        ack_wait_ms = spec.ack_wait.as_millis() as u64, max_deliver = spec.max_deliver,
        "consumer settings updated in place");
    Ok((create(config).await?, Ensured::Updated))
}
