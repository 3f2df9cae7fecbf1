use std::time::Duration;

use anyhow::Context;
use waiter_nats::{Bus, BusConfig};
use waiter_runtime::{telemetry, Shutdown};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("ingest");
    let config = ingest::Config::from_env().unwrap_or_else(|e| {
        eprintln!("ingest: {e}");
        std::process::exit(2);
    });
    let bus_config = BusConfig::from_env().unwrap_or_else(|e| {
        eprintln!("ingest: invalid configuration:\n  - {e}");
        std::process::exit(2);
    });
    let shutdown = Shutdown::install();
    let bus = Bus::connect(&bus_config, "ingest")
        .await
        .context("connecting to NATS")?;
    let running = ingest::start(config, bus, shutdown.token())
        .await
        .context("starting ingest")?;
    shutdown.token().cancelled().await;
    Shutdown::drain(running.done, Duration::from_secs(20)).await;
    tracing::info!("ingest stopped");
    Ok(())
}
