//! Applies one order command: validate, record, publish, tell the customer.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use waiter_nats::{
    events::{DashboardEvent, EventType, OrderLineView},
    messages::{
        ConversationInput, OrderAction, OrderCommand, OrderNotice, OrderRefusal, OrderReply,
        OrderStatus, RefusalReason,
    },
    outbox::{self, OutboxError},
    Bus, Delivery, Envelope, Failure, Handler, LetterContext, Outcome,
};

use crate::{
    machine::{self, Refusal},
    opening,
    store::{self, OrderRow},
};

const STAGE: &str = "order";

#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("{0}")]
    Invalid(String),
    /// A placement refused for a reason the customer was told (the refusal
    /// is committed): acknowledged, not dead-lettered.
    #[error("{0}")]
    NotPlaced(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

pub struct Orders {
    bus: Bus,
    pool: PgPool,
}

impl Orders {
    pub fn new(bus: Bus, pool: PgPool) -> Self {
        Self { bus, pool }
    }

    async fn reply(&self, command: &OrderCommand, reply: OrderReply) {
        if let Some(inbox) = &command.reply_to {
            let body = serde_json::to_vec(&reply).unwrap_or_default();
            if let Err(e) = self.bus.client().publish(inbox.clone(), body.into()).await {
                tracing::warn!(error = %e, "could not answer the command's caller");
            }
        }
    }

    async fn current(&self, order_id: Uuid) -> Option<OrderRow> {
        let mut conn = self.pool.acquire().await.ok()?;
        store::get(&mut conn, order_id).await.ok().flatten()
    }

    /// Applies a command in one transaction; `Ok(None)` when it was applied before.
    async fn apply(
        &self,
        envelope: &Envelope<OrderCommand>,
    ) -> Result<Option<OrderRow>, ApplyError> {
        let command = &envelope.body;
        let mut tx = self.pool.begin().await?;
        if !outbox::first_application(&mut tx, STAGE, &command.command_id.to_string()).await? {
            return Ok(None);
        }
        let actor = command.actor.label();
        let (order, event, previous) = match &command.action {
            OrderAction::Place {
                conversation_id,
                fulfilment,
                branch_id,
                address,
                payment,
                lines,
            } => {
                if store::get(&mut tx, command.order_id).await?.is_some() {
                    return Err(ApplyError::Invalid("an order with this id exists".into()));
                }
                if let Some(branch_id) = branch_id {
                    // Judged at the moment the customer confirmed, not when
                    // this command happens to be handled.
                    let closed = opening::closed_at(
                        &mut tx,
                        command.restaurant_id,
                        *branch_id,
                        envelope.produced_at,
                    )
                    .await?;
                    if let Some(closed) = closed {
                        let reason = closed.reason();
                        opening::record_refusal(
                            &mut tx,
                            command.order_id,
                            command.restaurant_id,
                            *conversation_id,
                            *branch_id,
                            &reason,
                        )
                        .await?;
                        self.tell_refusal(
                            &mut tx,
                            envelope,
                            *conversation_id,
                            *branch_id,
                            &closed,
                            lines,
                        )
                        .await?;
                        tx.commit().await?;
                        return Err(ApplyError::NotPlaced(reason));
                    }
                }
                let (priced, subtotal) = price(&mut tx, command.restaurant_id, lines).await?;
                let (number, fee, currency) = store::next_number(&mut tx, command.restaurant_id)
                    .await?
                    .ok_or_else(|| ApplyError::Invalid("unknown restaurant".into()))?;
                let delivery_fee = match fulfilment {
                    waiter_nats::messages::Fulfilment::Delivery => fee,
                    waiter_nats::messages::Fulfilment::Pickup => 0,
                };
                let fulfilment = match fulfilment {
                    waiter_nats::messages::Fulfilment::Delivery => "delivery",
                    waiter_nats::messages::Fulfilment::Pickup => "pickup",
                };
                let order = store::insert(
                    &mut tx,
                    store::NewOrder {
                        id: command.order_id,
                        restaurant_id: command.restaurant_id,
                        conversation_id: *conversation_id,
                        number,
                        fulfilment,
                        branch_id: *branch_id,
                        address: address.as_deref(),
                        payment: *payment,
                        lines: serde_json::to_value(&priced).unwrap_or_default(),
                        subtotal,
                        delivery_fee,
                        currency: &currency,
                    },
                )
                .await?;
                store::record_history(
                    &mut tx,
                    order.id,
                    command.command_id,
                    None,
                    OrderStatus::Draft,
                    &actor,
                    None,
                )
                .await?;
                (order, None, None)
            }
            OrderAction::Transition { to, reason } => {
                let Some(current) =
                    store::lock(&mut tx, command.restaurant_id, command.order_id).await?
                else {
                    return Err(
                        match opening::refusal_of(&mut tx, command.order_id).await? {
                            Some(refused) => {
                                ApplyError::NotPlaced(format!("not placed: {refused}"))
                            }
                            None => ApplyError::Invalid("no such order".into()),
                        },
                    );
                };
                let from = current.status();
                machine::transition(from, *to, current.fulfilment(), &command.actor)?;
                let order = store::set_status(&mut tx, current.id, *to).await?;
                store::record_history(
                    &mut tx,
                    order.id,
                    command.command_id,
                    Some(from),
                    *to,
                    &actor,
                    reason.as_deref(),
                )
                .await?;
                let event = if *to == OrderStatus::Confirmed {
                    EventType::OrderCreated
                } else {
                    EventType::OrderUpdated
                };
                (order, Some(event), Some(from))
            }
            OrderAction::Rate { rating, comment } => {
                let current = store::lock(&mut tx, command.restaurant_id, command.order_id)
                    .await?
                    .ok_or_else(|| ApplyError::Invalid("no such order".into()))?;
                let from = current.status();
                machine::rate(from, *rating)?;
                let order =
                    store::set_rating(&mut tx, current.id, *rating, comment.as_deref()).await?;
                store::record_history(
                    &mut tx,
                    order.id,
                    command.command_id,
                    Some(from),
                    OrderStatus::Rated,
                    &actor,
                    None,
                )
                .await?;
                (order, Some(EventType::OrderRated), Some(from))
            }
            OrderAction::Comment { comment } => {
                let current = store::lock(&mut tx, command.restaurant_id, command.order_id)
                    .await?
                    .ok_or_else(|| ApplyError::Invalid("no such order".into()))?;
                machine::comment(current.status(), current.rating_comment.is_some())?;
                let order = store::set_comment(&mut tx, current.id, comment.trim()).await?;
                // A comment changes no status: the dashboard hears of it, the customer was already thanked.
                stage_events(
                    &self.bus,
                    &mut tx,
                    envelope,
                    &order,
                    &[EventType::OrderUpdated],
                )
                .await?;
                tx.commit().await?;
                return Ok(Some(order));
            }
        };
        if let Some(event) = event {
            let mut events = vec![event];
            if event == EventType::OrderRated && order.rating.is_some_and(|r| r <= 3) {
                events.push(EventType::LowRating);
            }
            stage_events(&self.bus, &mut tx, envelope, &order, &events).await?;
            // Tell the customer, through their conversation.
            if let Some(customer) = store::customer_of(&mut tx, order.conversation_id).await? {
                let topology = self.bus.topology();
                let notice = ConversationInput::OrderChanged(OrderNotice {
                    restaurant_id: order.restaurant_id,
                    conversation_id: order.conversation_id,
                    order_id: order.id,
                    order_number: order.number,
                    status: order.status(),
                    previous,
                    rating: order.rating,
                    command_id: command.command_id,
                });
                let subject = topology
                    .conversation(topology.conversation_partition(&order.restaurant_id, &customer));
                let notice =
                    envelope.follow(format!("order-notice:{}", command.command_id), notice);
                outbox::stage(&mut tx, order.id, subject, &notice).await?;
            }
        }
        tx.commit().await?;
        Ok(Some(order))
    }
}

impl Orders {
    /// Stages the refusal for the customer's conversation.
    async fn tell_refusal(
        &self,
        tx: &mut PgConnection,
        envelope: &Envelope<OrderCommand>,
        conversation_id: Uuid,
        branch_id: Uuid,
        closed: &opening::Closed,
        lines: &[waiter_nats::messages::CartLine],
    ) -> Result<(), ApplyError> {
        let command = &envelope.body;
        let Some(customer) = store::customer_of(tx, conversation_id).await? else {
            return Ok(());
        };
        let topology = self.bus.topology();
        let refusal = ConversationInput::OrderRefused(OrderRefusal {
            restaurant_id: command.restaurant_id,
            conversation_id,
            order_id: command.order_id,
            reason: RefusalReason::BranchClosed {
                branch_id,
                opens_at: closed.opens_at,
            },
            lines: lines.to_vec(),
            command_id: command.command_id,
        });
        let subject = topology
            .conversation(topology.conversation_partition(&command.restaurant_id, &customer));
        let refusal = envelope.follow(format!("order-refused:{}", command.command_id), refusal);
        outbox::stage(tx, command.order_id, subject, &refusal).await?;
        Ok(())
    }
}

async fn stage_events(
    bus: &Bus,
    tx: &mut PgConnection,
    envelope: &Envelope<OrderCommand>,
    order: &OrderRow,
    events: &[EventType],
) -> Result<(), OutboxError> {
    let view = order.view();
    for &event_type in events {
        let event = DashboardEvent::new(order.restaurant_id, event_type, &view);
        let subject = event.subject(bus.topology());
        let event = envelope.follow(
            format!("{}:{}", event_type.as_str(), envelope.body.command_id),
            event,
        );
        outbox::stage(tx, order.id, subject, &event).await?;
        crate::webhooks::stage(tx, bus.topology(), envelope, &event.id, event_type, &view).await?;
    }
    Ok(())
}

/// Prices a cart from the menu as it is now: later price changes do not
/// alter a placed order.
async fn price(
    tx: &mut PgConnection,
    restaurant_id: Uuid,
    lines: &[waiter_nats::messages::CartLine],
) -> Result<(Vec<OrderLineView>, i64), ApplyError> {
    if lines.is_empty() {
        return Err(ApplyError::Invalid("the cart is empty".into()));
    }
    let ids: Vec<Uuid> = lines.iter().map(|l| l.item_id).collect();
    let items: HashMap<Uuid, store::PricedItem> = store::items(tx, restaurant_id, &ids)
        .await?
        .into_iter()
        .map(|i| (i.id, i))
        .collect();
    let mut priced = vec![];
    let mut subtotal = 0i64;
    for line in lines {
        let item = items.get(&line.item_id).ok_or_else(|| {
            ApplyError::Invalid(format!("item {} is not on this menu", line.item_id))
        })?;
        if !item.available {
            return Err(ApplyError::Invalid(format!(
                "{} is not available",
                item.name_en
            )));
        }
        if !(1..=99).contains(&line.quantity) {
            return Err(ApplyError::Invalid(format!(
                "quantity {} is out of range",
                line.quantity
            )));
        }
        let unit_price = item.unit_price();
        let line_total = unit_price * i64::from(line.quantity);
        subtotal += line_total;
        priced.push(OrderLineView {
            item_id: item.id,
            name: item.name_en.clone(),
            quantity: line.quantity as i32,
            unit_price,
            line_total,
        });
    }
    Ok((priced, subtotal))
}

impl Handler for Orders {
    type Message = OrderCommand;

    async fn handle(&self, envelope: Envelope<OrderCommand>, _delivery: Delivery) -> Outcome {
        let command = &envelope.body;
        let context = LetterContext {
            restaurant_id: Some(command.restaurant_id),
            conversation_id: match &command.action {
                OrderAction::Place {
                    conversation_id, ..
                } => Some(*conversation_id),
                _ => None,
            },
            recipient: match &command.actor {
                waiter_nats::messages::Actor::Customer(address) => Some(address.clone()),
                _ => None,
            },
        };
        let result = self.apply(&envelope).await;
        // Whatever happened, publish what is committed and not yet published.
        if let Err(e) = outbox::flush(&self.pool, &self.bus, command.order_id).await {
            return Outcome::Retry(Failure::from(e).with_context(context));
        }
        match result {
            Ok(applied) => {
                let order = match applied {
                    Some(order) => Some(order),
                    None => self.current(command.order_id).await,
                };
                metrics::counter!("waiter_order_commands_total", "outcome" => "applied")
                    .increment(1);
                self.reply(
                    command,
                    OrderReply {
                        command_id: command.command_id,
                        accepted: true,
                        reason: None,
                        order: order.map(|o| o.view()),
                    },
                )
                .await;
                Outcome::Ack
            }
            Err(ApplyError::Refused(refusal)) => {
                metrics::counter!("waiter_order_commands_total", "outcome" => "refused")
                    .increment(1);
                tracing::info!(order = %command.order_id, actor = %command.actor.label(), reason = %refusal, "order command refused");
                let order = self.current(command.order_id).await;
                self.reply(
                    command,
                    OrderReply {
                        command_id: command.command_id,
                        accepted: false,
                        reason: Some(refusal.to_string()),
                        order: order.map(|o| o.view()),
                    },
                )
                .await;
                Outcome::Ack
            }
            Err(ApplyError::NotPlaced(reason)) => {
                metrics::counter!("waiter_order_commands_total", "outcome" => "refused")
                    .increment(1);
                tracing::info!(order = %command.order_id, reason = %reason, "order not placed");
                self.reply(
                    command,
                    OrderReply {
                        command_id: command.command_id,
                        accepted: false,
                        reason: Some(reason),
                        order: None,
                    },
                )
                .await;
                Outcome::Ack
            }
            Err(ApplyError::Invalid(reason)) => {
                metrics::counter!("waiter_order_commands_total", "outcome" => "invalid")
                    .increment(1);
                self.reply(
                    command,
                    OrderReply {
                        command_id: command.command_id,
                        accepted: false,
                        reason: Some(reason.clone()),
                        order: None,
                    },
                )
                .await;
                // A command that can never pass (no such order, an empty
                // cart, an item not on the menu).
                Outcome::DeadLetter(Failure::permanent(reason).with_context(context))
            }
            Err(ApplyError::Database(e)) => Outcome::Retry(Failure::from(e).with_context(context)),
            Err(ApplyError::Outbox(e)) => Outcome::Retry(Failure::from(e).with_context(context)),
        }
    }
}
