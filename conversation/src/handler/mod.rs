//! Applies one conversation input: store it once, let the bot decide,
//! record the decision and its effects in one transaction, then publish the
//! effects (outbox) before acknowledging.
//!
//! This file: the handler and its dispatch of inputs; each kind of input,
//! the effects, the dialogue state and the kitchen ticket have files of their own.

mod customer;
mod dialogue;
mod effects;
mod orders;
mod staff;
mod ticket;

use std::sync::Arc;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;
use waiter_nats::{
    messages::ConversationInput,
    outbox::{self, OutboxError},
    Bus, Envelope, Failure, LetterContext,
};

use crate::{
    catalog::{Catalog, Catalogs},
    store::{self, ids, ConversationRow},
};

const STAGE: &str = "conversation";

#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error("{0}")]
    Invalid(String),
}

impl From<ConversationError> for Failure {
    fn from(e: ConversationError) -> Self {
        match e {
            ConversationError::Database(e) => Failure::from(e),
            ConversationError::Outbox(e) => Failure::from(e),
            // An input naming a conversation or restaurant that does not
            // exist: a business rule that can never pass.
            ConversationError::Invalid(reason) => Failure::permanent(reason),
        }
    }
}

/// A window's transaction, the outgoing messages its inputs decided and
/// the effects they staged, each written in one statement before it
/// commits ([`Tx::write`]). Every query of the handlers runs on it as on
/// a connection.
pub(crate) struct Tx {
    pub(crate) conn: Transaction<'static, Postgres>,
    pub(crate) replies: Vec<store::Reply>,
    pub(crate) outbox: outbox::Staged,
}

impl Tx {
    pub(crate) fn new(conn: Transaction<'static, Postgres>) -> Self {
        Tx {
            conn,
            replies: vec![],
            outbox: outbox::Staged::default(),
        }
    }

    /// How much is staged: what a savepoint rolls back to.
    pub(crate) fn staged(&self) -> (usize, usize) {
        (self.replies.len(), self.outbox.len())
    }

    /// Forgets what was staged after `staged` (its savepoint was rolled back).
    pub(crate) fn truncate(&mut self, (replies, effects): (usize, usize)) {
        self.replies.truncate(replies);
        self.outbox.truncate(effects);
    }

    /// Writes the outgoing messages, then the outbox. A message found
    /// already stored (only a repeated decision can be) keeps its send out
    /// of the outbox, as it was sent or is being sent already.
    pub(crate) async fn write(&mut self) -> Result<(), ConversationError> {
        let stored_before = store::insert_replies(&mut self.conn, &self.replies).await?;
        if !stored_before.is_empty() {
            let sends: std::collections::HashSet<String> = stored_before
                .iter()
                .map(|id| effects::send_msg_id(*id))
                .collect();
            self.outbox.retain(|msg_id| !sends.contains(msg_id));
        }
        self.outbox.write(&mut self.conn).await?;
        Ok(())
    }
}

impl std::ops::Deref for Tx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

pub struct Conversations {
    pub(crate) bus: Bus,
    pub(crate) pool: PgPool,
    catalogs: Catalogs,
    /// Conversations with no unpublished effect, and the partition term
    /// (`Batch::term`) this replica knows it in: their windows skip the
    /// outbox flush while the term lasts.
    pub(crate) flushed: moka::future::Cache<Uuid, u64>,
    /// Where published effects' marks go (written in the background).
    pub(crate) marks: outbox::Marks,
}

/// A conversation an input names; one that does not exist (or is another
/// restaurant's) makes the input permanently invalid.
async fn existing(
    tx: &mut Tx,
    restaurant_id: Uuid,
    id: Uuid,
) -> Result<ConversationRow, ConversationError> {
    store::lock(tx, restaurant_id, id)
        .await?
        .ok_or_else(|| ConversationError::Invalid("no such conversation".into()))
}

