//! `waiterctl ps`: one line per process (stage, replica, pid, uptime,
//! ready, handled, in flight, pending and ack-pending of the consumers it
//! holds, heartbeat age), then the consumers that lag.
//!
//! The supervisor's `supervisor.json` says what it started; each process's
//! `/ready` and `/status` say how it is; JetStream's consumer info says the
//! lag; the member records on the lease stream say who is alive, including
//! replicas this supervisor did not start (another machine, a test).

use std::{collections::BTreeMap, time::Duration};

use chrono::Utc;
use futures::{future::join_all, StreamExt};
use serde::Serialize;
use waiter_nats::{messages::MemberRecord, Bus, Envelope, StreamKind};

use super::{
    plan::RunDir,
    probe::{Answer, Prober},
    state::{self, State},
    up::ready_path,
    PsArgs,
};
use crate::{connect, output::Out};

/// A member record this fresh is a live replica (heartbeats every TTL/6).
const ALIVE_WITHIN: Duration = Duration::from_secs(20);

#[derive(Debug, Serialize)]
struct Row {
    stage: String,
    replica: String,
    pid: Option<u32>,
    /// Where its `/health`, `/ready`, `/status` and `/metrics` answer.
    ops_addr: Option<String>,
    uptime_secs: Option<i64>,
    ready: Option<bool>,
    handled: Option<u64>,
    in_flight: Option<u64>,
    pending: Option<u64>,
    ack_pending: Option<u64>,
    heartbeat_age_ms: Option<i64>,
    restarts: u32,
    /// Started by this run directory's supervisor.
    supervised: bool,
    consumers: Vec<String>,
    /// Why it is not ready: its failing checks and consumers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    not_ready: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Consumer {
    name: String,
    stream: String,
    pending: u64,
    ack_pending: u64,
    held_by: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    supervisor_pid: Option<u32>,
    supervisor_alive: bool,
    namespace: String,
    processes: Vec<Row>,
    consumers: Vec<Consumer>,
    /// Why the JetStream columns are empty, when they are.
    nats_error: Option<String>,
}

pub async fn ps(args: PsArgs, out: Out) -> anyhow::Result<()> {
    let run = RunDir::new(&args.run.run_dir);
    let prober = Prober::new();
    let bus = match tokio::time::timeout(Duration::from_secs(5), connect::bus()).await {
        Ok(Ok(bus)) => Ok(bus),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err("NATS did not answer within 5 s".to_string()),
    };
    loop {
        let report = collect(&run, &prober, bus.as_ref()).await;
        if args.watch && !out.json {
            print!("\x1b[2J\x1b[H");
            println!(
                "{}  (every {}s, Ctrl-C stops)",
                Utc::now().format("%H:%M:%S"),
                args.interval
            );
        }
        print(&report, out);
        if !args.watch {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(args.interval)) => {}
        }
    }
}

