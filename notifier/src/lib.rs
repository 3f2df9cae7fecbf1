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
//! own restaurant (admins see all), on every endpoint and channel. One feed
//! of the EVENTS stream per process ([`hub`]) serves every socket.

pub mod admission;
pub mod api;
pub mod auth;
pub mod catchup;
pub mod channels;
pub mod dashboard;
pub mod error;
pub mod feed;
pub mod figures;
pub mod hub;
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

pub use admission::AllowedOrigins;
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
    /// `NOTIFIER_WS_*` and `NOTIFIER_ALLOWED_ORIGINS` (see [`WsSettings`]).
    pub ws: WsSettings,
    /// `NATS_URL`, `WAITER_NAMESPACE`, ... (see [`BusConfig::from_env`]).
    pub bus: BusConfig,
    /// `NOTIFIER_HEADER_READ_TIMEOUT_MS`, `NOTIFIER_BODY_READ_TIMEOUT_MS`.
    pub timeouts: HttpTimeouts,
    /// `NOTIFIER_OPS_ADDR`: the ops routes on a port of this process alone
    /// (replicas share the public port with SO_REUSEPORT).
    pub ops_addr: Option<SocketAddr>,
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
        let ws = ws_settings(&mut env, addr);
        let timeouts = HttpTimeouts::from_env(&mut env, "NOTIFIER");
        let ops_addr = env.optional_addr("NOTIFIER_OPS_ADDR");
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
            ws,
            bus: bus.expect("checked above"),
            timeouts,
            ops_addr,
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
            ws: WsSettings::new(
                // Tests bind port 0 and reach the notifier directly or through
                // a proxy: loopback on any port.
                AllowedOrigins::parse_list("http://127.0.0.1:*,http://localhost:*")
                    .expect("valid origin"),
            ),
            bus,
            timeouts: HttpTimeouts::default(),
            ops_addr: None,
        }
    }
}

/// The WebSocket settings: every limit positive, the per-user cap within
/// the total, origins parsed.
fn ws_settings(env: &mut EnvReader, addr: SocketAddr) -> WsSettings {
    let origins = match (
        env.optional("NOTIFIER_ALLOWED_ORIGINS"),
        env.optional("NOTIFIER_PUBLIC_URL"),
    ) {
        (Some(list), _) => AllowedOrigins::parse_list(&list),
        (None, Some(url)) => AllowedOrigins::of_url(&url),
        (None, None) => Ok(AllowedOrigins::local(addr)),
    };
    let allowed_origins = origins.unwrap_or_else(|problem| {
        env.problem(problem);
        AllowedOrigins::local(addr)
    });
    let mut ws = WsSettings::new(allowed_origins);
    let positive = |env: &mut EnvReader, name: &str, default: u64| -> u64 {
        let value: u64 = env.parse(name, default);
        if value == 0 {
            env.problem(format!("{name} must be positive"));
            return default;
        }
        value
    };
    let ms = |d: Duration| d.as_millis() as u64;
    ws.queue = positive(env, "NOTIFIER_WS_QUEUE", ws.queue as u64) as usize;
    ws.ping_interval =
        Duration::from_millis(positive(env, "NOTIFIER_WS_PING_MS", ms(ws.ping_interval)));
    ws.write_timeout = Duration::from_millis(positive(
        env,
        "NOTIFIER_WS_WRITE_TIMEOUT_MS",
        ms(ws.write_timeout),
    ));
    ws.max_sockets = positive(env, "NOTIFIER_WS_MAX_SOCKETS", ws.max_sockets as u64) as usize;
    ws.max_sockets_per_user = positive(
        env,
        "NOTIFIER_WS_MAX_PER_USER",
        ws.max_sockets_per_user as u64,
    ) as usize;
    ws.max_channels = positive(env, "NOTIFIER_WS_MAX_CHANNELS", ws.max_channels as u64) as usize;
    ws.catchup_max = positive(env, "NOTIFIER_WS_CATCHUP_MAX", ws.catchup_max);
    ws.catchups_at_once = positive(
        env,
        "NOTIFIER_WS_CATCHUP_CONCURRENCY",
        ws.catchups_at_once as u64,
    ) as usize;
    if ws.max_sockets_per_user > ws.max_sockets {
        env.problem(format!(
            "NOTIFIER_WS_MAX_PER_USER ({}) must not exceed NOTIFIER_WS_MAX_SOCKETS ({})",
            ws.max_sockets_per_user, ws.max_sockets
        ));
    }
    ws
}

