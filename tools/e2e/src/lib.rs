//! The whole pipeline in one process on a fresh database and bus namespace:
//! the Twilio simulator, ingest, router, conversation, order, outbound and
//! notifier, each started through its library exactly as its binary does.

pub mod browser;
pub mod chat;
pub mod stages;

use std::{net::SocketAddr, time::Duration};

use twilio_sim::{SimConfig, Simulator, StatusCallbackMode};
use waiter_harness::{add_restaurant, TestEnv, TestRestaurant};
use waiter_nats::directory::Directory;

pub const JWT_SECRET: &str = "e2e-test-secret-0123456789";

pub struct Options {
    /// (slug, language) of each restaurant to create.
    pub restaurants: Vec<(&'static str, &'static str)>,
    /// Run the conversation stage in this process (false: the test runs it).
    pub conversation: bool,
    pub status_callbacks: StatusCallbackMode,
    /// Partitions per ordered stream.
    pub partitions: u16,
    /// Put the stages' PostgreSQL connections behind a proxy the test can cut.
    pub postgres_proxy: bool,
    /// `WAITER_SECRET_KEY` of ingest and outbound (default: the harness's
    /// test keyring, which sealed the restaurants' tokens).
    pub secret_keys: Option<waiter_harness::Keyring>,
    /// Every stage on threads, a NATS connection and database connections
    /// of its own, metered (`stages`); none: one shared runtime and bus.
    pub per_stage: Option<stages::PerStage>,
    /// `WEBHOOK_MAX_ATTEMPTS` of outbound (default: its test default, 8).
    pub webhook_attempts: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            restaurants: vec![("alpha", "en")],
            conversation: true,
            status_callbacks: StatusCallbackMode::InOrder,
            partitions: 4,
            postgres_proxy: false,
            secret_keys: None,
            per_stage: None,
            webhook_attempts: None,
        }
    }
}

pub struct Pipeline {
    pub env: TestEnv,
    pub sim: Simulator,
    pub restaurants: Vec<TestRestaurant>,
    pub ingest: SocketAddr,
    pub notifier: SocketAddr,
    /// In front of PostgreSQL for every stage, when asked for.
    pub postgres: Option<waiter_harness::proxy::Proxy>,
    /// The ops port (`/health`, `/ready`, `/status`, `/metrics`) of each
    /// pulling stage started here, by stage name.
    pub ops: std::collections::BTreeMap<&'static str, SocketAddr>,
    /// Each stage's meters, with `Options::per_stage`.
    pub stages: Vec<stages::Stage>,
    _runtimes: Vec<stages::StageRuntime>,
}

