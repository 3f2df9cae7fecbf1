//! The outbound stage: sends the messages on the OUTBOUND stream through
//! the Twilio Messages API (the tenant's Basic auth, per-tenant rate limit,
//! retries with backoff, fail-fast on permanent errors, dead letters), and
//! applies the status callbacks ingest puts on the INGEST stream.
//!
//! - [`decision`]: what a Twilio answer means, status ranks (pure).
//! - [`twilio`]: the Messages API client and its form.
//! - [`send`]: the handler of `OutboundMessage`s (partitioned, keyed
//!   lanes: one conversation in order, conversations in parallel).
//! - [`status`]: the handler of `StatusCallback`s (shared, unordered).
//! - [`store`]: the queries on `messages`.
//! - [`tenants`]: restaurants (cached) and their rate limiters.
//! - [`webhooks`]: order events to the restaurants' webhook endpoints
//!   (its own consumer group, `webhooks`, over the WEBHOOK stream).

pub mod decision;
pub mod send;
pub mod status;
pub mod store;
pub mod tenants;
pub mod twilio;
pub mod webhooks;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use secrecy::SecretString;
use sqlx::PgPool;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use waiter_nats::{streams::ConsumerSpec, Bus, BusError, StreamKind, Worker};
use waiter_runtime::{db::Probe, ConfigError, EnvReader, Health};
use waiter_secrets::Keyring;

pub use waiter_runtime::Running;

use crate::{
    send::{SendHandler, SendSettings},
    status::StatusHandler,
    tenants::Tenants,
    twilio::TwilioClient,
    webhooks::{WebhookHandler, WebhookSettings},
};

/// The outbound stage's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// `/health` and `/metrics` (`OUTBOUND_OPS_ADDR`, default 0.0.0.0:9104).
    pub ops_addr: SocketAddr,
    /// `DATABASE_URL` (used by `main` to build the pool).
    pub database_url: SecretString,
    /// `OUTBOUND_DB_MAX_CONNECTIONS` (16).
    pub db_max_connections: u32,
    /// `TWILIO_API_BASE` (https://api.twilio.com; the simulator in dev).
    pub twilio_api_base: String,
    /// `StatusCallback` of every send: `OUTBOUND_STATUS_CALLBACK_URL`, else
    /// `PUBLIC_URL` + `/whatsapp/status`, else none.
    pub status_callback_url: Option<String>,
    /// Calls to Twilio for one message before a transient failure is
    /// final (`OUTBOUND_MAX_ATTEMPTS`, 8). Waiting for the rate limit is not
    /// a call.
    pub max_attempts: i64,
    /// Timeout of one Messages API request (`OUTBOUND_HTTP_TIMEOUT_MS`, 10000).
    pub http_timeout: Duration,
    /// How long a restaurant's number, credentials and rate are cached.
    pub restaurant_cache_ttl: Duration,
    /// How long one attempt may wait in place for its restaurant's rate
    /// limit before it is deferred (`OUTBOUND_RATE_LIMIT_WAIT_MS`, 1000).
    pub rate_limit_wait: Duration,
    /// Attempts at a message whose row does not exist yet before it is
    /// dead-lettered.
    pub missing_row_attempts: i64,
    /// Attempts at a status callback whose sid is not in `messages` yet
    /// before it is dropped.
    pub unknown_sid_attempts: i64,
    /// `WAITER_SECRET_KEY`: opens the restaurants' sealed auth tokens.
    pub secret_keys: Keyring,
    /// Posts of one order event to one webhook endpoint before it is
    /// dead-lettered (`WEBHOOK_MAX_ATTEMPTS`, 8), and the timeout of one
    /// (`WEBHOOK_HTTP_TIMEOUT_MS`, 10000).
    pub webhooks: WebhookSettings,
}

