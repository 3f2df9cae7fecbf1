//! A pool of one connection serves every partition: no input asks for a
//! second connection while its transaction holds one (a catalog lookup
//! inside the transaction used to, and with many partitions every
//! partition waited on the pool).

use std::time::Duration;

use futures::future::join_all;
use twilio_sim::InboundSpec;
use waiter_e2e::{Options, Pipeline};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_serves_every_partition_without_waiting_on_itself() {
    let p = Pipeline::start_with(Options {
        conversation: false,
        partitions: 8,
        ..Options::default()
    })
    .await;
    let mut config = conversation::Config::for_tests(&p.env.db.url);
    // Every catalog read is a cache miss.
    config.catalog_ttl = Duration::from_millis(1);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy(&p.env.db.url)
        .expect("pool");
    conversation::start(config, p.env.bus.bus.clone(), pool, p.env.shutdown.clone())
        .await
        .expect("conversation");
    let r = p.restaurant(0);
    let customers: Vec<String> = (0..8)
        .map(|i| format!("whatsapp:+96650000{i:04}"))
        .collect();
    let partitions: std::collections::BTreeSet<u16> = customers
        .iter()
        .map(|c| p.env.bus.bus.topology().conversation_partition(&r.id, c))
        .collect();
    assert!(
        partitions.len() >= 4,
        "spread over partitions: {partitions:?}"
    );
    // Everyone at once, twice.
    for text in ["hello", "menu"] {
        let sends = customers.iter().map(|c| {
            p.sim
                .send_inbound(InboundSpec::text(&r.account_sid, c, &r.number, text))
        });
        for answer in join_all(sends).await {
            assert_eq!(answer.expect("webhook").status, 200);
        }
    }
    for c in &customers {
        let sent = p.sim.wait_for_sent(c, 2, WAIT).await;
        assert!(sent.len() >= 2, "{c} answered twice: {sent:?}");
    }
}
