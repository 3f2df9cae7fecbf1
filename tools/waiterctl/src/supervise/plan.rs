//! What `waiterctl up` runs: the stages, their ports, their environment,
//! and where their logs and pid files go.

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// The processes `up` supervises. The Twilio simulator is not a stage but
/// runs beside them, so the demo works without a Twilio account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Ingest,
    Router,
    Conversation,
    Order,
    Outbound,
    Notifier,
    TwilioSim,
}

impl Stage {
    /// The simulator first (ingest's readiness does not need it, but
    /// outbound sends to it); `STOP_ORDER` stops the entry first, so no new
    /// webhook arrives while the rest drains, and the simulator last.
    pub const START_ORDER: [Stage; 7] = [
        Stage::TwilioSim,
        Stage::Ingest,
        Stage::Router,
        Stage::Conversation,
        Stage::Order,
        Stage::Outbound,
        Stage::Notifier,
    ];
    pub const STOP_ORDER: [Stage; 7] = [
        Stage::Ingest,
        Stage::Router,
        Stage::Conversation,
        Stage::Order,
        Stage::Outbound,
        Stage::Notifier,
        Stage::TwilioSim,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Router => "router",
            Stage::Conversation => "conversation",
            Stage::Order => "order",
            Stage::Outbound => "outbound",
            Stage::Notifier => "notifier",
            Stage::TwilioSim => "twilio-sim",
        }
    }

    pub fn parse(name: &str) -> Option<Stage> {
        Stage::START_ORDER.into_iter().find(|s| s.name() == name)
    }

    /// The cargo package and binary.
    pub fn binary(self) -> &'static str {
        self.name()
    }

    /// Whether `just scale` may run several (the simulator stands for one
    /// Twilio).
    pub fn scalable(self) -> bool {
        self != Stage::TwilioSim
    }

    /// The variable naming the stage's own ops listen address.
    fn ops_addr_var(self) -> Option<&'static str> {
        match self {
            Stage::Ingest => Some("INGEST_OPS_ADDR"),
            Stage::Router => Some("ROUTER_OPS_ADDR"),
            Stage::Conversation => Some("CONVERSATION_OPS_ADDR"),
            Stage::Order => Some("ORDER_OPS_ADDR"),
            Stage::Outbound => Some("OUTBOUND_OPS_ADDR"),
            Stage::Notifier => Some("NOTIFIER_OPS_ADDR"),
            Stage::TwilioSim => None,
        }
    }
}

/// Replica `n` (from 1) of a stage listens for ops on its base port plus
/// `REPLICA_PORT_STRIDE * (n - 1)`: the default bases 9101–9106 are
/// consecutive, so replicas of different stages never meet.
pub const REPLICA_PORT_STRIDE: u16 = 10;
/// The most replicas of one stage `just scale` starts.
pub const MAX_REPLICAS: u32 = 32;

/// The ports and addresses of a deployment, from the same variables the
/// justfile exports.
#[derive(Debug, Clone, clap::Args)]
pub struct Ports {
    /// Twilio's webhooks (every ingest replica).
    #[arg(long, env = "INGEST_PORT", default_value_t = 8080)]
    pub ingest_port: u16,
    /// The dashboard and its API (every notifier replica).
    #[arg(long, env = "NOTIFIER_PORT", default_value_t = 8090)]
    pub notifier_port: u16,
    #[arg(long, env = "SIM_PORT", default_value_t = 3999)]
    pub sim_port: u16,
    #[arg(long, env = "ROUTER_OPS_PORT", default_value_t = 9101)]
    pub router_ops_port: u16,
    #[arg(long, env = "CONVERSATION_OPS_PORT", default_value_t = 9102)]
    pub conversation_ops_port: u16,
    #[arg(long, env = "ORDER_OPS_PORT", default_value_t = 9103)]
    pub order_ops_port: u16,
    #[arg(long, env = "OUTBOUND_OPS_PORT", default_value_t = 9104)]
    pub outbound_ops_port: u16,
    #[arg(long, env = "INGEST_OPS_PORT", default_value_t = 9105)]
    pub ingest_ops_port: u16,
    #[arg(long, env = "NOTIFIER_OPS_PORT", default_value_t = 9106)]
    pub notifier_ops_port: u16,
    /// Where Twilio reaches ingest (signatures are computed over it).
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
}

impl Ports {
    /// Where replica `n` of `stage` answers `/health`, `/ready`, `/status`.
    pub fn ops_port(&self, stage: Stage, n: u32) -> u16 {
        let base = match stage {
            Stage::Ingest => self.ingest_ops_port,
            Stage::Router => self.router_ops_port,
            Stage::Conversation => self.conversation_ops_port,
            Stage::Order => self.order_ops_port,
            Stage::Outbound => self.outbound_ops_port,
            Stage::Notifier => self.notifier_ops_port,
            Stage::TwilioSim => return self.sim_port,
        };
        base + REPLICA_PORT_STRIDE * (n.saturating_sub(1) as u16)
    }

    /// The defaults the flags have, for tests that need a plan.
    #[cfg(test)]
    pub(crate) fn defaults() -> Ports {
        Ports {
            ingest_port: 8080,
            notifier_port: 8090,
            sim_port: 3999,
            router_ops_port: 9101,
            conversation_ops_port: 9102,
            order_ops_port: 9103,
            outbound_ops_port: 9104,
            ingest_ops_port: 9105,
            notifier_ops_port: 9106,
            public_url: None,
        }
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{}", self.ingest_port))
            .trim_end_matches('/')
            .to_string()
    }

