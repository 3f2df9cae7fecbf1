//! What the worker tests share: a payload keyed like a conversation, a
//! scripted handler that records who handled what, replicas in this
//! runtime or on a thread of their own (to kill or freeze), and checks
//! on the consumers.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::jetstream::consumer::PullConsumer;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use waiter_harness::{eventually, TestBus};
use waiter_nats::{
    messages::DeadLetter, worker::lane_of, BatchHandler, Bus, BusConfig, Delivery, Envelope,
    Handler, LaneHandler, Outcome, Payload, StreamKind, Worker,
};

pub const WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    pub key: String,
    pub n: u32,
}

impl Payload for Step {
    const KIND: &'static str = "test.step";
}

/// The same message, written by a newer schema version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepV2 {
    pub key: String,
    pub n: u32,
    pub note: Option<String>,
}

impl Payload for StepV2 {
    const KIND: &'static str = "test.step";
    const VERSION: u16 = 2;
}

/// One handled message.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub replica: String,
    pub key: String,
    pub n: u32,
    pub seq: u64,
    pub delivered: i64,
    pub attempt: u32,
    pub at: Instant,
}

/// What every replica's handler shares: the record, and outcomes or
/// pauses scripted per message.
#[derive(Default)]
pub struct Script {
    pub started: Mutex<Vec<(String, String, u32)>>,
    pub seen: Mutex<Vec<Seen>>,
    outcomes: Mutex<HashMap<(String, u32), VecDeque<Outcome>>>,
    slow: Mutex<HashMap<(String, u32), Duration>>,
    /// Blocks the handler's whole thread (a frozen process).
    freeze: Mutex<HashMap<(String, u32), Duration>>,
    pub pace: Mutex<Duration>,
}

impl Script {
    pub fn fail(&self, key: &str, n: u32, outcomes: Vec<Outcome>) {
        self.outcomes
            .lock()
            .unwrap()
            .insert((key.to_string(), n), outcomes.into());
    }

    pub fn slow(&self, key: &str, n: u32, d: Duration) {
        self.slow.lock().unwrap().insert((key.to_string(), n), d);
    }

    pub fn freeze(&self, key: &str, n: u32, d: Duration) {
        self.freeze.lock().unwrap().insert((key.to_string(), n), d);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub async fn handle(&self, replica: &str, key: &str, n: u32, delivery: &Delivery) -> Outcome {
        self.started
            .lock()
            .unwrap()
            .push((replica.to_string(), key.to_string(), n));
        let pace = *self.pace.lock().unwrap();
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
        let slow = self.slow.lock().unwrap().remove(&(key.to_string(), n));
        if let Some(d) = slow {
            tokio::time::sleep(d).await;
        }
        let freeze = self.freeze.lock().unwrap().remove(&(key.to_string(), n));
        if let Some(d) = freeze {
            std::thread::sleep(d);
        }
        let scripted = self
            .outcomes
            .lock()
            .unwrap()
            .get_mut(&(key.to_string(), n))
            .and_then(VecDeque::pop_front);
        if let Some(outcome) = scripted {
            return outcome;
        }
        self.seen.lock().unwrap().push(Seen {
            replica: replica.to_string(),
            key: key.to_string(),
            n,
            seq: delivery.stream_sequence,
            delivered: delivery.delivered,
            attempt: delivery.attempt,
            at: Instant::now(),
        });
        Outcome::Ack
    }
}

/// One replica's handler.
pub struct Recorder {
    pub replica: String,
    pub script: Arc<Script>,
}

impl Handler for Recorder {
    type Message = Step;
    async fn handle(&self, env: Envelope<Step>, delivery: Delivery) -> Outcome {
        self.script
            .handle(&self.replica, &env.body.key, env.body.n, &delivery)
            .await
    }
}

impl LaneHandler for Recorder {
    fn lane(&self, message: &Step) -> u64 {
        lane_of(&message.key)
    }
}

/// A newer reader of the same subjects.
pub struct RecorderV2 {
    pub replica: String,
    pub script: Arc<Script>,
}

impl Handler for RecorderV2 {
    type Message = StepV2;
    async fn handle(&self, env: Envelope<StepV2>, delivery: Delivery) -> Outcome {
        self.script
            .handle(&self.replica, &env.body.key, env.body.n, &delivery)
            .await
    }
}

/// Short leases and ack waits, so takeovers happen within seconds.
pub fn fast(config: &mut BusConfig) {
    config.worker.lease_ttl = Duration::from_millis(1500);
    config.ack_wait = Duration::from_secs(2);
    config.worker.window = 8;
}

/// The stream the tests publish to, before any worker created it.
pub async fn prepare(t: &TestBus) {
    waiter_harness::init_logs();
    t.bus
        .ensure_streams(&[StreamKind::Conversation])
        .await
        .expect("the conversation stream");
}

pub fn subject_of(bus: &Bus, key: &str) -> String {
    let t = bus.topology();
    t.conversation(t.conversation_partition(&uuid::Uuid::nil(), key))
}

pub async fn publish(bus: &Bus, key: &str, n: u32) {
    let env = Envelope::new(
        format!("{key}-{n}"),
        format!("trace-{key}-{n}"),
        Step {
            key: key.to_string(),
            n,
        },
    );
    bus.publish(subject_of(bus, key), &env)
        .await
        .expect("publish a step");
}

/// How a replica runs its handler.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Ordered,
    Lanes,
}

