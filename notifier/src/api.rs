//! The REST API under `/api/restaurants/:id/...`.
//!
//! Every route is scoped to `:id`, which must be the token's restaurant
//! unless the caller is an admin; otherwise the answer is 404, exactly as
//! for a restaurant, conversation or order that does not exist.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::json;
use uuid::Uuid;
use waiter_nats::{
    envelope::new_id,
    events::{DashboardEvent, EventType},
    messages::{
        Actor, ConversationInput, OrderAction, OrderCommand, OrderReply, OrderStatus, SetBotActive,
        StaffReply,
    },
    Envelope, Payload,
};
use warp::{
    filters::BoxedFilter,
    http::StatusCode,
    reply::{Reply, Response},
    Filter, Rejection,
};

use crate::{
    auth::{Principal, Role},
    error::{ApiError, AuthRejection},
    paging::{Cursor, Query},
    store, App,
};

/// The longest text a staff member may send (Twilio's WhatsApp body limit).
pub const MAX_MESSAGE_CHARS: usize = 1600;
/// The largest JSON body the API reads.
pub const MAX_BODY_BYTES: u64 = 16 * 1024;

/// The caller and the restaurant a request is about, once checked.
#[derive(Debug, Clone)]
pub struct Scope {
    pub principal: Principal,
    pub restaurant_id: Uuid,
}

/// `Authorization: Bearer <JWT>` → the caller, or a 401 rejection.
pub fn authenticated(
    app: Arc<App>,
) -> impl Filter<Extract = (Principal,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization").and_then(move |header: Option<String>| {
        let app = app.clone();
        async move {
            app.auth
                .from_header(header.as_deref())
                .map_err(|e| warp::reject::custom(AuthRejection(e)))
        }
    })
}

/// A matched REST request, before it is authorised.
enum Route {
    Conversations { query: String },
    Messages { cid: String, query: String },
    Send { cid: String, body: Bytes },
    Bot { cid: String, body: Bytes },
    Read { cid: String },
    Orders { query: String },
    Status { oid: String, body: Bytes },
    Analytics { query: String },
}

/// `/api/restaurants/:id/...`: the token is checked and the restaurant
/// scoped once, then the request is routed.
pub fn routes(app: Arc<App>) -> BoxedFilter<(Response,)> {
    let scoped = {
        let app = app.clone();
        warp::path("api")
            .and(authenticated(app.clone()))
            .and(warp::path("restaurants"))
            .and(warp::path::param::<String>())
            .and_then(move |principal: Principal, id: String| {
                let app = app.clone();
                async move {
                    scope(&app, principal, &id)
                        .await
                        .map_err(warp::reject::custom)
                }
            })
    };
    let body = warp::body::content_length_limit(MAX_BODY_BYTES).and(warp::body::bytes());
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();

    let conversations = warp::path!("conversations")
        .and(warp::get())
        .and(query)
        .map(|query| Route::Conversations { query });
    let messages = warp::path!("conversations" / String / "messages")
        .and(warp::get())
        .and(query)
        .map(|cid, query| Route::Messages { cid, query });
    let send = warp::path!("conversations" / String / "send")
        .and(warp::post())
        .and(body)
        .map(|cid, body| Route::Send { cid, body });
    let bot = warp::path!("conversations" / String / "bot")
        .and(warp::post())
        .and(body)
        .map(|cid, body| Route::Bot { cid, body });
    let read = warp::path!("conversations" / String / "read")
        .and(warp::post())
        .map(|cid| Route::Read { cid });
    let orders = warp::path!("orders")
        .and(warp::get())
        .and(query)
        .map(|query| Route::Orders { query });
    let status = warp::path!("orders" / String / "status")
        .and(warp::patch())
        .and(body)
        .map(|oid, body| Route::Status { oid, body });
    let analytics = warp::path!("analytics")
        .and(warp::get())
        .and(query)
        .map(|query| Route::Analytics { query });
    let route = conversations
        .or(messages)
        .unify()
        .or(send)
        .unify()
        .or(bot)
        .unify()
        .or(read)
        .unify()
        .or(orders)
        .unify()
        .or(status)
        .unify()
        .or(analytics)
        .unify();

    scoped
        .and(route)
        .then(move |scope: Scope, route: Route| {
            let app = app.clone();
            async move { within(&app, dispatch(&app, scope, route)).await }
        })
        .boxed()
}

