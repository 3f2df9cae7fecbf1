//! `just bench`: signed webhooks from many simulated customers across many
//! restaurants, with duplicates mixed in, through the whole pipeline on real
//! NATS and PostgreSQL. Reports acceptance throughput, ingest ack latency,
//! end-to-end latency (webhook in → reply accepted by the simulated Twilio,
//! and → `message.sent` on a dashboard socket), a loss/duplicate audit, and
//! raw JetStream publish throughput measured in the same run.
//! Each stage runs on threads, a NATS connection and database connections
//! of its own, so the bench also reports what each hop costs per message.

mod baselines;
mod meters;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use waiter_e2e::stages::PerStage;

use chrono::{DateTime, Utc};
use clap::Parser;
use hdrhistogram::Histogram;
use rand::Rng;
use twilio_sim::{InboundSpec, StatusCallbackMode};
use waiter_e2e::{Options, Pipeline};

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
    /// Partitions per ordered stream (concurrent conversations per stage).
    #[arg(long, default_value_t = 16)]
    partitions: u16,
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub(crate) fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram")
}

struct Sent {
    sid: String,
    customer: String,
    at: DateTime<Utc>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("Waiter benchmark — {args:?}");
    println!(
        "setting up: a fresh database and bus namespace, {} restaurants, every stage in-process",
        args.restaurants
    );
    let slugs: Vec<&'static str> = (0..args.restaurants)
        .map(|i| &*Box::leak(format!("bench{i}").into_boxed_str()))
        .collect();
    let p = Pipeline::start_with(Options {
        restaurants: slugs
            .iter()
            .map(|s| (*s, if s.ends_with('1') { "ar" } else { "en" }))
            .collect(),
        conversation: true,
        status_callbacks: if args.status_callbacks {
            StatusCallbackMode::InOrder
        } else {
            StatusCallbackMode::Off
        },
        partitions: args.partitions,
        secret_keys: None,
        postgres_proxy: false,
        per_stage: (!args.shared_runtime).then_some(PerStage {
            count_round_trips: args.round_trips,
        }),
        webhook_attempts: None,
    })
    .await;
    // The benchmark measures the pipeline, not the tenants' limits.
    sqlx::query(
        "UPDATE restaurants SET restaurant_rate_per_minute = 10000000, customer_rate_per_minute = 10000000, \
            outbound_rate_per_second = 100000",
    )
    .execute(p.env.pool())
    .await?;

    println!(
        "\n[1/3] baselines: raw JetStream publish, {} messages at {} and at {} in flight; {} posts to a bare warp handler",
        args.raw, args.concurrency, args.raw_in_flight, args.bare
    );
    let (raw_rate, raw_lat) = baselines::raw_publish(&p, args.raw, args.concurrency).await;
    println!(
        "      {raw_rate:.0} msg/s, ack p50 {:.2} ms, p99 {:.2} ms",
        ms(&raw_lat, 0.5),
        ms(&raw_lat, 0.99)
    );
    let (async_rate, async_lat) = baselines::raw_publish(&p, args.raw, args.raw_in_flight).await;
    println!(
        "      {async_rate:.0} msg/s at {} in flight, ack p50 {:.2} ms, p99 {:.2} ms",
        args.raw_in_flight,
        ms(&async_lat, 0.5),
        ms(&async_lat, 0.99)
    );
    let p = Arc::new(p);
    let bare = match args.bare {
        0 => None,
        n => Some(baselines::bare_posts(&p, n, args.concurrency).await),
    };
    if let Some((rate, lat)) = &bare {
        println!(
            "      bare warp POST {rate:.0} /s, p50 {:.2} ms, p99 {:.2} ms",
            ms(lat, 0.5),
            ms(lat, 0.99)
        );
    }

    // Dashboards: one socket per restaurant, recording when each reply's
    // message.sent event arrives.
    let event_times: Arc<Mutex<HashMap<String, DateTime<Utc>>>> = Arc::default();
    for i in 0..args.restaurants {
        let mut dashboard = p.dashboard(i).await;
        let times = event_times.clone();
        tokio::spawn(async move {
            while let Some(frame) = dashboard.next_json(Duration::from_secs(3600)).await {
                if frame["type"] == "message.sent" {
                    if let Some(id) = frame["data"]["id"].as_str() {
                        times.lock().unwrap().insert(id.to_string(), Utc::now());
                    }
                }
            }
        });
    }

