use std::time::Duration;

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};

/// A pool that connects lazily: a stage starts (and keeps its NATS side
/// running) while PostgreSQL is down; queries fail fast and the worker
/// retries the message later.
pub fn lazy_pool(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .idle_timeout(Some(Duration::from_secs(300)))
        .connect_lazy_with(options))
}
