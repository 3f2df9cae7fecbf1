//! Standard Webhooks signatures (<https://www.standardwebhooks.com>) for
//! the order webhooks restaurants receive: a secret `whsec_<base64 key>`,
//! and `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.

use base64::{engine::general_purpose::STANDARD, Engine};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::SecretString;
use sha2::Sha256;

/// How an endpoint's secret begins.
pub const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a new endpoint key (the spec asks for 24 to 64).
const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookSecretError {
    #[error("a webhook secret is `whsec_` and a base64 key")]
    Malformed,
}

/// A new endpoint secret, `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> SecretString {
    let mut key = [0u8; KEY_BYTES];
    rand::thread_rng().fill_bytes(&mut key);
    let secret = format!("{SECRET_PREFIX}{}", STANDARD.encode(key));
    key.iter_mut().for_each(|b| *b = 0);
    SecretString::from(secret)
}

/// `v1,<signature>` of one delivery: `id` is `webhook-id`, `timestamp`
/// `webhook-timestamp` (Unix seconds), `body` the exact bytes sent.
pub fn sign(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, WebhookSecretError> {
    let key = secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|k| STANDARD.decode(k).ok())
        .filter(|k| !k.is_empty())
        .ok_or(WebhookSecretError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// What an endpoint's sealed secret is bound to: the endpoint.
pub fn webhook_secret_context(endpoint_id: &str) -> String {
    format!("webhook-secret/{endpoint_id}")
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn the_specifications_test_vector() {
        // From the Standard Webhooks reference libraries' tests.
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn an_independent_implementation_verifies_our_signatures() {
        let secret = generate_secret();
        let secret = secret.expose_secret();
        assert!(
            secret.starts_with("whsec_") && secret.len() > 40,
            "{secret}"
        );
        let body = br#"{"type":"order.created","data":{"number":12}}"#;
        let timestamp = chrono_free_now();
        let signature = sign(secret, "evt_1", timestamp, body).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", "evt_1".parse().unwrap());
        headers.insert("webhook-timestamp", timestamp.to_string().parse().unwrap());
        headers.insert("webhook-signature", signature.parse().unwrap());
        let theirs = standardwebhooks::Webhook::new(secret).unwrap();
        theirs.verify(body, &headers).unwrap();
        // A changed body is refused.
        assert!(theirs
            .verify(br#"{"type":"order.created"}"#, &headers)
            .is_err());
    }

    #[test]
    fn a_malformed_secret_signs_nothing() {
        for bad in [
            "",
            "whsec_",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
        ] {
            assert_eq!(
                sign(bad, "id", 1, b"{}"),
                Err(WebhookSecretError::Malformed),
                "{bad}"
            );
        }
    }

    fn chrono_free_now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }
}
