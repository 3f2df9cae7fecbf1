//! Messages a worker holds: pulling them (one pull request per window),
//! keeping them alive with progress acks, settling them, dead-lettering
//! them. Shared by the ordered, keyed-lane and shared-consumer engines.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_nats::{
    jetstream::{self, consumer::PullConsumer, AckKind},
    HeaderMap, Subject,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    outcome::Failure,
    policy::{attempt_number, LetterClass, RetryPolicy},
    status::WorkerStatus,
    Delivery,
};
use crate::{
    bus::Bus,
    envelope::{Envelope, Payload, TRACE_HEADER},
    error::BusError,
    messages::DeadLetter,
};

/// Whether the holder may act on what it holds. Always yes on a shared
/// consumer; on a partition, while its lease holds (see `lease.rs`).
pub(crate) trait Gate: Send + Sync + 'static {
    /// Handle, acknowledge, send progress.
    fn may_work(&self) -> bool;
    /// Issue a pull request (which stays open a while).
    fn may_pull(&self) -> bool;
    /// After `may_work` turned false: waits until it may work again and
    /// says whether the partition is still its own (`false`: lost, let
    /// go of everything without settling it).
    fn regain(&self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>>;
    /// Which uninterrupted holding of a partition this is: the same value
    /// for as long as no other replica can have owned it in between.
    /// `None` when there is nothing to hold.
    fn term(&self) -> Option<u64> {
        None
    }
}

/// A shared consumer: nothing to hold.
pub(crate) struct Open;

impl Gate for Open {
    fn may_work(&self) -> bool {
        true
    }
    fn may_pull(&self) -> bool {
        true
    }
    fn regain(&self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(async { true })
    }
}

/// One delivered message this holder has not settled.
pub(crate) struct Held {
    pub message: jetstream::Message,
    pub seq: u64,
    pub delivered: i64,
    /// Handler attempts made here (deferrals not counted).
    pub attempts: u32,
    pub first_failure: Option<Instant>,
    /// Not to be offered to the handler before this.
    pub not_before: Option<Instant>,
    /// Given up on, but its dead letter could not be stored yet.
    pub letter: Option<(LetterClass, Failure)>,
}

impl Held {
    pub fn new(message: jetstream::Message) -> Self {
        let (seq, delivered) = match message.info() {
            Ok(info) => (info.stream_sequence, info.delivered),
            Err(_) => (0, 1),
        };
        Self {
            message,
            seq,
            delivered,
            attempts: 0,
            first_failure: None,
            not_before: None,
            letter: None,
        }
    }

    pub fn trace_id(&self) -> Option<String> {
        self.message
            .headers
            .as_ref()
            .and_then(|h| h.get(TRACE_HEADER))
            .map(|v| v.as_str().to_string())
    }

    pub fn delivery(&self) -> Delivery {
        Delivery {
            subject: self.message.subject.to_string(),
            stream_sequence: self.seq,
            delivered: self.delivered,
            attempt: attempt_number(self.delivered, self.attempts),
            trace_id: self.trace_id(),
        }
    }

    pub fn decode<T: Payload>(&self) -> Result<Envelope<T>, BusError> {
        Envelope::decode(&self.message.payload)
    }

    pub fn due(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|at| at <= now)
    }

    pub fn failing_for(&self, now: Instant) -> Duration {
        self.first_failure
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at))
    }
}

/// Everything a worker needs to settle the messages of one consumer.
pub(crate) struct Settler {
    pub bus: Bus,
    pub stage: &'static str,
    pub consumer: String,
    pub status: WorkerStatus,
    pub policy: RetryPolicy,
    pub gate: Arc<dyn Gate>,
    /// Reply subjects of everything delivered and not settled, by stream
    /// sequence: what progress acks keep alive.
    unsettled: Mutex<BTreeMap<u64, Subject>>,
    /// The highest sequence settled, for re-creating a deleted consumer.
    settled_up_to: Mutex<u64>,
}

