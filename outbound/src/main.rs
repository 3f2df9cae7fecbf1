//! The outbound stage binary: configuration, connections, then the library.

use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use waiter_nats::{Bus, BusConfig};
use waiter_runtime::{db, Shutdown};

/// How long in-flight sends may take to finish after a shutdown signal.
const DRAIN_GRACE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    waiter_runtime::telemetry::init("outbound");
    let config = match outbound::Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let bus_config = match BusConfig::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("invalid configuration:\n  - {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = config.fits_ack_wait(bus_config.ack_wait) {
        eprintln!("{e}");
        std::process::exit(2);
    }
    let bus = Bus::connect(&bus_config, "waiter-outbound").await?;
    let pool = db::lazy_pool(
        config.database_url.expose_secret(),
        config.db_max_connections,
    )
    .context("DATABASE_URL")?;
    let shutdown = Shutdown::install();
    let token = shutdown.token();
    let running = outbound::start(config, bus, pool, token.clone()).await?;
    tracing::info!(addr = %running.addr, "outbound ready");
    let mut done = running.done;
    tokio::select! {
        result = &mut done => result.context("outbound task")?,
        _ = token.cancelled() => {
            match Shutdown::drain(&mut done, DRAIN_GRACE).await {
                Some(result) => result.context("outbound task")?,
                None => anyhow::bail!("in-flight work did not finish within {DRAIN_GRACE:?}"),
            }
        }
    }
    Ok(())
}
