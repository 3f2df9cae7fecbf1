use std::{collections::HashMap, fmt, path::PathBuf, time::Duration};

use secrecy::{ExposeSecret, SecretString};

use crate::{
    streams::{Discard, StreamLimits},
    topology::{StreamKind, Topology},
    worker::WorkerConfig,
};

/// How a process reaches the bus and which namespace it lives in.
///
/// `WAITER_NAMESPACE` keeps deployments (and tests) that share one NATS
/// server apart: every stream, subject, consumer and bucket name carries it.
/// `WAITER_PARTITIONS` must be the same for every process of a deployment:
/// changing it remaps conversations to partitions, so drain first.
#[derive(Clone)]
pub struct BusConfig {
    /// May carry `user:password@`; printed only through [`redact_url`].
    pub url: String,
    pub namespace: String,
    pub partitions: u16,
    /// How long a publish waits for the PubAck before giving up.
    pub publish_timeout: Duration,
    /// Replicas for every stream: 1 on a single server, 3 on a cluster.
    pub replicas: usize,
    /// How long a delivered message may go unacknowledged before JetStream
    /// gives it to another replica (a replica killed mid-message holds its
    /// partition this long).
    pub ack_wait: Duration,
    pub auth: NatsAuth,
    pub tls: NatsTls,
    /// `max_bytes`, `max_msgs` and the discard policy of each stream.
    pub stream_limits: HashMap<StreamKind, StreamLimits>,
    /// How workers pull, retry and hold partitions (`WORKER_*`,
    /// `WAITER_REPLICA_ID`).
    pub worker: WorkerConfig,
}

/// How this process proves who it is to NATS. None: today's open server.
#[derive(Clone, Default)]
pub enum NatsAuth {
    #[default]
    None,
    UserPassword {
        user: String,
        password: SecretString,
    },
    Token(SecretString),
    /// A user NKey seed (`SU…`).
    NKey(SecretString),
    /// A `.creds` file (user JWT and seed), as `nsc` writes it.
    CredsFile(PathBuf),
}

impl NatsAuth {
    fn name(&self) -> &'static str {
        match self {
            NatsAuth::None => "none",
            NatsAuth::UserPassword { .. } => "user/password",
            NatsAuth::Token(_) => "token",
            NatsAuth::NKey(_) => "nkey",
            NatsAuth::CredsFile(_) => "creds file",
        }
    }
}

impl fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatsAuth::UserPassword { user, .. } => write!(f, "user/password ({user})"),
            NatsAuth::CredsFile(path) => write!(f, "creds file {}", path.display()),
            other => f.write_str(other.name()),
        }
    }
}

/// TLS towards NATS: a CA to trust (beyond the system's) and a client
/// certificate for servers that verify clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    pub required: bool,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl fmt::Debug for BusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusConfig")
            .field("url", &redact_url(&self.url))
            .field("namespace", &self.namespace)
            .field("partitions", &self.partitions)
            .field("publish_timeout", &self.publish_timeout)
            .field("replicas", &self.replicas)
            .field("ack_wait", &self.ack_wait)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// A NATS URL (or comma-separated list) with any password or token in it
/// replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let (scheme, rest) = match one.split_once("://") {
                Some((scheme, rest)) => (format!("{scheme}://"), rest),
                None => (String::new(), one),
            };
            let host_end = rest.find('/').unwrap_or(rest.len());
            match rest[..host_end].rfind('@') {
                Some(at) => {
                    let userinfo = &rest[..at];
                    let shown = match userinfo.split_once(':') {
                        Some((user, _)) => format!("{user}:***"),
                        None => "***".to_string(),
                    };
                    format!("{scheme}{shown}{}", &rest[at..])
                }
                None => one.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Every problem with the NATS settings, reported together.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn var(&mut self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }

    fn number<T: std::str::FromStr>(&mut self, name: &str, default: T) -> T {
        match self.var(name) {
            None => default,
            Some(raw) => raw.trim().parse().unwrap_or_else(|_| {
                self.0.push(format!("{name}={raw:?} is not a valid number"));
                default
            }),
        }
    }

    fn file(&mut self, name: &str) -> Option<PathBuf> {
        let path = PathBuf::from(self.var(name)?);
        if let Err(e) = std::fs::metadata(&path).and_then(|m| {
            m.is_file()
                .then_some(())
                .ok_or_else(|| std::io::Error::other("not a file"))
        }) {
            self.0
                .push(format!("{name}={}: cannot read it: {e}", path.display()));
        }
        Some(path)
    }
}

