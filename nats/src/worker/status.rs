//! What a stage's workers are doing: the handle behind `/ready`,
//! `/status`, the member heartbeat (`just ps`) and the worker metrics.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::messages::{ConsumerReport, MemberRecord};

/// A consumer counts as pulling when a pull request ended normally this
/// recently (requests end at least every TTL/6, even when idle).
const PULLING_WITHIN: Duration = Duration::from_secs(10);

/// Shared by every worker loop of a process (cheap to clone).
#[derive(Clone)]
pub struct WorkerStatus {
    inner: Arc<Inner>,
}

struct Inner {
    stage: &'static str,
    replica: String,
    pid: u32,
    host: String,
    started_at: DateTime<Utc>,
    ops_addr: Mutex<Option<String>>,
    state: Mutex<State>,
    handled: AtomicU64,
    failed: AtomicU64,
    deferred: AtomicU64,
    dead_lettered: AtomicU64,
    accepting: AtomicBool,
}

#[derive(Default)]
struct State {
    consumers: BTreeMap<String, ConsumerState>,
    /// Worker loops by name: `true` while running.
    loops: BTreeMap<String, bool>,
    /// Loops that ended without being asked to (a panic, a bug).
    failed: Vec<String>,
    /// Partition groups whose heartbeat currently lets them work.
    standing: BTreeMap<String, bool>,
    owned: BTreeMap<String, Vec<u16>>,
}

#[derive(Default)]
struct ConsumerState {
    kind: &'static str,
    bound: bool,
    /// Shared consumers always; a partition consumer while this replica owns it.
    active: bool,
    in_flight: u64,
    handled: u64,
    last_pull_ok: Option<Instant>,
    pull_failures: u32,
    waiting: bool,
}

impl WorkerStatus {
    pub fn new(stage: &'static str, replica: &str) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".into());
        Self {
            inner: Arc::new(Inner {
                stage,
                replica: replica.to_string(),
                pid: std::process::id(),
                host,
                started_at: Utc::now(),
                ops_addr: Mutex::new(None),
                state: Mutex::new(State::default()),
                handled: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                deferred: AtomicU64::new(0),
                dead_lettered: AtomicU64::new(0),
                accepting: AtomicBool::new(true),
            }),
        }
    }

