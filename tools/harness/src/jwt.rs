//! Dashboard tokens for tests, made independently of the notifier's code.

use serde::Serialize;
use uuid::Uuid;

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    restaurant_id: Uuid,
    role: &'a str,
    exp: i64,
}

/// An HS256 token with the claims the contract fixes.
pub fn token(secret: &str, restaurant_id: Uuid, role: &str, ttl_seconds: i64) -> String {
    token_for(secret, "test-user", restaurant_id, role, ttl_seconds)
}

/// The same, for a named user (`sub`).
pub fn token_for(
    secret: &str,
    sub: &str,
    restaurant_id: Uuid,
    role: &str,
    ttl_seconds: i64,
) -> String {
    let claims = Claims {
        sub,
        restaurant_id,
        role,
        exp: chrono::Utc::now().timestamp() + ttl_seconds,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode token")
}