/// Raises the open-files limit as far as the hard limit allows and caps
/// the sockets to what then fits, so the cap answers 503 before `accept`
/// starts failing.
fn fit_open_files(max_sockets: usize) -> usize {
    /// Descriptors kept for NATS, PostgreSQL, REST requests and the rest.
    const RESERVE: u64 = 256;
    let wanted = max_sockets as u64 + RESERVE;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) if limit >= wanted => max_sockets,
        Ok(limit) => {
            let fits = limit.saturating_sub(RESERVE).max(1) as usize;
            tracing::warn!(
                open_files_limit = limit,
                configured = max_sockets,
                effective = fits,
                "NOTIFIER_WS_MAX_SOCKETS does not fit the open-files limit; capping it (raise LimitNOFILE / ulimit -n)"
            );
            fits
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-files limit; keeping NOTIFIER_WS_MAX_SOCKETS");
            max_sockets
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
    #[error("cannot serve the ops port {addr}: {source}")]
    Ops {
        addr: SocketAddr,
        #[source]
        source: warp::Error,
    },
}

/// What every request handler shares.
pub struct App {
    pub pool: PgPool,
    pub bus: Bus,
    pub auth: auth::Authenticator,
    pub command_timeout: Duration,
    pub ws: WsSettings,
    /// The process's one feed of the EVENTS stream and its fan-out.
    pub hub: Arc<hub::Hub>,
    /// The socket caps and what is open.
    pub sockets: Arc<admission::SocketLimits>,
    pub shutdown: CancellationToken,
    /// Open sockets and the feed's dispatcher, waited for on shutdown.
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
    let tracker = TaskTracker::new();
    let hub = hub::Hub::start(&bus, config.ws.catchups_at_once, shutdown.clone(), &tracker).await?;
    let max_sockets = fit_open_files(config.ws.max_sockets);
    let app = Arc::new(App {
        pool,
        auth: auth::Authenticator::new(config.jwt_secret.expose_secret().as_bytes()),
        command_timeout: config.command_timeout,
        sockets: admission::SocketLimits::new(max_sockets, config.ws.max_sockets_per_user),
        ws: config.ws.clone(),
        hub: hub.clone(),
        shutdown: shutdown.clone(),
        tracker,
        bus,
    });
    let health = Health::new("notifier")
        .bus(&app.bus)
        .postgres(&waiter_runtime::db::Probe::start(
            app.pool.clone(),
            shutdown.clone(),
        ))
        .check("feed", move || hub.is_bound());
    let ops = waiter_runtime::ops::serve_if(config.ops_addr, &health, &shutdown)
        .map_err(|(addr, source)| Error::Ops { addr, source })?;
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
        if let Some(ops) = ops {
            let _ = ops.await;
        }
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
        assert_eq!(
            config.ws.allowed_origins.as_slice(),
            ["http://127.0.0.1:8090", "http://localhost:8090"]
        );
        assert_eq!(config.ws.max_sockets, WsSettings::DEFAULT_MAX_SOCKETS);

        // The public URL sets the default origin; an explicit list wins.
        std::env::set_var("NOTIFIER_PUBLIC_URL", "https://dash.example.com/");
        let config = Config::from_env().unwrap();
        assert_eq!(
            config.ws.allowed_origins.as_slice(),
            ["https://dash.example.com"]
        );
        std::env::set_var(
            "NOTIFIER_ALLOWED_ORIGINS",
            "https://a.example, https://b.example:8443",
        );
        std::env::set_var("NOTIFIER_WS_MAX_SOCKETS", "100");
        std::env::set_var("NOTIFIER_WS_MAX_PER_USER", "4");
        std::env::set_var("NOTIFIER_WS_MAX_CHANNELS", "6");
        let config = Config::from_env().unwrap();
        assert_eq!(
            config.ws.allowed_origins.as_slice(),
            ["https://a.example", "https://b.example:8443"]
        );
        assert_eq!(
            (
                config.ws.max_sockets,
                config.ws.max_sockets_per_user,
                config.ws.max_channels
            ),
            (100, 4, 6)
        );

        // Every bad limit is reported at once.
        std::env::set_var("NOTIFIER_ALLOWED_ORIGINS", "dash.example.com");
        std::env::set_var("NOTIFIER_WS_MAX_PER_USER", "200");
        std::env::set_var("NOTIFIER_WS_QUEUE", "0");
        std::env::set_var("NOTIFIER_WS_CATCHUP_MAX", "lots");
        let err = Config::from_env().unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 4, "{text}");
        for expected in [
            "NOTIFIER_ALLOWED_ORIGINS",
            "must not exceed NOTIFIER_WS_MAX_SOCKETS",
            "NOTIFIER_WS_QUEUE must be positive",
            "NOTIFIER_WS_CATCHUP_MAX",
        ] {
            assert!(text.contains(expected), "{expected}: {text}");
        }
        for name in [
            "JWT_SECRET",
            "NOTIFIER_COMMAND_TIMEOUT_MS",
            "NOTIFIER_PUBLIC_URL",
            "NOTIFIER_ALLOWED_ORIGINS",
            "NOTIFIER_WS_MAX_SOCKETS",
            "NOTIFIER_WS_MAX_PER_USER",
            "NOTIFIER_WS_MAX_CHANNELS",
            "NOTIFIER_WS_QUEUE",
            "NOTIFIER_WS_CATCHUP_MAX",
        ] {
            std::env::remove_var(name);
        }
    }
}
