//! `waiterctl webhooks add|list|test|remove`: a restaurant's order webhook
//! endpoints (Standard Webhooks). `add` prints the endpoint's `whsec_`
//! secret once; `test` posts a signed `webhook.test` event to each
//! endpoint and shows what it answered.

use std::time::Duration;

use clap::Subcommand;
use secrecy::ExposeSecret;
use serde::Serialize;
use waiter_migrations::webhooks;
use waiter_secrets::webhook::sign;

use crate::{connect, output::Out};

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// Add an endpoint (https://, or http:// to loopback); prints its secret once.
    Add {
        /// Restaurant id or slug.
        #[arg(long)]
        restaurant: String,
        #[arg(long)]
        url: String,
    },
    /// The restaurant's endpoints (never their secrets).
    List {
        #[arg(long)]
        restaurant: String,
    },
    /// Post a signed `webhook.test` event to every endpoint (or one).
    Test {
        #[arg(long)]
        restaurant: String,
        #[arg(long)]
        url: Option<String>,
    },
    /// Remove an endpoint.
    Remove {
        #[arg(long)]
        restaurant: String,
        #[arg(long)]
        url: String,
    },
}

#[derive(Serialize)]
struct Tried {
    url: String,
    webhook_id: String,
    /// The HTTP status, or null when no answer came.
    status: Option<u16>,
    error: Option<String>,
}

pub async fn run(cmd: WebhooksCommand, out: Out) -> anyhow::Result<()> {
    let pool = connect::pool().await?;
    match cmd {
        WebhooksCommand::Add { restaurant, url } => {
            let r = connect::restaurant(&pool, &restaurant).await?;
            let keys = connect::keys()?;
            let (endpoint, secret) = webhooks::add(&pool, &keys, r.id, &url).await?;
            let secret = secret.expose_secret();
            out.done(
                &format!(
                    "added {} for {}\nsecret (shown once, keep it in the receiver): {secret}",
                    endpoint.url, r.slug
                ),
                &serde_json::json!({"id": endpoint.id, "url": endpoint.url, "secret": secret}),
            );
        }
        WebhooksCommand::List { restaurant } => {
            let r = connect::restaurant(&pool, &restaurant).await?;
            let endpoints = webhooks::list(&pool, r.id).await?;
            let rows = endpoints
                .iter()
                .map(|e| vec![e.url.clone(), e.created_at.to_rfc3339(), e.id.to_string()])
                .collect();
            out.table(&["url", "added", "id"], rows, &endpoints);
        }
        WebhooksCommand::Test { restaurant, url } => {
            let r = connect::restaurant(&pool, &restaurant).await?;
            let keys = connect::keys()?;
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?;
            let mut tried = vec![];
            for (endpoint, secret) in webhooks::with_secrets(&pool, &keys, r.id).await? {
                if url.as_deref().is_some_and(|u| u != endpoint.url) {
                    continue;
                }
                let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
                let now = chrono::Utc::now();
                let body = serde_json::to_vec(&serde_json::json!({
                    "type": "webhook.test",
                    "timestamp": now.to_rfc3339(),
                    "data": {"restaurant_id": r.id, "restaurant": r.slug},
                }))?;
                let signature = sign(secret.expose_secret(), &id, now.timestamp(), &body)?;
                let answer = client
                    .post(&endpoint.url)
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", now.timestamp().to_string())
                    .header("webhook-signature", signature)
                    .body(body)
                    .send()
                    .await;
                tried.push(Tried {
                    url: endpoint.url,
                    webhook_id: id,
                    status: answer.as_ref().ok().map(|a| a.status().as_u16()),
                    error: answer.err().map(|e| e.to_string()),
                });
            }
            if tried.is_empty() {
                anyhow::bail!("{} has no such webhook endpoint", r.slug);
            }
            let rows = tried
                .iter()
                .map(|t| {
                    vec![
                        t.url.clone(),
                        t.status.map_or("-".into(), |s| s.to_string()),
                        t.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            out.table(&["url", "status", "error"], rows, &tried);
            if tried
                .iter()
                .any(|t| !t.status.is_some_and(|s| (200..300).contains(&s)))
            {
                anyhow::bail!("an endpoint did not accept the test event");
            }
        }
        WebhooksCommand::Remove { restaurant, url } => {
            let r = connect::restaurant(&pool, &restaurant).await?;
            if !webhooks::remove(&pool, r.id, &url).await? {
                anyhow::bail!("{} has no webhook endpoint {url}", r.slug);
            }
            out.done(
                &format!("removed {url} from {}", r.slug),
                &serde_json::json!({"removed": url}),
            );
        }
    }
    Ok(())
}
