//! Every stage as its own process, built from this workspace, on fixed
//! loopback ports of the suite's block (29000–29099) so a restarted stage
//! comes back where the others expect it. Each stage's log goes to
//! `target/chaos/<scenario>/<stage>.log`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use secrecy::ExposeSecret;
use tokio::process::{Child, Command};
use waiter_harness::Keyring;

pub const INGEST_PORT: u16 = 29010;
pub const NOTIFIER_PORT: u16 = 29011;
/// Short, so a killed or frozen holder's partitions move within seconds.
/// Outbound needs HTTP timeout + rate-limit wait + 3.2 s below it.
pub const ACK_WAIT_MS: u64 = 6_000;
pub const LEASE_TTL_MS: u64 = 3_000;
pub const OUTBOUND_HTTP_TIMEOUT_MS: u64 = 1_500;
pub const PARTITIONS: u16 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Ingest,
    Router,
    Conversation,
    Order,
    Outbound,
    Notifier,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Ingest,
        Stage::Router,
        Stage::Conversation,
        Stage::Order,
        Stage::Outbound,
        Stage::Notifier,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Router => "router",
            Stage::Conversation => "conversation",
            Stage::Order => "order",
            Stage::Outbound => "outbound",
            Stage::Notifier => "notifier",
        }
    }

    /// The port that serves `/ready`.
    pub fn port(self) -> u16 {
        match self {
            Stage::Ingest => INGEST_PORT,
            Stage::Notifier => NOTIFIER_PORT,
            Stage::Router => 29012,
            Stage::Conversation => 29013,
            Stage::Order => 29014,
            Stage::Outbound => 29015,
        }
    }

    fn addr_var(self) -> &'static str {
        match self {
            Stage::Ingest => "INGEST_ADDR",
            Stage::Notifier => "NOTIFIER_ADDR",
            Stage::Router => "ROUTER_OPS_ADDR",
            Stage::Conversation => "CONVERSATION_OPS_ADDR",
            Stage::Order => "ORDER_OPS_ADDR",
            Stage::Outbound => "OUTBOUND_OPS_ADDR",
        }
    }
}

/// Where the stage binaries are: `CHAOS_BIN_DIR`, else the profile
/// directory this test binary was built in (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CHAOS_BIN_DIR") {
        return dir.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

/// What every stage is pointed at.
#[derive(Clone)]
pub struct Wiring {
    pub database_url: String,
    pub nats_url: String,
    pub namespace: String,
    pub replicas: usize,
    pub twilio_api_base: String,
}

pub struct Fleet {
    wiring: Wiring,
    logs: PathBuf,
    children: BTreeMap<Stage, Child>,
    client: reqwest::Client,
}

impl Fleet {
    pub async fn start(wiring: Wiring, logs: PathBuf) -> Fleet {
        // Only this run's logs.
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs).expect("log directory");
        let mut fleet = Fleet {
            wiring,
            logs,
            children: BTreeMap::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("client"),
        };
        for stage in Stage::ALL {
            fleet.spawn(stage);
        }
        fleet.wait_ready(&Stage::ALL, Duration::from_secs(60)).await;
        fleet
    }

    pub fn logs(&self) -> &Path {
        &self.logs
    }

    fn spawn(&mut self, stage: Stage) {
        let binary = bin_dir().join(stage.name());
        assert!(
            binary.exists(),
            "{} is missing: build the stages first (`just test-chaos` does: cargo build --bins)",
            binary.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{}.log", stage.name())))
            .expect("stage log");
        let w = &self.wiring;
        let mut command = Command::new(&binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &w.database_url)
            .env("NATS_URL", &w.nats_url)
            .env("WAITER_NAMESPACE", &w.namespace)
            .env("WAITER_PARTITIONS", PARTITIONS.to_string())
            .env("NATS_STREAM_REPLICAS", w.replicas.to_string())
            .env("NATS_ACK_WAIT_MS", ACK_WAIT_MS.to_string())
            .env("WORKER_LEASE_TTL_MS", LEASE_TTL_MS.to_string())
            .env("OUTBOX_SWEEP_AFTER_MS", "1000")
            .env(
                "WAITER_SECRET_KEY",
                Keyring::for_tests().to_env_value().expose_secret(),
            )
            .env(stage.addr_var(), format!("127.0.0.1:{}", stage.port()))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true);
        match stage {
            Stage::Ingest => {
                command
                    .env("PUBLIC_URL", format!("http://127.0.0.1:{INGEST_PORT}"))
                    .env("INGEST_DIRECTORY_WAIT_MS", "2000");
            }
            Stage::Outbound => {
                command
                    .env("TWILIO_API_BASE", &w.twilio_api_base)
                    .env(
                        "OUTBOUND_HTTP_TIMEOUT_MS",
                        OUTBOUND_HTTP_TIMEOUT_MS.to_string(),
                    )
                    // Order webhooks' timeout must fit in the short ack wait too.
                    .env(
                        "WEBHOOK_HTTP_TIMEOUT_MS",
                        OUTBOUND_HTTP_TIMEOUT_MS.to_string(),
                    )
                    .env("OUTBOUND_RATE_LIMIT_WAIT_MS", "300")
                    .env(
                        "OUTBOUND_STATUS_CALLBACK_URL",
                        format!("http://127.0.0.1:{INGEST_PORT}/whatsapp/status"),
                    );
            }
            Stage::Notifier => {
                command.env("JWT_SECRET", waiter_e2e::JWT_SECRET);
            }
            _ => {}
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        self.children.insert(stage, child);
    }

    fn pid(&self, stage: Stage) -> i32 {
        self.children[&stage].id().expect("a running stage") as i32
    }

    fn signal(&self, stage: Stage, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid(stage).to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {}", stage.name());
    }

    /// `kill -9`, and waits for the process to be gone.
    pub async fn kill(&mut self, stage: Stage) {
        self.signal(stage, "KILL");
        let mut child = self.children.remove(&stage).expect("a running stage");
        let _ = child.wait().await;
    }

    pub fn restart(&mut self, stage: Stage) {
        assert!(!self.children.contains_key(&stage), "still running");
        self.spawn(stage);
    }

    pub fn freeze(&self, stage: Stage) {
        self.signal(stage, "STOP");
    }

    pub fn thaw(&self, stage: Stage) {
        self.signal(stage, "CONT");
    }

    /// Every stage answers `/ready` 200 (each one's last refusal in the
    /// panic otherwise).
    pub async fn wait_ready(&self, stages: &[Stage], timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        for &stage in stages {
            let url = format!("http://127.0.0.1:{}/ready", stage.port());
            loop {
                let last = match self.client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => break,
                    Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                    Err(e) => e.to_string(),
                };
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{} not ready after {timeout:?}: {last} (log in {})",
                    stage.name(),
                    self.logs.display()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Kills what still runs (SIGCONT first, so a frozen one dies too).
    pub async fn stop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.children) {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-CONT", &pid.to_string()])
                    .status();
            }
            let _ = child.kill().await;
        }
    }
}
