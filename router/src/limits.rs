//! Inbound limits per restaurant and per customer, configured per tenant.
//! Messages over a limit are still stored and shown; the bot just does not
//! answer them. Limits are counted per router replica (GCRA from
//! `governor`) at the time each message reached ingest, not when the router
//! gets to it: after an outage the backlog keeps the pace it arrived at
//! instead of looking like a burst. A customer's messages all reach one partition (To, From),
//! owned by one replica, so the customer limit holds with any number of
//! replicas. The restaurant limit is split: each replica takes the share
//! of it that matches the share of the partitions it owns, so the
//! replicas' shares add up to at most the setting.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use governor::{
    clock::Clock,
    middleware::NoOpMiddleware,
    state::{keyed::DashMapStateStore, InMemoryState, NotKeyed},
    Quota, RateLimiter,
};
use uuid::Uuid;

/// The arrival time of the message being counted (since the Unix epoch),
/// set under the tenant's lock just before it is counted.
#[derive(Clone, Default)]
struct ArrivalClock(Arc<AtomicU64>);

impl Clock for ArrivalClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Acquire))
    }
}

type DirectLimiter = RateLimiter<NotKeyed, InMemoryState, ArrivalClock, NoOpMiddleware<Duration>>;
type KeyedLimiter =
    RateLimiter<String, DashMapStateStore<String>, ArrivalClock, NoOpMiddleware<Duration>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    CustomerLimited,
    RestaurantLimited,
}

impl Decision {
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Decision::Allowed => None,
            Decision::CustomerLimited => Some("customer over the inbound limit"),
            Decision::RestaurantLimited => Some("restaurant over the inbound limit"),
        }
    }
}

struct TenantLimiter {
    /// (this replica's restaurant share in messages per 1000 minutes, per customer).
    quotas: (u64, u32),
    clock: ArrivalClock,
    /// Held while the clock is set and the message counted.
    counting: Mutex<()>,
    restaurant: DirectLimiter,
    customers: KeyedLimiter,
}

impl TenantLimiter {
    fn new(restaurant_per_kilominute: u64, per_customer: u32) -> Self {
        let minute = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).expect("non-zero"));
        let per_kilominute = restaurant_per_kilominute.max(1);
        let burst = NonZeroU32::new((per_kilominute / 1000).clamp(1, u64::from(u32::MAX)) as u32)
            .unwrap_or(NonZeroU32::MIN);
        let period = std::time::Duration::from_secs_f64(60_000.0 / per_kilominute as f64);
        let restaurant = Quota::with_period(period)
            .unwrap_or_else(|| minute(1))
            .allow_burst(burst);
        let clock = ArrivalClock::default();
        Self {
            quotas: (per_kilominute, per_customer),
            restaurant: RateLimiter::direct_with_clock(restaurant, &clock),
            customers: RateLimiter::dashmap_with_clock(minute(per_customer), &clock),
            clock,
            counting: Mutex::new(()),
        }
    }
}

#[derive(Default)]
pub struct InboundLimits {
    tenants: Mutex<HashMap<Uuid, Arc<TenantLimiter>>>,
    checks: AtomicU64,
}

