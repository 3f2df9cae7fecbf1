//! What each stage of the in-process pipeline costs, for the benchmark.
//!
//! With [`PerStage`], every stage runs on a tokio runtime of its own (one
//! worker thread named `st-<stage>`, so its CPU time can be read from
//! `/proc/self/task`), with its own NATS connection (its statistics count
//! the messages the stage sent and received) and its PostgreSQL connections
//! named after it (`application_name`, so its backends' CPU can be read
//! too). With `count_round_trips`, each stage's pool goes through a proxy
//! that counts the requests the stage wrote: one per database round trip.

use std::{
    collections::BTreeMap,
    future::Future,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    runtime::Runtime,
};
use waiter_nats::Bus;

/// How the pipeline's stages are separated (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub struct PerStage {
    /// Put a counting proxy in front of each stage's PostgreSQL pool.
    pub count_round_trips: bool,
}

/// One stage's meters.
pub struct Stage {
    pub name: &'static str,
    /// The stage's own connection (none for the simulator).
    pub bus: Option<Bus>,
    /// Requests the stage wrote to PostgreSQL (with `count_round_trips`).
    pub round_trips: Option<Arc<AtomicU64>>,
}

impl Stage {
    /// Messages sent and received on the stage's NATS connection:
    /// publishes, acks, pull requests and their replies, API calls.
    pub fn nats_messages(&self) -> (u64, u64) {
        self.bus.as_ref().map_or((0, 0), |bus| {
            let s = bus.client().statistics();
            (
                s.out_messages.load(Ordering::Relaxed),
                s.in_messages.load(Ordering::Relaxed),
            )
        })
    }

    pub fn db_round_trips(&self) -> Option<u64> {
        self.round_trips.as_ref().map(|n| n.load(Ordering::Relaxed))
    }
}

/// A stage's runtime; shut down without waiting when the pipeline goes
/// (dropping a runtime inside another one would panic).
pub struct StageRuntime(Option<Runtime>);

impl Drop for StageRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The thread name of a stage's runtime (at most 15 bytes: Linux cuts the rest).
pub fn thread_name(stage: &str) -> String {
    let mut name = format!("st-{stage}");
    name.truncate(15);
    name
}

pub fn runtime(stage: &str) -> StageRuntime {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(thread_name(stage))
        .enable_all()
        .build()
        .expect("stage runtime");
    StageRuntime(Some(rt))
}

impl StageRuntime {
    /// Runs `start` to completion on this runtime: whatever it spawns
    /// (the stage's loops, its connection's reader) stays on it.
    pub async fn run<T: Send + 'static>(
        &self,
        start: impl Future<Output = T> + Send + 'static,
    ) -> T {
        self.0
            .as_ref()
            .expect("running")
            .spawn(start)
            .await
            .expect("stage start")
    }
}

/// A TCP proxy to `target` counting the writes of its clients: sqlx sends
/// each request whole and waits for the answer, so one write is one round
/// trip.
pub(crate) async fn counting_proxy(target: SocketAddr) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let count = counted.clone();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    return;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (mut client_read, mut client_write) = inbound.into_split();
                let (mut server_read, mut server_write) = outbound.into_split();
                let requests = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match client_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                count.fetch_add(1, Ordering::Relaxed);
                                if server_write.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = server_write.shutdown().await;
                };
                let answers = async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    let _ = client_write.shutdown().await;
                };
                tokio::join!(requests, answers);
            });
        }
    });
    (addr, count)
}

/// The machine's load averages (1, 5, 15 minutes), as `/proc/loadavg` says.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The contents of `file` (`stat`, `status`) of each thread of `process`
/// (`self` or a pid).
fn task_files(process: &str, file: &str) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{process}/task")) else {
        return vec![];
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join(file)).ok())
        .collect()
}

/// CPU time (user + system) per thread name of this process.
pub fn thread_cpu() -> BTreeMap<String, Duration> {
    let mut by_name = BTreeMap::new();
    for stat in task_files("self", "stat") {
        if let Some((name, cpu)) = parse_stat(&stat) {
            *by_name.entry(name).or_default() += cpu;
        }
    }
    by_name
}

/// Context switches (voluntary and involuntary: every time a thread
/// slept or was preempted) per thread name of this process.
pub fn thread_switches() -> BTreeMap<String, u64> {
    let mut by_name = BTreeMap::new();
    for status in task_files("self", "status") {
        if let Some(name) = status_field(&status, "Name") {
            *by_name.entry(name.to_string()).or_default() += switches_of(&status);
        }
    }
    by_name
}

/// Context switches of a process's threads, all of them.
pub fn process_switches(pid: u32) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/task")).ok()?;
    Some(
        task_files(&pid.to_string(), "status")
            .iter()
            .map(|status| switches_of(status))
            .sum(),
    )
}

fn status_field<'a>(status: &'a str, field: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name == field).then(|| value.trim())
    })
}

/// `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` of a
/// `/proc/.../status`.
fn switches_of(status: &str) -> u64 {
    ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"]
        .iter()
        .filter_map(|f| status_field(status, f)?.parse::<u64>().ok())
        .sum()
}

/// CPU time (user + system) of a process and its threads.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, cpu)| cpu)
}

/// The name and utime + stime of a `/proc/.../stat` line.
fn parse_stat(stat: &str) -> Option<(String, Duration)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat[open + 1..close].to_string();
    // After the name: state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((name, Duration::from_millis(ticks * 1000 / clock_ticks())))
}

/// `/proc` counts CPU time in USER_HZ, 100 per second on Linux.
fn clock_ticks() -> u64 {
    100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_gives_its_context_switches() {
        let status = "Name:\tst-router\nState:\tS (sleeping)\n\
                      voluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(status_field(status, "Name"), Some("st-router"));
        assert_eq!(switches_of(status), 127);
        assert!(process_switches(std::process::id()).is_some_and(|n| n > 0));
    }

    #[test]
    fn a_stat_line_gives_its_name_and_cpu_time() {
        let line = "4242 (st-conversa tion) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 0 0";
        let (name, cpu) = parse_stat(line).expect("parsed");
        assert_eq!(name, "st-conversa tion");
        assert_eq!(cpu, Duration::from_millis(300 * 1000 / clock_ticks()));
        assert_eq!(thread_name("conversation"), "st-conversation");
        assert_eq!(thread_name("conversation-two"), "st-conversation");
    }

    #[test]
    fn this_threads_cpu_time_is_read() {
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        assert!(x != 1);
        let total: Duration = thread_cpu().values().sum();
        assert!(total >= Duration::from_millis(100), "{total:?}");
    }
}
