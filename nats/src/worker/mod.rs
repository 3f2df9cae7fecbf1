//! The one worker loop every consuming stage runs.
//!
//! # Using it
//!
//! A stage builds one [`Worker`] per process (its replica identity, its
//! [`WorkerStatus`]) and runs its handlers through it:
//!
//! - [`Worker::run_ordered`]: a partitioned stream whose per-key order
//!   matters (router, conversation, order). Each partition is owned by one
//!   replica at a time (a lease, below); the owner pulls up to
//!   `WORKER_WINDOW` messages per pull request and hands the handler every
//!   due message it holds, in stream order, as one batch
//!   ([`BatchHandler`]). A per-message [`Handler`] is a `BatchHandler` by
//!   the blanket impl: it gets the batch one message at a time.
//! - [`Worker::run_lanes`]: a partitioned stream where only messages with
//!   the same key must keep their order (outbound: one conversation's
//!   replies). Keys run concurrently (up to `WORKER_LANES` per partition),
//!   each message acknowledged on its own ([`LaneHandler`]).
//! - [`Worker::run_shared`]: a shared durable consumer every replica pulls
//!   from, for messages whose order does not matter (the audit of refused
//!   webhooks), each handled on its own, up to `max_ack_pending` at once.
//! - [`Worker::run_shared_batches`]: the same consumer, its due messages
//!   handed over all at once ([`SharedBatchHandler`]) so they can be
//!   applied in one statement (status callbacks); each outcome is settled
//!   on its own.
//!
//! Each returns when `shutdown` fires, after finishing what is in flight,
//! handing back the rest (nak, in stream order) and releasing its leases,
//! so a scale-down loses nothing and the next owner starts at once.
//!
//! # Outcomes
//!
//! A handler answers each message with an [`Outcome`]; the loop, not the
//! stage, decides what follows ([`policy::settle`]):
//!
//! | outcome | then |
//! |---|---|
//! | `Ack` | acknowledged |
//! | `Retry(Failure::transient)` | retried in place with jittered backoff while it lasts (the partition waits: the dependency is down for everyone) |
//! | `Retry(Failure::permanent)` | dead-lettered after `WORKER_PERMANENT_ATTEMPTS` |
//! | `Retry(Failure::unknown)` | retried up to `WORKER_MAX_ATTEMPTS` / `WORKER_MAX_RETRY_SECS`, then dead-lettered |
//! | `Defer { delay }` | offered again after `delay`; not an attempt |
//! | `DeadLetter(failure)` | dead-lettered at once |
//!
//! Retries and deferrals happen **in place**: the holder keeps the message
//! (and everything after it on the partition) and sends progress acks, so
//! JetStream never redelivers it elsewhere and order holds. Any failure on
//! the consumer's last delivery (`WORKER_MAX_DELIVER`) is dead-lettered.
//! An undecodable envelope is dead-lettered (class `poison`); one of a
//! newer schema version is deferred in place (a rolling deploy brings the
//! newer reader). A dead letter ([`crate::messages::DeadLetter`]: stage,
//! consumer, reason and class, code, original subject, headers and bytes,
//! stream sequence, deliveries, attempts, trace id, and the restaurant,
//! conversation or recipient when the [`Failure`]'s [`LetterContext`]
//! names them) is published to `<ns>.dlq.<stage>` and its PubAck awaited
//! before the original is terminated; if it cannot be stored nothing is
//! acknowledged. [`classify`] maps a `sqlx::Error` to its class (SQLSTATE
//! 08/53/40001/40P01/57P0x transient, 22/23 permanent); `From` impls turn
//! `sqlx::Error` and [`BusError`] into a [`Failure`].
//!
//! # Partition ownership (works on nats-server 2.9)
//!
//! The `<NS>_LEASE` stream keeps the last record per subject. Per group
//! (the stage's partition consumers) each partition has a lease subject
//! `<ns>.lease.<stage>.p.<n>` holding `{owner, clean}`, written only with
//! compare-and-set (`Nats-Expected-Last-Subject-Sequence`), and each
//! replica a member subject `<ns>.lease.<stage>.m.<replica>` it rewrites
//! every TTL/6 (`WORKER_LEASE_TTL_MS`) with its [`MemberRecord`] (what
//! `just ps` shows). A replica judges another alive while that member
//! subject's sequence keeps changing, on its own monotonic clock; it stops
//! acting on its own partitions when its own last stored heartbeat is
//! older than TTL − TTL/3, and issues no pull request that could outlive
//! that. Every replica computes the desired owner of each partition by
//! rendezvous hashing over the live members ([`assignment`]); the owner
//! gives back what it should not hold (after finishing or handing back, in
//! order, what it holds; then a CAS release marked `clean`), and the
//! desired owner acquires free or stale leases. A new owner of a lease
//! that was not released cleanly waits until the consumer has nothing
//! ack-pending (or ack wait + margin) before its first pull, so the
//! previous owner's unacknowledged messages are redelivered first, in
//! order. A holder that was paused (its heartbeats had a gap) re-reads its
//! lease before doing anything else and lets go if it moved.
//!
//! # Status
//!
//! [`WorkerStatus`] is what `/ready` (every loop running, every consumer
//! it works on bound and pulling, heartbeats current), `/status` and the
//! member record report; a consumer deleted under a worker is re-created
//! after the last sequence the worker settled. Metrics:
//! `waiter_worker_messages_total{stage,consumer,outcome}`,
//! `waiter_worker_redelivered_total`, `waiter_worker_handle_seconds{stage}`,
//! `waiter_worker_batch_size{stage}`, `waiter_worker_in_flight{stage}`,
//! `waiter_worker_owned_partitions{stage}`,
//! `waiter_worker_consumer_pending{stage,consumer}` and
//! `waiter_worker_consumer_ack_pending{stage,consumer}` (the lag, every
//! 5 s), `waiter_dead_letters_total{stage,reason_class}`.

