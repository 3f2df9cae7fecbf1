//! The transactional outbox: effects are written in the same PostgreSQL
//! transaction as the state change that decided them, then published in
//! order once it commits. If the process dies in between, the next delivery
//! of the same input (or the periodic sweep) publishes what is left; the
//! `Nats-Msg-Id` of each effect makes a second publish harmless.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    bus::{Bus, EncodedMessage},
    envelope::{Envelope, Payload},
    error::BusError,
};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl From<OutboxError> for crate::worker::Failure {
    fn from(e: OutboxError) -> Self {
        match e {
            OutboxError::Database(e) => Self::from(e).while_doing("outbox"),
            OutboxError::Bus(e) => Self::from(e).while_doing("outbox"),
        }
    }
}

/// Writes one effect inside the caller's transaction. Returns its sequence.
pub async fn stage<T: Payload>(
    tx: &mut PgConnection,
    aggregate_id: Uuid,
    subject: String,
    envelope: &Envelope<T>,
) -> Result<i64, OutboxError> {
    let payload = envelope.encode()?;
    let (seq,): (i64,) = sqlx::query_as(
        "INSERT INTO outbox (aggregate_id, subject, msg_id, trace_id, kind, payload) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
    )
    .bind(aggregate_id)
    .bind(subject)
    .bind(&envelope.id)
    .bind(&envelope.trace_id)
    .bind(T::KIND)
    .bind(payload)
    .fetch_one(&mut *tx)
    .await?;
    Ok(seq)
}

/// Effects staged in memory while a transaction runs, written to the
/// outbox in one statement just before it commits ([`Staged::write`]) and
/// published from memory after ([`Staged::publish`]): one statement for a
/// whole batch of inputs instead of one per effect, and no read-back.
/// A caller that rolls back to a savepoint truncates to the length it
/// had there.
#[derive(Debug, Default)]
pub struct Staged {
    aggregates: Vec<Uuid>,
    effects: Vec<EncodedMessage>,
    /// Their sequences, once written.
    seqs: Vec<i64>,
}

impl Staged {
    /// Stages one effect of `aggregate_id` (a conversation or an order).
    pub fn push<T: Payload>(
        &mut self,
        aggregate_id: Uuid,
        subject: String,
        envelope: &Envelope<T>,
    ) -> Result<(), OutboxError> {
        self.effects.push(EncodedMessage::of(subject, envelope)?);
        self.aggregates.push(aggregate_id);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.effects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.effects.is_empty()
    }

    /// Forgets what was staged after the first `len` effects (their
    /// savepoint was rolled back).
    pub fn truncate(&mut self, len: usize) {
        self.effects.truncate(len);
        self.aggregates.truncate(len);
    }

    /// Keeps only the effects whose message id `keep` accepts.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let effects = std::mem::take(&mut self.effects);
        let aggregates = std::mem::take(&mut self.aggregates);
        (self.effects, self.aggregates) = effects
            .into_iter()
            .zip(aggregates)
            .filter(|(effect, _)| keep(&effect.msg_id))
            .unzip();
    }

    /// Writes every staged effect inside the caller's transaction, in the
    /// order staged (their sequences follow it).
    pub async fn write(&mut self, tx: &mut PgConnection) -> Result<(), OutboxError> {
        if self.effects.is_empty() {
            return Ok(());
        }
        let column =
            |f: fn(&EncodedMessage) -> &str| -> Vec<&str> { self.effects.iter().map(f).collect() };
        let payloads: Vec<&[u8]> = self.effects.iter().map(|e| e.payload.as_slice()).collect();
        self.seqs = sqlx::query_scalar(
            "INSERT INTO outbox (aggregate_id, subject, msg_id, trace_id, kind, payload) \
             SELECT aggregate_id, subject, msg_id, trace_id, kind, payload \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[]) \
                WITH ORDINALITY AS e(aggregate_id, subject, msg_id, trace_id, kind, payload, n) \
             ORDER BY n RETURNING seq",
        )
        .bind(&self.aggregates)
        .bind(column(|e| &e.subject))
        .bind(column(|e| &e.msg_id))
        .bind(column(|e| &e.trace_id))
        .bind(column(|e| &e.kind))
        .bind(payloads)
        .fetch_all(&mut *tx)
        .await?;
        Ok(())
    }

    /// After the transaction that wrote them committed: publishes the
    /// effects in the order staged (PubAcks awaited together) and hands
    /// their marks to `marks`. Every older unpublished effect of the same
    /// aggregates must have been published before ([`flush_all`]).
    pub async fn publish(self, marks: &Marks, bus: &Bus) -> Result<usize, OutboxError> {
        if self.effects.is_empty() {
            return Ok(0);
        }
        let count = self.effects.len();
        bus.publish_encoded_batch(self.effects).await?;
        marks.mark(self.seqs);
        Ok(count)
    }
}

/// Marks published effects in the background: one `UPDATE` per
/// [`Marks::EVERY`] for every window of every partition of the process,
/// instead of one autocommit transaction (and WAL flush) per window.
///
/// Only a successor and the sweep read the marks: the replica that
/// published an effect knows it did (the term-scoped flush skip). A mark
/// not yet written when the process dies makes the successor publish the
/// effect again, which its `Nats-Msg-Id` makes a duplicate the stream
/// drops (the duplicate window is ten minutes), as for a crash between
/// publishing and marking.
#[derive(Debug, Clone)]
pub struct Marks {
    tx: tokio::sync::mpsc::UnboundedSender<Vec<i64>>,
}

impl Marks {
    /// How long a published effect may stay unmarked.
    pub const EVERY: Duration = Duration::from_millis(100);

