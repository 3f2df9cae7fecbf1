//! The faults, each done to a world while its traffic flows. A scenario
//! says what it saw (notes for the report) and how many sends it may have
//! duplicated by design (the outbound window: Twilio took a message and
//! the sender died or never heard back before recording it).

use std::time::{Duration, Instant};

use futures::StreamExt;
use twilio_sim::{Fault, Misbehaviour};
use waiter_nats::StreamKind;

use crate::{
    fleet::{Stage, ACK_WAIT_MS},
    traffic::{percentile, Traffic},
    world::World,
};

/// How long a killed stage (or NATS node) stays down.
const DOWN: Duration = Duration::from_secs(3);
/// Longer than ingest's publish timeout (5 s): a webhook posted at the
/// start cannot get its PubAck from the restarted server in time.
const NATS_DOWN: Duration = Duration::from_secs(8);

#[derive(Debug, Clone, Copy)]
pub enum Scenario {
    Kill(Stage),
    KillTwo(Stage, Stage),
    Freeze(Stage),
    PostgresAway,
    NatsRestart,
    ClusterNodes,
    TwilioTrouble,
    UnsignedFlood,
}

pub struct Disturbed {
    pub notes: Vec<String>,
    /// What the scenario itself found broken (beyond the audit).
    pub problems: Vec<String>,
    pub allowed_twice: usize,
    /// While a dependency was away: (what, from, to), to tell ingest's
    /// answers to the webhooks posted meanwhile.
    pub away: Option<(&'static str, Instant, Instant)>,
}

impl Scenario {
    pub fn all() -> Vec<Scenario> {
        let mut all: Vec<Scenario> = Stage::ALL.into_iter().map(Scenario::Kill).collect();
        all.extend([
            Scenario::KillTwo(Stage::Conversation, Stage::Outbound),
            Scenario::Freeze(Stage::Conversation),
            Scenario::Freeze(Stage::Outbound),
            Scenario::PostgresAway,
            Scenario::NatsRestart,
            Scenario::ClusterNodes,
            Scenario::TwilioTrouble,
            Scenario::UnsignedFlood,
        ]);
        all
    }