impl Settler {
    pub fn new(
        bus: Bus,
        stage: &'static str,
        consumer: String,
        status: WorkerStatus,
        gate: Arc<dyn Gate>,
    ) -> Self {
        let policy = bus.worker_config().retry_policy();
        Self {
            bus,
            stage,
            consumer,
            status,
            policy,
            gate,
            unsettled: Mutex::new(BTreeMap::new()),
            settled_up_to: Mutex::new(0),
        }
    }

    /// Takes a delivered message in; `None` when it is a redelivery of one
    /// already held (its ack timer ran out while it waited): the copy
    /// held keeps its place.
    pub fn receive(&self, message: jetstream::Message) -> Option<Held> {
        let held = Held::new(message);
        if held.delivered > 1 {
            metrics::counter!("waiter_worker_redelivered_total",
                "stage" => self.stage, "consumer" => self.consumer.clone())
            .increment(1);
        }
        let reply = held.message.reply.clone()?;
        let mut unsettled = lock(&self.unsettled);
        let fresh = unsettled.insert(held.seq, reply).is_none();
        self.status.set_in_flight(&self.consumer, unsettled.len());
        fresh.then_some(held)
    }

    fn forget(&self, seq: u64) {
        let mut unsettled = lock(&self.unsettled);
        unsettled.remove(&seq);
        self.status.set_in_flight(&self.consumer, unsettled.len());
        let mut up_to = lock(&self.settled_up_to);
        *up_to = (*up_to).max(seq);
    }

    /// Forgets everything held without settling it (a lost lease, a
    /// deleted consumer): it comes back through JetStream.
    pub fn drop_all(&self) {
        lock(&self.unsettled).clear();
        self.status.set_in_flight(&self.consumer, 0);
    }

    /// Where a re-created consumer must start so nothing unsettled is
    /// skipped.
    pub fn resume_after(&self) -> Option<u64> {
        let lowest_unsettled = lock(&self.unsettled).keys().next().copied();
        let settled = *lock(&self.settled_up_to);
        match lowest_unsettled {
            Some(seq) => Some(seq.saturating_sub(1)),
            None if settled > 0 => Some(settled),
            None => None,
        }
    }

    async fn send(&self, held: &Held, kind: AckKind) {
        if let Err(e) = held.message.ack_with(kind).await {
            // Not fatal: it comes back after the ack wait, and effects are
            // idempotent.
            tracing::warn!(stage = self.stage, consumer = %self.consumer, seq = held.seq,
                error = %e, "could not settle message");
        }
    }

    pub async fn ack(&self, held: &Held) {
        self.send(held, AckKind::Ack).await;
        self.forget(held.seq);
        self.status.count(&self.consumer, "ack");
    }

    /// Hands a message back for immediate redelivery (in stream order when
    /// called in stream order): giving a partition back.
    pub async fn nak(&self, held: &Held) {
        self.send(held, AckKind::Nak(None)).await;
        self.forget(held.seq);
    }

    /// Publishes the dead letter, waits for JetStream to store it, and
    /// only then terminates the original. If the letter cannot be stored
    /// nothing is acknowledged and the error says so.
    pub async fn dead_letter(
        &self,
        held: &Held,
        class: LetterClass,
        failure: &Failure,
    ) -> Result<(), BusError> {
        let letter = self.letter(held, class, failure);
        let topology = self.bus.topology();
        let trace = letter
            .trace_id
            .clone()
            .unwrap_or_else(|| format!("dlq:{}", held.seq));
        let envelope = Envelope::new(
            format!("dlq:{}:{}:{}", self.stage, self.consumer, held.seq),
            trace,
            letter,
        );
        self.bus
            .publish(topology.dead_letter(self.stage), &envelope)
            .await?;
        self.send(held, AckKind::Term).await;
        self.forget(held.seq);
        self.status.count(&self.consumer, "dead_letter");
        metrics::counter!("waiter_dead_letters_total",
            "stage" => self.stage, "reason_class" => class.as_str())
        .increment(1);
        tracing::warn!(stage = self.stage, consumer = %self.consumer, seq = held.seq,
            delivered = held.delivered, attempts = held.attempts, class = class.as_str(),
            code = ?failure.code, reason = %failure.reason, trace_id = ?envelope.body.trace_id,
            "message dead-lettered");
        Ok(())
    }

