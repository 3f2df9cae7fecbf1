//! Running Waiter on one machine: `up` (supervise every stage), `scale`
//! (replicas up or down), `ps` (what runs, ready or not, lag), `down`.
//!
//! `up` is the supervisor: it starts each stage and the Twilio simulator
//! as child processes (logs in `.run/logs/<replica>.log`, pid files in
//! `.run/pids/`), restarts one that dies or whose `/health` keeps failing,
//! with backoff, and listens on `.run/supervisor.sock` for `scale` and
//! `down` ([`control`]). `ps` reads `.run/supervisor.json`, each process's
//! ops port, JetStream's consumer info and the member records on the lease
//! stream; `down` works from the pid files alone when the supervisor died.

mod control;
mod down;
mod plan;
mod probe;
mod ps;
mod state;
mod supervisor;
mod up;

use std::{path::PathBuf, time::Duration};

use anyhow::bail;

use crate::output::Out;

#[derive(Debug, clap::Args)]
pub struct RunDirArg {
    /// The run directory: logs, pid files, the control socket.
    #[arg(long, env = "WAITER_RUN_DIR", default_value = ".run")]
    pub run_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub run: RunDirArg,
    /// Build and run debug binaries (faster to build, slower to run).
    #[arg(long)]
    pub debug: bool,
    /// Run the binaries already built.
    #[arg(long)]
    pub no_build: bool,
    /// Where the stage binaries are (default: target/release or target/debug).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Do not start NATS and PostgreSQL (tools/ops/ensure-services.sh).
    #[arg(long)]
    pub no_services: bool,
    /// Seconds a stopping process may take to drain before it is killed.
    #[arg(long, default_value_t = 40)]
    pub stop_timeout: u64,
    #[command(flatten)]
    pub ports: plan::Ports,
    #[command(flatten)]
    pub demo: plan::Demo,
}

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// ingest, router, conversation, order, outbound or notifier.
    pub stage: String,
    /// How many replicas to run.
    pub replicas: u32,
    #[command(flatten)]
    pub run: RunDirArg,
    /// Seconds to wait for new replicas to be ready.
    #[arg(long, default_value_t = 90)]
    pub wait: u64,
}

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub run: RunDirArg,
    /// Redraw every --interval seconds until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
    #[arg(long, default_value_t = 2)]
    pub interval: u64,
}

#[derive(Debug, clap::Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub run: RunDirArg,
    /// Seconds each process may take to drain before it is killed.
    #[arg(long, default_value_t = 40)]
    pub stop_timeout: u64,
}

pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    up::up(args).await
}

pub async fn down(args: DownArgs, out: Out) -> anyhow::Result<()> {
    down::down(
        &plan::RunDir::new(&args.run.run_dir),
        Duration::from_secs(args.stop_timeout),
        out,
    )
    .await
}

pub async fn ps(args: PsArgs, out: Out) -> anyhow::Result<()> {
    ps::ps(args, out).await
}

/// Asks the running supervisor for `replicas` of `stage`, then waits until
/// the new ones are ready.
pub async fn scale(args: ScaleArgs, out: Out) -> anyhow::Result<()> {
    let run = plan::RunDir::new(&args.run.run_dir);
    let request = control::Request::Scale {
        stage: args.stage.clone(),
        replicas: args.replicas,
    };
    let Some(reply) = control::send(&run.socket(), &request).await? else {
        bail!(
            "no `just up` is running in {} (no supervisor on {})",
            run.root.display(),
            run.socket().display()
        );
    };
    if let Some(error) = &reply.error {
        bail!("{error}");
    }
    let prober = probe::Prober::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(args.wait);
    let stage = plan::Stage::parse(&args.stage).expect("the supervisor knew it");
    loop {
        let mut ready = 0;
        for (_, port) in &reply.started {
            if prober.get(*port, up::ready_path(stage)).await.is_ok() {
                ready += 1;
            }
        }
        if !reply.started.is_empty() {
            crate::output::progress(ready, reply.started.len(), "ready");
        }
        if ready == reply.started.len() {
            break;
        }
        if std::time::Instant::now() >= deadline {
            bail!(
                "{ready} of {} new replicas ready after {}s: see `just ps`",
                reply.started.len(),
                args.wait
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let rows: Vec<Vec<String>> = reply
        .started
        .iter()
        .map(|(id, port)| vec![id.clone(), "started".into(), port.to_string()])
        .chain(
            reply
                .stopped
                .iter()
                .map(|id| vec![id.clone(), "stopped (drained)".into(), "—".into()]),
        )
        .collect();
    if rows.is_empty() && !out.json {
        println!("{} already runs {} replica(s)", args.stage, args.replicas);
        return Ok(());
    }
    out.table(
        &["replica", "change", "ops port"],
        rows,
        &serde_json::json!({
            "stage": args.stage,
            "replicas": args.replicas,
            "started": reply.started.iter().map(|(id, port)| serde_json::json!({"replica": id, "ops_port": port})).collect::<Vec<_>>(),
            "stopped": reply.stopped,
        }),
    );
    Ok(())
}
