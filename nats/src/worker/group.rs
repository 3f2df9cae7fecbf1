//! Running a stage's partitions across its replicas: heartbeats, the
//! watch on the group's leases, the plan (`assignment.rs`) turned into
//! acquisitions and releases, and one owner task per held partition.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{
    assignment::{LeaseState, Step, View},
    engine::{Engine, EngineEnd},
    held::{Open, Settler},
    lease::{Group, LeaseGate},
    status::WorkerStatus,
};
use crate::{
    bus::Bus,
    error::BusError,
    streams::{ensure_consumer, ConsumerSpec, Ensured},
    topology::StreamKind,
};

/// Member subjects of replicas silent this long are removed.
const FORGET_MEMBERS_AFTER: Duration = Duration::from_secs(600);

/// One partition this replica works on.
struct Owned {
    stop: CancellationToken,
    task: JoinHandle<OwnerEnd>,
    lease_seq: u64,
}

/// How an owner task ended, and so how its lease is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerEnd {
    /// Everything settled or handed back in order: the next owner may
    /// pull at once.
    Released,
    /// Stopped while a previous owner's deliveries may still be pending:
    /// the next owner waits for them too.
    ReleasedUnclean,
    /// The lease is someone else's now: nothing to release.
    Lost,
}

pub(crate) struct Partitions<E> {
    pub bus: Bus,
    pub stage: &'static str,
    pub stream: StreamKind,
    pub status: WorkerStatus,
    pub engine: Arc<E>,
}

impl<E: Engine> Partitions<E> {
    pub async fn run(self, me: String, shutdown: CancellationToken) -> Result<(), BusError> {
        let topology = self.bus.topology().clone();
        if !self.stream.is_partitioned() {
            return Err(BusError::Setup {
                what: format!("{} workers", self.stage),
                reason: format!("{:?} is not a partitioned stream", self.stream),
            });
        }
        let _running = self.status.guard_loop(self.stage, &shutdown);
        let streams = [self.stream, StreamKind::Leases, StreamKind::DeadLetter];
        if !ensure_streams(&self.bus, &streams, self.stage, &shutdown).await {
            return Ok(());
        }
        let group = Arc::new(Group::new(self.bus.clone(), self.stage, &me));
        let background = CancellationToken::new();
        let beat = {
            let (group, status, stop) = (group.clone(), self.status.clone(), background.clone());
            tokio::spawn(async move { group.beat(status, stop).await })
        };
        let watch = {
            let (group, stop) = (group.clone(), background.clone());
            tokio::spawn(async move { group.watch(stop).await })
        };
        for p in 0..topology.partitions() {
            let consumer = topology.partition_consumer(self.stage, p);
            self.status.activate(&consumer, "partition", false);
        }
        tracing::info!(stage = self.stage, replica = %me, partitions = topology.partitions(),
            "partition workers started");

        let timing = self.bus.worker_config().timing();
        let mut owned: BTreeMap<u16, Owned> = BTreeMap::new();
        while !shutdown.is_cancelled() {
            self.reap(&group, &mut owned).await;
            if group.book().caught_up && group.heart.may_work(group.heart.epoch()) {
                self.plan(&group, &mut owned).await;
            }
            self.status
                .owned(self.stage, owned.keys().copied().collect());
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = group.changed.notified() => {}
                _ = tokio::time::sleep(timing.heartbeat_every) => {}
            }
        }

        // Shutdown: stop taking partitions (others see it at once), hand
        // back everything in order, release, say goodbye.
        self.status.set_accepting(false);
        group.announce(&self.status).await;
        for o in owned.values() {
            o.stop.cancel();
        }
        while !owned.is_empty() {
            self.reap(&group, &mut owned).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.status.owned(self.stage, vec![]);
        group.say_goodbye(&self.status).await;
        background.cancel();
        let _ = beat.await;
        let _ = watch.await;
        tracing::info!(stage = self.stage, replica = %me, "partition workers stopped");
        Ok(())
    }

    /// Collects finished owner tasks and releases their leases.
    async fn reap(&self, group: &Arc<Group>, owned: &mut BTreeMap<u16, Owned>) {
        let finished: Vec<u16> = owned
            .iter()
            .filter(|(_, o)| o.task.is_finished())
            .map(|(&p, _)| p)
            .collect();
        for p in finished {
            let o = owned.remove(&p).expect("listed");
            let end = o.task.await.unwrap_or(OwnerEnd::ReleasedUnclean);
            let consumer = self.bus.topology().partition_consumer(self.stage, p);
            self.status.activate(&consumer, "partition", false);
            let clean = match end {
                OwnerEnd::Lost => continue,
                OwnerEnd::Released => true,
                OwnerEnd::ReleasedUnclean => false,
            };
            match group.write_lease(p, None, clean, o.lease_seq).await {
                Ok(_) => tracing::info!(
                    stage = self.stage,
                    partition = p,
                    clean,
                    "partition released"
                ),
                Err(e) => tracing::warn!(stage = self.stage, partition = p, error = %e,
                    "could not release the partition; it is taken over when this replica's lease lapses"),
            }
        }
    }

