//! A customer's message: stored once, STOP and START honoured, then handed
//! to the bot unless staff are answering.

use super::Tx;
use chrono::{Duration as ChronoDuration, Utc};
use uuid::Uuid;
use waiter_bot::{Inbound, Reply};
use waiter_nats::{
    events::EventType,
    messages::{ConversationInput, CustomerMessage},
    Envelope,
};

use super::{
    dialogue::{context, dialogue_of},
    effects::Effects,
    ConversationError, Conversations,
};
use crate::{
    catalog::Catalog,
    store::{self, ids},
};

impl Conversations {
    /// `false`: the input was applied before (nothing changed).
    pub(super) async fn customer_message(
        &self,
        tx: &mut Tx,
        envelope: &Envelope<ConversationInput>,
        m: &CustomerMessage,
        catalog: &Catalog,
    ) -> Result<bool, ConversationError> {
        let inbound = &m.inbound;
        let message_id = ids::inbound_message(&inbound.message_sid);
        let payload = serde_json::json!({
            "media": inbound.media,
            "location": inbound.location,
            "button": inbound.button,
            "list_reply": inbound.list_reply,
            "original_replied_message_sid": inbound.original_replied_message_sid,
            "referral": inbound.referral,
        });
        let arrival = store::Arrival {
            stage: super::STAGE,
            input_id: &envelope.id,
            restaurant_id: m.restaurant_id,
            customer: &m.customer,
            customer_name: inbound.profile_name.as_deref(),
            wa_id: inbound.wa_id.as_deref(),
            message_id,
            message_sid: &inbound.message_sid,
            kind: inbound_kind(inbound),
            body: &inbound.body,
            payload,
            limited_reason: m.limited.as_deref(),
            received_at: inbound.received_at,
        };
        let Some(store::Arrived {
            conversation,
            marketing_opted_out,
            previous_inbound,
            stored,
        }) = store::arrive(tx, arrival).await?
        else {
            return Ok(false);
        };
        let Some(stored) = stored else {
            // Stored under another envelope id (an operator replay): once is enough.
            return Ok(true);
        };
        if let Some(original) = &inbound.body_original {
            use base64::Engine;
            match base64::engine::general_purpose::STANDARD.decode(original) {
                Ok(bytes) => store::keep_original_body(tx, message_id, &bytes).await?,
                Err(e) => tracing::warn!(sid = %inbound.message_sid, error = %e,
                    "the original body is not base64; only the visible body is kept"),
            }
        }
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
            return Ok(true);
        }
        if m.limited.is_some() {
            metrics::counter!("waiter_conversation_limited_total").increment(1);
            return Ok(true);
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
                return Ok(true);
            }
            // A staff number's conversation carries order tickets: the bot
            // never comes back there by itself (staff may turn it on from
            // the dashboard).
            if store::is_staff_number(tx, m.restaurant_id, &m.customer).await? {
                return Ok(true);
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
        // Read with the conversation: only a STOP or START changes it, and
        // those returned above.
        if !catalog.info.promo_links.is_empty() && marketing_opted_out {
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
        effects.touch_with_dialogue = true;
        effects
            .carry_out(tx, actions, Some(message_id), reask)
            .await?;
        store::save_dialogue(
            tx,
            effects.conversation.id,
            &serde_json::to_value(&dialogue).unwrap_or_default(),
            effects.touched,
        )
        .await?;
        Ok(true)
    }

    /// Records an opt-out or opt-in of the restaurant's marketing and, when
    /// it changed something, confirms it once in the customer's language.
    async fn consent_change(
        &self,
        tx: &mut Tx,
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
