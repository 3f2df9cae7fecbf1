//! Asking a process how it is: `GET /health`, `/ready`, `/status` on its
//! ops port, bounded by a short timeout (a hung process answers nothing).

use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Prober {
    http: reqwest::Client,
}

/// What one request found.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The status code and the body (JSON, or `null`).
    Got(u16, serde_json::Value),
    /// Nothing listens (the process is starting, or gone).
    Refused,
    /// Connected, no answer in time, or some other failure.
    Failed(String),
}

impl Answer {
    pub fn is_ok(&self) -> bool {
        matches!(self, Answer::Got(200, _))
    }

    pub fn body(&self) -> Option<&serde_json::Value> {
        match self {
            Answer::Got(_, body) => Some(body),
            _ => None,
        }
    }
}

impl Prober {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .no_proxy()
            .build()
            .expect("an HTTP client");
        Self { http }
    }

    pub async fn get(&self, port: u16, path: &str) -> Answer {
        let url = format!("http://127.0.0.1:{port}{path}");
        match self.http.get(&url).send().await {
            Ok(response) => {
                let code = response.status().as_u16();
                let body = response.json().await.unwrap_or(serde_json::Value::Null);
                Answer::Got(code, body)
            }
            Err(e) if e.is_connect() => Answer::Refused,
            Err(e) if e.is_timeout() => {
                Answer::Failed(format!("{path} did not answer within {TIMEOUT:?}"))
            }
            Err(e) => Answer::Failed(e.to_string()),
        }
    }
}
