//! What every stage binary shares: typed configuration from the
//! environment, telemetry, the Prometheus recorder, the ops HTTP routes
//! (`/health`, `/metrics`), graceful shutdown and the database pool.

pub mod config;
pub mod db;
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