    fn letter(&self, held: &Held, class: LetterClass, failure: &Failure) -> DeadLetter {
        let headers = held
            .message
            .headers
            .as_ref()
            .map(header_pairs)
            .unwrap_or_default();
        DeadLetter {
            stage: self.stage.to_string(),
            reason: failure.reason.clone(),
            error_code: failure.code.as_deref().and_then(|c| c.parse().ok()),
            original_subject: held.message.subject.to_string(),
            original: held.message.payload.to_vec(),
            attempts: i64::from(attempt_number(held.delivered, held.attempts)).max(1),
            failed_at: chrono::Utc::now(),
            reason_class: class.as_str().to_string(),
            code: failure.code.clone(),
            consumer: self.consumer.clone(),
            original_headers: headers,
            stream_sequence: held.seq,
            delivered: held.delivered,
            trace_id: held.trace_id(),
            restaurant_id: failure.context.restaurant_id,
            conversation_id: failure.context.conversation_id,
            recipient: failure.context.recipient.clone(),
        }
    }

    /// Sends an in-progress ack for everything held, every `every`, while
    /// the gate allows, until `stop`.
    pub async fn keep_alive(&self, every: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if !self.gate.may_work() {
                continue;
            }
            let replies: Vec<Subject> = lock(&self.unsettled).values().cloned().collect();
            let client = self.bus.client();
            for reply in replies {
                if let Err(e) = client.publish(reply, "+WPI".into()).await {
                    tracing::debug!(consumer = %self.consumer, error = %e, "progress ack not sent");
                }
            }
        }
    }
}

/// Every header of a message as (name, value) pairs, repeated names
/// repeated.
pub(crate) fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut pairs = vec![];
    for (name, values) in headers.iter() {
        for value in values {
            pairs.push((name.to_string(), value.to_string()));
        }
    }
    pairs.sort();
    pairs
}

/// Why a puller stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PullEnd {
    /// Asked to; everything delivered to this holder was passed on.
    Stopped,
    /// The consumer no longer exists.
    Deleted,
}

/// How often an idle puller checks that its consumer still exists (a
/// deleted consumer answers no pull request: it looks idle).
const BIND_CHECK: Duration = Duration::from_secs(5);

/// How long after its expiry a pull request is still waited for before
/// the next one goes out. nats-server 2.9 sometimes sends no "request
/// timeout" for a request that got part of its batch (measured under
/// load: one request in a few hundred), and the client would give up
/// only 5 s later: the partition would stall that long. The server hands
/// nothing to an expired request, so once the grace (for deliveries
/// already on their way) has passed the next request goes out; the old
/// one stays subscribed until it ends all the same.
const EXPIRY_GRACE: Duration = Duration::from_millis(250);

enum Pulled {
    Message(u64, Result<Box<jetstream::Message>, String>),
    Ended(u64),
}

