//! The order stage's news of an order: the bot tells the customer of a change
//! or a refusal, and a confirmed order's ticket goes to the staff number.

use super::Tx;
use chrono::{Duration as ChronoDuration, Utc};
use uuid::Uuid;
use waiter_bot::{Dialogue, OrderUpdate, Reply};
use waiter_nats::{
    messages::{ConversationInput, OrderNotice, OrderRefusal, OrderStatus},
    Envelope,
};

use super::{
    dialogue::{context, dialogue_of},
    effects::Effects,
    existing, ticket, ConversationError, Conversations,
};
use crate::{
    catalog::Catalog,
    store::{self, ids, ConversationRow},
};

impl Conversations {
    pub(super) async fn order_changed(
        &self,
        tx: &mut Tx,
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
        tx: &mut Tx,
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
        let mut effects = Effects {
            touch_with_dialogue: true,
            ..Effects::new(&self.bus, envelope, conversation)
        };
        let reask =
            ChronoDuration::minutes(i64::from(catalog.restaurant.rating_reask_minutes.max(1)));
        effects.carry_out(tx, actions, None, reask).await?;
        store::save_dialogue(
            tx,
            effects.conversation.id,
            &serde_json::to_value(&dialogue).unwrap_or_default(),
            std::mem::take(&mut effects.touched),
        )
        .await?;
        effects.touch_with_dialogue = false;
        Ok(effects)
    }

    /// The order stage refused a placement: the bot tells the customer why
    /// and gives them their cart back.
    pub(super) async fn order_refused(
        &self,
        tx: &mut Tx,
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
        tx: &mut Tx,
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
        let mut conversation = store::open(tx, n.restaurant_id, &staff, None, None)
            .await?
            .conversation;
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
}
