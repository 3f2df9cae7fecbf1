//! `waiterctl jwt`: a dashboard token for one restaurant.

use anyhow::Context;
use uuid::Uuid;

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    restaurant_id: Uuid,
    role: &'a str,
    exp: i64,
}

pub fn mint(restaurant_id: Uuid, role: &str, sub: &str, hours: i64) -> anyhow::Result<String> {
    anyhow::ensure!(
        ["staff", "admin"].contains(&role),
        "--role must be staff or admin"
    );
    anyhow::ensure!(
        (1..=24 * 90).contains(&hours),
        "--hours must be between 1 and 2160"
    );
    let secret = std::env::var("JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .context("JWT_SECRET is not set")?;
    let claims = Claims {
        sub,
        restaurant_id,
        role,
        exp: chrono::Utc::now().timestamp() + hours * 3600,
    };
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}
