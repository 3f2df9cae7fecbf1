//! The notifier against real NATS and PostgreSQL: one test binary.
//!
//! Tests run on a multi-threaded runtime. The server runs on the test's
//! runtime, so server tasks and sqlx's connection-return tasks keep running
//! while the harness's blocking `Drop` cleans up. Every client call has a
//! timeout, so a stuck call fails at its line and does not hang the run.

mod admission;
mod common;
mod feed;
mod openapi;
mod rest;
mod websocket;
