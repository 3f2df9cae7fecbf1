//! Router: from an accepted webhook to a restaurant's conversation.
//!
//! Resolves the restaurant by the `To` number, refuses a request whose
//! Twilio account is not that restaurant's (a valid signature from account A
//! must not inject messages into restaurant B), applies the inbound limits,
//! writes the webhook audit log and forwards the message to the
//! conversation's partition. It also keeps the tenant directory that ingest
//! checks signatures with in step with the restaurants table.

pub mod audit;
mod batch;
pub mod directory_sync;
pub mod limits;
pub mod retention;
pub mod route;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use sqlx::PgPool;
use thiserror::Error;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use waiter_nats::{streams::ConsumerSpec, Bus, BusError, StreamKind, Worker};
use waiter_runtime::{db::Probe, ConfigError, EnvReader, Health, Running};

#[derive(Debug, Clone)]
pub struct Config {
    pub ops_addr: SocketAddr,
    pub database_url: String,
    /// How often the restaurants table is copied to the tenant directory.
    pub directory_sync: Duration,
    /// How long a restaurant lookup is cached.
    pub tenant_cache_ttl: Duration,
    /// Audit rows and refusal counts older than this are deleted.
    pub audit_retention: Duration,
    /// How often the audit log is pruned.
    pub audit_prune_every: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut env = EnvReader::new();
        let config = Self {
            ops_addr: env.addr("ROUTER_OPS_ADDR", "0.0.0.0:9101"),
            database_url: env.string("DATABASE_URL", waiter_runtime::config::DEFAULT_DATABASE_URL),
            directory_sync: Duration::from_millis(env.parse("ROUTER_DIRECTORY_SYNC_MS", 2_000)),
            tenant_cache_ttl: Duration::from_millis(env.parse("ROUTER_TENANT_CACHE_MS", 10_000)),
            audit_retention: Duration::from_secs(
                24 * 3600 * env.parse::<u64>("ROUTER_AUDIT_RETENTION_DAYS", 30),
            ),
            audit_prune_every: Duration::from_millis(env.parse("ROUTER_AUDIT_PRUNE_MS", 600_000)),
        };
        if config.audit_retention.is_zero() || config.audit_prune_every < Duration::from_secs(1) {
            env.problem("ROUTER_AUDIT_RETENTION_DAYS must be at least 1 and ROUTER_AUDIT_PRUNE_MS at least 1000");
        }
        env.finish()?;
        Ok(config)
    }

    pub fn for_tests(database_url: &str) -> Self {
        Self {
            ops_addr: "127.0.0.1:0".parse().expect("addr"),
            database_url: database_url.to_string(),
            directory_sync: Duration::from_millis(200),
            tenant_cache_ttl: Duration::from_millis(500),
            audit_retention: Duration::from_secs(30 * 24 * 3600),
            audit_prune_every: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Error)]
pub enum RouterError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("ops server: {0}")]
    Ops(String),
}

pub async fn start(
    config: Config,
    bus: Bus,
    pool: PgPool,
    shutdown: CancellationToken,
) -> Result<Running, RouterError> {
    bus.ensure_streams(&[
        StreamKind::Ingest,
        StreamKind::Conversation,
        StreamKind::Directory,
    ])
    .await?;
    let tasks = TaskTracker::new();
    let directory = waiter_nats::directory::Directory::open(&bus).await?;
    tasks.spawn(directory_sync::run(
        pool.clone(),
        directory,
        config.directory_sync,
        shutdown.clone(),
    ));

    let worker = Worker::new(&bus, "router");
    let router = Arc::new(
        route::Router::new(bus.clone(), pool.clone(), config.tenant_cache_ttl)
            .sharing(worker.limit_share()),
    );
    {
        let (worker, shutdown) = (worker.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = worker
                .run_ordered(StreamKind::Ingest, router, shutdown)
                .await
            {
                tracing::error!(error = %e, "router workers stopped");
            }
        });
    }
    // Before refusals were counted, each one was an envelope for the
    // `router-audit` consumer; it is gone (its subject is no longer written).
    if let Ok(stream) = bus
        .jetstream()
        .get_stream(bus.topology().stream_name(StreamKind::Ingest))
        .await
    {
        let _ = stream.delete_consumer("router-audit").await;
    }
    let refusals = Arc::new(audit::Refusals::new(pool.clone()));
    {
        let spec = ConsumerSpec::shared(
            StreamKind::Ingest,
            "router-refusals",
            bus.topology().refused_webhooks(),
            32,
        );
        let (worker, shutdown) = (worker.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = worker.run_shared(spec, refusals, shutdown).await {
                tracing::error!(error = %e, "refusal counts worker stopped");
            }
        });
    }
    tasks.spawn(retention::run(
        pool.clone(),
        config.audit_retention,
        config.audit_prune_every,
        shutdown.clone(),
    ));
    tasks.close();

    let health = Health::new("router")
        .bus(&bus)
        .postgres(&Probe::start(pool, shutdown.clone()))
        .worker(worker.status());
    let running = Running::with_ops(config.ops_addr, health, tasks, shutdown)
        .map_err(|e| RouterError::Ops(e.to_string()))?;
    worker.status().set_ops_addr(running.addr);
    tracing::info!(addr = %running.addr, "router running");
    Ok(running)
}
