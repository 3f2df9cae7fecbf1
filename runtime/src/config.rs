use std::{fmt, net::SocketAddr, str::FromStr};

use secrecy::SecretString;

/// Every configuration problem found at start-up, reported together.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads settings from the environment (and a `.env` file if present),
/// collecting every problem instead of stopping at the first.
pub struct EnvReader {
    problems: Vec<String>,
}

impl Default for EnvReader {
    fn default() -> Self {
        Self::new()
    }
}

impl EnvReader {
    pub fn new() -> Self {
        let _ = dotenvy::dotenv();
        Self { problems: vec![] }
    }

    fn raw(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }

    pub fn string(&mut self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_string())
    }

    pub fn optional(&mut self, name: &str) -> Option<String> {
        self.raw(name)
    }

    pub fn required(&mut self, name: &str) -> String {
        match self.raw(name) {
            Some(v) => v,
            None => {
                self.problems.push(format!("{name} is required"));
                String::new()
            }
        }
    }

    pub fn parse<T: FromStr>(&mut self, name: &str, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        match self.raw(name) {
            Some(v) => match v.trim().parse() {
                Ok(parsed) => parsed,
                Err(e) => {
                    self.problems.push(format!("{name}={v:?}: {e}"));
                    default
                }
            },
            None => default,
        }
    }

    pub fn bool(&mut self, name: &str, default: bool) -> bool {
        match self.raw(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => default,
            Some(v) if ["1", "true", "on", "yes"].contains(&v.as_str()) => true,
            Some(v) if ["0", "false", "off", "no"].contains(&v.as_str()) => false,
            Some(v) => {
                self.problems
                    .push(format!("{name}={v:?} is not a boolean (true/false)"));
                default
            }
        }
    }

    /// A listen address: `HOST:PORT`, or a bare port on 0.0.0.0.
    pub fn addr(&mut self, name: &str, default: &str) -> SocketAddr {
        let raw = self.string(name, default);
        let candidate = if raw.contains(':') {
            raw.clone()
        } else {
            format!("0.0.0.0:{raw}")
        };
        match candidate.parse() {
            Ok(addr) => addr,
            Err(_) => {
                self.problems.push(format!(
                    "{name}={raw:?} is not an address (HOST:PORT or PORT)"
                ));
                "0.0.0.0:0".parse().expect("valid")
            }
        }
    }

    /// An address only some deployments set (a separate ops port).
    pub fn optional_addr(&mut self, name: &str) -> Option<SocketAddr> {
        self.optional(name)?;
        Some(self.addr(name, ""))
    }

    /// A secret: never printed, redacted in Debug.
    pub fn secret(&mut self, name: &str, default: Option<&str>) -> SecretString {
        match (self.raw(name), default) {
            (Some(v), _) => SecretString::from(v),
            (None, Some(d)) => SecretString::from(d.to_string()),
            (None, None) => {
                self.problems.push(format!("{name} is required"));
                SecretString::from(String::new())
            }
        }
    }

    /// Adds a problem found by the caller's own validation.
    /// The keyring of `WAITER_SECRET_KEY` (format in `waiter-secrets`); a
    /// problem when it is missing or malformed, so `None` never outlives
    /// [`EnvReader::finish`].
    pub fn secret_keys(&mut self) -> Option<waiter_secrets::Keyring> {
        match waiter_secrets::Keyring::from_value(self.raw(waiter_secrets::ENV).as_deref()) {
            Ok(keys) => Some(keys),
            Err(e) => {
                self.problems.push(e.to_string());
                None
            }
        }
    }

    pub fn problem(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

/// `DATABASE_URL`, defaulting to the local development database.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/waiter";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_problem() {
        std::env::set_var("WAITER_TEST_BAD_PORT", "eighty");
        std::env::set_var("WAITER_TEST_BAD_BOOL", "maybe");
        let mut env = EnvReader::new();
        let _: u16 = env.parse("WAITER_TEST_BAD_PORT", 80);
        let _ = env.bool("WAITER_TEST_BAD_BOOL", true);
        let _ = env.required("WAITER_TEST_MISSING");
        assert_eq!(env.addr("WAITER_TEST_UNSET_ADDR", "8080").port(), 8080);
        let err = env.finish().unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
        assert!(err.to_string().contains("WAITER_TEST_MISSING is required"));
    }
}