impl BusConfig {
    pub const DEFAULT_URL: &'static str = "nats://127.0.0.1:4222";
    pub const DEFAULT_NAMESPACE: &'static str = "waiter";
    /// Eight: on the two-core machine the bench runs on, 4 and 8 partitions
    /// answered more (377 and 325 msg/s against 304 with 16) with a
    /// shorter tail at 150 /s (p99.9 154 and 159 ms against 280–319 ms):
    /// fewer partitions fill bigger windows. Eight leaves room for eight
    /// replicas of a stage (docs/PERFORMANCE.md, round five).
    pub const DEFAULT_PARTITIONS: u16 = 8;

    /// Reads `NATS_URL`, `WAITER_NAMESPACE`, `WAITER_PARTITIONS`,
    /// `NATS_PUBLISH_TIMEOUT_MS`, `NATS_STREAM_REPLICAS`, `NATS_ACK_WAIT_MS`,
    /// the credentials (`NATS_USER` + `NATS_PASSWORD`, `NATS_TOKEN`,
    /// `NATS_NKEY_SEED` or `NATS_NKEY_SEED_FILE`, `NATS_CREDS_FILE`: at most
    /// one), TLS (`NATS_TLS_REQUIRED`, `NATS_TLS_CA_FILE`,
    /// `NATS_TLS_CERT_FILE` + `NATS_TLS_KEY_FILE`) and each stream's limits
    /// (`NATS_STREAM_<INGEST|CONV|ORDER|OUTBOUND|EVENTS|DLQ|TENANTS>_MAX_BYTES`,
    /// `…_MAX_MSGS`, `…_DISCARD`) and the worker settings
    /// ([`WorkerConfig::from_env`]). Every problem is reported at once; no
    /// secret is ever part of a message.
    pub fn from_env() -> Result<Self, String> {
        let mut p = Problems::default();
        let worker = WorkerConfig::from_env().unwrap_or_else(|problems| {
            p.0.extend(problems);
            WorkerConfig::default()
        });
        let url = p
            .var("NATS_URL")
            .unwrap_or_else(|| Self::DEFAULT_URL.to_string());
        let namespace = p
            .var("WAITER_NAMESPACE")
            .unwrap_or_else(|| Self::DEFAULT_NAMESPACE.to_string());
        if let Err(e) = Topology::validate_namespace(&namespace) {
            p.0.push(e);
        }
        let partitions = p.number("WAITER_PARTITIONS", Self::DEFAULT_PARTITIONS);
        if partitions == 0 || partitions > 1024 {
            p.0.push(format!(
                "WAITER_PARTITIONS must be between 1 and 1024, got {partitions}"
            ));
        }
        let timeout_ms: u64 = p.number("NATS_PUBLISH_TIMEOUT_MS", 5_000);
        let replicas: usize = p.number("NATS_STREAM_REPLICAS", 1);
        if !(1..=5).contains(&replicas) {
            p.0.push(format!(
                "NATS_STREAM_REPLICAS must be between 1 and 5, got {replicas}"
            ));
        }
        let ack_wait_ms: u64 = p.number("NATS_ACK_WAIT_MS", 30_000);
        if ack_wait_ms < 1_000 {
            p.0.push(format!(
                "NATS_ACK_WAIT_MS must be at least 1000, got {ack_wait_ms}"
            ));
        }
        let auth = read_auth(&mut p, &url);
        let tls = read_tls(&mut p, &url);
        let stream_limits = StreamKind::ALL
            .into_iter()
            .map(|kind| (kind, read_limits(&mut p, kind)))
            .collect();
        if !p.0.is_empty() {
            return Err(p.0.join("\n  - "));
        }
        Ok(Self {
            url,
            namespace,
            partitions,
            publish_timeout: Duration::from_millis(timeout_ms),
            replicas,
            ack_wait: Duration::from_millis(ack_wait_ms),
            auth,
            tls,
            stream_limits,
            worker,
        })
    }

