//! Ingest: Twilio's webhooks in, durable on JetStream out.
//!
//! A webhook is answered 200 only after JetStream acknowledged it, so an
//! accepted message is never lost; 503 when the broker cannot take it (Twilio
//! retries); 403 on a bad signature; 400 on a malformed form; 413 when too
//! large. Never 429: Twilio does not support it. Ingest reads no database:
//! signatures are checked against the tenant directory it follows on the bus.

pub mod form;
pub mod http;
pub mod refusals;
pub mod signature;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use thiserror::Error;
use tokio_util::sync::CancellationToken;
use waiter_nats::{
    directory::{Directory, DirectoryCache},
    envelope::new_id,
    worker::Backoff,
    Bus, BusError, Envelope, StreamKind,
};
use waiter_runtime::{http::HttpTimeouts, ConfigError, EnvReader, Health, Running};
use waiter_secrets::Keyring;

use crate::refusals::{RefusalPolicy, Refusals};

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
    pub timeouts: HttpTimeouts,
    /// How long `start` waits for the tenant directory before serving
    /// anyway (answering 503 until it is loaded).
    pub directory_wait: Duration,
    pub refusals: RefusalPolicy,
    /// A header naming the client address, set by a proxy in front
    /// (`X-Forwarded-For`: its last address is used). Unset: the peer.
    pub client_ip_header: Option<String>,
    /// `INGEST_OPS_ADDR`: `/health`, `/ready`, `/status` and `/metrics` on
    /// a port of this process alone, as well as on the public one (which
    /// replicas share with SO_REUSEPORT, so it answers for any of them).
    pub ops_listen: Option<SocketAddr>,
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
        let timeouts = HttpTimeouts::from_env(&mut env, "INGEST");
        let directory_wait = Duration::from_millis(env.parse("INGEST_DIRECTORY_WAIT_MS", 5_000));
        let defaults = RefusalPolicy::default();
        let refusals = RefusalPolicy {
            threshold_per_minute: env
                .parse("INGEST_REFUSED_PER_MINUTE", defaults.threshold_per_minute),
            samples: env.parse("INGEST_REFUSED_SAMPLES", defaults.samples),
            max_sources: env.parse("INGEST_REFUSED_SOURCES", defaults.max_sources),
            flush_every: Duration::from_millis(env.parse(
                "INGEST_REFUSED_FLUSH_MS",
                defaults.flush_every.as_millis() as u64,
            )),
        };
        if refusals.max_sources == 0 || refusals.flush_every < Duration::from_millis(100) {
            env.problem("INGEST_REFUSED_SOURCES must be at least 1 and INGEST_REFUSED_FLUSH_MS at least 100");
        }
        let client_ip_header = env.optional("INGEST_CLIENT_IP_HEADER");
        let ops_listen = env.optional_addr("INGEST_OPS_ADDR");
        env.finish()?;
        Ok(Self {
            listen,
            public_url: public_url.trim_end_matches('/').to_string(),
            validate_signatures,
            max_body_bytes,
            secret_keys: secret_keys.expect("a missing key is a configuration problem"),
            timeouts,
            directory_wait,
            refusals,
            client_ip_header,
            ops_listen,
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
            timeouts: HttpTimeouts::default(),
            directory_wait: Duration::from_secs(5),
            refusals: RefusalPolicy {
                flush_every: Duration::from_millis(200),
                ..RefusalPolicy::default()
            },
            client_ip_header: None,
            ops_listen: None,
        }
    }
}

#[derive(Debug, Error)]
pub enum IngestError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("cannot serve the ops port {addr}: {source}")]
    Ops {
        addr: SocketAddr,
        source: warp::Error,
    },
}

