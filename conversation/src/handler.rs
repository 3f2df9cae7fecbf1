//! Applies one conversation input: store it once, let the bot decide,
//! record the decision and its effects in one transaction, then publish the
//! effects (outbox) before acknowledging.

use chrono::{Duration as ChronoDuration, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use waiter_bot::{Action, Dialogue, Inbound, OrderUpdate, Reply};
use waiter_nats::{
    events::{DashboardEvent, EventType},
    messages::{
        Actor, CartLine, ConversationInput, CustomerMessage, OrderAction, OrderCommand,
        OrderNotice, OrderStatus, OutboundContent, OutboundMessage, SetBotActive, StaffReply,
    },
    outbox::{self, OutboxError},
    Bus, Delivery, Envelope, Handler, Outcome, Payload,
};

use crate::{
    catalog::{Catalog, Catalogs},
    store::{self, ids, ConversationRow, NewMessage},
};

const STAGE: &str = "conversation";

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("{0}")]
    Invalid(String),
}

impl ConversationError {
    fn outcome(self) -> Outcome {
        match self {
            ConversationError::Invalid(reason) => Outcome::reject(reason),
            transient => Outcome::retry(transient),
        }
    }
}

pub struct Conversations {
    bus: Bus,
    pool: PgPool,
    catalogs: Catalogs,
}

/// The transaction of one input and the effects it stages.
struct Effects<'a> {
    bus: &'a Bus,
    input_id: String,
    trace_id: String,
    conversation: ConversationRow,
    replies: usize,
}

impl<'a> Effects<'a> {
    async fn stage<T: Payload>(
        &self,
        tx: &mut PgConnection,
        id: String,
        subject: String,
        body: T,
    ) -> Result<(), OutboxError> {
        let envelope = Envelope::new(id, self.trace_id.clone(), body);
        outbox::stage(tx, self.conversation.id, subject, &envelope).await?;
        Ok(())
    }

    async fn event(
        &self,
        tx: &mut PgConnection,
        event_type: EventType,
        key: &str,
        data: impl serde::Serialize,
    ) -> Result<(), OutboxError> {
        let event = DashboardEvent::new(self.conversation.restaurant_id, event_type, data);
        let subject = event.subject(self.bus.topology());
        self.stage(tx, format!("{}:{key}", event_type.as_str()), subject, event)
            .await
    }

    /// Records an outgoing message and stages its send.
    async fn send(
        &mut self,
        tx: &mut PgConnection,
        author: &str,
        id: Uuid,
        reply_to: Option<Uuid>,
        reply: &Reply,
    ) -> Result<(), ConversationError> {
        let (kind, body, payload, content) = render(reply);
        let index = self.replies as i32;
        self.replies += 1;
        let inserted = store::insert_message(
            tx,
            NewMessage {
                id,
                restaurant_id: self.conversation.restaurant_id,
                conversation_id: self.conversation.id,
                wa_sid: None,
                direction: "out",
                author,
                kind,
                body: &body,
                payload,
                status: "pending",
                limited_reason: None,
                reply_to,
                reply_index: index,
            },
        )
        .await?;
        if inserted.is_none() {
            return Ok(());
        }
        let topology = self.bus.topology();
        let partition = topology.conversation_partition(
            &self.conversation.restaurant_id,
            &self.conversation.customer,
        );
        let outbound = OutboundMessage {
            message_id: id,
            restaurant_id: self.conversation.restaurant_id,
            conversation_id: self.conversation.id,
            to: self.conversation.customer.clone(),
            content,
        };
        self.stage(
            tx,
            format!("outbound:{id}"),
            topology.outbound(partition),
            outbound,
        )
        .await?;
        store::touch(tx, self.conversation.id).await?;
        Ok(())
    }

    async fn order_command(
        &self,
        tx: &mut PgConnection,
        what: &str,
        order_id: Uuid,
        action: OrderAction,
    ) -> Result<(), OutboxError> {
        let command_id = ids::derived(&self.input_id, what);
        let command = OrderCommand {
            command_id,
            restaurant_id: self.conversation.restaurant_id,
            order_id,
            actor: Actor::Customer(self.conversation.customer.clone()),
            action,
            reply_to: None,
        };
        let topology = self.bus.topology();
        let subject = topology.order_command(topology.order_partition(&order_id));
        self.stage(tx, format!("order-command:{command_id}"), subject, command)
            .await
    }