    /// The marks' sender and the writer to run (in the stage's tasks): it
    /// writes every [`Marks::EVERY`] and, once every sender is dropped or
    /// `shutdown` asked and senders keep quiet for a moment, what is left.
    pub fn start(
        pool: PgPool,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> (
        Marks,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Marks { tx }, write_marks(pool, rx, shutdown))
    }

    /// Queues the marks of effects just published; never waits.
    pub fn mark(&self, seqs: Vec<i64>) {
        if !seqs.is_empty() {
            // A closed writer means the process is stopping: the marks
            // are left to the successor, as after a crash.
            let _ = self.tx.send(seqs);
        }
    }
}

async fn write_marks(
    pool: PgPool,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<i64>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use tokio::time::{sleep_until, timeout_at, Instant};
    let mut pending: Vec<i64> = vec![];
    // When the oldest pending mark is due.
    let mut due = Instant::now();
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Some(seqs) => {
                    if pending.is_empty() {
                        due = Instant::now() + Marks::EVERY;
                    }
                    pending.extend(seqs);
                }
                None => break,
            },
            _ = sleep_until(due), if !pending.is_empty() => {
                if !write_pending(&pool, &mut pending).await {
                    due = Instant::now() + Duration::from_secs(1);
                }
            }
            // The workers hand their partitions back first: what they
            // publish meanwhile still arrives, until they fall quiet.
            _ = shutdown.cancelled() => {
                let until = Instant::now() + Duration::from_secs(2);
                while let Ok(Some(seqs)) =
                    timeout_at(until.min(Instant::now() + 2 * Marks::EVERY), rx.recv()).await
                {
                    pending.extend(seqs);
                }
                break;
            }
        }
    }
    write_pending(&pool, &mut pending).await;
}

/// `false` when the marks could not be written (they stay pending).
async fn write_pending(pool: &PgPool, pending: &mut Vec<i64>) -> bool {
    if pending.is_empty() {
        return true;
    }
    metrics::gauge!("waiter_outbox_marks_pending").set(pending.len() as f64);
    match mark_published(pool, pending).await {
        Ok(()) => {
            pending.clear();
            metrics::gauge!("waiter_outbox_marks_pending").set(0.0);
            true
        }
        // Kept for the next try; a successor would publish them again.
        Err(e) => {
            tracing::warn!(error = %e, pending = pending.len(),
                "cannot mark published effects; will try again");
            false
        }
    }
}

async fn mark_published(pool: &PgPool, seqs: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE outbox SET published_at = now() WHERE seq = ANY($1)")
        .bind(seqs)
        .execute(pool)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Pending {
    seq: i64,
    subject: String,
    msg_id: String,
    trace_id: String,
    kind: String,
    payload: Vec<u8>,
}

async fn publish_rows(pool: &PgPool, bus: &Bus, rows: Vec<Pending>) -> Result<usize, OutboxError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let count = rows.len();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let batch = rows
        .into_iter()
        .map(|row| EncodedMessage {
            subject: row.subject,
            msg_id: row.msg_id,
            trace_id: row.trace_id,
            kind: row.kind,
            payload: row.payload,
        })
        .collect();
    bus.publish_encoded_batch(batch).await?;
    mark_published(pool, &seqs).await?;
    Ok(count)
}

/// Publishes every unpublished effect of one conversation or order, oldest
/// first. Called after each commit and before handling a redelivered input.
pub async fn flush(pool: &PgPool, bus: &Bus, aggregate_id: Uuid) -> Result<usize, OutboxError> {
    let rows: Vec<Pending> = sqlx::query_as(
        "SELECT seq, subject, msg_id, trace_id, kind, payload FROM outbox \
         WHERE aggregate_id = $1 AND published_at IS NULL ORDER BY seq",
    )
    .bind(aggregate_id)
    .fetch_all(pool)
    .await?;
    publish_rows(pool, bus, rows).await
}

/// [`flush`] for the aggregates of a batch of inputs at once: one query,
/// one publish whose PubAcks are awaited together, one update.
pub async fn flush_all(
    pool: &PgPool,
    bus: &Bus,
    aggregate_ids: &[Uuid],
) -> Result<usize, OutboxError> {
    let rows: Vec<Pending> = sqlx::query_as(
        "SELECT seq, subject, msg_id, trace_id, kind, payload FROM outbox \
         WHERE aggregate_id = ANY($1) AND published_at IS NULL ORDER BY seq",
    )
    .bind(aggregate_ids)
    .fetch_all(pool)
    .await?;
    publish_rows(pool, bus, rows).await
}

/// Publishes effects left unpublished for longer than `older_than` (a
/// stage died after committing and its input will not come back soon).
pub async fn sweep(pool: &PgPool, bus: &Bus, older_than: Duration) -> Result<usize, OutboxError> {
    let rows: Vec<Pending> = sqlx::query_as(
        "SELECT seq, subject, msg_id, trace_id, kind, payload FROM outbox \
         WHERE published_at IS NULL AND created_at < now() - make_interval(secs => $1) \
         ORDER BY seq LIMIT 500",
    )
    .bind(older_than.as_secs_f64())
    .fetch_all(pool)
    .await?;
    publish_rows(pool, bus, rows).await
}

/// Runs [`sweep`] every `after` until shutdown.
pub async fn run_sweeper(
    pool: PgPool,
    bus: Bus,
    after: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(after) => {}
        }
        match sweep(&pool, &bus, after).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(published = n, "outbox sweep published stranded effects"),
            Err(e) => tracing::warn!(error = %e, "outbox sweep failed"),
        }
    }
}

/// Marks an input as applied inside the caller's transaction. `false` means
/// it was applied before: the caller should roll back and only flush.
pub async fn first_application(
    tx: &mut PgConnection,
    stage: &str,
    input_id: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO applied_inputs (stage, input_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(stage)
    .bind(input_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}