    async fn plan(&self, group: &Arc<Group>, owned: &mut BTreeMap<u16, Owned>) {
        let partitions = self.bus.topology().partitions();
        let timing = self.bus.worker_config().timing();
        let (steps, gone) = {
            let book = group.book();
            let view = View {
                me: &group.me,
                me_accepting: true,
                group: self.stage,
                ttl: timing.ttl,
                now: Instant::now(),
                watching_since: book.watching_since,
                members: &book.members,
            };
            let steps: Vec<(u16, Step, LeaseState)> = (0..partitions)
                .map(|p| {
                    let lease = book.leases.get(&p).cloned().unwrap_or_default();
                    (p, view.plan(p, &lease), lease)
                })
                .collect();
            let owners: Vec<&str> = book
                .leases
                .values()
                .filter_map(|l| l.owner.as_deref())
                .collect();
            let gone: Vec<String> = book
                .members
                .iter()
                .filter(|(id, o)| {
                    id.as_str() != group.me
                        && !owners.contains(&id.as_str())
                        && view.now.saturating_duration_since(o.since) > FORGET_MEMBERS_AFTER
                })
                .map(|(id, _)| id.clone())
                .collect();
            (steps, gone)
        };
        if !gone.is_empty() {
            group.forget_members(gone).await;
        }
        for (p, step, lease) in steps {
            match step {
                Step::Hold => {
                    if !owned.contains_key(&p) {
                        // Ours from an earlier life of this replica id: its
                        // deliveries may still be pending.
                        self.start(group, owned, p, lease.seq, false);
                    }
                }
                Step::Acquire { expected, clean } => {
                    if let Some(previous) = lease.owner.as_deref() {
                        // The book may lag (a reconnect): ask the server.
                        match group.member_moved(previous).await {
                            Ok(false) => {}
                            Ok(true) | Err(_) => continue,
                        }
                    }
                    match group.write_lease(p, Some(&group.me), false, expected).await {
                        Ok(seq) => {
                            tracing::info!(stage = self.stage, partition = p, clean,
                                previous = ?lease.owner, "partition acquired");
                            self.start(group, owned, p, seq, clean);
                        }
                        Err(BusError::Conflict { .. }) => {}
                        Err(e) => tracing::warn!(stage = self.stage, partition = p, error = %e,
                            "could not acquire the partition"),
                    }
                }
                Step::GiveBack => match owned.get(&p) {
                    Some(o) => o.stop.cancel(),
                    None => {
                        let _ = group.write_lease(p, None, false, lease.seq).await;
                    }
                },
                Step::Wait => {
                    // The lease names someone else: if we still run it, it
                    // was taken from us; let go without settling anything.
                    if let Some(o) = owned.get(&p) {
                        if lease.owner.as_deref() != Some(group.me.as_str())
                            && lease.seq > o.lease_seq
                        {
                            o.stop.cancel();
                        }
                    }
                }
            }
        }
    }

    fn start(
        &self,
        group: &Arc<Group>,
        owned: &mut BTreeMap<u16, Owned>,
        partition: u16,
        lease_seq: u64,
        clean: bool,
    ) {
        let stop = CancellationToken::new();
        let gate = Arc::new(LeaseGate::new(
            group.clone(),
            partition,
            lease_seq,
            group.heart.epoch(),
        ));
        let owner = Owner {
            bus: self.bus.clone(),
            stage: self.stage,
            stream: self.stream,
            status: self.status.clone(),
            partition,
            gate,
        };
        let (engine, token) = (self.engine.clone(), stop.clone());
        let task = tokio::spawn(async move { owner.run(&*engine, clean, token).await });
        owned.insert(
            partition,
            Owned {
                stop,
                task,
                lease_seq,
            },
        );
    }
}

/// The owner of one partition.
struct Owner {
    bus: Bus,
    stage: &'static str,
    stream: StreamKind,
    status: WorkerStatus,
    partition: u16,
    gate: Arc<LeaseGate>,
}

impl Owner {
    async fn run<E: Engine>(self, engine: &E, clean: bool, stop: CancellationToken) -> OwnerEnd {
        let topology = self.bus.topology();
        let config = self.bus.worker_config();
        let mut spec = ConsumerSpec::partition(topology, self.stream, self.stage, self.partition);
        spec.max_ack_pending = i64::from(config.window);
        spec.ack_wait = self.bus.ack_wait();
        spec.max_deliver = config.max_deliver;
        let settler = Arc::new(Settler::new(
            self.bus.clone(),
            self.stage,
            spec.durable.clone(),
            self.status.clone(),
            self.gate.clone(),
        ));
        self.status.activate(&spec.durable, "partition", true);
        let mut waited = clean;
        loop {
            let Some(consumer) = bind(&settler, &spec, &stop).await else {
                return if waited {
                    OwnerEnd::Released
                } else {
                    OwnerEnd::ReleasedUnclean
                };
            };
            if !waited {
                self.status.waiting(&spec.durable, true);
                let waited_out = self.wait_for_predecessor(&consumer, &stop).await;
                self.status.waiting(&spec.durable, false);
                if !waited_out {
                    return OwnerEnd::ReleasedUnclean;
                }
                waited = true;
            }
            match engine
                .run(
                    settler.clone(),
                    consumer,
                    usize::from(config.window),
                    stop.clone(),
                )
                .await
            {
                EngineEnd::Stopped => return OwnerEnd::Released,
                EngineEnd::Lost => return OwnerEnd::Lost,
                EngineEnd::Deleted { resume_after } => {
                    tracing::warn!(consumer = %spec.durable, ?resume_after,
                        "the consumer was deleted; re-creating it");
                    spec.resume_after = resume_after;
                }
            }
        }
    }

