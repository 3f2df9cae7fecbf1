//! Shared fixtures for the notifier's integration tests.
#![allow(dead_code)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use notifier::{Config, Running};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_tungstenite::{
    connect_async,
    tungstenite::{client::IntoClientRequest, protocol::CloseFrame, Message},
    MaybeTlsStream, WebSocketStream,
};
use uuid::Uuid;
use waiter_harness::{add_restaurant, jwt, TestEnv, TestRestaurant};
use waiter_nats::{
    envelope::new_id,
    events::{DashboardEvent, EventType},
    Bus, Envelope,
};

pub const SECRET: &str = "notifier-test-secret-0123456789";

/// A notifier on port 0 over a fresh database and namespace, with two
/// restaurants.
pub struct Stage {
    pub env: TestEnv,
    pub running: Running,
    pub http: reqwest::Client,
    pub a: TestRestaurant,
    pub b: TestRestaurant,
}

impl Stage {
    pub async fn start() -> Stage {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> Stage {
        let env = TestEnv::new().await;
        let mut config = Config::for_tests(SECRET, env.bus.config.clone());
        tune(&mut config);
        let running = notifier::start(
            config,
            env.bus.bus.clone(),
            env.pool().clone(),
            env.shutdown.clone(),
        )
        .await
        .expect("start notifier");
        let a = add_restaurant(env.pool(), "alpha", "en").await;
        let b = add_restaurant(env.pool(), "beta", "ar").await;
        Stage {
            env,
            running,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            a,
            b,
        }
    }

    pub fn pool(&self) -> &PgPool {
        self.env.pool()
    }

    pub fn bus(&self) -> &Bus {
        &self.env.bus.bus
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.running.addr)
    }

    pub fn api(&self, restaurant: Uuid, rest: &str) -> String {
        self.url(&format!("/api/restaurants/{restaurant}/{rest}"))
    }

    pub fn staff(&self, restaurant: Uuid) -> String {
        jwt::token(SECRET, restaurant, "staff", 3600)
    }

    pub fn admin(&self) -> String {
        jwt::token(SECRET, Uuid::new_v4(), "admin", 3600)
    }

    pub async fn get(&self, url: &str, token: &str) -> (u16, Value) {
        let response = self.http.get(url).bearer_auth(token).send().await.unwrap();
        status_and_json(response).await
    }

    pub async fn post(&self, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.post(url).bearer_auth(token);
        request = match body {
            Some(body) => request.json(&body),
            None => request.header("content-length", "0"),
        };
        status_and_json(request.send().await.unwrap()).await
    }

