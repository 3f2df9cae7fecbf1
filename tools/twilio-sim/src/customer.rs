//! The customer side: inbound WhatsApp messages posted to Waiter's webhook
//! exactly as Twilio posts them (form fields, encoding, signature, headers,
//! time budget).

use std::collections::BTreeMap;

use chrono::Utc;
use reqwest::{header, Url};
use serde::{Deserialize, Serialize};

use crate::{new_sid, signature, Core};

/// Twilio gives a webhook 15 s in total.
pub const WEBHOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// …of which at most 10 s to connect.
pub const WEBHOOK_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The user agent Twilio's webhook requests carry.
pub const USER_AGENT: &str = "TwilioProxy/1.1";

/// An inbound WhatsApp message from a customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundSpec {
    pub account_sid: String,
    /// `whatsapp:+E164`, or `whatsapp:<business-scoped id>`.
    pub from: String,
    /// The business number, `whatsapp:+E164`.
    pub to: String,
    pub body: String,
    pub profile_name: Option<String>,
    /// `None` generates `SM` + 32 hex (`MM` when the message has media).
    pub message_sid: Option<String>,
    /// More Twilio parameters (`ButtonPayload`, `Latitude`, `MediaUrl0`, …),
    /// appended as given; names may repeat.
    pub extra: Vec<(String, String)>,
}

impl InboundSpec {
    /// A plain text message.
    pub fn text(
        account_sid: impl Into<String>,
        from: impl Into<String>,
        to: impl Into<String>,
        body: impl Into<String>,
    ) -> Self {
        InboundSpec {
            account_sid: account_sid.into(),
            from: from.into(),
            to: to.into(),
            body: body.into(),
            profile_name: None,
            message_sid: None,
            extra: Vec::new(),
        }
    }

    pub fn with_profile_name(mut self, name: impl Into<String>) -> Self {
        self.profile_name = Some(name.into());
        self
    }

    pub fn with_message_sid(mut self, sid: impl Into<String>) -> Self {
        self.message_sid = Some(sid.into());
        self
    }

    /// Appends one extra parameter.
    pub fn with_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }
}

/// What Waiter answered to a webhook, and what was posted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookResult {
    pub status: u16,
    pub body: String,
    pub content_type: Option<String>,
    /// The posted `MessageSid` (empty if the form had none).
    pub message_sid: String,
    /// The form as posted, in order.
    pub params: Vec<(String, String)>,
}

