//! The notifier stage: the dashboard edge.
//!
//! One HTTP port serves
//! - `GET /ws` — the WebSocket fan-out of a restaurant's events ([`ws`]),
//! - the REST API under `/api/restaurants/{id}/...` and its OpenAPI 3.1
//!   document at `/api/openapi.json` ([`api`]),
//! - the staff dashboard at `/`, its assets embedded ([`dashboard`]),
//! - `GET /health` and `GET /metrics`.
//!
//! Every request carries a dashboard JWT ([`auth`]); each user sees only its
//! own restaurant (admins see all), on every endpoint and channel.

pub mod api;
pub mod auth;
pub mod channels;
pub mod dashboard;
pub mod error;
pub mod feed;
pub mod paging;
pub mod store;
pub mod ws;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use waiter_nats::{Bus, BusConfig, BusError, StreamKind};
use waiter_runtime::{http::HttpTimeouts, ConfigError, EnvReader, Health};
use warp::Filter;

pub use waiter_runtime::Running;
pub use ws::WsSettings;

/// The shortest `JWT_SECRET` accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// The notifier's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// `NOTIFIER_ADDR`, default `0.0.0.0:8090`.
    pub addr: SocketAddr,
    /// `JWT_SECRET` (required, at least 16 bytes).
    pub jwt_secret: SecretString,
    /// `DATABASE_URL`.
    pub database_url: SecretString,
    /// `NOTIFIER_DB_CONNECTIONS`, default 10.
    pub db_connections: u32,
    /// `NOTIFIER_COMMAND_TIMEOUT_MS`, default 5000: how long a status
    /// change waits for the order stage.
    pub command_timeout: Duration,
    /// `NOTIFIER_WS_QUEUE`, `NOTIFIER_WS_SLOW_CLIENT_MS`, `NOTIFIER_WS_PING_MS`.
    pub ws: WsSettings,
    /// `NATS_URL`, `WAITER_NAMESPACE`, ... (see [`BusConfig::from_env`]).
    pub bus: BusConfig,
    /// `NOTIFIER_HEADER_READ_TIMEOUT_MS`, `NOTIFIER_BODY_READ_TIMEOUT_MS`.
    pub timeouts: HttpTimeouts,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        let mut env = EnvReader::new();
        let addr = env.addr("NOTIFIER_ADDR", "0.0.0.0:8090");
        let jwt_secret = env.secret("JWT_SECRET", None);
        let secret_len = jwt_secret.expose_secret().len();
        if secret_len > 0 && secret_len < MIN_SECRET_BYTES {
            env.problem(format!(
                "JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long (it is {secret_len})"
            ));
        }
        let database_url = env.secret(
            "DATABASE_URL",
            Some(waiter_runtime::config::DEFAULT_DATABASE_URL),
        );
        let db_connections: u32 = env.parse("NOTIFIER_DB_CONNECTIONS", 10);
        let timeout_ms: u64 = env.parse("NOTIFIER_COMMAND_TIMEOUT_MS", 5_000);
        if timeout_ms == 0 {
            env.problem("NOTIFIER_COMMAND_TIMEOUT_MS must be positive");
        }
        let defaults = WsSettings::default();
        let queue: usize = env.parse("NOTIFIER_WS_QUEUE", defaults.queue);
        let slow_ms: u64 = env.parse(
            "NOTIFIER_WS_SLOW_CLIENT_MS",
            defaults.slow_client_timeout.as_millis() as u64,
        );
        let ping_ms: u64 = env.parse(
            "NOTIFIER_WS_PING_MS",
            defaults.ping_interval.as_millis() as u64,
        );
        if queue == 0 || slow_ms == 0 || ping_ms == 0 {
            env.problem("NOTIFIER_WS_QUEUE, NOTIFIER_WS_SLOW_CLIENT_MS and NOTIFIER_WS_PING_MS must be positive");
        }
        let timeouts = HttpTimeouts::from_env(&mut env, "NOTIFIER");
        let bus = match BusConfig::from_env() {
            Ok(bus) => Some(bus),
            Err(problem) => {
                env.problem(problem);
                None
            }
        };
        env.finish()?;
        Ok(Config {
            addr,
            jwt_secret,
            database_url,
            db_connections,
            command_timeout: Duration::from_millis(timeout_ms),
            ws: WsSettings {
                queue,
                slow_client_timeout: Duration::from_millis(slow_ms),
                ping_interval: Duration::from_millis(ping_ms),
                write_timeout: defaults.write_timeout,
            },
            bus: bus.expect("checked above"),
            timeouts,
        })
    }

    /// A configuration for tests: port 0 on localhost, the given secret and bus.
    pub fn for_tests(jwt_secret: &str, bus: BusConfig) -> Config {
        Config {
            addr: "127.0.0.1:0".parse().expect("valid address"),
            jwt_secret: SecretString::from(jwt_secret.to_string()),
            database_url: SecretString::from(String::new()),
            db_connections: 4,
            command_timeout: Duration::from_secs(5),
            ws: WsSettings::default(),
            bus,
            timeouts: HttpTimeouts::default(),
        }
    }
}

