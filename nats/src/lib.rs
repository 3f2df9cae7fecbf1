//! The shared bus kit every Waiter stage is built on.
//!
//! Everything that two stages must agree on lives here, once: the
//! [`Topology`] (stream names and subject builders), the stream and
//! consumer definitions ([`streams`]), the versioned MessagePack
//! [`Envelope`], the payload types ([`messages`], [`events`]), the
//! publisher that awaits the PubAck ([`Bus::publish`]), the tenant
//! directory replicated through a stream ([`directory`]) and the worker
//! loop every consuming stage runs ([`worker`]: partition ownership by
//! lease, ordered windows, keyed lanes, retries in place, dead letters,
//! progress acks, readiness).

pub mod bus;
pub mod config;
pub mod directory;
pub mod envelope;
pub mod erase;
pub mod error;
pub mod events;
pub mod messages;
#[cfg(feature = "postgres")]
pub mod outbox;
pub mod partition;
pub mod streams;
pub mod topology;
pub mod webhooks;
pub mod worker;

pub use bus::{Bus, EncodedMessage, Published};
pub use config::BusConfig;
pub use envelope::{Envelope, Payload, TRACE_HEADER};
pub use error::BusError;
pub use partition::partition_of;
pub use topology::{StreamKind, Topology};
pub use worker::{
    Batch, BatchHandler, Delivery, Failure, FailureClass, Handler, Incoming, LaneHandler,
    LetterContext, Outcome, SharedBatchHandler, Worker, WorkerStatus,
};
