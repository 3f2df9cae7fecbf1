//! Staff's inputs from the dashboard: a reply to the customer, and turning
//! the bot off or on.

use super::Tx;
use uuid::Uuid;
use waiter_bot::Reply;
use waiter_nats::{
    messages::{ConversationInput, SetBotActive, StaffReply},
    Envelope,
};

use super::{effects::Effects, existing, ConversationError, Conversations};
use crate::store;

impl Conversations {
    pub(super) async fn staff_reply(
        &self,
        tx: &mut Tx,
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

    pub(super) async fn set_bot(
        &self,
        tx: &mut Tx,
        envelope: &Envelope<ConversationInput>,
        s: &SetBotActive,
    ) -> Result<Uuid, ConversationError> {
        let conversation = existing(tx, s.restaurant_id, s.conversation_id).await?;
        let conversation = store::set_bot(tx, conversation.id, s.active).await?;
        let effects = Effects::new(&self.bus, envelope, conversation);
        effects.announce(tx, &envelope.id).await?;
        Ok(s.conversation_id)
    }
}
