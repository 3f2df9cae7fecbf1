//! `waiterctl up`, `ps`, `scale` and `down` as an operator runs them, each
//! a process whose output is parsed: every stage comes up ready,
//! conversation and outbound go 1 → 3 → 1 while many customers write, and
//! the audit of `tools/e2e/tests/replicas.rs` holds (every message stored
//! once, answered once, replies in order per conversation, nothing left
//! pending); a killed stage is restarted; `down` leaves no process.
//!
//! The stage binaries are taken from the directory cargo put waiterctl in
//! (`cargo test --workspace` builds them all); when one is missing they
//! are built first.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use waiter_harness::{eventually, eventually_showing, Keyring, TestBus, TestDb};

/// The ports of one deployment; the two tests run at once, apart.
#[derive(Clone, Copy)]
struct Ports {
    /// router's; conversation, order, outbound, ingest, notifier follow.
    ops: u16,
    ingest: u16,
    notifier: u16,
    sim: u16,
}

/// Replicas 2 and 3 take ops ports +10 and +20.
const SCALED: Ports = Ports {
    ops: 27001,
    ingest: 27080,
    notifier: 27090,
    sim: 27099,
};
const ORPHANED: Ports = Ports {
    ops: 27041,
    ingest: 27050,
    notifier: 27051,
    sim: 27052,
};

const DEMO_NUMBER: &str = "whatsapp:+14155238886";
const DEMO_ACCOUNT: &str = "AC00000000000000000000000000000001";
const TEXTS: [&str; 6] = ["hello", "menu", "help", "hi", "start over", "menu"];
const CUSTOMERS: u32 = 12;
const WAIT: Duration = Duration::from_secs(90);

struct Deployment {
    db: TestDb,
    bus: TestBus,
    keys: String,
    dir: tempfile::TempDir,
    bin_dir: PathBuf,
    ports: Ports,
}

impl Deployment {
    async fn new(ports: Ports) -> Deployment {
        let waiterctl = PathBuf::from(env!("CARGO_BIN_EXE_waiterctl"));
        let bin_dir = stage_binaries(waiterctl.parent().unwrap());
        let (db, bus) = tokio::join!(TestDb::new(), TestBus::new());
        Deployment {
            db,
            bus,
            keys: Keyring::for_tests()
                .to_env_value()
                .expose_secret()
                .to_string(),
            dir: tempfile::tempdir().expect("temp dir"),
            bin_dir,
            ports,
        }
    }