pub const DEFAULT_OPS_ADDR: &str = "0.0.0.0:9104";
pub const DEFAULT_TWILIO_API_BASE: &str = "https://api.twilio.com";
/// Where ingest takes status callbacks, under `PUBLIC_URL`.
pub const STATUS_CALLBACK_PATH: &str = "/whatsapp/status";

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        let mut env = EnvReader::new();
        let ops_addr = env.addr("OUTBOUND_OPS_ADDR", DEFAULT_OPS_ADDR);
        let database_url = env.secret(
            "DATABASE_URL",
            Some(waiter_runtime::config::DEFAULT_DATABASE_URL),
        );
        let db_max_connections: u32 = env.parse("OUTBOUND_DB_MAX_CONNECTIONS", 16);
        let twilio_api_base = env.string("TWILIO_API_BASE", DEFAULT_TWILIO_API_BASE);
        let public_url = env.optional("PUBLIC_URL");
        let explicit_callback = env.optional("OUTBOUND_STATUS_CALLBACK_URL");
        let max_attempts: i64 = env.parse("OUTBOUND_MAX_ATTEMPTS", 8);
        let timeout_ms: u64 = env.parse("OUTBOUND_HTTP_TIMEOUT_MS", 10_000);
        let rate_wait_ms: u64 = env.parse("OUTBOUND_RATE_LIMIT_WAIT_MS", 1_000);
        let secret_keys = env.secret_keys();
        let webhook_attempts: u32 = env.parse("WEBHOOK_MAX_ATTEMPTS", 8);
        let webhook_timeout_ms: u64 = env.parse("WEBHOOK_HTTP_TIMEOUT_MS", 10_000);

        if !is_http_url(&twilio_api_base) {
            env.problem(format!(
                "TWILIO_API_BASE={twilio_api_base:?} must be an http(s) URL"
            ));
        }
        if let Some(url) = &explicit_callback {
            if !is_http_url(url) {
                env.problem(format!(
                    "OUTBOUND_STATUS_CALLBACK_URL={url:?} must be an http(s) URL"
                ));
            }
        }
        if let Some(url) = &public_url {
            if !is_http_url(url) {
                env.problem(format!("PUBLIC_URL={url:?} must be an http(s) URL"));
            }
        }
        if !(1..=1000).contains(&max_attempts) {
            env.problem(format!(
                "OUTBOUND_MAX_ATTEMPTS must be between 1 and 1000, got {max_attempts}"
            ));
        }
        // That it fits in the ack wait is checked against the bus's
        // settings: `Config::fits_ack_wait`.
        if !(100..=120_000).contains(&timeout_ms) {
            env.problem(format!(
                "OUTBOUND_HTTP_TIMEOUT_MS must be between 100 and 120000, got {timeout_ms}"
            ));
        }
        if rate_wait_ms > 5_000 {
            env.problem(format!(
                "OUTBOUND_RATE_LIMIT_WAIT_MS must be at most 5000, got {rate_wait_ms}"
            ));
        }
        if !(1..=100).contains(&webhook_attempts) {
            env.problem(format!(
                "WEBHOOK_MAX_ATTEMPTS must be between 1 and 100, got {webhook_attempts}"
            ));
        }
        if !(100..=60_000).contains(&webhook_timeout_ms) {
            env.problem(format!(
                "WEBHOOK_HTTP_TIMEOUT_MS must be between 100 and 60000, got {webhook_timeout_ms}"
            ));
        }
        if db_max_connections == 0 {
            env.problem("OUTBOUND_DB_MAX_CONNECTIONS must be at least 1");
        }
        env.finish()?;
        Ok(Config {
            ops_addr,
            database_url,
            db_max_connections,
            twilio_api_base: twilio_api_base.trim_end_matches('/').to_string(),
            status_callback_url: status_callback_url(
                public_url.as_deref(),
                explicit_callback.as_deref(),
            ),
            max_attempts,
            http_timeout: Duration::from_millis(timeout_ms),
            restaurant_cache_ttl: Duration::from_secs(30),
            rate_limit_wait: Duration::from_millis(rate_wait_ms),
            missing_row_attempts: 5,
            unknown_sid_attempts: 10,
            secret_keys: secret_keys.expect("a missing key is a configuration problem"),
            webhooks: WebhookSettings {
                max_attempts: webhook_attempts,
                timeout: Duration::from_millis(webhook_timeout_ms),
            },
        })
    }

    /// Defaults for tests: ops on 127.0.0.1:0, Twilio at `twilio_api_base`,
    /// no status callback URL.
    pub fn for_tests(twilio_api_base: &str) -> Config {
        Config {
            ops_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: SecretString::from(waiter_runtime::config::DEFAULT_DATABASE_URL),
            db_max_connections: 8,
            twilio_api_base: twilio_api_base.trim_end_matches('/').to_string(),
            status_callback_url: None,
            max_attempts: 8,
            http_timeout: Duration::from_secs(10),
            restaurant_cache_ttl: Duration::from_secs(30),
            rate_limit_wait: Duration::from_secs(1),
            missing_row_attempts: 5,
            unknown_sid_attempts: 10,
            secret_keys: Keyring::for_tests().clone(),
            webhooks: WebhookSettings {
                max_attempts: 8,
                timeout: Duration::from_secs(5),
            },
        }
    }
}