pub mod assignment;
mod config;
mod engine;
mod group;
mod held;
mod lag;
mod lanes;
mod lease;
mod ordered;
pub mod outcome;
pub mod policy;
mod shared;
mod status;

use std::{future::Future, hash::Hash, sync::Arc};

use tokio_util::sync::{CancellationToken, DropGuard};

pub use self::{
    config::{validate_replica_id, WorkerConfig},
    outcome::{Failure, FailureClass, LetterContext, Outcome},
    policy::Backoff,
    status::WorkerStatus,
};
#[cfg(feature = "postgres")]
pub use outcome::classify;

use crate::{
    bus::Bus,
    envelope::{Envelope, Payload},
    error::BusError,
    messages::MemberRecord,
    streams::ConsumerSpec,
    topology::StreamKind,
};

/// Where a message came from and how often it was tried.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub subject: String,
    pub stream_sequence: u64,
    /// JetStream's delivery count: 1 on the first delivery.
    pub delivered: i64,
    /// 1 on the first attempt. In-place retries and earlier deliveries
    /// count; deferrals do not.
    pub attempt: u32,
    pub trace_id: Option<String>,
}

/// One message as a handler receives it.
#[derive(Debug, Clone)]
pub struct Incoming<T> {
    pub envelope: Envelope<T>,
    pub delivery: Delivery,
}

/// A stage's logic for one message.
pub trait Handler: Send + Sync + 'static {
    type Message: Payload;

    fn handle(
        &self,
        envelope: Envelope<Self::Message>,
        delivery: Delivery,
    ) -> impl Future<Output = Outcome> + Send;
}

/// A stage's logic for a batch of one partition's messages, in stream
/// order (so it may apply them in one transaction).
///
/// Returns one outcome per message it attempted, in order: a prefix of the
/// batch. The loop settles them up to the first that is not final
/// (`Retry` or `Defer`); that one is tried again in place and everything
/// after it is offered again behind it. Messages without an outcome are
/// offered again at once.
pub trait BatchHandler: Send + Sync + 'static {
    type Message: Payload;

    fn handle_batch(
        &self,
        batch: Batch<Self::Message>,
    ) -> impl Future<Output = Vec<Outcome>> + Send;
}

/// One partition's due messages, in stream order, and whether this
/// replica still holds the partition.
pub struct Batch<T> {
    pub messages: Vec<Incoming<T>>,
    holding: Holding,
}

