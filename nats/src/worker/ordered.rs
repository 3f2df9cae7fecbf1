//! In-order batches: the owner of a partition hands the handler every
//! due message it holds, in stream order, and stops at the first that is
//! not finished (retried or deferred in place: later messages wait behind
//! it, so order holds).

use std::{sync::Arc, time::Instant};

use async_nats::jetstream::consumer::PullConsumer;
use tokio_util::sync::CancellationToken;

use super::{
    engine::{
        apply, dead_letter, decode, defer_newer, regained, wake_after, Decoded, Engine, EngineEnd,
        Intake, Settled, IDLE_WAKE,
    },
    held::Settler,
    outcome::Outcome,
    policy::LetterClass,
    Batch, BatchHandler, Holding, Incoming,
};

pub(crate) struct Ordered<H> {
    pub handler: Arc<H>,
}

impl<H: BatchHandler> Engine for Ordered<H> {
    async fn run(
        &self,
        settler: Arc<Settler>,
        consumer: PullConsumer,
        window: usize,
        stop: CancellationToken,
    ) -> EngineEnd {
        let mut intake = Intake::start(settler.clone(), consumer, window);
        let end = loop {
            if intake.drain().is_some() {
                break EngineEnd::Deleted { resume_after: None };
            }
            if !settler.gate.may_work() {
                if regained(&settler, &stop).await {
                    continue;
                }
                break EngineEnd::Lost;
            }
            if stop.is_cancelled() {
                break EngineEnd::Stopped;
            }
            let now = Instant::now();
            let Some((&head_seq, head)) = intake.queue.first_key_value() else {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = intake.next(IDLE_WAKE) => {}
                }
                continue;
            };
            if !head.due(now) {
                let wait = wake_after(&intake.queue, IDLE_WAKE);
                tokio::select! {
                    _ = stop.cancelled() => {}
                    // Keep taking deliveries in, so progress acks cover them.
                    _ = intake.next(wait) => {}
                }
                continue;
            }
            let mut batch = vec![];
            for (&seq, held) in &intake.queue {
                if held.letter.is_some() || !held.due(now) {
                    break;
                }
                match decode::<H::Message>(held) {
                    Decoded::Ok(envelope) => batch.push((
                        seq,
                        Incoming {
                            envelope,
                            delivery: held.delivery(),
                        },
                    )),
                    _ => break,
                }
            }
            if batch.is_empty() {
                let held = intake.queue.get_mut(&head_seq).expect("the head is held");
                let settled = match (held.letter.take(), decode::<H::Message>(held)) {
                    (Some((class, failure)), _) => {
                        dead_letter(&settler, held, class, failure).await
                    }
                    (None, Decoded::Poison(failure)) => {
                        dead_letter(&settler, held, LetterClass::Poison, failure).await
                    }
                    (None, Decoded::Newer(reason)) => {
                        defer_newer(&settler, held, &reason);
                        Settled::Again
                    }
                    (None, Decoded::Ok(_)) => Settled::Again,
                };
                if let Settled::Done = settled {
                    intake.queue.remove(&head_seq);
                }
                continue;
            }
            let (seqs, batch): (Vec<u64>, Vec<_>) = batch.into_iter().unzip();
            let stage = settler.stage;
            metrics::histogram!("waiter_worker_batch_size", "stage" => stage)
                .record(seqs.len() as f64);
            let started = Instant::now();
            let batch = Batch {
                messages: batch,
                holding: Holding(settler.gate.clone()),
            };
            let mut outcomes = self.handler.handle_batch(batch).await;
            metrics::histogram!("waiter_worker_handle_seconds", "stage" => stage)
                .record(started.elapsed().as_secs_f64());
            if outcomes.is_empty() {
                outcomes.push(Outcome::retry("the handler returned no outcome"));
            }
            for (seq, outcome) in seqs.into_iter().zip(outcomes) {
                // A holder that may no longer act only records work done.
                if !settler.gate.may_work() && outcome != Outcome::Ack {
                    break;
                }
                let held = intake
                    .queue
                    .get_mut(&seq)
                    .expect("offered messages are held");
                match apply(&settler, held, outcome).await {
                    Settled::Done => {
                        intake.queue.remove(&seq);
                    }
                    Settled::Again => break,
                }
            }
        };
        intake.finish(end).await
    }
}
