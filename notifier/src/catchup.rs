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
    consumer::{pull, AckPolicy, DeliverPolicy},
    stream::Stream,
};
use bytes::Bytes;
use futures::StreamExt;

/// How long an abandoned catch-up consumer outlives its reader.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(10);
/// The longest wait for the next stored event of a catch-up.
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
pub struct Reader {
    stream: Stream,
    consumer_name: String,
    messages: Option<pull::Stream>,
    until: u64,
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
        let unavailable = |e: String| CatchUpError(e);
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
            .map_err(|e| unavailable(e.to_string()))?;
        let info = consumer.cached_info();
        let pending = info.num_pending;
        let mut reader = Reader {
            stream: stream.clone(),
            consumer_name: info.name.clone(),
            messages: None,
            until,
            done: pending == 0,
        };
        if pending > max {
            reader.close().await;
            return Ok(Opened::TooMany { pending });
        }
        if !reader.done {
            let batch = usize::try_from(pending).unwrap_or(usize::MAX).clamp(1, 256);
            let messages = consumer
                .stream()
                .max_messages_per_batch(batch)
                .messages()
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            reader.messages = Some(messages);
        }
        Ok(Opened::Reader(Box::new(reader)))
    }

    /// The next stored event of the range, `None` after the last one.
    pub async fn next(&mut self) -> Result<Option<(u64, Bytes)>, CatchUpError> {
        if self.done {
            return Ok(None);
        }
        let Some(messages) = self.messages.as_mut() else {
            return Ok(None);
        };
        let next = tokio::time::timeout(READ_TIMEOUT, messages.next())
            .await
            .map_err(|_| CatchUpError("no event within the read timeout".into()))?;
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(e)) => return Err(CatchUpError(e.to_string())),
            None => return Err(CatchUpError("the read ended early".into())),
        };
        let info = message.info().map_err(|e| CatchUpError(e.to_string()))?;
        let seq = info.stream_sequence;
        if seq > self.until {
            // Live from here on.
            self.done = true;
            return Ok(None);
        }
        self.done = seq == self.until || info.pending == 0;
        Ok(Some((seq, message.message.payload)))
    }

    /// Removes the consumer (it expires by itself if this fails).
    pub async fn close(mut self) {
        self.messages = None;
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.stream.delete_consumer(&self.consumer_name),
        )
        .await;
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
