//! What ordered and keyed-lane engines share: pulling into a queue,
//! settling one outcome, dead-lettering with retries, and finishing
//! (hand back in order, or let go).

use std::{
    collections::BTreeMap,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, consumer::PullConsumer};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use super::{
    held::{pull, Held, PullEnd, Settler},
    outcome::{Failure, Outcome},
    policy::{settle, Attempt, LetterClass, Settlement},
};
use crate::error::BusError;

/// How often an idle engine looks up (gate, stop) without news.
pub(crate) const IDLE_WAKE: Duration = Duration::from_millis(250);

/// How an engine's run over one consumer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EngineEnd {
    /// Asked to stop: every message was settled or handed back (nak, in
    /// stream order).
    Stopped,
    /// The lease was lost while this holder could not work: everything
    /// held was dropped unsettled, for the new owner.
    Lost,
    /// The consumer was deleted; re-create it after this sequence.
    Deleted { resume_after: Option<u64> },
}

/// Works on the messages of one consumer until stopped.
pub(crate) trait Engine: Send + Sync + 'static {
    fn run(
        &self,
        settler: Arc<Settler>,
        consumer: PullConsumer,
        window: usize,
        stop: CancellationToken,
    ) -> impl Future<Output = EngineEnd> + Send;
}

/// The messages delivered to this holder, in stream order, and the pull
/// and progress tasks feeding and guarding them.
pub(crate) struct Intake {
    pub settler: Arc<Settler>,
    pub queue: BTreeMap<u64, Held>,
    rx: mpsc::UnboundedReceiver<jetstream::Message>,
    pull_stop: CancellationToken,
    puller: Option<JoinHandle<PullEnd>>,
    keeper: JoinHandle<()>,
}

impl Intake {
    pub fn start(settler: Arc<Settler>, consumer: PullConsumer, window: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let pull_stop = CancellationToken::new();
        let config = settler.bus.worker_config();
        let expires = config.timing().pull_expires;
        let every = settler.bus.ack_wait() / 3;
        let puller = {
            let (settler, stop) = (settler.clone(), pull_stop.clone());
            let mut consumer = consumer;
            tokio::spawn(
                async move { pull(&settler, &mut consumer, window, expires, tx, stop).await },
            )
        };
        let keeper = {
            let (settler, stop) = (settler.clone(), pull_stop.clone());
            tokio::spawn(async move { settler.keep_alive(every, stop).await })
        };
        Self {
            settler,
            queue: BTreeMap::new(),
            rx,
            pull_stop,
            puller: Some(puller),
            keeper,
        }
    }

    fn take(&mut self, message: jetstream::Message) {
        if let Some(held) = self.settler.receive(message) {
            self.queue.insert(held.seq, held);
        }
    }

    /// Moves everything already delivered into the queue. `Some` when the
    /// puller ended by itself (the consumer was deleted).
    pub fn drain(&mut self) -> Option<PullEnd> {
        while let Ok(message) = self.rx.try_recv() {
            self.take(message);
        }
        if self.puller.as_ref().is_some_and(|p| p.is_finished()) {
            return Some(PullEnd::Deleted);
        }
        None
    }

    /// Waits for the next delivery (or `wake`, whichever first).
    pub async fn next(&mut self, wake: Duration) {
        if let Ok(Some(message)) = tokio::time::timeout(wake, self.rx.recv()).await {
            self.take(message);
        }
    }

    /// Stops pulling (an open request is finished first), then hands back
    /// or drops what is held.
    pub async fn finish(mut self, end: EngineEnd) -> EngineEnd {
        self.pull_stop.cancel();
        if let Some(puller) = self.puller.take() {
            let _ = puller.await;
        }
        self.keeper.abort();
        while let Ok(message) = self.rx.try_recv() {
            self.take(message);
        }
        match end {
            EngineEnd::Stopped if self.settler.gate.may_work() => {
                for held in self.queue.values() {
                    self.settler.nak(held).await;
                }
                let _ = self.settler.bus.client().flush().await;
                EngineEnd::Stopped
            }
            EngineEnd::Stopped | EngineEnd::Lost => {
                self.settler.drop_all();
                EngineEnd::Lost
            }
            EngineEnd::Deleted { .. } => {
                let resume_after = self.settler.resume_after();
                self.settler.drop_all();
                EngineEnd::Deleted { resume_after }
            }
        }
    }
}

/// Waits for the holder to regain its standing (see [`super::held::Gate::regain`]);
/// `false` when the lease moved or it was asked to stop meanwhile (a holder
/// that cannot act cannot hand back either: what it holds is dropped).
pub(crate) async fn regained(settler: &Settler, stop: &CancellationToken) -> bool {
    tokio::select! {
        still_ours = settler.gate.regain() => still_ours,
        _ = stop.cancelled() => false,
    }
}

