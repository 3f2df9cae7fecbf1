//! `GET /ws`: the live feed of a restaurant's events.
//!
//! After the upgrade the client subscribes to channels; the socket then
//! reads the EVENTS stream through its own [`EventFeed`] (filtered on the
//! restaurant's subjects; the channels are filtered here, since
//! nats-server 2.9 allows one filter subject per consumer) and writes
//! `{"type", "seq", "data"}` frames. `seq` is the JetStream sequence, so a
//! client that reconnects with `since` = the last `seq` it saw misses
//! nothing.
//!
//! Flow control: a bounded queue sits between the feed and the socket; a
//! client that leaves it full for `slow_client_timeout` is closed (1013,
//! "too slow") and reconnects with `since`. Writes have a timeout too, and
//! a client that answers nothing (not even our pings) for three ping
//! intervals is dropped. On shutdown every socket is closed with 1001.

use std::{sync::Arc, time::Duration};

use futures::{stream::SplitSink, SinkExt, StreamExt};
use tokio::{
    sync::mpsc::{self, error::SendTimeoutError},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use waiter_nats::{events::DashboardEvent, Envelope, StreamKind};
use warp::{
    filters::{
        ws::{Message, WebSocket, Ws},
        BoxedFilter,
    },
    reply::{Reply, Response},
    Filter,
};

use crate::{
    auth::Principal,
    channels::{error_frame, event_frame, pong_frame, subscribed_frame, ClientRequest, Grant},
    error::AuthRejection,
    feed::{EventFeed, Start},
    App,
};

/// The largest frame a client may send.
const MAX_CLIENT_FRAME: usize = 64 * 1024;

/// Close codes (RFC 6455 §7.4.1).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_INTERNAL: u16 = 1011;
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// Per-socket tuning.
#[derive(Debug, Clone)]
pub struct WsSettings {
    /// Frames buffered between the event feed and one socket.
    pub queue: usize,
    /// How long the queue may stay full before the client is closed.
    pub slow_client_timeout: Duration,
    /// How often the server pings; three silent intervals drop the client.
    pub ping_interval: Duration,
    /// The longest a single write may take.
    pub write_timeout: Duration,
}

impl Default for WsSettings {
    fn default() -> Self {
        Self {
            queue: 256,
            slow_client_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// `GET /ws`, authenticated by `Authorization: Bearer` or by the
/// `bearer.<JWT>` subprotocol (echoed, as browsers require).
pub fn route(app: Arc<App>) -> BoxedFilter<(Response,)> {
    let authenticate = {
        let app = app.clone();
        move |authorization: Option<String>, protocols: Option<String>| {
            let app = app.clone();
            async move {
                app.auth
                    .from_upgrade(authorization.as_deref(), protocols.as_deref())
                    .map_err(|e| warp::reject::custom(AuthRejection(e)))
            }
        }
    };
    warp::path!("ws")
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and_then(authenticate)
        .and(warp::ws())
        .map(
            move |(principal, protocol): (Principal, Option<String>), ws: Ws| {
                let app = app.clone();
                let tracker = app.tracker.clone();
                let upgrade = ws
                    .max_message_size(MAX_CLIENT_FRAME)
                    .max_frame_size(MAX_CLIENT_FRAME)
                    .on_upgrade(move |socket| {
                        tracker.track_future(session(socket, principal, app))
                    });
                match protocol {
                    Some(protocol) => {
                        warp::reply::with_header(upgrade, "sec-websocket-protocol", protocol)
                            .into_response()
                    }
                    None => upgrade.into_response(),
                }
            },
        )
        .boxed()
}

/// Counts open sockets in `waiter_notifier_ws_connections`.
struct ConnectionGauge;

impl ConnectionGauge {
    fn open() -> Self {
        metrics::gauge!("waiter_notifier_ws_connections").increment(1.0);
        ConnectionGauge
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        metrics::gauge!("waiter_notifier_ws_connections").decrement(1.0);
    }
}

/// Why a feed pump stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PumpEnd {
    /// The subscription was replaced or the socket is closing.
    Cancelled,
    /// The client did not take frames for `slow_client_timeout`.
    Slow,
}

/// A running subscription; dropping it stops its pump.
struct Subscription {
    frames: mpsc::Receiver<String>,
    task: JoinHandle<PumpEnd>,
    cancel: CancellationToken,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

enum Next {
    Frame(String),
    Ended(PumpEnd),
}

/// The next frame of the subscription; after its last frame, why it ended.
async fn next_of(current: &mut Option<Subscription>) -> Next {
    match current {
        None => std::future::pending().await,
        Some(sub) => match sub.frames.recv().await {
            Some(frame) => Next::Frame(frame),
            None => Next::Ended((&mut sub.task).await.unwrap_or(PumpEnd::Cancelled)),
        },
    }
}

type Sink = SplitSink<WebSocket, Message>;

async fn write(sink: &mut Sink, message: Message, timeout: Duration) -> Result<(), ()> {
    match tokio::time::timeout(timeout, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn session(socket: WebSocket, principal: Principal, app: Arc<App>) {
    let _gauge = ConnectionGauge::open();
    let settings = app.ws.clone();
    let (mut sink, mut incoming) = socket.split();
    let mut current: Option<Subscription> = None;
    let mut ping = tokio::time::interval_at(
        Instant::now() + settings.ping_interval,
        settings.ping_interval,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let idle_limit = settings.ping_interval * 3;
    let mut last_heard = Instant::now();

    let close: Option<(u16, &'static str)> = loop {
        if app.shutdown.is_cancelled() {
            break Some((CLOSE_GOING_AWAY, "server shutting down"));
        }
        tokio::select! {
            _ = app.shutdown.cancelled() => {
                break Some((CLOSE_GOING_AWAY, "server shutting down"));
            }
            next = next_of(&mut current) => match next {
                Next::Frame(frame) => {
                    if write(&mut sink, Message::text(frame), settings.write_timeout).await.is_err() {
                        break None;
                    }
                    metrics::counter!("waiter_notifier_events_sent_total").increment(1);
                }
                Next::Ended(PumpEnd::Slow) => {
                    metrics::counter!("waiter_notifier_slow_clients_total").increment(1);
                    break Some((CLOSE_TRY_AGAIN_LATER, "too slow: reconnect with since"));
                }
                Next::Ended(PumpEnd::Cancelled) => current = None,
            },
            frame = incoming.next() => {
                let Some(Ok(frame)) = frame else { break None };
                last_heard = Instant::now();
                if frame.is_close() {
                    // tungstenite answers the close handshake itself.
                    break None;
                }
                if frame.is_ping() || frame.is_pong() {
                    continue;
                }
                let Ok(text) = frame.to_str() else {
                    let error = error_frame("bad_request", None, Some("send JSON text frames"));
                    if write(&mut sink, Message::text(error.to_string()), settings.write_timeout).await.is_err() {
                        break None;
                    }
                    continue;
                };
                let (replies, close) = match ClientRequest::parse(text) {
                    Err(reason) => (vec![error_frame("bad_request", None, Some(&reason)).to_string()], None),
                    Ok(ClientRequest::Ping) => (vec![pong_frame()], None),
                    Ok(ClientRequest::Subscribe { channels, since }) => {
                        // The previous subscription (if any) stops here.
                        current = None;
                        let grant = Grant::decide(&principal, &channels);
                        match subscribe(&app, &grant, since).await {
                            Ok(sub) => {
                                current = sub;
                                let mut replies = vec![subscribed_frame(&grant.channel_names())];
                                replies.extend(grant.refused.iter().map(|f| f.to_string()));
                                (replies, None)
                            }
                            Err(reason) => {
                                tracing::warn!(%reason, "cannot open an event feed for a dashboard");
                                let error = error_frame("unavailable", None, Some("event stream unavailable; reconnect with since"));
                                (vec![error.to_string()], Some((CLOSE_INTERNAL, "event stream unavailable")))
                            }
                        }
                    }
                };
                let mut failed = false;
                for reply in replies {
                    if write(&mut sink, Message::text(reply), settings.write_timeout).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed {
                    break None;
                }
                if close.is_some() {
                    break close;
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > idle_limit {
                    break Some((CLOSE_NORMAL, "no answer to pings"));
                }
                if write(&mut sink, Message::ping(Vec::new()), settings.write_timeout).await.is_err() {
                    break None;
                }
            }
        }
    };
    drop(current);
    if let Some((code, reason)) = close {
        let _ = write(
            &mut sink,
            Message::close_with(code, reason),
            settings.write_timeout,
        )
        .await;
    }
    let _ = tokio::time::timeout(settings.write_timeout, sink.close()).await;
}

/// Opens the feed for a grant (nothing to open when nothing was granted).
async fn subscribe(
    app: &Arc<App>,
    grant: &Grant,
    since: Option<u64>,
) -> Result<Option<Subscription>, String> {
    if grant.is_empty() {
        return Ok(None);
    }
    let topology = app.bus.topology();
    let filter = match grant.single_restaurant() {
        Some(restaurant_id) => topology.events_of(&restaurant_id),
        // An admin watching several restaurants: one feed over all events,
        // so `seq` stays a single gap-free position.
        None => topology.stream_subjects(StreamKind::Events),
    };
    let start = since.map_or(Start::New, Start::After);
    let feed = EventFeed::open(
        app.bus.jetstream(),
        &topology.stream_name(StreamKind::Events),
        filter,
        start,
    )
    .await
    .map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel(app.ws.queue.max(1));
    let cancel = app.shutdown.child_token();
    let task = app.tracker.spawn(pump(
        feed,
        grant.clone(),
        tx,
        cancel.clone(),
        app.ws.slow_client_timeout,
    ));
    Ok(Some(Subscription {
        frames: rx,
        task,
        cancel,
    }))
}

/// Moves a feed's events into a socket's queue, keeping only the granted
/// channels.
pub async fn pump(
    mut feed: EventFeed,
    grant: Grant,
    frames: mpsc::Sender<String>,
    cancel: CancellationToken,
    slow_client_timeout: Duration,
) -> PumpEnd {
    let end = loop {
        let message = tokio::select! {
            _ = cancel.cancelled() => break PumpEnd::Cancelled,
            message = feed.next() => message,
        };
        let Ok(info) = message.info() else { continue };
        let seq = info.stream_sequence;
        let event = match Envelope::<DashboardEvent>::decode(&message.payload) {
            Ok(envelope) => envelope.body,
            Err(e) => {
                metrics::counter!("waiter_notifier_undecodable_events_total").increment(1);
                tracing::warn!(seq, error = %e, "skipping an undecodable dashboard event");
                continue;
            }
        };
        if !grant.admits(&event) {
            continue;
        }
        let frame = event_frame(event.event_type, seq, &event.data);
        tokio::select! {
            _ = cancel.cancelled() => break PumpEnd::Cancelled,
            sent = frames.send_timeout(frame, slow_client_timeout) => match sent {
                Ok(()) => {}
                Err(SendTimeoutError::Timeout(_)) => break PumpEnd::Slow,
                Err(SendTimeoutError::Closed(_)) => break PumpEnd::Cancelled,
            },
        }
    };
    feed.close().await;
    end
}
