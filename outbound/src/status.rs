//! Status callbacks: Twilio's word on what became of a message we sent,
//! applied monotonically (a late `delivered` never undoes `read`).

use waiter_nats::{
    events::{DashboardEvent, EventType},
    messages::StatusCallback,
    Bus, BusError, Delivery, EncodedMessage, Envelope, Failure, Handler, Incoming, Outcome,
    SharedBatchHandler,
};

use crate::{
    decision::{self, callback_rank},
    store::{self, StatusChange, StatusUpdate},
};
use waiter_migrations::consent;

/// The durable consumer every replica shares.
pub const CONSUMER: &str = "outbound-status";
/// Messages handled at once by one replica.
pub const IN_FLIGHT: i64 = 64;

pub struct StatusHandler {
    pool: sqlx::PgPool,
    bus: Bus,
    /// Deliveries of a callback whose sid is not (yet) in `messages`
    /// before it is dropped.
    unknown_sid_attempts: i64,
}

impl StatusHandler {
    pub fn new(pool: sqlx::PgPool, bus: Bus, unknown_sid_attempts: i64) -> Self {
        Self {
            pool,
            bus,
            unknown_sid_attempts,
        }
    }

    /// The dashboard event of a change, encoded.
    fn event(
        &self,
        env: &Envelope<StatusCallback>,
        change: &StatusChange,
    ) -> Result<EncodedMessage, BusError> {
        // MessageSid + status: the same callback twice is one event.
        let id = format!("message.status:{}:{}", env.body.message_sid, change.status);
        let event = DashboardEvent::new(change.restaurant_id, EventType::MessageStatus, change);
        EncodedMessage::of(event.subject(self.bus.topology()), &env.follow(id, event))
    }

    async fn publish(
        &self,
        env: &Envelope<StatusCallback>,
        change: &StatusChange,
    ) -> Result<(), BusError> {
        self.bus
            .publish_encoded_batch(vec![self.event(env, change)?])
            .await?;
        Ok(())
    }

    /// What follows a change besides its event: a number Twilio says
    /// unsubscribed is opted out.
    async fn after_change(&self, sid: &str, change: &StatusChange) -> Result<(), Failure> {
        if change.error_code.as_deref() == Some(consent::UNSUBSCRIBED_ERROR) {
            consent::unsubscribed_by_twilio(&self.pool, change.conversation_id).await?;
        }
        metrics::counter!("waiter_outbound_status_applied_total", "status" => change.status.clone())
            .increment(1);
        tracing::debug!(sid, status = %change.status, message_id = %change.message_id,
            "status applied");
        Ok(())
    }
}

/// A callback as the handler applies it, or why it says nothing.
#[derive(Debug, Clone, PartialEq)]
enum Reading {
    Apply(Change),
    /// Acknowledged without a change (counted, logged at debug or warn).
    Ignore,
}

/// The change a callback asks for, trimmed and ranked.
#[derive(Debug, Clone, PartialEq)]
struct Change {
    sid: String,
    status: String,
    rank: i32,
    error_code: Option<String>,
    error_message: Option<String>,
}

fn read(callback: &StatusCallback) -> Reading {
    let sid = callback.message_sid.trim();
    let status = callback.status.trim().to_ascii_lowercase();
    let Some(rank) = callback_rank(&status) else {
        tracing::debug!(sid, status = %callback.status, "status says nothing about delivery; ignored");
        metrics::counter!("waiter_outbound_status_ignored_total").increment(1);
        return Reading::Ignore;
    };
    if sid.is_empty() {
        tracing::warn!(status = %status, "status callback without a MessageSid; ignored");
        metrics::counter!("waiter_outbound_status_ignored_total").increment(1);
        return Reading::Ignore;
    }
    let error_code = callback
        .error_code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    let error_message = callback
        .error_message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(decision::error_message);
    Reading::Apply(Change {
        sid: sid.to_string(),
        status,
        rank,
        error_code,
        error_message,
    })
}

impl Handler for StatusHandler {
    type Message = StatusCallback;

