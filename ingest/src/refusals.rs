//! What refused requests may cost: counts per (endpoint, outcome, source
//! address, minute) and a few truncated samples, never one message per
//! request; and a per-source threshold past which a refused request costs
//! nothing but its answer.
//!
//! Pure bookkeeping: the clock is passed in, publishing is the caller's.
//! Only requests that failed the signature check (or could not be checked)
//! are throttled, so a validly signed request never is.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use uuid::Uuid;
use waiter_nats::messages::{RefusedSample, RefusedWebhooks, WebhookOutcome};

use crate::form;

/// How refused requests are counted, sampled and throttled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalPolicy {
    /// Refused requests a source may make per minute before further ones
    /// are answered without a sample or a log line (and, when unsigned,
    /// without reading their body).
    pub threshold_per_minute: u32,
    /// Samples kept per (endpoint, outcome, source, minute).
    pub samples: usize,
    /// Distinct sources counted per minute; the rest count as `other`.
    pub max_sources: usize,
    /// How often counts are published.
    pub flush_every: Duration,
}

impl Default for RefusalPolicy {
    fn default() -> Self {
        Self {
            threshold_per_minute: 60,
            samples: 3,
            max_sources: 200,
            flush_every: Duration::from_secs(10),
        }
    }
}

/// What to do with one refused request beyond answering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Counted, and kept as a sample (log it).
    Sampled,
    /// Counted only: this minute has its samples already.
    Counted,
    /// The source is over its threshold: counted, nothing else, and the
    /// connection is closed after the answer.
    Throttled,
}

/// The caps of one sample: parameters, characters per name and value, and
/// bytes of names and values together.
pub const SAMPLE_PARAMS: usize = 16;
pub const SAMPLE_NAME_CHARS: usize = 32;
pub const SAMPLE_VALUE_CHARS: usize = 160;
pub const SAMPLE_BYTES: usize = 4096;
/// The source address past `max_sources`.
pub const OTHER_SOURCES: &str = "other";
/// Reports kept for a later flush while the bus cannot take them.
const MAX_PENDING_REPORTS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    endpoint: &'static str,
    outcome: WebhookOutcome,
    source: String,
}

#[derive(Debug, Default)]
struct Bucket {
    reason: String,
    count: u64,
    throttled: u64,
    samples: Vec<RefusedSample>,
    changed: bool,
    samples_changed: bool,
}

#[derive(Debug, Default)]
struct Minute {
    start: DateTime<Utc>,
    refused_by_source: HashMap<String, u32>,
    buckets: HashMap<Key, Bucket>,
}

/// The counts of one ingest process.
pub struct Refusals {
    ingest_id: Uuid,
    policy: RefusalPolicy,
    state: Mutex<(Minute, Vec<RefusedWebhooks>)>,
}

fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::minutes(1)).unwrap_or(at)
}

impl Refusals {
    pub fn new(policy: RefusalPolicy) -> Self {
        Self {
            ingest_id: Uuid::new_v4(),
            policy,
            state: Mutex::new((Minute::default(), vec![])),
        }
    }

    pub fn policy(&self) -> &RefusalPolicy {
        &self.policy
    }

    /// Whether `source` is over its threshold this minute (checked before
    /// reading the body of a request that carries no signature at all).
    pub fn is_throttled(&self, source: &str, now: DateTime<Utc>) -> bool {
        let mut state = self.state.lock().expect("refusals lock");
        self.roll(&mut state, now);
        let minute = &state.0;
        let source = self.counted_source(minute, source);
        minute
            .refused_by_source
            .get(source)
            .is_some_and(|&n| n >= self.policy.threshold_per_minute)
    }

