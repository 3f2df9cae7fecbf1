//! Dashboard authentication: HS256 JWTs with the claims the contract fixes
//! (`sub`, `restaurant_id`, `role`, `exp`), taken from `Authorization:
//! Bearer <JWT>` or, for browsers' WebSockets, from the
//! `Sec-WebSocket-Protocol` value `bearer.<JWT>`.
//!
//! Pure: no I/O, no logging (a token must never reach a log line).

use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use uuid::Uuid;

/// The `Sec-WebSocket-Protocol` prefix that carries a token.
pub const PROTOCOL_PREFIX: &str = "bearer.";

/// Clock skew tolerated on `exp`, in seconds.
pub const LEEWAY_SECONDS: u64 = 5;

/// What a dashboard user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees and acts on its own restaurant only.
    Staff,
    /// Sees and acts on every restaurant.
    Admin,
}

/// An authenticated dashboard user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub` (recorded as the actor of what the user does).
    pub sub: String,
    pub restaurant_id: Uuid,
    pub role: Role,
    /// The token's `exp`, in seconds since the Unix epoch: a WebSocket
    /// opened with this token is closed then.
    pub expires_at: i64,
}

impl Principal {
    /// Whether this user may see the data of `restaurant_id` (invariant 4).
    pub fn may_access(&self, restaurant_id: Uuid) -> bool {
        self.role == Role::Admin || self.restaurant_id == restaurant_id
    }

    /// How long the token stays valid after `now` (zero once it expired;
    /// the verification leeway is not counted).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        let now = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        Duration::from_secs_f64((self.expires_at as f64 - now).max(0.0))
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    restaurant_id: Uuid,
    role: Role,
    // Required and checked by jsonwebtoken (which reports it missing by
    // name); optional here so that check is the one that speaks.
    exp: Option<i64>,
}

/// Why a request is not authenticated. The message is the `reason` of the
/// 401 answer: it names the problem, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("authorization header must be `Bearer <token>`")]
    BadScheme,
    #[error("malformed token")]
    Malformed,
    #[error("invalid signature")]
    BadSignature,
    #[error("token algorithm not allowed (HS256 only)")]
    BadAlgorithm,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("missing claim `{0}`")]
    MissingClaim(String),
    #[error("invalid claims (sub, restaurant_id, role staff|admin, exp)")]
    BadClaims,
}

/// Verifies tokens with the deployment's `JWT_SECRET`.
#[derive(Clone)]
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("key", &"[redacted]")
            .finish()
    }
}

impl Authenticator {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Checks signature, algorithm, expiry and claims.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token.trim(), &self.key, &self.validation)
            .map_err(|e| classify(e.kind()))?;
        let claims = data.claims;
        if claims.sub.trim().is_empty() {
            return Err(AuthError::BadClaims);
        }
        Ok(Principal {
            sub: claims.sub,
            restaurant_id: claims.restaurant_id,
            role: claims.role,
            expires_at: claims
                .exp
                .ok_or_else(|| AuthError::MissingClaim("exp".into()))?,
        })
    }

    /// Authenticates a REST request from its `Authorization` header.
    pub fn from_header(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        self.verify(bearer_token(header)?)
    }

    /// Authenticates a WebSocket upgrade: the `Authorization` header when
    /// present, else a `bearer.<JWT>` subprotocol. Returns the principal and
    /// the subprotocol to echo, if one was offered.
    pub fn from_upgrade(
        &self,
        authorization: Option<&str>,
        protocols: Option<&str>,
    ) -> Result<(Principal, Option<String>), AuthError> {
        let offered = protocols.and_then(bearer_protocol);
        let principal = match (authorization, &offered) {
            (Some(header), _) => self.verify(bearer_token(header)?)?,
            (None, Some(protocol)) => self.verify(&protocol[PROTOCOL_PREFIX.len()..])?,
            (None, None) => return Err(AuthError::Missing),
        };
        Ok((principal, offered))
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme is
/// case-insensitive).
pub fn bearer_token(header: &str) -> Result<&str, AuthError> {
    let header = header.trim();
    let (scheme, token) = header.split_once(' ').ok_or(AuthError::BadScheme)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::BadScheme);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token)
}

/// The first `bearer.<JWT>` entry of a `Sec-WebSocket-Protocol` list.
pub fn bearer_protocol(header: &str) -> Option<String> {
    header
        .split(',')
        .map(str::trim)
        .find(|p| p.len() > PROTOCOL_PREFIX.len() && p.starts_with(PROTOCOL_PREFIX))
        .map(str::to_string)
}