    async fn handle(&self, env: Envelope<StatusCallback>, delivery: Delivery) -> Outcome {
        let callback = &env.body;
        let Reading::Apply(Change {
            sid,
            status,
            rank,
            error_code,
            error_message,
        }) = read(callback)
        else {
            return Outcome::Ack;
        };
        let (sid, error_code) = (sid.as_str(), error_code.as_deref());

        // The UPDATE and the look-up after it are two statements: the row
        // can get its sid between them (step 5 of sending). Then the row is
        // found below its rank and the UPDATE is simply tried again.
        for _ in 0..3 {
            let applied = store::apply_status(
                &self.pool,
                sid,
                &callback.account_sid,
                &status,
                rank,
                error_code,
                error_message.as_deref(),
            )
            .await;
            let current = match applied {
                Err(e) => {
                    return Outcome::Retry(
                        Failure::from(e).while_doing(&format!("apply status {status} of {sid}")),
                    )
                }
                Ok(Some(change)) => {
                    if let Err(failure) = self.after_change(sid, &change).await {
                        return Outcome::Retry(failure);
                    }
                    return match self.publish(&env, &change).await {
                        Ok(()) => Outcome::Ack,
                        Err(e) => Outcome::Retry(Failure::from(e)),
                    };
                }
                Ok(None) => {
                    match store::current_status(&self.pool, sid, &callback.account_sid).await {
                        Ok(current) => current,
                        Err(e) => {
                            return Outcome::Retry(
                                Failure::from(e).while_doing(&format!("read {sid}")),
                            )
                        }
                    }
                }
            };
            let Some(current) = current else {
                if i64::from(delivery.attempt) < self.unknown_sid_attempts {
                    // The callback can overtake our UPDATE after the 201.
                    return Outcome::transient(format!("no outbound message with sid {sid} yet"));
                }
                tracing::warn!(sid, status = %status, account_sid = %callback.account_sid,
                    attempts = delivery.attempt,
                    "status callback for a message we do not know; dropped");
                metrics::counter!("waiter_outbound_status_unknown_total").increment(1);
                return Outcome::Ack;
            };
            if current.status_rank < rank {
                continue;
            }
            // Already at or past this status. If it got here just now through
            // this very status, the earlier delivery may have stopped before
            // its event: publish it again (same id, so JetStream drops a copy).
            if current.recent && current.change.status == status && status != decision::QUEUED {
                if let Err(e) = self.publish(&env, &current.change).await {
                    return Outcome::Retry(Failure::from(e));
                }
            }
            tracing::debug!(sid, status = %status, current = %current.change.status,
                "status is not news; nothing to change");
            return Outcome::Ack;
        }
        Outcome::transient(format!(
            "status {status} of {sid} kept racing other writers"
        ))
    }
}

/// A window of callbacks: each round is one statement applying at most
/// one callback per sid, lowest status first (so `sent`, `delivered` and
/// `read` of one message arriving together are each applied and each
/// heard by dashboards); the changes' events go out as one publish. A
/// callback the statement did not change (not news, or its sid not yet
/// known) takes the one-at-a-time path, which decides what that means.
impl SharedBatchHandler for StatusHandler {
    type Message = StatusCallback;