/// Pulls `window` messages per request into `into` until `stop`. On
/// `stop` no new request goes out and the newest is waited for (until it
/// ends, or its expiry plus the grace): then everything delivered to this
/// holder is in `into`.
pub(crate) async fn pull(
    settler: &Settler,
    consumer: &mut PullConsumer,
    window: usize,
    expires: Duration,
    into: mpsc::UnboundedSender<jetstream::Message>,
    stop: CancellationToken,
) -> PullEnd {
    use futures::stream::{self, SelectAll};

    let name = settler.consumer.clone();
    let mut open: SelectAll<Pin<Box<dyn futures::Stream<Item = Pulled> + Send>>> = SelectAll::new();
    let mut requests: u64 = 0;
    // The newest request: (id, when to stop waiting for it, received).
    let mut newest: Option<(u64, tokio::time::Instant, usize)> = None;
    let mut last_check = Instant::now();
    let mut failures: u32 = 0;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let stopping = stop.is_cancelled();
        if stopping && newest.is_none() {
            return PullEnd::Stopped;
        }
        let may_request = !stopping
            && newest.is_none()
            && retry_at.is_none_or(|at| at <= tokio::time::Instant::now());
        if may_request && settler.gate.may_pull() {
            match consumer
                .batch()
                .max_messages(window)
                .expires(expires)
                .messages()
                .await
            {
                Ok(batch) => {
                    requests += 1;
                    let id = requests;
                    let items = batch
                        .map(move |m| {
                            Pulled::Message(id, m.map(Box::new).map_err(|e| e.to_string()))
                        })
                        .chain(stream::once(async move { Pulled::Ended(id) }));
                    open.push(Box::pin(items));
                    newest = Some((id, tokio::time::Instant::now() + expires + EXPIRY_GRACE, 0));
                    retry_at = None;
                }
                Err(e) => {
                    tracing::debug!(consumer = %name, error = %e, "cannot send pull request");
                    settler.status.pulled(&name, false);
                    failures = failures.saturating_add(1);
                    let pause = settler.policy.backoff.jittered(failures.min(6));
                    retry_at = Some(tokio::time::Instant::now() + pause);
                }
            }
        }
        // Wake for: a delivery or an end; the newest request's grace
        // running out; a retry being due; the gate opening; stop.
        let wake = match (newest, retry_at) {
            (Some((_, at, _)), _) => at,
            (None, Some(at)) => at,
            (None, None) => tokio::time::Instant::now() + Duration::from_millis(50),
        };
        tokio::select! {
            event = open.next(), if !open.is_empty() => match event {
                Some(Pulled::Message(id, Ok(message))) => {
                    if let Some((newest_id, _, received)) = newest.as_mut() {
                        if *newest_id == id {
                            *received += 1;
                        }
                    }
                    if into.send(*message).is_err() {
                        return PullEnd::Stopped;
                    }
                }
                Some(Pulled::Message(id, Err(e))) => {
                    tracing::debug!(consumer = %name, error = %e, "pull request failed");
                    if newest.is_some_and(|(n, _, _)| n == id) {
                        settler.status.pulled(&name, false);
                        failures = failures.saturating_add(1);
                        let pause = settler.policy.backoff.jittered(failures.min(6));
                        retry_at = Some(tokio::time::Instant::now() + pause);
                        newest = None;
                    }
                }
                Some(Pulled::Ended(id)) => {
                    if let Some((newest_id, _, received)) = newest {
                        if newest_id == id {
                            newest = None;
                            failures = 0;
                            settler.status.pulled(&name, true);
                            if received == 0
                                && check(settler, consumer, &mut last_check).await == Bound::Gone
                            {
                                return PullEnd::Deleted;
                            }
                        }
                    }
                }
                None => {}
            },
            _ = tokio::time::sleep_until(wake) => {
                if let Some((_, at, received)) = newest {
                    if at <= tokio::time::Instant::now() {
                        // Past its expiry and unanswered: listen on, but
                        // ask again.
                        newest = None;
                        if received > 0 {
                            settler.status.pulled(&name, true);
                            metrics::counter!("waiter_worker_unanswered_pulls_total",
                                "stage" => settler.stage)
                            .increment(1);
                        } else {
                            match check(settler, consumer, &mut last_check).await {
                                Bound::Gone => return PullEnd::Deleted,
                                // The server let an idle request lapse
                                // unanswered, but the consumer is there:
                                // this loop still pulls.
                                Bound::There => settler.status.pulled(&name, true),
                                Bound::NotChecked => {}
                            }
                        }
                    }
                }
            }
            _ = stop.cancelled(), if !stopping => {}
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Bound {
    Gone,
    There,
    NotChecked,
}

/// After a request that brought nothing: whether the consumer is gone
/// (checked at most every [`BIND_CHECK`]; a deleted consumer answers no
/// request, which looks like an idle one).
async fn check(settler: &Settler, consumer: &mut PullConsumer, last_check: &mut Instant) -> Bound {
    if last_check.elapsed() < BIND_CHECK {
        return Bound::NotChecked;
    }
    *last_check = Instant::now();
    match consumer.info().await {
        Err(e) if e.kind() == jetstream::context::ConsumerInfoErrorKind::NotFound => {
            settler.status.bound(&settler.consumer, false);
            Bound::Gone
        }
        Ok(_) => Bound::There,
        Err(_) => Bound::NotChecked,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