    pub fn stage(&self) -> &'static str {
        self.inner.stage
    }

    pub fn replica(&self) -> &str {
        &self.inner.replica
    }

    /// Where the stage's ops server listens, for the heartbeat (`just ps`).
    pub fn set_ops_addr(&self, addr: std::net::SocketAddr) {
        *lock(&self.inner.ops_addr) = Some(addr.to_string());
    }

    /// Every worker loop running, every active consumer bound and pulling,
    /// every partition group's heartbeat current. A stage with no worker
    /// loop started yet is not ready.
    pub fn is_ready(&self) -> bool {
        let state = lock(&self.inner.state);
        let now = Instant::now();
        !state.loops.is_empty()
            && state.loops.values().all(|&running| running)
            && state.standing.values().all(|&ok| ok)
            && state
                .consumers
                .values()
                .filter(|c| c.active)
                .all(|c| c.bound && pulling(c, now))
    }

    /// No worker loop ended without being asked to: the process is worth
    /// keeping (`/health`). A loop that died makes it worth a restart.
    pub fn is_alive(&self) -> bool {
        lock(&self.inner.state).failed.is_empty()
    }

    /// The heartbeat record of `group`, or the whole process (`group` "").
    pub fn report(&self, group: &str) -> MemberRecord {
        let ready = self.is_ready();
        let state = lock(&self.inner.state);
        let now = Instant::now();
        let consumers: Vec<ConsumerReport> = state
            .consumers
            .iter()
            .filter(|(_, c)| c.active || c.kind == "shared")
            .map(|(name, c)| ConsumerReport {
                name: name.clone(),
                kind: c.kind.to_string(),
                bound: c.bound,
                pulling: pulling(c, now),
                in_flight: c.in_flight,
                handled: c.handled,
                last_pull_ms: c
                    .last_pull_ok
                    .map(|at| now.saturating_duration_since(at).as_millis() as u64),
                pull_failures: c.pull_failures,
                waiting: c.waiting,
            })
            .collect();
        let owned_partitions = match group {
            "" => state.owned.values().flatten().copied().collect(),
            g => state.owned.get(g).cloned().unwrap_or_default(),
        };
        MemberRecord {
            stage: self.inner.stage.to_string(),
            group: group.to_string(),
            replica: self.inner.replica.clone(),
            pid: self.inner.pid,
            host: self.inner.host.clone(),
            ops_addr: lock(&self.inner.ops_addr).clone(),
            started_at: Some(self.inner.started_at),
            heartbeat_at: Some(Utc::now()),
            ready,
            accepting: self.inner.accepting.load(Ordering::Relaxed),
            stopped: false,
            handled: self.inner.handled.load(Ordering::Relaxed),
            failed: self.inner.failed.load(Ordering::Relaxed),
            deferred: self.inner.deferred.load(Ordering::Relaxed),
            dead_lettered: self.inner.dead_lettered.load(Ordering::Relaxed),
            in_flight: consumers.iter().map(|c| c.in_flight).sum(),
            owned_partitions,
            consumers,
        }
    }

    /// `/status` as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(self.report("")).unwrap_or_default()
    }

    // ------------------------------------------------ fed by the loops

    pub(crate) fn set_accepting(&self, accepting: bool) {
        self.inner.accepting.store(accepting, Ordering::Relaxed);
    }

    pub(crate) fn loop_running(&self, name: &str, running: bool) {
        lock(&self.inner.state)
            .loops
            .insert(name.to_string(), running);
    }

    /// Marks a loop running until the guard is dropped; dropped before
    /// `shutdown` fired (a panic unwinding, an early return) it counts as
    /// failed.
    pub(crate) fn guard_loop(&self, name: &str, shutdown: &CancellationToken) -> LoopGuard {
        self.loop_running(name, true);
        LoopGuard {
            status: self.clone(),
            name: name.to_string(),
            shutdown: shutdown.clone(),
        }
    }

    pub(crate) fn standing(&self, group: &str, ok: bool) {
        lock(&self.inner.state)
            .standing
            .insert(group.to_string(), ok);
    }

    /// This replica's share of `group`'s `partitions`, in (0, 1]: its part
    /// of a limit split between replicas by the partitions they own
    /// (leases give each partition one owner, so the shares add up to at
    /// most 1). Owning none yet (a partition handed over under it) counts
    /// as owning one.
    pub fn owned_share(&self, group: &str, partitions: u16) -> f64 {
        let owned = lock(&self.inner.state)
            .owned
            .get(group)
            .map_or(0, |owned| owned.len())
            .max(1);
        (owned as f64 / f64::from(partitions.max(1))).min(1.0)
    }

    pub(crate) fn owned(&self, group: &str, partitions: Vec<u16>) {
        let count = partitions.len();
        lock(&self.inner.state)
            .owned
            .insert(group.to_string(), partitions);
        metrics::gauge!("waiter_worker_owned_partitions", "stage" => self.inner.stage)
            .set(count as f64);
    }

    fn with_consumer(&self, name: &str, f: impl FnOnce(&mut ConsumerState)) {
        let mut state = lock(&self.inner.state);
        let entry = state.consumers.entry(name.to_string()).or_default();
        f(entry);
    }

    /// A consumer this replica now works on (`kind` `partition` or `shared`).
    pub(crate) fn activate(&self, name: &str, kind: &'static str, active: bool) {
        self.with_consumer(name, |c| {
            c.kind = kind;
            c.active = active;
            if !active {
                c.in_flight = 0;
            }
        });
        self.publish_in_flight();
    }

    pub(crate) fn bound(&self, name: &str, bound: bool) {
        self.with_consumer(name, |c| c.bound = bound);
    }

    pub(crate) fn pulled(&self, name: &str, ok: bool) {
        self.with_consumer(name, |c| {
            if ok {
                c.last_pull_ok = Some(Instant::now());
                c.pull_failures = 0;
            } else {
                c.pull_failures = c.pull_failures.saturating_add(1);
            }
        });
    }

    /// Bound, and on purpose not pulling yet: see [`ConsumerReport::waiting`].
    pub(crate) fn waiting(&self, name: &str, waiting: bool) {
        self.with_consumer(name, |c| c.waiting = waiting);
    }

    pub(crate) fn set_in_flight(&self, name: &str, n: usize) {
        self.with_consumer(name, |c| c.in_flight = n as u64);
        self.publish_in_flight();
    }

    fn publish_in_flight(&self) {
        let total: u64 = lock(&self.inner.state)
            .consumers
            .values()
            .map(|c| c.in_flight)
            .sum();
        metrics::gauge!("waiter_worker_in_flight", "stage" => self.inner.stage).set(total as f64);
    }

    /// One outcome of one message (`ack`, `retry`, `defer`, `dead_letter`).
    pub(crate) fn count(&self, consumer: &str, outcome: &'static str) {
        let counter = match outcome {
            "ack" => &self.inner.handled,
            "retry" => &self.inner.failed,
            "defer" => &self.inner.deferred,
            _ => &self.inner.dead_lettered,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if outcome == "ack" {
            self.with_consumer(consumer, |c| c.handled += 1);
        }
        metrics::counter!("waiter_worker_messages_total",
            "stage" => self.inner.stage, "consumer" => consumer.to_string(), "outcome" => outcome)
        .increment(1);
    }
}