    async fn handle_shared(&self, messages: Vec<Incoming<StatusCallback>>) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; messages.len()];
        let readings: Vec<Reading> = messages.iter().map(|m| read(&m.envelope.body)).collect();
        let mut pending: Vec<usize> = vec![];
        for (n, reading) in readings.iter().enumerate() {
            match reading {
                Reading::Ignore => outcomes[n] = Some(Outcome::Ack),
                Reading::Apply(_) => pending.push(n),
            }
        }
        let mut unchanged = vec![];
        let mut events = vec![];
        for round in rounds(&readings, pending) {
            let updates: Vec<StatusUpdate<'_>> = round
                .iter()
                .map(|&n| update_of(&readings[n], &messages[n].envelope.body))
                .collect();
            let changes = match store::apply_statuses(&self.pool, &updates).await {
                Ok(changes) => changes,
                Err(e) => {
                    let failure = Failure::from(e).while_doing("apply a window of statuses");
                    for &n in &round {
                        outcomes[n] = Some(Outcome::Retry(failure.clone()));
                    }
                    continue;
                }
            };
            let mut by_sid: std::collections::HashMap<String, StatusChange> = changes
                .into_iter()
                .filter_map(|c| Some((c.wa_sid.clone()?, c)))
                .collect();
            for n in round {
                let Reading::Apply(Change { sid, .. }) = &readings[n] else {
                    continue;
                };
                let Some(change) = by_sid.remove(sid) else {
                    unchanged.push(n);
                    continue;
                };
                let env = &messages[n].envelope;
                match self.after_change(sid, &change).await {
                    Ok(()) => match self.event(env, &change) {
                        Ok(event) => events.push((n, event)),
                        Err(e) => outcomes[n] = Some(Outcome::Retry(Failure::from(e))),
                    },
                    Err(failure) => outcomes[n] = Some(Outcome::Retry(failure)),
                }
            }
        }
        let (published, events): (Vec<usize>, Vec<EncodedMessage>) = events.into_iter().unzip();
        let sent = self.bus.publish_encoded_batch(events).await;
        for n in published {
            outcomes[n] = Some(match &sent {
                Ok(_) => Outcome::Ack,
                // A redelivery finds the change recent and publishes again.
                Err(e) => Outcome::Retry(Failure::transient(e.to_string()).while_doing("publish")),
            });
        }
        let mut messages: Vec<Option<Incoming<StatusCallback>>> =
            messages.into_iter().map(Some).collect();
        for n in unchanged {
            if let Some(Incoming { envelope, delivery }) = messages[n].take() {
                outcomes[n] = Some(self.handle(envelope, delivery).await);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::retry("status callback not decided")))
            .collect()
    }
}

fn update_of<'a>(reading: &'a Reading, callback: &'a StatusCallback) -> StatusUpdate<'a> {
    let Reading::Apply(change) = reading else {
        unreachable!("only callbacks to apply are in a round")
    };
    StatusUpdate {
        wa_sid: &change.sid,
        account_sid: &callback.account_sid,
        status: &change.status,
        rank: change.rank,
        error_code: change.error_code.as_deref(),
        error_message: change.error_message.as_deref(),
    }
}

/// The callbacks `pending` (indexes into `readings`) in rounds: each round
/// has at most one callback per sid, and a sid's callbacks go in rank
/// order, one per round.
fn rounds(readings: &[Reading], pending: Vec<usize>) -> Vec<Vec<usize>> {
    let mut by_sid: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for n in pending {
        if let Reading::Apply(change) = &readings[n] {
            by_sid.entry(change.sid.as_str()).or_default().push(n);
        }
    }
    let rank = |n: usize| match &readings[n] {
        Reading::Apply(change) => change.rank,
        Reading::Ignore => 0,
    };
    let mut rounds: Vec<Vec<usize>> = vec![];
    for mut callbacks in by_sid.into_values() {
        callbacks.sort_by_key(|&n| (rank(n), n));
        for (r, n) in callbacks.into_iter().enumerate() {
            if rounds.len() <= r {
                rounds.push(vec![]);
            }
            rounds[r].push(n);
        }
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(sid: &str, status: &str) -> Reading {
        Reading::Apply(Change {
            sid: sid.into(),
            status: status.into(),
            rank: callback_rank(status).expect("a delivery status"),
            error_code: None,
            error_message: None,
        })
    }

    #[test]
    fn a_round_has_each_sid_once_and_a_sids_statuses_go_lowest_first() {
        let readings = vec![
            apply("SM1", "read"),
            apply("SM2", "sent"),
            Reading::Ignore,
            apply("SM1", "sent"),
            apply("SM1", "delivered"),
            apply("SM2", "delivered"),
        ];
        let pending = vec![0, 1, 3, 4, 5];
        let rounds = rounds(&readings, pending);
        assert_eq!(rounds, vec![vec![3, 1], vec![4, 5], vec![0]]);
    }

    #[test]
    fn blank_sids_and_statuses_that_say_nothing_are_ignored() {
        let callback = |sid: &str, status: &str| StatusCallback {
            message_sid: sid.into(),
            status: status.into(),
            ..StatusCallback::default()
        };
        assert_eq!(read(&callback(" ", "delivered")), Reading::Ignore);
        assert_eq!(read(&callback("SM1", "accepted-ish")), Reading::Ignore);
        assert_eq!(
            read(&callback(" SM1 ", "Delivered")),
            apply("SM1", "delivered")
        );
    }
}
