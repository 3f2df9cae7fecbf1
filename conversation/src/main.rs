use std::time::Duration;

use anyhow::Context;
use waiter_nats::{Bus, BusConfig};
use waiter_runtime::{db, telemetry, Shutdown};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("conversation");
    let config = conversation::Config::from_env().unwrap_or_else(|e| {
        eprintln!("conversation: {e}");
        std::process::exit(2);
    });
    let bus_config = BusConfig::from_env().unwrap_or_else(|e| {
        eprintln!("conversation: invalid configuration:\n  - {e}");
        std::process::exit(2);
    });
    let shutdown = Shutdown::install();
    let bus = Bus::connect(&bus_config, "conversation")
        .await
        .context("connecting to NATS")?;
    let pool = db::lazy_pool(
        &config.database_url,
        config.pool_size(bus_config.partitions),
    )
    .context("DATABASE_URL")?;
    let running = conversation::start(config, bus, pool, shutdown.token())
        .await
        .context("starting conversation")?;
    shutdown.token().cancelled().await;
    Shutdown::drain(running.done, Duration::from_secs(30)).await;
    tracing::info!("conversation stopped");
    Ok(())
}
