//! Orders: the board's list, one order, and staff status changes (decided
//! by the order stage).

use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use waiter_nats::{
    envelope::new_id,
    messages::{Actor, OrderAction, OrderCommand, OrderReply, OrderStatus},
    Envelope,
};
use warp::{http::StatusCode, reply::Response};

use super::{
    bus_unavailable,
    docs::{ErrorBody, ReadErrors, WriteErrors},
    json_reply, publish, Request, Scope,
};
use crate::{
    error::ApiError,
    paging::Query,
    store::{self, OrderCard},
    App,
};

/// `?status&limit` of the orders list.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrdersQuery {
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// How many, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

impl OrdersQuery {
    pub fn parse(raw: &str) -> Result<OrdersQuery, ApiError> {
        let q = Query::parse(raw, &["status", "limit"]).map_err(ApiError::BadRequest)?;
        Ok(OrdersQuery {
            status: q.get("status").map(parse_status).transpose()?,
            limit: Some(q.limit().map_err(ApiError::BadRequest)?),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    /// Newest first.
    pub orders: Vec<OrderCard>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusBody {
    /// The status to move to; see the order's `next_statuses`.
    #[schema(value_type = OrderStatus)]
    pub status: String,
}

/// Newest first, optionally of one status.
#[utoipa::path(
    get,
    path = "/api/restaurants/{id}/orders",
    tag = "orders",
    params(("id" = Uuid, Path, description = "The restaurant"), OrdersQuery),
    responses(
        (status = 200, description = "Newest first", body = OrderList),
        ReadErrors,
    ),
)]
pub async fn list_orders(
    app: Arc<App>,
    scope: Scope,
    request: Request,
) -> Result<Response, ApiError> {
    let q = OrdersQuery::parse(&request.query)?;
    let limit = q.limit.unwrap_or(crate::paging::DEFAULT_LIMIT);
    let orders = store::orders(&app.pool, scope.restaurant_id, q.status, limit).await?;
    Ok(json_reply(StatusCode::OK, &OrderList { orders }))
}

/// One order, as the board shows it.
#[utoipa::path(
    get,
    path = "/api/restaurants/{id}/orders/{oid}",
    tag = "orders",
    params(
        ("id" = Uuid, Path, description = "The restaurant"),
        ("oid" = Uuid, Path, description = "The order"),
    ),
    responses(
        (status = 200, description = "The order", body = OrderCard),
        ReadErrors,
    ),
)]
pub async fn get_order(
    app: Arc<App>,
    scope: Scope,
    request: Request,
) -> Result<Response, ApiError> {
    let order_id = request.id("oid")?;
    let order = store::order(&app.pool, scope.restaurant_id, order_id).await?;
    Ok(json_reply(StatusCode::OK, &order))
}

pub fn parse_status(raw: &str) -> Result<OrderStatus, ApiError> {
    OrderStatus::parse(raw).ok_or_else(|| {
        let known: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
        ApiError::bad_request(format!(
            "unknown status {raw:?}; expected one of {}",
            known.join(", ")
        ))
    })
}

/// Asks the order stage and waits for its answer: 200 with the order, 409
/// when the state machine refuses, 504 when it did not answer in time (the
/// change may still happen; the `order.updated` event tells).
#[utoipa::path(
    patch,
    path = "/api/restaurants/{id}/orders/{oid}/status",
    tag = "orders",
    params(
        ("id" = Uuid, Path, description = "The restaurant"),
        ("oid" = Uuid, Path, description = "The order"),
    ),
    request_body = StatusBody,
    responses(
        (status = 200, description = "Moved; the order as it is now", body = OrderCard),
        (status = 409, description = "The state machine refuses this change (the reason says why)", body = ErrorBody),
        (status = 504, description = "The order stage did not answer in time; the change may still be applied", body = ErrorBody),
        WriteErrors,
    ),
)]
pub async fn set_order_status(
    app: Arc<App>,
    scope: Scope,
    request: Request,
) -> Result<Response, ApiError> {
    let order_id = request.id("oid")?;
    let StatusBody { status } = request.json()?;
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
        &app,
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
            let mut card = store::order(&app.pool, scope.restaurant_id, order_id).await?;
            // The stage's answer is the order as it committed it.
            if let Some(order) = reply.order {
                if order.restaurant_id == scope.restaurant_id && order.id == order_id {
                    let fulfilment = store::fulfilment(&order.fulfilment);
                    card.next_statuses = order::machine::staff_next(order.status, fulfilment);
                    card.order = order;
                }
            }
            Ok(json_reply(StatusCode::OK, &card))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_statuses() {
        assert_eq!(parse_status("PREPARING").unwrap(), OrderStatus::Preparing);
        let err = parse_status("COOKING").unwrap_err().to_string();
        assert!(
            err.contains("COOKING") && err.contains("OUT_FOR_DELIVERY"),
            "{err}"
        );
        let q = OrdersQuery::parse("status=RATED&limit=3").unwrap();
        assert_eq!((q.status, q.limit), (Some(OrderStatus::Rated), Some(3)));
        assert!(OrdersQuery::parse("status=rated").is_err());
        assert!(OrdersQuery::parse("limit=0").is_err());
    }
}
