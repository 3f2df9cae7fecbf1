//! From a handler's outcome to what the loop does with the message: pure
//! decisions, unit-tested without servers.

use std::time::Duration;

use super::outcome::{FailureClass, Outcome};

/// Exponential backoff with "equal jitter": the n-th wait is drawn
/// uniformly from [c/2, c] where c = `initial` × 2ⁿ⁻¹ capped at `max`. The
/// jitter keeps the replicas of a stage that all failed at once (the
/// database restarted) from retrying in lock-step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const DEFAULT: Backoff = Backoff {
        initial: Duration::from_millis(250),
        max: Duration::from_secs(30),
    };

    /// The upper bound of the wait after the `attempt`-th failure (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        self.initial
            .saturating_mul(1u32 << exponent)
            .min(self.max)
            .max(Duration::from_millis(1))
    }

    /// The wait after the `attempt`-th failure; `unit` is a random number
    /// in [0, 1) (passed in so the bounds can be tested).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// [`Backoff::delay`] with a fresh random number.
    pub fn jittered(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random::<f64>())
    }
}

/// How long the loop keeps trying, per class of failure.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    /// Attempts of a message failing for unknown reasons before it is
    /// dead-lettered (`WORKER_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// How long a message may keep failing for unknown reasons
    /// (`WORKER_MAX_RETRY_SECS`), whichever bound comes first.
    pub max_retry: Duration,
    /// Attempts of a permanent failure (`WORKER_PERMANENT_ATTEMPTS`).
    pub permanent_attempts: u32,
    /// The consumer's last delivery (`max_deliver`).
    pub max_deliver: i64,
}

/// Where one message stands, as the loop counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// 1-based: the attempt that just ended.
    pub attempt: u32,
    /// JetStream's delivery count of the message.
    pub delivered: i64,
    /// Since the first failure of this message seen by this holder.
    pub failing_for: Duration,
}

/// Why a message went to the dead-letter stream (`reason_class` of the letter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LetterClass {
    /// The handler gave up on it ([`Outcome::DeadLetter`]).
    Rejected,
    /// A permanent failure.
    Permanent,
    /// An unknown failure that kept failing to the configured bound.
    Exhausted,
    /// It failed on the consumer's last delivery: JetStream would never
    /// deliver it again.
    LastDelivery,
    /// Its envelope could not be decoded.
    Poison,
}

impl LetterClass {
    pub fn as_str(self) -> &'static str {
        match self {
            LetterClass::Rejected => "rejected",
            LetterClass::Permanent => "permanent",
            LetterClass::Exhausted => "exhausted",
            LetterClass::LastDelivery => "max_deliver",
            LetterClass::Poison => "poison",
        }
    }
}

/// What the loop does next with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Ack,
    /// Try again in place after `delay`: an attempt.
    Retry {
        delay: Duration,
    },
    /// Try again in place after `delay`: not an attempt.
    Defer {
        delay: Duration,
    },
    DeadLetter {
        class: LetterClass,
    },
}

/// The decision for one outcome. `unit` is a random number in [0, 1) for
/// the backoff's jitter.
pub fn settle(outcome: &Outcome, at: Attempt, policy: &RetryPolicy, unit: f64) -> Settlement {
    let last_delivery = at.delivered >= policy.max_deliver;
    let retry = || Settlement::Retry {
        delay: policy.backoff.delay(at.attempt, unit),
    };
    match outcome {
        Outcome::Ack => Settlement::Ack,
        Outcome::DeadLetter(_) => Settlement::DeadLetter {
            class: LetterClass::Rejected,
        },
        // Kept in place the message is not redelivered, but if this
        // process died now JetStream would never deliver it again: it
        // would vanish without a trace.
        Outcome::Retry(_) | Outcome::Defer { .. } if last_delivery => Settlement::DeadLetter {
            class: LetterClass::LastDelivery,
        },
        Outcome::Defer { delay, .. } => Settlement::Defer {
            delay: (*delay).max(Duration::from_millis(1)),
        },
        Outcome::Retry(failure) => match failure.class {
            FailureClass::Transient => retry(),
            FailureClass::Permanent if at.attempt >= policy.permanent_attempts => {
                Settlement::DeadLetter {
                    class: LetterClass::Permanent,
                }
            }
            FailureClass::Permanent => retry(),
            FailureClass::Unknown
                if at.attempt >= policy.max_attempts || at.failing_for >= policy.max_retry =>
            {
                Settlement::DeadLetter {
                    class: LetterClass::Exhausted,
                }
            }
            FailureClass::Unknown => retry(),
        },
    }
}

