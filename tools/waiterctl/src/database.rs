//! `waiterctl migrate` and `waiterctl seed-demo`.

use anyhow::Context;
use sqlx::{Connection, PgConnection};

use crate::{connect, output::Out};

/// Creates the database if needed, applies the migrations, and seals any
/// auth token an older deployment stored in plain text.
pub async fn migrate() -> anyhow::Result<()> {
    let url = connect::database_url();
    let (base, db) = url
        .rsplit_once('/')
        .map(|(b, d)| (b.to_string(), d.split('?').next().unwrap_or("").to_string()))
        .context("DATABASE_URL has no database name")?;
    if PgConnection::connect(&url).await.is_err() {
        let mut admin = PgConnection::connect(&format!("{base}/postgres"))
            .await
            .with_context(|| format!("connecting to PostgreSQL ({})", connect::redact_url(&url)))?;
        let ok_name = !db.is_empty() && db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        anyhow::ensure!(ok_name, "database name {db:?} must be alphanumeric");
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut admin)
            .await?;
        eprintln!("created database {db}");
    }
    let pool = connect::pool().await?;
    waiter_migrations::MIGRATOR
        .run(&pool)
        .await
        .context("applying migrations")?;
    eprintln!("migrations applied to {}", connect::redact_url(&url));
    let census = waiter_migrations::restaurants::token_census(&pool).await?;
    if census.plaintext > 0 {
        let keys = connect::keys().context(
            "some auth tokens are still stored in plain text and must be sealed: set WAITER_SECRET_KEY",
        )?;
        let todo = waiter_migrations::restaurants::needing_reseal(&pool, keys.primary_id()).await?;
        let mut sealed = 0;
        for (id, _) in todo {
            sealed += usize::from(waiter_migrations::restaurants::reseal(&pool, &keys, id).await?);
        }
        eprintln!("sealed {sealed} auth token(s) that were stored in plain text");
    }
    Ok(())
}

pub async fn seed_demo(
    number: &str,
    account_sid: &str,
    auth_token: &str,
    out: Out,
) -> anyhow::Result<()> {
    let pool = connect::pool().await?;
    let keys = connect::keys()?;
    let id =
        waiter_migrations::demo::seed_demo(&pool, &keys, number, account_sid, auth_token).await?;
    connect::publish_account(&pool, account_sid).await;
    out.done(
        &id.to_string(),
        &serde_json::json!({ "id": id, "slug": waiter_migrations::demo::DEMO_SLUG }),
    );
    Ok(())
}
