//! `since`: what a reconnecting socket missed, read back from the stream.
//!
//! A socket that subscribes with `since` first joins the live fan-out at
//! the hub's position `p` (every event after `p` reaches its queue), then
//! reads `since + 1 ..= p` of its restaurant's subjects from the EVENTS
//! stream through a short-lived consumer, then switches to its queue,
//! dropping any live frame at or below what it already sent. No gap (the
//! two ranges meet at `p`) and no duplicate (the switch dedupes on `seq`).
//!
//! The read is bounded: when more than `NOTIFIER_WS_CATCHUP_MAX` events
//! would have to be sent, or `since` is older than the stream keeps, the
//! client gets an `events_missed` frame and reloads over REST.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, Consumer, DeliverPolicy},
    stream::{LastRawMessageErrorKind, Stream},
};
use bytes::Bytes;
use futures::StreamExt;

/// How long an abandoned catch-up consumer outlives its reader.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(10);
/// The longest a catch-up read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The sequences the stream holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub first: u64,
    pub last: u64,
}

/// What a `since` needs, decided before anything is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The client is told it missed events; delivery resumes from here.
    pub missed: Option<u64>,
    /// The stream range to send (inclusive) before the live frames.
    pub read: Option<(u64, u64)>,
    /// Live frames at or below this sequence were delivered already.
    pub floor: u64,
}

/// Decides how to resume after `since` for a socket that joined the live
/// fan-out at `joined_at`.
pub fn plan(since: u64, bounds: Bounds, joined_at: u64) -> Plan {
    let first = bounds.first.max(1);
    let from_first = |missed| Plan {
        missed,
        read: (first <= joined_at).then_some((first, joined_at)),
        floor: joined_at,
    };
    if since > bounds.last.max(joined_at) {
        // Beyond anything stored: the stream was recreated since the
        // client saw it (or the client is confused). Everything it holds
        // is news, and the client's state is stale.
        return from_first(Some(first));
    }
    if since.saturating_add(1) < first {
        // Older than retention: the events in between are gone.
        return from_first(Some(first));
    }
    if since >= joined_at {
        return Plan {
            missed: None,
            read: None,
            floor: since,
        };
    }
    Plan {
        missed: None,
        read: Some((since + 1, joined_at)),
        floor: joined_at,
    }
}

/// Why a catch-up could not be served.
#[derive(Debug, thiserror::Error)]
#[error("event stream unavailable: {0}")]
pub struct CatchUpError(String);

/// The stream and what it holds now.
pub async fn bounds(
    js: &jetstream::Context,
    stream_name: &str,
) -> Result<(Stream, Bounds), CatchUpError> {
    let stream = js
        .get_stream(stream_name)
        .await
        .map_err(|e| CatchUpError(e.to_string()))?;
    let state = &stream.cached_info().state;
    let bounds = Bounds {
        first: state.first_sequence,
        last: state.last_sequence,
    };
    Ok((stream, bounds))
}

/// A bounded read of one filter subject between two sequences.
///
/// It ends at a known sequence: `until`, or the last stored message of
/// the filter when that is earlier (asked of the stream when the read
/// opens). On nats-server 2.9 the pending counts of a filtered consumer can
/// be wrong both ways, so they end nothing here. Too high, and a read waits
/// for a message that never comes. Too low, and it stops before the end.
/// Pulls are no-wait with a short expiry, and the whole read has a
/// deadline.
pub struct Reader {
    stream: Stream,
    consumer: Consumer<pull::Config>,
    batch: Option<pull::Batch>,
    /// The last sequence to send.
    last: u64,
    until: u64,
    deadline: tokio::time::Instant,
    done: bool,
}

/// What opening a read found.
pub enum Opened {
    Reader(Box<Reader>),
    /// More matching events than a catch-up may send.
    TooMany {
        pending: u64,
    },
}

/// Messages asked for per pull, and how long the server may take to say
/// there are none yet.
const BATCH: usize = 256;
const PULL_EXPIRY: Duration = Duration::from_millis(250);