    /// After a crash or takeover the previous owner's deliveries stay
    /// pending until their ack wait runs out, and JetStream would hand out
    /// newer messages first. So wait until none is pending (or they all
    /// expired) before the first pull: the redeliveries then come first,
    /// in order. `false` when asked to stop meanwhile.
    async fn wait_for_predecessor(
        &self,
        consumer: &async_nats::jetstream::consumer::PullConsumer,
        stop: &CancellationToken,
    ) -> bool {
        let timing = self.bus.worker_config().timing();
        let deadline = Instant::now() + self.bus.ack_wait() + timing.margin;
        let mut consumer = consumer.clone();
        let mut logged = false;
        loop {
            match consumer.info().await {
                Ok(info) if info.num_ack_pending == 0 => return true,
                Ok(info) if !logged => {
                    logged = true;
                    tracing::info!(
                        stage = self.stage,
                        partition = self.partition,
                        pending = info.num_ack_pending,
                        wait_ms = deadline
                            .saturating_duration_since(Instant::now())
                            .as_millis() as u64,
                        "waiting for the previous owner's deliveries to expire before pulling"
                    );
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return true;
            }
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }
}

/// Creates the streams a worker needs, trying again while NATS cannot (a
/// stage started before its broker keeps trying, not ready meanwhile).
/// `false` when shut down first.
async fn ensure_streams(
    bus: &Bus,
    kinds: &[StreamKind],
    stage: &str,
    shutdown: &CancellationToken,
) -> bool {
    let mut attempt = 0u32;
    loop {
        match bus.ensure_streams(kinds).await {
            Ok(()) => return true,
            Err(e) => {
                attempt += 1;
                tracing::warn!(stage, error = %e, attempt, "cannot set up the worker's streams yet");
                let pause = bus.worker_config().backoff.jittered(attempt.min(6));
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// Creates or checks the consumer until it is there (or `stop`).
async fn bind(
    settler: &Settler,
    spec: &ConsumerSpec,
    stop: &CancellationToken,
) -> Option<async_nats::jetstream::consumer::PullConsumer> {
    let mut attempt = 0u32;
    loop {
        match ensure_consumer(settler.bus.jetstream(), settler.bus.topology(), spec).await {
            Ok((consumer, ensured)) => {
                if let Ensured::Recreated { after } = ensured {
                    tracing::warn!(consumer = %spec.durable, after, "consumer recreated");
                }
                settler.status.bound(&spec.durable, true);
                return Some(consumer);
            }
            Err(e) => {
                settler.status.bound(&spec.durable, false);
                attempt += 1;
                tracing::warn!(consumer = %spec.durable, error = %e, attempt, "cannot bind the consumer");
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = tokio::time::sleep(settler.policy.backoff.jittered(attempt.min(6))) => {}
                }
            }
        }
    }
}

/// Runs one shared (unordered) consumer, which every replica pulls from.
pub(crate) async fn run_shared<E: Engine>(
    bus: Bus,
    stage: &'static str,
    status: WorkerStatus,
    mut spec: ConsumerSpec,
    engine: Arc<E>,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let _running = status.guard_loop(&spec.durable, &shutdown);
    if !ensure_streams(
        &bus,
        &[spec.stream, StreamKind::DeadLetter],
        stage,
        &shutdown,
    )
    .await
    {
        return Ok(());
    }
    spec.ack_wait = bus.ack_wait();
    spec.max_deliver = bus.worker_config().max_deliver;
    let settler = Arc::new(Settler::new(
        bus.clone(),
        stage,
        spec.durable.clone(),
        status.clone(),
        Arc::new(Open),
    ));
    status.activate(&spec.durable, "shared", true);
    tracing::info!(stage, consumer = %spec.durable, in_flight = spec.max_ack_pending, "shared worker started");
    let window = spec.max_ack_pending.max(1) as usize;
    while let Some(consumer) = bind(&settler, &spec, &shutdown).await {
        match engine
            .run(settler.clone(), consumer, window, shutdown.clone())
            .await
        {
            EngineEnd::Deleted { resume_after } => spec.resume_after = resume_after,
            EngineEnd::Stopped | EngineEnd::Lost => break,
        }
    }
    tracing::debug!(stage, consumer = %spec.durable, "shared worker drained");
    Ok(())
}
