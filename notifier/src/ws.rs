//! `GET /ws`: the live feed of a restaurant's events.
//!
//! The handshake is admitted in this order: `Origin` (403), token (401),
//! WebSocket upgrade headers (400), socket caps (429 per user, 503 in
//! total) — see [`crate::admission`]. After the upgrade the client
//! subscribes to channels; the socket joins the process's one feed
//! ([`crate::hub`]) and writes `{"type", "seq", "data"}` frames, `seq`
//! being the JetStream sequence. With `since` it first sends what it
//! missed, read from the stream ([`crate::catchup`]).
//!
//! The server closes a socket:
//! - `4001` when its token expires (the dashboard gets a fresh one and
//!   reconnects with `since`);
//! - `1013` when it fell a whole queue (`NOTIFIER_WS_QUEUE` frames) behind
//!   the feed ("too slow"; reconnect with `since`);
//! - `1000` when the client answered nothing for three ping intervals;
//! - `1001` on shutdown; `1011` when the event stream cannot be read.

use std::{pin::Pin, sync::Arc, time::Duration, time::SystemTime};

use futures::{
    stream::{SplitSink, SplitStream},
    Future, SinkExt, StreamExt,
};
use tokio::time::{Instant, Interval, Sleep};
use tokio_util::sync::CancellationToken;
use warp::{
    filters::{
        ws::{Message, WebSocket, Ws},
        BoxedFilter,
    },
    http::StatusCode,
    reply::{Reply, Response},
    Filter,
};

use crate::{
    admission::{AllowedOrigins, Refusal, SocketPermit},
    auth::Principal,
    catchup::{self, Opened, Reader},
    channels::{
        error_frame, events_missed_frame, pong_frame, subscribed_frame, ClientRequest, Grant,
    },
    error::json_error,
    hub::{self, Frame, Live},
    App,
};

/// The largest frame a client may send.
const MAX_CLIENT_FRAME: usize = 64 * 1024;

/// Close codes (RFC 6455 §7.4.1, and 4001 of the dashboard contract).
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_INTERNAL: u16 = 1011;
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;

/// The WebSocket limits and tuning (`NOTIFIER_WS_*`).
#[derive(Debug, Clone)]
pub struct WsSettings {
    /// Frames queued between the feed and one socket; a socket that falls
    /// this far behind is closed with 1013.
    pub queue: usize,
    /// How often the server pings; three silent intervals drop the client.
    pub ping_interval: Duration,
    /// The longest a single write may take.
    pub write_timeout: Duration,
    /// Open sockets, in total.
    pub max_sockets: usize,
    /// Open sockets of one user (`restaurant_id`, `sub`).
    pub max_sockets_per_user: usize,
    /// Channels one socket may subscribe to.
    pub max_channels: usize,
    /// The most events a `since` catch-up sends; more is `events_missed`.
    pub catchup_max: u64,
    /// Catch-ups reading the stream at once.
    pub catchups_at_once: usize,
    /// Origins a browser may open a socket from.
    pub allowed_origins: AllowedOrigins,
}

impl WsSettings {
    pub const DEFAULT_QUEUE: usize = 256;
    pub const DEFAULT_PING: Duration = Duration::from_secs(20);
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_MAX_SOCKETS: usize = 20_000;
    pub const DEFAULT_MAX_PER_USER: usize = 16;
    pub const DEFAULT_MAX_CHANNELS: usize = 30;
    pub const DEFAULT_CATCHUP_MAX: u64 = 10_000;
    pub const DEFAULT_CATCHUPS_AT_ONCE: usize = 16;

    /// The defaults, with the given allowed origins.
    pub fn new(allowed_origins: AllowedOrigins) -> Self {
        Self {
            queue: Self::DEFAULT_QUEUE,
            ping_interval: Self::DEFAULT_PING,
            write_timeout: Self::DEFAULT_WRITE_TIMEOUT,
            max_sockets: Self::DEFAULT_MAX_SOCKETS,
            max_sockets_per_user: Self::DEFAULT_MAX_PER_USER,
            max_channels: Self::DEFAULT_MAX_CHANNELS,
            catchup_max: Self::DEFAULT_CATCHUP_MAX,
            catchups_at_once: Self::DEFAULT_CATCHUPS_AT_ONCE,
            allowed_origins,
        }
    }
}

