//! A gap-free, resumable reader of one filter subject of the EVENTS stream:
//! the one feed of the notifier process ([`crate::hub`]).
//!
//! Like JetStream's ordered consumer (an ephemeral, unacknowledged,
//! memory-backed consumer that is recreated from the last delivered
//! sequence whenever something goes wrong), but it always resumes from
//! *our* position. async-nats' own ordered consumer recreates itself with
//! `DeliverPolicy::All` when it had not delivered anything yet, which for
//! a feed that starts "from now" would replay days of history to every
//! dashboard after a NATS restart.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use async_nats::jetstream::{
    self,
    consumer::{self, pull, AckPolicy, DeliverPolicy},
};
use futures::StreamExt;
use waiter_nats::{worker::Backoff, BusError};

/// How long an idle consumer outlives a vanished reader.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(60);
/// Jittered, so the notifiers that all lost NATS at once do not come back in
/// lock-step.
const RECONNECT: Backoff = Backoff {
    initial: Duration::from_millis(200),
    max: Duration::from_secs(5),
};
/// The server sends a heartbeat when there is nothing to deliver; two
/// missed ones and the consumer is recreated.
const HEARTBEAT: Duration = Duration::from_secs(5);

pub struct EventFeed {
    stream: jetstream::stream::Stream,
    filter: String,
    /// The stream sequence of the next message we want.
    next_sequence: u64,
    /// The consumer sequence of the last message of the current consumer.
    consumer_sequence: u64,
    consumer_name: Option<String>,
    messages: Option<pull::Stream>,
    failures: u32,
    /// Whether a consumer is bound right now (for `/health`).
    bound: Arc<AtomicBool>,
}

impl EventFeed {
    /// Opens a feed at the end of the stream and creates its consumer at
    /// once, so every event stored after this returns is delivered.
    pub async fn open(
        js: &jetstream::Context,
        stream_name: &str,
        filter: String,
    ) -> Result<EventFeed, BusError> {
        let setup = |reason: String| BusError::Setup {
            what: format!("event feed on {stream_name}"),
            reason,
        };
        let stream = js
            .get_stream(stream_name)
            .await
            .map_err(|e| setup(e.to_string()))?;
        let next_sequence = stream.cached_info().state.last_sequence + 1;
        let mut feed = EventFeed {
            stream,
            filter,
            next_sequence,
            consumer_sequence: 0,
            consumer_name: None,
            messages: None,
            failures: 0,
            bound: Arc::new(AtomicBool::new(false)),
        };
        feed.connect().await.map_err(setup)?;
        Ok(feed)
    }

    async fn connect(&mut self) -> Result<(), String> {
        self.messages = None;
        self.bound.store(false, Ordering::Relaxed);
        if let Some(old) = self.consumer_name.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.stream.delete_consumer(&old))
                .await;
        }
        let last = self
            .stream
            .info()
            .await
            .map_err(|e| e.to_string())?
            .state
            .last_sequence;
        if last + 1 < self.next_sequence {
            // The stream was recreated behind our back: its sequences
            // started again, so waiting for ours would deliver nothing.
            tracing::warn!(
                filter = %self.filter,
                position = self.next_sequence,
                last,
                "EVENTS stream is behind the feed's position (recreated?); following its end"
            );
            self.next_sequence = last + 1;
        }
        let consumer = self
            .stream
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: self.next_sequence.max(1),
                },
                ack_policy: AckPolicy::None,
                filter_subject: self.filter.clone(),
                inactive_threshold: INACTIVE_THRESHOLD,
                memory_storage: true,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        self.consumer_name = Some(consumer.cached_info().name.clone());
        self.consumer_sequence = 0;
        let messages = consumer
            .stream()
            .heartbeat(HEARTBEAT)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        self.messages = Some(messages);
        self.bound.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The next event message, in stream order, without gaps. Waits (and
    /// reconnects, from where it stopped) for as long as it takes; stop it
    /// by dropping the future.
    pub async fn next(&mut self) -> jetstream::Message {
        loop {
            if self.messages.is_none() {
                if self.failures > 0 {
                    tokio::time::sleep(RECONNECT.jittered(self.failures.min(8))).await;
                }
                if let Err(reason) = self.connect().await {
                    self.failures += 1;
                    tracing::warn!(filter = %self.filter, %reason, "cannot open event consumer; retrying");
                    continue;
                }
            }
            let Some(messages) = self.messages.as_mut() else {
                continue;
            };
            match messages.next().await {
                Some(Ok(message)) => {
                    let Ok(info) = message.info() else {
                        continue;
                    };
                    if info.consumer_sequence != self.consumer_sequence + 1 {
                        // Something was lost in transit: start again right
                        // after the last message we handed out.
                        tracing::debug!(filter = %self.filter, "event consumer gap; recreating");
                        self.messages = None;
                        continue;
                    }
                    self.consumer_sequence = info.consumer_sequence;
                    self.next_sequence = info.stream_sequence + 1;
                    self.failures = 0;
                    return message;
                }
                Some(Err(e)) => {
                    self.bound.store(false, Ordering::Relaxed);
                    if !matches!(
                        e.kind(),
                        consumer::pull::MessagesErrorKind::MissingHeartbeat
                    ) {
                        tracing::debug!(filter = %self.filter, error = %e, "event consumer failed; recreating");
                    }
                    self.failures += 1;
                    self.messages = None;
                }
                None => {
                    self.bound.store(false, Ordering::Relaxed);
                    self.failures += 1;
                    self.messages = None;
                }
            }
        }
    }

    /// The stream sequence the feed will deliver next.
    pub fn position(&self) -> u64 {
        self.next_sequence
    }

    /// Whether a consumer is bound, as a flag that stays current.
    pub fn bound(&self) -> Arc<AtomicBool> {
        self.bound.clone()
    }

    /// Deletes the consumer (best effort; it expires by itself otherwise).
    pub async fn close(mut self) {
        self.messages = None;
        self.bound.store(false, Ordering::Relaxed);
        if let Some(name) = self.consumer_name.take() {
            let _ =
                tokio::time::timeout(Duration::from_secs(2), self.stream.delete_consumer(&name))
                    .await;
        }
    }
}