/// Why the notifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What every request handler shares.
pub struct App {
    pub pool: PgPool,
    pub bus: Bus,
    pub auth: auth::Authenticator,
    pub command_timeout: Duration,
    pub ws: WsSettings,
    pub shutdown: CancellationToken,
    /// Open sockets and their feed pumps, waited for on shutdown.
    pub tracker: TaskTracker,
}

impl App {
    /// The most a REST request may take: a status change waits for the
    /// order stage, everything else for PostgreSQL and the bus.
    pub fn request_deadline(&self) -> Duration {
        self.command_timeout + Duration::from_secs(10)
    }
}

/// Ensures the streams the notifier publishes to and reads, binds the HTTP
/// port and serves until `shutdown`; `done` completes once every socket is
/// closed.
pub async fn start(
    config: Config,
    bus: Bus,
    pool: PgPool,
    shutdown: CancellationToken,
) -> Result<Running, Error> {
    bus.ensure_streams(&[
        StreamKind::Conversation,
        StreamKind::Order,
        StreamKind::Events,
    ])
    .await?;
    let app = Arc::new(App {
        pool,
        auth: auth::Authenticator::new(config.jwt_secret.expose_secret().as_bytes()),
        command_timeout: config.command_timeout,
        ws: config.ws.clone(),
        shutdown: shutdown.clone(),
        tracker: TaskTracker::new(),
        bus,
    });
    let client = app.bus.client().clone();
    let health = Health::new("notifier").check("nats", move || {
        client.connection_state() == async_nats::connection::State::Connected
    });
    let routes = api::routes(app.clone())
        .or(ws::route(app.clone()))
        .unify()
        .or(waiter_runtime::ops::routes(health))
        .or(dashboard::routes())
        .recover(error::recover);
    let (listener, addr) = waiter_runtime::http::bind(config.addr)
        .await
        .map_err(|source| Error::Bind {
            addr: config.addr,
            source,
        })?;
    let server = waiter_runtime::http::serve(listener, routes, config.timeouts, shutdown.clone());
    tracing::info!(%addr, "notifier listening");
    let tracker = app.tracker.clone();
    let done = tokio::spawn(async move {
        let _ = server.await;
        tracker.close();
        tracker.wait().await;
        tracing::info!("notifier stopped");
    });
    Ok(Running { addr, done })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test of this binary that touches the environment.
    #[test]
    fn config_requires_a_long_enough_secret() {
        std::env::remove_var("JWT_SECRET");
        std::env::set_var("NOTIFIER_COMMAND_TIMEOUT_MS", "2500");
        let err = Config::from_env().unwrap_err().to_string();
        assert!(err.contains("JWT_SECRET is required"), "{err}");

        std::env::set_var("JWT_SECRET", "short");
        std::env::set_var("NOTIFIER_ADDR", "nowhere");
        let err = Config::from_env().unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        let text = err.to_string();
        assert!(text.contains("at least 16 bytes"), "{text}");
        assert!(
            !text.contains("short"),
            "the secret must not be printed: {text}"
        );

        std::env::set_var("JWT_SECRET", "0123456789abcdef");
        std::env::remove_var("NOTIFIER_ADDR");
        let config = Config::from_env().unwrap();
        assert_eq!(config.addr, "0.0.0.0:8090".parse().unwrap());
        assert_eq!(config.command_timeout, Duration::from_millis(2500));
        assert!(!format!("{config:?}").contains("0123456789abcdef"));
        std::env::remove_var("JWT_SECRET");
        std::env::remove_var("NOTIFIER_COMMAND_TIMEOUT_MS");
    }
}