/// The attempt number of a message just delivered: its earlier
/// deliveries each count as one (a crash or a takeover cut them short),
/// plus the in-place attempts this holder made.
pub fn attempt_number(delivered: i64, attempts_here: u32) -> u32 {
    let earlier = u32::try_from(delivered.max(1) - 1).unwrap_or(u32::MAX);
    earlier.saturating_add(attempts_here).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::outcome::Failure;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            backoff: Backoff::DEFAULT,
            max_attempts: 5,
            max_retry: Duration::from_secs(60),
            permanent_attempts: 2,
            max_deliver: 20,
        }
    }

    fn at(attempt: u32) -> Attempt {
        Attempt {
            attempt,
            delivered: 1,
            failing_for: Duration::from_secs(1),
        }
    }

    #[test]
    fn backoff_doubles_is_capped_and_jitters_within_bounds() {
        let b = Backoff::DEFAULT;
        assert_eq!(b.ceiling(1), Duration::from_millis(250));
        assert_eq!(b.ceiling(2), Duration::from_millis(500));
        assert_eq!(b.ceiling(4), Duration::from_secs(2));
        assert_eq!(b.ceiling(100), Duration::from_secs(30));
        assert_eq!(b.ceiling(0), Duration::from_millis(250));
        for attempt in 1..=12 {
            let ceiling = b.ceiling(attempt);
            assert_eq!(b.delay(attempt, 0.0), ceiling / 2);
            assert_eq!(b.delay(attempt, 1.0), ceiling);
            for _ in 0..200 {
                let d = b.jittered(attempt);
                assert!(d >= ceiling / 2 && d <= ceiling, "{attempt}: {d:?}");
            }
        }
        // Jitter actually spreads replicas out.
        let samples: std::collections::BTreeSet<Duration> =
            (0..50).map(|_| b.jittered(6)).collect();
        assert!(samples.len() > 10, "{samples:?}");
    }

    #[test]
    fn ack_and_rejections_settle_at_once() {
        assert_eq!(
            settle(&Outcome::Ack, at(1), &policy(), 0.5),
            Settlement::Ack
        );
        assert_eq!(
            settle(&Outcome::dead_letter("never"), at(1), &policy(), 0.5),
            Settlement::DeadLetter {
                class: LetterClass::Rejected
            }
        );
    }

    #[test]
    fn transient_failures_retry_without_bound_until_the_last_delivery() {
        let outcome = Outcome::transient("database down");
        for attempt in [1, 5, 50, 5000] {
            let mut a = at(attempt);
            a.failing_for = Duration::from_secs(3600);
            assert!(
                matches!(
                    settle(&outcome, a, &policy(), 0.5),
                    Settlement::Retry { .. }
                ),
                "{attempt}"
            );
        }
        let last = Attempt {
            delivered: 20,
            ..at(1)
        };
        assert_eq!(
            settle(&outcome, last, &policy(), 0.5),
            Settlement::DeadLetter {
                class: LetterClass::LastDelivery
            }
        );
    }

    #[test]
    fn permanent_failures_get_the_configured_attempts() {
        let outcome = Outcome::Retry(Failure::permanent("23505"));
        assert_eq!(
            settle(&outcome, at(1), &policy(), 0.0),
            Settlement::Retry {
                delay: Duration::from_millis(125)
            }
        );
        assert_eq!(
            settle(&outcome, at(2), &policy(), 0.0),
            Settlement::DeadLetter {
                class: LetterClass::Permanent
            }
        );
    }

    #[test]
    fn unknown_failures_are_bounded_in_attempts_and_time() {
        let outcome = Outcome::retry("who knows");
        assert!(matches!(
            settle(&outcome, at(4), &policy(), 0.5),
            Settlement::Retry { .. }
        ));
        assert_eq!(
            settle(&outcome, at(5), &policy(), 0.5),
            Settlement::DeadLetter {
                class: LetterClass::Exhausted
            }
        );
        let long = Attempt {
            failing_for: Duration::from_secs(61),
            ..at(2)
        };
        assert_eq!(
            settle(&outcome, long, &policy(), 0.5),
            Settlement::DeadLetter {
                class: LetterClass::Exhausted
            }
        );
    }

    #[test]
    fn deferrals_are_not_attempts_but_respect_the_last_delivery() {
        let outcome = Outcome::defer(Duration::from_millis(700), "rate limit");
        let many = Attempt {
            attempt: 1_000,
            failing_for: Duration::from_secs(10_000),
            delivered: 1,
        };
        assert_eq!(
            settle(&outcome, many, &policy(), 0.5),
            Settlement::Defer {
                delay: Duration::from_millis(700)
            }
        );
        let last = Attempt {
            delivered: 25,
            ..at(1)
        };
        assert!(matches!(
            settle(&outcome, last, &policy(), 0.5),
            Settlement::DeadLetter { .. }
        ));
    }

    #[test]
    fn attempts_count_earlier_deliveries_and_in_place_retries() {
        assert_eq!(attempt_number(1, 0), 1);
        assert_eq!(attempt_number(1, 2), 3);
        assert_eq!(attempt_number(3, 0), 3);
        assert_eq!(attempt_number(0, 0), 1);
    }
}
