//! One feed per notifier process, fanned out in memory.
//!
//! A single [`EventFeed`] reads every event of the EVENTS stream (one
//! unacknowledged, memory-backed consumer, recreated from the last seen
//! sequence after a NATS restart). The dispatcher decodes each event once,
//! renders its frame once and hands it to the sockets subscribed to that
//! restaurant's channel through their bounded queues. It never waits for a
//! socket: a socket whose queue is full is told to close ("too slow") and
//! reconnects with `since`, so one slow client never slows the feed or the
//! other sockets.
//!
//! Joining and dispatching take the same lock, and the registry remembers
//! the sequence of the last event it dispatched: a socket that joins at
//! position `p` receives every event after `p` live, and everything up to
//! `p` is in the stream (the `since` catch-up reads it from there).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
};

use tokio::sync::{mpsc, Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;
use waiter_nats::{events::DashboardEvent, Bus, BusError, Envelope, StreamKind};

use crate::{
    channels::{event_frame, kind_bit, Grant, KindSet},
    feed::EventFeed,
};

/// One event as every subscriber of its channel receives it: rendered once,
/// shared by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub seq: u64,
    pub text: Arc<str>,
}

struct Subscriber {
    id: u64,
    kinds: KindSet,
    queue: mpsc::Sender<Frame>,
    /// Cancelled when the queue overflows: the session then closes.
    overflow: CancellationToken,
}

/// What one dispatch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dispatched {
    pub delivered: usize,
    /// Subscribers whose queue was full: told to close.
    pub overflowed: usize,
}

/// Who listens to which restaurant's channels, and how far the feed got.
/// No I/O: the dispatcher and the sessions drive it under one lock.
pub struct Registry {
    by_restaurant: HashMap<Uuid, Vec<Subscriber>>,
    /// The stream sequence of the last event dispatched (or skipped).
    position: u64,
    next_id: u64,
    sockets: usize,
}

impl Registry {
    /// A registry whose feed starts after `position`.
    pub fn new(position: u64) -> Self {
        Self {
            by_restaurant: HashMap::new(),
            position,
            next_id: 0,
            sockets: 0,
        }
    }

    /// Adds a subscriber for the given restaurants and channel kinds; it
    /// receives every event dispatched after the returned position.
    pub fn join(
        &mut self,
        kinds: impl IntoIterator<Item = (Uuid, KindSet)>,
        queue: mpsc::Sender<Frame>,
        overflow: CancellationToken,
    ) -> (u64, u64) {
        self.next_id += 1;
        let id = self.next_id;
        for (restaurant_id, kinds) in kinds {
            self.by_restaurant
                .entry(restaurant_id)
                .or_default()
                .push(Subscriber {
                    id,
                    kinds,
                    queue: queue.clone(),
                    overflow: overflow.clone(),
                });
        }
        self.sockets += 1;
        (id, self.position)
    }

    pub fn leave(&mut self, id: u64, restaurants: &[Uuid]) {
        for restaurant_id in restaurants {
            if let Some(subscribers) = self.by_restaurant.get_mut(restaurant_id) {
                subscribers.retain(|s| s.id != id);
                if subscribers.is_empty() {
                    self.by_restaurant.remove(restaurant_id);
                }
            }
        }
        self.sockets = self.sockets.saturating_sub(1);
    }

