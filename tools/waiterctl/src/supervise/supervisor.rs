//! The running supervisor: one task per replica starts its process,
//! restarts it with backoff when it dies or stays unhealthy, and stops it
//! with SIGTERM (then KILL after the stop timeout) when asked.

use std::{
    collections::BTreeMap,
    fs::OpenOptions,
    os::unix::process::ExitStatusExt,
    path::PathBuf,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use tokio::{process::Command, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use super::{
    control::Reply,
    plan::{port_taken, replica_id, Demo, Ports, RunDir, Stage, MAX_REPLICAS},
    probe::{Answer, Prober},
    state::{self, Process, State},
};

/// First restart after this; doubled per crash up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A run this long forgives earlier crashes (the backoff starts over).
const STABLE_RUN: Duration = Duration::from_secs(60);
/// Liveness: `/health` every `PROBE_EVERY`; this many 503s (or hung
/// requests) in a row and the process is restarted. A stage whose worker
/// loop died answers 503 there (`runtime::ops`).
const PROBE_EVERY: Duration = Duration::from_secs(2);
const UNHEALTHY_PROBES: u32 = 3;

/// How the supervisor starts processes.
pub struct Launch {
    pub run: RunDir,
    pub ports: Ports,
    pub demo: Demo,
    pub bin_dir: PathBuf,
    /// On top of the supervisor's own environment (`WAITER_SECRET_KEY`).
    pub env: Vec<(String, String)>,
    pub stop_timeout: Duration,
    pub namespace: String,
}

pub struct Supervisor {
    launch: Launch,
    started_at: chrono::DateTime<Utc>,
    replicas: Mutex<BTreeMap<(Stage, u32), Replica>>,
    /// One scale or stop at a time.
    changing: tokio::sync::Mutex<()>,
    /// One state-file write at a time, each of a snapshot taken under it:
    /// otherwise an older snapshot (a scale's, taken before its new
    /// replica's pid was known) could land after a newer one, and `ps`
    /// would show a running replica as gone until the next change.
    saving: Mutex<()>,
    /// Set by `stop_all`: a process that exits now is not restarted.
    stopping: std::sync::atomic::AtomicBool,
    prober: Prober,
}

struct Replica {
    process: Process,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Supervisor {
    pub fn new(launch: Launch) -> Arc<Self> {
        Arc::new(Self {
            launch,
            started_at: Utc::now(),
            replicas: Mutex::new(BTreeMap::new()),
            changing: tokio::sync::Mutex::new(()),
            saving: Mutex::new(()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            prober: Prober::new(),
        })
    }

    pub fn prober(&self) -> &Prober {
        &self.prober
    }

    /// The replicas running now, as `ps` sees them.
    pub fn processes(&self) -> Vec<Process> {
        lock(&self.replicas)
            .values()
            .map(|r| r.process.clone())
            .collect()
    }

    fn save(&self) {
        self.save_with(|| {});
    }

    /// `save`, running `between` after the snapshot and before the write
    /// (the window a test widens).
    fn save_with(&self, between: impl FnOnce()) {
        let _one_writer = lock(&self.saving);
        let state = State {
            supervisor_pid: std::process::id(),
            started_at: self.started_at,
            namespace: self.launch.namespace.clone(),
            processes: self.processes(),
        };
        between();
        if let Err(e) = state.save(&self.launch.run) {
            eprintln!("cannot write {}: {e}", self.launch.run.state().display());
        }
    }

    fn update(&self, stage: Stage, n: u32, f: impl FnOnce(&mut Process)) {
        if let Some(replica) = lock(&self.replicas).get_mut(&(stage, n)) {
            f(&mut replica.process);
        }
        self.save();
    }

    /// Sets `stage` to `to` replicas: starts the missing ones (after
    /// checking their ports are free), or stops the newest and waits until
    /// they have drained and exited.
    pub async fn scale(self: &Arc<Self>, stage: Stage, to: u32) -> Reply {
        if to > MAX_REPLICAS {
            return Reply::refused(format!("at most {MAX_REPLICAS} replicas of a stage"));
        }
        if !stage.scalable() && to != 1 {
            return Reply::refused(format!("{} runs once", stage.name()));
        }
        let _one_at_a_time = self.changing.lock().await;
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return Reply::refused("stopping");
        }
        let running: Vec<u32> = lock(&self.replicas)
            .keys()
            .filter(|(s, _)| *s == stage)
            .map(|(_, n)| *n)
            .collect();
        let mut reply = Reply::default();
        let count = running.len() as u32;
        if to > count {
            let numbers: Vec<u32> = (1..)
                .filter(|n| !running.contains(n))
                .take((to - count) as usize)
                .collect();
            for &n in &numbers {
                for port in self.launch.ports.ports_of(stage, n) {
                    if let Some(e) = port_taken(port) {
                        return Reply::refused(format!(
                            "port {port} for {} is in use ({e})",
                            replica_id(stage, n)
                        ));
                    }
                }
            }
            for n in numbers {
                self.start(stage, n);
                reply
                    .started
                    .push((replica_id(stage, n), self.launch.ports.ops_port(stage, n)));
            }
        } else {
            let mut newest = running;
            newest.sort_unstable_by_key(|n| std::cmp::Reverse(*n));
            newest.truncate((count - to) as usize);
            reply.stopped = self.stop_replicas(stage, &newest).await;
        }
        self.save();
        reply
    }

    fn start(self: &Arc<Self>, stage: Stage, n: u32) {
        let stop = CancellationToken::new();
        let process = Process {
            stage,
            replica: replica_id(stage, n),
            n,
            pid: None,
            ops_port: self.launch.ports.ops_port(stage, n),
            started_at: None,
            restarts: 0,
            last_exit: None,
        };
        lock(&self.replicas).insert(
            (stage, n),
            Replica {
                process,
                stop: stop.clone(),
                task: None,
            },
        );
        let task = tokio::spawn(self.clone().watch(stage, n, stop));
        if let Some(replica) = lock(&self.replicas).get_mut(&(stage, n)) {
            replica.task = Some(task);
        }
    }

    /// Stops these replicas of `stage` together and forgets them.
    async fn stop_replicas(&self, stage: Stage, numbers: &[u32]) -> Vec<String> {
        let mut tasks: Vec<(u32, String, Option<JoinHandle<()>>)> = {
            let mut replicas = lock(&self.replicas);
            replicas
                .iter_mut()
                .filter(|((s, n), _)| *s == stage && numbers.contains(n))
                .map(|((_, n), r)| {
                    r.stop.cancel();
                    (*n, r.process.replica.clone(), r.task.take())
                })
                .collect()
        };
        // Newest first, as the reply lists them.
        tasks.sort_unstable_by_key(|t| std::cmp::Reverse(t.0));
        let mut stopped = vec![];
        for (_, id, task) in tasks {
            if let Some(task) = task {
                let _ = task.await;
            }
            stopped.push(id);
        }
        lock(&self.replicas).retain(|(s, n), _| !(*s == stage && numbers.contains(n)));
        self.save();
        stopped
    }

    /// Stops everything, the entry first and the simulator last, each
    /// stage's replicas together.
    pub async fn stop_all(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _one_at_a_time = self.changing.lock().await;
        for stage in Stage::STOP_ORDER {
            let numbers: Vec<u32> = lock(&self.replicas)
                .keys()
                .filter(|(s, _)| *s == stage)
                .map(|(_, n)| *n)
                .collect();
            if numbers.is_empty() {
                continue;
            }
            eprintln!(
                "    stopping {} ({} replica(s))",
                stage.name(),
                numbers.len()
            );
            self.stop_replicas(stage, &numbers).await;
        }
    }

    /// One replica's life: start, wait, restart with backoff, until `stop`.
    async fn watch(self: Arc<Self>, stage: Stage, n: u32, stop: CancellationToken) {
        let id = replica_id(stage, n);
        let pid_file = self.launch.run.pid_of(&id);
        let mut backoff = FIRST_BACKOFF;
        while !stop.is_cancelled() {
            let began = Instant::now();
            let why = match self.spawn(stage, n) {
                Err(e) => format!("cannot start: {e}"),
                Ok(mut child) => {
                    let pid = child.id().unwrap_or_default();
                    if let Err(e) = state::write_pid(&pid_file, pid) {
                        eprintln!("cannot write {}: {e}", pid_file.display());
                    }
                    self.update(stage, n, |p| {
                        p.pid = Some(pid);
                        p.started_at = Some(Utc::now());
                    });
                    let ops_port = self.launch.ports.ops_port(stage, n);
                    let why = tokio::select! {
                        status = child.wait() => describe(status),
                        _ = stop.cancelled() => {
                            terminate(&mut child, self.launch.stop_timeout).await;
                            break;
                        }
                        () = unhealthy(&self.prober, ops_port) => {
                            terminate(&mut child, self.launch.stop_timeout).await;
                            format!("unhealthy: /health failed {UNHEALTHY_PROBES} times")
                        }
                    };
                    let _ = std::fs::remove_file(&pid_file);
                    why
                }
            };
            if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            if began.elapsed() >= STABLE_RUN {
                backoff = FIRST_BACKOFF;
            }
            eprintln!(
                "{id} ended ({why}); restarting in {backoff:?} (log: {})",
                self.launch.run.log_of(&id).display()
            );
            self.update(stage, n, |p| {
                p.pid = None;
                p.restarts += 1;
                p.last_exit = Some(why);
            });
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        let _ = std::fs::remove_file(&pid_file);
    }

    fn spawn(&self, stage: Stage, n: u32) -> std::io::Result<tokio::process::Child> {
        let id = replica_id(stage, n);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.launch.run.log_of(&id))?;
        let mut command = Command::new(self.launch.bin_dir.join(stage.binary()));
        command
            .envs(self.launch.env.iter().cloned())
            .envs(self.launch.ports.env_of(stage, n, &self.launch.demo))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: Ctrl-C in the terminal reaches the
            // supervisor only, which stops the children in order.
            .process_group(0);
        command.spawn()
    }
}

/// SIGTERM, the stop timeout for the drain, then KILL.
async fn terminate(child: &mut tokio::process::Child, timeout: Duration) {
    if let Some(pid) = child.id() {
        state::signal(pid, libc::SIGTERM);
    }
    if tokio::time::timeout(timeout, child.wait()).await.is_err() {
        eprintln!(
            "pid {:?} did not stop within {timeout:?}: killing it",
            child.id()
        );
        let _ = child.kill().await;
    }
}

/// Returns once `/health` failed `UNHEALTHY_PROBES` times in a row; a
/// port not listening yet (starting up) does not count.
async fn unhealthy(prober: &Prober, port: u16) {
    let mut failures = 0;
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        match prober.get(port, "/health").await {
            Answer::Got(code, _) if code >= 500 => failures += 1,
            Answer::Failed(_) => failures += 1,
            _ => failures = 0,
        }
        if failures >= UNHEALTHY_PROBES {
            return;
        }
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (_, Some(signal)) => format!("signal {signal}"),
            _ => s.to_string(),
        },
        Err(e) => format!("lost: {e}"),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use waiter_runtime::Health;

    use super::*;

    #[test]
    fn the_state_file_ends_with_the_last_change_however_saves_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let supervisor = Supervisor::new(Launch {
            run: RunDir::new(dir.path()),
            ports: Ports::defaults(),
            demo: Demo {
                number: "whatsapp:+1".into(),
                account_sid: "AC1".into(),
                auth_token: "t".into(),
            },
            bin_dir: dir.path().into(),
            env: vec![],
            stop_timeout: Duration::from_secs(1),
            namespace: "test".into(),
        });
        for n in 1..=2 {
            let process = Process {
                stage: Stage::Outbound,
                replica: replica_id(Stage::Outbound, n),
                n,
                pid: None,
                ops_port: 9104,
                started_at: None,
                restarts: 0,
                last_exit: None,
            };
            lock(&supervisor.replicas).insert(
                (Stage::Outbound, n),
                Replica {
                    process,
                    stop: CancellationToken::new(),
                    task: None,
                },
            );
        }
        // A scale's save takes its snapshot before its new replica's pid
        // is known; the replica's task records the pid (and saves) while
        // that snapshot is still being written.
        let (recorded_tx, recorded_rx) = std::sync::mpsc::channel();
        std::thread::scope(|threads| {
            let (start_tx, start_rx) = std::sync::mpsc::channel::<()>();
            let supervisor_ref = &supervisor;
            threads.spawn(move || {
                start_rx.recv().unwrap();
                supervisor_ref.update(Stage::Outbound, 1, |p| p.pid = Some(4242));
                recorded_tx.send(()).unwrap();
            });
            supervisor.save_with(|| {
                start_tx.send(()).unwrap();
                // Without one writer at a time the pid's save lands here.
                let _ = recorded_rx.recv_timeout(Duration::from_millis(300));
            });
        });
        let saved = State::load(&RunDir::new(dir.path())).expect("a state file");
        let replica_1 = saved.processes.iter().find(|p| p.n == 1).unwrap();
        assert_eq!(
            replica_1.pid,
            Some(4242),
            "the file holds the older snapshot"
        );
    }

    /// The stage's own `/health` (runtime::ops): a worker loop that died
    /// makes it 503, and the supervisor's probe then gives up on it.
    #[tokio::test]
    async fn a_stage_whose_worker_loop_died_is_judged_unhealthy() {
        let loops = Arc::new(AtomicBool::new(true));
        let alive = loops.clone();
        let health =
            Health::new("order").vital("worker_loops", move || alive.load(Ordering::SeqCst));
        let shutdown = CancellationToken::new();
        let (addr, _server) =
            waiter_runtime::ops::serve("127.0.0.1:0".parse().unwrap(), health, shutdown.clone())
                .unwrap();
        let prober = Prober::new();
        let probing = PROBE_EVERY * (UNHEALTHY_PROBES + 1);
        assert!(
            tokio::time::timeout(probing, unhealthy(&prober, addr.port()))
                .await
                .is_err(),
            "healthy, yet judged unhealthy"
        );
        loops.store(false, Ordering::SeqCst);
        assert!(
            tokio::time::timeout(probing, unhealthy(&prober, addr.port()))
                .await
                .is_ok(),
            "its /health fails, yet it is left running"
        );
        shutdown.cancel();
    }
}
