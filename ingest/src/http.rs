//! The webhook endpoints.

use std::{convert::Infallible, sync::Arc, time::Instant};

use bytes::Bytes;
use chrono::Utc;
use secrecy::ExposeSecret;
use waiter_nats::{
    directory::DirectoryCache, envelope::new_id, messages::WebhookOutcome, Bus, BusError, Envelope,
    Payload,
};
use waiter_runtime::{http::ClientAddr, Health};
use warp::{
    http::{header, Response, StatusCode},
    hyper::Body,
    Filter, Rejection,
};

use crate::{
    form,
    refusals::{self, Refusals, Verdict},
    signature, Config,
};

const TWIML_EMPTY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

pub struct Inner {
    config: Config,
    bus: Bus,
    directory: DirectoryCache,
    refusals: Arc<Refusals>,
}

#[derive(Clone)]
pub struct State(Arc<Inner>);

impl State {
    pub fn new(
        config: Config,
        bus: Bus,
        directory: DirectoryCache,
        refusals: Arc<Refusals>,
    ) -> Self {
        State(Arc::new(Inner {
            config,
            bus,
            directory,
            refusals,
        }))
    }
}

/// A request refused before its body was read: an unsigned request from a
/// source over its threshold (it could never have been valid).
#[derive(Debug)]
struct Throttled;

impl warp::reject::Reject for Throttled {}

/// The address refusals are counted under.
fn source_of(config: &Config, peer: Option<ClientAddr>, headers: &warp::http::HeaderMap) -> String {
    let forwarded = config.client_ip_header.as_deref().and_then(|name| {
        let value = headers.get(name)?.to_str().ok()?;
        let last = value.rsplit(',').next()?.trim();
        (!last.is_empty()).then(|| printable(last))
    });
    forwarded.unwrap_or_else(|| match peer {
        Some(ClientAddr(addr)) => addr.ip().to_string(),
        None => "unknown".into(),
    })
}