    /// A configuration for a local server and the given namespace (tests,
    /// tools): no credentials, small stream limits (JetStream reserves
    /// `max_bytes` of its store for each stream, and tests run side by side).
    pub fn local(namespace: &str, partitions: u16) -> Self {
        Self {
            url: std::env::var("NATS_URL").unwrap_or_else(|_| Self::DEFAULT_URL.to_string()),
            namespace: namespace.to_string(),
            partitions,
            publish_timeout: Duration::from_secs(5),
            replicas: 1,
            ack_wait: crate::streams::ACK_WAIT,
            auth: NatsAuth::None,
            tls: NatsTls::default(),
            stream_limits: StreamKind::ALL
                .into_iter()
                .map(|kind| (kind, StreamLimits::for_tests(kind)))
                .collect(),
            worker: WorkerConfig::default(),
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.namespace, self.partitions)
    }

    /// The limits of one stream.
    pub fn limits(&self, kind: StreamKind) -> StreamLimits {
        self.stream_limits
            .get(&kind)
            .copied()
            .unwrap_or_else(|| StreamLimits::default_for(kind))
    }

    /// The URL safe to print.
    pub fn display_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The connect options for these credentials and TLS settings.
    pub(crate) async fn connect_options(
        &self,
        client_name: &str,
    ) -> Result<async_nats::ConnectOptions, String> {
        let mut options = match &self.auth {
            NatsAuth::None => async_nats::ConnectOptions::new(),
            NatsAuth::UserPassword { user, password } => {
                async_nats::ConnectOptions::with_user_and_password(
                    user.clone(),
                    password.expose_secret().to_string(),
                )
            }
            NatsAuth::Token(token) => {
                async_nats::ConnectOptions::with_token(token.expose_secret().to_string())
            }
            NatsAuth::NKey(seed) => {
                async_nats::ConnectOptions::with_nkey(seed.expose_secret().to_string())
            }
            NatsAuth::CredsFile(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| format!("NATS_CREDS_FILE={}: {e}", path.display()))?,
        };
        if self.tls.required {
            options = options.require_tls(true);
        }
        if let Some(ca) = &self.tls.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls.client_cert {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(options.name(client_name))
    }
}

fn read_auth(p: &mut Problems, url: &str) -> NatsAuth {
    let mut chosen: Vec<NatsAuth> = vec![];
    match (p.var("NATS_USER"), p.var("NATS_PASSWORD")) {
        (Some(user), Some(password)) => chosen.push(NatsAuth::UserPassword {
            user,
            password: SecretString::from(password),
        }),
        (None, None) => {}
        _ => {
            p.0.push("NATS_USER and NATS_PASSWORD come together".to_string())
        }
    }
    if let Some(token) = p.var("NATS_TOKEN") {
        chosen.push(NatsAuth::Token(SecretString::from(token)));
    }
    let seed = match (p.var("NATS_NKEY_SEED"), p.file("NATS_NKEY_SEED_FILE")) {
        (Some(_), Some(_)) => {
            p.0.push("set NATS_NKEY_SEED or NATS_NKEY_SEED_FILE, not both".to_string());
            None
        }
        (Some(seed), None) => Some(seed),
        (None, Some(path)) => std::fs::read_to_string(&path).ok(),
        (None, None) => None,
    };
    if let Some(seed) = seed {
        let seed = seed.trim().to_string();
        if !seed.starts_with("SU") {
            p.0.push("the NATS NKey seed must be a user seed (it starts with SU)".to_string());
        }
        chosen.push(NatsAuth::NKey(SecretString::from(seed)));
    }
    if let Some(path) = p.file("NATS_CREDS_FILE") {
        chosen.push(NatsAuth::CredsFile(path));
    }
    let url_has_credentials = url.split(',').any(|one| {
        let rest = one.split_once("://").map_or(one, |(_, r)| r);
        rest[..rest.find('/').unwrap_or(rest.len())].contains('@')
    });
    if url_has_credentials && !chosen.is_empty() {
        p.0.push(format!(
            "NATS_URL={} carries credentials and {} is set as well: use one",
            redact_url(url),
            chosen[0].name()
        ));
    }
    if chosen.len() > 1 {
        let names: Vec<&str> = chosen.iter().map(NatsAuth::name).collect();
        p.0.push(format!(
            "more than one NATS credential is set ({}): use one",
            names.join(", ")
        ));
    }
    chosen.pop().unwrap_or_default()
}

fn read_tls(p: &mut Problems, url: &str) -> NatsTls {
    let required = match p.var("NATS_TLS_REQUIRED").map(|v| v.to_ascii_lowercase()) {
        None => false,
        Some(v) if ["1", "true", "on", "yes"].contains(&v.as_str()) => true,
        Some(v) if ["0", "false", "off", "no"].contains(&v.as_str()) => false,
        Some(v) => {
            p.0.push(format!("NATS_TLS_REQUIRED={v:?} is not a boolean"));
            false
        }
    } || url.starts_with("tls://");
    let ca_file = p.file("NATS_TLS_CA_FILE");
    let client_cert = match (p.file("NATS_TLS_CERT_FILE"), p.file("NATS_TLS_KEY_FILE")) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            p.0.push("NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE come together".to_string());
            None
        }
    };
    NatsTls {
        required: required || ca_file.is_some() || client_cert.is_some(),
        ca_file,
        client_cert,
    }
}

