//! The order webhook endpoints of each restaurant (`webhook_endpoints`):
//! URL and sealed `whsec_` secret. HTTPS is required; plain HTTP only to a
//! loopback address (tests and development on one machine).

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use uuid::Uuid;
use waiter_secrets::{
    webhook::{generate_secret, webhook_secret_context},
    Keyring, OpenError, Sealed,
};

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0:?} is not an https:// URL (http:// only to 127.0.0.1, ::1 or localhost)")]
    Url(String),
    #[error("the restaurant already has the endpoint {0}")]
    Exists(String),
    #[error("the endpoint's secret does not open: {0}")]
    Secret(#[from] OpenError),
}

/// An endpoint as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub created_at: DateTime<Utc>,
}

/// Checks an endpoint URL: `https://host…`, or `http://` to loopback.
pub fn check_url(url: &str) -> Result<(), WebhookError> {
    let bad = || WebhookError::Url(url.to_string());
    if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    if host.is_empty() {
        return Err(bad());
    }
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match (scheme.to_ascii_lowercase().as_str(), loopback) {
        ("https", _) | ("http", true) => Ok(()),
        _ => Err(bad()),
    }
}

/// Adds an endpoint; returns it and its new secret (shown to the operator
/// once, stored sealed only).
pub async fn add(
    pool: &PgPool,
    keys: &Keyring,
    restaurant_id: Uuid,
    url: &str,
) -> Result<(Endpoint, SecretString), WebhookError> {
    check_url(url)?;
    let id = Uuid::new_v4();
    let secret = generate_secret();
    let sealed = keys.seal(
        secret.expose_secret(),
        &webhook_secret_context(&id.to_string()),
    );
    let added: Option<Endpoint> = sqlx::query_as(
        "INSERT INTO webhook_endpoints (id, restaurant_id, url, secret_key_id, secret_sealed) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (restaurant_id, url) DO NOTHING \
         RETURNING id, url, created_at",
    )
    .bind(id)
    .bind(restaurant_id)
    .bind(url)
    .bind(&sealed.key_id)
    .bind(&sealed.ciphertext)
    .fetch_optional(pool)
    .await?;
    let endpoint = added.ok_or_else(|| WebhookError::Exists(url.to_string()))?;
    Ok((endpoint, secret))
}

/// A restaurant's endpoints, oldest first.
pub async fn list(pool: &PgPool, restaurant_id: Uuid) -> Result<Vec<Endpoint>, WebhookError> {
    Ok(sqlx::query_as(
        "SELECT id, url, created_at FROM webhook_endpoints WHERE restaurant_id = $1 \
         ORDER BY created_at, id",
    )
    .bind(restaurant_id)
    .fetch_all(pool)
    .await?)
}

/// Removes an endpoint by URL; returns whether there was one.
pub async fn remove(pool: &PgPool, restaurant_id: Uuid, url: &str) -> Result<bool, WebhookError> {
    let done = sqlx::query("DELETE FROM webhook_endpoints WHERE restaurant_id = $1 AND url = $2")
        .bind(restaurant_id)
        .bind(url)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// What [`SealedRow`] is read from.
const SEALED_ROW: &str =
    "SELECT id, url, created_at, secret_key_id, secret_sealed FROM webhook_endpoints";

#[derive(sqlx::FromRow)]
struct SealedRow {
    #[sqlx(flatten)]
    endpoint: Endpoint,
    secret_key_id: String,
    secret_sealed: Vec<u8>,
}

impl SealedRow {
    fn open(self, keys: &Keyring) -> Result<(Endpoint, SecretString), WebhookError> {
        let sealed = Sealed {
            key_id: self.secret_key_id,
            ciphertext: self.secret_sealed,
        };
        let context = webhook_secret_context(&self.endpoint.id.to_string());
        Ok((self.endpoint, keys.open(&sealed, &context)?))
    }
}

/// The restaurant's endpoints with their opened secrets, for signing.
pub async fn with_secrets(
    pool: &PgPool,
    keys: &Keyring,
    restaurant_id: Uuid,
) -> Result<Vec<(Endpoint, SecretString)>, WebhookError> {
    let rows: Vec<SealedRow> = sqlx::query_as(&format!(
        "{SEALED_ROW} WHERE restaurant_id = $1 ORDER BY created_at, id"
    ))
    .bind(restaurant_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(|row| row.open(keys)).collect()
}

/// One endpoint with its opened secret; `None` once it was removed.
pub async fn endpoint_with_secret(
    pool: &PgPool,
    keys: &Keyring,
    endpoint_id: Uuid,
) -> Result<Option<(Endpoint, SecretString)>, WebhookError> {
    let row: Option<SealedRow> = sqlx::query_as(&format!("{SEALED_ROW} WHERE id = $1"))
        .bind(endpoint_id)
        .fetch_optional(pool)
        .await?;
    row.map(|row| row.open(keys)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_everywhere_and_plain_http_only_to_loopback() {
        for good in [
            "https://pos.example.com/hooks/waiter",
            "https://10.0.0.5:8443/x",
            "http://127.0.0.1:26050/hook",
            "http://localhost/hook",
            "http://[::1]:9000/",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://pos.example.com/hook",
            "http://127.0.0.1.evil.example/hook",
            "http://user@10.0.0.1/",
            "ftp://example.com",
            "https://",
            "pos.example.com",
            "https://exa mple.com",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