pub(crate) struct LoopGuard {
    status: WorkerStatus,
    name: String,
    shutdown: CancellationToken,
}

impl Drop for LoopGuard {
    fn drop(&mut self) {
        self.status.loop_running(&self.name, false);
        if !self.shutdown.is_cancelled() {
            tracing::error!(stage = self.status.stage(), worker = %self.name,
                "worker loop ended without being asked to");
            lock(&self.status.inner.state)
                .failed
                .push(self.name.clone());
        }
    }
}

fn pulling(c: &ConsumerState, now: Instant) -> bool {
    c.waiting
        || c.last_pull_ok
            .is_some_and(|at| now.saturating_duration_since(at) < PULLING_WITHIN)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_means_every_loop_running_and_every_active_consumer_pulling() {
        let status = WorkerStatus::new("router", "router-1");
        assert!(!status.is_ready(), "nothing started yet");
        status.loop_running("router", true);
        status.standing("router", true);
        status.activate("router-p0", "partition", true);
        assert!(!status.is_ready(), "not bound yet");
        status.bound("router-p0", true);
        assert!(!status.is_ready(), "bound, no pull answered yet");
        status.waiting("router-p0", true);
        assert!(status.is_ready(), "waiting for a predecessor on purpose");
        status.waiting("router-p0", false);
        status.pulled("router-p0", true);
        assert!(status.is_ready());
        // A partition another replica owns does not count.
        status.activate("router-p1", "partition", false);
        assert!(status.is_ready());
        // A deleted consumer does.
        status.bound("router-p0", false);
        assert!(!status.is_ready());
        status.bound("router-p0", true);
        status.loop_running("router-audit", false);
        assert!(!status.is_ready(), "a stopped loop");
        status.loop_running("router-audit", true);
        status.standing("router", false);
        assert!(!status.is_ready(), "heartbeats failing");
    }

    #[test]
    fn a_loop_that_ends_unasked_makes_the_process_not_alive() {
        let status = WorkerStatus::new("router", "router-1");
        let shutdown = CancellationToken::new();
        drop(status.guard_loop("router", &shutdown));
        assert!(!status.is_alive());
        let status = WorkerStatus::new("router", "router-1");
        let guard = status.guard_loop("router", &shutdown);
        shutdown.cancel();
        drop(guard);
        assert!(status.is_alive(), "stopped on request");
    }

    #[test]
    fn the_report_carries_counts_and_owned_partitions() {
        let status = WorkerStatus::new("order", "order-1");
        status.activate("order-p2", "partition", true);
        status.set_in_flight("order-p2", 3);
        status.count("order-p2", "ack");
        status.count("order-p2", "retry");
        status.count("order-p2", "dead_letter");
        status.owned("order", vec![2, 5]);
        let report = status.report("order");
        assert_eq!(report.replica, "order-1");
        assert_eq!(
            (report.handled, report.failed, report.dead_lettered),
            (1, 1, 1)
        );
        assert_eq!(report.in_flight, 3);
        assert_eq!(report.owned_partitions, [2, 5]);
        assert_eq!(report.consumers.len(), 1);
        assert_eq!(report.consumers[0].handled, 1);
        assert_eq!(status.json()["replica"], "order-1");
    }

    #[test]
    fn the_owned_share_is_a_fraction_of_the_partitions_never_zero() {
        let status = WorkerStatus::new("outbound", "outbound-1");
        assert_eq!(status.owned_share("outbound", 16), 1.0 / 16.0);
        status.owned("outbound", vec![0, 3, 7, 9]);
        assert_eq!(status.owned_share("outbound", 16), 0.25);
        assert_eq!(status.owned_share("outbound", 2), 1.0);
        assert_eq!(status.owned_share("router", 16), 1.0 / 16.0);
    }
}