/// Why a webhook could not be posted (an answer with any HTTP status is
/// not an error).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("unknown account {0}")]
    UnknownAccount(String),
    #[error(
        "no account_sid given and {0} accounts are configured (exactly one is needed to omit it)"
    )]
    AmbiguousAccount(usize),
    #[error("invalid webhook URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("could not encode the form")]
    Encode(#[from] serde_urlencoded::ser::Error),
    #[error("webhook POST to {url} timed out (Twilio allows {}s)", WEBHOOK_TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("webhook POST to {url} failed")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

impl WebhookError {
    /// Whether the webhook target was at fault (as opposed to the request).
    pub fn is_upstream(&self) -> bool {
        matches!(
            self,
            WebhookError::Timeout { .. } | WebhookError::Transport { .. }
        )
    }

    /// The message with every cause, `outer: inner: …` (for logs).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

fn has(params: &[(String, String)], name: &str) -> bool {
    params.iter().any(|(n, _)| n == name)
}

fn first<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `MediaUrl0`, `MediaUrl1`, …
fn is_media_url(name: &str) -> bool {
    name.strip_prefix("MediaUrl")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The digits of a `whatsapp:+E164` address; `None` for other shapes
/// (WhatsApp usernames have no WaId phone).
fn wa_id(from: &str) -> Option<&str> {
    from.strip_prefix("whatsapp:+")
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The form Twilio posts for an inbound WhatsApp message.
pub fn inbound_params(spec: &InboundSpec, message_sid: &str) -> Vec<(String, String)> {
    let num_media = spec.extra.iter().filter(|(n, _)| is_media_url(n)).count();
    let mut params: Vec<(String, String)> = Vec::with_capacity(16 + spec.extra.len());
    let mut push = |name: &str, value: &str| params.push((name.to_string(), value.to_string()));
    push("MessageSid", message_sid);
    push("SmsMessageSid", message_sid);
    push("SmsSid", message_sid);
    push("AccountSid", &spec.account_sid);
    push("From", &spec.from);
    push("To", &spec.to);
    push("Body", &spec.body);
    if !has(&spec.extra, "NumMedia") {
        push("NumMedia", &num_media.to_string());
    }
    push("NumSegments", "1");
    push("ApiVersion", "2010-04-01");
    push("SmsStatus", "received");
    if !has(&spec.extra, "MessageType") {
        push("MessageType", "text");
    }
    if let Some(name) = &spec.profile_name {
        push("ProfileName", name);
    }
    if !has(&spec.extra, "WaId") {
        if let Some(digits) = wa_id(&spec.from) {
            push("WaId", digits);
        }
    }
    params.extend(spec.extra.iter().cloned());
    params
}

impl Core {
    /// The account for a request that may omit it.
    pub(crate) fn resolve_account(
        &self,
        account_sid: Option<String>,
    ) -> Result<String, WebhookError> {
        match account_sid.filter(|s| !s.is_empty()) {
            Some(sid) => Ok(sid),
            None => self
                .state
                .only_account()
                .ok_or_else(|| WebhookError::AmbiguousAccount(self.state.account_count())),
        }
    }

    pub(crate) async fn send_inbound(
        &self,
        spec: InboundSpec,
    ) -> Result<WebhookResult, WebhookError> {
        let token = self
            .state
            .token(&spec.account_sid)
            .ok_or_else(|| WebhookError::UnknownAccount(spec.account_sid.clone()))?;
        let message_sid = match &spec.message_sid {
            Some(sid) => sid.clone(),
            None if spec.extra.iter().any(|(n, _)| is_media_url(n)) => new_sid("MM"),
            None => new_sid("SM"),
        };
        let params = inbound_params(&spec, &message_sid);
        // Twilio has the message (and the window is open) before Waiter
        // answers; a reply may race the webhook's response.
        self.state
            .record_inbound(&spec.account_sid, &spec.to, &spec.from, Utc::now());
        let public_url = self.state.webhook_url();
        let target = self.state.post_url().unwrap_or_else(|| public_url.clone());
        let result = post_signed(self, &token, &public_url, &target, params).await;
        match &result {
            Ok(r) => {
                tracing::debug!(message_sid = %message_sid, status = r.status, "inbound webhook answered")
            }
            Err(e) => {
                tracing::warn!(message_sid = %message_sid, "inbound webhook failed: {}", e.chain())
            }
        }
        result
    }

    /// Posts `params` as they are, with `signature` as `X-Twilio-Signature`
    /// (absent when `None`). A path is resolved against the webhook target.
    pub(crate) async fn post_webhook_raw(
        &self,
        path_or_url: &str,
        params: Vec<(String, String)>,
        signature: Option<String>,
    ) -> Result<WebhookResult, WebhookError> {
        let url = self.resolve_target(path_or_url)?;
        if let (Some(from), Some(to)) = (first(&params, "From"), first(&params, "To")) {
            let account = first(&params, "AccountSid").unwrap_or_default();
            self.state.record_inbound(account, to, from, Utc::now());
        }
        post_form(self, &url, params, signature.as_deref()).await
    }

    fn resolve_target(&self, path_or_url: &str) -> Result<String, WebhookError> {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            return Ok(path_or_url.to_string());
        }
        let base = self
            .state
            .post_url()
            .unwrap_or_else(|| self.state.webhook_url());
        let bad = |reason: String| WebhookError::BadUrl {
            url: base.clone(),
            reason,
        };
        let base_url = Url::parse(&base).map_err(|e| bad(e.to_string()))?;
        base_url
            .join(path_or_url)
            .map(String::from)
            .map_err(|e| bad(e.to_string()))
    }

    /// Where to POST a URL that Waiter published: behind a proxy
    /// (`post_url` set), URLs on the public webhook origin go to the
    /// `post_url` origin instead, path and query kept.
    pub(crate) fn delivery_url(&self, public: &str) -> String {
        let Some(post) = self.state.post_url() else {
            return public.to_string();
        };
        let (Ok(target), Ok(webhook), Ok(post)) = (
            Url::parse(public),
            Url::parse(&self.state.webhook_url()),
            Url::parse(&post),
        ) else {
            return public.to_string();
        };
        if target.origin() != webhook.origin() {
            return public.to_string();
        }
        let query = target.query().map(|q| format!("?{q}")).unwrap_or_default();
        format!(
            "{}{}{}",
            post.origin().ascii_serialization(),
            target.path(),
            query
        )
    }
}

/// Signs `params` over `sign_url` with `token` and posts them to `post_url`.
pub(crate) async fn post_signed(
    core: &Core,
    token: &str,
    sign_url: &str,
    post_url: &str,
    params: Vec<(String, String)>,
) -> Result<WebhookResult, WebhookError> {
    let signature = signature::sign(token, sign_url, &params);
    post_form(core, post_url, params, Some(&signature)).await
}

/// One form POST as Twilio makes it.
pub(crate) async fn post_form(
    core: &Core,
    url: &str,
    params: Vec<(String, String)>,
    signature: Option<&str>,
) -> Result<WebhookResult, WebhookError> {
    let form = serde_urlencoded::to_string(&params)?;
    let mut request = core
        .client
        .post(url)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::USER_AGENT, USER_AGENT)
        .header(header::ACCEPT, "*/*")
        .header(
            "I-Twilio-Idempotency-Token",
            uuid::Uuid::new_v4().to_string(),
        )
        .body(form);
    if let Some(signature) = signature {
        request = request.header("X-Twilio-Signature", signature);
    }
    let transport = |source: reqwest::Error| {
        if source.is_timeout() {
            WebhookError::Timeout {
                url: url.to_string(),
            }
        } else {
            WebhookError::Transport {
                url: url.to_string(),
                source,
            }
        }
    };
    let response = request.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.text().await.map_err(transport)?;
    Ok(WebhookResult {
        status,
        body,
        content_type,
        message_sid: first(&params, "MessageSid").unwrap_or_default().to_string(),
        params,
    })
}

/// `extra` in the JSON of `POST /sim/inbound`: `[["Name","value"], …]`
/// (names may repeat) or `{"Name": "value", …}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum ExtraParams {
    Pairs(Vec<(String, String)>),
    Map(BTreeMap<String, String>),
}

impl Default for ExtraParams {
    fn default() -> Self {
        ExtraParams::Pairs(Vec::new())
    }
}

impl ExtraParams {
    pub(crate) fn into_pairs(self) -> Vec<(String, String)> {
        match self {
            ExtraParams::Pairs(pairs) => pairs,
            ExtraParams::Map(map) => map.into_iter().collect(),
        }
    }
}

/// The JSON of `POST /sim/inbound`: an [`InboundSpec`] whose `account_sid`
/// may be left out when exactly one account is configured.
#[derive(Debug, Deserialize)]
pub(crate) struct InboundRequest {
    #[serde(default)]
    pub account_sid: Option<String>,
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub profile_name: Option<String>,
    #[serde(default)]
    pub message_sid: Option<String>,
    #[serde(default)]
    pub extra: ExtraParams,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_twilio_inbound_form() {
        let spec = InboundSpec::text(
            "AC1",
            "whatsapp:+966501234567",
            "whatsapp:+14155238886",
            "hi",
        )
        .with_profile_name("Ahmed")
        .with_param("MediaUrl0", "https://api.twilio.com/m/1")
        .with_param("MediaContentType0", "image/jpeg");
        let params = inbound_params(&spec, "MM1");
        let get = |n: &str| first(&params, n);
        assert_eq!(get("MessageSid"), Some("MM1"));
        assert_eq!(get("SmsMessageSid"), Some("MM1"));
        assert_eq!(get("SmsSid"), Some("MM1"));
        assert_eq!(get("NumMedia"), Some("1"));
        assert_eq!(get("WaId"), Some("966501234567"));
        assert_eq!(get("ProfileName"), Some("Ahmed"));
        assert_eq!(get("MessageType"), Some("text"));
    }

    #[test]
    fn no_wa_id_for_username_senders_and_extra_wins() {
        let spec = InboundSpec::text("AC1", "whatsapp:ahmed.123", "whatsapp:+1", "")
            .with_param("MessageType", "button")
            .with_param("NumMedia", "0");
        let params = inbound_params(&spec, "SM1");
        assert!(!has(&params, "WaId"));
        assert_eq!(params.iter().filter(|(n, _)| n == "MessageType").count(), 1);
        assert_eq!(first(&params, "MessageType"), Some("button"));
        assert_eq!(params.iter().filter(|(n, _)| n == "NumMedia").count(), 1);
    }

    #[test]
    fn extra_accepts_pairs_or_map() {
        let pairs: InboundRequest = serde_json::from_str(
            r#"{"from":"whatsapp:+1","to":"whatsapp:+2","extra":[["A","1"],["A","2"]]}"#,
        )
        .expect("pairs");
        assert_eq!(pairs.extra.into_pairs().len(), 2);
        let map: InboundRequest = serde_json::from_str(
            r#"{"from":"whatsapp:+1","to":"whatsapp:+2","extra":{"Latitude":"24.7"}}"#,
        )
        .expect("map");
        assert_eq!(
            map.extra.into_pairs(),
            vec![("Latitude".to_string(), "24.7".to_string())]
        );
    }
}