impl Reader {
    /// Opens a read of `filter` from `from` up to `until` (inclusive),
    /// unless more than `max` matching events are stored from `from` on.
    pub async fn open(
        stream: &Stream,
        filter: String,
        from: u64,
        until: u64,
        max: u64,
    ) -> Result<Opened, CatchUpError> {
        let last_stored = match stream.get_last_raw_message_by_subject(&filter).await {
            Ok(message) => message.sequence,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => 0,
            Err(e) => return Err(CatchUpError(e.to_string())),
        };
        let consumer = stream
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from.max(1),
                },
                ack_policy: AckPolicy::None,
                filter_subject: filter,
                inactive_threshold: INACTIVE_THRESHOLD,
                memory_storage: true,
                num_replicas: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| CatchUpError(e.to_string()))?;
        let last = until.min(last_stored);
        // No more can match than the range holds: a filtered consumer's
        // pending count on nats-server 2.9 can be far too high, and would
        // tell clients they missed events when they did not.
        let span = (last + 1).saturating_sub(from.max(1));
        let pending = consumer.cached_info().num_pending.min(span);
        let reader = Reader {
            stream: stream.clone(),
            consumer,
            batch: None,
            last,
            until,
            deadline: tokio::time::Instant::now() + READ_TIMEOUT,
            done: from > last,
        };
        if pending > max {
            reader.close().await;
            return Ok(Opened::TooMany { pending });
        }
        Ok(Opened::Reader(Box::new(reader)))
    }

    /// The next stored event of the range, `None` after the last one.
    pub async fn next(&mut self) -> Result<Option<(u64, Bytes)>, CatchUpError> {
        let late = || CatchUpError("the catch-up read did not finish in time".into());
        loop {
            if self.done {
                return Ok(None);
            }
            if tokio::time::Instant::now() >= self.deadline {
                return Err(late());
            }
            let batch = match &mut self.batch {
                Some(batch) => batch,
                None => {
                    let batch = self
                        .consumer
                        .fetch()
                        .max_messages(BATCH)
                        .expires(PULL_EXPIRY)
                        .messages()
                        .await
                        .map_err(|e| CatchUpError(e.to_string()))?;
                    self.batch.insert(batch)
                }
            };
            let message = match tokio::time::timeout_at(self.deadline, batch.next()).await {
                Err(_) => return Err(late()),
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(e))) => return Err(CatchUpError(e.to_string())),
                // This pull is over; the next one goes on.
                Ok(None) => {
                    self.batch = None;
                    continue;
                }
            };
            let info = message.info().map_err(|e| CatchUpError(e.to_string()))?;
            let seq = info.stream_sequence;
            if seq > self.until {
                // Live from here on.
                self.done = true;
                return Ok(None);
            }
            self.done = seq >= self.last;
            return Ok(Some((seq, message.message.payload)));
        }
    }

    /// Removes the consumer (it expires by itself if this fails).
    pub async fn close(mut self) {
        self.batch = None;
        let name = self.consumer.cached_info().name.clone();
        let _ =
            tokio::time::timeout(Duration::from_secs(2), self.stream.delete_consumer(&name)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(first: u64, last: u64) -> Bounds {
        Bounds { first, last }
    }

    #[test]
    fn resumes_right_after_since() {
        assert_eq!(
            plan(5, bounds(1, 20), 20),
            Plan {
                missed: None,
                read: Some((6, 20)),
                floor: 20
            }
        );
        // Since 0 on a stream that still has its first event: everything.
        assert_eq!(plan(0, bounds(1, 3), 3).read, Some((1, 3)));
    }

    #[test]
    fn a_client_at_or_past_the_hub_only_dedupes() {
        // The client saw 20; the hub has dispatched up to 18 so far.
        assert_eq!(
            plan(20, bounds(1, 20), 18),
            Plan {
                missed: None,
                read: None,
                floor: 20
            }
        );
        assert_eq!(plan(18, bounds(1, 20), 18).read, None);
    }

    #[test]
    fn older_than_retention_is_told_then_served_from_the_first() {
        assert_eq!(
            plan(3, bounds(10, 20), 20),
            Plan {
                missed: Some(10),
                read: Some((10, 20)),
                floor: 20
            }
        );
        // Right before the first one is not a miss.
        assert_eq!(plan(9, bounds(10, 20), 20).missed, None);
    }

    #[test]
    fn a_since_beyond_the_stream_is_a_reset() {
        assert_eq!(
            plan(500, bounds(1, 7), 7),
            Plan {
                missed: Some(1),
                read: Some((1, 7)),
                floor: 7
            }
        );
        // An empty (new) stream.
        assert_eq!(
            plan(500, bounds(0, 0), 0),
            Plan {
                missed: Some(1),
                read: None,
                floor: 0
            }
        );
        assert_eq!(
            plan(0, bounds(0, 0), 0),
            Plan {
                missed: None,
                read: None,
                floor: 0
            }
        );
    }
}
