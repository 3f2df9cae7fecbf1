//! A window of one partition's inbound messages, routed together: every
//! verdict first, then one statement for the batch's audit rows, then the
//! forwards published at once with their PubAcks awaited together. The
//! audit rows are keyed by MessageSid and the forwards carry it as their
//! `Nats-Msg-Id`, so a batch tried again writes and forwards nothing twice.

use waiter_nats::{messages::InboundMessage, Batch, BatchHandler, Failure, Incoming, Outcome};

use crate::{
    audit,
    route::{event_id, Router, Verdict},
};

impl BatchHandler for Router {
    type Message = InboundMessage;

    async fn handle_batch(&self, batch: Batch<InboundMessage>) -> Vec<Outcome> {
        let mut verdicts = Vec::with_capacity(batch.messages.len());
        let mut stopped = None;
        for Incoming { envelope, .. } in &batch.messages {
            match self.decide(&envelope.body).await {
                Ok(verdict) => verdicts.push((envelope, verdict)),
                Err(outcome) => {
                    stopped = Some(outcome);
                    break;
                }
            }
        }
        let Some((first, first_verdict)) = verdicts.first() else {
            return stopped.into_iter().collect();
        };
        let context = first_verdict.context(&first.body);
        let first_failed = |f: Failure| vec![Outcome::Retry(f.with_context(context.clone()))];
        let ids: Vec<String> = verdicts.iter().map(|(e, _)| event_id(&e.body)).collect();
        let rows: Vec<_> = verdicts
            .iter()
            .zip(&ids)
            .map(|((envelope, verdict), id)| verdict.audit(envelope, id))
            .collect();
        let audited = match audit::record_all(&self.pool, &rows).await {
            Ok(()) => rows.len(),
            Err(e) if rows.len() == 1 => {
                return first_failed(Failure::from(e).while_doing("audit"))
            }
            // One row may be what fails (a value PostgreSQL refuses): the
            // first message alone tells, and the rest follow it.
            Err(_) => match audit::record_all(&self.pool, &rows[..1]).await {
                Ok(()) => 1,
                Err(e) => return first_failed(Failure::from(e).while_doing("audit")),
            },
        };
        drop(rows);
        if audited < verdicts.len() {
            verdicts.truncate(audited);
            stopped = None;
        }
        let mut forwards = Vec::with_capacity(verdicts.len());
        for (envelope, verdict) in &verdicts {
            match verdict {
                Verdict::Refused { refusal, .. } => {
                    let m = &envelope.body;
                    tracing::warn!(to = %m.to, account = %m.account_sid, sid = %m.message_sid,
                        reason = refusal.reason(), "inbound message refused");
                }
                Verdict::Forward {
                    restaurant,
                    limited,
                } => match self.forward(envelope, restaurant, limited.clone()) {
                    Ok(encoded) => forwards.push(encoded),
                    Err(e) => return first_failed(Failure::from(e).while_doing("forward")),
                },
            }
        }
        if let Err(e) = self.bus.publish_encoded_batch(forwards).await {
            return first_failed(Failure::from(e).while_doing("forward"));
        }
        for (_, verdict) in &verdicts {
            let counter = match verdict {
                Verdict::Refused { .. } => "waiter_router_refused_total",
                Verdict::Forward { .. } => "waiter_router_forwarded_total",
            };
            metrics::counter!(counter, "outcome" => verdict.outcome().as_str()).increment(1);
        }
        let mut outcomes = vec![Outcome::Ack; verdicts.len()];
        outcomes.extend(stopped);
        outcomes
    }
}
