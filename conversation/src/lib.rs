//! Conversation: owns conversations and messages and runs the bot.
//!
//! Every input of a conversation (customer messages, staff replies, bot
//! toggles, order changes) arrives on that conversation's partition of the
//! CONV stream, whose one owning replica hands them to the handler in
//! arrival order (the shared worker loop in `waiter_nats::worker`). Each input is applied once (`applied_inputs`),
//! in its window's transaction (a savepoint each when one fails), with the
//! bot's decision and the effects it stages in the outbox (`batch`); the
//! effects are published before the input is acknowledged.

mod batch;
pub mod catalog;
pub mod handler;
pub mod store;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use waiter_nats::{Bus, BusError, StreamKind, Worker};
use waiter_runtime::{db::Probe, ConfigError, EnvReader, Health, Running};

#[derive(Debug, Clone)]
pub struct Config {
    pub ops_addr: SocketAddr,
    pub database_url: String,
    /// How long a restaurant's menu and profile are cached.
    pub catalog_ttl: Duration,
    /// Effects left unpublished this long are published by the sweep.
    pub outbox_sweep_after: Duration,
    /// How often due reminders (rating "Later") are looked for.
    pub reminder_poll: Duration,
    /// `CONVERSATION_DB_MAX_CONNECTIONS`: the pool. Each partition this
    /// replica owns uses one connection at a time (never a second inside
    /// its transaction), plus the outbox sweep and the reminders: by
    /// default partitions + 2, at most 32.
    pub db_max_connections: Option<u32>,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut env = EnvReader::new();
        let config = Self {
            ops_addr: env.addr("CONVERSATION_OPS_ADDR", "0.0.0.0:9102"),
            database_url: env.string("DATABASE_URL", waiter_runtime::config::DEFAULT_DATABASE_URL),
            catalog_ttl: Duration::from_millis(env.parse("CONVERSATION_CATALOG_TTL_MS", 10_000)),
            outbox_sweep_after: Duration::from_millis(env.parse("OUTBOX_SWEEP_AFTER_MS", 10_000)),
            reminder_poll: Duration::from_millis(env.parse("CONVERSATION_REMINDER_POLL_MS", 5_000)),
            db_max_connections: env
                .optional("CONVERSATION_DB_MAX_CONNECTIONS")
                .map(|_| env.parse("CONVERSATION_DB_MAX_CONNECTIONS", 16u32)),
        };
        if config.db_max_connections == Some(0) {
            env.problem("CONVERSATION_DB_MAX_CONNECTIONS must be at least 1");
        }
        env.finish()?;
        Ok(config)
    }

    pub fn for_tests(database_url: &str) -> Self {
        Self {
            ops_addr: "127.0.0.1:0".parse().expect("addr"),
            database_url: database_url.to_string(),
            catalog_ttl: Duration::from_secs(2),
            outbox_sweep_after: Duration::from_secs(2),
            reminder_poll: Duration::from_millis(200),
            db_max_connections: None,
        }
    }
}

impl Config {
    /// The pool size for a deployment of `partitions` partitions.
    pub fn pool_size(&self, partitions: u16) -> u32 {
        self.db_max_connections
            .unwrap_or_else(|| (u32::from(partitions) + 2).min(32))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
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
) -> Result<Running, StartError> {
    bus.ensure_streams(&[
        StreamKind::Conversation,
        StreamKind::Outbound,
        StreamKind::Order,
        StreamKind::Events,
    ])
    .await?;
    let tasks = TaskTracker::new();
    let catalogs = catalog::Catalogs::new(pool.clone(), config.catalog_ttl);
    let (marks, write_marks) = waiter_nats::outbox::Marks::start(pool.clone(), shutdown.clone());
    tasks.spawn(write_marks);
    let conversations = Arc::new(handler::Conversations::new(
        bus.clone(),
        pool.clone(),
        catalogs,
        marks,
    ));
    let worker = Worker::new(&bus, "conversation");
    {
        let (worker, shutdown) = (worker.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = worker
                .run_ordered(StreamKind::Conversation, conversations, shutdown)
                .await
            {
                tracing::error!(error = %e, "conversation workers stopped");
            }
        });
    }
    tasks.spawn(waiter_nats::outbox::run_sweeper(
        pool.clone(),
        bus.clone(),
        config.outbox_sweep_after,
        shutdown.clone(),
    ));
    tasks.spawn(fire_reminders(
        pool.clone(),
        bus.clone(),
        config.reminder_poll,
        shutdown.clone(),
    ));
    tasks.close();
    let health = Health::new("conversation")
        .bus(&bus)
        .postgres(&Probe::start(pool, shutdown.clone()))
        .worker(worker.status());
    let running = Running::with_ops(config.ops_addr, health, tasks, shutdown)
        .map_err(|e| StartError::Ops(e.to_string()))?;
    worker.status().set_ops_addr(running.addr);
    tracing::info!(addr = %running.addr, "conversation running");
    Ok(running)
}

/// Feeds due reminders back into their conversations as order notices; the
/// bot decides what to say (it re-asks for a rating once). With several
/// replicas a reminder may be published twice: its envelope id makes the
/// second one a duplicate.
pub async fn fire_reminders(pool: PgPool, bus: Bus, every: Duration, shutdown: CancellationToken) {
    use waiter_nats::{
        messages::{ConversationInput, OrderNotice, OrderStatus},
        Envelope,
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let due = match store::due_reminders(&pool, 100).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read reminders");
                continue;
            }
        };
        for r in due {
            let status = OrderStatus::parse(&r.order_status).unwrap_or(OrderStatus::Delivered);
            // Only a still-unrated delivered order is worth a reminder.
            if status == OrderStatus::Delivered {
                let topology = bus.topology();
                let subject = topology
                    .conversation(topology.conversation_partition(&r.restaurant_id, &r.customer));
                let notice = ConversationInput::OrderChanged(OrderNotice {
                    restaurant_id: r.restaurant_id,
                    conversation_id: r.conversation_id,
                    order_id: r.order_id,
                    order_number: r.order_number,
                    status,
                    previous: Some(status),
                    rating: None,
                    command_id: r.id,
                });
                let envelope = Envelope::new(
                    format!("reminder:{}", r.id),
                    format!("reminder:{}", r.id),
                    notice,
                );
                if let Err(e) = bus.publish(subject, &envelope).await {
                    tracing::warn!(error = %e, "cannot publish reminder; will retry");
                    continue;
                }
            }
            if let Err(e) = store::reminder_fired(&pool, r.id).await {
                tracing::warn!(error = %e, "cannot mark reminder fired");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_follows_the_partitions_unless_configured() {
        let config = Config::for_tests("postgres://unused");
        assert_eq!(config.pool_size(4), 6);
        assert_eq!(config.pool_size(16), 18);
        assert_eq!(config.pool_size(256), 32, "capped");
        let fixed = Config {
            db_max_connections: Some(3),
            ..config
        };
        assert_eq!(fixed.pool_size(64), 3);
    }
}
