//! Inbound limits per restaurant and per customer, configured per tenant.
//! Messages over a limit are still stored and shown; the bot just does not
//! answer them. Limits are counted per router replica (GCRA from
//! `governor`): with N replicas a tenant's effective ceiling is up to N
//! times its setting, which errs on the side of answering customers.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

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
    quotas: (u32, u32),
    restaurant: DefaultDirectRateLimiter,
    customers: DefaultKeyedRateLimiter<String>,
}

impl TenantLimiter {
    fn new(per_restaurant: u32, per_customer: u32) -> Self {
        let minute = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).expect("non-zero"));
        Self {
            quotas: (per_restaurant, per_customer),
            restaurant: RateLimiter::direct(minute(per_restaurant)),
            customers: RateLimiter::keyed(minute(per_customer)),
        }
    }
}

#[derive(Default)]
pub struct InboundLimits {
    tenants: Mutex<HashMap<Uuid, Arc<TenantLimiter>>>,
    checks: AtomicU64,
}

impl InboundLimits {
    /// Counts one message against the customer's and the restaurant's
    /// limits (messages per minute).
    pub fn check(
        &self,
        restaurant_id: Uuid,
        per_restaurant: u32,
        per_customer: u32,
        customer: &str,
    ) -> Decision {
        let limiter = {
            let mut tenants = self.tenants.lock().expect("limits lock");
            let entry = tenants
                .entry(restaurant_id)
                .or_insert_with(|| Arc::new(TenantLimiter::new(per_restaurant, per_customer)));
            if entry.quotas != (per_restaurant, per_customer) {
                // The tenant's limits changed: start afresh with the new ones.
                *entry = Arc::new(TenantLimiter::new(per_restaurant, per_customer));
            }
            entry.clone()
        };
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

    #[test]
    fn a_customer_over_the_limit_does_not_limit_others() {
        let limits = InboundLimits::default();
        let r = Uuid::new_v4();
        for _ in 0..3 {
            assert_eq!(limits.check(r, 100, 3, "whatsapp:+1"), Decision::Allowed);
        }
        assert_eq!(
            limits.check(r, 100, 3, "whatsapp:+1"),
            Decision::CustomerLimited
        );
        assert_eq!(limits.check(r, 100, 3, "whatsapp:+2"), Decision::Allowed);
    }

    #[test]
    fn the_restaurant_limit_covers_all_customers_and_tenants_are_separate() {
        let limits = InboundLimits::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for i in 0..5 {
            assert_eq!(limits.check(a, 5, 100, &format!("c{i}")), Decision::Allowed);
        }
        assert_eq!(limits.check(a, 5, 100, "c9"), Decision::RestaurantLimited);
        assert_eq!(limits.check(b, 5, 100, "c9"), Decision::Allowed);
    }

    #[test]
    fn changed_limits_apply_at_once() {
        let limits = InboundLimits::default();
        let r = Uuid::new_v4();
        assert_eq!(limits.check(r, 100, 1, "c"), Decision::Allowed);
        assert_eq!(limits.check(r, 100, 1, "c"), Decision::CustomerLimited);
        assert_eq!(limits.check(r, 100, 5, "c"), Decision::Allowed);
    }
}