    /// Counts one request. `refused` is false for what was signed validly
    /// (a duplicate Twilio retried): counted and sampled, never throttled.
    /// `sample` is only called when a sample is kept.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        endpoint: &'static str,
        outcome: WebhookOutcome,
        source: &str,
        reason: &str,
        refused: bool,
        now: DateTime<Utc>,
        sample: impl FnOnce() -> RefusedSample,
    ) -> Verdict {
        let mut state = self.state.lock().expect("refusals lock");
        self.roll(&mut state, now);
        let minute = &mut state.0;
        let source = self.counted_source(minute, source).to_string();
        let throttled = refused && {
            let n = minute.refused_by_source.entry(source.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n > self.policy.threshold_per_minute
        };
        let bucket = minute
            .buckets
            .entry(Key {
                endpoint,
                outcome,
                source,
            })
            .or_insert_with(|| Bucket {
                reason: reason.to_string(),
                ..Bucket::default()
            });
        bucket.count += 1;
        bucket.changed = true;
        if throttled {
            bucket.throttled += 1;
            Verdict::Throttled
        } else if bucket.samples.len() < self.policy.samples {
            bucket.samples.push(sample());
            bucket.samples_changed = true;
            Verdict::Sampled
        } else {
            Verdict::Counted
        }
    }

    /// The reports to publish: every count that changed since the last
    /// drain (cumulative for its minute), and those of minutes that ended.
    pub fn drain(&self, now: DateTime<Utc>) -> Vec<RefusedWebhooks> {
        let mut state = self.state.lock().expect("refusals lock");
        self.roll(&mut state, now);
        let (minute, pending) = &mut *state;
        let mut reports = std::mem::take(pending);
        let start = minute.start;
        for (key, bucket) in minute.buckets.iter_mut().filter(|(_, b)| b.changed) {
            reports.push(self.report(start, key, bucket));
            bucket.changed = false;
            bucket.samples_changed = false;
        }
        reports
    }

    /// Gives back reports the bus did not take, for the next flush.
    pub fn retry_later(&self, reports: Vec<RefusedWebhooks>) {
        let mut state = self.state.lock().expect("refusals lock");
        let pending = &mut state.1;
        let room = MAX_PENDING_REPORTS.saturating_sub(pending.len());
        pending.extend(reports.into_iter().take(room));
    }

    fn counted_source<'a>(&self, minute: &Minute, source: &'a str) -> &'a str {
        let known = minute.refused_by_source.contains_key(source)
            || minute.buckets.keys().any(|k| k.source == source);
        if known || minute.refused_by_source.len() < self.policy.max_sources {
            source
        } else {
            OTHER_SOURCES
        }
    }

    /// Closes the minute when the clock has left it.
    fn roll(&self, state: &mut (Minute, Vec<RefusedWebhooks>), now: DateTime<Utc>) {
        let current = minute_of(now);
        if state.0.start == current {
            return;
        }
        let ended = std::mem::replace(
            &mut state.0,
            Minute {
                start: current,
                ..Minute::default()
            },
        );
        for (key, bucket) in ended.buckets.iter().filter(|(_, b)| b.changed) {
            if state.1.len() < MAX_PENDING_REPORTS {
                state.1.push(self.report(ended.start, key, bucket));
            }
        }
    }

    fn report(&self, minute: DateTime<Utc>, key: &Key, bucket: &Bucket) -> RefusedWebhooks {
        RefusedWebhooks {
            ingest_id: self.ingest_id,
            minute,
            endpoint: key.endpoint.to_string(),
            outcome: key.outcome,
            source: key.source.clone(),
            reason: bucket.reason.clone(),
            count: bucket.count,
            throttled: bucket.throttled,
            // Samples travel again only when one was added.
            samples: match bucket.samples_changed {
                true => bucket.samples.clone(),
                false => vec![],
            },
        }
    }
}

fn cut(text: &str, chars: usize) -> String {
    let visible = form::visible(text);
    match visible.char_indices().nth(chars) {
        Some((end, _)) => format!("{}…", &visible[..end]),
        None => visible.into_owned(),
    }
}

