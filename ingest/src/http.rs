//! The webhook endpoints.

use std::{convert::Infallible, sync::Arc, time::Instant};

use bytes::Bytes;
use chrono::Utc;
use secrecy::ExposeSecret;
use waiter_nats::{
    directory::DirectoryCache,
    envelope::new_id,
    messages::{RejectedWebhook, WebhookOutcome},
    Bus, BusError, Envelope, Payload,
};
use waiter_runtime::Health;
use warp::{
    http::{Response, StatusCode},
    hyper::Body,
    Filter, Rejection,
};

use crate::{form, signature, Config};

const TWIML_EMPTY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

pub struct Inner {
    config: Config,
    bus: Bus,
    directory: DirectoryCache,
}

#[derive(Clone)]
pub struct State(Arc<Inner>);

impl State {
    pub fn new(config: Config, bus: Bus, directory: DirectoryCache) -> Self {
        State(Arc::new(Inner {
            config,
            bus,
            directory,
        }))
    }
}

/// Which webhook a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Message,
    Status,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Message => "message",
            Endpoint::Status => "status",
        }
    }
}

pub fn routes(
    state: State,
    health: Health,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone {
    let limit = state.0.config.max_body_bytes;
    let with_state = warp::any().map(move || state.clone());
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let webhook = |endpoint: Endpoint| {
        warp::post()
            .and(with_state.clone())
            .and(warp::any().map(move || endpoint))
            .and(warp::path::full())
            .and(query)
            .and(warp::header::optional::<String>("x-twilio-signature"))
            .and(warp::body::content_length_limit(limit))
            .and(warp::body::bytes())
            .then(handle)
    };
    let message = warp::path!("whatsapp" / "webhook").and(webhook(Endpoint::Message));
    let status = warp::path!("whatsapp" / "status").and(webhook(Endpoint::Status));
    message
        .or(status)
        .unify()
        .or(waiter_runtime::ops::routes(health).map(warp::reply::Reply::into_response))
        .unify()
        .recover(rejection)
}

fn plain(status: StatusCode, reason: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from(format!("{reason}\n")))
        .expect("response")
}

async fn rejection(err: Rejection) -> Result<Response<Body>, Infallible> {
    let response = if err.is_not_found() {
        plain(StatusCode::NOT_FOUND, "not found")
    } else if err.find::<warp::reject::PayloadTooLarge>().is_some() {
        metrics::counter!("waiter_ingest_webhooks_total", "outcome" => "too_large").increment(1);
        plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body over the size limit",
        )
    } else if err.find::<warp::reject::LengthRequired>().is_some() {
        plain(StatusCode::LENGTH_REQUIRED, "Content-Length required")
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else {
        plain(StatusCode::BAD_REQUEST, "bad request")
    };
    Ok(response)
}