    /// Records, as a note on the conversation, a message the bot chose not
    /// to send (outside the 24-hour window with no approved template).
    async fn note(
        &mut self,
        tx: &mut PgConnection,
        what: &str,
        text: String,
    ) -> Result<(), ConversationError> {
        let id = ids::derived(&self.input_id, what);
        let inserted = store::insert_message(
            tx,
            NewMessage {
                id,
                restaurant_id: self.conversation.restaurant_id,
                conversation_id: self.conversation.id,
                wa_sid: None,
                direction: "out",
                author: "system",
                kind: "note",
                body: &text,
                payload: serde_json::json!({}),
                status: "skipped",
                limited_reason: None,
                reply_to: None,
                reply_index: 0,
            },
        )
        .await?;
        if let Some(row) = inserted {
            self.event(
                tx,
                EventType::MessageStatus,
                &format!("{id}:skipped"),
                row.view(),
            )
            .await?;
        }
        Ok(())
    }

    /// Carries out what the bot decided.
    async fn carry_out(
        &mut self,
        tx: &mut PgConnection,
        actions: Vec<Action>,
        reply_to: Option<Uuid>,
        reask_after: ChronoDuration,
    ) -> Result<(), ConversationError> {
        for (n, action) in actions.into_iter().enumerate() {
            match action {
                Action::Send(reply) => {
                    let id = ids::reply(&self.input_id, self.replies);
                    self.send(tx, "bot", id, reply_to, &reply).await?;
                }
                Action::PlaceOrder {
                    order_id,
                    fulfilment,
                    branch_id,
                    address,
                    payment,
                    lines,
                } => {
                    let place = OrderAction::Place {
                        conversation_id: self.conversation.id,
                        fulfilment,
                        branch_id,
                        address,
                        payment,
                        lines: lines
                            .into_iter()
                            .map(|(item_id, quantity)| CartLine { item_id, quantity })
                            .collect(),
                    };
                    self.order_command(tx, &format!("place-{n}"), order_id, place)
                        .await?;
                    let confirm = OrderAction::Transition {
                        to: OrderStatus::Confirmed,
                        reason: None,
                    };
                    self.order_command(tx, &format!("confirm-{n}"), order_id, confirm)
                        .await?;
                }
                Action::CancelOrder { order_id } => {
                    let cancel = OrderAction::Transition {
                        to: OrderStatus::Cancelled,
                        reason: Some("cancelled by the customer".into()),
                    };
                    self.order_command(tx, &format!("cancel-{n}"), order_id, cancel)
                        .await?;
                }
                Action::RateOrder {
                    order_id,
                    rating,
                    comment,
                } => {
                    self.order_command(
                        tx,
                        &format!("rate-{n}"),
                        order_id,
                        OrderAction::Rate { rating, comment },
                    )
                    .await?;
                }
                Action::Handoff => {
                    self.conversation = store::set_bot(tx, self.conversation.id, false).await?;
                    let view = self.conversation.view();
                    self.event(
                        tx,
                        EventType::ConversationUpdated,
                        &format!("{}:handoff", self.input_id),
                        view,
                    )
                    .await?;
                }
                Action::CommentOrder { order_id, comment } => {
                    self.order_command(
                        tx,
                        &format!("comment-{n}"),
                        order_id,
                        OrderAction::Comment { comment },
                    )
                    .await?;
                }
                Action::RemindLater { order_id } => {
                    store::remind(
                        tx,
                        ids::derived(&self.input_id, &format!("remind-{n}")),
                        &self.conversation,
                        order_id,
                        Utc::now() + reask_after,
                    )
                    .await?;
                }
                Action::RatingPromptSkipped { order_id } => {
                    let text = format!("rating prompt for order {order_id} skipped: outside the 24-hour window and no approved template");
                    self.note(tx, &format!("skipped-{n}"), text).await?;
                }
                Action::NotificationSkipped { order_id, status } => {
                    let text = format!(
                        "order {order_id} is {}: the customer was not told (outside the 24-hour window, no approved template)",
                        status.as_str()
                    );
                    self.note(tx, &format!("skipped-{n}"), text).await?;
                }
            }
        }
        Ok(())
    }
}

