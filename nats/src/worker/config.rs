//! The worker loop's settings, from the environment, checked at start.

use std::time::Duration;

use super::{
    assignment::Timing,
    policy::{Backoff, RetryPolicy},
};

/// How every worker of a process pulls, retries and holds partitions.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// `WAITER_REPLICA_ID`: this process's identity among the replicas of
    /// its stage, given by a supervisor (`conversation-2`) so that a
    /// restarted process reclaims its own leases at once. Random when
    /// unset.
    pub replica_id: Option<String>,
    /// `WORKER_WINDOW` (32): messages one partition owner holds at once
    /// (the partition consumers' `max_ack_pending`). Larger windows mean
    /// fewer pull round trips and bigger batches; after a crash that many
    /// messages wait for the ack wait before they are redelivered.
    pub window: u16,
    /// `WORKER_LANES` (8): conversations handled at once within one
    /// partition by a keyed-lanes worker (outbound).
    pub lanes: u16,
    /// `WORKER_MAX_ATTEMPTS` (8): attempts of a message failing for an
    /// unknown reason. With the default backoff (250 ms doubling) eight
    /// attempts take 16–32 s.
    pub max_attempts: u32,
    /// `WORKER_MAX_RETRY_SECS` (60): the same bound in time, whichever
    /// comes first: an unknown failure blocks its partition at most this
    /// long (invariant 7).
    pub max_retry: Duration,
    /// `WORKER_PERMANENT_ATTEMPTS` (2): attempts of a permanent failure.
    /// One retry ~250 ms later absorbs a constraint race between two
    /// partitions creating the same row; a second identical failure is
    /// not a race.
    pub permanent_attempts: u32,
    /// `WORKER_MAX_DELIVER` (20): JetStream deliveries of one message. Retries
    /// happen in place, so a message is redelivered only after a crash, a
    /// takeover or an ack timeout: one that keeps killing its worker is
    /// dead-lettered after this many instead of crash-looping.
    pub max_deliver: i64,
    /// `WORKER_LEASE_TTL_MS` (6000): how long a replica's heartbeat may
    /// stay unchanged before others take its partitions. Heartbeats go
    /// out every TTL/6; a holder pauses itself TTL/3 before the TTL.
    pub lease_ttl: Duration,
    /// How long an envelope of a newer schema waits (in place, keeping its
    /// partition's order) before this reader tries again: a rolling deploy
    /// replaces this process meanwhile.
    pub newer_schema_delay: Duration,
    pub backoff: Backoff,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            replica_id: None,
            window: 32,
            lanes: 8,
            max_attempts: 8,
            max_retry: Duration::from_secs(60),
            permanent_attempts: 2,
            max_deliver: 20,
            lease_ttl: Duration::from_secs(6),
            newer_schema_delay: Duration::from_secs(5),
            backoff: Backoff::DEFAULT,
        }
    }
}

impl WorkerConfig {
    /// Reads the `WORKER_*` variables and `WAITER_REPLICA_ID`; every
    /// problem is reported.
    pub fn from_env() -> Result<Self, Vec<String>> {
        let mut problems = vec![];
        let d = Self::default();
        let mut read = |name: &str, default: u64| -> u64 {
            match std::env::var(name) {
                Ok(raw) if !raw.trim().is_empty() => raw.trim().parse().unwrap_or_else(|_| {
                    problems.push(format!("{name}={raw:?} is not a whole number"));
                    default
                }),
                _ => default,
            }
        };
        let window = read("WORKER_WINDOW", u64::from(d.window));
        let lanes = read("WORKER_LANES", u64::from(d.lanes));
        let max_attempts = read("WORKER_MAX_ATTEMPTS", u64::from(d.max_attempts));
        let max_retry = read("WORKER_MAX_RETRY_SECS", d.max_retry.as_secs());
        let permanent = read("WORKER_PERMANENT_ATTEMPTS", u64::from(d.permanent_attempts));
        let max_deliver = read("WORKER_MAX_DELIVER", d.max_deliver as u64);
        let ttl_ms = read("WORKER_LEASE_TTL_MS", d.lease_ttl.as_millis() as u64);
        let config = Self {
            replica_id: std::env::var("WAITER_REPLICA_ID")
                .ok()
                .map(|id| id.trim().to_string())
                .filter(|id| !id.is_empty()),
            window: window.min(u64::from(u16::MAX)) as u16,
            lanes: lanes.min(u64::from(u16::MAX)) as u16,
            max_attempts: max_attempts.min(u64::from(u32::MAX)) as u32,
            max_retry: Duration::from_secs(max_retry),
            permanent_attempts: permanent.min(u64::from(u32::MAX)) as u32,
            max_deliver: max_deliver.min(i64::MAX as u64) as i64,
            lease_ttl: Duration::from_millis(ttl_ms),
            ..d
        };
        problems.extend(config.problems());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// What is wrong with these settings, if anything.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = vec![];
        if let Some(id) = &self.replica_id {
            if let Err(e) = validate_replica_id(id) {
                problems.push(e);
            }
        }
        if !(1..=1024).contains(&self.window) {
            problems.push(format!(
                "WORKER_WINDOW must be between 1 and 1024, got {}",
                self.window
            ));
        }
        if self.lanes == 0 || self.lanes > self.window {
            problems.push(format!(
                "WORKER_LANES must be between 1 and WORKER_WINDOW ({}), got {}",
                self.window, self.lanes
            ));
        }
        if !(1..=1000).contains(&self.max_attempts) {
            problems.push(format!(
                "WORKER_MAX_ATTEMPTS must be between 1 and 1000, got {}",
                self.max_attempts
            ));
        }
        if !(1..=3600).contains(&self.max_retry.as_secs()) {
            problems.push(format!(
                "WORKER_MAX_RETRY_SECS must be between 1 and 3600, got {}",
                self.max_retry.as_secs()
            ));
        }
        if !(1..=20).contains(&self.permanent_attempts) {
            problems.push(format!(
                "WORKER_PERMANENT_ATTEMPTS must be between 1 and 20, got {}",
                self.permanent_attempts
            ));
        }
        if !(2..=100_000).contains(&self.max_deliver) {
            problems.push(format!(
                "WORKER_MAX_DELIVER must be between 2 and 100000, got {}",
                self.max_deliver
            ));
        }
        if !(Duration::from_millis(1500)..=Duration::from_secs(300)).contains(&self.lease_ttl) {
            problems.push(format!(
                "WORKER_LEASE_TTL_MS must be between 1500 and 300000, got {}",
                self.lease_ttl.as_millis()
            ));
        }
        problems
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            backoff: self.backoff,
            max_attempts: self.max_attempts,
            max_retry: self.max_retry,
            permanent_attempts: self.permanent_attempts,
            max_deliver: self.max_deliver,
        }
    }

    pub fn timing(&self) -> Timing {
        Timing::from_ttl(self.lease_ttl)
    }
}

/// A replica id becomes a subject token: letters, digits, `-` and `_`.
pub fn validate_replica_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "WAITER_REPLICA_ID={id:?} must be 1–64 letters, digits, '-' or '_'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_each_reported() {
        assert!(WorkerConfig::default().problems().is_empty());
        let bad = WorkerConfig {
            replica_id: Some("conversation.2".into()),
            window: 0,
            lanes: 0,
            max_deliver: 1,
            lease_ttl: Duration::from_millis(10),
            ..WorkerConfig::default()
        };
        let problems = bad.problems();
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("WAITER_REPLICA_ID")));
        assert!(validate_replica_id("conversation-2").is_ok());
        assert!(validate_replica_id("a b").is_err());
    }
}
