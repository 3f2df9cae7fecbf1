//! Per-hop cost: what each stage spent per answered message, read before
//! and after the load (thread CPU from `/proc/self/task`, each stage's NATS
//! connection statistics, the requests each stage's counting proxy saw,
//! the CPU of each stage's PostgreSQL backends by `application_name`, and
//! the database's transaction count). In external mode `external_meters`
//! fills the same reading from the stages' processes instead.

use std::{collections::BTreeMap, time::Duration};

use sqlx::PgPool;
use waiter_e2e::{stages, Pipeline};

#[derive(Default, Clone)]
pub struct StageReading {
    pub cpu: Duration,
    /// Messages the stage's NATS connection sent and received (unknown
    /// outside the stage's process).
    pub nats: Option<(u64, u64)>,
    pub round_trips: Option<u64>,
    pub backend_cpu: Duration,
    /// Context switches of the stage's threads: how often it slept and
    /// woke (or was preempted).
    pub switches: u64,
    pub backend_switches: u64,
}

pub struct Reading {
    pub stages: BTreeMap<String, StageReading>,
    /// Threads that are no stage's: the load generator, the harness.
    pub other_cpu: Duration,
    pub transactions: i64,
    pub nats_server_cpu: Option<Duration>,
    pub nats_server_switches: Option<u64>,
    /// Context switches of the whole machine (`ctxt` of `/proc/stat`).
    pub machine_switches: u64,
    pub machine_busy: Duration,
    pub machine_total: Duration,
    /// Resident memory (KiB) of each process that runs stages (in-process:
    /// the bench itself, its simulator and load included), of nats-server,
    /// and the database's size on disk.
    pub memory: Memory,
}

#[derive(Default, Clone)]
pub struct Memory {
    pub processes: BTreeMap<String, u64>,
    pub nats_server: Option<u64>,
    pub database: i64,
}

/// A process's resident set in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The database's size in bytes.
pub async fn database_size(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// The pids of this database's backends, by the stage their pool names.
async fn backends(pool: &PgPool) -> Vec<(String, u32)> {
    sqlx::query_as::<_, (String, i32)>(
        "SELECT application_name, pid FROM pg_stat_activity WHERE datname = current_database()",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default()
    .into_iter()
    .filter_map(|(name, pid)| {
        let stage = name.strip_prefix("waiter-")?.to_string();
        Some((stage, u32::try_from(pid).ok()?))
    })
    .collect()
}

pub fn nats_server_pid() -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim() == "nats-server").then_some(pid)
        })
}

/// Context switches of the whole machine since boot.
pub fn machine_switches() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("ctxt ")?.trim().parse().ok())
        .unwrap_or(0)
}

/// Busy and total CPU time of the whole machine (every core).
pub fn machine() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next() else {
        return Default::default();
    };
    let ticks: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = ticks.iter().sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    let tick = |t: u64| Duration::from_millis(t * 10);
    (tick(total - idle), tick(total))
}

pub async fn read(p: &Pipeline) -> Reading {
    let threads = stages::thread_cpu();
    let mut readings: BTreeMap<String, StageReading> = BTreeMap::new();
    let mut other_cpu = Duration::ZERO;
    for (thread, cpu) in &threads {
        let owner = p
            .stages
            .iter()
            .find(|s| stages::thread_name(s.name) == *thread);
        match owner {
            Some(stage) => readings.entry(stage.name.to_string()).or_default().cpu += *cpu,
            None if thread.starts_with("st-") => {}
            None => other_cpu += *cpu,
        }
    }
    for (thread, switches) in stages::thread_switches() {
        if let Some(stage) = p
            .stages
            .iter()
            .find(|s| stages::thread_name(s.name) == thread)
        {
            readings.entry(stage.name.to_string()).or_default().switches += switches;
        }
    }
    for stage in &p.stages {
        let r = readings.entry(stage.name.to_string()).or_default();
        r.nats = Some(stage.nats_messages());
        r.round_trips = stage.db_round_trips();
    }
    for (stage, pid) in backends(p.env.pool()).await {
        let reading = readings.entry(stage).or_default();
        reading.backend_cpu += stages::process_cpu(pid).unwrap_or_default();
        reading.backend_switches += stages::process_switches(pid).unwrap_or(0);
    }
    let (machine_busy, machine_total) = machine();
    let memory = Memory {
        processes: resident_kib(std::process::id())
            .map(|kib| ("bench (every stage in-process)".to_string(), kib))
            .into_iter()
            .collect(),
        nats_server: nats_server_pid().and_then(resident_kib),
        database: database_size(p.env.pool()).await,
    };
    Reading {
        stages: readings,
        other_cpu,
        transactions: transactions(p.env.pool()).await,
        nats_server_cpu: nats_server_pid().and_then(stages::process_cpu),
        nats_server_switches: nats_server_pid().and_then(stages::process_switches),
        machine_switches: machine_switches(),
        machine_busy,
        machine_total,
        memory,
    }
}