/// How a reply goes out: interactive through its approved ContentSid when
/// one is configured, else its numbered-text fallback.
fn render(reply: &Reply) -> (&'static str, String, serde_json::Value, OutboundContent) {
    match reply {
        Reply::Text(text) => (
            "text",
            text.clone(),
            serde_json::json!({}),
            OutboundContent::Text { body: text.clone() },
        ),
        Reply::Interactive {
            template,
            content_sid: Some(content_sid),
            variables,
            body,
            choices,
            ..
        } => (
            "interactive",
            body.clone(),
            serde_json::json!({"template": template, "content_sid": content_sid, "choices": choices}),
            OutboundContent::Template {
                content_sid: content_sid.clone(),
                variables: variables.clone(),
            },
        ),
        Reply::Interactive {
            template,
            fallback,
            choices,
            ..
        } => (
            "text",
            fallback.clone(),
            serde_json::json!({"template": template, "choices": choices}),
            OutboundContent::Text {
                body: fallback.clone(),
            },
        ),
    }
}

fn inbound_kind(m: &waiter_nats::messages::InboundMessage) -> &'static str {
    if m.location.is_some() {
        "location"
    } else if m.button.is_some() {
        "button"
    } else if m.list_reply.is_some() {
        "list_reply"
    } else if !m.media.is_empty() {
        "media"
    } else {
        "text"
    }
}

fn dialogue_of(conversation: &ConversationRow) -> Dialogue {
    serde_json::from_value(conversation.dialogue.clone()).unwrap_or_default()
}

fn context<'c>(
    catalog: &'c Catalog,
    new_order_id: Uuid,
    last_inbound: Option<chrono::DateTime<Utc>>,
) -> waiter_bot::Context<'c> {
    let now = Utc::now();
    waiter_bot::Context {
        restaurant: &catalog.info,
        menu: &catalog.menu,
        branches: &catalog.branches,
        now,
        new_order_id,
        within_session_window: last_inbound.is_some_and(|at| now - at < ChronoDuration::hours(24)),
    }
}

impl Conversations {
    pub fn new(bus: Bus, pool: PgPool, catalogs: Catalogs) -> Self {
        Self {
            bus,
            pool,
            catalogs,
        }
    }

    /// Applies the input in one transaction. Returns the conversation whose
    /// outbox must be flushed, or `None` if the input was applied before.
    async fn apply(
        &self,
        envelope: &Envelope<ConversationInput>,
    ) -> Result<Option<Uuid>, ConversationError> {
        let mut tx = self.pool.begin().await?;
        if !outbox::first_application(&mut tx, STAGE, &envelope.id).await? {
            return Ok(None);
        }
        let conversation = match &envelope.body {
            ConversationInput::Customer(m) => self.customer_message(&mut tx, envelope, m).await?,
            ConversationInput::StaffReply(r) => self.staff_reply(&mut tx, envelope, r).await?,
            ConversationInput::SetBotActive(s) => self.set_bot(&mut tx, envelope, s).await?,
            ConversationInput::OrderChanged(n) => self.order_changed(&mut tx, envelope, n).await?,
        };
        tx.commit().await?;
        Ok(Some(conversation))
    }

