//! The worker loop every consuming stage runs.
//!
//! A handler returns an [`Outcome`]; the loop turns it into an ack, a nak
//! with a delay that grows with the delivery count, or a term. Messages that
//! cannot be decoded are terminated on purpose (they would fail forever),
//! logged and counted. On shutdown the loop stops fetching, lets in-flight
//! messages finish, and returns.

use std::{future::Future, sync::Arc, time::Duration};

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    bus::Bus,
    envelope::{Envelope, Payload, TRACE_HEADER},
    error::BusError,
    streams::{ensure_consumer, ConsumerSpec},
    topology::StreamKind,
};

/// What to do with a message once its handler is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done (including "already done before": effects are idempotent).
    Ack,
    /// A transient failure (database or broker unavailable): deliver again
    /// after a backoff that grows with the number of attempts.
    Retry { reason: String },
    /// Deliver again after exactly this delay (e.g. a rate limit's answer).
    RetryAfter { delay: Duration, reason: String },
    /// A permanent failure: this message can never succeed. It is
    /// terminated; the handler has recorded why (dead letter, audit row).
    Reject { reason: String },
}

impl Outcome {
    pub fn retry(reason: impl ToString) -> Self {
        Outcome::Retry {
            reason: reason.to_string(),
        }
    }

    pub fn reject(reason: impl ToString) -> Self {
        Outcome::Reject {
            reason: reason.to_string(),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Outcome::Ack => "ack",
            Outcome::Retry { .. } | Outcome::RetryAfter { .. } => "retry",
            Outcome::Reject { .. } => "reject",
        }
    }
}

/// Where a message came from and how often it was delivered.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub subject: String,
    pub stream_sequence: u64,
    /// 1 on the first delivery.
    pub delivered: i64,
    pub trace_id: Option<String>,
}

/// A stage's logic for one kind of message.
pub trait Handler: Send + Sync + 'static {
    type Message: Payload;

    fn handle(
        &self,
        envelope: Envelope<Self::Message>,
        delivery: Delivery,
    ) -> impl Future<Output = Outcome> + Send;
}

/// The delay before the n-th redelivery: 250 ms doubling, capped at 30 s.
pub fn backoff(delivered: i64) -> Duration {
    let exponent = (delivered.max(1) - 1).min(16) as u32;
    Duration::from_millis(250u64.saturating_mul(1u64 << exponent)).min(Duration::from_secs(30))
}

/// Runs one sequential worker per partition of `stream` (durable consumers
/// `<stage>-p<N>`, `max_ack_pending` 1). Returns when `shutdown` fires and
/// every in-flight message is finished.
pub async fn run_partitioned<H: Handler>(
    bus: &Bus,
    stream: StreamKind,
    stage: &'static str,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let topology = bus.topology().clone();
    let tasks = TaskTracker::new();
    for partition in 0..topology.partitions() {
        let mut spec = ConsumerSpec::partition(&topology, stream, stage, partition);
        spec.ack_wait = bus.ack_wait();
        let consumer = ensure_consumer(bus.jetstream(), &topology, &spec).await?;
        tasks.spawn(consume(
            stage,
            spec,
            consumer,
            1,
            handler.clone(),
            shutdown.clone(),
        ));
    }
    tasks.close();
    tracing::info!(stage, partitions = topology.partitions(), stream = ?stream, "workers started");
    tasks.wait().await;
    Ok(())
}

/// Runs one worker over a shared durable consumer with up to `in_flight`
/// messages handled at once.
pub async fn run_shared<H: Handler>(
    bus: &Bus,
    mut spec: ConsumerSpec,
    stage: &'static str,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    spec.ack_wait = bus.ack_wait();
    let consumer = ensure_consumer(bus.jetstream(), bus.topology(), &spec).await?;
    let in_flight = spec.max_ack_pending.max(1) as usize;
    tracing::info!(stage, consumer = %spec.durable, in_flight, "worker started");
    consume(stage, spec, consumer, in_flight, handler, shutdown).await;
    Ok(())
}