    /// `up`, in the foreground as in a terminal, once its banner says so.
    async fn up(&self) -> tokio::process::Child {
        let mut up = tokio::process::Command::from(self.command(&[
            "up",
            "--no-services",
            "--no-build",
            "--bin-dir",
            self.bin_dir.to_str().unwrap(),
            "--stop-timeout",
            "20",
        ]));
        let mut supervisor = up
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("waiterctl up");
        let mut banner = BufReader::new(supervisor.stdout.take().unwrap()).lines();
        let is_up = tokio::time::timeout(WAIT, async {
            while let Some(line) = banner.next_line().await.expect("up's output") {
                if line.contains("Waiter is up") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(is_up, Ok(true), "no banner; logs:\n{}", self.logs());
        tokio::spawn(async move { while let Ok(Some(_)) = banner.next_line().await {} });
        supervisor
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(self.bin_dir.join("waiterctl"));
        c.current_dir(self.dir.path())
            .args(args)
            .env("DATABASE_URL", &self.db.url)
            .env("WAITER_NAMESPACE", self.bus.namespace())
            .env("WAITER_PARTITIONS", "4")
            .env("WAITER_SECRET_KEY", &self.keys)
            .env("WAITER_RUN_DIR", self.dir.path().join(".run"))
            .env("JWT_SECRET", "supervise-test-jwt-secret")
            .env("INGEST_PORT", self.ports.ingest.to_string())
            .env("NOTIFIER_PORT", self.ports.notifier.to_string())
            .env("SIM_PORT", self.ports.sim.to_string())
            .env("ROUTER_OPS_PORT", self.ports.ops.to_string())
            .env("CONVERSATION_OPS_PORT", (self.ports.ops + 1).to_string())
            .env("ORDER_OPS_PORT", (self.ports.ops + 2).to_string())
            .env("OUTBOUND_OPS_PORT", (self.ports.ops + 3).to_string())
            .env("INGEST_OPS_PORT", (self.ports.ops + 4).to_string())
            .env("NOTIFIER_OPS_PORT", (self.ports.ops + 5).to_string())
            .env_remove("PUBLIC_URL")
            .env_remove("DASHBOARD_URL")
            .env("RUST_LOG", "info");
        c
    }

    /// Runs `waiterctl ARGS` to the end; its standard output, asserting
    /// success.
    async fn run(&self, args: &[&str]) -> String {
        let mut c = tokio::process::Command::from(self.command(args));
        let output = c.output().await.expect("run waiterctl");
        assert!(
            output.status.success(),
            "waiterctl {args:?} failed\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    async fn ps(&self) -> Value {
        let out = self.run(&["--json", "ps"]).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ps --json ({e}):\n{out}"))
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join(".run/logs")) {
            for e in entries.flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                all += &format!("--- {}\n", e.path().display());
                for line in tail.into_iter().rev() {
                    all += line;
                    all += "\n";
                }
            }
        }
        all
    }
}

/// A failed test leaves nothing running: the children are in process
/// groups of their own and would outlive it (a no-op after `down`).
impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = self
            .command(&["down", "--stop-timeout", "5"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `(stage, replica, ready, pid)` of every supervised process `ps` lists.
fn processes(ps: &Value) -> Vec<(String, String, bool, Option<u64>)> {
    ps["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter(|p| p["supervised"] == true)
        .map(|p| {
            (
                p["stage"].as_str().unwrap().to_string(),
                p["replica"].as_str().unwrap().to_string(),
                p["ready"] == true,
                p["pid"].as_u64(),
            )
        })
        .collect()
}

fn replicas_of(ps: &Value, stage: &str) -> Vec<String> {
    let mut r: Vec<String> = processes(ps)
        .into_iter()
        .filter(|(s, _, ready, _)| s == stage && *ready)
        .map(|(_, id, _, _)| id)
        .collect();
    r.sort();
    r
}

fn stage_binaries(bin_dir: &Path) -> PathBuf {
    let stages = [
        "ingest",
        "router",
        "conversation",
        "order",
        "outbound",
        "notifier",
        "twilio-sim",
    ];
    if stages.iter().any(|s| !bin_dir.join(s).exists()) {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut build = std::process::Command::new(env!("CARGO"));
        build.current_dir(workspace).args(["build", "-q", "--bins"]);
        for s in stages {
            build.args(["-p", s]);
        }
        assert!(build.status().expect("cargo build").success());
    }
    bin_dir.to_path_buf()
}

fn customer(n: u32) -> String {
    format!("whatsapp:+9665{:08}", 7_000_000 + n)
}

/// Each customer writes TEXTS one after another, spread over `over`;
/// returns the message SIDs per customer, in sending order.
async fn customers_write(sim: u16, over: Duration) -> Vec<Vec<String>> {
    let http = reqwest::Client::new();
    let pause = over / TEXTS.len() as u32;
    let writers = (0..CUSTOMERS).map(|c| {
        let http = http.clone();
        async move {
            let mut sids = vec![];
            tokio::time::sleep(pause * c / CUSTOMERS).await;
            for text in TEXTS {
                let answer: Value = http
                    .post(format!("http://127.0.0.1:{sim}/sim/inbound"))
                    .json(&serde_json::json!({
                        "account_sid": DEMO_ACCOUNT, "from": customer(c), "to": DEMO_NUMBER,
                        "body": text, "profile_name": format!("Customer {c}"),
                    }))
                    .send()
                    .await
                    .expect("POST /sim/inbound")
                    .json()
                    .await
                    .expect("webhook result");
                assert_eq!(answer["status"], 200, "ingest refused {text:?}: {answer}");
                sids.push(answer["message_sid"].as_str().unwrap().to_string());
                tokio::time::sleep(pause).await;
            }
            sids
        }
    });
    futures::future::join_all(writers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_scales_under_load_restarts_a_crash_and_goes_down() {
    let started = Instant::now();
    let d = Deployment::new(SCALED).await;
    let mut supervisor = d.up().await;
    eprintln!("up: banner after {:?}", started.elapsed());

    // Every stage and the simulator, one replica each, ready.
    let ps = d.ps().await;
    let list = processes(&ps);
    let mut stages: Vec<&str> = list.iter().map(|(s, _, _, _)| s.as_str()).collect();
    stages.sort();
    assert_eq!(
        stages,
        [
            "conversation",
            "ingest",
            "notifier",
            "order",
            "outbound",
            "router",
            "twilio-sim"
        ],
        "{ps:#}"
    );
    assert!(
        list.iter()
            .all(|(_, _, ready, pid)| *ready && pid.is_some()),
        "{ps:#}"
    );
    let table = d.run(&["ps"]).await;
    assert!(
        table.contains("conversation-1") && table.contains("ready"),
        "{table}"
    );

    // Many customers write while conversation and outbound go 1 → 3 → 1.
    let writing = tokio::spawn(customers_write(d.ports.sim, Duration::from_secs(30)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let at = Instant::now();
    let scaled = d.run(&["--json", "scale", "conversation", "3"]).await;
    eprintln!("scale conversation 1 → 3: ready after {:?}", at.elapsed());
    let scaled: Value = serde_json::from_str(&scaled).unwrap();
    assert_eq!(scaled["started"].as_array().unwrap().len(), 2, "{scaled}");
    d.run(&["scale", "outbound", "3"]).await;
    // Ready (partitions move as replicas join, so readiness can blink).
    eventually_showing(
        "three conversation and outbound replicas ready",
        WAIT,
        || async {
            let ps = d.ps().await;
            if replicas_of(&ps, "conversation")
                == ["conversation-1", "conversation-2", "conversation-3"]
                && replicas_of(&ps, "outbound") == ["outbound-1", "outbound-2", "outbound-3"]
            {
                Ok(())
            } else {
                Err(format!("{ps:#}"))
            }
        },
    )
    .await;
    // The new replicas take their share of the load before they go.
    eventually(
        "the new replicas handle messages",
        Duration::from_secs(20),
        || async {
            let ps = d.ps().await;
            let handled_by_new = |stage: &str| -> u64 {
                ps["processes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| {
                        p["stage"] == stage && p["replica"] != format!("{stage}-1").as_str()
                    })
                    .map(|p| p["handled"].as_u64().unwrap_or(0))
                    .sum()
            };
            (handled_by_new("conversation") > 0 && handled_by_new("outbound") > 0).then_some(())
        },
    )
    .await;
    let at = Instant::now();
    let down = d.run(&["--json", "scale", "conversation", "1"]).await;
    eprintln!(
        "scale conversation 3 → 1 under load: drained and exited after {:?}",
        at.elapsed()
    );
    let down: Value = serde_json::from_str(&down).unwrap();
    assert_eq!(
        down["stopped"],
        serde_json::json!(["conversation-3", "conversation-2"])
    );
    d.run(&["scale", "outbound", "1"]).await;
    let ps = d.ps().await;
    let replicas = |stage: &str| -> Vec<String> {
        processes(&ps)
            .into_iter()
            .filter(|p| p.0 == stage)
            .map(|p| p.1)
            .collect()
    };
    assert_eq!(replicas("conversation"), ["conversation-1"], "{ps:#}");
    assert_eq!(replicas("outbound"), ["outbound-1"], "{ps:#}");
    let sent = writing.await.expect("customers");

    // The audit: stored once, answered once, in order, sent once each.
    let pool = &d.db.pool;
    for (c, sids) in sent.iter().enumerate() {
        let from = customer(c as u32);
        let stored: Vec<String> =
            eventually(&format!("{from}'s messages stored"), WAIT, || async {
                let rows: Vec<String> = sqlx::query_scalar(
                "SELECT m.wa_sid FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                 WHERE c.customer = $1 AND m.direction = 'in' ORDER BY m.seq",
            )
            .bind(&from)
            .fetch_all(pool)
            .await
            .unwrap();
                (rows.len() >= sids.len()).then_some(rows)
            })
            .await;
        assert_eq!(&stored, sids, "{from}: stored out of order or twice");
        let replies: Vec<(String, i32, String)> =
            eventually(&format!("{from} answered"), WAIT, || async {
                let rows: Vec<(String, i32, Option<String>)> = sqlx::query_as(
                    "SELECT i.wa_sid, o.reply_index, o.wa_sid FROM messages o \
                     JOIN messages i ON i.id = o.reply_to \
                     JOIN conversations c ON c.id = o.conversation_id \
                     WHERE c.customer = $1 AND o.direction = 'out'",
                )
                .bind(&from)
                .fetch_all(pool)
                .await
                .unwrap();
                let answered = sids.iter().all(|s| rows.iter().any(|r| &r.0 == s));
                (answered && rows.iter().all(|r| r.2.is_some())).then(|| {
                    rows.into_iter()
                        .map(|(i, n, o)| (i, n, o.unwrap()))
                        .collect()
                })
            })
            .await;
        let on_sim: Vec<Value> = eventually(&format!("{from}'s replies sent"), WAIT, || async {
            let sent: Vec<Value> = reqwest::get(format!(
                "http://127.0.0.1:{}/sim/messages?to={}",
                d.ports.sim,
                from.replace('+', "%2B")
            ))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
            (sent.len() >= replies.len()).then_some(sent)
        })
        .await;
        assert_eq!(on_sim.len(), replies.len(), "{from}: a reply sent twice");
        let decided: Vec<(usize, i32)> = on_sim
            .iter()
            .map(|m| {
                let sid = m["sid"].as_str().unwrap();
                let (inbound, index, _) = replies
                    .iter()
                    .find(|r| r.2 == sid)
                    .unwrap_or_else(|| panic!("{from}: {sid} sent, not recorded"));
                (sids.iter().position(|s| s == inbound).unwrap(), *index)
            })
            .collect();
        let mut in_order = decided.clone();
        in_order.sort();
        in_order.dedup();
        assert_eq!(
            decided, in_order,
            "{from}: replies out of order or repeated"
        );
    }
    eventually("nothing pending on any consumer", WAIT, || async {
        let ps = d.ps().await;
        let consumers = ps["consumers"].as_array().unwrap().clone();
        (!consumers.is_empty()
            && consumers
                .iter()
                .all(|c| c["pending"] == 0 && c["ack_pending"] == 0))
        .then_some(())
    })
    .await;

    // A stage killed outright comes back under the same replica id.
    let ps = d.ps().await;
    let order = processes(&ps).into_iter().find(|p| p.0 == "order").unwrap();
    let old_pid = order.3.unwrap();
    kill_hard(old_pid);
    eventually("order restarted and ready", WAIT, || async {
        let ps = d.ps().await;
        processes(&ps)
            .into_iter()
            .find(|p| {
                p.0 == "order" && p.1 == "order-1" && p.2 && p.3.is_some_and(|p| p != old_pid)
            })
            .map(|_| ())
    })
    .await;
    let ps = d.ps().await;
    let pids: Vec<u64> = processes(&ps).iter().filter_map(|p| p.3).collect();
    assert_eq!(pids.len(), 7);

    // `down` from another terminal: the supervisor exits, nothing is left.
    let at = Instant::now();
    let out = d.run(&["down"]).await;
    eprintln!("down: everything stopped after {:?}", at.elapsed());
    assert!(out.contains("down"), "{out}");
    let status = tokio::time::timeout(Duration::from_secs(30), supervisor.wait())
        .await
        .expect("the supervisor exits")
        .unwrap();
    assert!(status.success(), "up exited with {status}");
    for pid in pids {
        assert!(!running(pid), "pid {pid} still running after down");
    }
    assert!(std::fs::read_dir(d.dir.path().join(".run/pids"))
        .unwrap()
        .next()
        .is_none());
    assert!(
        started.elapsed() < Duration::from_secs(180),
        "took {:?}",
        started.elapsed()
    );
}

/// Alive and not a zombie (an orphan's new parent may not reap it at once).
fn running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

fn kill_hard(pid: u64) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A supervisor killed outright leaves its children running: `ps` says so,
/// `up` refuses to start over them, and `down` stops them from the pid
/// files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_stops_what_a_dead_supervisor_left() {
    let d = Deployment::new(ORPHANED).await;
    let mut supervisor = d.up().await;
    let ps = d.ps().await;
    let pids: Vec<u64> = processes(&ps).iter().filter_map(|p| p.3).collect();
    assert_eq!(pids.len(), 7, "{ps:#}");
    supervisor.kill().await.expect("SIGKILL the supervisor");

    let table = d.run(&["ps"]).await;
    assert!(table.contains("is GONE"), "{table}");
    let refused = tokio::process::Command::from(d.command(&[
        "up",
        "--no-services",
        "--no-build",
        "--bin-dir",
        d.bin_dir.to_str().unwrap(),
    ]))
    .output()
    .await
    .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("`just down` first"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let out = d.run(&["--json", "down"]).await;
    let down: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(down["signalled"].as_array().unwrap().len(), 7, "{down:#}");
    for pid in pids {
        assert!(!running(pid), "pid {pid} still running after down");
    }
}
