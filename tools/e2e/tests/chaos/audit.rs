//! After a scenario: every webhook answered 200 stored exactly once and
//! answered exactly once, replies in order per conversation, nothing left
//! pending. The outbound duplicate window is counted, not hidden.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::Duration,
};

use async_nats::jetstream::consumer::AckPolicy;
use futures::StreamExt;
use sqlx::PgPool;
use twilio_sim::Simulator;
use waiter_nats::{Bus, StreamKind};

use crate::traffic::Post;

/// How long the pipeline gets to catch up once the traffic stopped.
const DRAIN: Duration = Duration::from_secs(150);

#[derive(Debug, Clone, Default)]
pub struct Audit {
    pub posted: usize,
    pub accepted: usize,
    /// Non-200 answers by status ("none": no answer at all).
    pub refused: BTreeMap<String, usize>,
    /// Accepted webhooks stored once.
    pub stored: usize,
    /// Accepted webhooks not stored: losses.
    pub missing: usize,
    pub stored_twice: usize,
    /// Stored although ingest's answer never arrived (the PubAck came, the
    /// 200 did not): not a loss, Twilio would retry and be deduplicated.
    pub stored_unanswered_post: usize,
    /// Stored accepted webhooks without a reply Twilio took.
    pub unanswered: usize,
    /// Stored, and left unanswered on purpose: over the restaurant's or
    /// the customer's inbound limit (counted when the router handles them).
    pub limited: usize,
    pub replies_recorded: usize,
    pub twilio_received: usize,
    /// Twilio took a message whose sid no row holds: sent twice.
    pub sent_twice: usize,
    pub out_of_order: usize,
    pub pending: u64,
    pub dead_letters: u64,
    pub drained_in: Duration,
}

impl Audit {
    /// Holds the invariants; `allowed_twice` is the duplicate window this
    /// scenario can open (a send in flight when outbound died or Twilio hung).
    pub fn verdict(&self, allowed_twice: usize) -> Result<(), String> {
        let mut broken = vec![];
        if self.accepted == 0 {
            broken.push("no webhook was accepted".to_string());
        }
        if self.missing > 0 {
            broken.push(format!("{} accepted webhooks lost", self.missing));
        }
        if self.stored_twice > 0 {
            broken.push(format!("{} stored twice", self.stored_twice));
        }
        if self.unanswered > 0 {
            broken.push(format!("{} never answered", self.unanswered));
        }
        if self.sent_twice > allowed_twice {
            broken.push(format!(
                "{} sent twice (at most {allowed_twice} expected)",
                self.sent_twice
            ));
        }
        if self.out_of_order > 0 {
            broken.push(format!("{} conversations out of order", self.out_of_order));
        }
        if self.pending > 0 {
            broken.push(format!("{} messages pending", self.pending));
        }
        if self.dead_letters > 0 {
            broken.push(format!("{} dead letters", self.dead_letters));
        }
        match broken.is_empty() {
            true => Ok(()),
            false => Err(broken.join("; ")),
        }
    }
}

/// Unacknowledged or undelivered messages on the durable (acknowledging)
/// consumers of every stream of the namespace.
async fn pending(bus: &Bus) -> Result<u64, String> {
    let topology = bus.topology();
    let mut total = 0;
    for kind in StreamKind::ALL {
        let Ok(stream) = bus.jetstream().get_stream(topology.stream_name(kind)).await else {
            continue;
        };
        let mut consumers = stream.consumers();
        while let Some(info) = consumers.next().await {
            let info = info.map_err(|e| e.to_string())?;
            if info.config.ack_policy == AckPolicy::Explicit {
                total += info.num_pending + info.num_ack_pending as u64;
            }
        }
    }
    Ok(total)
}