/// Transactions committed or rolled back in the pool's database so far.
pub async fn transactions(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await
    .unwrap_or(0)
}

/// Prints the per-hop table for `messages` answered messages.
pub fn report(before: &Reading, after: &Reading, messages: usize) {
    let n = messages.max(1) as f64;
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / n;
    println!("  per answered message (per hop)");
    println!(
        "    {:<14} {:>9} {:>10} {:>10} {:>12} {:>13} {:>9}",
        "stage", "CPU ms", "NATS out", "NATS in", "DB requests", "PG backend ms", "switches"
    );
    let mut total_cpu = Duration::ZERO;
    let mut total_backend = Duration::ZERO;
    let mut backend_switches = 0;
    for (name, a) in &after.stages {
        let b = before.stages.get(name).cloned().unwrap_or_default();
        let cpu = a.cpu.saturating_sub(b.cpu);
        let backend = a.backend_cpu.saturating_sub(b.backend_cpu);
        total_cpu += cpu;
        total_backend += backend;
        backend_switches += a.backend_switches.saturating_sub(b.backend_switches);
        let per_message = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.1}", a.saturating_sub(b) as f64 / n),
            _ => "-".into(),
        };
        let trips = per_message(a.round_trips, b.round_trips);
        let nats_out = per_message(a.nats.map(|m| m.0), b.nats.map(|m| m.0));
        let nats_in = per_message(a.nats.map(|m| m.1), b.nats.map(|m| m.1));
        println!(
            "    {name:<14} {:>9.3} {nats_out:>10} {nats_in:>10} {trips:>12} {:>13.3} {:>9.1}",
            per(cpu),
            per(backend),
            a.switches.saturating_sub(b.switches) as f64 / n,
        );
    }
    if after.stages.values().any(|s| s.nats.is_none()) {
        println!(
            "    (-: NATS messages per stage and database round trips are not available externally: \
             they are counted on each stage's connection and by --round-trips' proxy, in-process only)"
        );
    }
    let other = after.other_cpu.saturating_sub(before.other_cpu);
    let nats = match (after.nats_server_cpu, before.nats_server_cpu) {
        (Some(a), Some(b)) => format!("{:.3}", per(a.saturating_sub(b))),
        _ => "-".into(),
    };
    let busy = after.machine_busy.saturating_sub(before.machine_busy);
    let total = after.machine_total.saturating_sub(before.machine_total);
    println!(
        "    stages {:.3} ms + their PostgreSQL backends {:.3} ms; load generator and harness {:.3} ms",
        per(total_cpu),
        per(total_backend),
        per(other)
    );
    println!(
        "    nats-server (shared with other users of the machine) {nats} ms; database transactions {:.1}",
        (after.transactions - before.transactions) as f64 / n
    );
    let nats_switches = match (after.nats_server_switches, before.nats_server_switches) {
        (Some(a), Some(b)) => format!("{:.1}", a.saturating_sub(b) as f64 / n),
        _ => "-".into(),
    };
    println!(
        "    context switches (a thread slept and woke, or was preempted): the stages' PostgreSQL \
         backends {:.1}, nats-server {nats_switches}, whole machine {:.1}",
        backend_switches as f64 / n,
        after
            .machine_switches
            .saturating_sub(before.machine_switches) as f64
            / n
    );
    println!(
        "    whole machine {:.3} ms ({:.0} % busy over the run; load average {})",
        per(busy),
        100.0 * busy.as_secs_f64() / total.as_secs_f64().max(1e-9),
        stages::load_average()
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("  memory after the run (resident; before it in brackets)");
    for (process, kib) in &after.memory.processes {
        let was = before.memory.processes.get(process).copied().unwrap_or(0);
        println!(
            "    {process:<30} {:>8.1} MiB  ({:.1})",
            mib(*kib),
            mib(was)
        );
    }
    if let (Some(a), Some(b)) = (after.memory.nats_server, before.memory.nats_server) {
        println!(
            "    {:<30} {:>8.1} MiB  ({:.1})",
            "nats-server",
            mib(a),
            mib(b)
        );
    }
    println!(
        "    {:<30} {:>8.1} MiB  ({:.1})",
        "database on disk",
        after.memory.database as f64 / 1048576.0,
        before.memory.database as f64 / 1048576.0
    );
}