    /// The ports replica `n` of `stage` binds, for the check that they are
    /// free before it starts (a shared public port only for the first).
    pub fn ports_of(&self, stage: Stage, n: u32) -> Vec<u16> {
        let mut ports = vec![self.ops_port(stage, n)];
        if n == 1 {
            match stage {
                Stage::Ingest => ports.push(self.ingest_port),
                Stage::Notifier => ports.push(self.notifier_port),
                _ => {}
            }
        }
        ports
    }

    /// The variables replica `n` of `stage` gets on top of the supervisor's
    /// own environment.
    pub fn env_of(&self, stage: Stage, n: u32, demo: &Demo) -> Vec<(String, String)> {
        let mut env = vec![(
            "TWILIO_API_BASE".to_string(),
            format!("http://127.0.0.1:{}", self.sim_port),
        )];
        let ops = self.ops_port(stage, n);
        match stage {
            Stage::TwilioSim => {
                env.push(("SIM_ADDR".into(), format!("127.0.0.1:{}", self.sim_port)));
                env.push((
                    "SIM_WEBHOOK_URL".into(),
                    format!("{}/whatsapp/webhook", self.public_url()),
                ));
                env.push((
                    "SIM_ACCOUNTS".into(),
                    format!("{}:{}", demo.account_sid, demo.auth_token),
                ));
                return env;
            }
            Stage::Ingest => {
                env.push((
                    "INGEST_ADDR".into(),
                    format!("0.0.0.0:{}", self.ingest_port),
                ));
                env.push(("PUBLIC_URL".into(), self.public_url()));
            }
            Stage::Notifier => {
                env.push((
                    "NOTIFIER_ADDR".into(),
                    format!("0.0.0.0:{}", self.notifier_port),
                ));
            }
            _ => {}
        }
        if let Some(var) = stage.ops_addr_var() {
            env.push((var.to_string(), format!("0.0.0.0:{ops}")));
        }
        env.push(("WAITER_REPLICA_ID".into(), replica_id(stage, n)));
        env
    }
}

/// `conversation-2`: the replica's identity on the lease stream and in
/// `just ps`; a restarted replica keeps it.
pub fn replica_id(stage: Stage, n: u32) -> String {
    format!("{}-{n}", stage.name())
}

/// The demo restaurant's Twilio account, which the simulator stands for.
#[derive(Debug, Clone, clap::Args)]
pub struct Demo {
    #[arg(long, env = "DEMO_NUMBER", default_value = waiter_migrations::demo::DEMO_NUMBER)]
    pub number: String,
    #[arg(long, env = "DEMO_ACCOUNT_SID", default_value = waiter_migrations::demo::DEMO_ACCOUNT_SID)]
    pub account_sid: String,
    #[arg(long, env = "DEMO_AUTH_TOKEN", default_value = waiter_migrations::demo::DEMO_AUTH_TOKEN, hide_default_value = true, hide_env_values = true)]
    pub auth_token: String,
}

/// A port some other process holds, with the plain bind's error.
pub fn port_taken(port: u16) -> Option<std::io::Error> {
    TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port))).err()
}

/// The run directory's layout (`.run/` by default).
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn pids(&self) -> PathBuf {
        self.root.join("pids")
    }

    pub fn log_of(&self, replica: &str) -> PathBuf {
        self.logs().join(format!("{replica}.log"))
    }

    pub fn pid_of(&self, replica: &str) -> PathBuf {
        self.pids().join(format!("{replica}.pid"))
    }

    pub fn supervisor_pid(&self) -> PathBuf {
        self.pids().join("supervisor.pid")
    }

    /// The control socket (`scale`, `down`).
    pub fn socket(&self) -> PathBuf {
        self.root.join("supervisor.sock")
    }

    /// What is running, rewritten on every change (`ps` reads it).
    pub fn state(&self) -> PathBuf {
        self.root.join("supervisor.json")
    }

    pub fn secret_key(&self) -> PathBuf {
        self.root.join("secret.key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_of_different_stages_never_share_an_ops_port() {
        let ports = Ports::defaults();
        let mut seen = std::collections::HashSet::new();
        for stage in Stage::START_ORDER.into_iter().filter(|s| s.scalable()) {
            for n in 1..=MAX_REPLICAS {
                assert!(seen.insert(ports.ops_port(stage, n)), "{stage:?} {n}");
            }
        }
        assert_eq!(ports.ops_port(Stage::Conversation, 3), 9122);
    }

    #[test]
    fn only_the_first_replica_claims_the_shared_public_port() {
        let ports = Ports::defaults();
        assert_eq!(ports.ports_of(Stage::Ingest, 1), [9105, 8080]);
        assert_eq!(ports.ports_of(Stage::Ingest, 2), [9115]);
        let demo = Demo {
            number: "whatsapp:+1".into(),
            account_sid: "AC1".into(),
            auth_token: "t".into(),
        };
        let env = ports.env_of(Stage::Ingest, 2, &demo);
        assert!(env.contains(&("INGEST_ADDR".into(), "0.0.0.0:8080".into())));
        assert!(env.contains(&("INGEST_OPS_ADDR".into(), "0.0.0.0:9115".into())));
        assert!(env.contains(&("WAITER_REPLICA_ID".into(), "ingest-2".into())));
    }
}
