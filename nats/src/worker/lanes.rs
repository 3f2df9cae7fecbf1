//! Keyed lanes: messages with the same key (a conversation) are handled
//! strictly one after another in stream order, different keys at the same
//! time up to a bound, each acknowledged on its own. A retrying or
//! rate-limited key waits in place without holding up the others (beyond
//! the window). With no key every message is its own lane: the shared,
//! unordered consumers.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    pin::Pin,
    sync::Arc,
    time::Instant,
};

use async_nats::jetstream::consumer::PullConsumer;
use futures::{stream::FuturesUnordered, StreamExt};
use tokio_util::sync::CancellationToken;

use super::{
    engine::{
        apply, dead_letter, decode, defer_newer, regained, wake_after, Decoded, Engine, EngineEnd,
        Intake, Settled, IDLE_WAKE,
    },
    held::Settler,
    outcome::Outcome,
    policy::LetterClass,
    Handler,
};
use crate::Envelope;

type Running = Pin<Box<dyn Future<Output = (u64, Outcome)> + Send>>;

/// The key of a message, or `None` for "no order needed".
pub(crate) type LaneOf<H> = fn(&H, &<H as Handler>::Message) -> Option<u64>;

pub(crate) struct Lanes<H: Handler> {
    pub handler: Arc<H>,
    pub lane: LaneOf<H>,
    /// Messages handled at once.
    pub bound: usize,
    /// Keyed: a message of a newer schema (whose key cannot be read)
    /// holds back everything after it.
    pub keyed: bool,
}

struct State<T> {
    /// The lane of each held message, once decoded.
    lanes: HashMap<u64, u64>,
    /// Envelopes decoded for their lane and not yet handed over.
    decoded: HashMap<u64, Envelope<T>>,
    running: FuturesUnordered<Running>,
    busy: HashSet<u64>,
}

impl<H: Handler> Lanes<H> {
    /// Starts every message that may start now.
    async fn dispatch(
        &self,
        settler: &Arc<Settler>,
        intake: &mut Intake,
        state: &mut State<H::Message>,
    ) {
        let now = Instant::now();
        let mut lanes_seen = HashSet::new();
        let seqs: Vec<u64> = intake.queue.keys().copied().collect();
        for seq in seqs {
            if state.running.len() >= self.bound {
                break;
            }
            let Some(held) = intake.queue.get_mut(&seq) else {
                continue;
            };
            let lane = match state.lanes.get(&seq) {
                Some(&lane) => lane,
                None => match decode::<H::Message>(held) {
                    Decoded::Ok(envelope) => {
                        let lane = (self.lane)(&self.handler, &envelope.body).unwrap_or(seq);
                        state.lanes.insert(seq, lane);
                        state.decoded.insert(seq, envelope);
                        lane
                    }
                    Decoded::Poison(failure) => {
                        if let Settled::Done =
                            dead_letter(settler, held, LetterClass::Poison, failure).await
                        {
                            intake.queue.remove(&seq);
                        }
                        continue;
                    }
                    Decoded::Newer(reason) => {
                        if held.due(now) {
                            defer_newer(settler, held, &reason);
                        }
                        if self.keyed {
                            break;
                        }
                        continue;
                    }
                },
            };
            let first_of_lane = lanes_seen.insert(lane);
            if state.busy.contains(&seq) || !first_of_lane || !held.due(now) {
                continue;
            }
            if let Some((class, failure)) = held.letter.take() {
                if let Settled::Done = dead_letter(settler, held, class, failure).await {
                    intake.queue.remove(&seq);
                    state.forget(seq);
                }
                continue;
            }
            let envelope = match state.decoded.remove(&seq) {
                Some(envelope) => envelope,
                None => match held.decode::<H::Message>() {
                    Ok(envelope) => envelope,
                    Err(_) => continue,
                },
            };
            let delivery = held.delivery();
            let handler = self.handler.clone();
            let stage = settler.stage;
            state.busy.insert(seq);
            state.running.push(Box::pin(async move {
                let started = Instant::now();
                let outcome = handler.handle(envelope, delivery).await;
                metrics::histogram!("waiter_worker_handle_seconds", "stage" => stage)
                    .record(started.elapsed().as_secs_f64());
                (seq, outcome)
            }));
        }
    }
}

impl<T> State<T> {
    fn forget(&mut self, seq: u64) {
        self.lanes.remove(&seq);
        self.decoded.remove(&seq);
        self.busy.remove(&seq);
    }
}

impl<H: Handler> Engine for Lanes<H> {
    async fn run(
        &self,
        settler: Arc<Settler>,
        consumer: PullConsumer,
        window: usize,
        stop: CancellationToken,
    ) -> EngineEnd {
        let mut intake = Intake::start(settler.clone(), consumer, window);
        let mut state = State {
            lanes: HashMap::new(),
            decoded: HashMap::new(),
            running: FuturesUnordered::new(),
            busy: HashSet::new(),
        };
        let mut ending: Option<EngineEnd> = None;
        let end = loop {
            if ending.is_none() {
                if intake.drain().is_some() {
                    ending = Some(EngineEnd::Deleted { resume_after: None });
                } else if stop.is_cancelled() {
                    ending = Some(EngineEnd::Stopped);
                } else if !settler.gate.may_work() && state.running.is_empty() {
                    if !regained(&settler, &stop).await {
                        ending = Some(EngineEnd::Lost);
                    }
                    continue;
                }
            }
            if let Some(end) = ending {
                if state.running.is_empty() {
                    break end;
                }
            } else if settler.gate.may_work() {
                self.dispatch(&settler, &mut intake, &mut state).await;
            }
            let wake = wake_after(&intake.queue, IDLE_WAKE);
            tokio::select! {
                Some((seq, outcome)) = state.running.next(), if !state.running.is_empty() => {
                    state.busy.remove(&seq);
                    // A holder that may no longer act only records work done.
                    if !settler.gate.may_work() && outcome != Outcome::Ack {
                        continue;
                    }
                    if let Some(held) = intake.queue.get_mut(&seq) {
                        if let Settled::Done = apply(&settler, held, outcome).await {
                            intake.queue.remove(&seq);
                            state.forget(seq);
                        }
                    }
                }
                _ = intake.next(wake) => {}
                _ = stop.cancelled(), if ending.is_none() => {}
            }
        };
        intake.finish(end).await
    }
}