    /// Hands one event to every subscriber of its restaurant and channel
    /// without waiting: a full queue cancels that subscriber's `overflow`.
    pub fn dispatch(&mut self, restaurant_id: Uuid, kind: KindSet, frame: &Frame) -> Dispatched {
        self.position = self.position.max(frame.seq);
        let mut outcome = Dispatched::default();
        let Some(subscribers) = self.by_restaurant.get(&restaurant_id) else {
            return outcome;
        };
        for subscriber in subscribers.iter().filter(|s| s.kinds & kind != 0) {
            match subscriber.queue.try_send(frame.clone()) {
                Ok(()) => outcome.delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if !subscriber.overflow.is_cancelled() {
                        outcome.overflowed += 1;
                        subscriber.overflow.cancel();
                    }
                }
                // The session is ending; it leaves the registry on drop.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        outcome
    }

    /// Moves past an event no socket can receive (undecodable).
    pub fn skip(&mut self, seq: u64) {
        self.position = self.position.max(seq);
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    /// Subscribed sockets.
    pub fn sockets(&self) -> usize {
        self.sockets
    }
}

/// The process-wide feed and its fan-out.
pub struct Hub {
    registry: Mutex<Registry>,
    /// Bounds the `since` catch-ups reading the stream at once (a
    /// reconnect storm after a restart must not become a storm of
    /// consumers on the server).
    pub catchups: Semaphore,
    feed_bound: Arc<AtomicBool>,
}

impl Hub {
    /// Opens the feed at the end of the EVENTS stream (its consumer exists
    /// when this returns, so every later event is dispatched) and spawns
    /// the dispatcher, which runs until `shutdown`.
    pub async fn start(
        bus: &Bus,
        catchups_at_once: usize,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Arc<Hub>, BusError> {
        let topology = bus.topology();
        let feed = EventFeed::open(
            bus.jetstream(),
            &topology.stream_name(StreamKind::Events),
            topology.stream_subjects(StreamKind::Events),
        )
        .await?;
        let hub = Arc::new(Hub {
            registry: Mutex::new(Registry::new(feed.position().saturating_sub(1))),
            catchups: Semaphore::new(catchups_at_once.max(1)),
            feed_bound: feed.bound(),
        });
        tracker.spawn(dispatch(hub.clone(), feed, shutdown));
        Ok(hub)
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves plain data behind.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes a socket to the granted channels with a queue of
    /// `queue` frames.
    pub fn join(
        self: &Arc<Self>,
        grant: &Grant,
        queue: usize,
        overflow: CancellationToken,
    ) -> Live {
        let (tx, frames) = mpsc::channel(queue.max(1));
        let kinds: Vec<(Uuid, KindSet)> = grant.kind_sets().collect();
        let restaurants = kinds.iter().map(|(id, _)| *id).collect();
        let (id, joined_at) = self.registry().join(kinds, tx, overflow);
        metrics::gauge!("waiter_notifier_feed_subscribers").increment(1.0);
        Live {
            id,
            restaurants,
            frames,
            joined_at,
            hub: self.clone(),
        }
    }

    /// The sequence of the last event dispatched.
    pub fn position(&self) -> u64 {
        self.registry().position()
    }

    /// Sockets subscribed to at least one channel.
    pub fn subscribers(&self) -> usize {
        self.registry().sockets()
    }

    /// Whether the feed's consumer is bound (for `/health`).
    pub fn is_bound(&self) -> bool {
        self.feed_bound.load(Ordering::Relaxed)
    }
}

/// A socket's place in the fan-out; dropping it leaves.
pub struct Live {
    id: u64,
    restaurants: Vec<Uuid>,
    pub frames: mpsc::Receiver<Frame>,
    /// Every event after this sequence arrives in `frames`.
    pub joined_at: u64,
    hub: Arc<Hub>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.hub.registry().leave(self.id, &self.restaurants);
        metrics::gauge!("waiter_notifier_feed_subscribers").decrement(1.0);
    }
}

/// Decodes one stored event; an undecodable one is counted and skipped.
pub fn decode(seq: u64, payload: &[u8]) -> Option<DashboardEvent> {
    match Envelope::<DashboardEvent>::decode(payload) {
        Ok(envelope) => Some(envelope.body),
        Err(e) => {
            metrics::counter!("waiter_notifier_undecodable_events_total").increment(1);
            tracing::warn!(seq, error = %e, "skipping an undecodable dashboard event");
            None
        }
    }
}

/// The frame of one event.
pub fn frame_of(seq: u64, event: &DashboardEvent) -> Frame {
    Frame {
        seq,
        text: event_frame(event.event_type, seq, &event.data).into(),
    }
}

async fn dispatch(hub: Arc<Hub>, mut feed: EventFeed, shutdown: CancellationToken) {
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            message = feed.next() => message,
        };
        let Ok(info) = message.info() else { continue };
        let seq = info.stream_sequence;
        metrics::counter!("waiter_notifier_feed_events_total").increment(1);
        let Some(event) = decode(seq, &message.payload) else {
            hub.registry().skip(seq);
            continue;
        };
        let frame = frame_of(seq, &event);
        let kind = kind_bit(event.event_type.channel());
        let outcome = hub.registry().dispatch(event.restaurant_id, kind, &frame);
        // From JetStream storing the event to its frame queued on every socket.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or_default();
        let fanout = (now - info.published.unix_timestamp_nanos()).max(0) as f64 / 1e9;
        metrics::histogram!("waiter_notifier_fanout_seconds").record(fanout);
        if outcome.overflowed > 0 {
            metrics::counter!("waiter_notifier_slow_clients_total")
                .increment(outcome.overflowed as u64);
        }
    }
    feed.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> Frame {
        Frame {
            seq,
            text: format!("{{\"seq\":{seq}}}").into(),
        }
    }

    fn orders() -> KindSet {
        kind_bit("orders")
    }

    #[test]
    fn delivers_to_the_restaurant_and_channel_only() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut registry = Registry::new(10);
        let (tx_a, mut rx_a) = mpsc::channel(8);
        let (tx_b, mut rx_b) = mpsc::channel(8);
        let (_, joined) = registry.join([(a, orders())], tx_a, CancellationToken::new());
        assert_eq!(joined, 10);
        registry.join(
            [(b, orders() | kind_bit("messages"))],
            tx_b,
            CancellationToken::new(),
        );
        assert_eq!(registry.sockets(), 2);

        assert_eq!(registry.dispatch(a, orders(), &frame(11)).delivered, 1);
        assert_eq!(
            registry
                .dispatch(a, kind_bit("messages"), &frame(12))
                .delivered,
            0
        );
        assert_eq!(
            registry
                .dispatch(b, kind_bit("messages"), &frame(13))
                .delivered,
            1
        );
        registry.skip(14);
        assert_eq!(registry.position(), 14);
        assert_eq!(rx_a.try_recv().unwrap().seq, 11);
        assert!(rx_a.try_recv().is_err());
        assert_eq!(rx_b.try_recv().unwrap().seq, 13);
        assert!(rx_b.try_recv().is_err());
    }

