//! Test support: every test gets its own PostgreSQL database (migrated) and
//! its own bus namespace (its own streams, consumers and directory bucket)
//! on the real servers, both removed when the test ends.
//!
//! `DATABASE_ADMIN_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! is where test databases are created; `NATS_URL` the server.

use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use waiter_nats::{Bus, BusConfig};
pub use waiter_secrets::Keyring;

pub mod jwt;
pub mod nats_server;
pub mod proxy;
pub mod ws;

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn admin_url() -> String {
    std::env::var("DATABASE_ADMIN_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

fn with_database(url: &str, database: &str) -> String {
    // postgres://user@host:port/db?params → swap the db part.
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let prefix = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    format!("{prefix}/{database}{query}")
}

/// A fresh, migrated database, dropped when this value is dropped.
pub struct TestDb {
    pub pool: PgPool,
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let name = format!("waiter_t_{}", Uuid::new_v4().simple());
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let url = with_database(&admin, &name);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await
            .expect("connect to test database");
        waiter_migrations::MIGRATOR
            .run(&pool)
            .await
            .expect("migrate test database");
        TestDb { pool, url, name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// This database's URL with another host and port (a proxy in front).
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        let (scheme_user, rest) = self
            .url
            .split_once('@')
            .unwrap_or(("postgres://postgres", &self.url));
        let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("");
        format!("{scheme_user}@{addr}{path}")
    }

    /// The server's address, as the admin URL names it.
    pub fn server_addr() -> std::net::SocketAddr {
        let url = admin_url();
        let after_at = url.split_once('@').map(|(_, r)| r).unwrap_or(&url);
        let hostport = after_at.split('/').next().unwrap_or("127.0.0.1:5432");
        let hostport = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:5432")
        };
        let hostport = hostport.replace("localhost", "127.0.0.1");
        hostport
            .parse()
            .expect("DATABASE_ADMIN_URL host must be an IP address and port")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A thread with its own runtime, so this works from any test. The
        // pool is not closed first: its connections may be held by tasks of
        // the (now blocked) test runtime; FORCE ends them.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A namespace of its own on the shared NATS server, deleted on drop.
pub struct TestBus {
    pub bus: Bus,
    pub config: BusConfig,
}

impl TestBus {
    pub async fn new() -> TestBus {
        Self::with_partitions(4).await
    }

    pub async fn with_partitions(partitions: u16) -> TestBus {
        let namespace = format!("t{}", &Uuid::new_v4().simple().to_string()[..12]);
        let config = BusConfig::local(&namespace, partitions);
        let bus = Bus::connect(&config, "waiter-test")
            .await
            .unwrap_or_else(|e| panic!("cannot reach NATS at {}: {e}", config.url));
        TestBus { bus, config }
    }

    pub fn namespace(&self) -> &str {
        &self.config.namespace
    }

    /// Another connection to this namespace, as another process (a
    /// replica) would have, with its settings changed by `tweak`.
    pub async fn connect(&self, tweak: impl FnOnce(&mut BusConfig)) -> Bus {
        let mut config = self.config.clone();
        tweak(&mut config);
        Bus::connect(&config, "waiter-test-replica")
            .await
            .unwrap_or_else(|e| panic!("cannot reach NATS at {}: {e}", config.url))
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        let config = self.config.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(bus) = Bus::connect(&config, "waiter-test-cleanup").await {
                    let _ = bus.delete_namespace().await;
                }
            });
        })
        .join();
    }
}

/// A database and a bus namespace, plus a shutdown token that stops
/// everything the test started when dropped.
pub struct TestEnv {
    pub db: TestDb,
    pub bus: TestBus,
    pub shutdown: CancellationToken,
}

impl TestEnv {
    pub async fn new() -> TestEnv {
        Self::with_partitions(4).await
    }

