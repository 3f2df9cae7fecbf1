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

/// A dashboard login link: the token rides in the URL fragment, which
/// browsers never send to the server (so it is in no access log), and the
/// page removes it from the address bar once read.
pub fn login_link(dashboard_url: &str, token: &str) -> String {
    let base = dashboard_url.split('#').next().unwrap_or(dashboard_url);
    let base = base.trim_end_matches('/');
    format!("{base}/#token={token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_rides_in_the_fragment() {
        assert_eq!(
            login_link("http://127.0.0.1:8090", "a.b.c"),
            "http://127.0.0.1:8090/#token=a.b.c"
        );
        assert_eq!(
            login_link("https://waiter.example/#old", "a.b.c"),
            "https://waiter.example/#token=a.b.c"
        );
    }
}