    println!(
        "\n[2/3] {} webhooks from {} customers ({}% sent twice), {} in flight",
        args.messages, args.customers, args.duplicates, args.concurrency
    );
    let customers: Vec<(usize, String)> = (0..args.customers)
        .map(|c| (c % args.restaurants, format!("whatsapp:+9665{:08}", c)))
        .collect();
    let texts = ["hello", "menu", "help", "hi", "start over"];
    let ack_latency = Arc::new(Mutex::new(hist()));
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let posts = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let before = meters::read(&p).await;
    let started = Instant::now();
    // Each customer is owned by one worker: a customer's messages go one
    // after another, as a person types them.
    let per_worker: Vec<Vec<(usize, String)>> = (0..args.concurrency)
        .map(|w| {
            customers
                .iter()
                .filter(|(i, _)| i % args.concurrency == w % args.concurrency)
                .cloned()
                .collect()
        })
        .collect();
    let _ = per_worker;
    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let (p, ack_latency, sent, accepted, refused, posts, next) = (
                p.clone(),
                ack_latency.clone(),
                sent.clone(),
                accepted.clone(),
                refused.clone(),
                posts.clone(),
                next.clone(),
            );
            let mine: Vec<(usize, String)> = customers
                .iter()
                .enumerate()
                .filter(|(c, _)| c % args.concurrency == w)
                .map(|(_, x)| x.clone())
                .collect();
            let (total, dup_share, rate) = (args.messages, args.duplicates, args.rate);
            tokio::spawn(async move {
                let mut turn = 0usize;
                while !mine.is_empty() {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= total {
                        return;
                    }
                    if rate > 0.0 {
                        let due = started + Duration::from_secs_f64(i as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let (restaurant, customer) = &mine[turn % mine.len()];
                    turn += 1;
                    let r = p.restaurant(*restaurant);
                    let sid = format!("SM{:032x}", rand::thread_rng().gen::<u128>());
                    let spec = InboundSpec::text(
                        &r.account_sid,
                        customer,
                        &r.number,
                        texts[i % texts.len()],
                    )
                    .with_message_sid(&sid);
                    let at = Utc::now();
                    let copies = if rand::thread_rng().gen_range(0..100) < dup_share {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        let t = Instant::now();
                        let answer = p.sim.send_inbound(spec.clone()).await;
                        posts.fetch_add(1, Ordering::Relaxed);
                        ack_latency
                            .lock()
                            .unwrap()
                            .record(t.elapsed().as_micros() as u64)
                            .ok();
                        match answer {
                            Ok(a) if a.status == 200 => {
                                accepted.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    sent.lock().unwrap().push(Sent {
                        sid,
                        customer: customer.clone(),
                        at,
                    });
                }
            })
        })
        .collect();
    let progress = {
        let (posts, p) = (posts.clone(), p.clone());
        let total = args.messages;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let replies = p.sim.sent().len();
                println!(
                    "      {:>6.1}s  webhooks posted {:>6}  replies accepted by Twilio {:>6}  (of ≥{total})",
                    started.elapsed().as_secs_f64(),
                    posts.load(Ordering::Relaxed),
                    replies
                );
            }
        })
    };
    for w in workers {
        w.await?;
    }
    let send_secs = started.elapsed().as_secs_f64();
    let total_posts = posts.load(Ordering::Relaxed);

    // Drain: every unique message answered.
    let unique = sent.lock().unwrap().len();
    let drain_deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let answered: i64 = sqlx::query_scalar(
            "SELECT count(DISTINCT i.id) FROM messages i JOIN messages o ON o.reply_to = i.id \
             WHERE i.direction = 'in' AND o.wa_sid IS NOT NULL",
        )
        .fetch_one(p.env.pool())
        .await?;
        if answered as usize >= unique || Instant::now() > drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pipeline_secs = started.elapsed().as_secs_f64();
    let after = meters::read(&p).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // late duplicates would show now
    progress.abort();

