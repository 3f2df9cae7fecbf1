//! What every stage binary shares: typed configuration from the
//! environment, telemetry, the Prometheus recorder, the ops HTTP routes
//! (`/health`, `/ready`, `/status`, `/metrics`), graceful shutdown, the
//! database pool and its readiness probe.

pub mod config;
pub mod db;
pub mod http;
pub mod ops;
pub mod shutdown;
pub mod telemetry;

pub use config::{ConfigError, EnvReader};
pub use ops::Health;
pub use shutdown::Shutdown;

/// A started stage: the address it serves on (its HTTP port, or its ops
/// port) and the task that finishes once shutdown has drained its work.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub done: tokio::task::JoinHandle<()>,
}

impl Running {
    /// A pulling stage: serves the ops routes on `ops_addr` until
    /// shutdown; `done` finishes once the stage's `tasks` (closed by the
    /// caller) and the ops server have.
    pub fn with_ops(
        ops_addr: std::net::SocketAddr,
        health: Health,
        tasks: tokio_util::task::TaskTracker,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<Running, warp::Error> {
        let (addr, ops) = ops::serve(ops_addr, health, shutdown)?;
        let done = tokio::spawn(async move {
            tasks.wait().await;
            let _ = ops.await;
        });
        Ok(Running { addr, done })
    }
}
