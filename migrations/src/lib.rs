//! Waiter's PostgreSQL schema and the few queries several stages share
//! (restaurants, the demo seed). Each stage keeps its own queries next to
//! its logic; the tables are listed in `docs/ARCHITECTURE.md` with their
//! owning stage.

pub mod demo;
pub mod restaurants;

pub use restaurants::{NewRestaurant, Restaurant};

/// The migrations under `migrations/sql`, embedded in every binary that
/// may need to run them (`waiterctl migrate`, the test harness).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./sql");
