//! Status callbacks: after a `201`, Twilio posts `sent`, `delivered` and
//! `read` to the message's `StatusCallback`, signed like any webhook, and
//! not necessarily in that order.

use std::{sync::Arc, time::Duration};

use rand::seq::SliceRandom as _;

use crate::{api::SentMessage, customer::post_signed, Core, StatusCallbackMode};

/// The pause before each callback, so the sender has usually (not always)
/// stored the SID from the `201` when the first one arrives.
const STEP_DELAY: Duration = Duration::from_millis(5);

/// The statuses Twilio reports for a WhatsApp message that was read, with
/// the `EventType` WhatsApp adds. (No callback for the initial `queued`.)
const STATUSES: [(&str, Option<&str>); 3] = [
    ("sent", None),
    ("delivered", Some("DELIVERED")),
    ("read", Some("READ")),
];

/// Starts the callbacks for an accepted message, if it asked for them and
/// callbacks are on. `sender` is the business number it went out from.
pub(crate) fn spawn(core: Arc<Core>, message: SentMessage, sender: Option<String>) {
    let Some(url) = message.status_callback.clone() else {
        return;
    };
    let mut statuses = STATUSES.to_vec();
    match core.status_callbacks {
        StatusCallbackMode::Off => return,
        StatusCallbackMode::InOrder => {}
        StatusCallbackMode::Shuffled => statuses.shuffle(&mut rand::thread_rng()),
    }
    let shutdown = core.shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = deliver(&core, &message, sender.as_deref(), &url, &statuses) => {}
        }
    });
}

async fn deliver(
    core: &Core,
    message: &SentMessage,
    sender: Option<&str>,
    url: &str,
    statuses: &[(&str, Option<&str>)],
) {
    let Some(token) = core.state.token(&message.account_sid) else {
        tracing::warn!(account_sid = %message.account_sid, "account removed; no status callbacks");
        return;
    };
    for (status, event_type) in statuses {
        tokio::time::sleep(STEP_DELAY).await;
        let params = callback_params(message, sender, status, *event_type);
        match post_signed(core, &token, url, &core.delivery_url(url), params).await {
            Ok(result) if (200..300).contains(&result.status) => {
                tracing::debug!(sid = %message.sid, status, "status callback delivered");
            }
            Ok(result) => {
                tracing::warn!(
                    sid = %message.sid,
                    status,
                    http_status = result.status,
                    "status callback answered with an error"
                );
            }
            Err(error) => {
                tracing::warn!(sid = %message.sid, status, "status callback failed: {}", error.chain());
            }
        }
    }
}

fn callback_params(
    message: &SentMessage,
    sender: Option<&str>,
    status: &str,
    event_type: Option<&str>,
) -> Vec<(String, String)> {
    let mut params = vec![
        ("MessageSid".to_string(), message.sid.clone()),
        ("SmsSid".to_string(), message.sid.clone()),
        ("MessageStatus".to_string(), status.to_string()),
        ("SmsStatus".to_string(), status.to_string()),
        ("AccountSid".to_string(), message.account_sid.clone()),
    ];
    if let Some(from) = sender {
        params.push(("From".to_string(), from.to_string()));
    }
    params.push(("To".to_string(), message.to.clone()));
    params.push(("ApiVersion".to_string(), "2010-04-01".to_string()));
    params.push(("ChannelPrefix".to_string(), "whatsapp".to_string()));
    if let Some(event_type) = event_type {
        params.push(("EventType".to_string(), event_type.to_string()));
    }
    if let Some(service) = &message.messaging_service_sid {
        params.push(("MessagingServiceSid".to_string(), service.clone()));
    }
    params
}
