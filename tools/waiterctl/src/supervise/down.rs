//! `waiterctl down`: asks the supervisor to stop everything; when it is
//! gone, stops what its pid files name (SIGTERM, then KILL after the
//! timeout) so a crashed supervisor leaves nothing running.

use std::time::{Duration, Instant};

use super::{
    control::{self, Request},
    plan::RunDir,
    state::{self, State},
};
use crate::output::Out;

pub async fn down(run: &RunDir, timeout: Duration, out: Out) -> anyhow::Result<()> {
    let supervisor = State::load(run).map(|s| s.supervisor_pid);
    let mut how = "no supervisor: from the pid files";
    if control::send(&run.socket(), &Request::Stop)
        .await?
        .is_some()
    {
        how = "the supervisor stopped them";
        // It stops stage by stage, each within its own timeout.
        let deadline = Instant::now() + timeout * 8;
        while supervisor.is_some_and(state::alive) && Instant::now() < deadline {
            let left = state::pid_files(run)
                .iter()
                .filter(|(name, _, pid)| name != "supervisor" && state::alive(*pid))
                .count();
            eprint!("\rwaiting for {left} process(es) to drain and stop ");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!();
    }
    // A supervisor that does not answer on its socket but lives stops its
    // children itself on SIGTERM (signalled too, they would be restarted).
    if let Some(pid) = supervisor.filter(|pid| state::alive(*pid) && state::runs_waiter(*pid)) {
        how = "the supervisor stopped them (on SIGTERM)";
        state::signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + timeout * 8;
        while state::alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Whatever is left: the supervisor died, or did not finish in time.
    let left: Vec<(String, u32)> = state::pid_files(run)
        .into_iter()
        .filter(|(_, path, pid)| {
            let ours = state::alive(*pid) && state::runs_waiter(*pid);
            if !ours {
                let _ = std::fs::remove_file(path);
            }
            ours
        })
        .map(|(name, _, pid)| (name, pid))
        .collect();
    for (_, pid) in &left {
        state::signal(*pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + timeout;
    while left.iter().any(|(_, pid)| state::alive(*pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut rows = vec![];
    for (name, pid) in &left {
        let how = if state::alive(*pid) {
            state::signal(*pid, libc::SIGKILL);
            "killed (did not drain in time)"
        } else {
            "stopped"
        };
        rows.push(vec![name.clone(), pid.to_string(), how.to_string()]);
    }
    for (_, path, _) in state::pid_files(run) {
        let _ = std::fs::remove_file(path);
    }
    for path in [run.socket(), run.state(), run.root.join("waiterctl")] {
        let _ = std::fs::remove_file(path);
    }
    let json = serde_json::json!({
        "supervisor": how,
        "signalled": left.iter().map(|(name, pid)| serde_json::json!({"process": name, "pid": pid})).collect::<Vec<_>>(),
    });
    if rows.is_empty() {
        out.done(&format!("down ({how})"), &json);
    } else {
        out.table(&["process", "pid", "result"], rows, &json);
    }
    Ok(())
}
