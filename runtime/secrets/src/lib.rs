//! Secrets at rest (Twilio auth tokens): sealed with XChaCha20-Poly1305
//! under a key of the [`Keyring`] read from `WAITER_SECRET_KEY`.
//!
//! A [`Sealed`] value carries the id of the key that sealed it, so keys can
//! be rotated: the keyring's first key (the primary) seals, every key of the
//! ring opens. Rotation = put a new key first, keep the old ones after it,
//! re-seal everything (`waiterctl secrets rotate`), then drop the old keys.
//!
//! `WAITER_SECRET_KEY` format: comma-separated `<key id>:<base64 of 32
//! random bytes>`, primary first, e.g. `k2026:3q2+7w…=,k2025:q83v…=`. Key
//! ids are 1–32 characters of `A-Z a-z 0-9 _ -`.
//!
//! Each sealed value is bound to what it protects (the `context`, e.g. the
//! Twilio account SID): a ciphertext copied onto another row does not open.

pub mod webhook;

use std::{fmt, sync::Arc, sync::OnceLock};

use base64::{engine::general_purpose::STANDARD, Engine};
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The environment variable holding the keyring.
pub const ENV: &str = "WAITER_SECRET_KEY";
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;
const MAX_ID_CHARS: usize = 32;

/// Why a keyring could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error(
        "{ENV} is not set: it is the key that encrypts Twilio auth tokens at rest. \
         Generate one with `waiterctl secrets generate-key` and set {ENV}=<key id>:<base64 of 32 bytes>"
    )]
    Missing,
    #[error("{ENV}: key {position} is not <key id>:<base64 of 32 bytes>: {reason}")]
    Malformed { position: usize, reason: String },
    #[error("{ENV}: key id {0:?} appears twice")]
    DuplicateId(String),
}

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("sealed with key {0:?}, which is not in {ENV}")]
    UnknownKey(String),
    #[error("sealed value under key {0:?} does not open: corrupted, or sealed for something else")]
    Corrupt(String),
    #[error("sealed value is not valid UTF-8")]
    NotText,
}

/// A secret as stored: the sealing key's id and `nonce || ciphertext+tag`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub key_id: String,
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("bytes", &self.ciphertext.len())
            .finish()
    }
}

struct Key {
    id: String,
    bytes: [u8; KEY_BYTES],
    cipher: XChaCha20Poly1305,
}

impl Drop for Key {
    fn drop(&mut self) {
        // Best effort: the key bytes do not linger in freed memory.
        self.bytes.iter_mut().for_each(|b| *b = 0);
    }
}

/// The keys a process may seal and open with; the first one seals.
#[derive(Clone)]
pub struct Keyring {
    keys: Arc<Vec<Key>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("ids", &self.ids()).finish()
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= MAX_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Keyring {
    /// Reads `WAITER_SECRET_KEY`'s value (`None` or blank: [`KeyError::Missing`]).
    pub fn from_value(value: Option<&str>) -> Result<Keyring, KeyError> {
        let value = value.map(str::trim).filter(|v| !v.is_empty());
        let Some(value) = value else {
            return Err(KeyError::Missing);
        };
        let mut keys: Vec<Key> = Vec::new();
        for (i, entry) in value.split(',').enumerate() {
            let position = i + 1;
            let malformed = |reason: &str| KeyError::Malformed {
                position,
                reason: reason.to_string(),
            };
            let (id, encoded) = entry
                .trim()
                .split_once(':')
                .ok_or_else(|| malformed("no ':' between the key id and the key"))?;
            if !valid_id(id) {
                return Err(malformed(
                    "the key id must be 1-32 characters of A-Z a-z 0-9 _ -",
                ));
            }
            let decoded = STANDARD
                .decode(encoded.trim())
                .map_err(|_| malformed("the key is not base64"))?;
            let bytes: [u8; KEY_BYTES] = decoded
                .as_slice()
                .try_into()
                .map_err(|_| malformed(&format!("the key is {} bytes, not 32", decoded.len())))?;
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyError::DuplicateId(id.to_string()));
            }
            keys.push(Key {
                id: id.to_string(),
                cipher: XChaCha20Poly1305::new(&bytes.into()),
                bytes,
            });
        }
        Ok(Keyring {
            keys: Arc::new(keys),
        })
    }

    /// Reads the keyring from the environment.
    pub fn from_env() -> Result<Keyring, KeyError> {
        Self::from_value(std::env::var(ENV).ok().as_deref())
    }

    /// A keyring made up on the spot, the same for a whole test process
    /// (stages started in a test and the harness share it). Never for a
    /// deployment: it is gone when the process ends.
    pub fn for_tests() -> &'static Keyring {
        static KEYS: OnceLock<Keyring> = OnceLock::new();
        KEYS.get_or_init(|| {
            Keyring::from_value(Some(&generate_key_entry("test"))).expect("generated key")
        })
    }

    /// The id of the key that seals.
    pub fn primary_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.iter().any(|k| k.id == key_id)
    }

    /// This keyring as `WAITER_SECRET_KEY` spells it (to hand it to a child
    /// process; never print it).
    pub fn to_env_value(&self) -> SecretString {
        let value = self
            .keys
            .iter()
            .map(|k| format!("{}:{}", k.id, STANDARD.encode(k.bytes)))
            .collect::<Vec<_>>()
            .join(",");
        SecretString::from(value)
    }

    /// Seals `secret` under the primary key, bound to `context`.
    pub fn seal(&self, secret: &str, context: &str) -> Sealed {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any message under 256 GiB");
        let mut ciphertext = nonce.to_vec();
        ciphertext.extend_from_slice(&sealed);
        Sealed {
            key_id: key.id.clone(),
            ciphertext,
        }
    }

    /// Opens a sealed value with the key it names.
    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<SecretString, OpenError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| OpenError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.ciphertext.len() < NONCE_BYTES {
            return Err(OpenError::Corrupt(sealed.key_id.clone()));
        }
        let (nonce, body) = sealed.ciphertext.split_at(NONCE_BYTES);
        let plain = key
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| OpenError::Corrupt(sealed.key_id.clone()))?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| OpenError::NotText)
    }

    /// Whether a sealed value should be sealed again (its key is not the primary).
    pub fn needs_reseal(&self, sealed: &Sealed) -> bool {
        sealed.key_id != self.primary_id()
    }

    /// Opens with whichever key sealed it and seals again under the primary.
    pub fn reseal(&self, sealed: &Sealed, context: &str) -> Result<Sealed, OpenError> {
        let secret = self.open(sealed, context)?;
        Ok(self.seal(secret.expose_secret(), context))
    }
}