    pub async fn with_partitions(partitions: u16) -> TestEnv {
        init_logs();
        let (db, bus) = tokio::join!(TestDb::new(), TestBus::with_partitions(partitions));
        TestEnv {
            db,
            bus,
            shutdown: CancellationToken::new(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Quiet by default; `RUST_LOG=debug cargo test` shows everything.
pub fn init_logs() {
    if std::env::var("RUST_LOG").is_ok() {
        waiter_runtime::telemetry::init("test");
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Like [`eventually`], but `check` says what it saw when it is not
/// satisfied (`Err`), and a timeout shows the last of it.
pub async fn eventually_showing<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(seen) if tokio::time::Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen:\n{seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}

/// Every message of a stream on `filter` (wildcards allowed), oldest
/// first, read without acknowledging anything. Empty when the stream does
/// not exist yet.
pub async fn read_stream(
    bus: &Bus,
    kind: waiter_nats::StreamKind,
    filter: String,
) -> Vec<async_nats::jetstream::Message> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
    use futures::StreamExt;
    let Ok(stream) = bus
        .jetstream()
        .get_stream(bus.topology().stream_name(kind))
        .await
    else {
        return vec![];
    };
    let reader: PullConsumer = stream
        .create_consumer(pull::Config {
            filter_subject: filter,
            ack_policy: AckPolicy::None,
            deliver_policy: DeliverPolicy::All,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .expect("reader consumer");
    let mut batch = reader
        .fetch()
        .max_messages(10_000)
        .messages()
        .await
        .expect("fetch");
    let mut out = vec![];
    while let Some(message) = batch.next().await {
        out.push(message.expect("message"));
    }
    out
}

/// A restaurant for tests: a unique number, account and token.
pub struct TestRestaurant {
    pub id: Uuid,
    pub number: String,
    pub account_sid: String,
    pub auth_token: String,
}

/// Adds a restaurant with the demo menu and branches (imported as an
/// operator would: `docs/menu-example.csv`); `language` is `ar` or `en`.
/// Its auth token is sealed with [`Keyring::for_tests`], which every stage
/// started in the test process opens with.
pub async fn add_restaurant(pool: &PgPool, slug: &str, language: &str) -> TestRestaurant {
    let n = Uuid::new_v4().as_u128();
    let number = format!("whatsapp:+1555{:07}", n % 10_000_000);
    let account_sid = format!("AC{:032x}", n);
    let auth_token = format!("token-{:016x}", (n >> 64) as u64);
    let sealed = waiter_migrations::restaurants::seal_auth_token(
        Keyring::for_tests(),
        &account_sid,
        &auth_token,
    );
    let mut r = waiter_migrations::NewRestaurant::new(slug, &number, &account_sid, sealed);
    r.default_language = language.to_string();
    r.name_en = format!("{slug} Grill");
    r.name_ar = format!("مشويات {slug}");
    r.delivery_fee = 1000;
    r.min_delivery_order = 3000;
    r.promo_links = vec![format!("https://example.com/{slug}/offers")];
    r.support_contact = Some("+966500000001".into());
    r.payment_link_base = Some(format!("https://pay.example.com/{slug}"));
    r.time_zone = "Asia/Riyadh".into();
    let id = waiter_migrations::restaurants::upsert(pool, &r)
        .await
        .expect("add restaurant");
    waiter_migrations::demo::seed_branches_and_menu(pool, id)
        .await
        .expect("seed branches and menu");
    TestRestaurant {
        id,
        number,
        account_sid,
        auth_token,
    }
}

impl TestRestaurant {
    /// This restaurant's directory entry, sealed as the router publishes it.
    pub fn directory_entry(&self) -> waiter_nats::directory::AccountEntry {
        waiter_nats::directory::AccountEntry {
            account_sid: self.account_sid.clone(),
            sealed_token: Some(waiter_migrations::restaurants::seal_auth_token(
                Keyring::for_tests(),
                &self.account_sid,
                &self.auth_token,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_the_database_in_a_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
    }
}
