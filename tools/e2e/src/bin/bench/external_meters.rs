//! Per-stage cost of a running deployment: each stage process's CPU time
//! (`/proc/<pid>/stat`, all its threads; the pids from the run directory's
//! `pids/<stage>-<n>.pid`), the PostgreSQL backends each process holds a
//! connection to (matched by the connection's client port), nats-server and
//! the machine, in the reading `meters::report` prints.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::Path,
    time::Duration,
};

use sqlx::PgPool;
use waiter_e2e::stages;

use crate::meters::{self, Reading, StageReading};

/// `(stage, pid)` of every replica with a pid file (not the supervisor).
pub fn replicas(run_dir: &Path) -> Vec<(String, u32)> {
    let Ok(entries) = std::fs::read_dir(run_dir.join("pids")) else {
        return Vec::new();
    };
    let mut found: Vec<(String, u32)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry
                .file_name()
                .to_str()?
                .strip_suffix(".pid")?
                .to_string();
            let pid = std::fs::read_to_string(entry.path())
                .ok()?
                .trim()
                .parse()
                .ok()?;
            let stage = match name.rsplit_once('-') {
                Some((stage, n)) if n.chars().all(|c| c.is_ascii_digit()) => stage.to_string(),
                _ => name,
            };
            (stage != "supervisor" && stages::process_cpu(pid).is_some()).then_some((stage, pid))
        })
        .collect();
    found.sort();
    found
}

/// The inodes of the sockets `pid` holds open.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    fds.flatten()
        .filter_map(|fd| {
            let link = std::fs::read_link(fd.path()).ok()?;
            let link = link.to_str()?;
            link.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Local TCP port → socket inode, from the machine's connection tables.
fn local_ports() -> HashMap<u16, u64> {
    let mut ports = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields
                .get(1)
                .and_then(|local| local.rsplit(':').next())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            let inode = fields.get(9).and_then(|i| i.parse().ok());
            if let (Some(port), Some(inode)) = (port, inode) {
                ports.insert(port, inode);
            }
        }
    }
    ports
}

/// The backends of this database, by the stage whose process holds the
/// other end of the connection.
async fn backends(pool: &PgPool, replicas: &[(String, u32)]) -> Vec<(String, u32)> {
    let rows: Vec<(i32, Option<i32>)> = sqlx::query_as(
        "SELECT pid, client_port FROM pg_stat_activity WHERE datname = current_database()",
    )
    .fetch_all(pool)
    .await
    .unwrap_or_default();
    let ports = local_ports();
    let owners: HashMap<u64, &str> = replicas
        .iter()
        .flat_map(|(stage, pid)| socket_inodes(*pid).into_iter().map(|i| (i, stage.as_str())))
        .collect();
    rows.into_iter()
        .filter_map(|(pid, port)| {
            let inode = ports.get(&u16::try_from(port?).ok()?)?;
            let stage = owners.get(inode)?;
            Some((stage.to_string(), u32::try_from(pid).ok()?))
        })
        .collect()
}

pub async fn read(run_dir: &Path, pool: &PgPool) -> Reading {
    let replicas = replicas(run_dir);
    let mut readings: BTreeMap<String, StageReading> = BTreeMap::new();
    for (stage, pid) in &replicas {
        let cpu = stages::process_cpu(*pid).unwrap_or_default();
        let reading = readings.entry(stage.clone()).or_default();
        reading.cpu += cpu;
        reading.switches += stages::process_switches(*pid).unwrap_or(0);
    }
    for (stage, pid) in backends(pool, &replicas).await {
        let reading = readings.entry(stage).or_default();
        reading.backend_cpu += stages::process_cpu(pid).unwrap_or_default();
        reading.backend_switches += stages::process_switches(pid).unwrap_or(0);
    }
    let (machine_busy, machine_total) = meters::machine();
    let mut memory = meters::Memory {
        nats_server: meters::nats_server_pid().and_then(meters::resident_kib),
        database: meters::database_size(pool).await,
        ..Default::default()
    };
    for (stage, pid) in &replicas {
        *memory.processes.entry(stage.clone()).or_default() +=
            meters::resident_kib(*pid).unwrap_or(0);
    }
    Reading {
        stages: readings,
        other_cpu: stages::process_cpu(std::process::id()).unwrap_or(Duration::ZERO),
        transactions: meters::transactions(pool).await,
        nats_server_cpu: meters::nats_server_pid().and_then(stages::process_cpu),
        nats_server_switches: meters::nats_server_pid().and_then(stages::process_switches),
        machine_switches: meters::machine_switches(),
        machine_busy,
        machine_total,
        memory,
    }
}