/// `GET /ws`, authenticated by `Authorization: Bearer` or by the
/// `bearer.<JWT>` subprotocol (echoed, as browsers require).
pub fn route(app: Arc<App>) -> BoxedFilter<(Response,)> {
    let upgrade = warp::ws().map(Some).or(warp::any().map(|| None)).unify();
    warp::path!("ws")
        .and(warp::get())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and(upgrade)
        .map(
            move |origin: Option<String>,
                  authorization: Option<String>,
                  protocols: Option<String>,
                  ws: Option<Ws>| {
                handshake(&app, origin, authorization, protocols, ws)
            },
        )
        .boxed()
}

fn refuse(status: StatusCode, code: &'static str, reason: &str) -> Response {
    metrics::counter!("waiter_notifier_ws_refused_total", "reason" => code).increment(1);
    json_error(status, code, reason)
}

fn handshake(
    app: &Arc<App>,
    origin: Option<String>,
    authorization: Option<String>,
    protocols: Option<String>,
    ws: Option<Ws>,
) -> Response {
    if !app.ws.allowed_origins.allows(origin.as_deref()) {
        let shown: String = origin.unwrap_or_default().chars().take(100).collect();
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            &format!("origin {shown:?} may not open a socket here"),
        );
    }
    let (principal, protocol) = match app
        .auth
        .from_upgrade(authorization.as_deref(), protocols.as_deref())
    {
        Ok(authenticated) => authenticated,
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, "unauthorized", &e.to_string()),
    };
    let Some(ws) = ws else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected a WebSocket upgrade",
        );
    };
    let permit = match app.sockets.admit(&principal) {
        Ok(permit) => permit,
        Err(refusal @ Refusal::PerUser { .. }) => {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_sockets",
                &refusal.to_string(),
            )
        }
        Err(refusal @ Refusal::Total { .. }) => {
            let mut response = refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "at_capacity",
                &refusal.to_string(),
            );
            response.headers_mut().insert(
                warp::http::header::RETRY_AFTER,
                warp::http::HeaderValue::from_static("5"),
            );
            return response;
        }
    };
    let app = app.clone();
    let tracker = app.tracker.clone();
    let upgrade = ws
        .max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| tracker.track_future(session(socket, principal, permit, app)));
    match protocol {
        Some(protocol) => {
            warp::reply::with_header(upgrade, "sec-websocket-protocol", protocol).into_response()
        }
        None => upgrade.into_response(),
    }
}

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    Shutdown,
    TokenExpired,
    TooSlow,
    Silent,
    Unavailable,
    /// The client closed or the connection broke: nothing to say.
    Gone,
}

impl Closing {
    fn frame(self) -> Option<(u16, &'static str)> {
        match self {
            Closing::Shutdown => Some((CLOSE_GOING_AWAY, "server shutting down")),
            Closing::TokenExpired => Some((CLOSE_TOKEN_EXPIRED, "token expired")),
            Closing::TooSlow => Some((CLOSE_TRY_AGAIN_LATER, "too slow: reconnect with since")),
            Closing::Silent => Some((CLOSE_NORMAL, "no answer to pings")),
            Closing::Unavailable => Some((CLOSE_INTERNAL, "event stream unavailable")),
            Closing::Gone => None,
        }
    }
}

/// What ends a session from outside, raced against everything it waits on.
struct Stops {
    shutdown: CancellationToken,
    /// Cancelled by the fan-out when this socket's queue overflows.
    overflow: CancellationToken,
    expiry: Pin<Box<Sleep>>,
}

impl Stops {
    /// Runs `work` unless the session must end first.
    async fn guard<F: Future>(&mut self, work: F) -> Result<F::Output, Closing> {
        tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => Err(Closing::Shutdown),
            _ = &mut self.expiry => Err(Closing::TokenExpired),
            _ = self.overflow.cancelled() => Err(Closing::TooSlow),
            output = work => Ok(output),
        }
    }
}

/// A socket's current subscription.
struct Active {
    live: Live,
    /// Live frames at or below this sequence were already sent.
    floor: u64,
}

/// The next live frame to send (never returns without a subscription).
async fn next_live(current: &mut Option<Active>) -> Frame {
    let Some(active) = current else {
        return std::future::pending().await;
    };
    loop {
        match active.live.frames.recv().await {
            Some(frame) if frame.seq <= active.floor => continue,
            Some(frame) => return frame,
            // Only the registry holds senders, and it lives as long as the
            // process: the stop signals end this session instead.
            None => return std::future::pending().await,
        }
    }
}

