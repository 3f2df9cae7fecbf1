//! Copies each Twilio account's auth token from PostgreSQL to the tenant
//! directory on the bus, so ingest never needs the database. Tokens travel
//! sealed exactly as stored (the router holds no key and opens nothing).
//! Only changes are published; a changed token, or one sealed again under a
//! new key, is live within one sync interval.

use std::{collections::HashMap, time::Duration};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use waiter_nats::directory::{AccountEntry, Directory};
use waiter_secrets::Sealed;

pub async fn run(pool: PgPool, directory: Directory, every: Duration, shutdown: CancellationToken) {
    let mut published: HashMap<String, Sealed> = HashMap::new();
    loop {
        match sync_once(&pool, &directory, &mut published).await {
            Ok(0) => {}
            Ok(changed) => tracing::info!(changed, "tenant directory updated"),
            Err(e) => tracing::warn!(error = %e, "tenant directory sync failed; will retry"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// One pass; returns how many accounts changed.
pub async fn sync_once(
    pool: &PgPool,
    directory: &Directory,
    published: &mut HashMap<String, Sealed>,
) -> Result<usize, String> {
    let accounts = waiter_migrations::restaurants::accounts(pool)
        .await
        .map_err(|e| e.to_string())?;
    let mut changed = 0;
    let current: HashMap<String, Sealed> = accounts.into_iter().collect();
    for (sid, token) in &current {
        if published.get(sid) != Some(token) {
            directory
                .put(&AccountEntry {
                    account_sid: sid.clone(),
                    sealed_token: Some(token.clone()),
                })
                .await
                .map_err(|e| e.to_string())?;
            published.insert(sid.clone(), token.clone());
            changed += 1;
        }
    }
    let gone: Vec<String> = published
        .keys()
        .filter(|sid| !current.contains_key(*sid))
        .cloned()
        .collect();
    for sid in gone {
        directory.remove(&sid).await.map_err(|e| e.to_string())?;
        published.remove(&sid);
        changed += 1;
    }
    Ok(changed)
}
