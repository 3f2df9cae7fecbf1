//! A Twilio stand-in that speaks Twilio's real wire formats on both sides.
//!
//! As the customer it posts signed, form-encoded WhatsApp webhooks to
//! Waiter's ingest (see [`Simulator::send_inbound`]). As Twilio's Messages
//! API it takes Waiter's outbound sends (`POST
//! /2010-04-01/Accounts/{AccountSid}/Messages.json`) with Basic auth,
//! validation, Twilio's error codes, injected faults and the WhatsApp
//! 24-hour window, and then posts signed status callbacks.
//!
//! Tests run it in-process on port 0; `just up` runs the `twilio-sim`
//! binary. It is a real HTTP server and a real HTTP client: nothing is
//! mocked.

pub mod api;
mod callbacks;
pub mod customer;
mod server;
pub mod signature;
mod state;

use std::{net::SocketAddr, str::FromStr, sync::Arc, time::Duration};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use api::{ApiError, ApiRequest, Fault, Misbehaviour, SentMessage};
pub use customer::{InboundSpec, WebhookError, WebhookResult};

use state::State;

/// Which status callbacks follow an accepted message that names a
/// `StatusCallback`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatusCallbackMode {
    /// None.
    Off,
    /// `sent`, `delivered`, `read`, in that order.
    #[default]
    InOrder,
    /// The same three in a random order, as Twilio warns can happen.
    Shuffled,
}

impl FromStr for StatusCallbackMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" | "false" => Ok(StatusCallbackMode::Off),
            "in-order" | "in_order" | "inorder" | "on" | "true" => Ok(StatusCallbackMode::InOrder),
            "shuffled" | "shuffle" | "random" => Ok(StatusCallbackMode::Shuffled),
            other => Err(format!(
                "unknown status callback mode {other:?} (off | in-order | shuffled)"
            )),
        }
    }
}

/// How to run the simulator.
#[derive(Clone)]
pub struct SimConfig {
    /// Where to listen; `127.0.0.1:0` in tests.
    pub addr: SocketAddr,
    /// The public URL of Waiter's inbound webhook: posted to and signed over.
    pub webhook_url: String,
    /// Where to actually post when Waiter sits behind a proxy (the signature
    /// still covers `webhook_url`); `None` posts to `webhook_url`.
    pub post_url: Option<String>,
    /// `(AccountSid, AuthToken)` pairs.
    pub accounts: Vec<(String, String)>,
    pub status_callbacks: StatusCallbackMode,
    /// Refuse free-form sends (no ContentSid) to a customer whose last
    /// inbound to that business number is older than 24 h, or who never
    /// wrote, with error 63016.
    pub enforce_session_window: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            webhook_url: "http://127.0.0.1:8080/whatsapp/webhook".to_string(),
            post_url: None,
            accounts: Vec::new(),
            status_callbacks: StatusCallbackMode::InOrder,
            enforce_session_window: true,
        }
    }
}

impl std::fmt::Debug for SimConfig {
    /// Auth tokens are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let accounts: Vec<&str> = self.accounts.iter().map(|(sid, _)| sid.as_str()).collect();
        f.debug_struct("SimConfig")
            .field("addr", &self.addr)
            .field("webhook_url", &self.webhook_url)
            .field("post_url", &self.post_url)
            .field("accounts", &accounts)
            .field("status_callbacks", &self.status_callbacks)
            .field("enforce_session_window", &self.enforce_session_window)
            .finish()
    }
}

/// What the routes and background tasks share.
pub(crate) struct Core {
    pub(crate) state: State,
    pub(crate) client: reqwest::Client,
    pub(crate) status_callbacks: StatusCallbackMode,
    pub(crate) enforce_session_window: bool,
    pub(crate) shutdown: CancellationToken,
}

