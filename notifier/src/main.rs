//! The notifier binary: configuration, connections, then the library.

use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use waiter_nats::Bus;
use waiter_runtime::{db, telemetry, Shutdown};

/// How long open sockets get to close after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(15);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init("notifier");
    let config = match notifier::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("notifier: {e}");
            std::process::exit(2);
        }
    };
    let bus = Bus::connect(&config.bus, "notifier").await?;
    let pool = db::lazy_pool(config.database_url.expose_secret(), config.db_connections)
        .context("DATABASE_URL")?;
    let shutdown = Shutdown::install();
    let token = shutdown.token();
    let running = notifier::start(config, bus, pool, token.clone()).await?;
    let mut done = running.done;
    tokio::select! {
        result = &mut done => {
            result.context("notifier task failed")?;
            return Ok(());
        }
        _ = token.cancelled() => {}
    }
    match Shutdown::drain(done, DRAIN).await {
        Some(result) => result.context("notifier task failed")?,
        None => {
            tracing::warn!("sockets did not close within {DRAIN:?}; exiting anyway");
            std::process::exit(1);
        }
    }
    Ok(())
}
