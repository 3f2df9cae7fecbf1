//! `just test-chaos`: every stage as its own process under a steady stream
//! of signed webhooks from many customers of three restaurants, one fault
//! per scenario, then an audit (`audit.rs`). Scenarios run one after the
//! other, each in a world of its own (`world.rs`); one failing does not
//! hide the others: the table of every outcome is printed, and written to
//! `docs/RELIABILITY.md` with `CHAOS_WRITE_REPORT=1`.
//!
//! `CHAOS_SECONDS` (default 8) is each scenario's traffic after its fault
//! began; `CHAOS_ONLY=kill-9-router,nats-restart` runs some scenarios.

mod audit;
mod fleet;
mod nats;
mod report;
mod scenarios;
mod traffic;
mod world;

use std::time::{Duration, Instant};

use scenarios::Scenario;
use traffic::Traffic;
use world::World;

/// Customers per restaurant, each writing once per `PAUSE`: 17 a minute,
/// under the default customer inbound limit (20).
const CUSTOMERS: usize = 8;
const PAUSE: Duration = Duration::from_millis(3_500);
/// Traffic before the fault.
const WARM: Duration = Duration::from_secs(2);

fn seconds() -> Duration {
    let seconds = std::env::var("CHAOS_SECONDS")
        .ok()
        .map(|v| {
            v.parse::<u64>()
                .expect("CHAOS_SECONDS is a number of seconds")
        })
        .unwrap_or(8);
    Duration::from_secs(seconds)
}

fn chosen() -> Vec<Scenario> {
    let all = Scenario::all();
    let Ok(only) = std::env::var("CHAOS_ONLY") else {
        return all;
    };
    let names: Vec<&str> = only.split(',').map(str::trim).collect();
    let chosen: Vec<Scenario> = all
        .into_iter()
        .filter(|s| names.contains(&s.name().as_str()))
        .collect();
    assert!(!chosen.is_empty(), "CHAOS_ONLY={only} names no scenario");
    chosen
}

async fn run(scenario: Scenario) -> report::Row {
    let started = Instant::now();
    let name = scenario.name();
    eprintln!("chaos: {name}: {}", scenario.describe());
    let mut w = World::start(&name, scenario.nats_nodes()).await;
    let traffic = Traffic::start(&w.sim, &w.restaurants, CUSTOMERS, PAUSE, &name);
    tokio::time::sleep(WARM).await;
    let fault_at = Instant::now();
    let disturbed = scenario.disturb(&mut w, &traffic).await;
    let rest = (seconds().max(scenario.lasts() + Duration::from_secs(2)))
        .saturating_sub(fault_at.elapsed());
    tokio::time::sleep(rest).await;
    let posts = traffic.finish().await;
    let mut disturbed = disturbed;
    if let Some((what, from, to)) = disturbed.away {
        let answers = traffic::answers_between(&posts, from, to);
        let told: Vec<String> = answers.iter().map(|(s, n)| format!("{n}×{s}")).collect();
        disturbed.notes.push(format!(
            "webhooks posted while {what} was away: {}",
            told.join(", ")
        ));
        // Without NATS there is no PubAck: 503 (Twilio retries), never 200
        // unless the PubAck came once the server was back.
        if what == "NATS" && !answers.contains_key("503") {
            disturbed
                .problems
                .push("ingest never answered 503 while NATS was down".into());
        }
        if answers
            .keys()
            .any(|s| !["200", "503", "no answer"].contains(&s.as_str()))
        {
            disturbed
                .problems
                .push(format!("unexpected answers while {what} was away"));
        }
    }
    w.fleet
        .wait_ready(&fleet::Stage::ALL, Duration::from_secs(60))
        .await;
    let audit = audit::run(&posts, &w.db.pool, &w.bus, &w.sim).await;
    let mut verdict = audit.verdict(disturbed.allowed_twice);
    if !disturbed.problems.is_empty() {
        let problems = disturbed.problems.join("; ");
        verdict = match verdict {
            Ok(()) => Err(problems),
            Err(e) => Err(format!("{e}; {problems}")),
        };
    }
    let logs = w.fleet.logs().display().to_string();
    w.stop().await;
    let row = report::Row {
        scenario: name,
        description: scenario.describe(),
        audit,
        notes: disturbed.notes,
        verdict,
        took: started.elapsed(),
        logs,
    };
    eprintln!("{}", row.summary());
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_keeps_the_invariants() {
    waiter_harness::init_logs();
    let started = Instant::now();
    let mut rows = vec![];
    for scenario in chosen() {
        // A scenario that panics (a stage never ready again) is a failed
        // row; its world is dropped, its processes killed, the next runs.
        let row = match tokio::spawn(run(scenario)).await {
            Ok(row) => row,
            Err(e) => report::Row::panicked(&scenario, e),
        };
        rows.push(row);
    }
    let table = report::render(&rows, started.elapsed(), seconds());
    println!("{table}");
    if std::env::var("CHAOS_WRITE_REPORT").is_ok_and(|v| v == "1") {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/RELIABILITY.md");
        std::fs::write(path, &table).expect("write docs/RELIABILITY.md");
        eprintln!("chaos: wrote {path}");
    }
    let failed: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            r.verdict
                .as_ref()
                .err()
                .map(|e| format!("{}: {e} (logs in {})", r.scenario, r.logs))
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
