//! A window of one partition's inputs in one transaction.
//!
//! The window is applied first without savepoints; only when an input
//! fails is it applied again with a savepoint per input, so the failing
//! one is rolled back alone (with the effects it staged) and ends the
//! batch with its own outcome, while the inputs before it commit. The dedup
//! (`applied_inputs`) is the per-input one; what the batch shares is the
//! transaction (one commit instead of one per input) and the outbox work:
//! the effects a crashed predecessor left are published before the batch
//! (one query), the batch's own are staged in memory, written in one
//! statement before the commit and published from memory after it, their
//! PubAcks awaited together, before any input is acknowledged.

use std::sync::Arc;

use uuid::Uuid;
use waiter_nats::{
    messages::ConversationInput, outbox, Batch, BatchHandler, Envelope, Failure, Incoming, Outcome,
};

use crate::{
    catalog::Catalog,
    handler::{ConversationError, Conversations, Tx},
};

fn failed(input: &ConversationInput, e: impl Into<Failure>) -> Outcome {
    Outcome::Retry(e.into().with_context(Conversations::context_of(input)))
}

impl BatchHandler for Conversations {
    type Message = ConversationInput;

    async fn handle_batch(&self, batch: Batch<ConversationInput>) -> Vec<Outcome> {
        let Some(first) = batch.messages.first() else {
            return vec![];
        };
        let first = &first.envelope.body;
        let mut aggregates: Vec<Uuid> = batch
            .messages
            .iter()
            .map(|m| Conversations::conversation_of(&m.envelope.body))
            .collect();
        aggregates.sort_unstable();
        aggregates.dedup();
        // Effects a crashed predecessor committed but did not publish go
        // first, so replies keep the order they were decided in. Within one
        // term of holding the partition nobody else writes them: a
        // conversation this replica flushed or published all of in this
        // term has none left, and its window skips the query.
        let term = batch.term();
        if !self.known_flushed(term, &aggregates).await {
            if let Err(e) = outbox::flush_all(&self.pool, &self.bus, &aggregates).await {
                return vec![failed(first, e)];
            }
            if let Some(term) = term {
                for a in &aggregates {
                    self.flushed.insert(*a, term).await;
                }
            }
        }
        // Catalogs before the transaction (see `Conversations::catalog_for`);
        // the batch ends before an input whose catalog cannot be had.
        let mut prepared: Vec<(&Envelope<ConversationInput>, Option<Arc<Catalog>>)> = vec![];
        let mut stopped = None;
        for Incoming { envelope, .. } in &batch.messages {
            match self.catalog_for(&envelope.body).await {
                Ok(catalog) => prepared.push((envelope, catalog)),
                Err(e) => {
                    stopped = Some(failed(&envelope.body, e));
                    break;
                }
            }
        }
        let (mut outcomes, staged) = match self.apply_all(&batch, &prepared).await {
            Ok(applied) => applied,
            Err(e) => return vec![failed(first, e)],
        };
        if outcomes.iter().all(|o| *o == Outcome::Ack) {
            outcomes.extend(stopped);
        }
        if outcomes.first() != Some(&Outcome::Ack) {
            // Nothing committed (or only the first input failed).
            return outcomes;
        }
        match staged.publish(&self.marks, &self.bus).await {
            Ok(_) => outcomes,
            // What stays unpublished goes out before these inputs' retry.
            Err(e) => {
                for a in &aggregates {
                    self.flushed.invalidate(a).await;
                }
                vec![failed(first, e)]
            }
        }
    }
}

impl Conversations {
    /// Whether every one of `aggregates` was flushed or published whole by
    /// this replica in `term`.
    async fn known_flushed(&self, term: Option<u64>, aggregates: &[Uuid]) -> bool {
        let Some(term) = term else {
            return false;
        };
        for a in aggregates {
            if self.flushed.get(a).await != Some(term) {
                return false;
            }
        }
        true
    }

    /// Applies `prepared` in one transaction. Returns `Ack` for every input
    /// committed (applied or found applied before), then the outcome of the
    /// input that failed, if one did, with the effects the committed inputs
    /// staged (written, not yet published). An error is one of the
    /// transaction itself: nothing was committed.
    ///
    /// Most windows apply cleanly, so they are first tried without a
    /// savepoint per input (each costs a round trip, and PostgreSQL a
    /// subtransaction). If an input fails that way nothing is committed,
    /// and the window runs again with a savepoint per input, which commits
    /// the inputs before the failing one and ends there.
    async fn apply_all(
        &self,
        batch: &Batch<ConversationInput>,
        prepared: &[(&Envelope<ConversationInput>, Option<Arc<Catalog>>)],
    ) -> Result<(Vec<Outcome>, outbox::Staged), ConversationError> {
        if prepared.is_empty() {
            return Ok((vec![], outbox::Staged::default()));
        }
        if prepared.len() > 1 {
            if let Some(applied) = self.apply_window(batch, prepared, false).await? {
                return Ok(applied);
            }
            metrics::counter!("waiter_conversation_window_retries_total").increment(1);
        }
        Ok(self
            .apply_window(batch, prepared, true)
            .await?
            .unwrap_or_default())
    }

    /// One try of [`Self::apply_all`]; `None` when an input failed without
    /// savepoints (rolled back, nothing committed).
    async fn apply_window(
        &self,
        batch: &Batch<ConversationInput>,
        prepared: &[(&Envelope<ConversationInput>, Option<Arc<Catalog>>)],
        savepoints: bool,
    ) -> Result<Option<(Vec<Outcome>, outbox::Staged)>, ConversationError> {
        // A lone input needs none: its failure rolls back everything anyway.
        let savepoints = savepoints && prepared.len() > 1;
        let mut outcomes = Vec::with_capacity(prepared.len());
        let mut tx = Tx::new(self.pool.begin().await?);
        let mut duplicates = 0;
        for (n, (envelope, catalog)) in prepared.iter().enumerate() {
            if savepoints {
                // One round trip: the previous input's savepoint is kept.
                let mark = if n == 0 {
                    "SAVEPOINT input"
                } else {
                    "RELEASE SAVEPOINT input; SAVEPOINT input"
                };
                simple(&mut tx, mark).await?;
            }
            let staged_before = tx.staged();
            match self.apply_in(&mut tx, envelope, catalog.clone()).await {
                Ok(applied) => {
                    duplicates += usize::from(!applied);
                    outcomes.push(Outcome::Ack);
                }
                Err(_) if !savepoints && prepared.len() > 1 => return Ok(None),
                Err(e) => {
                    if savepoints {
                        simple(&mut tx, "ROLLBACK TO SAVEPOINT input").await?;
                        tx.truncate(staged_before);
                    }
                    outcomes.push(failed(&envelope.body, e));
                    break;
                }
            }
        }
        if outcomes.first() != Some(&Outcome::Ack) {
            return Ok(Some((outcomes, outbox::Staged::default())));
        }
        tx.write().await?;
        if !batch.still_held() {
            // A successor may already have applied these: leave them to it.
            return Ok(Some((vec![], outbox::Staged::default())));
        }
        let Tx { conn, outbox, .. } = tx;
        conn.commit().await?;
        if duplicates > 0 {
            metrics::counter!("waiter_conversation_duplicates_total").increment(duplicates as u64);
        }
        Ok(Some((outcomes, outbox)))
    }
}

/// Savepoint commands, sent as one simple query (a `&str` without
/// arguments: several statements, one round trip).
async fn simple(conn: &mut sqlx::PgConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    use sqlx::Executor;
    conn.execute(sql).await?;
    Ok(())
}
