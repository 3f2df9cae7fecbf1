//! The Messages API: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`,
//! as Waiter's outbound stage calls it. Basic auth, Twilio's validation
//! order and error codes, the WhatsApp 24-hour window, injected faults, and
//! a Twilio-shaped `201` that starts the status callbacks.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;

use crate::{callbacks, new_sid, server::json_response, Core};

/// Twilio's limit on a message body, in characters.
pub const MAX_BODY_CHARS: usize = 1600;

/// How long after a customer's last inbound message free-form messages may
/// be sent (WhatsApp's customer-service window).
pub const SESSION_WINDOW_HOURS: i64 = 24;

/// A message the Messages API accepted (answered `201`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentMessage {
    pub sid: String,
    pub account_sid: String,
    pub to: String,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: Option<String>,
    pub media_urls: Vec<String>,
    pub content_sid: Option<String>,
    pub content_variables: Option<String>,
    pub status_callback: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// One request to the Messages API, whatever its outcome; lets tests count
/// retries and see what was rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiRequest {
    /// The AccountSid in the request path.
    pub account_sid: String,
    /// The user part of the Basic auth header, if there was a readable one.
    /// (The password is never recorded.)
    pub auth_user: Option<String>,
    /// The form parameters in the order they were sent.
    pub params: Vec<(String, String)>,
    /// The HTTP status the simulator answered.
    pub http_status: u16,
    /// Twilio's error code when the request was refused.
    pub error_code: Option<i64>,
    /// The message SID when the request was accepted.
    pub sid: Option<String>,
    pub received_at: DateTime<Utc>,
}

impl ApiRequest {
    /// The first value of a form parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        first(&self.params, name)
    }
}

/// The next `times` sends (only those to `to`, when given) fail with this
/// HTTP status and Twilio error code, before any validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub http_status: u16,
    pub code: i64,
    /// Empty means Twilio's message for the code.
    #[serde(default)]
    pub message: String,
    #[serde(default = "one")]
    pub times: usize,
    #[serde(default)]
    pub to: Option<String>,
}

fn one() -> usize {
    1
}

/// How the next `times` Messages API requests are answered badly, the way
/// a real API on a bad day is: slowly, not at all, or with the connection
/// dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Misbehaviour {
    /// The request is handled as usual (a valid send is accepted and
    /// recorded) and answered `delay_ms` later. Past the client's timeout
    /// this is a hang after which the client cannot know that the message
    /// was taken.
    Slow { delay_ms: u64, times: usize },
    /// The connection is dropped after the request was read and before it
    /// is handled: nothing is accepted, the client sees no answer.
    Drop { times: usize },
}

impl Misbehaviour {
    pub(crate) fn times_mut(&mut self) -> &mut usize {
        match self {
            Misbehaviour::Slow { times, .. } | Misbehaviour::Drop { times } => times,
        }
    }
}

impl Fault {
    /// One failure with Twilio's message for `code`.
    pub fn new(http_status: u16, code: i64) -> Self {
        Fault {
            http_status,
            code,
            message: default_message(code).to_string(),
            times: 1,
            to: None,
        }
    }

    pub fn times(mut self, times: usize) -> Self {
        self.times = times;
        self
    }

    pub fn only_to(mut self, to: impl Into<String>) -> Self {
        self.to = Some(to.into());
        self
    }
}

/// Twilio's wording for the codes a test is likely to inject.
fn default_message(code: i64) -> &'static str {
    match code {
        20003 => "Authenticate",
        20429 => "Too Many Requests",
        20500 => "An internal server error has occurred",
        20503 => "Service unavailable",
        21211 => "The 'To' number is not a valid phone number.",
        21408 => "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
        21608 => "The number is unverified. Trial accounts cannot send messages to unverified numbers.",
        21610 => "Attempt to send to unsubscribed recipient",
        63016 => "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template.",
        63017 => "Rate limit exceeded for the account",
        63018 => "Rate limit exceeded for Channel",
        63019 => "Media failed to download",
        63024 => "Invalid message recipient",
        _ => "Injected fault",
    }
}

/// Why the Messages API refused a request, with Twilio's code and wording.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("Authenticate")]
    Authenticate,
    #[error("A 'To' phone number is required.")]
    MissingTo,
    #[error("A 'From' phone number is required.")]
    MissingFrom,
    #[error("The 'To' number {0} is not a valid phone number.")]
    InvalidTo(String),
    #[error("A text message body or media urls must be specified.")]
    MissingContent,
    #[error("The concatenated message body exceeds the 1600 character limit.")]
    BodyTooLong,
    #[error("The ContentVariables Parameter is invalid.")]
    InvalidContentVariables,
    #[error("Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template.")]
    OutsideSessionWindow,
    #[error("{message}")]
    Injected {
        http_status: u16,
        code: i64,
        message: String,
    },
}

