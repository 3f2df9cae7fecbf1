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
        // No ping before every acquire: it doubled the round trips of every
        // autocommit statement. A connection that died idle fails its next
        // query, which the worker retries as transient and the pool replaces.
        .test_before_acquire(false)
        .connect_lazy_with(options))
}

/// Whether PostgreSQL answers, probed every [`Probe::EVERY`] in the
/// background (for `/ready`, whose checks must not block).
#[derive(Clone)]
pub struct Probe {
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Probe {
    pub const EVERY: Duration = Duration::from_secs(2);

    /// Starts probing `pool` until `shutdown`.
    pub fn start(pool: PgPool, shutdown: tokio_util::sync::CancellationToken) -> Probe {
        let probe = Probe {
            up: Default::default(),
        };
        let up = probe.up.clone();
        tokio::spawn(async move {
            loop {
                let ok = matches!(
                    tokio::time::timeout(Self::EVERY, sqlx::query("SELECT 1").execute(&pool)).await,
                    Ok(Ok(_))
                );
                up.store(ok, std::sync::atomic::Ordering::Relaxed);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Self::EVERY) => {}
                }
            }
        });
        probe
    }

    pub fn is_up(&self) -> bool {
        self.up.load(std::sync::atomic::Ordering::Relaxed)
    }
}
