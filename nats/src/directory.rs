//! The tenant directory ingest checks signatures with.
//!
//! Ingest must keep accepting webhooks while PostgreSQL is down, so it does
//! not read the restaurants table. The router (which owns the database side)
//! publishes each Twilio account's auth token, *sealed* as it is stored
//! (`waiter-secrets`: the key id and the ciphertext, never the token), to
//! the directory stream (one subject per account, only the newest kept);
//! ingest follows the stream, opens each token with its keyring and keeps
//! the tokens in memory only. A changed token (or one sealed again under a
//! new key) reaches every ingest replica within a moment of being published.
//!
//! (A JetStream key-value bucket would be the obvious tool, but async-nats'
//! bucket creation does not work against nats-server 2.9; this is the same
//! mechanism spelled out on a plain stream.)

use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, RwLock,
    },
    time::Duration,
};

use async_nats::jetstream::consumer::{self, DeliverPolicy};
use futures::StreamExt;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use waiter_secrets::{twilio_token_context, Keyring, Sealed};

use crate::{
    bus::Bus,
    envelope::{Envelope, Payload},
    error::BusError,
    topology::StreamKind,
    worker::Backoff,
};

/// Between attempts to follow the directory again: 0.5–1 s, jittered so the
/// stages that all lost NATS at once do not come back in lock-step.
const FOLLOW_RETRY: Backoff = Backoff {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(1),
};

/// One Twilio account's credentials as the directory stores them: the auth
/// token sealed. No token removes the account.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountEntry {
    pub account_sid: String,
    #[serde(default)]
    pub sealed_token: Option<Sealed>,
}

impl Payload for AccountEntry {
    const KIND: &'static str = "directory.account";
}

impl fmt::Debug for AccountEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountEntry")
            .field("account_sid", &self.account_sid)
            .field("sealed_token", &self.sealed_token)
            .finish()
    }
}

/// Writes to and follows the directory stream.
#[derive(Clone)]
pub struct Directory {
    bus: Bus,
}

impl Directory {
    /// Opens the directory, creating its stream if needed.
    pub async fn open(bus: &Bus) -> Result<Self, BusError> {
        bus.ensure_streams(&[StreamKind::Directory]).await?;
        Ok(Self { bus: bus.clone() })
    }

    /// Stores an account's token (replacing the previous one).
    pub async fn put(&self, entry: &AccountEntry) -> Result<(), BusError> {
        let subject = self.bus.topology().directory_entry(&entry.account_sid);
        let envelope = Envelope::new(crate::envelope::new_id(), "directory", entry.clone());
        self.bus.publish(subject, &envelope).await.map(|_| ())
    }

    pub async fn remove(&self, account_sid: &str) -> Result<(), BusError> {
        self.put(&AccountEntry {
            account_sid: account_sid.to_string(),
            sealed_token: None,
        })
        .await
    }

