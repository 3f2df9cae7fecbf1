//! A restaurant's outbound rate holds across replicas: two outbound
//! replicas sending for one restaurant limited to 5 messages/s stay within
//! it together (each takes the share of the rate that matches the share of
//! the partitions it owns).

use std::time::Duration;

use futures::future::join_all;
use twilio_sim::InboundSpec;
use waiter_e2e::Pipeline;
use waiter_harness::eventually;
use waiter_nats::{worker::assignment::desired_owner, Bus};

const WAIT: Duration = Duration::from_secs(90);
const RATE: i32 = 5;
const CUSTOMERS: u32 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_outbound_replicas_keep_one_restaurant_within_its_rate() {
    let p = Pipeline::start().await;
    let r = p.restaurant(0);
    sqlx::query("UPDATE restaurants SET outbound_rate_per_second = $1 WHERE id = $2")
        .bind(RATE)
        .bind(r.id)
        .execute(p.env.pool())
        .await
        .unwrap();
    // One replica holds every partition until the second joins.
    let first = waiter_e2e::sole_owner(&p.env.bus.bus, "outbound", WAIT).await;
    // The first replica's id is random, and rendezvous hashing gives all
    // partitions to one of two replicas one time in 2^(partitions-1): the
    // second's id is one that wins some partitions, not all.
    let partitions = p.env.bus.bus.topology().partitions();
    let wins = |id: &str| {
        (0..partitions)
            .filter(|&n| desired_owner("outbound", n, [first.as_str(), id]) == Some(id))
            .count()
    };
    let second = (0..)
        .map(|i| format!("outbound-second{i}"))
        .find(|id| (1..usize::from(partitions)).contains(&wins(id)))
        .unwrap();
    let mut config = p.env.bus.config.clone();
    config.worker.replica_id = Some(second.clone());
    let second_bus = Bus::connect(&config, &second).await.unwrap();
    let mut second_config = outbound::Config::for_tests(&p.sim.base_url());
    second_config.status_callback_url = Some(format!("http://{}/whatsapp/status", p.ingest));
    outbound::start(
        second_config,
        second_bus,
        waiter_runtime::db::lazy_pool(&p.env.db.url, 8).unwrap(),
        p.env.shutdown.clone(),
    )
    .await
    .expect("second outbound replica");
    eventually(
        "the outbound partitions spread over both replicas",
        WAIT,
        || async {
            let owners = waiter_e2e::lease_owners(&p.env.bus.bus, "outbound").await;
            let held = owners
                .iter()
                .filter(|o| o.as_deref() == Some(second.as_str()))
                .count();
            (owners.iter().all(Option::is_some) && held == wins(&second)).then_some(())
        },
    )
    .await;

    let customers: Vec<String> = (0..CUSTOMERS)
        .map(|n| format!("whatsapp:+9665{:08}", 80_000_000 + n))
        .collect();
    let posts = customers.iter().map(|from| {
        p.sim
            .send_inbound(InboundSpec::text(&r.account_sid, from, &r.number, "hello"))
    });
    for answer in join_all(posts).await {
        assert_eq!(answer.unwrap().status, 200);
    }
    let sent = eventually("a reply to every customer", WAIT, || async {
        let sent = p.sim.sent();
        customers
            .iter()
            .all(|c| sent.iter().any(|m| &m.to == c))
            .then_some(sent)
    })
    .await;
    let mut times: Vec<_> = sent.iter().map(|m| m.received_at).collect();
    times.sort();
    let first = times[0];
    let secs = |t: chrono::DateTime<chrono::Utc>| (t - first).num_milliseconds() as f64 / 1000.0;
    let span = secs(*times.last().unwrap());
    // After the first second (each limiter may start with a burst of one
    // second's worth of its share), the sends keep to the rate.
    let steady: Vec<f64> = times
        .iter()
        .map(|t| secs(*t))
        .filter(|s| *s >= 1.0)
        .collect();
    let steady_rate = steady.len() as f64 / (span - 1.0).max(0.001);
    let busiest_second = times
        .iter()
        .map(|t| {
            times
                .iter()
                .filter(|u| **u >= *t && secs(**u) - secs(*t) < 1.0)
                .count()
        })
        .max()
        .unwrap();
    println!(
        "{} sends over {span:.2} s: {:.2}/s after the first second, busiest second {busiest_second} (limit {RATE}/s)",
        times.len(),
        steady_rate
    );
    assert!(
        span > 3.0,
        "{} sends in {span:.2} s: not limited",
        times.len()
    );
    assert!(
        steady_rate <= f64::from(RATE) * 1.1,
        "{steady_rate:.2}/s is over {RATE}/s"
    );
    // Each replica's burst is at most its share of one second's worth.
    assert!(
        busiest_second <= 2 * RATE as usize,
        "{busiest_second} in one second"
    );
}