    #[test]
    fn a_full_queue_overflows_that_subscriber_only() {
        let a = Uuid::new_v4();
        let mut registry = Registry::new(0);
        let (slow_tx, _slow_rx) = mpsc::channel(2);
        let (fast_tx, mut fast_rx) = mpsc::channel(2);
        let slow = CancellationToken::new();
        let fast = CancellationToken::new();
        registry.join([(a, orders())], slow_tx, slow.clone());
        registry.join([(a, orders())], fast_tx, fast.clone());
        for seq in 1..=4 {
            let outcome = registry.dispatch(a, orders(), &frame(seq));
            // The fast one drains as it goes; the slow one never does.
            assert_eq!(fast_rx.try_recv().unwrap().seq, seq);
            let expected = match seq {
                1 | 2 => Dispatched {
                    delivered: 2,
                    overflowed: 0,
                },
                3 => Dispatched {
                    delivered: 1,
                    overflowed: 1,
                },
                _ => Dispatched {
                    delivered: 1,
                    overflowed: 0,
                },
            };
            assert_eq!(outcome, expected, "seq {seq}");
        }
        assert!(slow.is_cancelled());
        assert!(!fast.is_cancelled());
    }

    #[test]
    fn leaving_removes_every_restaurant_of_a_subscriber() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut registry = Registry::new(0);
        let (tx, mut rx) = mpsc::channel(8);
        let (id, _) = registry.join([(a, orders()), (b, orders())], tx, CancellationToken::new());
        assert_eq!(registry.dispatch(b, orders(), &frame(1)).delivered, 1);
        registry.leave(id, &[a, b]);
        assert_eq!(registry.sockets(), 0);
        assert_eq!(registry.dispatch(a, orders(), &frame(2)).delivered, 0);
        assert_eq!(registry.dispatch(b, orders(), &frame(3)).delivered, 0);
        assert_eq!(rx.try_recv().unwrap().seq, 1);
        assert!(rx.try_recv().is_err());
        assert!(registry.by_restaurant.is_empty());
    }
}
