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
