//! `just bench`: signed webhooks from many simulated customers across many
//! restaurants, with duplicates mixed in, through the whole pipeline on real
//! NATS and PostgreSQL. Reports acceptance throughput, ingest ack latency,
//! end-to-end latency (webhook in → reply accepted by the simulated Twilio,
//! and → `message.sent` on a dashboard socket), a loss/duplicate audit, and
//! raw JetStream publish throughput measured in the same run.
//! In-process (the default) each stage runs on threads, a NATS connection
//! and database connections of its own, so the bench also reports what each
//! hop costs per message; `--external` drives a running `just up` instead
//! and reads each stage process's CPU.

mod audit;
mod baselines;
mod external;
mod external_meters;
mod inprocess;
mod load;
mod meters;
mod summary;

use clap::Parser;
use hdrhistogram::Histogram;

#[derive(Parser, Debug)]
#[command(about = "Load benchmark of the whole Waiter pipeline")]
struct Args {
    /// Unique customer messages to send.
    #[arg(long, default_value_t = 3000)]
    messages: usize,
    /// Restaurants (tenants) the customers write to.
    #[arg(long, default_value_t = 4)]
    restaurants: usize,
    /// Distinct customers.
    #[arg(long, default_value_t = 300)]
    customers: usize,
    /// Webhooks in flight at once (Twilio's side).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Share of messages Twilio delivers twice (percent).
    #[arg(long, default_value_t = 10)]
    duplicates: u32,
    /// Messages for the raw JetStream publish baseline.
    #[arg(long, default_value_t = 20000)]
    raw: usize,
    /// Publishes in flight for the second raw baseline (the broker's
    /// async capability).
    #[arg(long, default_value_t = 512)]
    raw_in_flight: usize,
    /// Posts to a bare warp handler, ingest's baseline (0: skip).
    #[arg(long, default_value_t = 10000)]
    bare: usize,
    /// Count each stage's database round trips through a proxy (adds a
    /// hop to every query: use it for the per-hop table, not for throughput).
    #[arg(long)]
    round_trips: bool,
    /// Every stage on the one runtime and bus of the bench, as before
    /// (no per-stage figures).
    #[arg(long)]
    shared_runtime: bool,
    /// Also send status callbacks for every reply (triples ingest's load).
    #[arg(long)]
    status_callbacks: bool,
    /// Offered load in webhooks per second (0: as fast as they are taken),
    /// to measure latency below saturation.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// In-process: conversations opened in the database before the load
    /// (spread over the restaurants); the customers are then drawn evenly
    /// from them, so each message finds an existing conversation, rarely a
    /// cached one.
    #[arg(long, default_value_t = 0)]
    open_conversations: usize,
    /// Partitions per ordered stream (concurrent conversations per stage).
    #[arg(long, default_value_t = waiter_nats::BusConfig::DEFAULT_PARTITIONS)]
    partitions: u16,
    /// Drive an already running `just up` deployment (every stage its own
    /// process) instead of starting the pipeline in-process; customers
    /// write to its demo restaurant through its simulator.
    #[arg(long)]
    external: bool,
    /// External: the deployment's database.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/waiter"
    )]
    database_url: String,
    /// External: the deployment's NATS server.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// External: the deployment's bus namespace (shown, and kept clear of).
    #[arg(long, env = "WAITER_NAMESPACE", default_value = "waiter")]
    namespace: String,
    /// External: the simulator's port.
    #[arg(long, env = "SIM_PORT", default_value_t = 3999)]
    sim_port: u16,
    /// External: the notifier's port (dashboard sockets).
    #[arg(long, env = "NOTIFIER_PORT", default_value_t = 8090)]
    notifier_port: u16,
    /// External: the run directory of `waiterctl up` (pid files).
    #[arg(long, env = "WAITER_RUN_DIR", default_value = ".run")]
    run_dir: std::path::PathBuf,
    /// External: seconds to wait after raising the demo restaurant's
    /// limits, until the stages' restaurant caches have read them (router
    /// 10 s, outbound 30 s).
    #[arg(long, default_value_t = 31)]
    settle_secs: u64,
}

impl Args {
    fn load(&self) -> load::Load {
        load::Load {
            messages: self.messages,
            concurrency: self.concurrency,
            duplicates: self.duplicates,
            rate: self.rate,
        }
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub(crate) fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("Waiter benchmark — {args:?}");
    let ok = if args.external {
        external::run(&args).await?
    } else {
        inprocess::run(&args).await?
    };
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