    pub fn name(&self) -> String {
        match self {
            Scenario::Kill(s) => format!("kill-9-{}", s.name()),
            Scenario::KillTwo(a, b) => format!("kill-9-{}+{}", a.name(), b.name()),
            Scenario::Freeze(s) => format!("sigstop-{}", s.name()),
            Scenario::PostgresAway => "postgres-away-30s".into(),
            Scenario::NatsRestart => "nats-restart".into(),
            Scenario::ClusterNodes => "nats-cluster-node-then-leader".into(),
            Scenario::TwilioTrouble => "twilio-429-5xx-slow-hang-drop".into(),
            Scenario::UnsignedFlood => "unsigned-flood".into(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Scenario::Kill(s) => format!("kill -9 of {}, restarted after {DOWN:?}", s.name()),
            Scenario::KillTwo(a, b) => format!(
                "kill -9 of {} and {} at once, both restarted after {DOWN:?}",
                a.name(),
                b.name()
            ),
            Scenario::Freeze(s) => format!(
                "SIGSTOP of {} for {} ms (ack wait {ACK_WAIT_MS} ms), then SIGCONT",
                s.name(),
                ACK_WAIT_MS + 2_000
            ),
            Scenario::PostgresAway => {
                "PostgreSQL unreachable for 30 s (proxy cut: connections reset, new ones refused)"
                    .into()
            }
            Scenario::NatsRestart => {
                format!("the NATS server killed (-9), restarted after {NATS_DOWN:?}")
            }
            Scenario::ClusterNodes => {
                "3-node NATS cluster, R3 streams: a follower node killed and restarted, then the INGEST leader's node".into()
            }
            Scenario::TwilioTrouble => {
                "Messages API: 3 hangs past the 1.5 s timeout (message taken), 20 answers 0.8 s late, then 15×429, 10×500, 10×503, then 10 dropped connections".into()
            }
            Scenario::UnsignedFlood => {
                "2,000 refused 60 KB posts (half forged, half unsigned) while signed traffic flows".into()
            }
        }
    }

    pub fn nats_nodes(&self) -> usize {
        match self {
            Scenario::ClusterNodes => 3,
            _ => 1,
        }
    }

    /// How long the disturbance itself lasts, at least (traffic runs
    /// longer than this).
    pub fn lasts(&self) -> Duration {
        match self {
            Scenario::PostgresAway => Duration::from_secs(30),
            Scenario::Freeze(_) => Duration::from_millis(ACK_WAIT_MS + 2_000),
            Scenario::ClusterNodes => Duration::from_secs(12),
            Scenario::TwilioTrouble => Duration::from_secs(8),
            Scenario::NatsRestart => NATS_DOWN,
            _ => DOWN,
        }
    }

    pub async fn disturb(&self, w: &mut World, traffic: &Traffic) -> Disturbed {
        let mut notes = vec![];
        let mut problems = vec![];
        let mut allowed_twice = 0;
        let mut away = None;
        match *self {
            Scenario::Kill(stage) => {
                w.fleet.kill(stage).await;
                tokio::time::sleep(DOWN).await;
                w.fleet.restart(stage);
                allowed_twice += sends_in_flight(stage);
            }
            Scenario::KillTwo(a, b) => {
                w.fleet.kill(a).await;
                w.fleet.kill(b).await;
                tokio::time::sleep(DOWN).await;
                w.fleet.restart(a);
                w.fleet.restart(b);
                allowed_twice += sends_in_flight(a) + sends_in_flight(b);
            }
            Scenario::Freeze(stage) => {
                w.fleet.freeze(stage);
                tokio::time::sleep(self.lasts()).await;
                w.fleet.thaw(stage);
                allowed_twice += sends_in_flight(stage);
            }
            Scenario::PostgresAway => {
                w.postgres.cut();
                let from = Instant::now();
                tokio::time::sleep(self.lasts()).await;
                w.postgres.restore();
                away = Some(("PostgreSQL", from, Instant::now()));
            }
            Scenario::NatsRestart => {
                w.nats.node("n1").kill();
                let from = Instant::now();
                tokio::time::sleep(NATS_DOWN).await;
                w.nats.restart("n1").await;
                away = Some(("NATS", from, Instant::now()));
            }
            Scenario::ClusterNodes => {
                let leader = ingest_leader(w).await;
                let follower = w
                    .nats
                    .nodes
                    .iter()
                    .map(|n| n.name.clone())
                    .find(|n| *n != leader)
                    .expect("a follower");
                w.nats.node(&follower).kill();
                tokio::time::sleep(DOWN).await;
                w.nats.restart(&follower).await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                let leader = ingest_leader(w).await;
                w.nats.node(&leader).kill();
                tokio::time::sleep(DOWN).await;
                w.nats.restart(&leader).await;
                let after = ingest_leader(w).await;
                notes.push(format!(
                    "killed follower {follower}, then leader {leader}; INGEST led by {after} afterwards"
                ));
            }
            Scenario::TwilioTrouble => {
                // Hangs first, so the three it takes are not also faults:
                // each leaves the message taken and the sender in the dark.
                w.sim.misbehave(Misbehaviour::Slow {
                    delay_ms: 4_000,
                    times: 3,
                });
                w.sim.misbehave(Misbehaviour::Slow {
                    delay_ms: 800,
                    times: 20,
                });
                allowed_twice += 3;
                tokio::time::sleep(Duration::from_secs(3)).await;
                w.sim.inject_fault(Fault::new(429, 20429).times(15));
                w.sim.inject_fault(Fault::new(500, 20500).times(10));
                w.sim.inject_fault(Fault::new(503, 20503).times(10));
                tokio::time::sleep(Duration::from_secs(2)).await;
                w.sim.misbehave(Misbehaviour::Drop { times: 10 });
                tokio::time::sleep(self.lasts().saturating_sub(Duration::from_secs(5))).await;
                let requests = w.sim.requests();
                let refused = requests.iter().filter(|r| r.http_status >= 400).count();
                notes.push(format!(
                    "{} Messages API requests, {refused} answered with an error; the status \
                     callbacks of a message sent twice name a sid no row holds and are retried \
                     until dropped (10 attempts), which is most of the drain time",
                    requests.len()
                ));
            }
            Scenario::UnsignedFlood => flood(w, traffic, &mut notes, &mut problems).await,
        }
        Disturbed {
            notes,
            problems,
            allowed_twice,
            away,
        }
    }
}

/// Sends a stage may have had at Twilio when it died or froze: one per
/// outbound lane and partition at most (`WORKER_LANES` 8 × 4 partitions).
fn sends_in_flight(stage: Stage) -> usize {
    match stage {
        Stage::Outbound => 32,
        _ => 0,
    }
}

/// The node that leads the INGEST stream's group.
async fn ingest_leader(w: &World) -> String {
    let name = w.bus.topology().stream_name(StreamKind::Ingest);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = w.bus.jetstream().get_stream(&name).await {
            if let Ok(info) = stream.info().await {
                if let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.clone()) {
                    return leader;
                }
            }
        }
        assert!(Instant::now() < deadline, "INGEST has no leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn flood(w: &World, traffic: &Traffic, notes: &mut Vec<String>, problems: &mut Vec<String>) {
    const FLOOD: usize = 2_000;
    let quiet: Vec<Duration> = traffic.posts().iter().map(|p| p.took).collect();
    let before = traffic.posts().len();
    let account = w.restaurants[0].account_sid.clone();
    let filler = "a".repeat(60 * 1024);
    let client = reqwest::Client::new();
    let url = format!(
        "http://127.0.0.1:{}/whatsapp/webhook",
        crate::fleet::INGEST_PORT
    );
    let answers: Vec<Option<u16>> = futures::stream::iter(0..FLOOD)
        .map(|i| {
            let request = client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "AccountSid={account}&From=whatsapp%3A%2B1{i}&To=whatsapp%3A%2B2&MessageSid=SMflood{i}&Body={filler}"
                ));
            let request = match i % 2 {
                0 => request.header("x-twilio-signature", "Zm9yZ2Vk"),
                _ => request,
            };
            async move { request.send().await.ok().map(|a| a.status().as_u16()) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let during: Vec<Duration> = traffic.posts()[before..].iter().map(|p| p.took).collect();
    let answered: Vec<u16> = answers.iter().flatten().copied().collect();
    let not_403 = answered.iter().filter(|&&s| s != 403).count();
    if not_403 > 0 {
        problems.push(format!(
            "{not_403} refused requests got something else than 403"
        ));
    }
    let (signed_p50, signed_p99) = (percentile(during.clone(), 0.5), percentile(during, 0.99));
    if signed_p50 >= Duration::from_secs(1) {
        problems.push(format!(
            "signed webhooks slowed to p50 {signed_p50:?} by the flood"
        ));
    }

    let topology = w.bus.topology();
    let mut ingest = w
        .bus
        .jetstream()
        .get_stream(topology.stream_name(StreamKind::Ingest))
        .await
        .expect("INGEST");
    let info = ingest.info().await.expect("INGEST info");
    if info.config.max_bytes <= 0 || info.state.bytes >= info.config.max_bytes as u64 {
        problems.push("INGEST has no byte cap or is over it".into());
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_refusals")
        .fetch_one(&w.db.pool)
        .await
        .expect("refusal rows");
    if rows > 10 {
        problems.push(format!("{rows} refusal rows for {FLOOD} requests"));
    }
    notes.extend([
        format!(
            "{FLOOD} posts of 60 KB: {} answered 403, {} cut off unread",
            answered.len(),
            FLOOD - answered.len()
        ),
        format!(
            "signed ack latency before: p50 {:.1?} p99 {:.1?}; during the flood: p50 {signed_p50:.1?} p99 {signed_p99:.1?}",
            percentile(quiet.clone(), 0.5),
            percentile(quiet, 0.99)
        ),
        format!(
            "INGEST {} messages, {} of {} bytes; {rows} refusal rows",
            info.state.messages, info.state.bytes, info.config.max_bytes
        ),
    ]);
}