type Sink = SplitSink<WebSocket, Message>;

struct Session {
    app: Arc<App>,
    principal: Principal,
    sink: Sink,
    stops: Stops,
    current: Option<Active>,
}

enum Wake {
    Stop(Closing),
    Live(Frame),
    Client(Option<Result<Message, warp::Error>>),
    Ping,
}

async fn session(socket: WebSocket, principal: Principal, permit: SocketPermit, app: Arc<App>) {
    let _permit = permit;
    let settings = app.ws.clone();
    let (sink, mut incoming): (Sink, SplitStream<WebSocket>) = socket.split();
    let expiry = Box::pin(tokio::time::sleep(principal.remaining(SystemTime::now())));
    let mut session = Session {
        stops: Stops {
            shutdown: app.shutdown.clone(),
            overflow: CancellationToken::new(),
            expiry,
        },
        app,
        principal,
        sink,
        current: None,
    };
    let mut ping: Interval = tokio::time::interval_at(
        Instant::now() + settings.ping_interval,
        settings.ping_interval,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();

    let closing = loop {
        let wake = {
            let stops = &mut session.stops;
            tokio::select! {
                biased;
                _ = stops.shutdown.cancelled() => Wake::Stop(Closing::Shutdown),
                _ = &mut stops.expiry => Wake::Stop(Closing::TokenExpired),
                _ = stops.overflow.cancelled() => Wake::Stop(Closing::TooSlow),
                frame = next_live(&mut session.current) => Wake::Live(frame),
                frame = incoming.next() => Wake::Client(frame),
                _ = ping.tick() => Wake::Ping,
            }
        };
        let outcome = match wake {
            Wake::Stop(closing) => Err(closing),
            Wake::Live(frame) => session.send_event(&frame).await,
            Wake::Ping if last_heard.elapsed() > settings.ping_interval * 3 => Err(Closing::Silent),
            Wake::Ping => session.send(Message::ping(Vec::new())).await,
            Wake::Client(None | Some(Err(_))) => Err(Closing::Gone),
            Wake::Client(Some(Ok(frame))) => {
                last_heard = Instant::now();
                // Boxed: subscribing (with its catch-up) is a large future,
                // and an idle socket should not carry its space.
                Box::pin(session.on_client_frame(frame)).await
            }
        };
        if let Err(closing) = outcome {
            break closing;
        }
    };
    Box::pin(session.close(closing)).await;
}

impl Session {
    async fn send(&mut self, message: Message) -> Result<(), Closing> {
        let write = tokio::time::timeout(self.app.ws.write_timeout, self.sink.send(message));
        match self.stops.guard(write).await? {
            Ok(Ok(())) => Ok(()),
            _ => Err(Closing::Gone),
        }
    }

    async fn send_text(&mut self, text: String) -> Result<(), Closing> {
        self.send(Message::text(text)).await
    }

    async fn send_event(&mut self, frame: &Frame) -> Result<(), Closing> {
        self.send_text(frame.text.to_string()).await?;
        metrics::counter!("waiter_notifier_events_sent_total").increment(1);
        Ok(())
    }

    async fn on_client_frame(&mut self, frame: Message) -> Result<(), Closing> {
        if frame.is_close() {
            // tungstenite answers the close handshake itself.
            return Err(Closing::Gone);
        }
        if frame.is_ping() || frame.is_pong() {
            return Ok(());
        }
        let Ok(text) = frame.to_str() else {
            let error = error_frame("bad_request", None, Some("send JSON text frames"));
            return self.send_text(error.to_string()).await;
        };
        match ClientRequest::parse(text) {
            Err(reason) => {
                let error = error_frame("bad_request", None, Some(&reason));
                self.send_text(error.to_string()).await
            }
            Ok(ClientRequest::Ping) => self.send_text(pong_frame()).await,
            Ok(ClientRequest::Subscribe { channels, since }) => {
                self.subscribe(&channels, since).await
            }
        }
    }

    /// Replaces the subscription: joins the feed, answers, then sends what
    /// `since` missed before any live frame.
    async fn subscribe(&mut self, channels: &[String], since: Option<u64>) -> Result<(), Closing> {
        self.current = None;
        let grant = Grant::decide(&self.principal, channels, self.app.ws.max_channels);
        let mut replies = vec![subscribed_frame(&grant.channel_names())];
        replies.extend(grant.refused.iter().map(|f| f.to_string()));
        if grant.is_empty() {
            for reply in replies {
                self.send_text(reply).await?;
            }
            return Ok(());
        }
        let app = self.app.clone();
        // Wait for a catch-up slot before joining, so the live queue does
        // not fill while this socket waits its turn.
        let _slot = match since {
            Some(_) => Some(
                self.stops
                    .guard(app.hub.catchups.acquire())
                    .await?
                    .map_err(|_| Closing::Shutdown)?,
            ),
            None => None,
        };
        let live = app
            .hub
            .join(&grant, app.ws.queue, self.stops.overflow.clone());
        for reply in replies {
            self.send_text(reply).await?;
        }
        let floor = match since {
            None => live.joined_at,
            Some(since) => self.catch_up(&grant, since, live.joined_at).await?,
        };
        self.current = Some(Active { live, floor });
        Ok(())
    }

    /// Sends the stored events after `since` up to `joined_at`; returns
    /// the sequence live frames must be above.
    async fn catch_up(
        &mut self,
        grant: &Grant,
        since: u64,
        joined_at: u64,
    ) -> Result<u64, Closing> {
        let app = self.app.clone();
        let topology = app.bus.topology();
        let stream_name = topology.stream_name(waiter_nats::StreamKind::Events);
        let (stream, bounds) = self
            .stops
            .guard(catchup::bounds(app.bus.jetstream(), &stream_name))
            .await?
            .map_err(|e| self.unavailable(e))?;
        let plan = catchup::plan(since, bounds, joined_at);
        let mut missed = plan
            .missed
            .map(|first| (first, "older than the stream keeps"));
        let mut reader = None;
        if let Some((from, until)) = plan.read {
            let filter = match grant.single_restaurant() {
                Some(restaurant_id) => topology.events_of(&restaurant_id),
                // An admin watching several restaurants reads all of them.
                None => topology.stream_subjects(waiter_nats::StreamKind::Events),
            };
            let opened = self
                .stops
                .guard(Reader::open(
                    &stream,
                    filter,
                    from,
                    until,
                    app.ws.catchup_max,
                ))
                .await?
                .map_err(|e| self.unavailable(e))?;
            match opened {
                Opened::Reader(r) => reader = Some(r),
                Opened::TooMany { pending } => {
                    tracing::info!(
                        since,
                        pending,
                        "catch-up too long; telling the client it missed events"
                    );
                    missed = Some((joined_at + 1, "more events than a catch-up sends"));
                }
            }
        }
        if let Some((first_seq, reason)) = missed {
            metrics::counter!("waiter_notifier_events_missed_total").increment(1);
            self.send_text(events_missed_frame(first_seq, reason))
                .await?;
        }
        if let Some(mut reader) = reader {
            let sent = self.send_stored(&mut reader, grant).await;
            reader.close().await;
            sent?;
        }
        Ok(plan.floor)
    }

    async fn send_stored(&mut self, reader: &mut Reader, grant: &Grant) -> Result<(), Closing> {
        loop {
            let next = self
                .stops
                .guard(reader.next())
                .await?
                .map_err(|e| self.unavailable(e))?;
            let Some((seq, payload)) = next else {
                return Ok(());
            };
            let Some(event) = hub::decode(seq, &payload) else {
                continue;
            };
            if grant.admits(&event) {
                self.send_event(&hub::frame_of(seq, &event)).await?;
                metrics::counter!("waiter_notifier_catchup_events_total").increment(1);
            }
        }
    }

    fn unavailable(&self, error: catchup::CatchUpError) -> Closing {
        tracing::warn!(%error, "cannot serve a dashboard's since");
        Closing::Unavailable
    }

    async fn close(mut self, closing: Closing) {
        self.current = None;
        let timeout = self.app.ws.write_timeout;
        if closing == Closing::Unavailable {
            let error = error_frame(
                "unavailable",
                None,
                Some("event stream unavailable; reconnect with since"),
            );
            let _ = tokio::time::timeout(timeout, self.sink.send(Message::text(error.to_string())))
                .await;
        }
        if let Some((code, reason)) = closing.frame() {
            let _ =
                tokio::time::timeout(timeout, self.sink.send(Message::close_with(code, reason)))
                    .await;
        }
        let _ = tokio::time::timeout(timeout, self.sink.close()).await;
    }
}