/// `prefix` + 32 lowercase hex digits, the shape of every Twilio SID.
pub(crate) fn new_sid(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A running simulator. Cheap to clone; it stops when the shutdown token
/// given to [`Simulator::start`] is cancelled.
#[derive(Clone)]
pub struct Simulator {
    core: Arc<Core>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Binds `config.addr` and serves until `shutdown` is cancelled.
    pub async fn start(
        config: SimConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Simulator> {
        let client = reqwest::Client::builder()
            .timeout(customer::WEBHOOK_TIMEOUT)
            .connect_timeout(customer::WEBHOOK_CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client")?;
        let core = Arc::new(Core {
            state: State::new(config.webhook_url, config.post_url, config.accounts),
            client,
            status_callbacks: config.status_callbacks,
            enforce_session_window: config.enforce_session_window,
            shutdown: shutdown.child_token(),
        });
        let (addr, server) = warp::serve(server::routes(core.clone()))
            .try_bind_with_graceful_shutdown(config.addr, shutdown.cancelled_owned())
            .with_context(|| format!("binding the Twilio simulator to {}", config.addr))?;
        tokio::spawn(server);
        tracing::info!(%addr, "twilio simulator listening");
        Ok(Simulator { core, addr })
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT`, to be used as Waiter's `TWILIO_API_BASE`.
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        format!("http://{addr}")
    }

    pub fn add_account(&self, sid: &str, token: &str) {
        self.core
            .state
            .add_account(sid.to_string(), token.to_string());
    }

    /// Sets the public webhook URL (tests start ingest after the simulator).
    pub fn set_webhook_url(&self, url: &str) {
        self.core.state.set_webhook_url(url.to_string());
    }

    /// Sets (or with `None` clears) the proxy-side URL to post to.
    pub fn set_post_url(&self, url: Option<&str>) {
        self.core.state.set_post_url(url.map(str::to_string));
    }

    // ---- customer side ----

    /// Posts an inbound WhatsApp message to the webhook as Twilio would
    /// (signed over `webhook_url`), and opens the customer's 24-hour window.
    pub async fn send_inbound(&self, msg: InboundSpec) -> anyhow::Result<WebhookResult> {
        Ok(self.core.send_inbound(msg).await?)
    }

    /// Posts `params` as they are to `path_or_url` (a path is resolved
    /// against the webhook target) with `signature` as `X-Twilio-Signature`,
    /// or no such header when `None`. If the form has `From` and `To` it
    /// counts as an inbound message for the 24-hour window.
    pub async fn post_webhook_raw(
        &self,
        path_or_url: &str,
        params: Vec<(String, String)>,
        signature: Option<String>,
    ) -> anyhow::Result<WebhookResult> {
        Ok(self
            .core
            .post_webhook_raw(path_or_url, params, signature)
            .await?)
    }

    /// The signature Twilio would send for `params` posted to `url` on
    /// behalf of `account_sid`. An unknown account signs with an empty
    /// token, which no validator holding a real token accepts.
    pub fn signed_params(
        &self,
        account_sid: &str,
        url: &str,
        params: &[(String, String)],
    ) -> String {
        let token = self.core.state.token(account_sid).unwrap_or_default();
        signature::sign(&token, url, params)
    }

    /// Pretends the customer's last inbound message to `business` arrived
    /// at `at` (`None`: never), to test the 24-hour window without waiting.
    pub fn set_last_inbound(&self, business: &str, customer: &str, at: Option<DateTime<Utc>>) {
        self.core.state.set_last_inbound(business, customer, at);
    }

    // ---- Messages API side ----

    /// Every message the Messages API accepted, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.core.state.sent()
    }

    /// The accepted messages to one recipient (`whatsapp:+…`), in order.
    pub fn sent_to(&self, to: &str) -> Vec<SentMessage> {
        self.core.state.sent_to(to)
    }

    /// Waits until at least `count` messages to `to` were accepted, or
    /// `timeout` passed; returns what there is either way.
    pub async fn wait_for_sent(
        &self,
        to: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<SentMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.core.state.sent_changed.notified();
            tokio::pin!(changed);
            // Register before looking, so a send in between is not missed.
            changed.as_mut().enable();
            let found = self.sent_to(to);
            if found.len() >= count {
                return found;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.sent_to(to);
            }
        }
    }

    /// Queues a fault: the next `fault.times` sends (to `fault.to` only,
    /// if set) fail with its status and code.
    pub fn inject_fault(&self, fault: Fault) {
        self.core.state.add_fault(fault);
    }

    /// Queues a misbehaviour: the next requests are answered slowly, or
    /// their connection is dropped (see [`Misbehaviour`]).
    pub fn misbehave(&self, misbehaviour: Misbehaviour) {
        self.core.state.add_misbehaviour(misbehaviour);
    }

    /// Every Messages API request, refused ones included, in order.
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.core.state.requests()
    }
}
