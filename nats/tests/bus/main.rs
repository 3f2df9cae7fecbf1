//! The bus kit against a real nats-server (and PostgreSQL where a real
//! database error is needed): publishing, the tenant directory, and the
//! worker loop — ordered windows and keyed lanes over leased partitions,
//! scaling, failover, frozen holders, retries in place, dead letters,
//! progress acks and consumers that change or vanish under a worker.

mod consumers;
mod failover;
mod letters;
mod publishing;
mod support;
mod windows;