fn read_limits(p: &mut Problems, kind: StreamKind) -> StreamLimits {
    let default = StreamLimits::default_for(kind);
    let prefix = format!("NATS_STREAM_{}", kind.env_token());
    let bytes_name = format!("{prefix}_MAX_BYTES");
    let max_bytes = match p.var(&bytes_name) {
        None => default.max_bytes,
        Some(raw) => parse_size(&raw).unwrap_or_else(|| {
            p.0.push(format!(
                "{bytes_name}={raw:?} is not a size (bytes, or with K, M or G: 512M, 2G)"
            ));
            default.max_bytes
        }),
    };
    let max_messages = p.number(&format!("{prefix}_MAX_MSGS"), default.max_messages);
    if max_bytes < 1024 * 1024 || max_messages < 1 {
        p.0.push(format!(
            "{prefix}: MAX_BYTES must be at least 1M and MAX_MSGS at least 1 (got {max_bytes}, {max_messages})"
        ));
    }
    let discard_name = format!("{prefix}_DISCARD");
    let discard = match p.var(&discard_name).map(|v| v.to_ascii_lowercase()) {
        None => default.discard,
        Some(v) if v == "old" => Discard::Old,
        Some(v) if v == "new" => Discard::New,
        Some(v) => {
            p.0.push(format!("{discard_name}={v:?} must be old or new"));
            default.discard
        }
    };
    StreamLimits {
        max_bytes,
        max_messages,
        discard,
    }
}