impl<T> Batch<T> {
    /// Whether this replica may still act on the partition. A handler that
    /// works long on a batch checks it before committing: a replica that
    /// was paused (stopped by the OS, starved) past its lease must not
    /// apply messages its successor may already have applied after them.
    pub fn still_held(&self) -> bool {
        self.holding.0.may_work()
    }

    /// Which uninterrupted holding of the partition this batch belongs
    /// to: while two batches give the same term, no other replica can
    /// have handled the partition's messages between them, so what the
    /// handler learned of its aggregates in the first still holds.
    /// `None` outside the worker loop: nothing may be assumed.
    pub fn term(&self) -> Option<u64> {
        self.holding.0.term()
    }

    /// A batch handed to a handler outside the worker loop (a test driving
    /// a stage's handler directly): always held.
    pub fn detached(messages: Vec<Incoming<T>>) -> Self {
        Self {
            messages,
            holding: Holding(Arc::new(held::Open)),
        }
    }
}

/// The lease behind a [`Batch`].
#[derive(Clone)]
struct Holding(Arc<dyn held::Gate>);

impl<H: Handler> BatchHandler for H {
    type Message = H::Message;

    async fn handle_batch(&self, batch: Batch<H::Message>) -> Vec<Outcome> {
        let holding = batch.holding;
        let mut outcomes = Vec::with_capacity(batch.messages.len());
        for Incoming { envelope, delivery } in batch.messages {
            if !outcomes.is_empty() && !holding.0.may_work() {
                break;
            }
            let outcome = self.handle(envelope, delivery).await;
            let go_on = outcome.is_final();
            outcomes.push(outcome);
            if !go_on {
                break;
            }
        }
        outcomes
    }
}

/// A stage's logic for a window of a shared consumer's messages, which
/// need no order between them.
///
/// Returns one outcome per message, in the order given; each is settled
/// on its own (a `Retry` holds back only its own message). Messages left
/// without an outcome are retried in place.
pub trait SharedBatchHandler: Send + Sync + 'static {
    type Message: Payload;

    fn handle_shared(
        &self,
        messages: Vec<Incoming<Self::Message>>,
    ) -> impl Future<Output = Vec<Outcome>> + Send;
}

/// A [`Handler`] whose messages need order only per key.
pub trait LaneHandler: Handler {
    /// The message's key (see [`lane_of`]).
    fn lane(&self, message: &Self::Message) -> u64;
}

