//! What a decision causes: the outbox rows one input's transaction stages
//! (dashboard events, outgoing messages and their sends, order commands, notes).

use super::Tx;
use chrono::{Duration as ChronoDuration, Utc};
use uuid::Uuid;
use waiter_bot::{Action, Reply};
use waiter_nats::{
    events::{DashboardEvent, EventType},
    messages::{
        Actor, CartLine, ConversationInput, OrderAction, OrderCommand, OrderStatus,
        OutboundContent, OutboundMessage,
    },
    outbox::OutboxError,
    Bus, Envelope, Payload,
};

use super::ConversationError;
use crate::store::{self, ids, ConversationRow, NewMessage};

/// The transaction of one input and the effects it stages.
pub(super) struct Effects<'a> {
    pub(super) bus: &'a Bus,
    pub(super) input_id: String,
    pub(super) trace_id: String,
    pub(super) conversation: ConversationRow,
    /// The outbox aggregate the effects are staged under: the conversation
    /// of the input, which the handler flushes right after the commit (and
    /// before that conversation's next input). Usually `conversation.id`;
    /// the staff order ticket is recorded on the staff number's
    /// conversation but travels with the customer's effects.
    pub(super) aggregate: Uuid,
    pub(super) replies: usize,
    /// Set by a caller that saves the dialogue after its sends: the sends
    /// leave `last_message_at` to that one statement ([`Self::touched`])
    /// instead of an `UPDATE` each.
    pub(super) touch_with_dialogue: bool,
    /// A send happened whose `last_message_at` is not written yet.
    pub(super) touched: bool,
}

impl<'a> Effects<'a> {
    /// The effects of one input on its conversation (also their outbox aggregate).
    pub(super) fn new(
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
            touch_with_dialogue: false,
            touched: false,
        }
    }

    fn stage<T: Payload>(
        &self,
        tx: &mut Tx,
        id: String,
        subject: String,
        body: T,
    ) -> Result<(), OutboxError> {
        let envelope = Envelope::new(id, self.trace_id.clone(), body);
        tx.outbox.push(self.aggregate, subject, &envelope)
    }

    pub(super) async fn event(
        &self,
        tx: &mut Tx,
        event_type: EventType,
        key: &str,
        data: impl serde::Serialize,
    ) -> Result<(), OutboxError> {
        let event = DashboardEvent::new(self.conversation.restaurant_id, event_type, data);
        let subject = event.subject(self.bus.topology());
        self.stage(tx, format!("{}:{key}", event_type.as_str()), subject, event)
    }

    /// Tells dashboards the conversation changed (unread, bot, last message).
    pub(super) async fn announce(&self, tx: &mut Tx, key: &str) -> Result<(), OutboxError> {
        let view = self.conversation.view();
        self.event(tx, EventType::ConversationUpdated, key, view)
            .await
    }

    /// Records an outgoing message (written with the window's others, see
    /// [`store::insert_replies`]) and stages its send.
    pub(super) async fn send(
        &mut self,
        tx: &mut Tx,
        author: &str,
        id: Uuid,
        reply_to: Option<Uuid>,
        reply: &Reply,
    ) -> Result<(), ConversationError> {
        if tx.replies.iter().any(|r| r.id == id) {
            // Decided again in this window (a replay): stored and sent once.
            return Ok(());
        }
        let (kind, body, payload, content) = render(reply);
        let index = self.replies as i32;
        self.replies += 1;
        tx.replies.push(store::Reply {
            id,
            restaurant_id: self.conversation.restaurant_id,
            conversation_id: self.conversation.id,
            author: author.to_string(),
            kind,
            body,
            payload,
            reply_to,
            reply_index: index,
        });
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
        self.stage(tx, send_msg_id(id), topology.outbound(partition), outbound)?;
        if self.touch_with_dialogue {
            self.touched = true;
        } else {
            store::touch(tx, self.conversation.id).await?;
        }
        Ok(())
    }

    async fn order_command(
        &self,
        tx: &mut Tx,
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
    }

    /// Records, as a note on the conversation, a message the bot chose not
    /// to send (outside the 24-hour window with no approved template).
    async fn note(
        &mut self,
        tx: &mut Tx,
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
    pub(super) async fn carry_out(
        &mut self,
        tx: &mut Tx,
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
                    if std::mem::take(&mut self.touched) {
                        // The dashboards hear the conversation as it is now.
                        store::touch(tx, self.conversation.id).await?;
                    }
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

/// The envelope id of a message's send.
pub(super) fn send_msg_id(message_id: Uuid) -> String {
    format!("outbound:{message_id}")
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
