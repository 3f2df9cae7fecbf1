//! Who may open a WebSocket: the `Origin` check and the socket caps.
//!
//! Pure, apart from the counters: no I/O.
//!
//! - A handshake whose `Origin` is not in `NOTIFIER_ALLOWED_ORIGINS` is
//!   refused (403) before its token is even looked at, so a page on another
//!   site cannot ride on a dashboard user's credentials. A client that sends
//!   no `Origin` (a server-side tool; browsers always send one) is allowed.
//! - Sockets are capped per user — the token's `(restaurant_id, sub)`, so
//!   two restaurants that name their users alike never share a cap — (429)
//!   and in total (503): an opened socket holds a [`SocketPermit`] until it
//!   closes.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use uuid::Uuid;
use warp::http::Uri;

use crate::auth::Principal;

/// The origins browsers may open sockets from, normalised
/// (`scheme://host[:port]`, lowercase, default ports dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    /// A comma-separated list of origins (`NOTIFIER_ALLOWED_ORIGINS`).
    pub fn parse_list(raw: &str) -> Result<AllowedOrigins, String> {
        let mut origins = vec![];
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            // `scheme://host:*`: that host on any port (development setups
            // where a proxy or a test harness picks the port).
            if let Some(base) = item.strip_suffix(":*") {
                match normalize(base) {
                    Some(base) => origins.push(format!("{base}:*")),
                    None => {
                        return Err(format!(
                            "NOTIFIER_ALLOWED_ORIGINS: {item:?} is not an origin pattern (scheme://host:*)"
                        ))
                    }
                }
                continue;
            }
            match normalize(item) {
                Some(origin) => origins.push(origin),
                None => {
                    return Err(format!(
                        "NOTIFIER_ALLOWED_ORIGINS: {item:?} is not an origin (scheme://host[:port], http or https, no path)"
                    ))
                }
            }
        }
        if origins.is_empty() {
            return Err("NOTIFIER_ALLOWED_ORIGINS is empty".into());
        }
        Ok(AllowedOrigins(origins))
    }

    /// The origin of a public URL (`NOTIFIER_PUBLIC_URL`), whose path is
    /// ignored.
    pub fn of_url(url: &str) -> Result<AllowedOrigins, String> {
        let uri: Uri = url
            .parse()
            .map_err(|_| format!("NOTIFIER_PUBLIC_URL={url:?} is not a URL"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(format!(
                "NOTIFIER_PUBLIC_URL={url:?} must be absolute (http://host:port)"
            ));
        };
        normalize(&format!("{scheme}://{authority}"))
            .map(|origin| AllowedOrigins(vec![origin]))
            .ok_or_else(|| format!("NOTIFIER_PUBLIC_URL={url:?} must be an http or https URL"))
    }

    /// The notifier's own origin when no public URL is configured: its
    /// listening address over plain HTTP, as `localhost` and `127.0.0.1`
    /// when it listens on every interface.
    pub fn local(addr: SocketAddr) -> AllowedOrigins {
        let port = addr.port();
        let mut origins = vec![];
        let ip = addr.ip();
        if ip.is_unspecified() || ip.is_loopback() {
            origins.push(format!("http://127.0.0.1:{port}"));
            origins.push(format!("http://localhost:{port}"));
        } else {
            let host = match ip {
                std::net::IpAddr::V4(v4) => v4.to_string(),
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            };
            origins.push(format!("http://{host}:{port}"));
        }
        AllowedOrigins(
            origins
                .iter()
                .filter_map(|origin| normalize(origin))
                .collect(),
        )
    }

    /// Whether a handshake with this `Origin` header may go on.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(origin) => normalize(origin).is_some_and(|o| {
                self.0
                    .iter()
                    .any(|allowed| match allowed.strip_suffix(":*") {
                        Some(base) => o
                            .strip_prefix(base)
                            .and_then(|rest| rest.strip_prefix(':'))
                            .is_some_and(|port| port.parse::<u16>().is_ok()),
                        None => *allowed == o,
                    })
            }),
        }
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// `scheme://host[:port]` in the form browsers compare, or `None` for
/// anything else (a path, user info, `null`, another scheme).
pub fn normalize(origin: &str) -> Option<String> {
    let uri: Uri = origin.trim().parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    if !matches!(
        uri.path_and_query().map(|p| p.as_str()),
        None | Some("/") | Some("")
    ) {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    Some(match authority.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// Why a socket may not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("at most {max} open sockets per user")]
    PerUser { max: usize },
    #[error("the notifier holds its maximum of {max} sockets; retry later")]
    Total { max: usize },
}

type UserKey = (Uuid, String);

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_user: HashMap<UserKey, usize>,
}

/// The socket caps and what is open now.
#[derive(Debug)]
pub struct SocketLimits {
    max_total: usize,
    max_per_user: usize,
    counts: Mutex<Counts>,
}

impl SocketLimits {
    pub fn new(max_total: usize, max_per_user: usize) -> Arc<SocketLimits> {
        Arc::new(SocketLimits {
            max_total,
            max_per_user,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place for one socket of this user, or says why not.
    pub fn admit(self: &Arc<Self>, principal: &Principal) -> Result<SocketPermit, Refusal> {
        let key = (principal.restaurant_id, principal.sub.clone());
        let mut counts = self.counts();
        let mine = counts.per_user.get(&key).copied().unwrap_or(0);
        if mine >= self.max_per_user {
            return Err(Refusal::PerUser {
                max: self.max_per_user,
            });
        }
        if counts.total >= self.max_total {
            return Err(Refusal::Total {
                max: self.max_total,
            });
        }
        counts.total += 1;
        *counts.per_user.entry(key.clone()).or_default() += 1;
        metrics::gauge!("waiter_notifier_ws_connections").set(counts.total as f64);
        Ok(SocketPermit {
            limits: self.clone(),
            key,
        })
    }

    /// Sockets open now.
    pub fn open(&self) -> usize {
        self.counts().total
    }
}

/// One open socket's place; released on drop.
#[derive(Debug)]
pub struct SocketPermit {
    limits: Arc<SocketLimits>,
    key: UserKey,
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut counts = self.limits.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_user.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.per_user.remove(&self.key);
            }
        }
        metrics::gauge!("waiter_notifier_ws_connections").set(counts.total as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    #[test]
    fn origins_compare_as_browsers_send_them() {
        let allowed = AllowedOrigins::parse_list(
            "https://Dash.Example.com, http://127.0.0.1:8090,https://x.example:443",
        )
        .unwrap();
        assert_eq!(
            allowed.as_slice(),
            [
                "https://dash.example.com",
                "http://127.0.0.1:8090",
                "https://x.example"
            ]
        );
        assert!(allowed.allows(Some("https://dash.example.com")));
        assert!(allowed.allows(Some("HTTPS://DASH.EXAMPLE.COM:443")));
        assert!(allowed.allows(Some("http://127.0.0.1:8090")));
        assert!(allowed.allows(None), "no Origin: not a browser");
        for refused in [
            "https://evil.example",
            "http://dash.example.com",
            "https://dash.example.com:8443",
            "http://127.0.0.1:8091",
            "null",
            "",
            "https://dash.example.com.evil.example",
            "https://user@dash.example.com",
        ] {
            assert!(!allowed.allows(Some(refused)), "{refused}");
        }
    }

    #[test]
    fn a_port_wildcard_allows_that_host_on_any_port_only() {
        let allowed = AllowedOrigins::parse_list("http://127.0.0.1:*").unwrap();
        assert!(allowed.allows(Some("http://127.0.0.1:41234")));
        assert!(allowed.allows(Some("http://127.0.0.1:8090")));
        for refused in [
            "http://127.0.0.1",
            "https://127.0.0.1:41234",
            "http://127.0.0.10:41234",
            "http://localhost:41234",
        ] {
            assert!(!allowed.allows(Some(refused)), "{refused}");
        }
        assert!(AllowedOrigins::parse_list("ftp://x:*").is_err());
    }

    #[test]
    fn bad_origin_lists_are_reported() {
        for bad in ["", " , ", "dash.example.com", "ftp://x", "https://x/path"] {
            assert!(AllowedOrigins::parse_list(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            AllowedOrigins::of_url("https://dash.example.com/app/")
                .unwrap()
                .as_slice(),
            ["https://dash.example.com"]
        );
        assert!(AllowedOrigins::of_url("/relative").is_err());
        assert_eq!(
            AllowedOrigins::local("0.0.0.0:8090".parse().unwrap()).as_slice(),
            ["http://127.0.0.1:8090", "http://localhost:8090"]
        );
        assert_eq!(
            AllowedOrigins::local("10.1.2.3:80".parse().unwrap()).as_slice(),
            ["http://10.1.2.3"]
        );
        assert!(AllowedOrigins::of_url("ws://x:1").is_err());
    }

    fn user(restaurant_id: Uuid, sub: &str) -> Principal {
        Principal {
            sub: sub.into(),
            restaurant_id,
            role: Role::Staff,
            expires_at: i64::MAX,
        }
    }

    #[test]
    fn caps_sockets_per_user_and_in_total() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let limits = SocketLimits::new(3, 2);
        let first = limits.admit(&user(a, "ali")).unwrap();
        let _second = limits.admit(&user(a, "ali")).unwrap();
        assert_eq!(
            limits.admit(&user(a, "ali")).unwrap_err(),
            Refusal::PerUser { max: 2 }
        );
        // The same name in another restaurant is another user.
        let _other = limits.admit(&user(b, "ali")).unwrap();
        assert_eq!(
            limits.admit(&user(b, "sara")).unwrap_err(),
            Refusal::Total { max: 3 }
        );
        assert_eq!(limits.open(), 3);
        drop(first);
        assert_eq!(limits.open(), 2);
        let _again = limits.admit(&user(a, "ali")).unwrap();
        assert_eq!(
            Refusal::PerUser { max: 2 }.to_string(),
            "at most 2 open sockets per user"
        );
    }
}
