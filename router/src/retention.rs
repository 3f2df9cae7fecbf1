//! The audit log is pruned by age: rows older than the retention are
//! deleted in small batches, so one prune never holds a long lock.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Rows deleted per statement.
const BATCH: i64 = 5_000;

/// Deletes audit rows and refusal counts older than `retention`; returns
/// how many rows went.
pub async fn prune(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    let cutoff =
        chrono::Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let mut removed = 0;
    for statement in [
        "DELETE FROM webhook_audit WHERE id IN \
            (SELECT id FROM webhook_audit WHERE received_at < $1 LIMIT $2)",
        "DELETE FROM webhook_refusals WHERE ctid IN \
            (SELECT ctid FROM webhook_refusals WHERE minute < $1 LIMIT $2)",
    ] {
        loop {
            let done = sqlx::query(statement)
                .bind(cutoff)
                .bind(BATCH)
                .execute(pool)
                .await?
                .rows_affected();
            removed += done;
            if done < BATCH as u64 {
                break;
            }
        }
    }
    Ok(removed)
}

/// Prunes every `every` until shutdown.
pub async fn run(pool: PgPool, retention: Duration, every: Duration, shutdown: CancellationToken) {
    loop {
        match prune(&pool, retention).await {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!("waiter_router_audit_pruned_total").increment(n);
                tracing::info!(rows = n, "pruned the webhook audit log");
            }
            Err(e) => tracing::warn!(error = %e, "cannot prune the webhook audit log; next time"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