    /// Starts a background task that keeps `cache` equal to the directory.
    /// Resolves once the current contents are loaded or after
    /// `initial_wait`, whichever comes first; [`DirectoryCache::is_loaded`]
    /// tells which (the load goes on in the background).
    pub async fn follow(
        &self,
        cache: DirectoryCache,
        initial_wait: Duration,
        shutdown: CancellationToken,
    ) -> Result<(), BusError> {
        let topology = self.bus.topology().clone();
        let stream_name = topology.stream_name(StreamKind::Directory);
        let stream = self
            .bus
            .jetstream()
            .get_stream(&stream_name)
            .await
            .map_err(|e| BusError::Setup {
                what: format!("stream {stream_name}"),
                reason: e.to_string(),
            })?;
        let loaded = cache.clone();
        tokio::spawn(async move {
            while !shutdown.is_cancelled() {
                // Loaded once the entry at the stream's last sequence as it
                // is now was read: LastPerSubject always delivers that one.
                // (nats-server 2.9's pending count on this consumer can stay
                // above zero, which left ingest unready for good.)
                let last = stream
                    .get_info()
                    .await
                    .ok()
                    .map(|info| match info.state.messages {
                        0 => 0,
                        _ => info.state.last_sequence,
                    });
                if last == Some(0) {
                    cache.mark_loaded();
                }
                let ordered = stream
                    .create_consumer(consumer::pull::OrderedConfig {
                        filter_subject: topology.stream_subjects(StreamKind::Directory),
                        deliver_policy: DeliverPolicy::LastPerSubject,
                        ..Default::default()
                    })
                    .await;
                let mut messages = match ordered {
                    Ok(c) => match c.messages().await {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot follow tenant directory; retrying");
                            tokio::time::sleep(FOLLOW_RETRY.jittered(1)).await;
                            continue;
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot follow tenant directory; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(FOLLOW_RETRY.jittered(1)) => continue,
                        }
                    }
                };
                loop {
                    let next = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        next = messages.next() => next,
                    };
                    match next {
                        Some(Ok(message)) => {
                            match Envelope::<AccountEntry>::decode(&message.payload) {
                                Ok(env) => cache.apply(env.body),
                                Err(e) => tracing::warn!(error = %e, "unreadable directory entry"),
                            }
                            let caught_up = message
                                .info()
                                .map(|i| match last {
                                    Some(last) => i.stream_sequence >= last,
                                    None => i.pending == 0,
                                })
                                .unwrap_or(false);
                            if caught_up {
                                cache.mark_loaded();
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "tenant directory follow interrupted");
                            break;
                        }
                        None => break,
                    }
                }
            }
        });
        loaded.wait_loaded(initial_wait).await;
        Ok(())
    }
}

/// The in-memory copy ingest reads on every request: tokens opened with
/// the process's keyring.
#[derive(Clone)]
pub struct DirectoryCache {
    keys: Keyring,
    tokens: Arc<RwLock<HashMap<String, SecretString>>>,
    loaded: Arc<AtomicBool>,
    on_load: Arc<tokio::sync::Notify>,
}

impl DirectoryCache {
    pub fn new(keys: Keyring) -> Self {
        Self {
            keys,
            tokens: Arc::default(),
            loaded: Arc::default(),
            on_load: Arc::default(),
        }
    }

    /// Whether the directory's contents at the time of following were all
    /// read: until then an unknown account may only be not loaded yet.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    fn mark_loaded(&self) {
        if !self.loaded.swap(true, Ordering::AcqRel) {
            self.on_load.notify_waiters();
        }
    }

    /// Waits at most `limit` for the load; true when loaded.
    pub async fn wait_loaded(&self, limit: Duration) -> bool {
        let notified = self.on_load.notified();
        if self.is_loaded() {
            return true;
        }
        let _ = tokio::time::timeout(limit, notified).await;
        self.is_loaded()
    }

    pub fn auth_token(&self, account_sid: &str) -> Option<SecretString> {
        self.tokens
            .read()
            .expect("directory lock")
            .get(account_sid)
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.tokens.read().expect("directory lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one entry: a token replaces, no token removes. A token that
    /// does not open (its key is not in this process's keyring) leaves the
    /// previous one in place, loudly: the account keeps working if only
    /// its sealing changed, and an operator sees why a new token is not used.
    pub fn apply(&self, entry: AccountEntry) {
        let Some(sealed) = entry.sealed_token else {
            self.tokens
                .write()
                .expect("directory lock")
                .remove(&entry.account_sid);
            return;
        };
        match self
            .keys
            .open(&sealed, &twilio_token_context(&entry.account_sid))
        {
            Ok(token) => {
                self.tokens
                    .write()
                    .expect("directory lock")
                    .insert(entry.account_sid, token);
            }
            Err(e) => {
                metrics::counter!("waiter_directory_unopened_tokens_total").increment(1);
                tracing::error!(account = %entry.account_sid, key_id = %sealed.key_id, error = %e,
                    "cannot open this account's auth token; keeping the previous one");
            }
        }
    }
}