impl Conversations {
    pub fn new(bus: Bus, pool: PgPool, catalogs: Catalogs, marks: outbox::Marks) -> Self {
        Self {
            bus,
            pool,
            catalogs,
            flushed: moka::future::Cache::new(100_000),
            marks,
        }
    }

    /// What the bot reads about the input's restaurant, fetched before the
    /// transaction: fetched inside it, a cache miss would ask the pool for
    /// a second connection while holding one, and with every partition
    /// doing so at once they all wait on each other.
    pub(crate) async fn catalog_for(
        &self,
        input: &ConversationInput,
    ) -> Result<Option<Arc<Catalog>>, ConversationError> {
        let restaurant = match input {
            ConversationInput::Customer(m) => Some(m.restaurant_id),
            ConversationInput::OrderChanged(n) => Some(n.restaurant_id),
            ConversationInput::OrderRefused(r) => Some(r.restaurant_id),
            _ => None,
        };
        match restaurant {
            Some(id) => Ok(Some(self.catalogs.get(id).await?.ok_or_else(|| {
                ConversationError::Invalid(format!("unknown restaurant {id}"))
            })?)),
            None => Ok(None),
        }
    }

    /// Applies the input inside the caller's transaction, with the catalog
    /// [`Self::catalog_for`] fetched. `false`: it was applied before, and
    /// nothing was changed.
    pub(crate) async fn apply_in(
        &self,
        tx: &mut Tx,
        envelope: &Envelope<ConversationInput>,
        catalog: Option<Arc<Catalog>>,
    ) -> Result<bool, ConversationError> {
        if let (ConversationInput::Customer(m), Some(catalog)) = (&envelope.body, &catalog) {
            // The first application is recorded by the conversation's upsert.
            return self.customer_message(tx, envelope, m, catalog).await;
        }
        if !outbox::first_application(tx, STAGE, &envelope.id).await? {
            return Ok(false);
        }
        match (&envelope.body, catalog) {
            (ConversationInput::Customer(_), _) => {
                unreachable!("customer messages are applied above, with their catalog")
            }
            (ConversationInput::StaffReply(r), _) => self.staff_reply(tx, envelope, r).await?,
            (ConversationInput::SetBotActive(s), _) => self.set_bot(tx, envelope, s).await?,
            (ConversationInput::OrderChanged(n), Some(catalog)) => {
                self.order_changed(tx, envelope, n, &catalog).await?
            }
            (ConversationInput::OrderRefused(r), Some(catalog)) => {
                self.order_refused(tx, envelope, r, &catalog).await?
            }
            (_, None) => unreachable!("customer messages and order notices have their catalog"),
        };
        Ok(true)
    }

    /// Who a dead letter of this input concerns.
    pub(crate) fn context_of(input: &ConversationInput) -> LetterContext {
        let (restaurant_id, recipient) = match input {
            ConversationInput::Customer(m) => (m.restaurant_id, Some(m.customer.clone())),
            ConversationInput::StaffReply(r) => (r.restaurant_id, None),
            ConversationInput::SetBotActive(s) => (s.restaurant_id, None),
            ConversationInput::OrderChanged(n) => (n.restaurant_id, None),
            ConversationInput::OrderRefused(r) => (r.restaurant_id, None),
        };
        LetterContext {
            restaurant_id: Some(restaurant_id),
            conversation_id: Some(Self::conversation_of(input)),
            recipient,
        }
    }

    /// The conversation an input belongs to, computable before any I/O.
    pub(crate) fn conversation_of(input: &ConversationInput) -> Uuid {
        match input {
            ConversationInput::Customer(m) => ids::conversation(m.restaurant_id, &m.customer),
            ConversationInput::StaffReply(r) => r.conversation_id,
            ConversationInput::SetBotActive(s) => s.conversation_id,
            ConversationInput::OrderChanged(n) => n.conversation_id,
            ConversationInput::OrderRefused(r) => r.conversation_id,
        }
    }
}
