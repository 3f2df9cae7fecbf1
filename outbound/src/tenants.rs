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
    per_second: NonZeroU32,
    limiter: DefaultDirectRateLimiter,
}

pub struct Tenants {
    pool: PgPool,
    keys: Keyring,
    cache: moka::future::Cache<Uuid, Arc<Restaurant>>,
    limiters: Mutex<HashMap<Uuid, Arc<Limiter>>>,
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

    /// Takes one send from the restaurant's quota, or tells how long until
    /// one is free. A changed quota replaces the limiter.
    pub fn try_acquire(&self, id: Uuid, per_second: i32) -> Result<(), Duration> {
        let per_second = NonZeroU32::new(per_second.max(1) as u32).unwrap_or(NonZeroU32::MIN);
        let limiter = {
            let mut limiters = self
                .limiters
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let entry = limiters
                .entry(id)
                .or_insert_with(|| new_limiter(per_second));
            if entry.per_second != per_second {
                *entry = new_limiter(per_second);
            }
            entry.clone()
        };
        limiter
            .limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

fn new_limiter(per_second: NonZeroU32) -> Arc<Limiter> {
    Arc::new(Limiter {
        per_second,
        limiter: RateLimiter::direct(Quota::per_second(per_second)),
    })
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
        assert!(t.try_acquire(a, 2).is_ok());
        assert!(t.try_acquire(a, 2).is_ok());
        let wait = t.try_acquire(a, 2).expect_err("third within a second");
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        assert!(
            t.try_acquire(b, 1).is_ok(),
            "another restaurant is not held back"
        );
        assert!(t.try_acquire(b, 1).is_err());
        // A raised quota applies at once.
        assert!(t.try_acquire(b, 50).is_ok());
    }
}