impl Config {
    /// One attempt at a send (the rate-limit wait, the Messages API call,
    /// recording the sid) must fit in the ack wait. Progress acks keep a
    /// longer one alive, but if they cannot reach the server (a NATS
    /// blip) a send that outlasts the ack wait could be handed out again
    /// mid-send and leave twice.
    pub fn fits_ack_wait(&self, ack_wait: Duration) -> Result<(), ConfigError> {
        let attempt = self.http_timeout + self.rate_limit_wait + send::RECORD_SID_BUDGET;
        let mut problems = vec![];
        if self.webhooks.timeout >= ack_wait {
            problems.push(format!(
                "WEBHOOK_HTTP_TIMEOUT_MS ({} ms) must be less than NATS_ACK_WAIT_MS ({} ms)",
                self.webhooks.timeout.as_millis(),
                ack_wait.as_millis()
            ));
        }
        if attempt >= ack_wait {
            problems.push(format!(
                "OUTBOUND_HTTP_TIMEOUT_MS ({} ms) + OUTBOUND_RATE_LIMIT_WAIT_MS ({} ms) + {} ms to \
                 record the sid must be less than NATS_ACK_WAIT_MS ({} ms): lower the timeout or \
                 raise the ack wait",
                self.http_timeout.as_millis(),
                self.rate_limit_wait.as_millis(),
                send::RECORD_SID_BUDGET.as_millis(),
                ack_wait.as_millis()
            ));
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(ConfigError { problems }),
        }
    }
}

fn is_http_url(url: &str) -> bool {
    let url = url.trim();
    (url.starts_with("http://") || url.starts_with("https://")) && url.len() > "https://".len()
}

/// The StatusCallback URL: the explicit one, else ingest's status endpoint
/// under the public URL.
pub fn status_callback_url(public_url: Option<&str>, explicit: Option<&str>) -> Option<String> {
    if let Some(url) = explicit.map(str::trim).filter(|u| !u.is_empty()) {
        return Some(url.to_string());
    }
    public_url
        .map(|u| u.trim().trim_end_matches('/'))
        .filter(|u| !u.is_empty())
        .map(|u| format!("{u}{STATUS_CALLBACK_PATH}"))
}

