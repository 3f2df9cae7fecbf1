//! `waiterctl up`: from a checkout to every stage running under
//! supervision, with the demo restaurant and the Twilio simulator.

use std::{
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use tokio::net::UnixListener;

use super::{
    control::{self, Reply, Request},
    plan::{port_taken, RunDir, Stage},
    state::{self, write_pid},
    supervisor::{Launch, Supervisor},
    UpArgs,
};

/// How long `up` waits for every process to be ready before printing the
/// banner anyway (`just ps` then shows which one is not).
const READY_WAIT: Duration = Duration::from_secs(120);

pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.run.run_dir);
    refuse_if_running(&run)?;
    std::fs::create_dir_all(run.logs())?;
    std::fs::create_dir_all(run.pids())?;
    let started = Instant::now();

    if !args.no_services {
        step("services");
        let script = Path::new("tools/ops/ensure-services.sh");
        if script.exists() {
            let status = std::process::Command::new(script)
                .env("WAITER_RUN_DIR", &run.root)
                .status()
                .context("running tools/ops/ensure-services.sh")?;
            anyhow::ensure!(status.success(), "NATS or PostgreSQL did not come up");
        } else {
            eprintln!(
                "    (no tools/ops/ensure-services.sh here: assuming NATS and PostgreSQL run)"
            );
        }
    }

    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => target_dir().join(if args.debug { "debug" } else { "release" }),
    };
    if !args.no_build {
        build(args.debug)?;
    }
    for stage in Stage::START_ORDER {
        let binary = bin_dir.join(stage.binary());
        anyhow::ensure!(
            binary.exists(),
            "{} is missing: build it (cargo build --bins), or point --bin-dir at it",
            binary.display()
        );
    }

    step("secret key");
    let secret_key = secret_key(&run)?;
    let env = vec![("WAITER_SECRET_KEY".to_string(), secret_key)];

    step("database");
    ctl(&env, &["migrate"])?;
    let mut seed_env = env.clone();
    seed_env.push(("DEMO_AUTH_TOKEN".into(), args.demo.auth_token.clone()));
    let seeded = ctl(
        &seed_env,
        &[
            "--json",
            "seed-demo",
            "--number",
            &args.demo.number,
            "--account-sid",
            &args.demo.account_sid,
        ],
    )?;
    let restaurant_id = serde_json::from_str::<serde_json::Value>(&seeded)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .with_context(|| format!("seed-demo printed {seeded:?}"))?;

    for stage in Stage::START_ORDER {
        for port in args.ports.ports_of(stage, 1) {
            if let Some(e) = port_taken(port) {
                bail!("port {port} for {} is in use ({e}): another `just up`? Set the *_PORT variables to run a second one", stage.name());
            }
        }
    }
    // Ctrl-C from here on stops the children, whenever it comes.
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let socket = bind_control(&run)?;
    write_pid(&run.supervisor_pid(), std::process::id())?;
    let _ = std::fs::remove_file(run.root.join("waiterctl"));
    if let Ok(me) = std::env::current_exe() {
        let _ = std::os::unix::fs::symlink(me, run.root.join("waiterctl"));
    }

    step(&format!(
        "starting the Twilio simulator and the six stages (logs in {})",
        run.logs().display()
    ));
    let supervisor = Supervisor::new(Launch {
        run: run.clone(),
        ports: args.ports.clone(),
        demo: args.demo.clone(),
        bin_dir,
        env: env.clone(),
        stop_timeout: Duration::from_secs(args.stop_timeout),
        namespace: std::env::var("WAITER_NAMESPACE").unwrap_or_else(|_| "waiter".into()),
    });
    for stage in Stage::START_ORDER {
        supervisor.scale(stage, 1).await;
    }
    let control = tokio::spawn(serve_control(socket, supervisor.clone()));
    let stop = control_stop();
    let waited = tokio::select! {
        ready = wait_ready(&supervisor) => Some(ready),
        _ = stop.cancelled() => None,
        _ = &mut signal => None,
    };
    if let Some(ready) = waited {
        if !ready {
            eprintln!(
                "    not every process is ready yet: see `just ps` and {}",
                run.logs().display()
            );
        }
        let login = ctl(
            &env,
            &[
                "jwt",
                "--restaurant",
                &restaurant_id,
                "--hours",
                "24",
                "--link",
                "--dashboard-url",
                &format!("http://127.0.0.1:{}", args.ports.notifier_port),
            ],
        )
        .unwrap_or_else(|e| format!("(cannot mint a login link: {e:#})"));
        print_banner(&args, &run, &restaurant_id, login.trim(), started.elapsed());
        tokio::select! {
            _ = &mut signal => {}
            _ = stop.cancelled() => {}
        }
    }
    eprintln!("\n==> stopping");
    supervisor.stop_all().await;
    control.abort();
    for path in [
        run.socket(),
        run.state(),
        run.supervisor_pid(),
        run.root.join("waiterctl"),
    ] {
        let _ = std::fs::remove_file(path);
    }
    eprintln!("    stopped");
    Ok(())
}

/// Fired by a `stop` request on the control socket (`just down`).
fn control_stop() -> tokio_util::sync::CancellationToken {
    STOP.get_or_init(tokio_util::sync::CancellationToken::new)
        .clone()
}

static STOP: std::sync::OnceLock<tokio_util::sync::CancellationToken> = std::sync::OnceLock::new();

