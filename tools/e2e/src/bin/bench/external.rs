//! `--external`: the same load against a running `just up` deployment,
//! every stage its own release process. Customers (fresh random numbers
//! each run) write to the demo restaurant through the simulator's HTTP
//! API; replies are read from its record of Messages API calls; the audit
//! is restricted to this run's message SIDs. The demo restaurant's limits
//! are raised for the run and restored afterwards.

use std::{collections::HashSet, sync::Arc, time::Duration};

use anyhow::Context;
use chrono::{DateTime, Utc};
use rand::Rng;
use sqlx::PgPool;
use twilio_sim::{SentMessage, SimConfig, Simulator, WebhookResult};
use uuid::Uuid;
use waiter_migrations::demo;

use crate::{
    audit, baselines,
    external_meters::{self, replicas},
    load::{self, Customer, EventTimes},
    meters, summary, Args,
};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// A URL with its password left out, for printing.
fn shown(url: &str) -> String {
    match url.split_once("://").zip(url.rsplit_once('@')) {
        Some(((scheme, _), (_, host))) => format!("{scheme}://…@{host}"),
        None => url.to_string(),
    }
}

/// The demo restaurant's limits as they were before the run.
struct Limits {
    restaurant: Uuid,
    per_minute: i32,
    customer_per_minute: i32,
    outbound_per_second: i32,
}

async fn raise_limits(pool: &PgPool, restaurant: Uuid) -> anyhow::Result<Limits> {
    let (per_minute, customer_per_minute, outbound_per_second) = sqlx::query_as(
        "SELECT restaurant_rate_per_minute, customer_rate_per_minute, outbound_rate_per_second \
         FROM restaurants WHERE id = $1",
    )
    .bind(restaurant)
    .fetch_one(pool)
    .await?;
    let saved = Limits {
        restaurant,
        per_minute,
        customer_per_minute,
        outbound_per_second,
    };
    set_limits(pool, restaurant, (10_000_000, 10_000_000, 100_000)).await?;
    println!(
        "raised the demo restaurant's limits for the run (were {per_minute}/min, {customer_per_minute}/min per customer, \
         {outbound_per_second}/s outbound); they are restored at the end"
    );
    Ok(saved)
}

async fn set_limits(pool: &PgPool, id: Uuid, (r, c, o): (i32, i32, i32)) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE restaurants SET restaurant_rate_per_minute = $2, customer_rate_per_minute = $3, \
            outbound_rate_per_second = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(r)
    .bind(c)
    .bind(o)
    .execute(pool)
    .await?;
    Ok(())
}

async fn restore_limits(pool: &PgPool, saved: &Limits) {
    let values = (
        saved.per_minute,
        saved.customer_per_minute,
        saved.outbound_per_second,
    );
    match set_limits(pool, saved.restaurant, values).await {
        Ok(()) => println!(
            "restored the demo restaurant's limits ({}/min, {}/min per customer, {}/s outbound)",
            values.0, values.1, values.2
        ),
        Err(e) => println!(
            "COULD NOT restore the demo restaurant's limits to {values:?} (restaurant {}): {e:#}",
            saved.restaurant
        ),
    }
}

/// The deployment the bench drives.
struct Deployment {
    pool: PgPool,
    nats: async_nats::Client,
    sim_url: String,
    ws_url: String,
    restaurant: Uuid,
    account_sid: String,
    number: String,
}