impl ApiError {
    pub fn http_status(&self) -> u16 {
        match self {
            ApiError::Authenticate => 401,
            ApiError::Injected { http_status, .. } => *http_status,
            _ => 400,
        }
    }

    pub fn code(&self) -> i64 {
        match self {
            ApiError::Authenticate => 20003,
            ApiError::MissingTo => 21604,
            ApiError::MissingFrom => 21603,
            ApiError::InvalidTo(_) => 21211,
            ApiError::MissingContent => 21619,
            ApiError::BodyTooLong => 21617,
            ApiError::InvalidContentVariables => 21656,
            ApiError::OutsideSessionWindow => 63016,
            ApiError::Injected { code, .. } => *code,
        }
    }

    /// Twilio's error document.
    pub fn to_json(&self) -> Value {
        error_json(self.code(), &self.to_string(), self.http_status())
    }
}

/// `{"code", "message", "more_info", "status"}`, as Twilio answers errors.
pub(crate) fn error_json(code: i64, message: &str, status: u16) -> Value {
    json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    })
}

fn first<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The first non-empty value (Twilio treats an empty parameter as absent).
fn non_empty<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    first(params, name).filter(|v| !v.is_empty())
}

/// `(user, password)` from an `Authorization: Basic …` header.
fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let header = header?.trim();
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A validated send.
struct Accepted {
    message: SentMessage,
    /// The business number the message goes out from (From, or for a
    /// messaging-service send the number the customer last wrote to).
    sender: Option<String>,
}

fn accept(
    core: &Core,
    path_sid: &str,
    credentials: Option<&(String, String)>,
    params: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<Accepted, ApiError> {
    // Authentication comes first: Twilio says nothing else to a stranger.
    let (user, password) = credentials.ok_or(ApiError::Authenticate)?;
    let token = core.state.token(user).ok_or(ApiError::Authenticate)?;
    if user != path_sid || !constant_time_eq(token.as_bytes(), password.as_bytes()) {
        return Err(ApiError::Authenticate);
    }

    let to = non_empty(params, "To");
    if let Some(fault) = core.state.take_fault(to) {
        let message = if fault.message.is_empty() {
            default_message(fault.code).to_string()
        } else {
            fault.message
        };
        return Err(ApiError::Injected {
            http_status: fault.http_status,
            code: fault.code,
            message,
        });
    }

    let to = to.ok_or(ApiError::MissingTo)?;
    let from = non_empty(params, "From");
    let messaging_service_sid = non_empty(params, "MessagingServiceSid");
    if from.is_none() && messaging_service_sid.is_none() {
        return Err(ApiError::MissingFrom);
    }
    match to.strip_prefix("whatsapp:") {
        Some(address) if !address.trim().is_empty() => {}
        _ => return Err(ApiError::InvalidTo(to.to_string())),
    }

    let body = first(params, "Body");
    let media_urls: Vec<String> = params
        .iter()
        .filter(|(n, v)| n == "MediaUrl" && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    let content_sid = non_empty(params, "ContentSid");
    let content_variables = non_empty(params, "ContentVariables");
    if body.is_none_or(str::is_empty) && media_urls.is_empty() && content_sid.is_none() {
        return Err(ApiError::MissingContent);
    }
    if body.is_some_and(|b| b.chars().count() > MAX_BODY_CHARS) {
        return Err(ApiError::BodyTooLong);
    }
    if let (Some(_), Some(vars)) = (content_sid, content_variables) {
        if serde_json::from_str::<serde_json::Map<String, Value>>(vars).is_err() {
            return Err(ApiError::InvalidContentVariables);
        }
    }

    let last_inbound = match from {
        Some(from) => core
            .state
            .last_inbound_to_number(from, to)
            .map(|at| (from.to_string(), at)),
        None => core
            .state
            .last_inbound_in_account(path_sid, to)
            .map(|last| (last.business, last.at)),
    };
    if core.enforce_session_window && content_sid.is_none() {
        let open = last_inbound
            .as_ref()
            .is_some_and(|(_, at)| now - *at <= ChronoDuration::hours(SESSION_WINDOW_HOURS));
        if !open {
            return Err(ApiError::OutsideSessionWindow);
        }
    }

    let sender = from
        .map(str::to_string)
        .or_else(|| last_inbound.map(|(business, _)| business));
    Ok(Accepted {
        message: SentMessage {
            sid: new_sid("SM"),
            account_sid: path_sid.to_string(),
            to: to.to_string(),
            from: from.map(str::to_string),
            messaging_service_sid: messaging_service_sid.map(str::to_string),
            body: body.map(str::to_string),
            media_urls,
            content_sid: content_sid.map(str::to_string),
            content_variables: content_variables.map(str::to_string),
            status_callback: non_empty(params, "StatusCallback").map(str::to_string),
            received_at: now,
        },
        sender,
    })
}

/// Twilio's message resource, as returned by a successful create.
pub fn message_json(m: &SentMessage) -> Value {
    let uri = format!(
        "/2010-04-01/Accounts/{}/Messages/{}.json",
        m.account_sid, m.sid
    );
    let media = format!(
        "/2010-04-01/Accounts/{}/Messages/{}/Media.json",
        m.account_sid, m.sid
    );
    let feedback = format!(
        "/2010-04-01/Accounts/{}/Messages/{}/Feedback.json",
        m.account_sid, m.sid
    );
    let date = m.received_at.to_rfc2822();
    // A messaging-service send without From is "accepted" until Twilio
    // picks a sender; otherwise it is queued.
    let status = if m.from.is_none() {
        "accepted"
    } else {
        "queued"
    };
    json!({
        "account_sid": m.account_sid,
        "api_version": "2010-04-01",
        "body": m.body.clone().unwrap_or_default(),
        "date_created": date,
        "date_sent": null,
        "date_updated": date,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": m.from,
        "messaging_service_sid": m.messaging_service_sid,
        "num_media": m.media_urls.len().to_string(),
        "num_segments": "1",
        "price": null,
        "price_unit": "USD",
        "sid": m.sid,
        "status": status,
        "subresource_uris": { "media": media, "feedback": feedback },
        "to": m.to,
        "uri": uri,
    })
}

/// The warp handler for `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.
pub(crate) async fn create_message(
    path_sid: String,
    core: Arc<Core>,
    authorization: Option<String>,
    body: Bytes,
) -> Response {
    match core.state.take_misbehaviour() {
        Some(Misbehaviour::Drop { .. }) => {
            tracing::info!(account_sid = %path_sid, "connection dropped (injected)");
            dropped_connection()
        }
        Some(Misbehaviour::Slow { delay_ms, .. }) => {
            let response = answer(path_sid, &core, authorization, body);
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            response
        }
        None => answer(path_sid, &core, authorization, body),
    }
}

/// A response whose body fails at once: hyper then closes the connection
/// without finishing the answer, so the client reads no complete response.
fn dropped_connection() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "dropped by the simulator",
        ))
    });
    let mut response = Response::new(warp::hyper::Body::wrap_stream(failing));
    *response.status_mut() = StatusCode::CREATED;
    response
}