async fn dispatch(app: &App, scope: Scope, route: Route) -> Result<Response, ApiError> {
    match route {
        Route::Conversations { query } => list_conversations(app, scope, &query).await,
        Route::Messages { cid, query } => list_messages(app, scope, &cid, &query).await,
        Route::Send { cid, body } => send_message(app, scope, &cid, &body).await,
        Route::Bot { cid, body } => set_bot(app, scope, &cid, &body).await,
        Route::Read { cid } => mark_read(app, scope, &cid).await,
        Route::Orders { query } => list_orders(app, scope, &query).await,
        Route::Status { oid, body } => set_order_status(app, scope, &oid, &body).await,
        Route::Analytics { query } => analytics(app, scope, &query).await,
    }
}

/// Runs a handler under the request deadline; errors become JSON answers.
async fn within(
    app: &App,
    handler: impl std::future::Future<Output = Result<Response, ApiError>>,
) -> Response {
    match tokio::time::timeout(app.request_deadline(), handler).await {
        Ok(result) => result.unwrap_or_else(Reply::into_response),
        Err(_) => ApiError::Unavailable("the request took too long; retry".into()).into_response(),
    }
}

fn json_reply(status: StatusCode, body: &impl serde::Serialize) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// `:id` must be the caller's restaurant, or any existing one for an admin.
async fn scope(app: &App, principal: Principal, id: &str) -> Result<Scope, ApiError> {
    let restaurant_id = parse_id(id)?;
    if !principal.may_access(restaurant_id) {
        return Err(ApiError::NotFound);
    }
    if principal.role == Role::Admin && !store::restaurant_exists(&app.pool, restaurant_id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(Scope {
        principal,
        restaurant_id,
    })
}

/// An id in a path: not a UUID is not found.
fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn query(raw: &str) -> Result<Query, ApiError> {
    Query::parse(raw).map_err(ApiError::BadRequest)
}

fn bus_unavailable(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "bus refused a dashboard request");
    ApiError::Unavailable("the message bus cannot take the request now; retry".into())
}

async fn publish<T: Payload>(
    app: &App,
    subject: String,
    envelope: &Envelope<T>,
) -> Result<(), ApiError> {
    app.bus
        .publish(subject, envelope)
        .await
        .map(|_| ())
        .map_err(bus_unavailable)
}

// ------------------------------------------------------------ conversations

/// `GET conversations?limit&before`: newest first by last message.
async fn list_conversations(app: &App, scope: Scope, raw: &str) -> Result<Response, ApiError> {
    let q = query(raw)?;
    let limit = q.limit().map_err(ApiError::BadRequest)?;
    let before = q.before().map_err(ApiError::BadRequest)?;
    let mut rows = store::conversations(
        &app.pool,
        scope.restaurant_id,
        before.map(|b| b.for_ascending_ties()),
        limit,
    )
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = more.then(|| rows.last()).flatten().map(|c| {
        Cursor {
            at: c.last_message_at,
            id: c.id,
        }
        .encode()
    });
    Ok(json_reply(
        StatusCode::OK,
        &json!({"conversations": rows, "next": next}),
    ))
}

/// `GET conversations/:cid/messages?limit&before`: the most recent `limit`
/// messages (before the cursor), oldest first within the page; `next`
/// pages towards older messages.
async fn list_messages(
    app: &App,
    scope: Scope,
    cid: &str,
    raw: &str,
) -> Result<Response, ApiError> {
    let conversation_id = parse_id(cid)?;
    let q = query(raw)?;
    let limit = q.limit().map_err(ApiError::BadRequest)?;
    let before = q.before().map_err(ApiError::BadRequest)?;
    store::conversation(&app.pool, scope.restaurant_id, conversation_id).await?;
    let mut rows = store::messages_newest_first(
        &app.pool,
        scope.restaurant_id,
        conversation_id,
        before.map(|b| b.for_descending_ties()),
        limit,
    )
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = more.then(|| rows.last()).flatten().map(|m| {
        Cursor {
            at: Some(m.created_at),
            id: m.id,
        }
        .encode()
    });
    rows.reverse();
    Ok(json_reply(
        StatusCode::OK,
        &json!({"messages": rows, "next": next}),
    ))
}

#[derive(Deserialize)]
struct SendBody {
    message: String,
}