async fn consume<H: Handler>(
    stage: &'static str,
    spec: ConsumerSpec,
    consumer: jetstream::consumer::PullConsumer,
    in_flight: usize,
    handler: Arc<H>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(in_flight));
    let tasks = TaskTracker::new();
    'outer: while !shutdown.is_cancelled() {
        let messages = consumer
            .stream()
            .max_messages_per_batch(in_flight)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await;
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(stage, consumer = %spec.durable, error = %e, "cannot pull; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            // Wait for capacity before taking a message, so nothing is
            // pulled that cannot be worked on at once.
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break 'outer,
                permit = permits.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            };
            let next = tokio::select! {
                _ = shutdown.cancelled() => break 'outer,
                next = messages.next() => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    tracing::warn!(stage, consumer = %spec.durable, error = %e, "pull interrupted");
                    drop(permit);
                    continue;
                }
                None => break,
            };
            let handler = handler.clone();
            if in_flight == 1 {
                handle_message(stage, &*handler, message).await;
                drop(permit);
            } else {
                tasks.spawn(async move {
                    handle_message(stage, &*handler, message).await;
                    drop(permit);
                });
            }
        }
    }
    tasks.close();
    tasks.wait().await;
    tracing::debug!(stage, consumer = %spec.durable, "worker drained");
}

/// Decodes, handles and settles one message. Public so tools and tests can
/// settle messages they fetched themselves the same way.
pub async fn handle_message<H: Handler>(
    stage: &'static str,
    handler: &H,
    message: jetstream::Message,
) {
    let started = std::time::Instant::now();
    let (stream_sequence, delivered) = match message.info() {
        Ok(info) => (info.stream_sequence, info.delivered),
        Err(_) => (0, 1),
    };
    let trace_id = message
        .headers
        .as_ref()
        .and_then(|h| h.get(TRACE_HEADER))
        .map(|v| v.as_str().to_string());
    let delivery = Delivery {
        subject: message.subject.to_string(),
        stream_sequence,
        delivered,
        trace_id: trace_id.clone(),
    };
    let outcome = match Envelope::<H::Message>::decode(&message.payload) {
        Ok(envelope) => handler.handle(envelope, delivery.clone()).await,
        Err(e) => {
            metrics::counter!("waiter_worker_poison_total", "stage" => stage).increment(1);
            tracing::error!(stage, subject = %delivery.subject, seq = stream_sequence, error = %e,
                "undecodable message terminated");
            Outcome::reject(e)
        }
    };
    let ack = match &outcome {
        Outcome::Ack => AckKind::Ack,
        Outcome::Retry { reason } => {
            let delay = backoff(delivered);
            tracing::warn!(stage, subject = %delivery.subject, seq = stream_sequence, delivered,
                delay_ms = delay.as_millis() as u64, reason = %reason, trace_id = ?trace_id, "will retry");
            AckKind::Nak(Some(delay))
        }
        Outcome::RetryAfter { delay, reason } => {
            tracing::info!(stage, subject = %delivery.subject, seq = stream_sequence, delivered,
                delay_ms = delay.as_millis() as u64, reason = %reason, "deferred");
            AckKind::Nak(Some(*delay))
        }
        Outcome::Reject { reason } => {
            tracing::warn!(stage, subject = %delivery.subject, seq = stream_sequence, reason = %reason,
                trace_id = ?trace_id, "rejected");
            AckKind::Term
        }
    };
    metrics::counter!("waiter_worker_messages_total", "stage" => stage, "outcome" => outcome.label())
        .increment(1);
    metrics::histogram!("waiter_worker_handle_seconds", "stage" => stage)
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = message.ack_with(ack).await {
        // Not fatal: the message comes back after ack_wait and the handler's
        // effects are idempotent.
        tracing::warn!(stage, seq = stream_sequence, error = %e, "could not settle message");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(4), Duration::from_secs(2));
        assert_eq!(backoff(100), Duration::from_secs(30));
        assert_eq!(backoff(0), Duration::from_millis(250));
    }
}
