//! `waiterctl`: the operator's tool. Onboard restaurants (settings, branches
//! and hours, menus, content templates, secrets), migrate and seed, mint
//! dashboard tokens, replay subjects, list and retry dead letters, run the
//! stages under supervision (`up`, `scale`, `ps`, `down`). Every
//! `just` recipe that touches data goes through it. Output is a table, or
//! JSON with `--json`; an error is one readable message and exit status 1
//! (2 for a command line clap cannot read).

mod branch;
mod check;
mod connect;
mod customer;
mod database;
mod dlq;
mod jwt;
mod menu;
mod output;
mod replay;
mod restaurant;
mod scan;
mod secrets;
mod supervise;
mod templates;
mod tenants;
mod trace;
mod webhooks;

use clap::{Parser, Subcommand};

use crate::output::Out;

#[derive(Parser)]
#[command(
    name = "waiterctl",
    about = "Operate a Waiter deployment: onboard restaurants, inspect the pipeline",
    version
)]
struct Cli {
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Restaurants: create, update, show, list, disable, enable.
    #[command(subcommand)]
    Restaurant(restaurant::RestaurantCommand),
    /// Branches: add, update, list, remove; opening hours and closures.
    #[command(subcommand)]
    Branch(branch::BranchCommand),
    /// Menus: import a CSV or JSON file, export one.
    #[command(subcommand)]
    Menu(menu::MenuCommand),
    /// Content templates (ContentSids): set, remove, list, check.
    #[command(subcommand)]
    Templates(templates::TemplatesCommand),
    /// Order webhook endpoints: add (prints the secret once), list, test, remove.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// A customer's data requests: export, forget.
    #[command(subcommand)]
    Customer(customer::CustomerCommand),
    /// The keys that encrypt auth tokens: generate-key, status, rotate.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Create the database if needed, apply the migrations, seal plain tokens.
    Migrate,
    /// Add (or refresh) the demo restaurant with its Arabic/English menu.
    SeedDemo {
        #[arg(long, env = "DEMO_NUMBER", default_value = waiter_migrations::demo::DEMO_NUMBER)]
        number: String,
        #[arg(long, env = "DEMO_ACCOUNT_SID", default_value = waiter_migrations::demo::DEMO_ACCOUNT_SID)]
        account_sid: String,
        #[arg(long, env = "DEMO_AUTH_TOKEN", default_value = waiter_migrations::demo::DEMO_AUTH_TOKEN, hide_default_value = true, hide_env_values = true)]
        auth_token: String,
    },
    /// Restaurants, the older way (`restaurant` does more).
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
    /// List dead letters: stage, restaurant, recipient, reason, attempts, age.
    Dlq(dlq::DlqArgs),
    /// Send dead letters again (one by sequence, or all), keeping their trace ids.
    DlqRetry(dlq::RetryArgs),
    /// One customer message's journey through the stages, by its MessageSid.
    Trace(trace::TraceArgs),
    /// Run every stage and the Twilio simulator under supervision (`just up`).
    Up(supervise::UpArgs),
    /// Stop everything `up` started, from its pid files if it died.
    Down(supervise::DownArgs),
    /// Set a stage's number of replicas, up or down.
    Scale(supervise::ScaleArgs),
    /// What runs: one line per process, ready or not, lag per consumer.
    Ps(supervise::PsArgs),
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Out { json: cli.json };
    match cli.command {
        Command::Restaurant(cmd) => restaurant::run(cmd, out).await,
        Command::Branch(cmd) => branch::run(cmd, out).await,
        Command::Menu(cmd) => menu::run(cmd, out).await,
        Command::Templates(cmd) => templates::run(cmd, out).await,
        Command::Secrets(cmd) => secrets::run(cmd, out).await,
        Command::Customer(cmd) => customer::run(cmd, out).await,
        Command::Webhooks(cmd) => webhooks::run(cmd, out).await,
        Command::Migrate => database::migrate().await,
        Command::SeedDemo {
            number,
            account_sid,
            auth_token,
        } => database::seed_demo(&number, &account_sid, &auth_token, out).await,
        Command::Tenant(cmd) => tenants::run(cmd, out).await,
        Command::Jwt {
            restaurant,
            role,
            sub,
            hours,
            link,
            dashboard_url,
        } => {
            let pool = connect::pool().await?;
            let r = connect::restaurant(&pool, &restaurant).await?;
            let token = jwt::mint(r.id, &role, &sub, hours)?;
            match link {
                true => println!("{}", jwt::login_link(&dashboard_url, &token)),
                false => println!("{token}"),
            }
            Ok(())
        }
        Command::Replay(args) => replay::replay(args).await,
        Command::Dlq(args) => dlq::list(args, out).await,
        Command::DlqRetry(args) => dlq::retry(args).await,
        Command::Trace(args) => trace::trace(args, out).await,
        Command::Up(args) => supervise::up(args).await,
        Command::Down(args) => supervise::down(args, out).await,
        Command::Scale(args) => supervise::scale(args, out).await,
        Command::Ps(args) => supervise::ps(args, out).await,
    }
}

#[tokio::main]
async fn main() {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