    pub async fn post_raw(&self, url: &str, token: &str, body: &str) -> (u16, Value) {
        let response = self
            .http
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    pub async fn patch(&self, url: &str, token: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .patch(url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    /// Publishes a dashboard event to the EVENTS stream; its sequence.
    pub async fn publish_event(&self, restaurant: Uuid, event_type: EventType, data: Value) -> u64 {
        let event = DashboardEvent::new(restaurant, event_type, data);
        let bus = self.bus();
        bus.publish(
            event.subject(bus.topology()),
            &Envelope::new(new_id(), new_id(), event),
        )
        .await
        .expect("publish event")
        .stream_sequence
    }
}

/// The answer to a WebSocket handshake that is refused: status, JSON body
/// and the `Retry-After` header.
pub async fn refused_handshake(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    origin: Option<&str>,
) -> (u16, Value, Option<String>) {
    let mut request = http
        .get(url.replace("ws://", "http://"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let (status, body) = status_and_json(response).await;
    (status, body, retry_after)
}

/// The EVENTS stream's consumers right now.
pub async fn event_consumers(bus: &Bus) -> usize {
    let name = bus.topology().stream_name(waiter_nats::StreamKind::Events);
    let mut stream = bus.jetstream().get_stream(&name).await.unwrap();
    stream.info().await.unwrap().state.consumer_count
}

pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

// ---------------------------------------------------------------- fixtures

pub async fn conversation(
    pool: &PgPool,
    restaurant: Uuid,
    customer: &str,
    last_message_at: Option<DateTime<Utc>>,
    unread: i32,
) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO conversations (id, restaurant_id, customer, customer_name, unread_count,
                                    last_message_at, last_inbound_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(id)
    .bind(restaurant)
    .bind(customer)
    .bind(format!("name of {customer}"))
    .bind(unread)
    .bind(last_message_at)
    .execute(pool)
    .await
    .expect("insert conversation");
    id
}

pub async fn message(
    pool: &PgPool,
    restaurant: Uuid,
    conversation: Uuid,
    direction: &str,
    body: &str,
    at: DateTime<Utc>,
) -> Uuid {
    let id = Uuid::new_v4();
    let author = if direction == "in" { "customer" } else { "bot" };
    let status = if direction == "in" {
        "received"
    } else {
        "sent"
    };
    sqlx::query(
        "INSERT INTO messages (id, restaurant_id, conversation_id, direction, author, kind, body,
                               status, created_at, sent_at)
         VALUES ($1, $2, $3, $4, $5, 'text', $6, $7, $8,
                 CASE WHEN $4 = 'out' THEN $8 END)",
    )
    .bind(id)
    .bind(restaurant)
    .bind(conversation)
    .bind(direction)
    .bind(author)
    .bind(body)
    .bind(status)
    .bind(at)
    .execute(pool)
    .await
    .expect("insert message");
    id
}

/// An order with `(name, quantity, unit_price)` lines.
#[allow(clippy::too_many_arguments)]
pub async fn order(
    pool: &PgPool,
    restaurant: Uuid,
    conversation: Uuid,
    number: i64,
    status: &str,
    lines: &[(&str, i32, i64)],
    created_at: DateTime<Utc>,
    rating: Option<i16>,
) -> Uuid {
    let id = Uuid::new_v4();
    let lines: Vec<Value> = lines
        .iter()
        .map(|(name, quantity, price)| {
            json!({"item_id": Uuid::new_v4(), "name": name, "quantity": quantity,
                   "unit_price": price, "line_total": price * i64::from(*quantity)})
        })
        .collect();
    let subtotal: i64 = lines
        .iter()
        .map(|l| l["line_total"].as_i64().unwrap())
        .sum();
    sqlx::query(
        "INSERT INTO orders (id, restaurant_id, conversation_id, number, status, fulfilment,
                             payment_method, lines, subtotal, delivery_fee, total, currency,
                             rating, rated_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'delivery', 'cash', $6, $7, 1000, $7 + 1000, 'SAR',
                 $8, CASE WHEN $8::smallint IS NULL THEN NULL ELSE $9 END, $9, $9)",
    )
    .bind(id)
    .bind(restaurant)
    .bind(conversation)
    .bind(number)
    .bind(status)
    .bind(Value::Array(lines))
    .bind(subtotal)
    .bind(rating)
    .bind(created_at)
    .execute(pool)
    .await
    .expect("insert order");
    id
}

// --------------------------------------------------------------- websocket

/// A WebSocket client that can authenticate either way and sees close codes.
pub struct Socket {
    pub inner: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    /// The `Sec-WebSocket-Protocol` the server answered with.
    pub protocol: Option<String>,
}

pub enum Auth<'a> {
    Header(&'a str),
    Protocol(&'a str),
}

fn upgrade_request(
    url: &str,
    auth: Auth<'_>,
    origin: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match auth {
        Auth::Header(token) => request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap()),
        Auth::Protocol(token) => request.headers_mut().insert(
            "sec-websocket-protocol",
            format!("bearer.{token}").parse().unwrap(),
        ),
    };
    request
}

impl Socket {
    pub async fn connect(url: &str, auth: Auth<'_>) -> Result<Socket, u16> {
        Self::connect_from(url, auth, None).await
    }

    /// Connects with an `Origin` header, as a browser page would.
    pub async fn connect_from(
        url: &str,
        auth: Auth<'_>,
        origin: Option<&str>,
    ) -> Result<Socket, u16> {
        let request = upgrade_request(url, auth, origin);
        let connected = tokio::time::timeout(Duration::from_secs(30), connect_async(request))
            .await
            .expect("websocket handshake within 30s");
        match connected {
            Ok((inner, response)) => Ok(Socket {
                inner,
                protocol: response
                    .headers()
                    .get("sec-websocket-protocol")
                    .map(|v| v.to_str().unwrap().to_string()),
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("websocket connect failed: {e}"),
        }
    }

    /// A client that never reads: its TCP receive buffer is tiny, so the
    /// server's writes back up as soon as the kernel buffers are full.
    pub async fn connect_without_reading(url: &str, token: &str) -> Socket {
        let request = upgrade_request(url, Auth::Header(token), None);
        let addr: std::net::SocketAddr = url
            .trim_start_matches("ws://")
            .trim_end_matches("/ws")
            .parse()
            .unwrap();
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        tcp.set_recv_buffer_size(16 * 1024).unwrap();
        let stream = tcp.connect(addr).await.unwrap();
        let (inner, _) = tokio::time::timeout(
            Duration::from_secs(30),
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)),
        )
        .await
        .expect("websocket handshake within 30s")
        .expect("handshake");
        Socket {
            inner,
            protocol: None,
        }
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        tokio::time::timeout(
            Duration::from_secs(10),
            self.inner.send(Message::Text(text.into())),
        )
        .await
        .expect("websocket send within 10s")
        .unwrap();
    }

    pub async fn subscribe(&mut self, channels: &[String], since: Option<u64>) -> Value {
        let mut request = json!({"action": "subscribe", "channels": channels});
        if let Some(since) = since {
            request["since"] = since.into();
        }
        self.send_json(request).await;
        self.wait_for("subscribed", Duration::from_secs(10))
            .await
            .expect("subscribed frame")
    }

    /// The next frame: Ok(json), or Err(close frame) when the server closed.
    pub async fn next(
        &mut self,
        timeout: Duration,
    ) -> Option<Result<Value, Option<CloseFrame<'static>>>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = tokio::time::timeout(remaining, self.inner.next())
                .await
                .ok()?;
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Some(Ok(serde_json::from_str(&text).unwrap()))
                }
                Some(Ok(Message::Close(frame))) => return Some(Err(frame)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Some(Err(None)),
            }
        }
    }

