//! What the simulator remembers: accounts, where webhooks go, every
//! Messages API request and accepted message, pending faults, and the last
//! inbound message per customer (the WhatsApp 24-hour window).

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::api::{ApiRequest, Fault, Misbehaviour, SentMessage};

/// The last inbound message a customer sent to a business.
#[derive(Debug, Clone)]
pub(crate) struct LastInbound {
    pub business: String,
    pub at: DateTime<Utc>,
}

#[derive(Default)]
struct Sessions {
    /// (business number, customer) → time of the customer's last inbound.
    by_number: HashMap<(String, String), DateTime<Utc>>,
    /// (account sid, customer) → the business number and time of the last
    /// inbound, for sends that name a MessagingServiceSid instead of From.
    by_account: HashMap<(String, String), LastInbound>,
}

#[derive(Default)]
pub(crate) struct State {
    accounts: RwLock<HashMap<String, String>>,
    webhook_url: RwLock<String>,
    post_url: RwLock<Option<String>>,
    sent: Mutex<Vec<SentMessage>>,
    requests: Mutex<Vec<ApiRequest>>,
    faults: Mutex<Vec<Fault>>,
    misbehaviours: Mutex<Vec<Misbehaviour>>,
    sessions: Mutex<Sessions>,
    /// Woken whenever a message is accepted.
    pub sent_changed: Notify,
}

/// A panic while holding a lock cannot leave these collections half
/// updated (every update is a single push or insert), so a poisoned lock is
/// still safe to use.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    pub fn new(
        webhook_url: String,
        post_url: Option<String>,
        accounts: Vec<(String, String)>,
    ) -> Self {
        let state = State::default();
        *write(&state.webhook_url) = webhook_url;
        *write(&state.post_url) = post_url;
        for (sid, token) in accounts {
            state.add_account(sid, token);
        }
        state
    }

    // ---- accounts ----

    pub fn add_account(&self, sid: String, token: String) {
        write(&self.accounts).insert(sid, token);
    }

    pub fn token(&self, sid: &str) -> Option<String> {
        read(&self.accounts).get(sid).cloned()
    }

    /// The account SID when exactly one account is configured.
    pub fn only_account(&self) -> Option<String> {
        let accounts = read(&self.accounts);
        if accounts.len() == 1 {
            accounts.keys().next().cloned()
        } else {
            None
        }
    }

    pub fn account_count(&self) -> usize {
        read(&self.accounts).len()
    }

    // ---- webhook target ----

    pub fn webhook_url(&self) -> String {
        read(&self.webhook_url).clone()
    }

    pub fn set_webhook_url(&self, url: String) {
        *write(&self.webhook_url) = url;
    }

    pub fn post_url(&self) -> Option<String> {
        read(&self.post_url).clone()
    }

    pub fn set_post_url(&self, url: Option<String>) {
        *write(&self.post_url) = url;
    }

    // ---- Messages API records ----

    pub fn push_sent(&self, message: SentMessage) {
        lock(&self.sent).push(message);
        self.sent_changed.notify_waiters();
    }

    pub fn sent(&self) -> Vec<SentMessage> {
        lock(&self.sent).clone()
    }

    pub fn sent_to(&self, to: &str) -> Vec<SentMessage> {
        lock(&self.sent)
            .iter()
            .filter(|m| m.to == to)
            .cloned()
            .collect()
    }

    pub fn push_request(&self, request: ApiRequest) {
        lock(&self.requests).push(request);
    }

    pub fn requests(&self) -> Vec<ApiRequest> {
        lock(&self.requests).clone()
    }

    // ---- faults ----

    pub fn add_fault(&self, fault: Fault) {
        if fault.times > 0 {
            lock(&self.faults).push(fault);
        }
    }

    /// Consumes one use of the first pending fault that applies to a send
    /// to `to` (faults are used in the order they were injected).
    pub fn take_fault(&self, to: Option<&str>) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let index = faults.iter().position(|f| match &f.to {
            None => true,
            Some(only) => Some(only.as_str()) == to,
        })?;
        let fault = &mut faults[index];
        fault.times -= 1;
        let taken = fault.clone();
        if fault.times == 0 {
            faults.remove(index);
        }
        Some(taken)
    }

    pub fn add_misbehaviour(&self, mut misbehaviour: Misbehaviour) {
        if *misbehaviour.times_mut() > 0 {
            lock(&self.misbehaviours).push(misbehaviour);
        }
    }

    /// Consumes one use of the first pending misbehaviour.
    pub fn take_misbehaviour(&self) -> Option<Misbehaviour> {
        let mut pending = lock(&self.misbehaviours);
        let first = pending.first_mut()?;
        *first.times_mut() -= 1;
        let taken = *first;
        if *first.times_mut() == 0 {
            pending.remove(0);
        }
        Some(taken)
    }

    // ---- the 24-hour window ----

    pub fn record_inbound(
        &self,
        account_sid: &str,
        business: &str,
        customer: &str,
        at: DateTime<Utc>,
    ) {
        let mut sessions = lock(&self.sessions);
        sessions
            .by_number
            .insert((business.to_string(), customer.to_string()), at);
        sessions.by_account.insert(
            (account_sid.to_string(), customer.to_string()),
            LastInbound {
                business: business.to_string(),
                at,
            },
        );
    }

    /// Overrides (or with `None` forgets) a customer's last inbound time to
    /// one business number, in every account.
    pub fn set_last_inbound(&self, business: &str, customer: &str, at: Option<DateTime<Utc>>) {
        let mut sessions = lock(&self.sessions);
        let key = (business.to_string(), customer.to_string());
        match at {
            Some(at) => {
                sessions.by_number.insert(key, at);
            }
            None => {
                sessions.by_number.remove(&key);
            }
        }
        sessions.by_account.retain(|(_, c), last| {
            if c != customer || last.business != business {
                return true;
            }
            match at {
                Some(at) => {
                    last.at = at;
                    true
                }
                None => false,
            }
        });
    }

    pub fn last_inbound_to_number(&self, business: &str, customer: &str) -> Option<DateTime<Utc>> {
        lock(&self.sessions)
            .by_number
            .get(&(business.to_string(), customer.to_string()))
            .copied()
    }

    pub fn last_inbound_in_account(
        &self,
        account_sid: &str,
        customer: &str,
    ) -> Option<LastInbound> {
        lock(&self.sessions)
            .by_account
            .get(&(account_sid.to_string(), customer.to_string()))
            .cloned()
    }
}
