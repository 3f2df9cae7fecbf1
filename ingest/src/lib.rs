//! Ingest: Twilio's webhooks in, durable on JetStream out.
//!
//! A webhook is answered 200 only after JetStream acknowledged it, so an
//! accepted message is never lost; 503 when the broker cannot take it (Twilio
//! retries); 403 on a bad signature; 400 on a malformed form; 413 when too
//! large. Never 429: Twilio does not support it. Ingest reads no database:
//! signatures are checked against the tenant directory it follows on the bus.

pub mod form;
pub mod http;
pub mod signature;

use std::{net::SocketAddr, time::Duration};

use thiserror::Error;
use tokio_util::sync::CancellationToken;
use waiter_nats::{
    directory::{Directory, DirectoryCache},
    Bus, BusError, StreamKind,
};
use waiter_runtime::{ConfigError, EnvReader, Health, Running};
use waiter_secrets::Keyring;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The URL Twilio is configured with, without the path: signatures are
    /// computed over `public_url + path + query`, not over the socket address.
    pub public_url: String,
    pub validate_signatures: bool,
    pub max_body_bytes: u64,
    /// `WAITER_SECRET_KEY`: opens the sealed auth tokens of the directory.
    pub secret_keys: Keyring,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut env = EnvReader::new();
        let listen = env.addr("INGEST_ADDR", "0.0.0.0:8080");
        let public_url = env.string("PUBLIC_URL", &format!("http://127.0.0.1:{}", listen.port()));
        let validate_signatures = env.bool("TWILIO_WEBHOOK_VALIDATE", true);
        let max_body_bytes = env.parse("INGEST_MAX_BODY_BYTES", 64 * 1024u64);
        let secret_keys = env.secret_keys();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            env.problem(format!(
                "PUBLIC_URL={public_url:?} must start with http:// or https://"
            ));
        }
        env.finish()?;
        Ok(Self {
            listen,
            public_url: public_url.trim_end_matches('/').to_string(),
            validate_signatures,
            max_body_bytes,
            secret_keys: secret_keys.expect("a missing key is a configuration problem"),
        })
    }

    /// Port 0 on loopback; the public URL is filled in once bound.
    pub fn for_tests() -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("addr"),
            public_url: String::new(),
            validate_signatures: true,
            max_body_bytes: 64 * 1024,
            secret_keys: Keyring::for_tests().clone(),
        }
    }
}

#[derive(Debug, Error)]
pub enum IngestError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

/// Starts the webhook server. With `public_url` empty (tests), it becomes
/// `http://<bound address>`.
pub async fn start(
    mut config: Config,
    bus: Bus,
    shutdown: CancellationToken,
) -> Result<Running, IngestError> {
    bus.ensure_streams(&[StreamKind::Ingest]).await?;
    let cache = DirectoryCache::new(config.secret_keys.clone());
    let directory = Directory::open(&bus).await?;
    directory
        .follow(cache.clone(), Duration::from_secs(5), shutdown.clone())
        .await?;
    tracing::info!(accounts = cache.len(), "tenant directory loaded");
    if !config.validate_signatures {
        tracing::warn!(
            "TWILIO_WEBHOOK_VALIDATE is off: webhook signatures are NOT checked (development only)"
        );
    }
    let connection = bus.clone();
    let health = Health::new("ingest").check("nats", move || connection.is_connected());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| IngestError::Bind {
            addr: config.listen,
            reason: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| IngestError::Bind {
        addr: config.listen,
        reason: e.to_string(),
    })?;
    if config.public_url.is_empty() {
        config.public_url = format!("http://{addr}");
    }
    let state = http::State::new(config, bus, cache);
    let routes = http::routes(state, health);
    let stream = tokio_stream_from(listener);
    let server = warp::serve(routes)
        .serve_incoming_with_graceful_shutdown(stream, async move { shutdown.cancelled().await });
    tracing::info!(%addr, "ingest listening");
    Ok(Running {
        addr,
        done: tokio::spawn(server),
    })
}

fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(socket, _)| socket);
        Some((accepted, listener))
    })
}
