//! What commands connect to: PostgreSQL, NATS and the keyring, each with a
//! readable error.

use anyhow::Context;
use uuid::Uuid;
use waiter_migrations::Restaurant;
use waiter_nats::{
    directory::{AccountEntry, Directory},
    Bus, BusConfig,
};
use waiter_secrets::Keyring;

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| waiter_runtime::config::DEFAULT_DATABASE_URL.to_string())
}

pub async fn pool() -> anyhow::Result<sqlx::PgPool> {
    let url = database_url();
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(&url)
        .await
        .with_context(|| format!("connecting to PostgreSQL ({})", redact_url(&url)))
}

pub async fn bus() -> anyhow::Result<Bus> {
    let config = BusConfig::from_env().map_err(anyhow::Error::msg)?;
    Bus::connect(&config, "waiterctl")
        .await
        .context("connecting to NATS")
}

/// The keyring of `WAITER_SECRET_KEY`, for commands that seal or open tokens.
pub fn keys() -> anyhow::Result<Keyring> {
    Keyring::from_env().map_err(anyhow::Error::msg)
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The restaurant a `--restaurant` names: its slug or id.
pub async fn restaurant(pool: &sqlx::PgPool, name: &str) -> anyhow::Result<Restaurant> {
    let found = match name.parse::<Uuid>() {
        Ok(id) => waiter_migrations::restaurants::by_id(pool, id).await?,
        Err(_) => waiter_migrations::restaurants::by_slug(pool, name).await?,
    };
    found.with_context(|| format!("no restaurant {name:?} (see `waiterctl restaurant list`)"))
}

/// Puts an account's sealed token, as stored now, in the tenant directory
/// at once. The database is the truth and the router copies it to the
/// directory within seconds anyway, so a failure here is only a warning.
pub async fn publish_account(pool: &sqlx::PgPool, account_sid: &str) {
    if let Err(e) = try_publish_account(pool, account_sid).await {
        eprintln!(
            "warning: the tenant directory was not updated now ({e:#}); the router will copy the change within seconds"
        );
    }
}

async fn try_publish_account(pool: &sqlx::PgPool, account_sid: &str) -> anyhow::Result<()> {
    let sealed = waiter_migrations::restaurants::accounts(pool)
        .await?
        .into_iter()
        .find(|(sid, _)| sid == account_sid)
        .map(|(_, sealed)| sealed);
    let bus = bus().await?;
    let directory = Directory::open(&bus).await?;
    directory
        .put(&AccountEntry {
            account_sid: account_sid.to_string(),
            sealed_token: sealed,
        })
        .await?;
    Ok(())
}