async fn collect(run: &RunDir, prober: &Prober, bus: Result<&Bus, &String>) -> Report {
    let state = State::load(run);
    let processes = state
        .as_ref()
        .map(|s| s.processes.clone())
        .unwrap_or_default();
    let probes = join_all(processes.iter().map(|p| async move {
        if p.pid.is_none() {
            return (Answer::Refused, Answer::Refused);
        }
        tokio::join!(
            prober.get(p.ops_port, ready_path(p.stage)),
            prober.get(p.ops_port, "/status")
        )
    }))
    .await;
    let (consumers, members, nats_error) = match bus {
        Ok(bus) => match jetstream(bus).await {
            Ok((c, m)) => (c, m, None),
            Err(e) => (BTreeMap::new(), vec![], Some(format!("{e:#}"))),
        },
        Err(e) => (BTreeMap::new(), vec![], Some(e.clone())),
    };
    let now = Utc::now();
    let mut held_by: BTreeMap<String, String> = BTreeMap::new();
    let mut rows = vec![];
    for (p, (ready, status)) in processes.iter().zip(probes) {
        let status = status.body().cloned().unwrap_or_default();
        let names: Vec<String> = status["consumers"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for name in &names {
            held_by.insert(name.clone(), p.replica.clone());
        }
        let member = members.iter().find(|m| m.replica == p.replica);
        let not_ready = match &ready {
            Answer::Got(200, _) => vec![],
            Answer::Got(_, body) => why_not_ready(body, &status),
            Answer::Refused => vec!["nothing answers on its ops port".into()],
            Answer::Failed(e) => vec![e.clone()],
        };
        rows.push(Row {
            stage: p.stage.name().to_string(),
            replica: p.replica.clone(),
            pid: p.pid.filter(|pid| state::alive(*pid)),
            ops_addr: Some(format!(":{}", p.ops_port)),
            uptime_secs: p.pid.and(p.started_at).map(|at| (now - at).num_seconds()),
            ready: match ready {
                Answer::Got(code, _) => Some(code == 200),
                _ => Some(false),
            },
            handled: status["handled"].as_u64(),
            in_flight: status["in_flight"].as_u64(),
            pending: lag(&consumers, &names, |c| c.pending),
            ack_pending: lag(&consumers, &names, |c| c.ack_pending),
            heartbeat_age_ms: member
                .and_then(|m| m.heartbeat_at)
                .map(|at| (now - at).num_milliseconds()),
            restarts: p.restarts,
            supervised: true,
            consumers: names,
            not_ready,
        });
    }
    // Live replicas on the lease stream that this supervisor did not start.
    for m in &members {
        let age = m.heartbeat_at.map(|at| (now - at).num_milliseconds());
        let alive = !m.stopped && age.is_some_and(|ms| ms < ALIVE_WITHIN.as_millis() as i64);
        if !alive || rows.iter().any(|r| r.replica == m.replica) {
            continue;
        }
        let names: Vec<String> = m.consumers.iter().map(|c| c.name.clone()).collect();
        for name in &names {
            held_by.entry(name.clone()).or_insert(m.replica.clone());
        }
        rows.push(Row {
            stage: m.stage.clone(),
            replica: m.replica.clone(),
            pid: Some(m.pid),
            ops_addr: m.ops_addr.clone(),
            uptime_secs: m.started_at.map(|at| (now - at).num_seconds()),
            ready: Some(m.ready),
            handled: Some(m.handled),
            in_flight: Some(m.in_flight),
            pending: lag(&consumers, &names, |c| c.pending),
            ack_pending: lag(&consumers, &names, |c| c.ack_pending),
            heartbeat_age_ms: age,
            restarts: 0,
            supervised: false,
            consumers: names,
            not_ready: vec![],
        });
    }
    let consumers = consumers
        .into_values()
        .map(|mut c| {
            c.held_by = held_by.get(&c.name).cloned();
            c
        })
        .collect();
    Report {
        supervisor_pid: state.as_ref().map(|s| s.supervisor_pid),
        supervisor_alive: state
            .as_ref()
            .is_some_and(|s| state::alive(s.supervisor_pid)),
        namespace: std::env::var("WAITER_NAMESPACE").unwrap_or_else(|_| "waiter".into()),
        processes: rows,
        consumers,
        nats_error,
    }
}

/// The failing checks of a `/ready` body, and the consumers in `/status`
/// that are not bound or have had no pull request answered lately.
fn why_not_ready(ready: &serde_json::Value, status: &serde_json::Value) -> Vec<String> {
    let mut why: Vec<String> = ready["checks"]
        .as_object()
        .map(|checks| {
            checks
                .iter()
                .filter(|(_, ok)| ok.as_bool() == Some(false))
                .map(|(name, _)| format!("check {name} failing"))
                .collect()
        })
        .unwrap_or_default();
    for c in status["consumers"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("?");
        if c["bound"].as_bool() == Some(false) {
            why.push(format!("{name} not bound"));
        } else if c["pulling"].as_bool() == Some(false) {
            let last = c["last_pull_ms"].as_u64().map_or("never".into(), |ms| {
                format!("{:.1}s ago", ms as f64 / 1000.0)
            });
            let failures = c["pull_failures"].as_u64().unwrap_or(0);
            why.push(format!(
                "{name} not pulling (last answered pull {last}, {failures} failures since)"
            ));
        }
    }
    why
}

fn lag(
    consumers: &BTreeMap<String, Consumer>,
    names: &[String],
    of: impl Fn(&Consumer) -> u64,
) -> Option<u64> {
    if consumers.is_empty() || names.is_empty() {
        return None;
    }
    Some(names.iter().filter_map(|n| consumers.get(n)).map(of).sum())
}

type Members = Vec<MemberRecord>;

/// Every consumer of the namespace's streams, and the member records.
async fn jetstream(bus: &Bus) -> anyhow::Result<(BTreeMap<String, Consumer>, Members)> {
    let topology = bus.topology();
    let js = bus.jetstream();
    let mut consumers = BTreeMap::new();
    for kind in StreamKind::ALL {
        let name = topology.stream_name(kind);
        let Ok(stream) = js.get_stream(&name).await else {
            continue;
        };
        let mut infos = stream.consumers();
        while let Some(info) = infos.next().await {
            let info = info?;
            consumers.insert(
                info.name.clone(),
                Consumer {
                    name: info.name.clone(),
                    stream: name.clone(),
                    pending: info.num_pending,
                    ack_pending: info.num_ack_pending as u64,
                    held_by: None,
                },
            );
        }
    }
    let mut members: Members = vec![];
    if let Ok(leases) = js
        .get_stream(topology.stream_name(StreamKind::Leases))
        .await
    {
        let filter = format!("{}.lease.*.m.*", topology.namespace());
        let mut subjects = vec![];
        let mut listing = leases.info_with_subjects(filter).await?;
        while let Some(entry) = listing.next().await {
            subjects.push(entry?.0);
        }
        for subject in subjects {
            let Ok(message) = leases.get_last_raw_message_by_subject(&subject).await else {
                continue;
            };
            let Ok(record) = Envelope::<MemberRecord>::decode(&message.payload) else {
                continue;
            };
            // A replica in several groups writes one record per group:
            // the newest speaks for it.
            let record = record.body;
            match members.iter_mut().find(|m| m.replica == record.replica) {
                Some(m) if m.heartbeat_at < record.heartbeat_at => *m = record,
                Some(_) => {}
                None => members.push(record),
            }
        }
    }
    Ok((consumers, members))
}

fn print(report: &Report, out: Out) {
    if out.json {
        return out.json(report);
    }
    let cell = |v: Option<u64>| v.map_or("—".to_string(), |v| v.to_string());
    let rows: Vec<Vec<String>> = report
        .processes
        .iter()
        .map(|r| {
            vec![
                r.stage.clone(),
                if r.supervised {
                    r.replica.clone()
                } else {
                    format!("{} (elsewhere)", r.replica)
                },
                r.pid.map_or("—".into(), |p| p.to_string()),
                r.ops_addr.clone().unwrap_or_else(|| "—".into()),
                r.uptime_secs.map_or("—".into(), uptime),
                match r.ready {
                    Some(true) => "ready".into(),
                    Some(false) => "NOT READY".into(),
                    None => "—".into(),
                },
                cell(r.handled),
                cell(r.in_flight),
                cell(r.pending),
                cell(r.ack_pending),
                r.heartbeat_age_ms
                    .map_or("—".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0)),
                r.restarts.to_string(),
            ]
        })
        .collect();
    match (report.supervisor_pid, report.supervisor_alive) {
        (Some(pid), true) => println!("supervisor pid {pid}, namespace {}", report.namespace),
        (Some(pid), false) => println!(
            "supervisor pid {pid} is GONE (just down cleans up), namespace {}",
            report.namespace
        ),
        (None, _) => println!(
            "no `just up` in this run directory; namespace {}",
            report.namespace
        ),
    }
    out.table(
        &[
            "stage",
            "replica",
            "pid",
            "ops",
            "uptime",
            "ready",
            "handled",
            "in flight",
            "pending",
            "ack pending",
            "heartbeat",
            "restarts",
        ],
        rows,
        report,
    );
    for r in report.processes.iter().filter(|r| !r.not_ready.is_empty()) {
        println!("{} not ready: {}", r.replica, r.not_ready.join("; "));
    }
    if let Some(e) = &report.nats_error {
        println!("consumer lag unknown: {e}");
        return;
    }
    let lagging: Vec<Vec<String>> = report
        .consumers
        .iter()
        .filter(|c| c.pending > 0 || c.ack_pending > 0)
        .map(|c| {
            vec![
                c.name.clone(),
                c.stream.clone(),
                c.held_by.clone().unwrap_or_else(|| "—".into()),
                c.pending.to_string(),
                c.ack_pending.to_string(),
            ]
        })
        .collect();
    if lagging.is_empty() {
        println!("{} consumers, none behind", report.consumers.len());
    } else {
        out.table(
            &["consumer", "stream", "held by", "pending", "ack pending"],
            lagging,
            report,
        );
    }
}

fn uptime(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::why_not_ready;

    #[test]
    fn a_replica_not_ready_is_explained_by_its_checks_and_consumers() {
        let ready =
            json!({"ready": false, "checks": {"nats": true, "postgres": false, "workers": false}});
        let status = json!({"consumers": [
            {"name": "conversation-p0", "bound": true, "pulling": true},
            {"name": "conversation-p1", "bound": false, "pulling": false},
            {"name": "conversation-p2", "bound": true, "pulling": false,
             "last_pull_ms": 12300, "pull_failures": 3},
            {"name": "conversation-p3", "bound": true, "pulling": false},
        ]});
        assert_eq!(
            why_not_ready(&ready, &status),
            [
                "check postgres failing",
                "check workers failing",
                "conversation-p1 not bound",
                "conversation-p2 not pulling (last answered pull 12.3s ago, 3 failures since)",
                "conversation-p3 not pulling (last answered pull never, 0 failures since)",
            ]
        );
    }
}
