//! `twilio-sim`: the Twilio simulator as a process, for `just up`.
//!
//! Environment:
//! - `SIM_ADDR` (default `127.0.0.1:3999`)
//! - `SIM_WEBHOOK_URL` (default `http://127.0.0.1:8080/whatsapp/webhook`)
//! - `SIM_POST_URL` (optional: where to post when the webhook URL is a proxy's)
//! - `SIM_ACCOUNTS` — `AC…:token,AC…:token`
//! - `SIM_STATUS_CALLBACKS` — `off` | `in-order` | `shuffled` (default `in-order`)
//! - `SIM_ENFORCE_WINDOW` — `true` | `false` (default `true`)

use std::process::ExitCode;

use twilio_sim::{SimConfig, Simulator, StatusCallbackMode};
use waiter_runtime::{EnvReader, Shutdown};

/// Parses `AC…:token,AC…:token`; problems mention the SID, never the token.
fn parse_accounts(raw: &str, env: &mut EnvReader) -> Vec<(String, String)> {
    let mut accounts = Vec::new();
    for (index, entry) in raw.split(',').map(str::trim).enumerate() {
        if entry.is_empty() {
            continue;
        }
        match entry.split_once(':') {
            Some((sid, token)) if !sid.trim().is_empty() && !token.trim().is_empty() => {
                let sid = sid.trim();
                if !sid.starts_with("AC") {
                    env.problem(format!(
                        "SIM_ACCOUNTS entry {} has SID {sid:?}, which does not start with AC",
                        index + 1
                    ));
                }
                accounts.push((sid.to_string(), token.trim().to_string()));
            }
            _ => env.problem(format!(
                "SIM_ACCOUNTS entry {} is not AccountSid:AuthToken",
                index + 1
            )),
        }
    }
    accounts
}

fn config() -> Result<SimConfig, waiter_runtime::ConfigError> {
    let mut env = EnvReader::new();
    let addr = env.addr("SIM_ADDR", "127.0.0.1:3999");
    let webhook_url = env.string("SIM_WEBHOOK_URL", "http://127.0.0.1:8080/whatsapp/webhook");
    let post_url = env.optional("SIM_POST_URL");
    let accounts_raw = env.optional("SIM_ACCOUNTS").unwrap_or_default();
    let accounts = parse_accounts(&accounts_raw, &mut env);
    let status_callbacks = env.parse("SIM_STATUS_CALLBACKS", StatusCallbackMode::InOrder);
    let enforce_session_window = env.bool("SIM_ENFORCE_WINDOW", true);
    env.finish()?;
    Ok(SimConfig {
        addr,
        webhook_url,
        post_url,
        accounts,
        status_callbacks,
        enforce_session_window,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    waiter_runtime::telemetry::init("twilio-sim");
    let config = match config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if config.accounts.is_empty() {
        tracing::warn!("SIM_ACCOUNTS is empty: every Messages API call will get 401 until an account is added (POST /sim/accounts)");
    }
    // `SimConfig`'s Debug leaves the auth tokens out.
    tracing::info!(?config, "starting");

    let shutdown = Shutdown::install();
    let sim = match Simulator::start(config.clone(), shutdown.token()).await {
        Ok(sim) => sim,
        Err(e) => {
            tracing::error!("{e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("twilio-sim listening on {}", sim.base_url());
    println!("  Messages API (TWILIO_API_BASE): {}", sim.base_url());
    println!("  posting webhooks to:            {}", config.webhook_url);
    println!(
        "  sent messages:                  {}/sim/messages",
        sim.base_url()
    );
    shutdown.token().cancelled().await;
    tracing::info!("twilio-sim stopped");
    ExitCode::SUCCESS
}