/// A header value as a source name: bounded and printable.
fn printable(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_control()).take(64).collect()
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
    let source = with_state
        .clone()
        .and(warp::ext::optional::<ClientAddr>())
        .and(warp::header::headers_cloned())
        .map(|state: State, peer, headers| source_of(&state.0.config, peer, &headers));
    let signature = || warp::header::optional::<String>("x-twilio-signature");
    let webhook = move |endpoint: Endpoint| {
        // Before the body is read: an unsigned request from a source over
        // its threshold is counted and refused at once.
        let gate = with_state
            .clone()
            .and(source.clone())
            .and(signature())
            .and_then(
                move |state: State, source: String, signature: Option<String>| async move {
                    if signature.is_none() && state.0.throttles_unsigned(&source) {
                        state.0.count_throttled(endpoint, &source);
                        return Err(warp::reject::custom(Throttled));
                    }
                    Ok(())
                },
            )
            .untuple_one();
        warp::post()
            .and(with_state.clone())
            .and(warp::any().map(move || endpoint))
            .and(warp::path::full())
            .and(query)
            .and(signature())
            .and(source.clone())
            .and(gate)
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
    let response = if err.find::<Throttled>().is_some() {
        metrics::counter!("waiter_ingest_webhooks_total", "outcome" => "throttled").increment(1);
        let mut response = plain(StatusCode::FORBIDDEN, "X-Twilio-Signature is missing");
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        response
    } else if err.is_not_found() {
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

impl Inner {
    /// Unsigned requests can be refused unread only when signatures are
    /// checked and the directory is loaded (before that the answer is 503).
    fn throttles_unsigned(&self, source: &str) -> bool {
        self.config.validate_signatures
            && self.directory.is_loaded()
            && self.refusals.is_throttled(source, Utc::now())
    }

    fn count_throttled(&self, endpoint: Endpoint, source: &str) {
        self.refusals.record(
            endpoint.name(),
            WebhookOutcome::BadSignature,
            source,
            "X-Twilio-Signature is missing",
            true,
            Utc::now(),
            Default::default,
        );
    }
}

/// One request as `accept` sees it.
struct Request<'a> {
    endpoint: Endpoint,
    path: &'a str,
    query: &'a str,
    signature: Option<String>,
    source: &'a str,
}

async fn handle(
    state: State,
    endpoint: Endpoint,
    path: warp::path::FullPath,
    query: String,
    signature: Option<String>,
    source: String,
    body: Bytes,
) -> Response<Body> {
    let started = Instant::now();
    let request = Request {
        endpoint,
        path: path.as_str(),
        query: &query,
        signature,
        source: &source,
    };
    let response = accept(&state.0, request, body).await;
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

fn unavailable(reason: &str) -> Response<Body> {
    plain(StatusCode::SERVICE_UNAVAILABLE, reason)
}

async fn accept(state: &Inner, request: Request<'_>, body: Bytes) -> Response<Body> {
    let endpoint = request.endpoint;
    if !state.directory.is_loaded() {
        // Before the directory is loaded every account looks unknown: a
        // 403 would make Twilio drop a real message, a 503 makes it retry.
        return unavailable("starting: the tenant directory is not loaded yet, retry");
    }
    let pairs = match form::parse_pairs(&body) {
        Ok(pairs) => pairs,
        Err(e) => {
            let reason = e.to_string();
            let refused = Refused::new(&request, WebhookOutcome::Malformed, &reason);
            return refuse(state, refused, &[], StatusCode::BAD_REQUEST);
        }
    };
    if state.config.validate_signatures {
        let url = if request.query.is_empty() {
            format!("{}{}", state.config.public_url, request.path)
        } else {
            format!(
                "{}{}?{}",
                state.config.public_url, request.path, request.query
            )
        };
        let Some(account) = form::account_of(&pairs).map(str::to_string) else {
            let reason = "required parameter AccountSid is missing";
            let refused = Refused::new(&request, WebhookOutcome::Malformed, reason);
            return refuse(state, refused, &pairs, StatusCode::BAD_REQUEST);
        };
        let Some(token) = state.directory.auth_token(&account) else {
            let reason = "unknown account: the signature cannot be checked";
            let refused = Refused::new(&request, WebhookOutcome::UnknownAccount, reason);
            return refuse(state, refused, &pairs, StatusCode::FORBIDDEN);
        };
        if !signature::is_valid(
            token.expose_secret(),
            &url,
            &pairs,
            request.signature.as_deref(),
        ) {
            let reason = if request.signature.is_none() {
                "X-Twilio-Signature is missing"
            } else {
                "X-Twilio-Signature does not match"
            };
            let refused = Refused::new(&request, WebhookOutcome::BadSignature, reason);
            return refuse(state, refused, &pairs, StatusCode::FORBIDDEN);
        }
    }
    // From here the request is Twilio's (or signatures are off): it is
    // never throttled.
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
                let reason = e.to_string();
                let refused = Refused::signed(&request, WebhookOutcome::Malformed, &reason);
                return refuse(state, refused, &pairs, StatusCode::BAD_REQUEST);
            }
        },
        Endpoint::Status => match form::status_callback(pairs.clone()) {
            Ok(callback) => {
                let id = format!("{}:{}", callback.message_sid, callback.status);
                let envelope = Envelope::new(id, trace_id, callback);
                publish(state, topology.status_callback(), &envelope).await
            }
            Err(e) => {
                let reason = e.to_string();
                let refused = Refused::signed(&request, WebhookOutcome::Malformed, &reason);
                return refuse(state, refused, &pairs, StatusCode::BAD_REQUEST);
            }
        },
    };
    match published {
        Ok(duplicate) => {
            if duplicate {
                let refused =
                    Refused::signed(&request, WebhookOutcome::Duplicate, "already accepted");
                count(state, refused, &pairs);
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
            unavailable("temporarily unavailable, retry")
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

/// A refused (or duplicate) request, to count.
struct Refused<'a> {
    endpoint: Endpoint,
    outcome: WebhookOutcome,
    reason: &'a str,
    source: &'a str,
    /// Failed (or could not have) the signature check: may be throttled.
    unsigned: bool,
}

impl<'a> Refused<'a> {
    fn new(request: &Request<'a>, outcome: WebhookOutcome, reason: &'a str) -> Self {
        Self {
            endpoint: request.endpoint,
            outcome,
            reason,
            source: request.source,
            unsigned: true,
        }
    }

    /// Refused after a valid signature (or with signatures off).
    fn signed(request: &Request<'a>, outcome: WebhookOutcome, reason: &'a str) -> Self {
        Self {
            unsigned: false,
            ..Self::new(request, outcome, reason)
        }
    }
}

/// Counts a request for the refusal reports; logs the sampled ones.
fn count(state: &Inner, r: Refused<'_>, pairs: &[(String, String)]) -> Verdict {
    let now = Utc::now();
    let verdict = state.refusals.record(
        r.endpoint.name(),
        r.outcome,
        r.source,
        r.reason,
        r.unsigned,
        now,
        || refusals::sample(r.reason, pairs, now),
    );
    if verdict == Verdict::Sampled && r.outcome != WebhookOutcome::Duplicate {
        tracing::info!(endpoint = r.endpoint.name(), outcome = r.outcome.as_str(), reason = r.reason,
            source = r.source, account = ?form::account_of(pairs).map(|a| form::visible(a).into_owned()),
            "webhook refused");
    }
    verdict
}

/// Answers a refused request with `status` (never 429: Twilio must not see
/// one). A source over its threshold gets the same answer, without a
/// sample or a log line, and its connection closed.
fn refuse(
    state: &Inner,
    r: Refused<'_>,
    pairs: &[(String, String)],
    status: StatusCode,
) -> Response<Body> {
    let reason = r.reason.to_string();
    let verdict = count(state, r, pairs);
    let mut response = plain(status, &reason);
    if verdict == Verdict::Throttled {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}