/// Starts the webhook server. With `public_url` empty (tests), it becomes
/// `http://<bound address>`.
///
/// The port is served at once; webhooks get 503 (Twilio retries) until the
/// ingest stream is ensured and the tenant directory loaded, since before
/// that a real tenant's request would look like an unknown account. `start`
/// itself waits for that at most `directory_wait`.
pub async fn start(
    mut config: Config,
    bus: Bus,
    shutdown: CancellationToken,
) -> Result<Running, IngestError> {
    let (listener, addr) = waiter_runtime::http::bind(config.listen)
        .await
        .map_err(|e| IngestError::Bind {
            addr: config.listen,
            reason: e.to_string(),
        })?;
    if config.public_url.is_empty() {
        config.public_url = format!("http://{addr}");
    }
    if !config.validate_signatures {
        tracing::warn!(
            "TWILIO_WEBHOOK_VALIDATE is off: webhook signatures are NOT checked (development only)"
        );
    }
    let cache = DirectoryCache::new(config.secret_keys.clone());
    tokio::spawn(load_directory(bus.clone(), cache.clone(), shutdown.clone()));
    let refusals = Arc::new(Refusals::new(config.refusals.clone()));
    let flusher = tokio::spawn(flush_refusals(
        bus.clone(),
        refusals.clone(),
        shutdown.clone(),
    ));

    let connection = bus.clone();
    let loaded = cache.clone();
    let health = Health::new("ingest")
        .check("nats", move || connection.is_connected())
        .check("tenant_directory", move || loaded.is_loaded());
    let ops = waiter_runtime::ops::serve_if(config.ops_listen, &health, &shutdown)
        .map_err(|(addr, source)| IngestError::Ops { addr, source })?;
    let (timeouts, directory_wait) = (config.timeouts, config.directory_wait);
    let state = http::State::new(config, bus, cache.clone(), refusals);
    let server =
        waiter_runtime::http::serve(listener, http::routes(state, health), timeouts, shutdown);
    if cache.wait_loaded(directory_wait).await {
        tracing::info!(%addr, accounts = cache.len(), "ingest listening, tenant directory loaded");
    } else {
        tracing::warn!(%addr, "ingest listening; the tenant directory is not loaded yet: webhooks get 503 until it is");
    }
    let done = tokio::spawn(async move {
        let _ = server.await;
        let _ = flusher.await;
        if let Some(ops) = ops {
            let _ = ops.await;
        }
    });
    Ok(Running { addr, done })
}

/// Ensures the ingest stream and follows the directory, retrying until
/// both worked (JetStream may still be starting, or be unreachable).
async fn load_directory(bus: Bus, cache: DirectoryCache, shutdown: CancellationToken) {
    let backoff = Backoff {
        initial: Duration::from_millis(250),
        max: Duration::from_secs(5),
    };
    let mut failures = 0;
    while !shutdown.is_cancelled() {
        let attempt = async {
            bus.ensure_streams(&[StreamKind::Ingest]).await?;
            let directory = Directory::open(&bus).await?;
            directory
                .follow(cache.clone(), Duration::ZERO, shutdown.clone())
                .await
        };
        match attempt.await {
            Ok(()) => return,
            Err(e) => {
                failures += 1;
                let delay = backoff.jittered(failures.min(8));
                tracing::warn!(error = %e, retry_in = ?delay, "cannot load the tenant directory yet");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Publishes the refusal counts every `flush_every`, and once more at
/// shutdown.
async fn flush_refusals(bus: Bus, refusals: Arc<Refusals>, shutdown: CancellationToken) {
    let every = refusals.policy().flush_every;
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tokio::time::sleep(every) => false,
        };
        let reports = refusals.drain(chrono::Utc::now());
        let subject = bus.topology().refused_webhooks();
        let mut failed = vec![];
        for report in reports {
            if !failed.is_empty() {
                failed.push(report);
                continue;
            }
            let envelope = Envelope::new(new_id(), new_id(), report);
            if let Err(e) = bus.publish(subject.clone(), &envelope).await {
                tracing::warn!(error = %e, "cannot publish refused-webhook counts; kept for the next flush");
                failed.push(envelope.body);
            }
        }
        if !failed.is_empty() {
            refusals.retry_later(failed);
        }
        if stopping {
            return;
        }
    }
}
