//! Every answer that is not a success, as JSON:
//! `{"error": "<code>", "reason": "<why>"}`.

use std::convert::Infallible;

use serde_json::json;
use warp::{
    http::{header, HeaderValue, Method, StatusCode},
    reply::{Reply, Response},
    Rejection,
};

use crate::auth::AuthError;

/// Why a request failed. Transient errors (the bus or the database is
/// unavailable, the order stage did not answer in time) may succeed when
/// retried; the others will not.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unauthorized: {0}")]
    Unauthorized(AuthError),
    /// Unknown, or another restaurant's (never told apart: invariant 4).
    #[error("not found")]
    NotFound,
    /// No operation of the API has this path.
    #[error("no such route")]
    NoRoute,
    /// The path exists with these methods only.
    #[error("method not allowed")]
    MethodNotAllowed(Vec<Method>),
    #[error("body over {0} bytes")]
    PayloadTooLarge(usize),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("illegal transition: {0}")]
    IllegalTransition(String),
    /// A rule of WhatsApp's refuses the request as it stands (its `code`
    /// says which, e.g. `outside_session_window`); nothing was done.
    #[error("refused ({0}): {1}")]
    Refused(&'static str, String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(reason: impl Into<String>) -> Self {
        ApiError::BadRequest(reason.into())
    }

    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Unavailable(_) | ApiError::Timeout(_) => true,
            ApiError::Database(e) => is_transient_db(e),
            _ => false,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::IllegalTransition(_) | ApiError::Refused(..) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Database(e) if is_transient_db(e) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Database(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::NotFound | ApiError::NoRoute => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::IllegalTransition(_) => "illegal_transition",
            ApiError::Refused(code, _) => code,
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Timeout(_) => "timeout",
            ApiError::Database(e) if is_transient_db(e) => "unavailable",
            ApiError::Database(_) | ApiError::Internal(_) => "internal",
        }
    }

    fn reason(&self) -> String {
        match self {
            ApiError::Unauthorized(e) => e.to_string(),
            ApiError::NotFound => "no such resource".into(),
            ApiError::NoRoute => NO_ROUTE.into(),
            ApiError::MethodNotAllowed(allowed) => format!(
                "method not allowed on this resource (allowed: {})",
                allow_list(allowed)
            ),
            ApiError::PayloadTooLarge(limit) => {
                format!("request body too large (at most {limit} bytes)")
            }
            ApiError::BadRequest(r)
            | ApiError::IllegalTransition(r)
            | ApiError::Unavailable(r)
            | ApiError::Timeout(r)
            | ApiError::Refused(_, r) => r.clone(),
            ApiError::Database(e) if is_transient_db(e) => "database unavailable, retry".into(),
            // Details of internal failures go to the log, not to the client.
            ApiError::Database(_) | ApiError::Internal(_) => "internal error".into(),
        }
    }
}

fn is_transient_db(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

impl warp::reject::Reject for ApiError {}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Database(_) | ApiError::Internal(_) => {
                tracing::error!(error = %self, "request failed")
            }
            ApiError::Unavailable(_) | ApiError::Timeout(_) => {
                tracing::warn!(error = %self, "request failed")
            }
            _ => {}
        }
        let mut response = match &self {
            // The rule's name also as `code`, which clients switch on.
            ApiError::Refused(code, reason) => warp::reply::with_status(
                warp::reply::json(&json!({"error": code, "code": code, "reason": reason})),
                self.status(),
            )
            .into_response(),
            _ => json_error(self.status(), self.code(), &self.reason()),
        };
        if let ApiError::MethodNotAllowed(allowed) = &self {
            if let Ok(value) = HeaderValue::from_str(&allow_list(allowed)) {
                response.headers_mut().insert(header::ALLOW, value);
            }
        }
        response
    }
}

/// The `reason` of a 404 for a path no operation has (a 404 for a row
/// that does not exist says "no such resource").
pub const NO_ROUTE: &str = "no such route";

fn allow_list(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn json_error(status: StatusCode, code: &str, reason: &str) -> Response {
    warp::reply::with_status(
        warp::reply::json(&json!({"error": code, "reason": reason})),
        status,
    )
    .into_response()
}

/// Turns every rejection into a JSON answer.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    use warp::reject;
    let response = if let Some(e) = rejection.find::<AuthRejection>() {
        json_error(StatusCode::UNAUTHORIZED, "unauthorized", &e.0.to_string())
    } else if let Some(e) = rejection.find::<ApiError>() {
        // Handlers answer errors themselves; this is for filters.
        json_error(e.status(), e.code(), &e.reason())
    } else if rejection.is_not_found() {
        json_error(StatusCode::NOT_FOUND, "not_found", NO_ROUTE)
    } else if rejection.find::<reject::MethodNotAllowed>().is_some() {
        json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this resource",
        )
    } else if rejection.find::<reject::PayloadTooLarge>().is_some() {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body too large",
        )
    } else if rejection.find::<reject::LengthRequired>().is_some() {
        json_error(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "a Content-Length header is required",
        )
    } else if let Some(e) = rejection.find::<reject::InvalidHeader>() {
        json_error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string())
    } else if let Some(e) = rejection.find::<reject::MissingHeader>() {
        json_error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string())
    } else if rejection.find::<reject::InvalidQuery>().is_some() {
        json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "invalid query string",
        )
    } else {
        // e.g. a plain GET on /ws (no upgrade headers).
        tracing::debug!(?rejection, "unhandled rejection");
        json_error(StatusCode::BAD_REQUEST, "bad_request", "bad request")
    };
    Ok(response)
}

/// A failed authentication, raised by the auth filters.
#[derive(Debug)]
pub struct AuthRejection(pub AuthError);

impl warp::reject::Reject for AuthRejection {}
