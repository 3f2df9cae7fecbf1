//! Order events for the restaurant's webhook endpoints: one message per
//! event and endpoint, staged in the transaction that changed the order
//! (the outbox), partitioned by order so each endpoint gets an order's
//! events in the order they happened.

use sqlx::PgConnection;
use uuid::Uuid;
use waiter_nats::{
    events::{EventType, OrderView},
    messages::OrderCommand,
    outbox::{self, OutboxError},
    webhooks::{OrderWebhook, WebhookEvent},
    Envelope, Topology,
};

/// Stages the webhooks of one order event (`event_id`: the dashboard
/// event's envelope id) for every endpoint the restaurant has now.
pub async fn stage(
    tx: &mut PgConnection,
    topology: &Topology,
    command: &Envelope<OrderCommand>,
    event_id: &str,
    event_type: EventType,
    order: &OrderView,
) -> Result<usize, OutboxError> {
    let Some(event) = WebhookEvent::of(event_type, order) else {
        return Ok(0);
    };
    let endpoints: Vec<(Uuid,)> =
        sqlx::query_as("SELECT id FROM webhook_endpoints WHERE restaurant_id = $1 ORDER BY id")
            .bind(order.restaurant_id)
            .fetch_all(&mut *tx)
            .await?;
    let subject = topology.webhook(topology.order_partition(&order.id));
    for (endpoint_id,) in &endpoints {
        let webhook = OrderWebhook {
            webhook_id: OrderWebhook::webhook_id_of(event_id),
            endpoint_id: *endpoint_id,
            restaurant_id: order.restaurant_id,
            order_id: order.id,
            event,
            occurred_at: order.updated_at,
            order: order.clone(),
        };
        let envelope = command.follow(webhook.envelope_id(), webhook);
        outbox::stage(tx, order.id, subject.clone(), &envelope).await?;
    }
    Ok(endpoints.len())
}