/// `POST conversations/:cid/send {"message"}` → 202 `{"message_id"}` once
/// the bus has stored the reply; the conversation stage persists it,
/// pauses the bot and sends it.
async fn send_message(
    app: &App,
    scope: Scope,
    cid: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let conversation_id = parse_id(cid)?;
    let SendBody { message } = parse_body(body)?;
    validate_message(&message)?;
    let conversation = store::conversation(&app.pool, scope.restaurant_id, conversation_id).await?;
    let message_id = Uuid::new_v4();
    let input = ConversationInput::StaffReply(StaffReply {
        message_id,
        restaurant_id: scope.restaurant_id,
        conversation_id,
        staff: scope.principal.sub.clone(),
        text: message,
    });
    let topology = app.bus.topology();
    let subject = topology.conversation(
        topology.conversation_partition(&scope.restaurant_id, &conversation.customer),
    );
    publish(
        app,
        subject,
        &Envelope::new(message_id.to_string(), new_id(), input),
    )
    .await?;
    metrics::counter!("waiter_notifier_staff_messages_total").increment(1);
    Ok(json_reply(
        StatusCode::ACCEPTED,
        &json!({"message_id": message_id}),
    ))
}

pub fn validate_message(message: &str) -> Result<(), ApiError> {
    if message.trim().is_empty() {
        return Err(ApiError::bad_request("`message` must not be empty"));
    }
    let chars = message.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(ApiError::bad_request(format!(
            "`message` is {chars} characters long; at most {MAX_MESSAGE_CHARS} are allowed"
        )));
    }
    if let Some((at, c)) = message
        .chars()
        .enumerate()
        .find(|(_, c)| is_refused_control(*c))
    {
        return Err(ApiError::bad_request(format!(
            "`message` contains the control character U+{:04X} at character {at}; \
             only line breaks and tabs are allowed",
            c as u32
        )));
    }
    Ok(())
}

/// Control characters (Unicode category Cc: C0, DEL, C1) other than line
/// feed, carriage return and tab. WhatsApp text carries none of them, and
/// PostgreSQL cannot store U+0000. Format characters (the bidi marks of
/// Arabic text, ZWJ in emoji) are not control characters and pass.
fn is_refused_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\n' | '\r' | '\t')
}

#[derive(Deserialize)]
struct BotBody {
    active: bool,
}

/// `POST conversations/:cid/bot {"active"}` → 202 once stored on the bus.
async fn set_bot(app: &App, scope: Scope, cid: &str, body: &[u8]) -> Result<Response, ApiError> {
    let conversation_id = parse_id(cid)?;
    let BotBody { active } = parse_body(body)?;
    let conversation = store::conversation(&app.pool, scope.restaurant_id, conversation_id).await?;
    let request_id = Uuid::new_v4();
    let input = ConversationInput::SetBotActive(SetBotActive {
        restaurant_id: scope.restaurant_id,
        conversation_id,
        active,
        actor: scope.principal.sub.clone(),
    });
    let topology = app.bus.topology();
    let subject = topology.conversation(
        topology.conversation_partition(&scope.restaurant_id, &conversation.customer),
    );
    publish(
        app,
        subject,
        &Envelope::new(request_id.to_string(), new_id(), input),
    )
    .await?;
    Ok(json_reply(
        StatusCode::ACCEPTED,
        &json!({"request_id": request_id, "active": active}),
    ))
}

/// `POST conversations/:cid/read` → 200 with the conversation, after the
/// `conversation.updated` event is stored (idempotent: retry on 503).
async fn mark_read(app: &App, scope: Scope, cid: &str) -> Result<Response, ApiError> {
    let conversation_id = parse_id(cid)?;
    let view = store::mark_read(&app.pool, scope.restaurant_id, conversation_id).await?;
    let event = DashboardEvent::new(scope.restaurant_id, EventType::ConversationUpdated, &view);
    let subject = event.subject(app.bus.topology());
    publish(app, subject, &Envelope::new(new_id(), new_id(), event)).await?;
    Ok(json_reply(StatusCode::OK, &view))
}

// ------------------------------------------------------------------ orders

/// `GET orders?status&limit`: newest first.
async fn list_orders(app: &App, scope: Scope, raw: &str) -> Result<Response, ApiError> {
    let q = query(raw)?;
    let limit = q.limit().map_err(ApiError::BadRequest)?;
    let status = q.get("status").map(parse_status).transpose()?;
    let orders = store::orders(&app.pool, scope.restaurant_id, status, limit).await?;
    Ok(json_reply(StatusCode::OK, &json!({"orders": orders})))
}

fn parse_status(raw: &str) -> Result<OrderStatus, ApiError> {
    OrderStatus::parse(raw).ok_or_else(|| {
        let known: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
        ApiError::bad_request(format!(
            "unknown status {raw:?}; expected one of {}",
            known.join(", ")
        ))
    })
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
}

