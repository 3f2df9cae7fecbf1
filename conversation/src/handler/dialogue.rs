//! The conversation's dialogue state as the bot reads it, and the context
//! the bot decides in.

use chrono::{Duration as ChronoDuration, Utc};
use uuid::Uuid;
use waiter_bot::Dialogue;

use crate::{catalog::Catalog, store::ConversationRow};

/// The conversation's dialogue state. A state that does not decode (written
/// by a newer release, or damaged by hand) is logged and counted
/// (`waiter_conversation_dialogue_undecodable_total`), and the bot starts
/// over from the greeting rather than failing every input of the customer.
pub(super) fn dialogue_of(conversation: &ConversationRow) -> Dialogue {
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

pub(super) fn context<'c>(
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
