//! The default mode: the whole pipeline in this process, on a fresh
//! database and bus namespace, every stage on threads of its own.

use std::{sync::Arc, time::Duration};

use twilio_sim::StatusCallbackMode;
use waiter_e2e::{stages::PerStage, Options, Pipeline};

use crate::{
    audit, baselines,
    load::{self, Customer, EventTimes},
    meters, summary, Args,
};

pub async fn run(args: &Args) -> anyhow::Result<bool> {
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

    let first = p.restaurant(0);
    let baselines = baselines::measure(
        &baselines::Bench {
            js: p.env.bus.bus.jetstream(),
            prefix: &p.env.bus.config.namespace,
            sim: &p.sim,
            account_sid: &first.account_sid,
            number: &first.number,
        },
        args.raw,
        args.concurrency,
        args.raw_in_flight,
        args.bare,
    )
    .await;
    let p = Arc::new(p);

    // Dashboards: one socket per restaurant, recording when each reply's
    // message.sent event arrives.
    let event_times = EventTimes::default();
    let feeds: Vec<load::Feed> = (0..args.restaurants)
        .map(|i| load::Feed::new(p.ws_url(), p.token(i), p.restaurant(i).id))
        .collect();
    for feed in &feeds {
        load::record_events(feed.clone(), event_times.clone()).await;
    }

    println!(
        "\n[2/3] {} webhooks from {} customers ({}% sent twice), {} in flight",
        args.messages, args.customers, args.duplicates, args.concurrency
    );
    let customers: Vec<Customer> = if args.open_conversations > 0 {
        open_conversations(&p, args.open_conversations).await?;
        (0..args.customers)
            .map(|c| c * args.open_conversations / args.customers.max(1))
            .map(|i| customer(&p, i, seeded_number(i)))
            .collect()
    } else {
        (0..args.customers)
            .map(|c| customer(&p, c, format!("whatsapp:+9665{c:08}")))
            .collect()
    };
    let before = meters::read(&p).await;
    let deliver: load::Deliver = {
        let p = p.clone();
        Arc::new(move |spec| {
            let p = p.clone();
            Box::pin(async move { p.sim.send_inbound(spec).await })
        })
    };
    let replies: load::Replies = {
        let p = p.clone();
        Arc::new(move || {
            let n = p.sim.sent().len();
            Box::pin(async move { n })
        })
    };
    let outcome = load::run(&args.load(), &customers, deliver, replies).await?;

    // Drain: every unique message answered.
    let sids: Vec<String> = outcome.sent.iter().map(|s| s.sid.clone()).collect();
    let pipeline_secs = audit::drain(
        p.env.pool(),
        &sids,
        outcome.started,
        Duration::from_secs(300),
    )
    .await?;
    let after = meters::read(&p).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // late duplicates would show now
    outcome.progress.abort();

    println!("\n[3/3] audit and latencies");
    let events = event_times.lock().unwrap().clone();
    let audit = audit::audit(p.env.pool(), &outcome.sent, &p.sim.sent(), &events).await?;

    println!();
    let reconnects = feeds
        .iter()
        .map(|f| f.reconnects.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    summary::print(&baselines, &outcome, pipeline_secs, &audit, reconnects);
    worker_outcomes();
    if !p.stages.is_empty() {
        meters::report(&before, &after, audit.unique);
    }
    audit.print();
    println!("  ────────────────────────────────────────────────────────────────────");
    Ok(audit.ok())
}

/// Customer `i` writes to restaurant `i mod restaurants`.
fn customer(p: &Pipeline, i: usize, number: String) -> Customer {
    let r = p.restaurant(i % p.restaurants.len());
    Customer {
        account_sid: r.account_sid.clone(),
        business: r.number.clone(),
        number,
    }
}

fn seeded_number(i: usize) -> String {
    format!("whatsapp:+9667{i:08}")
}

/// `n` conversations as the conversation stage opens them (same ids, an
/// empty dialogue), written 10,000 to a statement.
async fn open_conversations(p: &Pipeline, n: usize) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let (mut ids, mut restaurants, mut customers) = (vec![], vec![], vec![]);
        for &i in chunk {
            let restaurant = p.restaurant(i % p.restaurants.len()).id;
            let number = seeded_number(i);
            ids.push(conversation::store::ids::conversation(restaurant, &number));
            restaurants.push(restaurant);
            customers.push(number);
        }
        sqlx::query(
            "INSERT INTO conversations (id, restaurant_id, customer, last_message_at) \
             SELECT id, r, c, now() - random() * interval '7 days' \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS t(id, r, c)",
        )
        .bind(&ids)
        .bind(&restaurants)
        .bind(&customers)
        .execute(p.env.pool())
        .await?;
        print!(
            "\r  opened {} of {n} conversations",
            chunk[chunk.len() - 1] + 1
        );
        std::io::Write::flush(&mut std::io::stdout()).ok();
    }
    sqlx::query("ANALYZE conversations")
        .execute(p.env.pool())
        .await?;
    println!(" in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The stages' worker counters and quantiles from this process's metrics.
fn worker_outcomes() {
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
}