/// A sample of one refused request: at most [`SAMPLE_PARAMS`] parameters
/// and [`SAMPLE_BYTES`] of them, names and values cut, NUL replaced,
/// credentials redacted.
pub fn sample(reason: &str, pairs: &[(String, String)], now: DateTime<Utc>) -> RefusedSample {
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| cut(v, SAMPLE_VALUE_CHARS))
    };
    let mut bytes = 0;
    let kept: Vec<(String, String)> = pairs
        .iter()
        .take(SAMPLE_PARAMS)
        .map(|(k, v)| (cut(k, SAMPLE_NAME_CHARS), cut(v, SAMPLE_VALUE_CHARS)))
        .take_while(|(k, v)| {
            bytes += k.len() + v.len();
            bytes <= SAMPLE_BYTES
        })
        .collect();
    RefusedSample {
        reason: cut(reason, SAMPLE_VALUE_CHARS),
        account_sid: get("AccountSid"),
        message_sid: get("MessageSid"),
        to: get("To"),
        params_dropped: pairs.len() - kept.len(),
        params: form::redact(kept),
        received_at: now,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 10, minute, second)
            .unwrap()
    }

    fn policy() -> RefusalPolicy {
        RefusalPolicy {
            threshold_per_minute: 5,
            samples: 2,
            max_sources: 3,
            flush_every: Duration::from_secs(1),
        }
    }

    fn refuse(r: &Refusals, source: &str, now: DateTime<Utc>) -> Verdict {
        r.record(
            "message",
            WebhookOutcome::BadSignature,
            source,
            "X-Twilio-Signature does not match",
            true,
            now,
            || sample("bad", &[("Body".into(), "x".into())], now),
        )
    }

    #[test]
    fn a_flood_becomes_one_count_with_a_few_samples() {
        let r = Refusals::new(policy());
        let verdicts: Vec<Verdict> = (0..1000)
            .map(|_| refuse(&r, "10.0.0.9", at(0, 5)))
            .collect();
        assert_eq!(&verdicts[..2], &[Verdict::Sampled, Verdict::Sampled]);
        assert_eq!(&verdicts[2..5], &[Verdict::Counted; 3]);
        assert!(verdicts[5..].iter().all(|v| *v == Verdict::Throttled));
        assert!(r.is_throttled("10.0.0.9", at(0, 6)));
        assert!(!r.is_throttled("10.0.0.8", at(0, 6)));

        let reports = r.drain(at(0, 10));
        assert_eq!(reports.len(), 1);
        let report = &reports[0];
        assert_eq!((report.count, report.throttled), (1000, 995));
        assert_eq!(report.samples.len(), 2);
        assert_eq!(report.minute, at(0, 0));
        assert!(r.drain(at(0, 11)).is_empty(), "nothing changed since");
        refuse(&r, "10.0.0.9", at(0, 12));
        let again = r.drain(at(0, 13));
        assert_eq!(again[0].count, 1001);
        assert!(again[0].samples.is_empty(), "samples travel once");

        // The next minute starts afresh; its report is cumulative again.
        assert_eq!(refuse(&r, "10.0.0.9", at(1, 1)), Verdict::Sampled);
        let reports = r.drain(at(1, 2));
        assert_eq!((reports[0].count, reports[0].minute), (1, at(1, 0)));
    }

    #[test]
    fn signed_duplicates_are_counted_but_never_throttled() {
        let r = Refusals::new(policy());
        for _ in 0..100 {
            refuse(&r, "203.0.113.7", at(0, 1));
        }
        let verdict = r.record(
            "message",
            WebhookOutcome::Duplicate,
            "203.0.113.7",
            "already accepted",
            false,
            at(0, 2),
            || sample("already accepted", &[], at(0, 2)),
        );
        assert_eq!(verdict, Verdict::Sampled);
    }

    #[test]
    fn sources_past_the_cap_share_one_count() {
        let r = Refusals::new(policy());
        for i in 0..50 {
            refuse(&r, &format!("2001:db8::{i}"), at(0, 1));
        }
        let reports = r.drain(at(0, 2));
        assert_eq!(reports.len(), 4, "three sources and `other`");
        let other = reports.iter().find(|r| r.source == OTHER_SOURCES).unwrap();
        assert_eq!(other.count, 47);
        assert_eq!(other.throttled, 42);
    }

    #[test]
    fn an_ended_minute_is_reported_once_and_a_failed_flush_comes_back() {
        let r = Refusals::new(policy());
        refuse(&r, "a", at(0, 59));
        let reports = r.drain(at(1, 0));
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].minute, at(0, 0));
        r.retry_later(reports);
        assert_eq!(r.drain(at(1, 1)).len(), 1);
        assert!(r.drain(at(1, 2)).is_empty());
    }

    #[test]
    fn samples_are_bounded_whatever_the_request() {
        let huge = "ش".repeat(30_000);
        let pairs: Vec<(String, String)> = (0..500)
            .map(|i| (format!("P{i}\0{huge}"), format!("{huge}\0")))
            .chain([("AuthToken".to_string(), "secret".to_string())])
            .collect();
        let s = sample("bad", &pairs, at(0, 0));
        assert!(!s.params.is_empty() && s.params.len() <= SAMPLE_PARAMS);
        assert_eq!(s.params_dropped, 501 - s.params.len());
        let size = serde_json::to_vec(&s).unwrap().len();
        assert!(size <= SAMPLE_BYTES + 1024, "a sample is {size} bytes");
        assert!(s
            .params
            .iter()
            .all(|(k, v)| !k.contains('\0') && !v.contains('\0')));
        let s = sample("bad", &[("AuthToken".into(), "secret".into())], at(0, 0));
        assert_eq!(s.params[0].1, "[redacted]");
    }
}