/// Why the stage could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("cannot serve /health and /metrics on {addr}: {reason}")]
    Ops { addr: SocketAddr, reason: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Ensures the streams, starts the send workers (keyed lanes over the
/// OUTBOUND partitions this replica owns), the status-callback worker and
/// the ops server, and returns at once. `done` finishes once `shutdown`
/// fired and in-flight messages are settled or handed back.
pub async fn start(
    config: Config,
    bus: Bus,
    pool: PgPool,
    shutdown: CancellationToken,
) -> Result<Running, Error> {
    config.fits_ack_wait(bus.ack_wait())?;
    bus.ensure_streams(&[
        StreamKind::Outbound,
        StreamKind::Events,
        StreamKind::DeadLetter,
        StreamKind::Ingest,
        StreamKind::Webhooks,
    ])
    .await?;
    let twilio = TwilioClient::new(&config.twilio_api_base, config.http_timeout)
        .map_err(Error::HttpClient)?;
    let tenants = Arc::new(Tenants::new(
        pool.clone(),
        config.restaurant_cache_ttl,
        config.secret_keys.clone(),
    ));
    let worker = Worker::new(&bus, send::STAGE);
    let sender = Arc::new(
        SendHandler::new(
            pool.clone(),
            bus.clone(),
            twilio,
            tenants,
            SendSettings {
                status_callback_url: config.status_callback_url.clone(),
                max_attempts: config.max_attempts,
                missing_row_attempts: config.missing_row_attempts,
                rate_limit_wait: config.rate_limit_wait,
            },
        )
        .sharing(worker.limit_share()),
    );
    let hooks = WebhookHandler::new(
        pool.clone(),
        config.secret_keys.clone(),
        config.webhooks.clone(),
    )
    .map_err(Error::HttpClient)?;
    let statuses = Arc::new(StatusHandler::new(
        pool.clone(),
        bus.clone(),
        config.unknown_sid_attempts,
    ));

    let health = Health::new("outbound")
        .bus(&bus)
        .postgres(&Probe::start(pool, shutdown.clone()))
        .worker(worker.status());
    let (addr, ops) = waiter_runtime::ops::serve(config.ops_addr, health, shutdown.clone())
        .map_err(|e| Error::Ops {
            addr: config.ops_addr,
            reason: e.to_string(),
        })?;
    worker.status().set_ops_addr(addr);

    let tasks = TaskTracker::new();
    {
        let (worker, shutdown) = (worker.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = worker
                .run_lanes(StreamKind::Outbound, sender, shutdown)
                .await
            {
                tracing::error!(error = %e, "send workers stopped");
            }
        });
    }
    {
        let (worker, shutdown) = (worker.group(webhooks::STAGE), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = worker
                .run_lanes(StreamKind::Webhooks, hooks, shutdown)
                .await
            {
                tracing::error!(error = %e, "webhook workers stopped");
            }
        });
    }
    {
        let spec = ConsumerSpec::shared(
            StreamKind::Ingest,
            status::CONSUMER,
            bus.topology().status_callback(),
            status::IN_FLIGHT,
        );
        let (worker, shutdown) = (worker.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = worker.run_shared_batches(spec, statuses, shutdown).await {
                tracing::error!(error = %e, "status worker stopped");
            }
        });
    }
    tasks.close();
    let done = tokio::spawn(async move {
        tasks.wait().await;
        let _ = ops.await;
        tracing::info!("outbound stopped");
    });
    tracing::info!(%addr, "outbound started");
    Ok(Running { addr, done })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_callback_url_comes_from_the_public_url_unless_given() {
        assert_eq!(status_callback_url(None, None), None);
        assert_eq!(
            status_callback_url(Some("https://waiter.example/"), None).as_deref(),
            Some("https://waiter.example/whatsapp/status")
        );
        assert_eq!(
            status_callback_url(Some("https://waiter.example"), Some("https://cb.example/x"))
                .as_deref(),
            Some("https://cb.example/x")
        );
        assert_eq!(status_callback_url(Some("  "), Some("")), None);
    }

    #[test]
    fn urls_must_be_http() {
        assert!(is_http_url("https://api.twilio.com"));
        assert!(is_http_url("http://127.0.0.1:4010"));
        assert!(!is_http_url("ftp://x"));
        assert!(!is_http_url("https://"));
    }

    #[test]
    fn a_send_must_fit_in_the_ack_wait() {
        let config = Config::for_tests("http://127.0.0.1:1");
        assert!(config.fits_ack_wait(Duration::from_secs(30)).is_ok());
        let err = config
            .fits_ack_wait(Duration::from_secs(10))
            .expect_err("10 s + 1 s + 3.2 s do not fit in 10 s");
        let text = err.to_string();
        assert!(
            text.contains("OUTBOUND_HTTP_TIMEOUT_MS (10000 ms)"),
            "{text}"
        );
        assert!(text.contains("NATS_ACK_WAIT_MS (10000 ms)"), "{text}");
    }

    #[test]
    fn a_webhook_post_must_fit_in_the_ack_wait_too() {
        let mut config = Config::for_tests("http://127.0.0.1:1");
        config.webhooks.timeout = Duration::from_secs(30);
        let text = config
            .fits_ack_wait(Duration::from_secs(30))
            .expect_err("a 30 s post does not fit in 30 s")
            .to_string();
        assert!(
            text.contains("WEBHOOK_HTTP_TIMEOUT_MS (30000 ms)"),
            "{text}"
        );
        assert!(!text.contains("OUTBOUND_HTTP_TIMEOUT_MS"), "{text}");
    }

    #[test]
    fn the_database_url_never_prints() {
        let mut config = Config::for_tests("http://127.0.0.1:1");
        config.database_url = SecretString::from("postgres://u:hunter2@db/waiter");
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
