//! Conversations and their messages: lists, staff replies, the bot toggle,
//! read marks.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use waiter_nats::{
    envelope::new_id,
    events::{ConversationView, DashboardEvent, EventType, MessageView},
    messages::{ConversationInput, SetBotActive, StaffReply},
    Envelope,
};
use warp::{http::StatusCode, reply::Response};

use super::{
    docs::{ErrorBody, ReadErrors, WriteErrors},
    json_reply, publish, Request, Scope,
};
use crate::{
    error::ApiError,
    paging::{Cursor, PageQuery},
    store::{self, ConversationSummary},
    App,
};

/// The longest text a staff member may send (Twilio's WhatsApp body limit).
pub const MAX_MESSAGE_CHARS: usize = 1600;

/// One page of conversations.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPage {
    pub conversations: Vec<ConversationSummary>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next: Option<String>,
}

/// One page of a conversation's messages, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub messages: Vec<MessageView>,
    /// Pass as `before` for the page of older messages; null on the first page.
    pub next: Option<String>,
}

/// A staff reply.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SendBody {
    /// 1–1600 characters, not blank; no control characters but newlines,
    /// carriage returns and tabs (the pattern says what `validate_message`
    /// checks).
    #[schema(
        min_length = 1,
        max_length = 1600,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    pub message: String,
    /// The name of an approved content template to send `message` in (its
    /// variable `1`), e.g. `staff_reply`: the only way to reach a customer
    /// whose 24-hour window is closed.
    #[serde(default)]
    pub template: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SendAccepted {
    /// The id the message will have in the conversation's thread.
    pub message_id: Uuid,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BotBody {
    /// true hands the conversation back to the bot; false pauses it.
    pub active: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BotAccepted {
    pub request_id: Uuid,
    pub active: bool,
}

/// Newest first by last message; conversations without messages come last.
#[utoipa::path(
    get,
    path = "/api/restaurants/{id}/conversations",
    tag = "conversations",
    params(("id" = Uuid, Path, description = "The restaurant"), PageQuery),
    responses(
        (status = 200, description = "One page, newest first", body = ConversationPage),
        ReadErrors,
    ),
)]
pub async fn list_conversations(
    app: Arc<App>,
    scope: Scope,
    request: Request,
) -> Result<Response, ApiError> {
    let page = PageQuery::parse(&request.query).map_err(ApiError::BadRequest)?;
    let limit = page.limit();
    let mut rows = store::conversations(
        &app.pool,
        scope.restaurant_id,
        page.before.map(|b| b.for_ascending_ties()),
        limit,
    )
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = more.then(|| rows.last()).flatten().map(|c| {
        Cursor {
            at: c.conversation.last_message_at,
            id: c.conversation.id,
        }
        .encode()
    });
    Ok(json_reply(
        StatusCode::OK,
        &ConversationPage {
            conversations: rows,
            next,
        },
    ))
}

/// The most recent `limit` messages (before `before`), oldest first within
/// the page; `next` pages towards older messages.
#[utoipa::path(
    get,
    path = "/api/restaurants/{id}/conversations/{cid}/messages",
    tag = "conversations",
    params(
        ("id" = Uuid, Path, description = "The restaurant"),
        ("cid" = Uuid, Path, description = "The conversation"),
        PageQuery,
    ),
    responses(
        (status = 200, description = "One page, oldest first", body = MessagePage),
        ReadErrors,
    ),
)]
pub async fn list_messages(
    app: Arc<App>,
    scope: Scope,
    request: Request,
) -> Result<Response, ApiError> {
    let conversation_id = request.id("cid")?;
    let page = PageQuery::parse(&request.query).map_err(ApiError::BadRequest)?;
    let limit = page.limit();
    store::conversation(&app.pool, scope.restaurant_id, conversation_id).await?;
    let mut rows = store::messages_newest_first(
        &app.pool,
        scope.restaurant_id,
        conversation_id,
        page.before.map(|b| b.for_descending_ties()),
        limit,
    )
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = more.then(|| rows.last()).flatten().map(|m| {
        Cursor {
            at: Some(m.created_at),
            id: m.id,
        }
        .encode()
    });
    rows.reverse();
    Ok(json_reply(
        StatusCode::OK,
        &MessagePage {
            messages: rows,
            next,
        },
    ))
}

