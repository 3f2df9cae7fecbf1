//! Applies one conversation input: store it once, let the bot decide,
//! record the decision and its effects in one transaction, then publish the
//! effects (outbox) before acknowledging.

use std::sync::Arc;

use chrono::{Duration as ChronoDuration, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use waiter_bot::{Action, Dialogue, Inbound, OrderUpdate, Reply};
use waiter_nats::{
    events::{DashboardEvent, EventType},
    messages::{
        Actor, CartLine, ConversationInput, CustomerMessage, OrderAction, OrderCommand,
        OrderNotice, OrderRefusal, OrderStatus, OutboundContent, OutboundMessage, SetBotActive,
        StaffReply,
    },
    outbox::{self, OutboxError},
    Bus, Envelope, Failure, LetterContext, Payload,
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

impl From<ConversationError> for Failure {
    fn from(e: ConversationError) -> Self {
        match e {
            ConversationError::Database(e) => Failure::from(e),
            ConversationError::Outbox(e) => Failure::from(e),
            // An input naming a conversation or restaurant that does not
            // exist: a business rule that can never pass.
            ConversationError::Invalid(reason) => Failure::permanent(reason),
        }
    }
}

pub struct Conversations {
    pub(crate) bus: Bus,
    pub(crate) pool: PgPool,
    catalogs: Catalogs,
}

/// The transaction of one input and the effects it stages.
struct Effects<'a> {
    bus: &'a Bus,
    input_id: String,
    trace_id: String,
    conversation: ConversationRow,
    /// The outbox aggregate the effects are staged under: the conversation
    /// of the input, which the handler flushes right after the commit (and
    /// before that conversation's next input). Usually `conversation.id`;
    /// the staff order ticket is recorded on the staff number's
    /// conversation but travels with the customer's effects.
    aggregate: Uuid,
    replies: usize,
}

impl<'a> Effects<'a> {
    /// The effects of one input on its conversation (also their outbox aggregate).
    fn new(
        bus: &'a Bus,
        envelope: &Envelope<ConversationInput>,
        conversation: ConversationRow,
    ) -> Self {
        Effects {
            bus,
            input_id: envelope.id.clone(),
            trace_id: envelope.trace_id.clone(),
            aggregate: conversation.id,
            conversation,
            replies: 0,
        }
    }

    async fn stage<T: Payload>(
        &self,
        tx: &mut PgConnection,
        id: String,
        subject: String,
        body: T,
    ) -> Result<(), OutboxError> {
        let envelope = Envelope::new(id, self.trace_id.clone(), body);
        outbox::stage(tx, self.aggregate, subject, &envelope).await?;
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

    /// Tells dashboards the conversation changed (unread, bot, last message).
    async fn announce(&self, tx: &mut PgConnection, key: &str) -> Result<(), OutboxError> {
        let view = self.conversation.view();
        self.event(tx, EventType::ConversationUpdated, key, view)
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
                    self.announce(tx, &format!("{}:handoff", self.input_id))
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

/// A conversation an input names; one that does not exist (or is another
/// restaurant's) makes the input permanently invalid.
async fn existing(
    tx: &mut PgConnection,
    restaurant_id: Uuid,
    id: Uuid,
) -> Result<ConversationRow, ConversationError> {
    store::lock(tx, restaurant_id, id)
        .await?
        .ok_or_else(|| ConversationError::Invalid("no such conversation".into()))
}

/// The conversation's dialogue state. A state that does not decode (written
/// by a newer release, or damaged by hand) is logged and counted
/// (`waiter_conversation_dialogue_undecodable_total`), and the bot starts
/// over from the greeting rather than failing every input of the customer.
fn dialogue_of(conversation: &ConversationRow) -> Dialogue {
    match decode_dialogue(&conversation.dialogue) {
        Ok(dialogue) => dialogue,
        Err(e) => {
            metrics::counter!("waiter_conversation_dialogue_undecodable_total").increment(1);
            tracing::error!(conversation = %conversation.id, error = %e,
                "dialogue state does not decode: the bot starts this conversation over");
            Dialogue::default()
        }
    }
}

/// A missing state (`null`) is a new dialogue; `{}` (the column's default)
/// decodes as one because every field has a default.
fn decode_dialogue(value: &serde_json::Value) -> Result<Dialogue, serde_json::Error> {
    match value {
        serde_json::Value::Null => Ok(Dialogue::default()),
        other => serde_json::from_value(other.clone()),
    }
}

#[cfg(test)]
mod dialogue_tests {
    use super::*;

    #[test]
    fn a_state_that_does_not_decode_is_an_error_not_a_new_dialogue() {
        assert_eq!(
            decode_dialogue(&serde_json::json!({})).unwrap(),
            Dialogue::default()
        );
        assert_eq!(
            decode_dialogue(&serde_json::Value::Null).unwrap(),
            Dialogue::default()
        );
        let stored = serde_json::to_value(Dialogue {
            address: Some("Olaya St".into()),
            ..Dialogue::default()
        })
        .unwrap();
        assert_eq!(
            decode_dialogue(&stored).unwrap().address.as_deref(),
            Some("Olaya St")
        );
        for damaged in [
            serde_json::json!({"language": 12}),
            serde_json::json!({"cart": "not a list"}),
            serde_json::json!([1, 2]),
        ] {
            assert!(decode_dialogue(&damaged).is_err(), "{damaged}");
        }
    }
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

    /// What the bot reads about the input's restaurant, fetched before the
    /// transaction: fetched inside it, a cache miss would ask the pool for
    /// a second connection while holding one, and with every partition
    /// doing so at once they all wait on each other.
    pub(crate) async fn catalog_for(
        &self,
        input: &ConversationInput,
    ) -> Result<Option<Arc<Catalog>>, ConversationError> {
        let restaurant = match input {
            ConversationInput::Customer(m) => Some(m.restaurant_id),
            ConversationInput::OrderChanged(n) => Some(n.restaurant_id),
            ConversationInput::OrderRefused(r) => Some(r.restaurant_id),
            _ => None,
        };
        match restaurant {
            Some(id) => Ok(Some(self.catalogs.get(id).await?.ok_or_else(|| {
                ConversationError::Invalid(format!("unknown restaurant {id}"))
            })?)),
            None => Ok(None),
        }
    }

    /// Applies the input inside the caller's transaction, with the catalog
    /// [`Self::catalog_for`] fetched. `false`: it was applied before, and
    /// nothing was changed.
    pub(crate) async fn apply_in(
        &self,
        tx: &mut PgConnection,
        envelope: &Envelope<ConversationInput>,
        catalog: Option<Arc<Catalog>>,
    ) -> Result<bool, ConversationError> {
        if !outbox::first_application(tx, STAGE, &envelope.id).await? {
            return Ok(false);
        }
        match (&envelope.body, catalog) {
            (ConversationInput::Customer(m), Some(catalog)) => {
                self.customer_message(tx, envelope, m, &catalog).await?
            }
            (ConversationInput::StaffReply(r), _) => self.staff_reply(tx, envelope, r).await?,
            (ConversationInput::SetBotActive(s), _) => self.set_bot(tx, envelope, s).await?,
            (ConversationInput::OrderChanged(n), Some(catalog)) => {
                self.order_changed(tx, envelope, n, &catalog).await?
            }
            (ConversationInput::OrderRefused(r), Some(catalog)) => {
                self.order_refused(tx, envelope, r, &catalog).await?
            }
            (_, None) => unreachable!("customer messages and order notices have their catalog"),
        };
        Ok(true)
    }

    async fn customer_message(
        &self,
        tx: &mut PgConnection,
        envelope: &Envelope<ConversationInput>,
        m: &CustomerMessage,
        catalog: &Catalog,
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
        if let Some(original) = &inbound.body_original {
            use base64::Engine;
            match base64::engine::general_purpose::STANDARD.decode(original) {
                Ok(bytes) => store::keep_original_body(tx, message_id, &bytes).await?,
                Err(e) => tracing::warn!(sid = %inbound.message_sid, error = %e,
                    "the original body is not base64; only the visible body is kept"),
            }
        }
        let conversation = store::record_inbound(tx, conversation.id, inbound.received_at).await?;
        let mut effects = Effects::new(&self.bus, envelope, conversation);
        effects
            .event(
                tx,
                EventType::MessageReceived,
                &message_id.to_string(),
                stored.view(),
            )
            .await?;
        effects.announce(tx, &envelope.id).await?;

        // STOP and START are honoured whoever is answering (bot or staff)
        // and whatever the inbound limits say; they never reach the dialogue.
        if let Some(change) = waiter_bot::consent::change_asked(&inbound.body) {
            self.consent_change(tx, &mut effects, m, message_id, change, catalog)
                .await?;
            return Ok(effects.conversation.id);
        }
        if m.limited.is_some() {
            metrics::counter!("waiter_conversation_limited_total").increment(1);
            return Ok(effects.conversation.id);
        }
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
            // A staff number's conversation carries order tickets: the bot
            // never comes back there by itself (staff may turn it on from
            // the dashboard).
            if store::is_staff_number(tx, m.restaurant_id, &m.customer).await? {
                return Ok(effects.conversation.id);
            }
            effects.conversation = store::set_bot(tx, effects.conversation.id, true).await?;
        }
        let mut dialogue = dialogue_of(&effects.conversation);
        let without_marketing;
        let mut ctx = context(
            catalog,
            ids::derived(&envelope.id, "order"),
            previous_inbound.or(Some(inbound.received_at)),
        );
        if !catalog.info.promo_links.is_empty()
            && !waiter_migrations::consent::may_market(tx, m.restaurant_id, &m.customer).await?
        {
            without_marketing = waiter_bot::RestaurantInfo {
                promo_links: vec![],
                ..catalog.info.clone()
            };
            ctx.restaurant = &without_marketing;
        }
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

    /// Records an opt-out or opt-in of the restaurant's marketing and, when
    /// it changed something, confirms it once in the customer's language.
    async fn consent_change(
        &self,
        tx: &mut PgConnection,
        effects: &mut Effects<'_>,
        m: &CustomerMessage,
        message_id: Uuid,
        change: waiter_bot::consent::ConsentChange,
        catalog: &Catalog,
    ) -> Result<(), ConversationError> {
        use waiter_bot::consent::{confirmation, ConsentChange};
        let words: String = m.inbound.body.trim().chars().take(64).collect();
        let changed = waiter_migrations::consent::set(
            tx,
            m.restaurant_id,
            &m.customer,
            change == ConsentChange::OptOut,
            waiter_migrations::consent::Source::Keyword,
            Some(&words),
        )
        .await?;
        metrics::counter!("waiter_conversation_consent_changes_total",
            "change" => if change == ConsentChange::OptOut { "opt_out" } else { "opt_in" },
            "changed" => if changed { "yes" } else { "no" })
        .increment(1);
        if changed {
            let lang = dialogue_of(&effects.conversation).language(&catalog.info);
            let text = confirmation(change, lang, &catalog.info);
            let id = ids::reply(&effects.input_id, effects.replies);
            effects
                .send(tx, "bot", id, Some(message_id), &Reply::Text(text))
                .await?;
        }
        Ok(())
    }

    async fn staff_reply(
        &self,
        tx: &mut PgConnection,
        envelope: &Envelope<ConversationInput>,
        r: &StaffReply,
    ) -> Result<Uuid, ConversationError> {
        let conversation = existing(tx, r.restaurant_id, r.conversation_id).await?;
        let mut effects = Effects::new(&self.bus, envelope, conversation);
        let reply = match &r.content_sid {
            // Chosen on the dashboard for a customer outside their window.
            Some(sid) => Reply::Interactive {
                template: waiter_migrations::templates::STAFF_REPLY.into(),
                content_sid: Some(sid.clone()),
                variables: [("1".to_string(), r.text.clone())].into(),
                body: r.text.clone(),
                choices: vec![],
                fallback: r.text.clone(),
            },
            None => Reply::Text(r.text.clone()),
        };
        effects
            .send(tx, "staff", r.message_id, None, &reply)
            .await?;
        // Staff took over: the bot pauses until resumed (or idle time passes).
        effects.conversation = store::set_bot(tx, r.conversation_id, false).await?;
        effects.announce(tx, &envelope.id).await?;
        Ok(r.conversation_id)
    }

    async fn set_bot(
        &self,
        tx: &mut PgConnection,
        envelope: &Envelope<ConversationInput>,
        s: &SetBotActive,
    ) -> Result<Uuid, ConversationError> {
        let conversation = existing(tx, s.restaurant_id, s.conversation_id).await?;
        let conversation = store::set_bot(tx, conversation.id, s.active).await?;
        let effects = Effects::new(&self.bus, envelope, conversation);
        effects.announce(tx, &envelope.id).await?;
        Ok(s.conversation_id)
    }

    async fn order_changed(
        &self,
        tx: &mut PgConnection,
        envelope: &Envelope<ConversationInput>,
        n: &OrderNotice,
        catalog: &Catalog,
    ) -> Result<Uuid, ConversationError> {
        let conversation = existing(tx, n.restaurant_id, n.conversation_id).await?;
        let (total, fulfilment) = store::order_summary(tx, n.order_id)
            .await?
            .unwrap_or((0, "delivery".into()));
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
        let effects = self
            .decide(tx, envelope, conversation, catalog, |dialogue, ctx| {
                waiter_bot::on_order_update(dialogue, &update, ctx)
            })
            .await?;
        if n.status == OrderStatus::Confirmed {
            self.order_ticket(tx, envelope, n, catalog, &effects.conversation)
                .await?;
        }
        Ok(effects.conversation.id)
    }

    /// Runs a bot decision about an order on the conversation's stored
    /// dialogue, carries out its actions and stores the dialogue again.
    async fn decide<'b>(
        &'b self,
        tx: &mut PgConnection,
        envelope: &Envelope<ConversationInput>,
        conversation: ConversationRow,
        catalog: &Catalog,
        decide: impl FnOnce(&mut Dialogue, &waiter_bot::Context<'_>) -> Vec<waiter_bot::Action>,
    ) -> Result<Effects<'b>, ConversationError> {
        let mut dialogue = dialogue_of(&conversation);
        let ctx = context(
            catalog,
            ids::derived(&envelope.id, "order"),
            conversation.last_inbound_at,
        );
        let actions = decide(&mut dialogue, &ctx);
        let mut effects = Effects::new(&self.bus, envelope, conversation);
        let reask =
            ChronoDuration::minutes(i64::from(catalog.restaurant.rating_reask_minutes.max(1)));
        effects.carry_out(tx, actions, None, reask).await?;
        store::save_dialogue(
            tx,
            effects.conversation.id,
            &serde_json::to_value(&dialogue).unwrap_or_default(),
        )
        .await?;
        Ok(effects)
    }

    /// The order stage refused a placement: the bot tells the customer why
    /// and gives them their cart back.
    async fn order_refused(
        &self,
        tx: &mut PgConnection,
        envelope: &Envelope<ConversationInput>,
        r: &OrderRefusal,
        catalog: &Catalog,
    ) -> Result<Uuid, ConversationError> {
        let conversation = existing(tx, r.restaurant_id, r.conversation_id).await?;
        let effects = self
            .decide(tx, envelope, conversation, catalog, |dialogue, ctx| {
                waiter_bot::on_order_refused(dialogue, r, ctx)
            })
            .await?;
        Ok(effects.conversation.id)
    }

    /// On confirmation, the order ticket for the restaurant's staff: a
    /// WhatsApp text to the order's branch's staff number, else the
    /// restaurant's, when one is configured. It is recorded on the staff
    /// number's own conversation, whose bot is switched off so that staff
    /// answering the ticket never get a bot reply, and it is staged in this
    /// input's transaction like any reply: its id derives from the notice's
    /// envelope id, so a redelivered notice never sends it twice.
    ///
    /// WhatsApp's 24-hour session window applies to staff numbers too: a
    /// free-form ticket is only delivered if the staff number wrote to the
    /// restaurant's number within the last 24 hours. Outside it Twilio
    /// refuses the send (error 63016). Outside it the ticket goes as the
    /// restaurant's approved `ticket` template when one is registered in
    /// its language; without one, outbound marks the ticket's row failed
    /// with 63016 and dead-letters it (`just dlq`).
    async fn order_ticket(
        &self,
        tx: &mut PgConnection,
        envelope: &Envelope<ConversationInput>,
        n: &OrderNotice,
        catalog: &Catalog,
        customer: &ConversationRow,
    ) -> Result<(), ConversationError> {
        let Some(order) = store::order_ticket(tx, n.restaurant_id, n.order_id).await? else {
            return Ok(());
        };
        let Some(staff) = order.staff_whatsapp.as_deref().and_then(ticket::address) else {
            return Ok(());
        };
        let mut conversation = store::open(tx, n.restaurant_id, &staff, None, None).await?;
        // A staff member ordering from the staff phone keeps their bot.
        if conversation.bot_active && conversation.id != customer.id {
            conversation = store::set_bot(tx, conversation.id, false).await?;
        }
        let text = ticket::text(
            catalog.info.default_language,
            &order,
            &ticket::Customer {
                name: customer.customer_name.as_deref(),
                address: &customer.customer,
            },
            &catalog.menu,
        );
        let lang = catalog.info.default_language;
        let open =
            waiter_migrations::templates::window_open(conversation.last_inbound_at, Utc::now());
        let template = waiter_migrations::templates::TICKET;
        let reply = match waiter_bot::ui::content_sid(&catalog.info, template, lang) {
            Some(sid) if !open && waiter_bot::ui::approved(&catalog.info, template, lang) => {
                Reply::Interactive {
                    template: template.into(),
                    content_sid: Some(sid),
                    variables: ticket::variables(lang, &order, &catalog.menu),
                    body: text.clone(),
                    choices: vec![],
                    fallback: text,
                }
            }
            _ => Reply::Text(text),
        };
        let mut effects = Effects {
            aggregate: customer.id,
            ..Effects::new(&self.bus, envelope, conversation)
        };
        let id = ids::derived(&envelope.id, "staff-ticket");
        effects.send(tx, "system", id, None, &reply).await?;
        effects
            .announce(tx, &format!("{}:ticket", envelope.id))
            .await?;
        metrics::counter!("waiter_conversation_order_tickets_total").increment(1);
        Ok(())
    }

    /// Who a dead letter of this input concerns.
    pub(crate) fn context_of(input: &ConversationInput) -> LetterContext {
        let (restaurant_id, recipient) = match input {
            ConversationInput::Customer(m) => (m.restaurant_id, Some(m.customer.clone())),
            ConversationInput::StaffReply(r) => (r.restaurant_id, None),
            ConversationInput::SetBotActive(s) => (s.restaurant_id, None),
            ConversationInput::OrderChanged(n) => (n.restaurant_id, None),
            ConversationInput::OrderRefused(r) => (r.restaurant_id, None),
        };
        LetterContext {
            restaurant_id: Some(restaurant_id),
            conversation_id: Some(Self::conversation_of(input)),
            recipient,
        }
    }

    /// The conversation an input belongs to, computable before any I/O.
    pub(crate) fn conversation_of(input: &ConversationInput) -> Uuid {
        match input {
            ConversationInput::Customer(m) => ids::conversation(m.restaurant_id, &m.customer),
            ConversationInput::StaffReply(r) => r.conversation_id,
            ConversationInput::SetBotActive(s) => s.conversation_id,
            ConversationInput::OrderChanged(n) => n.conversation_id,
            ConversationInput::OrderRefused(r) => r.conversation_id,
        }
    }
}

/// The order ticket staff receive on WhatsApp, in the restaurant's default
/// language: one function per language, the data gathered here.
mod ticket {
    use waiter_bot::{
        bidi::{auto, ltr, rtl_lines},
        money,
        normalize::clean_free_text,
        ui, Category, Lang,
    };
    use waiter_nats::events::OrderLineView;

    use crate::store::OrderTicket;

    const MAX_NAME_CHARS: usize = 30;

    /// The `whatsapp:+E164` address of a configured staff number, which
    /// may be stored with or without the `whatsapp:` prefix.
    pub fn address(number: &str) -> Option<String> {
        let number = number.trim();
        if number.is_empty() {
            None
        } else if number.starts_with("whatsapp:") {
            Some(number.to_string())
        } else {
            Some(format!("whatsapp:{number}"))
        }
    }

    /// Who ordered.
    pub struct Customer<'a> {
        pub name: Option<&'a str>,
        /// `whatsapp:+E164`.
        pub address: &'a str,
    }

    /// What a ticket shows, ready to be worded.
    struct Facts {
        number: i64,
        pickup: bool,
        cash: bool,
        /// The delivery address (delivery) or `None`.
        address: Option<String>,
        branch: Option<String>,
        /// (quantity, name, amount)
        lines: Vec<(i32, String, String)>,
        subtotal: String,
        fee: Option<String>,
        total: String,
        customer_name: Option<String>,
        customer_number: String,
    }

    fn facts(lang: Lang, order: &OrderTicket, customer: &Customer<'_>, menu: &[Category]) -> Facts {
        let amount = |minor: i64| money(minor, &order.currency);
        let lines: Vec<OrderLineView> =
            serde_json::from_value(order.lines.clone()).unwrap_or_default();
        let item_name = |line: &OrderLineView| -> String {
            let item = menu
                .iter()
                .flat_map(|c| c.items.iter())
                .find(|i| i.id == line.item_id);
            // The line carries the English name the order was priced with.
            match (lang, item) {
                (Lang::Ar, Some(item)) if !item.name_ar.trim().is_empty() => item.name_ar.clone(),
                _ => line.name.clone(),
            }
        };
        let branch = match lang {
            Lang::Ar => order
                .branch_name_ar
                .clone()
                .or(order.branch_name_en.clone()),
            Lang::En => order.branch_name_en.clone(),
        };
        let pickup = order.fulfilment == "pickup";
        Facts {
            number: order.number,
            pickup,
            cash: order.payment_method != "online",
            address: (!pickup)
                .then(|| order.address.as_deref().map(|a| clean_free_text(a, 400)))
                .flatten()
                .filter(|a| !a.is_empty()),
            branch,
            lines: lines
                .iter()
                .map(|l| (l.quantity, item_name(l), amount(l.line_total)))
                .collect(),
            subtotal: amount(order.subtotal),
            fee: (!pickup).then(|| amount(order.delivery_fee)),
            total: amount(order.total),
            customer_name: customer
                .name
                .map(|n| clean_free_text(n, MAX_NAME_CHARS).replace('\n', " "))
                .filter(|n| !n.trim().is_empty()),
            customer_number: customer
                .address
                .strip_prefix("whatsapp:")
                .unwrap_or(customer.address)
                .to_string(),
        }
    }

    /// The ticket template's variables (WhatsApp refuses line breaks in
    /// them): `1` the order number, `2` the items on one line, `3` the total.
    pub fn variables(
        lang: Lang,
        order: &OrderTicket,
        menu: &[Category],
    ) -> std::collections::BTreeMap<String, String> {
        let nobody = Customer {
            name: None,
            address: "",
        };
        let f = facts(lang, order, &nobody, menu);
        let items: Vec<String> = f
            .lines
            .iter()
            .map(|(quantity, name, _)| format!("{quantity} × {}", name.replace('\n', " ")))
            .collect();
        [
            ("1".to_string(), f.number.to_string()),
            ("2".to_string(), items.join(", ")),
            ("3".to_string(), f.total),
        ]
        .into()
    }

    /// The ticket's text, within WhatsApp's length limit.
    pub fn text(
        lang: Lang,
        order: &OrderTicket,
        customer: &Customer<'_>,
        menu: &[Category],
    ) -> String {
        let facts = facts(lang, order, customer, menu);
        match lang {
            Lang::En => ui::truncate_lines(&english(&facts), ui::MAX_TEXT),
            Lang::Ar => ui::truncate_lines(&rtl_lines(&arabic(&facts)), ui::MAX_TEXT),
        }
    }

    fn english(f: &Facts) -> String {
        let mut text = format!("🧾 *New order #{}*", f.number);
        if f.pickup {
            text.push_str("\n🏃 Pickup");
            if let Some(branch) = &f.branch {
                text.push_str(&format!(" at {branch}"));
            }
        } else {
            text.push_str("\n🛵 Delivery");
            if let Some(branch) = &f.branch {
                text.push_str(&format!(" from {branch}"));
            }
            if let Some(address) = &f.address {
                text.push_str(&format!("\n📍 {address}"));
            }
        }
        for (quantity, name, amount) in &f.lines {
            text.push_str(&format!("\n• {quantity} × {name} — {amount}"));
        }
        text.push_str(&format!("\nSubtotal: {}", f.subtotal));
        if let Some(fee) = &f.fee {
            text.push_str(&format!("\nDelivery fee: {fee}"));
        }
        text.push_str(&format!("\n*Total: {}*", f.total));
        text.push_str(match (f.cash, f.pickup) {
            (true, false) => "\n💵 Cash on delivery",
            (true, true) => "\n💵 Cash at pickup",
            (false, _) => "\n💳 Online payment (link sent to the customer)",
        });
        match &f.customer_name {
            Some(name) => text.push_str(&format!("\n👤 {name}, {}", f.customer_number)),
            None => text.push_str(&format!("\n👤 {}", f.customer_number)),
        }
        text
    }

    fn arabic(f: &Facts) -> String {
        let mut text = format!("🧾 *طلب جديد رقم {}*", ltr(&format!("#{}", f.number)));
        if f.pickup {
            text.push_str("\n🏃 استلام من الفرع");
            if let Some(branch) = &f.branch {
                text.push_str(&format!(": {}", auto(branch)));
            }
        } else {
            text.push_str("\n🛵 توصيل");
            if let Some(branch) = &f.branch {
                text.push_str(&format!(" من فرع {}", auto(branch)));
            }
            if let Some(address) = &f.address {
                text.push_str(&format!("\n📍 العنوان: {}", auto(address)));
            }
        }
        for (quantity, name, amount) in &f.lines {
            text.push_str(&format!(
                "\n• {} × {} — {}",
                auto(name),
                ltr(&quantity.to_string()),
                ltr(amount)
            ));
        }
        text.push_str(&format!("\nالمجموع الفرعي: {}", ltr(&f.subtotal)));
        if let Some(fee) = &f.fee {
            text.push_str(&format!("\nرسوم التوصيل: {}", ltr(fee)));
        }
        text.push_str(&format!("\n*الإجمالي:* {}", ltr(&f.total)));
        text.push_str(match (f.cash, f.pickup) {
            (true, false) => "\n💵 الدفع نقداً عند التوصيل",
            (true, true) => "\n💵 الدفع نقداً عند الاستلام",
            (false, _) => "\n💳 الدفع إلكترونياً (أُرسل رابط الدفع للعميل)",
        });
        match &f.customer_name {
            Some(name) => text.push_str(&format!(
                "\n👤 العميل: {} {}",
                auto(name),
                ltr(&f.customer_number)
            )),
            None => text.push_str(&format!("\n👤 العميل: {}", ltr(&f.customer_number))),
        }
        text
    }

    #[cfg(test)]
    mod tests {
        use uuid::Uuid;
        use waiter_bot::{bidi::first_strong_rtl, MenuItem};

        use super::*;

        const KEBAB: Uuid = Uuid::from_u128(0x102);
        const LABAN: Uuid = Uuid::from_u128(0x302);

        fn menu() -> Vec<Category> {
            let item = |id, en: &str, ar: &str| MenuItem {
                id,
                name_en: en.into(),
                name_ar: ar.into(),
                ..MenuItem::default()
            };
            vec![Category {
                items: vec![
                    item(KEBAB, "Lamb Kebab", "كباب لحم"),
                    item(LABAN, "Laban", "لبن"),
                ],
                ..Category::default()
            }]
        }

        fn order(fulfilment: &str, payment: &str) -> OrderTicket {
            OrderTicket {
                number: 12,
                fulfilment: fulfilment.into(),
                address: (fulfilment == "delivery").then(|| "Tahlia St, Riyadh".to_string()),
                payment_method: payment.into(),
                lines: serde_json::json!([
                    {"item_id": KEBAB, "name": "Lamb Kebab", "quantity": 2, "unit_price": 3780, "line_total": 7560},
                    {"item_id": LABAN, "name": "Laban", "quantity": 3, "unit_price": 500, "line_total": 1500},
                ]),
                subtotal: 9060,
                delivery_fee: if fulfilment == "delivery" { 1000 } else { 0 },
                total: if fulfilment == "delivery" {
                    10060
                } else {
                    9060
                },
                currency: "SAR".into(),
                branch_name_en: Some("Olaya".into()),
                branch_name_ar: Some("العليا".into()),
                staff_whatsapp: Some("+966511111111".into()),
            }
        }

        const SARA: Customer<'static> = Customer {
            name: Some("Sara\n*VIP*"),
            address: "whatsapp:+966500000001",
        };

        #[test]
        fn an_english_ticket_has_everything_the_kitchen_needs() {
            let text = text(Lang::En, &order("delivery", "cash"), &SARA, &menu());
            assert_eq!(
                text,
                "🧾 *New order #12*\n🛵 Delivery from Olaya\n📍 Tahlia St, Riyadh\n\
                 • 2 × Lamb Kebab — 75.60 SAR\n• 3 × Laban — 15.00 SAR\n\
                 Subtotal: 90.60 SAR\nDelivery fee: 10.00 SAR\n*Total: 100.60 SAR*\n\
                 💵 Cash on delivery\n👤 Sara *VIP*, +966500000001"
            );
            let pickup = text_of(Lang::En, "pickup", "online");
            assert!(pickup.contains("🏃 Pickup at Olaya"), "{pickup}");
            assert!(!pickup.contains("Delivery fee"), "{pickup}");
            assert!(pickup.contains("💳 Online payment"), "{pickup}");
        }

        fn text_of(lang: Lang, fulfilment: &str, payment: &str) -> String {
            text(lang, &order(fulfilment, payment), &SARA, &menu())
        }

        #[test]
        fn an_arabic_ticket_uses_arabic_names_and_reads_right_to_left() {
            let text = text_of(Lang::Ar, "pickup", "cash");
            for part in [
                "طلب جديد",
                "#12",
                "العليا",
                "كباب لحم",
                "لبن",
                "90.60 SAR",
                "نقداً",
                "+966500000001",
            ] {
                assert!(text.contains(part), "{part} missing from {text}");
            }
            assert!(!text.contains("Lamb Kebab"), "{text}");
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                assert_eq!(first_strong_rtl(line), Some(true), "{line:?}");
            }
        }

        #[test]
        fn a_long_order_is_cut_to_whatsapps_limit() {
            let mut long = order("delivery", "cash");
            let line = serde_json::json!({"item_id": Uuid::nil(), "name": "A rather long dish name", "quantity": 1, "unit_price": 100, "line_total": 100});
            long.lines = serde_json::Value::Array(vec![line; 200]);
            for lang in [Lang::En, Lang::Ar] {
                let text = text(lang, &long, &SARA, &menu());
                assert!(ui::len(&text) <= ui::MAX_TEXT, "{}", ui::len(&text));
                assert!(text.ends_with('…'), "{text}");
            }
        }

        #[test]
        fn staff_numbers_get_the_whatsapp_prefix_once() {
            assert_eq!(address(" +9665 "), Some("whatsapp:+9665".into()));
            assert_eq!(address("whatsapp:+9665"), Some("whatsapp:+9665".into()));
            assert_eq!(address("  "), None);
        }
    }
}