/// `1048576`, `512K`, `64M`, `2G` (binary multiples).
fn parse_size(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    let upper = raw.to_ascii_uppercase();
    let trimmed = upper.trim_end_matches("IB").trim_end_matches('B');
    let (digits, multiple) = match trimmed.chars().last()? {
        'K' => (&trimmed[..trimmed.len() - 1], 1i64 << 10),
        'M' => (&trimmed[..trimmed.len() - 1], 1 << 20),
        'G' => (&trimmed[..trimmed.len() - 1], 1 << 30),
        'T' => (&trimmed[..trimmed.len() - 1], 1 << 40),
        _ => (trimmed, 1),
    };
    digits.trim().parse::<i64>().ok()?.checked_mul(multiple)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_printed_without_their_secrets() {
        assert_eq!(
            redact_url("nats://ingest:s3cret@nats.internal:4222"),
            "nats://ingest:***@nats.internal:4222"
        );
        assert_eq!(redact_url("nats://t0ken@h:4222"), "nats://***@h:4222");
        assert_eq!(
            redact_url("tls://a:p@h1:4222,nats://h2:4222"),
            "tls://a:***@h1:4222,nats://h2:4222"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        let mut config = BusConfig::local("t", 4);
        config.url = "nats://u:hunter2@h:1".into();
        config.auth = NatsAuth::Token(SecretString::from("tok-123".to_string()));
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("tok-123"),
            "{shown}"
        );
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("64mb"), Some(64 << 20));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size(""), None);
    }

    /// The only test of this crate that touches the environment.
    #[test]
    fn credentials_and_limits_are_validated_together() {
        let clear = || {
            for name in [
                "NATS_USER",
                "NATS_PASSWORD",
                "NATS_TOKEN",
                "NATS_NKEY_SEED",
                "NATS_CREDS_FILE",
                "NATS_TLS_CERT_FILE",
                "NATS_STREAM_INGEST_MAX_BYTES",
                "NATS_STREAM_EVENTS_DISCARD",
                "NATS_STREAM_DLQ_MAX_MSGS",
            ] {
                std::env::remove_var(name);
            }
        };
        clear();
        let config = BusConfig::from_env().unwrap();
        assert!(matches!(config.auth, NatsAuth::None), "today's behaviour");
        assert_eq!(
            config.limits(StreamKind::Ingest),
            StreamLimits::default_for(StreamKind::Ingest)
        );

        std::env::set_var("NATS_USER", "ingest");
        std::env::set_var("NATS_TOKEN", "secret-token-value");
        std::env::set_var("NATS_CREDS_FILE", "/nonexistent/ingest.creds");
        std::env::set_var("NATS_TLS_CERT_FILE", "/nonexistent/cert.pem");
        std::env::set_var("NATS_STREAM_INGEST_MAX_BYTES", "huge");
        std::env::set_var("NATS_STREAM_EVENTS_DISCARD", "sometimes");
        std::env::set_var("NATS_STREAM_DLQ_MAX_MSGS", "0");
        let err = BusConfig::from_env().unwrap_err();
        for expected in [
            "NATS_USER and NATS_PASSWORD come together",
            "NATS_CREDS_FILE=/nonexistent/ingest.creds: cannot read it",
            "more than one NATS credential",
            "NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE come together",
            "NATS_STREAM_INGEST_MAX_BYTES=\"huge\" is not a size",
            "NATS_STREAM_EVENTS_DISCARD=\"sometimes\" must be old or new",
            "NATS_STREAM_DLQ: MAX_BYTES must be at least 1M and MAX_MSGS at least 1",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
        assert!(!err.contains("secret-token-value"), "{err}");

        clear();
        std::env::set_var("NATS_STREAM_INGEST_MAX_BYTES", "64M");
        std::env::set_var("NATS_STREAM_EVENTS_DISCARD", "new");
        let config = BusConfig::from_env().unwrap();
        assert_eq!(config.limits(StreamKind::Ingest).max_bytes, 64 << 20);
        assert_eq!(config.limits(StreamKind::Events).discard, Discard::New);
        clear();
    }
}