impl Pipeline {
    pub async fn start() -> Pipeline {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Pipeline {
        let env = TestEnv::with_partitions(options.partitions).await;
        let mut restaurants = vec![];
        for (slug, language) in &options.restaurants {
            restaurants.push(add_restaurant(env.pool(), slug, language).await);
        }
        let bus = env.bus.bus.clone();
        let postgres = match options.postgres_proxy {
            true => Some(
                waiter_harness::proxy::Proxy::start(waiter_harness::TestDb::server_addr()).await,
            ),
            false => None,
        };
        let stage_url = match &postgres {
            Some(proxy) => env.db.url_via(proxy.addr()),
            None => env.db.url.clone(),
        };
        let shutdown = env.shutdown.clone();
        let mut starter = Starter::new(&env, stage_url, options.per_stage);

        // The tenant directory before ingest starts, as `waiterctl` writes it.
        let directory = Directory::open(&bus).await.expect("directory");
        for r in &restaurants {
            directory
                .put(&r.directory_entry())
                .await
                .expect("directory entry");
        }

        let sim_config = SimConfig {
            accounts: restaurants
                .iter()
                .map(|r| (r.account_sid.clone(), r.auth_token.clone()))
                .collect(),
            status_callbacks: options.status_callbacks,
            ..SimConfig::default()
        };
        let s = shutdown.clone();
        let sim = starter
            .start("sim", &env, |_, _| async move {
                Simulator::start(sim_config, s).await.expect("simulator")
            })
            .await;

        let mut ingest_config = ingest::Config::for_tests();
        if let Some(keys) = &options.secret_keys {
            ingest_config.secret_keys = keys.clone();
        }
        let s = shutdown.clone();
        let ingest = starter
            .start("ingest", &env, |bus, _| async move {
                ingest::start(ingest_config, bus, s)
                    .await
                    .expect("ingest")
                    .addr
            })
            .await;
        sim.set_webhook_url(&format!("http://{ingest}/whatsapp/webhook"));
        let mut ops = std::collections::BTreeMap::new();
        let (url, s) = (env.db.url.clone(), shutdown.clone());
        let router = starter
            .start("router", &env, |bus, pool| async move {
                router::start(router::Config::for_tests(&url), bus, pool, s)
                    .await
                    .expect("router")
                    .addr
            })
            .await;
        ops.insert("router", router);
        if options.conversation {
            let (url, s) = (env.db.url.clone(), shutdown.clone());
            let conversation = starter
                .start("conversation", &env, |bus, pool| async move {
                    conversation::start(conversation::Config::for_tests(&url), bus, pool, s)
                        .await
                        .expect("conversation")
                        .addr
                })
                .await;
            ops.insert("conversation", conversation);
        }
        let (url, s) = (env.db.url.clone(), shutdown.clone());
        let order = starter
            .start("order", &env, |bus, pool| async move {
                order::start(order::Config::for_tests(&url), bus, pool, s)
                    .await
                    .expect("order")
                    .addr
            })
            .await;
        ops.insert("order", order);
        let mut outbound_config = outbound::Config::for_tests(&sim.base_url());
        outbound_config.status_callback_url = Some(format!("http://{ingest}/whatsapp/status"));
        if let Some(keys) = &options.secret_keys {
            outbound_config.secret_keys = keys.clone();
        }
        if let Some(attempts) = options.webhook_attempts {
            outbound_config.webhooks.max_attempts = attempts;
        }
        let s = shutdown.clone();
        let outbound = starter
            .start("outbound", &env, |bus, pool| async move {
                outbound::start(outbound_config, bus, pool, s)
                    .await
                    .expect("outbound")
                    .addr
            })
            .await;
        ops.insert("outbound", outbound);
        let (notifier_config, s) = (
            notifier::Config::for_tests(JWT_SECRET, env.bus.config.clone()),
            shutdown.clone(),
        );
        let notifier = starter
            .start("notifier", &env, |bus, pool| async move {
                notifier::start(notifier_config, bus, pool, s)
                    .await
                    .expect("notifier")
                    .addr
            })
            .await;
        Pipeline {
            env,
            sim,
            restaurants,
            ingest,
            notifier,
            postgres,
            ops,
            stages: starter.stages,
            _runtimes: starter
                .runtimes
                .into_iter()
                .chain(starter.proxies)
                .collect(),
        }
    }

    pub fn restaurant(&self, i: usize) -> &TestRestaurant {
        &self.restaurants[i]
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.notifier)
    }

    pub fn token(&self, i: usize) -> String {
        waiter_harness::jwt::token(JWT_SECRET, self.restaurants[i].id, "staff", 3600)
    }

    /// A connected dashboard of restaurant `i`, subscribed to its channels.
    pub async fn dashboard(&self, i: usize) -> waiter_harness::ws::Dashboard {
        dashboard(&self.ws_url(), &self.token(i), self.restaurants[i].id).await
    }

    /// How many messages a stream holds on `filter` (a subject, wildcards allowed).
    pub async fn published_on(&self, kind: waiter_nats::StreamKind, filter: String) -> u64 {
        let bus = &self.env.bus.bus;
        let stream = bus
            .jetstream()
            .get_stream(bus.topology().stream_name(kind))
            .await
            .expect("stream");
        let mut consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                filter_subject: filter,
                ..Default::default()
            })
            .await
            .expect("inspection consumer");
        consumer.info().await.expect("consumer info").num_pending
    }

    /// Every message of every stream of the test's namespace: subject,
    /// headers and payload as bytes, for searching.
    pub async fn every_stream_message(&self) -> Vec<Vec<u8>> {
        use futures::StreamExt;
        let bus = &self.env.bus.bus;
        let mut all = Vec::new();
        for kind in waiter_nats::StreamKind::ALL {
            let Ok(stream) = bus
                .jetstream()
                .get_stream(bus.topology().stream_name(kind))
                .await
            else {
                continue;
            };
            let count = stream.cached_info().state.messages as usize;
            if count == 0 {
                continue;
            }
            let consumer = stream
                .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
                .await
                .expect("inspection consumer");
            let mut messages = consumer.messages().await.expect("messages").take(count);
            while let Some(message) = messages.next().await {
                let message = message.expect("message");
                let mut bytes = message.subject.as_bytes().to_vec();
                if let Some(headers) = &message.headers {
                    for (name, values) in headers.iter() {
                        bytes.extend_from_slice(name.to_string().as_bytes());
                        for v in values {
                            bytes.extend_from_slice(v.as_str().as_bytes());
                        }
                    }
                }
                bytes.extend_from_slice(&message.payload);
                all.push(bytes);
            }
        }
        all
    }

    /// Runs a query returning one number.
    pub async fn count(&self, sql: &str, bind: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .bind(bind)
            .fetch_one(self.env.pool())
            .await
            .expect("count query")
    }
}