async fn dead_letters(bus: &Bus) -> u64 {
    let name = bus.topology().stream_name(StreamKind::DeadLetter);
    match bus.jetstream().get_stream(name).await {
        Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

#[derive(sqlx::FromRow)]
struct Inbound {
    wa_sid: String,
    copies: i64,
    replied: bool,
    limited: bool,
}

async fn inbound(pool: &PgPool) -> Result<Vec<Inbound>, sqlx::Error> {
    sqlx::query_as(
        "SELECT COALESCE(i.wa_sid, '') AS wa_sid, count(*) OVER (PARTITION BY i.wa_sid) AS copies, \
                EXISTS (SELECT 1 FROM messages o WHERE o.reply_to = i.id AND o.wa_sid IS NOT NULL) AS replied, \
                i.limited_reason IS NOT NULL AS limited \
         FROM messages i WHERE i.direction = 'in'",
    )
    .fetch_all(pool)
    .await
}

/// Waits (up to [`DRAIN`]) until every accepted webhook is stored and
/// answered and nothing is pending, then counts.
pub async fn run(posts: &[Post], pool: &PgPool, bus: &Bus, sim: &Simulator) -> Audit {
    let started = tokio::time::Instant::now();
    let accepted: HashSet<&str> = posts
        .iter()
        .filter(|p| p.status == Some(200))
        .map(|p| p.sid.as_str())
        .collect();
    let mut rows = vec![];
    let mut waiting = u64::MAX;
    while started.elapsed() < DRAIN {
        rows = inbound(pool).await.unwrap_or_default();
        let done: HashSet<&str> = rows
            .iter()
            .filter(|r| r.replied || r.limited)
            .map(|r| r.wa_sid.as_str())
            .collect();
        waiting = pending(bus).await.unwrap_or(u64::MAX);
        if accepted.iter().all(|sid| done.contains(sid)) && waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Late duplicates (a redelivered send) would show now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let drained_in = started.elapsed();

    let mut audit = Audit {
        posted: posts.len(),
        accepted: accepted.len(),
        pending: waiting,
        dead_letters: dead_letters(bus).await,
        drained_in,
        ..Audit::default()
    };
    for p in posts.iter().filter(|p| p.status != Some(200)) {
        let key = p.status.map_or("none".to_string(), |s| s.to_string());
        *audit.refused.entry(key).or_default() += 1;
    }
    let by_sid: HashMap<&str, &Inbound> = rows.iter().map(|r| (r.wa_sid.as_str(), r)).collect();
    for sid in &accepted {
        match by_sid.get(sid) {
            None => audit.missing += 1,
            Some(row) => {
                audit.stored += 1;
                if row.copies > 1 {
                    audit.stored_twice += 1;
                }
                if row.limited {
                    audit.limited += 1;
                } else if !row.replied {
                    audit.unanswered += 1;
                }
            }
        }
    }
    audit.stored_unanswered_post = by_sid.keys().filter(|s| !accepted.contains(*s)).count();

    // Replies: the order they were decided in, per customer (the inbound
    // rows' `seq`: a batch shares one created_at), against the order Twilio
    // took them in.
    let decided: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.customer, o.wa_sid FROM messages o \
         JOIN messages i ON i.id = o.reply_to \
         JOIN conversations c ON c.id = o.conversation_id \
         WHERE o.direction = 'out' AND o.wa_sid IS NOT NULL \
         ORDER BY c.customer, i.seq, o.reply_index",
    )
    .fetch_all(pool)
    .await
    .expect("replies");
    let recorded: HashSet<&str> = decided.iter().map(|(_, sid)| sid.as_str()).collect();
    audit.replies_recorded = recorded.len();
    let sent = sim.sent();
    audit.twilio_received = sent.len();
    audit.sent_twice = sent
        .iter()
        .filter(|m| !recorded.contains(m.sid.as_str()))
        .count();
    let mut expected: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (customer, sid) in &decided {
        expected.entry(customer).or_default().push(sid);
    }
    let mut taken: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for m in sent.iter().filter(|m| recorded.contains(m.sid.as_str())) {
        taken.entry(m.to.as_str()).or_default().push(&m.sid);
    }
    audit.out_of_order = expected
        .iter()
        .filter(|(customer, sids)| taken.get(*customer) != Some(*sids))
        .count();
    audit
}
