//! One scenario's world: private NATS (one server or a cluster), a fresh
//! database behind a proxy the scenario can cut, the Twilio simulator in
//! this process, three restaurants, and every stage as its own process.

use tokio_util::sync::CancellationToken;
use twilio_sim::{SimConfig, Simulator, StatusCallbackMode};
use waiter_harness::{add_restaurant, proxy::Proxy, TestDb, TestRestaurant};
use waiter_nats::{directory::Directory, Bus, BusConfig, StreamKind};

use crate::{
    fleet::{bin_dir, Fleet, Wiring, INGEST_PORT, PARTITIONS},
    nats::Nats,
};

pub const RESTAURANTS: [&str; 3] = ["saffron", "cedar", "olive"];

pub struct World {
    pub nats: Nats,
    pub db: TestDb,
    pub postgres: Proxy,
    pub sim: Simulator,
    pub bus: Bus,
    pub restaurants: Vec<TestRestaurant>,
    pub fleet: Fleet,
    shutdown: CancellationToken,
}

impl World {
    /// `nats_nodes`: 1, or 3 for a cluster with R3 streams.
    pub async fn start(scenario: &str, nats_nodes: usize) -> World {
        let nats = Nats::start(nats_nodes).await;
        let db = TestDb::new().await;
        let postgres = Proxy::start(TestDb::server_addr()).await;
        let namespace = format!("chaos{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let mut config = BusConfig::local(&namespace, PARTITIONS);
        config.url = nats.url();
        config.replicas = nats_nodes;
        let bus = Bus::connect(&config, "chaos-suite")
            .await
            .expect("connect to the private NATS");

        let mut restaurants = vec![];
        for slug in RESTAURANTS {
            restaurants.push(add_restaurant(&db.pool, slug, "en").await);
        }
        // The tenant directory before ingest starts, as `waiterctl` writes
        // it (a new cluster needs a few seconds to elect its leaders).
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let directory = loop {
            // Every stream first: six stages creating R3 streams at once on
            // a cluster still electing time out, and a stage that cannot
            // set up its streams exits (a supervisor would restart it).
            if let Err(e) = bus.ensure_streams(&StreamKind::ALL).await {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "cannot create the streams: {e}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                continue;
            }
            match Directory::open(&bus).await {
                Ok(directory) => break directory,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "JetStream not ready yet");
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                Err(e) => panic!("cannot open the tenant directory: {e}"),
            }
        };
        for r in &restaurants {
            directory
                .put(&r.directory_entry())
                .await
                .expect("directory entry");
        }
        let shutdown = CancellationToken::new();
        let sim = Simulator::start(
            SimConfig {
                webhook_url: format!("http://127.0.0.1:{INGEST_PORT}/whatsapp/webhook"),
                accounts: restaurants
                    .iter()
                    .map(|r| (r.account_sid.clone(), r.auth_token.clone()))
                    .collect(),
                status_callbacks: StatusCallbackMode::InOrder,
                ..SimConfig::default()
            },
            shutdown.clone(),
        )
        .await
        .expect("simulator");

        let fleet = Fleet::start(
            Wiring {
                database_url: db.url_via(postgres.addr()),
                nats_url: nats.url(),
                namespace,
                replicas: nats_nodes,
                twilio_api_base: sim.base_url(),
            },
            bin_dir().join("chaos").join(scenario),
        )
        .await;
        World {
            nats,
            db,
            postgres,
            sim,
            bus,
            restaurants,
            fleet,
            shutdown,
        }
    }

    pub async fn stop(mut self) {
        self.fleet.stop().await;
        self.shutdown.cancel();
    }
}