/// Starts each stage on the test's runtime and bus, or with
/// [`stages::PerStage`] on a runtime, a bus and named database
/// connections of its own.
struct Starter {
    per_stage: Option<stages::PerStage>,
    bus: waiter_nats::Bus,
    bus_config: waiter_nats::BusConfig,
    db_url: String,
    /// Where the counting proxies run (their CPU is no stage's).
    proxies: Option<stages::StageRuntime>,
    stages: Vec<stages::Stage>,
    runtimes: Vec<stages::StageRuntime>,
}

impl Starter {
    fn new(env: &TestEnv, db_url: String, per_stage: Option<stages::PerStage>) -> Self {
        let proxies = per_stage
            .filter(|p| p.count_round_trips)
            .map(|_| stages::runtime("pgproxy"));
        Starter {
            per_stage,
            bus: env.bus.bus.clone(),
            bus_config: env.bus.config.clone(),
            db_url,
            proxies,
            stages: vec![],
            runtimes: vec![],
        }
    }

    async fn start<T, F, Fut>(&mut self, name: &'static str, env: &TestEnv, start: F) -> T
    where
        F: FnOnce(waiter_nats::Bus, sqlx::PgPool) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = |url: &str| waiter_runtime::db::lazy_pool(url, 16).expect("pool");
        if self.per_stage.is_none() {
            return start(self.bus.clone(), pool(&self.db_url)).await;
        }
        let (url, round_trips) = match &self.proxies {
            Some(proxies) => {
                let target = waiter_harness::TestDb::server_addr();
                let (addr, count) = proxies.run(stages::counting_proxy(target)).await;
                (env.db.url_via(addr), Some(count))
            }
            None => (self.db_url.clone(), None),
        };
        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{separator}application_name=waiter-{name}");
        let runtime = stages::runtime(name);
        let config = self.bus_config.clone();
        let (bus, out) = runtime
            .run(async move {
                let bus = waiter_nats::Bus::connect(&config, name)
                    .await
                    .expect("stage bus");
                let out = start(bus.clone(), pool(&url)).await;
                (bus, out)
            })
            .await;
        self.stages.push(stages::Stage {
            name,
            bus: Some(bus),
            round_trips,
        });
        self.runtimes.push(runtime);
        out
    }
}

/// Who owns each partition of a consumer group now (`None`: nobody).
pub async fn lease_owners(bus: &waiter_nats::Bus, group: &str) -> Vec<Option<String>> {
    use waiter_nats::{messages::LeaseRecord, Envelope, StreamKind};
    let topology = bus.topology();
    let stream = bus
        .jetstream()
        .get_stream(topology.stream_name(StreamKind::Leases))
        .await
        .expect("the lease stream");
    let mut owners = vec![];
    for partition in 0..topology.partitions() {
        let subject = topology.partition_lease(group, partition);
        owners.push(
            match stream.get_last_raw_message_by_subject(&subject).await {
                Ok(m) => {
                    Envelope::<LeaseRecord>::decode(&m.payload)
                        .expect("a lease record")
                        .body
                        .owner
                }
                Err(_) => None,
            },
        );
    }
    owners
}

/// Waits (up to `timeout`) until one replica holds every partition of
/// `group`, and returns its id: the state before a second replica joins.
pub async fn sole_owner(bus: &waiter_nats::Bus, group: &str, timeout: Duration) -> String {
    waiter_harness::eventually("one replica holding every partition", timeout, || async {
        let owners = lease_owners(bus, group).await;
        let first = owners.first().cloned().flatten()?;
        owners
            .iter()
            .all(|o| o.as_deref() == Some(first.as_str()))
            .then_some(first)
    })
    .await
}

/// A dashboard connected to the notifier at `ws_url` with `token`,
/// subscribed to `restaurant`'s channels.
pub async fn dashboard(
    ws_url: &str,
    token: &str,
    restaurant: uuid::Uuid,
) -> waiter_harness::ws::Dashboard {
    let mut dashboard = waiter_harness::ws::Dashboard::connect(ws_url, token)
        .await
        .expect("dashboard connects");
    dashboard.subscribe(restaurant, None).await;
    let ack = dashboard
        .next_json(Duration::from_secs(5))
        .await
        .expect("subscribed");
    assert_eq!(ack["type"], "subscribed", "{ack}");
    dashboard
}