/// A lane key from anything hashable (only compared within one process).
pub fn lane_of(key: &impl Hash) -> u64 {
    use std::hash::Hasher;
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// A replica's part, in (0, 1], of a limit split between the replicas by
/// owned partitions (a restaurant's send rate, its inbound limit): the
/// leases give each partition one owner, so the parts add up to at most
/// the whole, with no shared counter.
#[derive(Clone, Default)]
pub struct LimitShare(Option<(WorkerStatus, &'static str, u16)>);

impl LimitShare {
    /// The whole limit (one replica, or tests).
    pub fn whole() -> Self {
        Self(None)
    }

    pub fn get(&self) -> f64 {
        self.0
            .as_ref()
            .map_or(1.0, |(status, group, n)| status.owned_share(group, *n))
    }
}

/// One process's workers: its replica identity and status, shared by
/// every loop it runs.
#[derive(Clone)]
pub struct Worker {
    bus: Bus,
    stage: &'static str,
    replica: String,
    status: WorkerStatus,
}

impl Worker {
    /// The replica id is `WAITER_REPLICA_ID` when given, else
    /// `<stage>-<random>`.
    pub fn new(bus: &Bus, stage: &'static str) -> Self {
        let replica = bus.worker_config().replica_id.clone().unwrap_or_else(|| {
            format!(
                "{stage}-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            )
        });
        Self::with_replica(bus, stage, &replica)
    }

    /// A worker with a given replica id (tests run several in one process).
    pub fn with_replica(bus: &Bus, stage: &'static str, replica: &str) -> Self {
        Self {
            bus: bus.clone(),
            stage,
            replica: replica.to_string(),
            status: WorkerStatus::new(stage, replica),
        }
    }

    /// Another consumer group of this process, with its own leases,
    /// partition consumers (`<group>-p<n>`) and dead-letter subject, that
    /// reports through the same status (`/ready`, the member records).
    pub fn group(&self, stage: &'static str) -> Self {
        Self {
            stage,
            ..self.clone()
        }
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    pub fn stage(&self) -> &'static str {
        self.stage
    }

    pub fn status(&self) -> &WorkerStatus {
        &self.status
    }

    /// This replica's record, as its heartbeat carries it.
    pub fn report(&self) -> MemberRecord {
        self.status.report(self.stage)
    }

    /// Runs `handler` over the partitions of `stream` this replica owns,
    /// in order, in batches. Returns after `shutdown`, with everything
    /// settled or handed back and the leases released.
    pub async fn run_ordered<H: BatchHandler>(
        &self,
        stream: StreamKind,
        handler: Arc<H>,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        self.partitions(stream, ordered::Ordered { handler }, shutdown)
            .await
    }

    /// Runs `handler` over the partitions of `stream` this replica owns,
    /// in order per [`LaneHandler::lane`], lanes concurrently.
    pub async fn run_lanes<H: LaneHandler>(
        &self,
        stream: StreamKind,
        handler: Arc<H>,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        let engine = lanes::Lanes {
            handler,
            lane: |h: &H, m: &H::Message| Some(h.lane(m)),
            bound: usize::from(self.bus.worker_config().lanes),
            keyed: true,
        };
        self.partitions(stream, engine, shutdown).await
    }

    /// Runs `handler` over a shared consumer (every replica pulls;
    /// `spec.max_ack_pending` messages at once, in no particular order).
    pub async fn run_shared<H: Handler>(
        &self,
        spec: ConsumerSpec,
        handler: Arc<H>,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        let engine = lanes::Lanes {
            handler,
            lane: |_: &H, _: &H::Message| None,
            bound: spec.max_ack_pending.max(1) as usize,
            keyed: false,
        };
        self.shared(spec, engine, shutdown).await
    }

    /// Runs `handler` over a shared consumer like [`Self::run_shared`], but
    /// hands it every due message it holds (up to `spec.max_ack_pending`)
    /// as one batch.
    pub async fn run_shared_batches<H: SharedBatchHandler>(
        &self,
        spec: ConsumerSpec,
        handler: Arc<H>,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        self.shared(spec, shared::SharedBatches { handler }, shutdown)
            .await
    }

    async fn shared<E: engine::Engine>(
        &self,
        spec: ConsumerSpec,
        engine: E,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        let _lag = self.report_lag(spec.stream, vec![spec.durable.clone()]);
        group::run_shared(
            self.bus.clone(),
            self.stage,
            self.status.clone(),
            spec,
            Arc::new(engine),
            shutdown,
        )
        .await
    }

    /// This replica's part of a limit the stage's replicas split by the
    /// partitions they own ([`WorkerStatus::owned_share`]).
    pub fn limit_share(&self) -> LimitShare {
        LimitShare(Some((
            self.status.clone(),
            self.stage,
            self.bus.topology().partitions(),
        )))
    }

    /// Reports the consumers' lag ([`lag`]) until the guard is dropped.
    fn report_lag(&self, stream: StreamKind, consumers: Vec<String>) -> DropGuard {
        let stop = CancellationToken::new();
        tokio::spawn(lag::report(
            self.bus.clone(),
            self.stage,
            stream,
            consumers,
            stop.clone(),
        ));
        stop.drop_guard()
    }

    async fn partitions<E: engine::Engine>(
        &self,
        stream: StreamKind,
        engine: E,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        let consumers = (0..self.bus.topology().partitions())
            .map(|p| self.bus.topology().partition_consumer(self.stage, p))
            .collect();
        let _lag = self.report_lag(stream, consumers);
        group::Partitions {
            bus: self.bus.clone(),
            stage: self.stage,
            stream,
            status: self.status.clone(),
            engine: Arc::new(engine),
        }
        .run(self.replica.clone(), shutdown)
        .await
    }
}