/// What became of one outcome.
pub(crate) enum Settled {
    /// Acknowledged or dead-lettered: gone from the queue.
    Done,
    /// Stays, to be offered again at `not_before`.
    Again,
}

/// Applies one outcome to a held message: ack, in-place retry or
/// deferral, or dead letter (kept for another try if the letter cannot
/// be stored).
pub(crate) async fn apply(settler: &Settler, held: &mut Held, outcome: Outcome) -> Settled {
    let now = Instant::now();
    let at = Attempt {
        attempt: super::policy::attempt_number(held.delivered, held.attempts),
        delivered: held.delivered,
        failing_for: held.failing_for(now),
    };
    match settle(&outcome, at, &settler.policy, rand::random()) {
        Settlement::Ack => {
            settler.ack(held).await;
            Settled::Done
        }
        Settlement::Retry { delay } => {
            held.attempts += 1;
            held.first_failure.get_or_insert(now);
            held.not_before = Some(now + delay);
            settler.status.count(&settler.consumer, "retry");
            if let Outcome::Retry(failure) = &outcome {
                tracing::warn!(stage = settler.stage, consumer = %settler.consumer, seq = held.seq,
                    attempt = at.attempt, class = failure.class.as_str(), code = ?failure.code,
                    delay_ms = delay.as_millis() as u64, reason = %failure.reason,
                    trace_id = ?held.trace_id(), "will retry in place");
            }
            Settled::Again
        }
        Settlement::Defer { delay } => {
            held.not_before = Some(now + delay);
            settler.status.count(&settler.consumer, "defer");
            tracing::debug!(
                stage = settler.stage,
                seq = held.seq,
                delay_ms = delay.as_millis() as u64,
                "deferred"
            );
            Settled::Again
        }
        Settlement::DeadLetter { class } => {
            let failure = match outcome {
                Outcome::Retry(f) | Outcome::DeadLetter(f) => f,
                Outcome::Defer { reason, .. } => Failure::unknown(reason),
                Outcome::Ack => Failure::unknown("acknowledged"),
            };
            let failure = match class {
                LetterClass::Exhausted => {
                    let attempts = at.attempt;
                    let reason = format!("gave up after {attempts} attempts: {}", failure.reason);
                    Failure { reason, ..failure }
                }
                LetterClass::LastDelivery => {
                    let reason = format!(
                        "failed on its last delivery ({}): {}",
                        held.delivered, failure.reason
                    );
                    Failure { reason, ..failure }
                }
                _ => failure,
            };
            dead_letter(settler, held, class, failure).await
        }
    }
}

/// Dead-letters `held`; when the letter cannot be stored the message is
/// kept (unacknowledged) and the letter tried again later.
pub(crate) async fn dead_letter(
    settler: &Settler,
    held: &mut Held,
    class: LetterClass,
    failure: Failure,
) -> Settled {
    match settler.dead_letter(held, class, &failure).await {
        Ok(()) => Settled::Done,
        Err(e) => {
            held.attempts = held.attempts.max(1);
            let delay = settler.policy.backoff.jittered(held.attempts.min(8));
            held.not_before = Some(Instant::now() + delay);
            tracing::error!(stage = settler.stage, seq = held.seq, error = %e,
                "cannot store the dead letter; the message stays unacknowledged");
            held.letter = Some((class, failure));
            Settled::Again
        }
    }
}

/// A decoded envelope, or why the message never reaches the handler.
pub(crate) enum Decoded<T> {
    Ok(crate::Envelope<T>),
    /// Undecodable: dead-lettered as poison.
    Poison(Failure),
    /// A newer schema: deferred in place until a newer reader runs.
    Newer(String),
}

pub(crate) fn decode<T: crate::Payload>(held: &Held) -> Decoded<T> {
    match held.decode::<T>() {
        Ok(envelope) => Decoded::Ok(envelope),
        Err(e @ BusError::NewerSchema { .. }) => Decoded::Newer(e.to_string()),
        Err(e) => Decoded::Poison(Failure::permanent(e).with_code("undecodable")),
    }
}

/// Defers a message of a newer schema in place.
pub(crate) fn defer_newer(settler: &Settler, held: &mut Held, reason: &str) {
    let delay = settler.bus.worker_config().newer_schema_delay;
    held.not_before = Some(Instant::now() + delay);
    settler.status.count(&settler.consumer, "defer");
    tracing::warn!(
        stage = settler.stage,
        seq = held.seq,
        reason,
        "envelope of a newer schema deferred until a newer reader runs"
    );
}

/// How long to wait for the next thing to do: the earliest `not_before`
/// among the queue, capped.
pub(crate) fn wake_after(queue: &BTreeMap<u64, Held>, cap: Duration) -> Duration {
    let now = Instant::now();
    queue
        .values()
        .filter_map(|h| h.not_before)
        .map(|at| at.saturating_duration_since(now))
        .min()
        .unwrap_or(cap)
        .min(cap)
}
