//! Shared batches: a shared consumer's due messages handed to the handler
//! all at once (so it may apply them in one statement), each outcome then
//! settled on its own. No order is kept or needed: a message retried or
//! deferred in place holds back nothing but itself.

use std::{sync::Arc, time::Instant};

use async_nats::jetstream::consumer::PullConsumer;
use tokio_util::sync::CancellationToken;

use super::{
    engine::{
        apply, dead_letter, decode, defer_newer, wake_after, Decoded, Engine, EngineEnd, Intake,
        Settled, IDLE_WAKE,
    },
    held::Settler,
    policy::LetterClass,
    Incoming, Outcome, SharedBatchHandler,
};

pub(crate) struct SharedBatches<H> {
    pub handler: Arc<H>,
}

impl<H: SharedBatchHandler> Engine for SharedBatches<H> {
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
            if stop.is_cancelled() {
                break EngineEnd::Stopped;
            }
            let now = Instant::now();
            let mut seqs = vec![];
            let mut batch = vec![];
            let mut settled = vec![];
            for (&seq, held) in intake.queue.iter_mut() {
                if !held.due(now) {
                    continue;
                }
                if let Some((class, failure)) = held.letter.take() {
                    if let Settled::Done = dead_letter(&settler, held, class, failure).await {
                        settled.push(seq);
                    }
                    continue;
                }
                match decode::<H::Message>(held) {
                    Decoded::Ok(envelope) => {
                        seqs.push(seq);
                        batch.push(Incoming {
                            envelope,
                            delivery: held.delivery(),
                        });
                    }
                    Decoded::Poison(failure) => {
                        if let Settled::Done =
                            dead_letter(&settler, held, LetterClass::Poison, failure).await
                        {
                            settled.push(seq);
                        }
                    }
                    Decoded::Newer(reason) => defer_newer(&settler, held, &reason),
                }
            }
            for seq in settled {
                intake.queue.remove(&seq);
            }
            if batch.is_empty() {
                let wait = wake_after(&intake.queue, IDLE_WAKE);
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = intake.next(wait) => {}
                }
                continue;
            }
            let stage = settler.stage;
            metrics::histogram!("waiter_worker_batch_size", "stage" => stage)
                .record(seqs.len() as f64);
            let started = Instant::now();
            let mut outcomes = self.handler.handle_shared(batch).await;
            metrics::histogram!("waiter_worker_handle_seconds", "stage" => stage)
                .record(started.elapsed().as_secs_f64());
            // A handler that answered fewer than it was given: the rest are
            // tried again in place, not lost.
            outcomes.resize_with(seqs.len(), || {
                Outcome::retry("the handler returned no outcome for this message")
            });
            for (seq, outcome) in seqs.into_iter().zip(outcomes) {
                let held = intake
                    .queue
                    .get_mut(&seq)
                    .expect("offered messages are held");
                if let Settled::Done = apply(&settler, held, outcome).await {
                    intake.queue.remove(&seq);
                }
            }
        };
        intake.finish(end).await
    }
}