/// `PATCH orders/:oid/status {"status"}`: asks the order stage and waits
/// for its answer. 200 with the order, 409 when the state machine refuses,
/// 504 when it did not answer in time (the change may still happen; the
/// `order.updated` event tells).
async fn set_order_status(
    app: &App,
    scope: Scope,
    oid: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let order_id = parse_id(oid)?;
    let StatusBody { status } = parse_body(body)?;
    let to = parse_status(&status)?;
    store::order(&app.pool, scope.restaurant_id, order_id).await?;

    let command_id = Uuid::new_v4();
    let client = app.bus.client();
    let inbox = client.new_inbox();
    // Subscribed before publishing, on the same connection: the server
    // knows the inbox before the command can reach the order stage.
    let mut replies = client
        .subscribe(inbox.clone())
        .await
        .map_err(bus_unavailable)?;
    let command = OrderCommand {
        command_id,
        restaurant_id: scope.restaurant_id,
        order_id,
        actor: Actor::Staff(scope.principal.sub.clone()),
        action: OrderAction::Transition { to, reason: None },
        reply_to: Some(inbox),
    };
    let topology = app.bus.topology();
    let subject = topology.order_command(topology.order_partition(&order_id));
    publish(
        app,
        subject,
        &Envelope::new(command_id.to_string(), new_id(), command),
    )
    .await?;

    let waited = tokio::time::timeout(app.command_timeout, async {
        while let Some(message) = replies.next().await {
            match serde_json::from_slice::<OrderReply>(&message.payload) {
                Ok(reply) if reply.command_id == command_id => return Some(reply),
                Ok(_) => continue,
                Err(e) => tracing::warn!(%command_id, error = %e, "undecodable order reply"),
            }
        }
        None
    })
    .await;
    let _ = replies.unsubscribe().await;
    let outcome = match waited {
        Ok(Some(reply)) if reply.accepted => {
            let order = match reply.order {
                Some(order) if order.restaurant_id == scope.restaurant_id => order,
                _ => store::order(&app.pool, scope.restaurant_id, order_id).await?,
            };
            Ok(json_reply(StatusCode::OK, &order))
        }
        Ok(Some(reply)) => {
            Err(ApiError::IllegalTransition(reply.reason.unwrap_or_else(
                || format!("the order cannot move to {}", to.as_str()),
            )))
        }
        Ok(None) => Err(ApiError::Unavailable(
            "lost the connection to the order service; retry".into(),
        )),
        Err(_) => Err(ApiError::Timeout(format!(
            "the order service did not answer within {} ms; the change may still be applied",
            app.command_timeout.as_millis()
        ))),
    };
    let label = match &outcome {
        Ok(_) => "accepted",
        Err(ApiError::IllegalTransition(_)) => "refused",
        Err(_) => "failed",
    };
    metrics::counter!("waiter_notifier_order_commands_total", "outcome" => label).increment(1);
    outcome
}

// --------------------------------------------------------------- analytics

/// `GET analytics?from&to` (RFC3339; default the last 30 days).
async fn analytics(app: &App, scope: Scope, raw: &str) -> Result<Response, ApiError> {
    let q = query(raw)?;
    let (from, to) = q.range(chrono::Utc::now()).map_err(ApiError::BadRequest)?;
    let report = store::analytics(&app.pool, scope.restaurant_id, from, to).await?;
    Ok(json_reply(StatusCode::OK, &report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_staff_messages() {
        assert!(validate_message("hello").is_ok());
        assert!(validate_message(&"ش".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert!(validate_message(&"a".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
        assert!(validate_message("").is_err());
        assert!(validate_message(" \n\t").is_err());
        for hostile in [
            "hi\u{0}",
            "\u{7}bell",
            "\u{1b}[31mred",
            "a\u{7f}",
            "next\u{85}line",
        ] {
            let err = validate_message(hostile).unwrap_err().to_string();
            assert!(err.contains("control character U+"), "{hostile:?}: {err}");
        }
        // Line breaks, tabs and the format characters of Arabic text and
        // emoji sequences are what staff legitimately type.
        assert!(validate_message("line one\r\nline two\t✓").is_ok());
        assert!(validate_message("\u{200f}مرحبا\u{2066}+966\u{2069} 👩\u{200d}🍳").is_ok());
    }

    #[test]
    fn parses_statuses() {
        assert_eq!(parse_status("PREPARING").unwrap(), OrderStatus::Preparing);
        let err = parse_status("COOKING").unwrap_err().to_string();
        assert!(
            err.contains("COOKING") && err.contains("OUT_FOR_DELIVERY"),
            "{err}"
        );
    }
}
