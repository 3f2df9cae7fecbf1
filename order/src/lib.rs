//! Order: owns the orders table and the state machine.
//!
//! Commands arrive on the ORDER stream, partitioned by order id, from the
//! bot (place, confirm, cancel, rate) and from dashboards (status changes,
//! with a reply inbox for the HTTP answer). Each is validated by the pure
//! [`machine`], recorded with who made it, published as a dashboard event,
//! and told to the customer through their conversation — all through the
//! outbox, so a command is applied once and its effects are never lost;
//! order events also go to the restaurant's webhook endpoints
//! ([`webhooks`]).

pub mod handler;
pub mod machine;
pub mod opening;
pub mod store;
pub mod webhooks;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use waiter_nats::{Bus, BusError, StreamKind, Worker};
use waiter_runtime::{db::Probe, ConfigError, EnvReader, Health, Running};

#[derive(Debug, Clone)]
pub struct Config {
    pub ops_addr: SocketAddr,
    pub database_url: String,
    /// Effects left unpublished this long are published by the sweep.
    pub outbox_sweep_after: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut env = EnvReader::new();
        let config = Self {
            ops_addr: env.addr("ORDER_OPS_ADDR", "0.0.0.0:9103"),
            database_url: env.string("DATABASE_URL", waiter_runtime::config::DEFAULT_DATABASE_URL),
            outbox_sweep_after: Duration::from_millis(env.parse("OUTBOX_SWEEP_AFTER_MS", 10_000)),
        };
        env.finish()?;
        Ok(config)
    }

    pub fn for_tests(database_url: &str) -> Self {
        Self {
            ops_addr: "127.0.0.1:0".parse().expect("addr"),
            database_url: database_url.to_string(),
            outbox_sweep_after: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
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
) -> Result<Running, OrderError> {
    bus.ensure_streams(&[
        StreamKind::Order,
        StreamKind::Conversation,
        StreamKind::Events,
        StreamKind::Webhooks,
    ])
    .await?;
    let tasks = TaskTracker::new();
    let orders = Arc::new(handler::Orders::new(bus.clone(), pool.clone()));
    let worker = Worker::new(&bus, "order");
    {
        let (worker, shutdown) = (worker.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = worker
                .run_ordered(StreamKind::Order, orders, shutdown)
                .await
            {
                tracing::error!(error = %e, "order workers stopped");
            }
        });
    }
    tasks.spawn(waiter_nats::outbox::run_sweeper(
        pool.clone(),
        bus.clone(),
        config.outbox_sweep_after,
        shutdown.clone(),
    ));
    tasks.close();
    let health = Health::new("order")
        .bus(&bus)
        .postgres(&Probe::start(pool, shutdown.clone()))
        .worker(worker.status());
    let running = Running::with_ops(config.ops_addr, health, tasks, shutdown)
        .map_err(|e| OrderError::Ops(e.to_string()))?;
    worker.status().set_ops_addr(running.addr);
    tracing::info!(addr = %running.addr, "order running");
    Ok(running)
}