/// A staff reply: 202 once the bus has stored it; the conversation stage
/// persists it, pauses the bot (human handoff) and sends it.
#[utoipa::path(
    post,
    path = "/api/restaurants/{id}/conversations/{cid}/send",
    tag = "conversations",
    params(
        ("id" = Uuid, Path, description = "The restaurant"),
        ("cid" = Uuid, Path, description = "The conversation"),
    ),
    request_body = SendBody,
    responses(
        (status = 202, description = "Stored; it will be sent", body = SendAccepted),
        (status = 409, description = "`outside_session_window`: the customer last wrote over 24 hours ago and no template was chosen; `template_not_approved`: the chosen template is not approved for the customer's language. Nothing was queued.", body = ErrorBody),
        WriteErrors,
    ),
)]
pub async fn send_message(
    app: Arc<App>,
    scope: Scope,
    request: Request,
) -> Result<Response, ApiError> {
    let conversation_id = request.id("cid")?;
    let SendBody { message, template } = request.json()?;
    validate_message(&message)?;
    let content_sid = template_for(&app, &scope, conversation_id, template.as_deref()).await?;
    let message_id = Uuid::new_v4();
    let input = ConversationInput::StaffReply(StaffReply {
        message_id,
        restaurant_id: scope.restaurant_id,
        conversation_id,
        staff: scope.principal.sub.clone(),
        text: message,
        content_sid,
    });
    to_conversation(&app, &scope, conversation_id, message_id, input).await?;
    metrics::counter!("waiter_notifier_staff_messages_total").increment(1);
    Ok(json_reply(
        StatusCode::ACCEPTED,
        &SendAccepted { message_id },
    ))
}

/// The ContentSid a staff reply goes as: none inside the customer's
/// 24-hour window unless staff chose a template; outside it, the chosen
/// template, which must be approved in the customer's language.
async fn template_for(
    app: &App,
    scope: &Scope,
    conversation_id: Uuid,
    template: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let recipient = store::recipient(&app.pool, scope.restaurant_id, conversation_id).await?;
    let open =
        waiter_migrations::templates::window_open(recipient.last_inbound_at, chrono::Utc::now());
    let Some(name) = template.map(str::trim).filter(|t| !t.is_empty()) else {
        return match open {
            true => Ok(None),
            false => Err(ApiError::Refused(
                "outside_session_window",
                "the customer last wrote over 24 hours ago: only an approved template can reach them (choose one in `template`)".into(),
            )),
        };
    };
    let approved = waiter_migrations::templates::approved(
        &app.pool,
        scope.restaurant_id,
        name,
        &recipient.language,
    )
    .await?;
    match approved {
        Some(t) => Ok(Some(t.content_sid)),
        None => Err(ApiError::Refused(
            "template_not_approved",
            format!(
                "no approved template {name:?} in {:?} for this restaurant",
                recipient.language
            ),
        )),
    }
}

/// Stores an input on the conversation's CONV partition (envelope id =
/// `id`), once the conversation is known to be this restaurant's.
async fn to_conversation(
    app: &App,
    scope: &Scope,
    conversation_id: Uuid,
    id: Uuid,
    input: ConversationInput,
) -> Result<(), ApiError> {
    let conversation = store::conversation(&app.pool, scope.restaurant_id, conversation_id).await?;
    let topology = app.bus.topology();
    let subject = topology.conversation(
        topology.conversation_partition(&scope.restaurant_id, &conversation.customer),
    );
    publish(
        app,
        subject,
        &Envelope::new(id.to_string(), new_id(), input),
    )
    .await
}