async fn handle(
    state: State,
    endpoint: Endpoint,
    path: warp::path::FullPath,
    query: String,
    signature_header: Option<String>,
    body: Bytes,
) -> Response<Body> {
    let started = Instant::now();
    let response = accept(
        &state.0,
        endpoint,
        path.as_str(),
        &query,
        signature_header,
        body,
    )
    .await;
    let outcome = match response.status() {
        StatusCode::OK | StatusCode::NO_CONTENT => "accepted",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::BAD_REQUEST => "malformed",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "other",
    };
    metrics::counter!("waiter_ingest_webhooks_total", "endpoint" => endpoint.name(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("waiter_ingest_ack_seconds", "endpoint" => endpoint.name())
        .record(started.elapsed().as_secs_f64());
    response
}

async fn accept(
    state: &Inner,
    endpoint: Endpoint,
    path: &str,
    query: &str,
    signature_header: Option<String>,
    body: Bytes,
) -> Response<Body> {
    let pairs = match form::parse_pairs(&body) {
        Ok(pairs) => pairs,
        Err(e) => {
            refuse(
                state,
                endpoint,
                WebhookOutcome::Malformed,
                &e.to_string(),
                vec![],
            )
            .await;
            return plain(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    if state.config.validate_signatures {
        let url = if query.is_empty() {
            format!("{}{path}", state.config.public_url)
        } else {
            format!("{}{path}?{query}", state.config.public_url)
        };
        let Some(account) = form::account_of(&pairs).map(str::to_string) else {
            let reason = "required parameter AccountSid is missing";
            refuse(state, endpoint, WebhookOutcome::Malformed, reason, pairs).await;
            return plain(StatusCode::BAD_REQUEST, reason);
        };
        let Some(token) = state.directory.auth_token(&account) else {
            let reason = "unknown account: the signature cannot be checked";
            refuse(
                state,
                endpoint,
                WebhookOutcome::UnknownAccount,
                reason,
                pairs,
            )
            .await;
            return plain(StatusCode::FORBIDDEN, reason);
        };
        if !signature::is_valid(
            token.expose_secret(),
            &url,
            &pairs,
            signature_header.as_deref(),
        ) {
            let reason = if signature_header.is_none() {
                "X-Twilio-Signature is missing"
            } else {
                "X-Twilio-Signature does not match"
            };
            refuse(state, endpoint, WebhookOutcome::BadSignature, reason, pairs).await;
            return plain(StatusCode::FORBIDDEN, reason);
        }
    }
    let topology = state.bus.topology();
    let trace_id = new_id();
    let published = match endpoint {
        Endpoint::Message => match form::inbound_message(pairs.clone()) {
            Ok(message) => {
                let subject = topology
                    .inbound_message(topology.inbound_partition(&message.to, &message.from));
                let envelope = Envelope::new(message.message_sid.clone(), trace_id, message);
                publish(state, subject, &envelope).await
            }
            Err(e) => {
                refuse(
                    state,
                    endpoint,
                    WebhookOutcome::Malformed,
                    &e.to_string(),
                    pairs,
                )
                .await;
                return plain(StatusCode::BAD_REQUEST, &e.to_string());
            }
        },
        Endpoint::Status => match form::status_callback(pairs.clone()) {
            Ok(callback) => {
                let id = format!("{}:{}", callback.message_sid, callback.status);
                let envelope = Envelope::new(id, trace_id, callback);
                publish(state, topology.status_callback(), &envelope).await
            }
            Err(e) => {
                refuse(
                    state,
                    endpoint,
                    WebhookOutcome::Malformed,
                    &e.to_string(),
                    pairs,
                )
                .await;
                return plain(StatusCode::BAD_REQUEST, &e.to_string());
            }
        },
    };
    match published {
        Ok(duplicate) => {
            if duplicate {
                refuse(
                    state,
                    endpoint,
                    WebhookOutcome::Duplicate,
                    "already accepted",
                    pairs,
                )
                .await;
            }
            match endpoint {
                Endpoint::Message => Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "text/xml; charset=utf-8")
                    .body(Body::from(TWIML_EMPTY))
                    .expect("response"),
                Endpoint::Status => Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .body(Body::empty())
                    .expect("response"),
            }
        }
        Err(e) => {
            tracing::error!(error = %e, endpoint = endpoint.name(), "JetStream did not take the webhook: answering 503 so Twilio retries");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable, retry",
            )
        }
    }
}

/// Publishes and reports whether JetStream had it already.
async fn publish<T: Payload>(
    state: &Inner,
    subject: String,
    envelope: &Envelope<T>,
) -> Result<bool, BusError> {
    state
        .bus
        .publish(subject, envelope)
        .await
        .map(|published| published.duplicate)
}

/// Records a refused (or duplicate) webhook for the audit log. Best effort:
/// the answer to Twilio does not wait on it beyond the publish timeout.
async fn refuse(
    state: &Inner,
    endpoint: Endpoint,
    outcome: WebhookOutcome,
    reason: &str,
    pairs: Vec<(String, String)>,
) {
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let record = RejectedWebhook {
        endpoint: endpoint.name().to_string(),
        outcome,
        reason: reason.to_string(),
        account_sid: get("AccountSid"),
        message_sid: get("MessageSid"),
        to: get("To"),
        params: form::redact(pairs.clone()),
        received_at: Utc::now(),
    };
    if outcome != WebhookOutcome::Duplicate {
        tracing::info!(endpoint = endpoint.name(), outcome = outcome.as_str(), reason, account = ?record.account_sid, "webhook refused");
    }
    let envelope = Envelope::new(new_id(), new_id(), record);
    if let Err(e) = state
        .bus
        .publish(state.bus.topology().rejected_webhook(), &envelope)
        .await
    {
        tracing::warn!(error = %e, "could not record refused webhook for the audit log");
    }
}