pub async fn run(args: &Args) -> anyhow::Result<bool> {
    let account_sid = env_or("DEMO_ACCOUNT_SID", demo::DEMO_ACCOUNT_SID);
    let number = env_or("DEMO_NUMBER", demo::DEMO_NUMBER);
    println!(
        "EXTERNAL mode: driving the running deployment — namespace {}, database {}, NATS {}, simulator 127.0.0.1:{}, \
         notifier 127.0.0.1:{}, run directory {}; demo restaurant {number} (--restaurants and the in-process flags do not apply)",
        args.namespace,
        shown(&args.database_url),
        shown(&args.nats_url),
        args.sim_port,
        args.notifier_port,
        args.run_dir.display()
    );
    let pool = PgPool::connect(&args.database_url)
        .await
        .context("connecting to the deployment's database")?;
    let restaurant: Uuid =
        sqlx::query_scalar("SELECT id FROM restaurants WHERE whatsapp_number = $1")
            .bind(&number)
            .fetch_optional(&pool)
            .await?
            .with_context(|| format!("no restaurant has the demo number {number}"))?;
    let nats = async_nats::connect(&args.nats_url)
        .await
        .context("connecting to NATS")?;
    let stages = replicas(&args.run_dir);
    anyhow::ensure!(
        !stages.is_empty(),
        "no live stage process in {}/pids: is `just up` running with this WAITER_RUN_DIR?",
        args.run_dir.display()
    );
    println!(
        "stage processes: {}",
        stages
            .iter()
            .map(|(stage, pid)| format!("{stage} {pid}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let d = Deployment {
        pool,
        nats,
        sim_url: format!("http://127.0.0.1:{}", args.sim_port),
        ws_url: format!("ws://127.0.0.1:{}/ws", args.notifier_port),
        restaurant,
        account_sid,
        number,
    };
    let saved = raise_limits(&d.pool, restaurant).await?;
    let result = tokio::select! {
        result = drive(args, &d) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    restore_limits(&d.pool, &saved).await;
    result
}

async fn drive(args: &Args, d: &Deployment) -> anyhow::Result<bool> {
    println!(
        "waiting {} s for the stages' restaurant caches to read the raised limits",
        args.settle_secs
    );
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;

    // The bare POST baseline signs with a simulator of the bench's own.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let signer = Simulator::start(
        SimConfig {
            accounts: vec![(
                d.account_sid.clone(),
                env_or("DEMO_AUTH_TOKEN", demo::DEMO_AUTH_TOKEN),
            )],
            ..Default::default()
        },
        shutdown.clone(),
    )
    .await?;
    let run: u32 = rand::thread_rng().gen_range(0..1_000_000);
    let js = async_nats::jetstream::new(d.nats.clone());
    let baselines = baselines::measure(
        &baselines::Bench {
            js: &js,
            prefix: &format!("benchext{run:06}"),
            sim: &signer,
            account_sid: &d.account_sid,
            number: &d.number,
        },
        args.raw,
        args.concurrency,
        args.raw_in_flight,
        args.bare,
    )
    .await;
    shutdown.cancel();

    let secret = env_or("JWT_SECRET", "dev-only-jwt-secret-change-me");
    let token = waiter_harness::jwt::token(&secret, d.restaurant, "staff", 3600);
    let event_times = EventTimes::default();
    let feed = load::Feed::new(d.ws_url.clone(), token, d.restaurant);
    load::record_events(feed.clone(), event_times.clone()).await;

    anyhow::ensure!(args.customers <= 10_000, "--customers: at most 10000");
    println!(
        "\n[2/3] {} webhooks from {} customers (run {run:06}: numbers +9665{run:06}NNNN; {}% sent twice), {} in flight",
        args.messages, args.customers, args.duplicates, args.concurrency
    );
    let customers: Vec<Customer> = (0..args.customers)
        .map(|c| Customer {
            account_sid: d.account_sid.clone(),
            business: d.number.clone(),
            number: format!("whatsapp:+9665{run:06}{c:04}"),
        })
        .collect();
    let before = external_meters::read(&args.run_dir, &d.pool).await;
    let client = reqwest::Client::new();
    let deliver: load::Deliver = {
        let (client, url) = (client.clone(), format!("{}/sim/inbound", d.sim_url));
        Arc::new(move |spec| {
            let (client, url) = (client.clone(), url.clone());
            Box::pin(async move {
                let answer = client
                    .post(&url)
                    .json(&serde_json::json!({
                        "account_sid": spec.account_sid,
                        "from": spec.from,
                        "to": spec.to,
                        "body": spec.body,
                        "message_sid": spec.message_sid,
                    }))
                    .send()
                    .await?
                    .error_for_status()?;
                Ok(answer.json::<WebhookResult>().await?)
            })
        })
    };
    let replies: load::Replies = {
        let (pool, restaurant, since) = (d.pool.clone(), d.restaurant, Utc::now());
        Arc::new(move || {
            let pool = pool.clone();
            Box::pin(async move { replies_since(&pool, restaurant, since).await })
        })
    };
    let outcome = load::run(&args.load(), &customers, deliver, replies).await?;
    let sids: Vec<String> = outcome.sent.iter().map(|s| s.sid.clone()).collect();
    let pipeline_secs =
        audit::drain(&d.pool, &sids, outcome.started, Duration::from_secs(300)).await?;
    let after = external_meters::read(&args.run_dir, &d.pool).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // late duplicates would show now
    outcome.progress.abort();

    println!("\n[3/3] audit and latencies");
    let numbers: HashSet<&str> = customers.iter().map(|c| c.number.as_str()).collect();
    let twilio: Vec<SentMessage> = client
        .get(format!("{}/sim/messages", d.sim_url))
        .send()
        .await?
        .error_for_status()?
        .json::<Vec<SentMessage>>()
        .await?
        .into_iter()
        .filter(|m| numbers.contains(m.to.as_str()))
        .collect();
    let events = event_times.lock().unwrap().clone();
    let audit = audit::audit(&d.pool, &outcome.sent, &twilio, &events).await?;

    println!();
    summary::print(
        &baselines,
        &outcome,
        pipeline_secs,
        &audit,
        feed.reconnects.load(std::sync::atomic::Ordering::Relaxed),
    );
    println!("  per-stage CPU: each stage's processes (all replicas, all threads), from /proc");
    meters::report(&before, &after, audit.unique);
    println!("    (PostgreSQL backends are matched to stages by their connections' client ports)");
    audit.print();
    println!("  ────────────────────────────────────────────────────────────────────");
    Ok(audit.ok())
}

/// Bot replies of `restaurant` accepted by Twilio since `since` (progress
/// only: other traffic to the demo restaurant counts too).
async fn replies_since(pool: &PgPool, restaurant: Uuid, since: DateTime<Utc>) -> usize {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM messages WHERE restaurant_id = $1 AND direction = 'out' \
         AND author = 'bot' AND wa_sid IS NOT NULL AND created_at >= $2",
    )
    .bind(restaurant)
    .bind(since)
    .fetch_one(pool)
    .await
    .unwrap_or(0) as usize
}
