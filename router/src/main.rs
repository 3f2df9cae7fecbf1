use std::time::Duration;

use anyhow::Context;
use waiter_nats::{Bus, BusConfig};
use waiter_runtime::{db, telemetry, Shutdown};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("router");
    let config = router::Config::from_env().unwrap_or_else(|e| {
        eprintln!("router: {e}");
        std::process::exit(2);
    });
    let bus_config = BusConfig::from_env().unwrap_or_else(|e| {
        eprintln!("router: invalid configuration:\n  - {e}");
        std::process::exit(2);
    });
    let shutdown = Shutdown::install();
    let bus = Bus::connect(&bus_config, "router")
        .await
        .context("connecting to NATS")?;
    let pool = db::lazy_pool(&config.database_url, 16).context("DATABASE_URL")?;
    let running = router::start(config, bus, pool, shutdown.token())
        .await
        .context("starting router")?;
    shutdown.token().cancelled().await;
    Shutdown::drain(running.done, Duration::from_secs(30)).await;
    tracing::info!("router stopped");
    Ok(())
}