    async fn customer_message(
        &self,
        tx: &mut PgConnection,
        envelope: &Envelope<ConversationInput>,
        m: &CustomerMessage,
    ) -> Result<Uuid, ConversationError> {
        let inbound = &m.inbound;
        let conversation = store::open(
            tx,
            m.restaurant_id,
            &m.customer,
            inbound.profile_name.as_deref(),
            inbound.wa_id.as_deref(),
        )
        .await?;
        let previous_inbound = conversation.last_inbound_at;
        let message_id = ids::inbound_message(&inbound.message_sid);
        let payload = serde_json::json!({
            "media": inbound.media,
            "location": inbound.location,
            "button": inbound.button,
            "list_reply": inbound.list_reply,
            "original_replied_message_sid": inbound.original_replied_message_sid,
            "referral": inbound.referral,
        });
        let stored = store::insert_message(
            tx,
            NewMessage {
                id: message_id,
                restaurant_id: m.restaurant_id,
                conversation_id: conversation.id,
                wa_sid: Some(&inbound.message_sid),
                direction: "in",
                author: "customer",
                kind: inbound_kind(inbound),
                body: &inbound.body,
                payload,
                status: "received",
                limited_reason: m.limited.as_deref(),
                reply_to: None,
                reply_index: 0,
            },
        )
        .await?;
        let Some(stored) = stored else {
            // Stored under another envelope id (an operator replay): once is enough.
            return Ok(conversation.id);
        };
        let conversation = store::record_inbound(tx, conversation.id, inbound.received_at).await?;
        let mut effects = Effects {
            bus: &self.bus,
            input_id: envelope.id.clone(),
            trace_id: envelope.trace_id.clone(),
            conversation,
            replies: 0,
        };
        effects
            .event(
                tx,
                EventType::MessageReceived,
                &message_id.to_string(),
                stored.view(),
            )
            .await?;
        let view = effects.conversation.view();
        effects
            .event(tx, EventType::ConversationUpdated, &envelope.id, view)
            .await?;

        if m.limited.is_some() {
            metrics::counter!("waiter_conversation_limited_total").increment(1);
            return Ok(effects.conversation.id);
        }
        let Some(catalog) = self.catalogs.get(m.restaurant_id).await? else {
            return Err(ConversationError::Invalid(format!(
                "unknown restaurant {}",
                m.restaurant_id
            )));
        };
        if !effects.conversation.bot_active {
            let idle = ChronoDuration::minutes(i64::from(
                catalog.restaurant.bot_idle_resume_minutes.max(1),
            ));
            let resumes = effects
                .conversation
                .bot_paused_at
                .is_some_and(|at| Utc::now() - at > idle);
            if !resumes {
                return Ok(effects.conversation.id);
            }
            effects.conversation = store::set_bot(tx, effects.conversation.id, true).await?;
        }
        let mut dialogue = dialogue_of(&effects.conversation);
        let ctx = context(
            &catalog,
            ids::derived(&envelope.id, "order"),
            previous_inbound.or(Some(inbound.received_at)),
        );
        let bot_input = Inbound {
            body: inbound.body.clone(),
            button_payload: inbound.button.as_ref().and_then(|b| b.payload.clone()),
            list_id: inbound.list_reply.as_ref().map(|l| l.id.clone()),
            location: inbound.location.as_ref().map(|l| (l.latitude, l.longitude)),
            address: inbound.location.as_ref().and_then(|l| l.address.clone()),
            original_replied_message_sid: inbound.original_replied_message_sid.clone(),
            profile_name: inbound.profile_name.clone(),
            has_media: !inbound.media.is_empty(),
        };
        let actions = waiter_bot::on_message(&mut dialogue, &bot_input, &ctx);
        let reask =
            ChronoDuration::minutes(i64::from(catalog.restaurant.rating_reask_minutes.max(1)));
        effects
            .carry_out(tx, actions, Some(message_id), reask)
            .await?;
        store::save_dialogue(
            tx,
            effects.conversation.id,
            &serde_json::to_value(&dialogue).unwrap_or_default(),
        )
        .await?;
        Ok(effects.conversation.id)
    }

    async fn staff_reply(
        &self,
        tx: &mut PgConnection,
        envelope: &Envelope<ConversationInput>,
        r: &StaffReply,
    ) -> Result<Uuid, ConversationError> {
        let Some(conversation) = store::lock(tx, r.restaurant_id, r.conversation_id).await? else {
            return Err(ConversationError::Invalid("no such conversation".into()));
        };
        let mut effects = Effects {
            bus: &self.bus,
            input_id: envelope.id.clone(),
            trace_id: envelope.trace_id.clone(),
            conversation,
            replies: 0,
        };
        effects
            .send(
                tx,
                "staff",
                r.message_id,
                None,
                &Reply::Text(r.text.clone()),
            )
            .await?;
        // Staff took over: the bot pauses until resumed (or idle time passes).
        effects.conversation = store::set_bot(tx, r.conversation_id, false).await?;
        let view = effects.conversation.view();
        effects
            .event(tx, EventType::ConversationUpdated, &envelope.id, view)
            .await?;
        Ok(r.conversation_id)
    }

