//! What the supervisor writes down for `ps` and `down`: a pid file per
//! process (plain pids, so `down` works with nothing but them) and
//! `supervisor.json`, the whole picture, rewritten atomically on every
//! change.

use std::{
    io::Write,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::plan::{RunDir, Stage};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub supervisor_pid: u32,
    pub started_at: DateTime<Utc>,
    pub namespace: String,
    pub processes: Vec<Process>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Process {
    pub stage: Stage,
    pub replica: String,
    pub n: u32,
    /// `None` between a crash and its restart.
    pub pid: Option<u32>,
    pub ops_port: u16,
    pub started_at: Option<DateTime<Utc>>,
    pub restarts: u32,
    /// Why the last run ended (`exit status: 1`, `signal: 9`, `unhealthy`).
    pub last_exit: Option<String>,
}

impl State {
    pub fn load(run: &RunDir) -> Option<State> {
        let text = std::fs::read_to_string(run.state()).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn save(&self, run: &RunDir) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("state JSON");
        write_atomically(&run.state(), &json)
    }
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A name per write: the replicas' tasks save concurrently.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("{}-{n}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(tmp, path)
}

pub fn write_pid(path: &Path, pid: u32) -> std::io::Result<()> {
    write_atomically(path, format!("{pid}\n").as_bytes())
}

/// Every `<name>.pid` in the run directory, with the pid it names.
pub fn pid_files(run: &RunDir) -> Vec<(String, std::path::PathBuf, u32)> {
    let Ok(entries) = std::fs::read_dir(run.pids()) else {
        return vec![];
    };
    let mut found: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let name = path
                .file_name()?
                .to_str()?
                .strip_suffix(".pid")?
                .to_string();
            let pid = std::fs::read_to_string(&path).ok()?.trim().parse().ok()?;
            Some((name, path, pid))
        })
        .collect();
    found.sort();
    found
}

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether `pid` runs one of our binaries (a stage, the simulator, the
/// supervisor): a pid file outlives its process and the number may have
/// been reused by something else.
pub fn runs_waiter(pid: u32) -> bool {
    let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
        return false;
    };
    exe.file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.trim_end_matches(" (deleted)"))
        .is_some_and(|n| n == "waiterctl" || Stage::START_ORDER.iter().any(|s| s.binary() == n))
}

pub fn signal(pid: u32, signal: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with a positive pid only sends a signal.
    unsafe { libc::kill(pid, signal) == 0 }
}