/// A replica in this runtime, stopped gracefully.
pub struct Replica {
    pub worker: Worker,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Replica {
    /// A replica recording into `script`.
    pub async fn start(
        t: &TestBus,
        id: &str,
        script: &Arc<Script>,
        mode: Mode,
        tweak: impl FnOnce(&mut BusConfig),
    ) -> Replica {
        let handler = Arc::new(Recorder {
            replica: id.to_string(),
            script: script.clone(),
        });
        match mode {
            Mode::Ordered => Self::ordered(t, id, handler, tweak).await,
            Mode::Lanes => {
                Self::spawn(t, id, tweak, move |w, stop| async move {
                    w.run_lanes(StreamKind::Conversation, handler, stop).await
                })
                .await
            }
        }
    }

    /// A replica running any handler in order.
    pub async fn ordered<H: BatchHandler>(
        t: &TestBus,
        id: &str,
        handler: Arc<H>,
        tweak: impl FnOnce(&mut BusConfig),
    ) -> Replica {
        Self::spawn(t, id, tweak, move |w, stop| async move {
            w.run_ordered(StreamKind::Conversation, handler, stop).await
        })
        .await
    }

    async fn spawn<F, Fut>(
        t: &TestBus,
        id: &str,
        tweak: impl FnOnce(&mut BusConfig),
        run: F,
    ) -> Replica
    where
        F: FnOnce(Worker, CancellationToken) -> Fut,
        Fut: std::future::Future<Output = Result<(), waiter_nats::BusError>> + Send + 'static,
    {
        prepare(t).await;
        let bus = t.connect(tweak).await;
        let worker = Worker::with_replica(&bus, "tester", id);
        let stop = CancellationToken::new();
        let running = run(worker.clone(), stop.clone());
        let task = tokio::spawn(async move {
            running.await.expect("worker runs");
        });
        Replica { worker, stop, task }
    }

    /// SIGTERM: finish, hand back, release.
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the replica drains in time")
            .expect("the replica's task");
    }
}

/// A replica on a thread and runtime of its own: killing it drops its
/// connection and every task at once (kill -9 as the broker sees it); a
/// handler freezing its thread freezes it whole (SIGSTOP).
pub struct Isolated {
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Isolated {
    pub fn start(config: BusConfig, id: &str, script: &Arc<Script>) -> Isolated {
        let (kill, killed) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (id, script) = (id.to_string(), script.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let bus = Bus::connect(&config, "isolated-replica")
                    .await
                    .expect("connect");
                let worker = Worker::with_replica(&bus, "tester", &id);
                let handler = Arc::new(Recorder {
                    replica: id.clone(),
                    script,
                });
                let _ = ready_tx.send(());
                let never = CancellationToken::new();
                tokio::select! {
                    _ = killed => {}
                    _ = worker.run_ordered(StreamKind::Conversation, handler, never) => {}
                }
            });
            // Dropping the runtime drops the connection without goodbyes.
        });
        ready_rx.recv().expect("the isolated replica connected");
        Isolated {
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    pub fn kill(mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the isolated replica's thread");
        }
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

/// The stream the tests' workers consume.
pub async fn stream(bus: &Bus) -> async_nats::jetstream::stream::Stream {
    bus.jetstream()
        .get_stream(bus.topology().stream_name(StreamKind::Conversation))
        .await
        .expect("stream")
}

pub async fn consumer(bus: &Bus, durable: &str) -> PullConsumer {
    stream(bus)
        .await
        .get_consumer(durable)
        .await
        .expect("consumer")
}

/// Every partition consumer of the test stage has nothing pending.
pub async fn drained(bus: &Bus) {
    eventually("every partition consumer drained", WAIT, || async {
        for p in 0..bus.topology().partitions() {
            let name = bus.topology().partition_consumer("tester", p);
            let stream = bus
                .jetstream()
                .get_stream(bus.topology().stream_name(StreamKind::Conversation))
                .await
                .ok()?;
            let Ok(mut c) = stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name)
                .await
            else {
                continue;
            };
            let info = c.info().await.ok()?;
            if info.num_pending > 0 || info.num_ack_pending > 0 {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// Per key, the order messages were first completed in never skips
/// ahead (re-handling an earlier one again is allowed: at least once).
pub fn assert_in_order(seen: &[Seen], keys: &[String], count: u32) {
    for key in keys {
        let ns: Vec<u32> = seen.iter().filter(|s| &s.key == key).map(|s| s.n).collect();
        let mut next = 0;
        for &n in &ns {
            assert!(n <= next, "{key}: {n} completed before {next}: {ns:?}");
            if n == next {
                next += 1;
            }
        }
        assert_eq!(next, count, "{key}: not every message handled: {ns:?}");
    }
}

/// Per key, each message handled exactly once, in order.
pub fn assert_exactly_once_in_order(seen: &[Seen], keys: &[String], count: u32) {
    for key in keys {
        let ns: Vec<u32> = seen.iter().filter(|s| &s.key == key).map(|s| s.n).collect();
        assert_eq!(ns, (0..count).collect::<Vec<_>>(), "{key}");
    }
}

pub async fn dead_letters(bus: &Bus) -> Vec<(Envelope<DeadLetter>, async_nats::HeaderMap)> {
    let filter = bus.topology().stream_subjects(StreamKind::DeadLetter);
    waiter_harness::read_stream(bus, StreamKind::DeadLetter, filter)
        .await
        .into_iter()
        .map(|m| {
            (
                Envelope::<DeadLetter>::decode(&m.payload).expect("a dead letter"),
                m.headers.clone().unwrap_or_default(),
            )
        })
        .collect()
}