fn classify(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => AuthError::BadAlgorithm,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
        ErrorKind::Json(_) => AuthError::BadClaims,
        _ => AuthError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef-test-secret";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn sign(claims: serde_json::Value, alg: Algorithm, secret: &[u8]) -> String {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn claims(role: &str, exp: i64) -> serde_json::Value {
        json!({"sub": "u1", "restaurant_id": Uuid::nil(), "role": role, "exp": exp})
    }

    #[test]
    fn accepts_staff_and_admin() {
        let auth = Authenticator::new(SECRET);
        let p = auth
            .verify(&sign(claims("staff", now() + 60), Algorithm::HS256, SECRET))
            .unwrap();
        assert_eq!(p.role, Role::Staff);
        assert_eq!(p.sub, "u1");
        let remaining = p.remaining(SystemTime::now());
        assert!(remaining > Duration::from_secs(55) && remaining <= Duration::from_secs(60));
        let later = SystemTime::now() + Duration::from_secs(120);
        assert_eq!(p.remaining(later), Duration::ZERO);
        assert!(p.may_access(Uuid::nil()));
        assert!(!p.may_access(Uuid::new_v4()));
        let admin = auth
            .verify(&sign(claims("admin", now() + 60), Algorithm::HS256, SECRET))
            .unwrap();
        assert!(admin.may_access(Uuid::new_v4()));
    }

    #[test]
    fn rejects_every_kind_of_bad_token() {
        let auth = Authenticator::new(SECRET);
        let cases = [
            (
                sign(claims("staff", now() - 60), Algorithm::HS256, SECRET),
                AuthError::Expired,
            ),
            (
                sign(
                    claims("staff", now() + 60),
                    Algorithm::HS256,
                    b"another-secret-000",
                ),
                AuthError::BadSignature,
            ),
            (
                sign(claims("staff", now() + 60), Algorithm::HS512, SECRET),
                AuthError::BadAlgorithm,
            ),
            (
                sign(claims("owner", now() + 60), Algorithm::HS256, SECRET),
                AuthError::BadClaims,
            ),
            (
                sign(
                    json!({"sub": "u1", "restaurant_id": Uuid::nil(), "role": "staff"}),
                    Algorithm::HS256,
                    SECRET,
                ),
                AuthError::MissingClaim("exp".into()),
            ),
            (
                sign(
                    json!({"sub": "u1", "restaurant_id": "not-a-uuid", "role": "staff", "exp": now() + 60}),
                    Algorithm::HS256,
                    SECRET,
                ),
                AuthError::BadClaims,
            ),
            (
                sign(
                    json!({"sub": " ", "restaurant_id": Uuid::nil(), "role": "staff", "exp": now() + 60}),
                    Algorithm::HS256,
                    SECRET,
                ),
                AuthError::BadClaims,
            ),
            ("garbage".to_string(), AuthError::Malformed),
            ("a.b.c".to_string(), AuthError::Malformed),
        ];
        for (token, expected) in cases {
            assert_eq!(auth.verify(&token), Err(expected.clone()), "{expected}");
        }
    }

    #[test]
    fn rejects_unsigned_tokens() {
        // {"alg":"none"} with the right claims and no signature.
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        let body = sign(claims("admin", now() + 60), Algorithm::HS256, SECRET);
        let payload = body.split('.').nth(1).unwrap();
        let auth = Authenticator::new(SECRET);
        assert!(auth.verify(&format!("{header}.{payload}.")).is_err());
    }

    #[test]
    fn reads_the_authorization_header() {
        let auth = Authenticator::new(SECRET);
        let token = sign(claims("staff", now() + 60), Algorithm::HS256, SECRET);
        assert!(auth.from_header(Some(&format!("Bearer {token}"))).is_ok());
        assert!(auth.from_header(Some(&format!("bearer  {token}"))).is_ok());
        assert_eq!(auth.from_header(None), Err(AuthError::Missing));
        assert_eq!(
            auth.from_header(Some(&format!("Basic {token}"))),
            Err(AuthError::BadScheme)
        );
        assert_eq!(auth.from_header(Some(&token)), Err(AuthError::BadScheme));
        assert_eq!(auth.from_header(Some("Bearer ")), Err(AuthError::BadScheme));
    }

    #[test]
    fn reads_the_websocket_protocol() {
        let auth = Authenticator::new(SECRET);
        let token = sign(claims("staff", now() + 60), Algorithm::HS256, SECRET);
        let offered = format!("json, bearer.{token}");
        let (p, echo) = auth.from_upgrade(None, Some(&offered)).unwrap();
        assert_eq!(p.sub, "u1");
        assert_eq!(echo, Some(format!("bearer.{token}")));
        // The header wins when both are present.
        let (_, echo) = auth
            .from_upgrade(Some(&format!("Bearer {token}")), Some(&offered))
            .unwrap();
        assert!(echo.is_some());
        assert_eq!(
            auth.from_upgrade(None, Some("json")),
            Err(AuthError::Missing)
        );
        assert_eq!(auth.from_upgrade(None, None), Err(AuthError::Missing));
        assert_eq!(
            auth.from_upgrade(None, Some("bearer.garbage")).unwrap_err(),
            AuthError::Malformed
        );
        assert_eq!(bearer_protocol("bearer."), None);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let auth = Authenticator::new(SECRET);
        assert!(!format!("{auth:?}").contains("0123456789"));
    }
}