fn answer(
    path_sid: String,
    core: &Arc<Core>,
    authorization: Option<String>,
    body: Bytes,
) -> Response {
    let now = Utc::now();
    // Form decoding is lossy, never failing; garbage simply lacks `To`.
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let credentials = basic_credentials(authorization.as_deref());
    let outcome = accept(core, &path_sid, credentials.as_ref(), &params, now);
    let auth_user = credentials.map(|(user, _)| user);

    match outcome {
        Ok(Accepted { message, sender }) => {
            core.state.push_request(ApiRequest {
                account_sid: path_sid,
                auth_user,
                params,
                http_status: 201,
                error_code: None,
                sid: Some(message.sid.clone()),
                received_at: now,
            });
            // Per message, so at debug: `/sim/messages` lists them.
            tracing::debug!(
                account_sid = %message.account_sid,
                sid = %message.sid,
                to = %message.to,
                template = message.content_sid.is_some(),
                "message accepted"
            );
            let reply = message_json(&message);
            core.state.push_sent(message.clone());
            callbacks::spawn(core.clone(), message, sender);
            json_response(StatusCode::CREATED, &reply)
        }
        Err(error) => {
            core.state.push_request(ApiRequest {
                account_sid: path_sid.clone(),
                auth_user,
                params,
                http_status: error.http_status(),
                error_code: Some(error.code()),
                sid: None,
                received_at: now,
            });
            tracing::info!(
                account_sid = %path_sid,
                status = error.http_status(),
                code = error.code(),
                "message refused: {error}"
            );
            let status = StatusCode::from_u16(error.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = json_response(status, &error.to_json());
            if matches!(error, ApiError::Authenticate) {
                response.headers_mut().insert(
                    warp::http::header::WWW_AUTHENTICATE,
                    warp::http::HeaderValue::from_static("Basic realm=\"Twilio API\""),
                );
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_basic_credentials() {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("ACabc:to:ken")
        );
        assert_eq!(
            basic_credentials(Some(&header)),
            Some(("ACabc".into(), "to:ken".into()))
        );
        assert_eq!(basic_credentials(Some("Bearer xyz")), None);
        assert_eq!(basic_credentials(Some("Basic !!!")), None);
        assert_eq!(basic_credentials(None), None);
    }

    #[test]
    fn error_json_is_twilio_shaped() {
        let e = ApiError::MissingTo;
        assert_eq!(
            e.to_json(),
            json!({
                "code": 21604,
                "message": "A 'To' phone number is required.",
                "more_info": "https://www.twilio.com/docs/errors/21604",
                "status": 400
            })
        );
    }
}
