//! The conversation stage against real NATS and PostgreSQL: a kill -9
//! mid-backlog, and a pool far smaller than the partitions.

mod batch;
mod crash;
mod pool;
