//! Serving a public port: warp routes on our own hyper connections, so a
//! client cannot hold a connection open by sending its request slowly
//! (slowloris).
//!
//! warp 0.3's `serve` exposes none of hyper's timeouts. Here each accepted
//! connection is served by `hyper::server::conn::Http` with a header read
//! timeout (hyper closes a connection whose request head is not complete in
//! time, idle keep-alive connections included), and each request's body
//! must arrive within the body read timeout, counted from the end of the
//! head; otherwise the answer is 408 and the connection is closed.
//! WebSocket upgrades are left alone: their bodies are empty.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use hyper::{
    body::{Bytes, HttpBody},
    header,
    server::conn::Http,
    service::{service_fn, Service},
    Body, Request, Response, StatusCode,
};
use tokio::{net::TcpListener, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use warp::{Filter, Reply};

use crate::EnvReader;

/// How long a client may take to send a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// From the connection's first read (or the end of the previous
    /// response) to the end of the request head.
    pub header_read: Duration,
    /// From the end of the head to the last byte of the body.
    pub body_read: Duration,
}

impl HttpTimeouts {
    pub const DEFAULT_HEADER_READ: Duration = Duration::from_secs(5);
    pub const DEFAULT_BODY_READ: Duration = Duration::from_secs(10);

    /// `<PREFIX>_HEADER_READ_TIMEOUT_MS` and `<PREFIX>_BODY_READ_TIMEOUT_MS`
    /// (defaults 5 s and 10 s; each between 100 ms and 5 minutes).
    pub fn from_env(env: &mut EnvReader, prefix: &str) -> Self {
        let mut read = |name: String, default: Duration| {
            let ms: u64 = env.parse(&name, default.as_millis() as u64);
            if !(100..=300_000).contains(&ms) {
                env.problem(format!("{name}={ms} must be between 100 and 300000 ms"));
                return default;
            }
            Duration::from_millis(ms)
        };
        Self {
            header_read: read(
                format!("{prefix}_HEADER_READ_TIMEOUT_MS"),
                Self::DEFAULT_HEADER_READ,
            ),
            body_read: read(
                format!("{prefix}_BODY_READ_TIMEOUT_MS"),
                Self::DEFAULT_BODY_READ,
            ),
        }
    }
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self {
            header_read: Self::DEFAULT_HEADER_READ,
            body_read: Self::DEFAULT_BODY_READ,
        }
    }
}

/// The peer address of the connection a request came on, for routes that
/// need it (`warp::ext::get::<ClientAddr>()`); warp's own `addr::remote`
/// only works under `warp::serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Serves `routes` on `listener` until `shutdown`; then each connection
/// finishes its request in flight and closes. The task ends when every
/// connection has.
pub fn serve<F>(
    listener: TcpListener,
    routes: F,
    timeouts: HttpTimeouts,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()>
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let service = warp::service(routes);
    tokio::spawn(async move {
        let connections = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (socket, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly
                    // rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let service = service.clone();
            let shutdown = shutdown.clone();
            connections.spawn(async move {
                let handler = service_fn(move |request: Request<Body>| {
                    let mut service = service.clone();
                    async move {
                        Ok::<_, Infallible>(respond(&mut service, request, peer, timeouts).await)
                    }
                });
                let mut http = Http::new();
                http.http1_header_read_timeout(timeouts.header_read);
                let mut connection = http.serve_connection(socket, handler).with_upgrades();
                let outcome = tokio::select! {
                    outcome = &mut connection => outcome,
                    _ = shutdown.cancelled() => {
                        std::pin::Pin::new(&mut connection).graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(e) = outcome {
                    tracing::debug!(%peer, error = %e, "connection closed");
                }
            });
        }
        connections.close();
        connections.wait().await;
    })
}

async fn respond<S>(
    service: &mut S,
    mut request: Request<Body>,
    peer: SocketAddr,
    timeouts: HttpTimeouts,
) -> Response<Body>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    request.extensions_mut().insert(ClientAddr(peer));
    let timed_out = Arc::new(AtomicBool::new(false));
    if has_body(&request) {
        let deadline = Instant::now() + timeouts.body_read;
        let body = std::mem::take(request.body_mut());
        *request.body_mut() = within(body, deadline, timed_out.clone());
    }
    let response = match service.call(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    if timed_out.load(Ordering::Acquire) {
        metrics::counter!("waiter_http_body_timeouts_total").increment(1);
        return Response::builder()
            .status(StatusCode::REQUEST_TIMEOUT)
            .header(header::CONNECTION, "close")
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Body::from("request body not received in time\n"))
            .expect("response");
    }
    response
}

fn has_body(request: &Request<Body>) -> bool {
    let headers = request.headers();
    if headers.contains_key(header::UPGRADE) {
        return false;
    }
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    length.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING)
}

/// The body, failing with a timeout if it has not all arrived by `deadline`.
fn within(body: Body, deadline: Instant, timed_out: Arc<AtomicBool>) -> Body {
    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let chunks = futures::stream::unfold(Some(body), move |body| {
        let timed_out = timed_out.clone();
        async move {
            let mut body = body?;
            match tokio::time::timeout_at(deadline, body.data()).await {
                Ok(Some(Ok(chunk))) => Some((Ok::<Bytes, BoxError>(chunk), Some(body))),
                Ok(Some(Err(e))) => Some((Err(BoxError::from(e)), None)),
                Ok(None) => None,
                Err(_) => {
                    timed_out.store(true, Ordering::Release);
                    Some((Err(BoxError::from("request body read timed out")), None))
                }
            }
        }
    });
    Body::wrap_stream(chunks)
}

/// Binds `addr`, for a stage's `start`, with `SO_REUSEPORT`: replicas of
/// ingest or notifier share one public port and the kernel spreads the
/// connections over them (Linux lets only sockets of the same user share a
/// port; `waiterctl up` checks the port is free before the first replica).
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(1024)?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replicas_share_a_port_and_each_is_served() {
        let (first, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let (second, again) = bind(addr).await.expect("a second listener on the port");
        assert_eq!(addr, again);
        drop(first);
        // The survivor takes every connection.
        let shutdown = CancellationToken::new();
        let server = serve(
            second,
            warp::any().map(|| "served"),
            HttpTimeouts::default(),
            shutdown.clone(),
        );
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("served"),
            "{answer}"
        );
        shutdown.cancel();
        server.await.unwrap();
    }
}