    println!("\n[3/3] audit and latencies");
    // reply (Twilio sid, message id) per inbound sid: the first reply decided.
    let rows: Vec<(String, String, uuid::Uuid)> = sqlx::query_as(
        "SELECT DISTINCT ON (i.id) i.wa_sid, o.wa_sid, o.id FROM messages i JOIN messages o ON o.reply_to = i.id \
         WHERE i.direction = 'in' AND o.wa_sid IS NOT NULL ORDER BY i.id, o.reply_index",
    )
    .fetch_all(p.env.pool())
    .await?;
    let first_reply: HashMap<String, (String, uuid::Uuid)> =
        rows.into_iter().map(|(i, o, id)| (i, (o, id))).collect();
    let twilio_at: HashMap<String, DateTime<Utc>> = p
        .sim
        .sent()
        .into_iter()
        .map(|m| (m.sid, m.received_at))
        .collect();
    let events = event_times.lock().unwrap().clone();
    let mut to_twilio = hist();
    let mut to_dashboard = hist();
    let mut unanswered = 0;
    for s in sent.lock().unwrap().iter() {
        match first_reply.get(&s.sid) {
            Some((twilio_sid, message_id)) => {
                if let Some(at) = twilio_at.get(twilio_sid) {
                    to_twilio
                        .record((*at - s.at).num_microseconds().unwrap_or(0).max(1) as u64)
                        .ok();
                }
                if let Some(at) = events.get(&message_id.to_string()) {
                    to_dashboard
                        .record((*at - s.at).num_microseconds().unwrap_or(0).max(1) as u64)
                        .ok();
                }
            }
            None => {
                unanswered += 1;
                let _ = &s.customer;
            }
        }
    }
    let stored_twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT wa_sid FROM messages WHERE direction = 'in' GROUP BY wa_sid HAVING count(*) > 1) d",
    )
    .fetch_one(p.env.pool())
    .await?;
    let inbound_rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE direction = 'in'")
            .fetch_one(p.env.pool())
            .await?;
    let out_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE direction = 'out' AND author = 'bot'",
    )
    .fetch_one(p.env.pool())
    .await?;
    let out_sent: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE direction = 'out' AND author = 'bot' AND wa_sid IS NOT NULL")
            .fetch_one(p.env.pool())
            .await?;
    let twilio_total = p.sim.sent().len() as i64;
    // Where the time goes: each stage's lag, from the rows' timestamps.
    let stage_lags: Vec<(String, Option<f64>, Option<f64>)> = sqlx::query_as(
        "WITH firsts AS ( \
            SELECT DISTINCT ON (i.id) a.received_at AS ingest_at, a.recorded_at AS routed_at, \
                i.created_at AS stored_at, o.sent_at AS sent_at \
            FROM messages i JOIN webhook_audit a ON a.message_sid = i.wa_sid AND a.outcome = 'accepted' \
            JOIN messages o ON o.reply_to = i.id WHERE i.direction = 'in' ORDER BY i.id, o.reply_index) \
         SELECT stage, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) \
         FROM (SELECT '1 ingest → router' AS stage, extract(epoch FROM routed_at - ingest_at) * 1000 AS ms FROM firsts \
               UNION ALL SELECT '2 router → conversation', extract(epoch FROM stored_at - routed_at) * 1000 FROM firsts \
               UNION ALL SELECT '3 conversation → Twilio', extract(epoch FROM sent_at - stored_at) * 1000 FROM firsts) lags \
         GROUP BY stage ORDER BY stage",
    )
    .fetch_all(p.env.pool())
    .await?;
    let ack = ack_latency.lock().unwrap().clone();
    let accept_rate = total_posts as f64 / send_secs;

    println!();
    println!("  ─── Waiter benchmark ───────────────────────────────────────────────");
    println!(
        "  machine                 {} cores",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "  raw JetStream publish   {raw_rate:>9.0} msg/s    ack p50 {:>7.2} ms  p99 {:>7.2} ms",
        ms(&raw_lat, 0.5),
        ms(&raw_lat, 0.99)
    );
    println!(
        "  webhooks accepted       {accept_rate:>9.0} /s       ack p50 {:>7.2} ms  p99 {:>7.2} ms   ({total_posts} posts in {send_secs:.1} s, {} refused)",
        ms(&ack, 0.5),
        ms(&ack, 0.99),
        refused.load(Ordering::Relaxed)
    );
    println!(
        "  raw publish, {:>4} in flight {async_rate:>6.0} msg/s    ack p50 {:>7.2} ms  p99 {:>7.2} ms",
        args.raw_in_flight,
        ms(&async_lat, 0.5),
        ms(&async_lat, 0.99)
    );
    if let Some((rate, lat)) = &bare {
        println!(
            "  bare warp POST          {rate:>9.0} /s       p50 {:>7.2} ms  p99 {:>7.2} ms",
            ms(lat, 0.5),
            ms(lat, 0.99)
        );
        println!(
            "  ingest / bare POST      {:>9.1} %",
            100.0 * accept_rate / rate
        );
    }
    println!(
        "  ratio to raw publish    {:>9.1} %  ({:.1} % of raw publish at {} in flight)",
        100.0 * accept_rate / raw_rate,
        100.0 * accept_rate / async_rate,
        args.raw_in_flight
    );
    println!(
        "  answered end to end     {:>9.0} msg/s  ({unique} messages answered within {pipeline_secs:.1} s; {:.2} % of raw publish at {} in flight)",
        unique as f64 / pipeline_secs,
        100.0 * unique as f64 / pipeline_secs / async_rate,
        args.raw_in_flight
    );
    println!(
        "  webhook → reply at Twilio     p50 {:>8.1} ms  p99 {:>8.1} ms  ({} samples)",
        ms(&to_twilio, 0.5),
        ms(&to_twilio, 0.99),
        to_twilio.len()
    );
    println!(
        "  webhook → dashboard event     p50 {:>8.1} ms  p99 {:>8.1} ms  ({} samples)",
        ms(&to_dashboard, 0.5),
        ms(&to_dashboard, 0.99),
        to_dashboard.len()
    );
    println!("  stage lag (from row timestamps)");
    for (stage, p50, p99) in &stage_lags {
        println!(
            "    {stage:<28} p50 {:>8.1} ms  p99 {:>8.1} ms",
            p50.unwrap_or(0.0),
            p99.unwrap_or(0.0)
        );
    }
    println!("  worker outcomes (summed over each stage's consumers)");
    let rendered = waiter_runtime::telemetry::metrics_handle().render();
    let mut outcomes: std::collections::BTreeMap<(String, String), f64> = Default::default();
    for line in rendered.lines() {
        if let Some(labels) = line.strip_prefix("waiter_worker_messages_total{") {
            let label = |name: &str| {
                labels
                    .split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .unwrap_or("")
                    .to_string()
            };
            let value: f64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            *outcomes
                .entry((label("stage"), label("outcome")))
                .or_default() += value;
        }
    }
    for ((stage, outcome), n) in &outcomes {
        println!("    {stage:<14} {outcome:<12} {n:>8}");
    }
    for line in rendered.lines() {
        let quantile = line.contains("0.5\"") || line.contains("0.99\"");
        if quantile
            && (line.starts_with("waiter_worker_handle_seconds{")
                || line.starts_with("waiter_worker_batch_size{")
                || line.starts_with("waiter_bus_publish_seconds{"))
        {
            println!("    {line}");
        }
    }
    if !p.stages.is_empty() {
        meters::report(&before, &after, unique);
    }
    println!("  audit");
    println!("    unique messages sent          {unique}");
    println!("    stored                        {inbound_rows}   (stored twice: {stored_twice})");
    println!("    unanswered                    {unanswered}");
    println!("    bot replies decided           {out_rows}, accepted by Twilio {out_sent}, Twilio received {twilio_total}");
    let ok = stored_twice == 0
        && inbound_rows as usize == unique
        && unanswered == 0
        && out_sent == twilio_total
        && out_rows == out_sent;
    println!(
        "    verdict                       {}",
        if ok {
            "every message stored once and answered once"
        } else {
            "LOSS OR DUPLICATES — see above"
        }
    );
    println!("  ────────────────────────────────────────────────────────────────────");
    drop(p);
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
