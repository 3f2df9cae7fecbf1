//! The Messages API client: one shared HTTP client, the tenant's Basic auth,
//! the form Twilio expects.

use std::time::{Duration, Instant};

use waiter_nats::messages::OutboundContent;

use crate::decision::Answer;

/// Who the message goes out as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// A WhatsApp sender, `whatsapp:+E164`.
    From(String),
    /// A Messaging Service, which picks the sender itself.
    Service(String),
}

/// The form parameters of one send, in the order they are posted.
/// `MediaUrl` repeats; a template carries `ContentSid` (+ `ContentVariables`
/// as a JSON object string) and never a `Body`.
pub fn form_params(
    to: &str,
    sender: &Sender,
    content: &OutboundContent,
    status_callback: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut params: Vec<(&'static str, String)> = vec![("To", to.to_string())];
    match sender {
        Sender::From(from) => params.push(("From", from.clone())),
        Sender::Service(sid) => params.push(("MessagingServiceSid", sid.clone())),
    }
    match content {
        OutboundContent::Text { body } => params.push(("Body", body.clone())),
        OutboundContent::Media { body, urls } => {
            if let Some(body) = body.as_ref().filter(|b| !b.is_empty()) {
                params.push(("Body", body.clone()));
            }
            params.extend(urls.iter().map(|url| ("MediaUrl", url.clone())));
        }
        OutboundContent::Template {
            content_sid,
            variables,
        } => {
            params.push(("ContentSid", content_sid.clone()));
            if !variables.is_empty() {
                // A map of strings always serializes.
                let json = serde_json::to_string(variables).unwrap_or_else(|_| "{}".into());
                params.push(("ContentVariables", json));
            }
        }
    }
    if let Some(url) = status_callback {
        params.push(("StatusCallback", url.to_string()));
    }
    params
}

/// An account sid goes into the URL path: only letters and digits, so a
/// bad row can never point the request elsewhere.
pub fn valid_account_sid(sid: &str) -> bool {
    !sid.is_empty() && sid.len() <= 64 && sid.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The Messages API of one Twilio (or simulator) base URL.
#[derive(Clone)]
pub struct TwilioClient {
    http: reqwest::Client,
    base: String,
}

impl TwilioClient {
    pub fn new(base: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            // A POST must never turn into a GET somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("waiter-outbound/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    pub fn messages_url(&self, account_sid: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
            self.base
        )
    }

    /// Posts one message. Never fails: every outcome is an [`Answer`] to
    /// classify.
    pub async fn send(
        &self,
        account_sid: &str,
        auth_token: &str,
        params: &[(&'static str, String)],
    ) -> Answer {
        let started = Instant::now();
        let result = self
            .http
            .post(self.messages_url(account_sid))
            .basic_auth(account_sid, Some(auth_token))
            .form(params)
            .send()
            .await;
        let answer = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(crate::decision::parse_retry_after);
                match response.text().await {
                    Ok(body) => Answer::Http {
                        status,
                        body,
                        retry_after,
                    },
                    Err(e) if e.is_timeout() => Answer::Timeout,
                    // The status line arrived; an unreadable body still
                    // tells success from failure by the status alone.
                    Err(_) => Answer::Http {
                        status,
                        body: String::new(),
                        retry_after,
                    },
                }
            }
            Err(e) if e.is_timeout() => Answer::Timeout,
            Err(e) => Answer::Connection(without_url(&e)),
        };
        metrics::histogram!("waiter_outbound_twilio_seconds")
            .record(started.elapsed().as_secs_f64());
        answer
    }
}

/// The error text without the URL (which names the account).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<messages api>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn names(params: &[(&'static str, String)]) -> Vec<&'static str> {
        params.iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn text_goes_with_from_and_callback() {
        let params = form_params(
            "whatsapp:+966500000002",
            &Sender::From("whatsapp:+15550001".into()),
            &OutboundContent::Text {
                body: "مرحبا".into(),
            },
            Some("https://w.example/whatsapp/status"),
        );
        assert_eq!(names(&params), ["To", "From", "Body", "StatusCallback"]);
        assert_eq!(params[2].1, "مرحبا");
    }

    #[test]
    fn media_repeats_media_url_and_skips_an_empty_body() {
        let params = form_params(
            "whatsapp:+1",
            &Sender::Service("MG1".into()),
            &OutboundContent::Media {
                body: Some(String::new()),
                urls: vec!["https://a/1.jpg".into(), "https://a/2.jpg".into()],
            },
            None,
        );
        assert_eq!(
            names(&params),
            ["To", "MessagingServiceSid", "MediaUrl", "MediaUrl"]
        );
        let encoded = serde_urlencoded::to_string(&params).unwrap_or_default();
        assert_eq!(encoded.matches("MediaUrl=").count(), 2, "{encoded}");
    }

    #[test]
    fn templates_carry_content_variables_and_no_body() {
        let variables = BTreeMap::from([("1".to_string(), "Ahmed \"A\"".to_string())]);
        let params = form_params(
            "whatsapp:+1",
            &Sender::From("whatsapp:+2".into()),
            &OutboundContent::Template {
                content_sid: "HX123".into(),
                variables,
            },
            None,
        );
        assert_eq!(
            names(&params),
            ["To", "From", "ContentSid", "ContentVariables"]
        );
        let vars: serde_json::Value = serde_json::from_str(&params[3].1).expect("json");
        assert_eq!(vars, serde_json::json!({"1": "Ahmed \"A\""}));
    }

    #[test]
    fn account_sids_cannot_escape_the_path() {
        assert!(valid_account_sid("AC0123456789abcdef0123456789abcdef"));
        for bad in ["", "AC/../x", "AC?x=1", "AC 1", "AC%2F"] {
            assert!(!valid_account_sid(bad), "{bad}");
        }
    }

    #[test]
    fn the_url_is_twilios() {
        let client =
            TwilioClient::new("http://127.0.0.1:1/", Duration::from_secs(1)).expect("client");
        assert_eq!(
            client.messages_url("AC1"),
            "http://127.0.0.1:1/2010-04-01/Accounts/AC1/Messages.json"
        );
    }
}