async fn serve_control(listener: UnixListener, supervisor: Arc<Supervisor>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let supervisor = supervisor.clone();
        tokio::spawn(async move {
            let _ = control::serve_one(stream, |request| async move {
                match request {
                    Request::Scale { stage, replicas } => match Stage::parse(&stage) {
                        Some(stage) => supervisor.scale(stage, replicas).await,
                        None => Reply::refused(format!(
                            "unknown stage {stage:?} (ingest, router, conversation, order, outbound, notifier)"
                        )),
                    },
                    Request::Stop => {
                        control_stop().cancel();
                        Reply::default()
                    }
                }
            })
            .await;
        });
    }
}

/// Refuses to start over a live supervisor or processes a dead one left.
fn refuse_if_running(run: &RunDir) -> anyhow::Result<()> {
    for (name, _, pid) in state::pid_files(run) {
        if state::alive(pid) && (name == "supervisor" || state::runs_waiter(pid)) {
            bail!(
                "{name} (pid {pid}) from an earlier `up` in {} is still running: `just down` first",
                run.root.display()
            );
        }
    }
    Ok(())
}

fn bind_control(run: &RunDir) -> anyhow::Result<UnixListener> {
    let path = run.socket();
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

fn step(what: &str) {
    eprintln!("==> {what}");
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn build(debug: bool) -> anyhow::Result<()> {
    step(if debug {
        "building (debug)"
    } else {
        "building (release; the first time takes several minutes, --debug builds faster)"
    });
    let mut command =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.args(["build", "--bins"]);
    if !debug {
        command.arg("--release");
    }
    for stage in Stage::START_ORDER {
        command.args(["-p", stage.binary()]);
    }
    let status = command.status().context("running cargo build")?;
    anyhow::ensure!(status.success(), "cargo build failed");
    Ok(())
}

/// `WAITER_SECRET_KEY`, or a development key kept in `.run/secret.key`
/// (mode 600), made once.
fn secret_key(run: &RunDir) -> anyhow::Result<String> {
    if let Ok(key) = std::env::var("WAITER_SECRET_KEY") {
        if !key.trim().is_empty() {
            return Ok(key);
        }
    }
    let path = run.secret_key();
    if let Ok(key) = std::fs::read_to_string(&path) {
        if !key.trim().is_empty() {
            return Ok(key.trim().to_string());
        }
    }
    let key = ctl(&[], &["secrets", "generate-key", "--id", "dev"])?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{}", key.trim())?;
    eprintln!("    made a development key in {}", path.display());
    Ok(key.trim().to_string())
}

/// Runs this binary with `args` (migrate, seed-demo, jwt), its output.
fn ctl(env: &[(String, String)], args: &[&str]) -> anyhow::Result<String> {
    let me = std::env::current_exe().context("finding waiterctl itself")?;
    let output = std::process::Command::new(me)
        .args(args)
        .envs(env.iter().cloned())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running waiterctl {}", args[0]))?;
    anyhow::ensure!(
        output.status.success(),
        "waiterctl {} failed",
        args.join(" ")
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Waits until every process answers `/ready` (the simulator `/health`),
/// with progress on stderr; false if some were not ready in time.
async fn wait_ready(supervisor: &Supervisor) -> bool {
    let deadline = Instant::now() + READY_WAIT;
    loop {
        let processes = supervisor.processes();
        let mut ready = 0;
        for p in &processes {
            if supervisor
                .prober()
                .get(p.ops_port, ready_path(p.stage))
                .await
                .is_ok()
            {
                ready += 1;
            }
        }
        eprint!("\r    ready: {ready}/{}", processes.len());
        if ready == processes.len() {
            eprintln!();
            return true;
        }
        if Instant::now() >= deadline {
            eprintln!();
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub fn ready_path(stage: Stage) -> &'static str {
    match stage {
        Stage::TwilioSim => "/health",
        _ => "/ready",
    }
}

/// SIGINT or SIGTERM; the handlers are installed at the call, not at the
/// first poll, so a signal in between is not lost (nor kills the process).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}

fn print_banner(args: &UpArgs, run: &RunDir, restaurant_id: &str, login: &str, took: Duration) {
    let p = &args.ports;
    let public = p.public_url();
    println!(
        r#"
  Waiter is up ({took:.0?}).

  Webhooks (ingest)     {public}/whatsapp/webhook   (status: /whatsapp/status)
  Dashboard (notifier)  http://127.0.0.1:{notifier}/   (staff sign in: the link below)
                        REST http://127.0.0.1:{notifier}/api/restaurants/{restaurant_id}/…
                        OpenAPI http://127.0.0.1:{notifier}/api/openapi.json, WebSocket ws://127.0.0.1:{notifier}/ws
  Twilio simulator      http://127.0.0.1:{sim}   (sent messages: /sim/messages)
  Ops (/health /ready /status /metrics)
                        ingest {io}, router {ro}, conversation {co}, order {oo}, outbound {uo}, notifier {no}

  Demo restaurant       Bait Grill / مشويات البيت   id {restaurant_id}
    WhatsApp number     {number}
    Twilio account SID  {sid}   (simulator)
    Twilio auth token   (the simulator's; stored encrypted, never printed)

  Dashboard login link (24 h, staff; the token is in the #fragment, never sent to a server):
    {login}

  Chat as a customer:   just chat "مرحبا"        (or: just chat hello)
  What runs:            just ps            (--watch)
  Scale a stage:        just scale conversation 3
  Follow the logs:      tail -f {logs}/*.log
  Ctrl-C here, or `just down` anywhere, stops everything started here.
"#,
        notifier = p.notifier_port,
        sim = p.sim_port,
        io = p.ingest_ops_port,
        ro = p.router_ops_port,
        co = p.conversation_ops_port,
        oo = p.order_ops_port,
        uo = p.outbound_ops_port,
        no = p.notifier_ops_port,
        number = args.demo.number,
        sid = args.demo.account_sid,
        logs = run.logs().display(),
    );
}