    /// Reads until the server closes; the event frames before, and the
    /// close code.
    pub async fn until_closed(&mut self, timeout: Duration) -> (Vec<Value>, Option<u16>) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = vec![];
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(remaining).await {
                Some(Ok(frame)) if frame.get("seq").is_some() => events.push(frame),
                Some(Ok(_)) => continue,
                Some(Err(close)) => return (events, close.map(|c| u16::from(c.code))),
                None => panic!("no close within {timeout:?}"),
            }
        }
    }

    pub async fn next_json(&mut self, timeout: Duration) -> Option<Value> {
        match self.next(timeout).await {
            Some(Ok(v)) => Some(v),
            _ => None,
        }
    }

    pub async fn wait_for(&mut self, frame_type: &str, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.next_json(remaining).await?;
            if frame["type"] == frame_type {
                return Some(frame);
            }
        }
    }

    /// Event frames (those with a `seq`) until `n` arrived, then whatever
    /// else arrives within `quiet`.
    pub async fn events(&mut self, n: usize, quiet: Duration) -> Vec<Value> {
        let mut events = vec![];
        while events.len() < n {
            match self.next_json(Duration::from_secs(10)).await {
                Some(frame) if frame.get("seq").is_some() => events.push(frame),
                Some(_) => continue,
                None => break,
            }
        }
        while let Some(frame) = self.next_json(quiet).await {
            if frame.get("seq").is_some() {
                events.push(frame);
            }
        }
        events
    }
}

pub fn channels(restaurant: Uuid, kinds: &[&str]) -> Vec<String> {
    kinds
        .iter()
        .map(|k| format!("ws:restaurant:{restaurant}:{k}"))
        .collect()
}

pub fn all_channels(restaurant: Uuid) -> Vec<String> {
    channels(restaurant, &["messages", "orders", "conversations"])
}

// ------------------------------------------------------------ private NATS

/// A nats-server of the test's own (JetStream on, store in a temp dir), for
/// tests that restart it. Killed and removed on drop.
pub struct PrivateNats {
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl PrivateNats {
    pub fn start() -> PrivateNats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("waiter-nats-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut nats = PrivateNats {
            port,
            dir,
            child: None,
        };
        nats.spawn();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nats-server");
        let child = std::process::Command::new(bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// kill -9, then the same server again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
