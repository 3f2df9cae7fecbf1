//! The HTTP routes: the Messages API, plus `/sim/*` for humans and scripts
//! and `/health`.

use std::{convert::Infallible, sync::Arc};

use serde::Deserialize;
use serde_json::{json, Value};
use warp::{http::StatusCode, reply::Response, Filter, Rejection, Reply};

use crate::{
    api::{self, error_json, Fault, Misbehaviour},
    customer::{InboundRequest, InboundSpec},
    Core,
};

/// The largest request body accepted (Twilio's own limit is far above any
/// message: 1600 characters plus up to 10 media URLs).
const MAX_BODY_BYTES: u64 = 1024 * 1024;

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

#[derive(Debug, Deserialize)]
struct ToQuery {
    to: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AccountRequest {
    account_sid: String,
    auth_token: String,
}

pub(crate) fn routes(
    core: Arc<Core>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let with_core = warp::any().map(move || core.clone());

    // Paths before methods, so an unknown path is a 404, not a 405.
    let messages = warp::path!("2010-04-01" / "Accounts" / String / "Messages.json")
        .and(warp::post())
        .and(with_core.clone())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::bytes())
        .then(api::create_message);

    let health = warp::path!("health")
        .and(warp::get())
        .map(|| json_response(StatusCode::OK, &json!({ "status": "ok" })));

    let list_messages = warp::path!("sim" / "messages")
        .and(warp::get())
        .and(with_core.clone())
        .and(warp::query::<ToQuery>())
        .map(|core: Arc<Core>, query: ToQuery| {
            let sent = match query.to {
                Some(to) => core.state.sent_to(&to),
                None => core.state.sent(),
            };
            warp::reply::json(&sent).into_response()
        });

    let list_requests = warp::path!("sim" / "requests")
        .and(warp::get())
        .and(with_core.clone())
        .map(|core: Arc<Core>| warp::reply::json(&core.state.requests()).into_response());

    let inbound = warp::path!("sim" / "inbound")
        .and(warp::post())
        .and(with_core.clone())
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::json())
        .then(sim_inbound);

    let faults = warp::path!("sim" / "faults")
        .and(warp::post())
        .and(with_core.clone())
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::json())
        .map(|core: Arc<Core>, fault: Fault| {
            tracing::info!(
                http_status = fault.http_status,
                code = fault.code,
                times = fault.times,
                to = fault.to.as_deref().unwrap_or("*"),
                "fault injected"
            );
            let echo = json!(fault);
            core.state.add_fault(fault);
            json_response(StatusCode::CREATED, &echo)
        });

    let misbehave = warp::path!("sim" / "misbehave")
        .and(warp::post())
        .and(with_core.clone())
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::json())
        .map(|core: Arc<Core>, misbehaviour: Misbehaviour| {
            tracing::info!(?misbehaviour, "misbehaviour injected");
            core.state.add_misbehaviour(misbehaviour);
            json_response(StatusCode::CREATED, &json!(misbehaviour))
        });

    let accounts = warp::path!("sim" / "accounts")
        .and(warp::post())
        .and(with_core)
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::json())
        .map(|core: Arc<Core>, account: AccountRequest| {
            tracing::info!(account_sid = %account.account_sid, "account added");
            let reply = json!({ "account_sid": account.account_sid });
            core.state
                .add_account(account.account_sid, account.auth_token);
            json_response(StatusCode::CREATED, &reply)
        });

    messages
        .or(health)
        .unify()
        .or(list_messages)
        .unify()
        .or(list_requests)
        .unify()
        .or(inbound)
        .unify()
        .or(faults)
        .unify()
        .or(misbehave)
        .unify()
        .or(accounts)
        .unify()
        .recover(recover)
        .unify()
}

async fn sim_inbound(core: Arc<Core>, request: InboundRequest) -> Response {
    let account_sid = match core.resolve_account(request.account_sid) {
        Ok(sid) => sid,
        Err(e) => {
            return json_response(StatusCode::BAD_REQUEST, &json!({ "error": e.to_string() }))
        }
    };
    let spec = InboundSpec {
        account_sid,
        from: request.from,
        to: request.to,
        body: request.body,
        profile_name: request.profile_name,
        message_sid: request.message_sid,
        extra: request.extra.into_pairs(),
    };
    match core.send_inbound(spec).await {
        Ok(result) => json_response(StatusCode::OK, &json!(result)),
        Err(e) => {
            let status = if e.is_upstream() {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::BAD_REQUEST
            };
            json_response(status, &json!({ "error": e.chain() }))
        }
    }
}

/// Twilio-shaped errors for requests no route took.
async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let (status, code, message) = if rejection.is_not_found() {
        (
            404,
            20404,
            "The requested resource was not found".to_string(),
        )
    } else if let Some(e) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        (400, 20001, format!("Invalid JSON body: {e}"))
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (405, 20004, "Method not allowed".to_string())
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (413, 20001, "Request body too large".to_string())
    } else if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        (415, 20001, "Unsupported media type".to_string())
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        (400, 20001, "Invalid query string".to_string())
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        (500, 20500, "Internal server error".to_string())
    };
    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Ok(json_response(
        status_code,
        &error_json(code, &message, status),
    ))
}