    async fn set_bot(
        &self,
        tx: &mut PgConnection,
        envelope: &Envelope<ConversationInput>,
        s: &SetBotActive,
    ) -> Result<Uuid, ConversationError> {
        let Some(conversation) = store::lock(tx, s.restaurant_id, s.conversation_id).await? else {
            return Err(ConversationError::Invalid("no such conversation".into()));
        };
        let conversation = store::set_bot(tx, conversation.id, s.active).await?;
        let effects = Effects {
            bus: &self.bus,
            input_id: envelope.id.clone(),
            trace_id: envelope.trace_id.clone(),
            conversation,
            replies: 0,
        };
        let view = effects.conversation.view();
        effects
            .event(tx, EventType::ConversationUpdated, &envelope.id, view)
            .await?;
        Ok(s.conversation_id)
    }

    async fn order_changed(
        &self,
        tx: &mut PgConnection,
        envelope: &Envelope<ConversationInput>,
        n: &OrderNotice,
    ) -> Result<Uuid, ConversationError> {
        let Some(conversation) = store::lock(tx, n.restaurant_id, n.conversation_id).await? else {
            return Err(ConversationError::Invalid("no such conversation".into()));
        };
        let Some(catalog) = self.catalogs.get(n.restaurant_id).await? else {
            return Err(ConversationError::Invalid(format!(
                "unknown restaurant {}",
                n.restaurant_id
            )));
        };
        let (total, fulfilment) = store::order_summary(tx, n.order_id)
            .await?
            .unwrap_or((0, "delivery".into()));
        let mut dialogue = dialogue_of(&conversation);
        let ctx = context(
            &catalog,
            ids::derived(&envelope.id, "order"),
            conversation.last_inbound_at,
        );
        let update = OrderUpdate {
            order_id: n.order_id,
            order_number: n.order_number,
            status: n.status,
            previous: n.previous,
            rating: n.rating,
            total,
            fulfilment: if fulfilment == "pickup" {
                waiter_nats::messages::Fulfilment::Pickup
            } else {
                waiter_nats::messages::Fulfilment::Delivery
            },
        };
        let actions = waiter_bot::on_order_update(&mut dialogue, &update, &ctx);
        let mut effects = Effects {
            bus: &self.bus,
            input_id: envelope.id.clone(),
            trace_id: envelope.trace_id.clone(),
            conversation,
            replies: 0,
        };
        let reask =
            ChronoDuration::minutes(i64::from(catalog.restaurant.rating_reask_minutes.max(1)));
        effects.carry_out(tx, actions, None, reask).await?;
        store::save_dialogue(
            tx,
            effects.conversation.id,
            &serde_json::to_value(&dialogue).unwrap_or_default(),
        )
        .await?;
        Ok(effects.conversation.id)
    }

    /// The conversation an input belongs to, computable before any I/O.
    fn conversation_of(input: &ConversationInput) -> Uuid {
        match input {
            ConversationInput::Customer(m) => ids::conversation(m.restaurant_id, &m.customer),
            ConversationInput::StaffReply(r) => r.conversation_id,
            ConversationInput::SetBotActive(s) => s.conversation_id,
            ConversationInput::OrderChanged(n) => n.conversation_id,
        }
    }
}

impl Handler for Conversations {
    type Message = ConversationInput;

    async fn handle(&self, envelope: Envelope<ConversationInput>, _delivery: Delivery) -> Outcome {
        let conversation = Self::conversation_of(&envelope.body);
        // Effects a crashed predecessor committed but did not publish go
        // first, so replies keep the order they were decided in.
        if let Err(e) = outbox::flush(&self.pool, &self.bus, conversation).await {
            return Outcome::retry(format!("outbox: {e}"));
        }
        let applied = match self.apply(&envelope).await {
            Ok(applied) => applied,
            Err(e) => return e.outcome(),
        };
        if applied.is_none() {
            metrics::counter!("waiter_conversation_duplicates_total").increment(1);
        }
        match outbox::flush(&self.pool, &self.bus, conversation).await {
            Ok(_) => Outcome::Ack,
            Err(e) => Outcome::retry(format!("outbox: {e}")),
        }
    }
}