/// A new random key as one `WAITER_SECRET_KEY` entry: `<id>:<base64>`.
pub fn generate_key_entry(id: &str) -> String {
    let mut bytes = [0u8; KEY_BYTES];
    rand::thread_rng().fill_bytes(&mut bytes);
    let entry = format!("{id}:{}", STANDARD.encode(bytes));
    bytes.iter_mut().for_each(|b| *b = 0);
    entry
}

/// Whether `id` may name a key.
pub fn is_valid_key_id(id: &str) -> bool {
    valid_id(id)
}

/// What a Twilio auth token is bound to: its account.
pub fn twilio_token_context(account_sid: &str) -> String {
    format!("twilio-auth-token/{account_sid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(entries: &[&str]) -> Keyring {
        Keyring::from_value(Some(&entries.join(","))).expect("keyring")
    }

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_context_only() {
        let keys = ring(&[&generate_key_entry("a")]);
        let sealed = keys.seal("tok-123", "ctx/1");
        assert_eq!(sealed.key_id, "a");
        assert!(!sealed
            .ciphertext
            .windows(7)
            .any(|w| w == b"tok-123".as_slice()));
        assert_eq!(
            keys.open(&sealed, "ctx/1").unwrap().expose_secret(),
            "tok-123"
        );
        assert!(matches!(
            keys.open(&sealed, "ctx/2"),
            Err(OpenError::Corrupt(_))
        ));
        let mut tampered = sealed.clone();
        *tampered.ciphertext.last_mut().unwrap() ^= 1;
        assert!(matches!(
            keys.open(&tampered, "ctx/1"),
            Err(OpenError::Corrupt(_))
        ));
        // Two seals of the same secret differ (random nonces).
        assert_ne!(keys.seal("tok-123", "ctx/1"), sealed);
    }

    #[test]
    fn rotation_seals_with_the_new_key_and_opens_with_both() {
        let old = generate_key_entry("old");
        let new = generate_key_entry("new");
        let before = ring(&[&old]);
        let sealed = before.seal("secret", "c");
        let during = ring(&[&new, &old]);
        assert!(during.needs_reseal(&sealed));
        let resealed = during.reseal(&sealed, "c").unwrap();
        assert_eq!(resealed.key_id, "new");
        let after = ring(&[&new]);
        assert_eq!(
            after.open(&resealed, "c").unwrap().expose_secret(),
            "secret"
        );
        assert_eq!(
            after.open(&sealed, "c").unwrap_err(),
            OpenError::UnknownKey("old".into())
        );
    }

    #[test]
    fn bad_keyrings_are_refused_with_a_reason() {
        assert_eq!(Keyring::from_value(None).unwrap_err(), KeyError::Missing);
        assert_eq!(
            Keyring::from_value(Some("  ")).unwrap_err(),
            KeyError::Missing
        );
        let err = Keyring::from_value(Some("nokey")).unwrap_err().to_string();
        assert!(err.contains("key 1") && err.contains("':'"), "{err}");
        let err = Keyring::from_value(Some("k:AAAA")).unwrap_err().to_string();
        assert!(err.contains("3 bytes, not 32"), "{err}");
        let err = Keyring::from_value(Some("bad id:AAAA"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("key id"), "{err}");
        let a = generate_key_entry("a");
        assert_eq!(
            Keyring::from_value(Some(&format!("{a},{a}"))).unwrap_err(),
            KeyError::DuplicateId("a".into())
        );
    }

    #[test]
    fn a_keyring_survives_its_env_form_and_never_debug_prints_a_key() {
        let keys = ring(&[&generate_key_entry("a"), &generate_key_entry("b")]);
        let again = Keyring::from_value(Some(keys.to_env_value().expose_secret())).unwrap();
        assert_eq!(again.ids(), vec!["a", "b"]);
        let sealed = keys.seal("x", "c");
        assert_eq!(again.open(&sealed, "c").unwrap().expose_secret(), "x");
        let shown = format!("{keys:?} {sealed:?}");
        assert!(!shown.contains(keys.to_env_value().expose_secret()));
        assert_eq!(keys.primary_id(), "a");
    }
}