pub fn validate_message(message: &str) -> Result<(), ApiError> {
    if message.trim().is_empty() {
        return Err(ApiError::bad_request("`message` must not be empty"));
    }
    let chars = message.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(ApiError::bad_request(format!(
            "`message` is {chars} characters long; at most {MAX_MESSAGE_CHARS} are allowed"
        )));
    }
    if let Some(c) = message
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        return Err(ApiError::bad_request(format!(
            "`message` contains the control character U+{:04X}",
            c as u32
        )));
    }
    Ok(())
}

/// Pauses the bot (staff take over) or hands the conversation back to it.
#[utoipa::path(
    post,
    path = "/api/restaurants/{id}/conversations/{cid}/bot",
    tag = "conversations",
    params(
        ("id" = Uuid, Path, description = "The restaurant"),
        ("cid" = Uuid, Path, description = "The conversation"),
    ),
    request_body = BotBody,
    responses(
        (status = 202, description = "Stored; the conversation stage applies it", body = BotAccepted),
        WriteErrors,
    ),
)]
pub async fn set_bot(app: Arc<App>, scope: Scope, request: Request) -> Result<Response, ApiError> {
    let conversation_id = request.id("cid")?;
    let BotBody { active } = request.json()?;
    let request_id = Uuid::new_v4();
    let input = ConversationInput::SetBotActive(SetBotActive {
        restaurant_id: scope.restaurant_id,
        conversation_id,
        active,
        actor: scope.principal.sub.clone(),
    });
    to_conversation(&app, &scope, conversation_id, request_id, input).await?;
    Ok(json_reply(
        StatusCode::ACCEPTED,
        &BotAccepted { request_id, active },
    ))
}

/// Unread to 0, after the `conversation.updated` event is stored
/// (idempotent: retry on 503).
#[utoipa::path(
    post,
    path = "/api/restaurants/{id}/conversations/{cid}/read",
    tag = "conversations",
    params(
        ("id" = Uuid, Path, description = "The restaurant"),
        ("cid" = Uuid, Path, description = "The conversation"),
    ),
    responses(
        (status = 200, description = "The conversation, read", body = ConversationView),
        WriteErrors,
    ),
)]
pub async fn mark_read(
    app: Arc<App>,
    scope: Scope,
    request: Request,
) -> Result<Response, ApiError> {
    let conversation_id = request.id("cid")?;
    let view = store::mark_read(&app.pool, scope.restaurant_id, conversation_id).await?;
    let event = DashboardEvent::new(scope.restaurant_id, EventType::ConversationUpdated, &view);
    let subject = event.subject(app.bus.topology());
    publish(&app, subject, &Envelope::new(new_id(), new_id(), event)).await?;
    Ok(json_reply(StatusCode::OK, &view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_staff_messages() {
        assert!(validate_message("hello").is_ok());
        assert!(validate_message("two\nlines\twith a tab").is_ok());
        assert!(validate_message(&"ش".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert!(validate_message(&"a".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
        assert!(validate_message("").is_err());
        assert!(validate_message(" \n\t").is_err());
        let err = validate_message("bell\u{7}").unwrap_err().to_string();
        assert!(err.contains("U+0007"), "{err}");
        assert!(validate_message("nul\0").is_err());
        for hostile in ["\u{1b}[31mred", "a\u{7f}", "next\u{85}line"] {
            let err = validate_message(hostile).unwrap_err().to_string();
            assert!(err.contains("control character U+"), "{hostile:?}: {err}");
        }
        // Line breaks, tabs and the format characters of Arabic text and
        // emoji sequences are what staff legitimately type.
        assert!(validate_message("line one\r\nline two\t✓").is_ok());
        assert!(validate_message("\u{200f}مرحبا\u{2066}+966\u{2069} 👩\u{200d}🍳").is_ok());
    }
}
