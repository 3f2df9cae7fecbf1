//! `waiterctl secrets generate-key|status|rotate`: the keys that seal
//! Twilio auth tokens at rest (`WAITER_SECRET_KEY`, see `waiter-secrets`).
//!
//! Rotation: generate a key, put it first in `WAITER_SECRET_KEY` with the
//! old keys after it everywhere, run `secrets rotate` (every token is sealed
//! again under the new key and republished to the tenant directory), then
//! drop the old keys.

use clap::Subcommand;
use serde::Serialize;

use crate::{
    connect,
    output::{progress, Out},
};

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Print a new random key as a WAITER_SECRET_KEY entry (<id>:<base64>).
    GenerateKey {
        /// Its id (default: k<today's date>).
        #[arg(long)]
        id: Option<String>,
    },
    /// Which keys seal how many tokens, and whether each is loaded here.
    Status,
    /// Seal every token under the first key of WAITER_SECRET_KEY (and seal
    /// any token still stored in plain text); republish the tenant directory.
    Rotate,
}

#[derive(Serialize)]
struct KeyRow {
    key_id: String,
    tokens: i64,
    loaded: bool,
    primary: bool,
}

pub async fn run(cmd: SecretsCommand, out: Out) -> anyhow::Result<()> {
    match cmd {
        SecretsCommand::GenerateKey { id } => {
            let id = id.unwrap_or_else(|| format!("k{}", chrono::Utc::now().format("%Y%m%d")));
            anyhow::ensure!(
                waiter_secrets::is_valid_key_id(&id),
                "--id {id:?}: 1-32 characters of A-Z a-z 0-9 _ -"
            );
            let entry = waiter_secrets::generate_key_entry(&id);
            out.done(&entry, &serde_json::json!({ "entry": entry }));
            Ok(())
        }
        SecretsCommand::Status => {
            let pool = connect::pool().await?;
            let census = waiter_migrations::restaurants::token_census(&pool).await?;
            let keys = connect::keys().ok();
            let mut rows: Vec<KeyRow> = census
                .by_key
                .iter()
                .map(|(id, n)| KeyRow {
                    key_id: id.clone(),
                    tokens: *n,
                    loaded: keys.as_ref().is_some_and(|k| k.contains(id)),
                    primary: keys.as_ref().is_some_and(|k| k.primary_id() == id),
                })
                .collect();
            if let Some(keys) = &keys {
                for id in keys.ids() {
                    if !rows.iter().any(|r| r.key_id == id) {
                        rows.push(KeyRow {
                            key_id: id.to_string(),
                            tokens: 0,
                            loaded: true,
                            primary: keys.primary_id() == id,
                        });
                    }
                }
            }
            if census.plaintext > 0 {
                rows.push(KeyRow {
                    key_id: "(plain text)".into(),
                    tokens: census.plaintext,
                    loaded: false,
                    primary: false,
                });
            }
            let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
            let table = rows
                .iter()
                .map(|r| {
                    vec![
                        r.key_id.clone(),
                        r.tokens.to_string(),
                        yes(r.loaded),
                        yes(r.primary),
                    ]
                })
                .collect();
            out.table(
                &[
                    "key id",
                    "tokens sealed",
                    "in WAITER_SECRET_KEY",
                    "seals new tokens",
                ],
                table,
                &rows,
            );
            if !out.json {
                if keys.is_none() {
                    println!("WAITER_SECRET_KEY is not set here");
                }
                let stale: i64 = rows.iter().filter(|r| !r.primary).map(|r| r.tokens).sum();
                if stale > 0 && keys.is_some() {
                    println!("{stale} token(s) are not under the first key: run `waiterctl secrets rotate`");
                }
            }
            Ok(())
        }
        SecretsCommand::Rotate => rotate(out).await,
    }
}

async fn rotate(out: Out) -> anyhow::Result<()> {
    let pool = connect::pool().await?;
    let keys = connect::keys()?;
    let todo = waiter_migrations::restaurants::needing_reseal(&pool, keys.primary_id()).await?;
    let mut resealed = 0usize;
    let mut failed: Vec<String> = Vec::new();
    for (i, (id, slug)) in todo.iter().enumerate() {
        match waiter_migrations::restaurants::reseal(&pool, &keys, *id).await {
            Ok(true) => resealed += 1,
            Ok(false) => {}
            Err(e) => failed.push(format!("{slug}: {e}")),
        }
        if !out.json {
            progress(i + 1, todo.len(), "sealing tokens");
        }
    }
    // Every account, so the directory holds only what is sealed now.
    let accounts = waiter_migrations::restaurants::accounts(&pool).await?;
    for (i, (sid, _)) in accounts.iter().enumerate() {
        connect::publish_account(&pool, sid).await;
        if !out.json {
            progress(i + 1, accounts.len(), "republishing the tenant directory");
        }
    }
    let census = waiter_migrations::restaurants::token_census(&pool).await?;
    out.done(
        &format!(
            "{resealed} token(s) sealed under key {}; {} account(s) republished",
            keys.primary_id(),
            accounts.len()
        ),
        &serde_json::json!({
            "primary": keys.primary_id(),
            "resealed": resealed,
            "accounts_republished": accounts.len(),
            "by_key": census.by_key,
            "failed": failed,
        }),
    );
    if !failed.is_empty() {
        anyhow::bail!(
            "{} token(s) could not be sealed again:\n{}",
            failed.len(),
            failed.join("\n")
        );
    }
    Ok(())
}
