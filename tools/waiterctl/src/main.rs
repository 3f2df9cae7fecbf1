//! `waiterctl`: the operator's tool. Every `just` recipe that touches data
//! goes through it: migrate, seed the demo, add or update restaurants, mint
//! dashboard tokens, replay subjects, list and retry dead letters.

mod replay;
mod tenants;

use anyhow::Context;
use clap::{Parser, Subcommand};
use waiter_nats::{Bus, BusConfig};

#[derive(Parser)]
#[command(name = "waiterctl", about = "Operate a Waiter deployment", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Create the database if needed and apply the migrations.
    Migrate,
    /// Add (or refresh) the demo restaurant with its Arabic/English menu.
    SeedDemo {
        #[arg(long, env = "DEMO_NUMBER", default_value = waiter_migrations::demo::DEMO_NUMBER)]
        number: String,
        #[arg(long, env = "DEMO_ACCOUNT_SID", default_value = waiter_migrations::demo::DEMO_ACCOUNT_SID)]
        account_sid: String,
        #[arg(long, env = "DEMO_AUTH_TOKEN", default_value = waiter_migrations::demo::DEMO_AUTH_TOKEN, hide_default_value = true)]
        auth_token: String,
    },
    /// Restaurants (tenants).
    #[command(subcommand)]
    Tenant(tenants::TenantCommand),
    /// Mint a dashboard JWT (HS256 with JWT_SECRET), or a login link.
    Jwt {
        /// Restaurant id or slug.
        #[arg(long)]
        restaurant: String,
        #[arg(long, default_value = "staff")]
        role: String,
        #[arg(long, default_value = "dashboard")]
        sub: String,
        /// Lifetime in hours.
        #[arg(long, default_value_t = 24)]
        hours: i64,
        /// Print a dashboard login link (the token in its fragment) instead.
        #[arg(long)]
        link: bool,
        /// The dashboard's address, for --link.
        #[arg(long, env = "DASHBOARD_URL", default_value = "http://127.0.0.1:8090")]
        dashboard_url: String,
    },
    /// Print the messages of a subject as JSON lines, or feed them back.
    Replay(replay::ReplayArgs),
    /// List dead letters.
    Dlq {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Send dead letters again (all of them, or one by sequence).
    DlqRetry {
        #[arg(long)]
        seq: Option<u64>,
    },
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| waiter_runtime::config::DEFAULT_DATABASE_URL.to_string())
}

async fn pool() -> anyhow::Result<sqlx::PgPool> {
    let url = database_url();
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .with_context(|| format!("connecting to PostgreSQL ({})", redact_url(&url)))
}

async fn bus() -> anyhow::Result<Bus> {
    let config = BusConfig::from_env().map_err(anyhow::Error::msg)?;
    Bus::connect(&config, "waiterctl")
        .await
        .context("connecting to NATS")
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate => migrate().await,
        Command::SeedDemo {
            number,
            account_sid,
            auth_token,
        } => {
            let pool = pool().await?;
            let id = waiter_migrations::demo::seed_demo(&pool, &number, &account_sid, &auth_token)
                .await?;
            tenants::publish_directory(&account_sid, &auth_token).await?;
            println!("{id}");
            Ok(())
        }
        Command::Tenant(cmd) => tenants::run(cmd).await,
        Command::Jwt {
            restaurant,
            role,
            sub,
            hours,
            link,
            dashboard_url,
        } => {
            let pool = pool().await?;
            let id = tenants::resolve(&pool, &restaurant).await?;
            let token = tenants::mint_jwt(id, &role, &sub, hours)?;
            match link {
                true => println!("{}", tenants::login_link(&dashboard_url, &token)),
                false => println!("{token}"),
            }
            Ok(())
        }
        Command::Replay(args) => replay::replay(args).await,
        Command::Dlq { limit } => replay::list_dead_letters(limit).await,
        Command::DlqRetry { seq } => replay::retry_dead_letters(seq).await,
    }
}

async fn migrate() -> anyhow::Result<()> {
    use sqlx::{Connection, PgConnection};
    let url = database_url();
    let (base, db) = url
        .rsplit_once('/')
        .map(|(b, d)| (b.to_string(), d.split('?').next().unwrap_or("").to_string()))
        .context("DATABASE_URL has no database name")?;
    if PgConnection::connect(&url).await.is_err() {
        let mut admin = PgConnection::connect(&format!("{base}/postgres"))
            .await
            .with_context(|| format!("connecting to PostgreSQL ({})", redact_url(&url)))?;
        let ok_name = !db.is_empty() && db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        anyhow::ensure!(ok_name, "database name {db:?} must be alphanumeric");
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut admin)
            .await?;
        eprintln!("created database {db}");
    }
    let pool = pool().await?;
    waiter_migrations::MIGRATOR
        .run(&pool)
        .await
        .context("applying migrations")?;
    eprintln!("migrations applied to {}", redact_url(&url));
    Ok(())
}