impl InboundLimits {
    /// Counts one message, which reached ingest at `arrived_at`, against
    /// the customer's and the restaurant's limits (messages per minute);
    /// `share` (0 < share <= 1) is this replica's part of the restaurant's
    /// limit.
    pub fn check(
        &self,
        restaurant_id: Uuid,
        per_restaurant: u32,
        per_customer: u32,
        customer: &str,
        share: f64,
        arrived_at: DateTime<Utc>,
    ) -> Decision {
        let share = share.clamp(f64::MIN_POSITIVE, 1.0);
        let per_kilominute =
            ((f64::from(per_restaurant.max(1)) * share * 1000.0).round() as u64).max(1);
        let limiter = {
            let mut tenants = self.tenants.lock().expect("limits lock");
            let entry = tenants
                .entry(restaurant_id)
                .or_insert_with(|| Arc::new(TenantLimiter::new(per_kilominute, per_customer)));
            if entry.quotas != (per_kilominute, per_customer) {
                // The tenant's limits (or this replica's share) changed:
                // start afresh with the new ones.
                *entry = Arc::new(TenantLimiter::new(per_kilominute, per_customer));
            }
            entry.clone()
        };
        let _counting = limiter.counting.lock().expect("counting lock");
        let arrival = arrived_at.timestamp_nanos_opt().unwrap_or(0).max(0) as u64;
        limiter.clock.0.store(arrival, Ordering::Release);
        if self.checks.fetch_add(1, Ordering::Relaxed) % 10_000 == 9_999 {
            limiter.customers.retain_recent();
        }
        if limiter.customers.check_key(&customer.to_string()).is_err() {
            return Decision::CustomerLimited;
        }
        if limiter.restaurant.check().is_err() {
            return Decision::RestaurantLimited;
        }
        Decision::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: f64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
            + chrono::Duration::milliseconds((second * 1000.0) as i64)
    }

    #[test]
    fn a_customer_over_the_limit_does_not_limit_others() {
        let limits = InboundLimits::default();
        let r = Uuid::new_v4();
        for _ in 0..3 {
            assert_eq!(
                limits.check(r, 100, 3, "whatsapp:+1", 1.0, at(0.0)),
                Decision::Allowed
            );
        }
        assert_eq!(
            limits.check(r, 100, 3, "whatsapp:+1", 1.0, at(0.0)),
            Decision::CustomerLimited
        );
        assert_eq!(
            limits.check(r, 100, 3, "whatsapp:+2", 1.0, at(0.0)),
            Decision::Allowed
        );
    }

    #[test]
    fn the_restaurant_limit_covers_all_customers_and_tenants_are_separate() {
        let limits = InboundLimits::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for i in 0..5 {
            assert_eq!(
                limits.check(a, 5, 100, &format!("c{i}"), 1.0, at(0.0)),
                Decision::Allowed
            );
        }
        assert_eq!(
            limits.check(a, 5, 100, "c9", 1.0, at(0.0)),
            Decision::RestaurantLimited
        );
        assert_eq!(
            limits.check(b, 5, 100, "c9", 1.0, at(0.0)),
            Decision::Allowed
        );
    }

    #[test]
    fn a_replica_owning_a_quarter_takes_a_quarter_of_the_restaurant_limit() {
        let limits = InboundLimits::default();
        let r = Uuid::new_v4();
        let allowed = (0..40)
            .filter(|i| {
                limits.check(r, 40, 100, &format!("c{i}"), 0.25, at(0.0)) == Decision::Allowed
            })
            .count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn changed_limits_apply_at_once() {
        let limits = InboundLimits::default();
        let r = Uuid::new_v4();
        assert_eq!(
            limits.check(r, 100, 1, "c", 1.0, at(0.0)),
            Decision::Allowed
        );
        assert_eq!(
            limits.check(r, 100, 1, "c", 1.0, at(0.0)),
            Decision::CustomerLimited
        );
        assert_eq!(
            limits.check(r, 100, 5, "c", 1.0, at(0.0)),
            Decision::Allowed
        );
    }

    #[test]
    fn a_backlog_is_counted_at_the_pace_it_arrived() {
        let limits = InboundLimits::default();
        let r = Uuid::new_v4();
        // 30 messages sent 3 s apart (20 a minute), all counted at once
        // after an outage: none is over a 20-per-minute limit.
        let allowed = (0..30)
            .filter(|i| {
                limits.check(r, 1000, 20, "c", 1.0, at(f64::from(*i) * 3.0)) == Decision::Allowed
            })
            .count();
        assert_eq!(allowed, 30);
        // 30 sent within one second are a burst however late they are counted.
        let burst = (0..30)
            .filter(|i| {
                limits.check(r, 1000, 20, "d", 1.0, at(200.0 + f64::from(*i) / 30.0))
                    == Decision::Allowed
            })
            .count();
        assert_eq!(burst, 20);
    }
}
