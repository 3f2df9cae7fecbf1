//! Restaurants as the sender needs them: cached for a short while (their
//! number, sealed credentials and outbound rate), and one rate limiter per
//! restaurant with the restaurant's own quota. Auth tokens are opened in
//! memory for each send and never cached open.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use governor::{
    clock::{Clock, DefaultClock},
    DefaultDirectRateLimiter, Quota, RateLimiter,
};
use secrecy::SecretString;
use sqlx::PgPool;
use uuid::Uuid;
use waiter_migrations::{restaurants::TokenError, Restaurant};
use waiter_secrets::Keyring;

/// Why a restaurant could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("restaurant {0} does not exist")]
    NotFound(Uuid),
    /// The database error's text (the cache shares one failure between
    /// every caller waiting for the same restaurant).
    #[error("cannot load restaurant: {0}")]
    Db(String),
}

struct Limiter {
    /// This replica's part of the restaurant's rate, in sends per 1000 s.
    per_kilosecond: u64,
    limiter: DefaultDirectRateLimiter,
    /// Twilio's `Retry-After`: nothing is sent for the restaurant before.
    paused_until: Option<std::time::Instant>,
}

pub struct Tenants {
    pool: PgPool,
    keys: Keyring,
    cache: moka::future::Cache<Uuid, Arc<Restaurant>>,
    limiters: Mutex<HashMap<Uuid, Limiter>>,
    clock: DefaultClock,
}

impl Tenants {
    pub fn new(pool: PgPool, ttl: Duration, keys: Keyring) -> Self {
        Self {
            pool,
            keys,
            cache: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(ttl)
                .build(),
            limiters: Mutex::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    /// The restaurant, from the cache or the database. A missing restaurant
    /// is not cached (it may be added in a moment).
    pub async fn get(&self, id: Uuid) -> Result<Arc<Restaurant>, TenantError> {
        let pool = self.pool.clone();
        self.cache
            .try_get_with(id, async move {
                match waiter_migrations::restaurants::by_id(&pool, id).await {
                    Ok(Some(r)) => Ok(Arc::new(r)),
                    Ok(None) => Err(TenantError::NotFound(id)),
                    Err(e) => Err(TenantError::Db(e.to_string())),
                }
            })
            .await
            .map_err(|shared: Arc<TenantError>| match &*shared {
                TenantError::NotFound(id) => TenantError::NotFound(*id),
                TenantError::Db(e) => TenantError::Db(e.clone()),
            })
    }

    /// The restaurant's auth token, opened with the stage's keyring.
    pub fn auth_token(&self, restaurant: &Restaurant) -> Result<SecretString, TokenError> {
        restaurant.open_auth_token(&self.keys)
    }

    /// Forgets a restaurant so its next message reads it anew (after
    /// Twilio refused its credentials, say).
    pub async fn forget(&self, id: Uuid) {
        self.cache.invalidate(&id).await;
    }

    /// Takes one send from this replica's share of the restaurant's quota
    /// (`share` of `per_second`, 0 < share <= 1), or tells how long until
    /// one is free. A changed quota or share replaces the limiter.
    pub fn try_acquire(&self, id: Uuid, per_second: i32, share: f64) -> Result<(), Duration> {
        let rate = f64::from(per_second.max(1)) * share.clamp(f64::MIN_POSITIVE, 1.0);
        let per_kilosecond = ((rate * 1000.0).round() as u64).max(1);
        let mut limiters = self
            .limiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = limiters
            .entry(id)
            .or_insert_with(|| new_limiter(per_kilosecond));
        if entry.per_kilosecond != per_kilosecond {
            let paused_until = entry.paused_until;
            *entry = new_limiter(per_kilosecond);
            entry.paused_until = paused_until;
        }
        if let Some(until) = entry.paused_until {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if !left.is_zero() {
                return Err(left);
            }
            entry.paused_until = None;
        }
        entry
            .limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Sends nothing for the restaurant from this replica for `wait`
    /// (Twilio's `Retry-After`); other restaurants go on.
    pub fn pause(&self, id: Uuid, wait: Duration) {
        let mut limiters = self
            .limiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let until = std::time::Instant::now() + wait;
        if let Some(entry) = limiters.get_mut(&id) {
            entry.paused_until = Some(entry.paused_until.map_or(until, |u| u.max(until)));
        }
    }
}

/// A limiter of `per_kilosecond` sends per 1000 s, with a burst of one
/// second's worth (at least one).
fn new_limiter(per_kilosecond: u64) -> Limiter {
    let period = Duration::from_secs_f64(1000.0 / per_kilosecond as f64);
    let burst = NonZeroU32::new((per_kilosecond / 1000).clamp(1, u64::from(u32::MAX)) as u32)
        .unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    Limiter {
        per_kilosecond,
        limiter: RateLimiter::direct(quota),
        paused_until: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants() -> Tenants {
        let pool = waiter_runtime::db::lazy_pool("postgres://nobody@127.0.0.1:1/none", 1)
            .expect("lazy pool");
        Tenants::new(pool, Duration::from_secs(30), Keyring::for_tests().clone())
    }

    #[tokio::test]
    async fn each_restaurant_has_its_own_quota() {
        let t = tenants();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(t.try_acquire(a, 2, 1.0).is_ok());
        assert!(t.try_acquire(a, 2, 1.0).is_ok());
        let wait = t.try_acquire(a, 2, 1.0).expect_err("third within a second");
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        assert!(
            t.try_acquire(b, 1, 1.0).is_ok(),
            "another restaurant is not held back"
        );
        assert!(t.try_acquire(b, 1, 1.0).is_err());
        // A raised quota applies at once.
        assert!(t.try_acquire(b, 50, 1.0).is_ok());
    }

    #[tokio::test]
    async fn a_replica_takes_its_share_and_twilio_can_pause_one_restaurant() {
        let t = tenants();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        // Half of 4/s: a burst of 2, then one every 500 ms.
        assert!(t.try_acquire(a, 4, 0.5).is_ok());
        assert!(t.try_acquire(a, 4, 0.5).is_ok());
        let wait = t.try_acquire(a, 4, 0.5).expect_err("over half of 4/s");
        assert!(
            wait > Duration::from_millis(300) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // A sixteenth of 5/s: under one a second, still one at a time.
        assert!(t.try_acquire(b, 5, 1.0 / 16.0).is_ok());
        let wait = t.try_acquire(b, 5, 1.0 / 16.0).expect_err("one per 3.2 s");
        assert!(wait > Duration::from_secs(3), "{wait:?}");
        // Retry-After holds one restaurant only.
        let c = Uuid::new_v4();
        assert!(t.try_acquire(c, 10, 1.0).is_ok());
        t.pause(c, Duration::from_secs(2));
        let wait = t.try_acquire(c, 10, 1.0).expect_err("paused");
        assert!(wait > Duration::from_millis(1500), "{wait:?}");
        assert!(t.try_acquire(Uuid::new_v4(), 10, 1.0).is_ok());
    }
}
