//! What asks for checks. Triggers turn signals (MySQL change events, recently updated rows,
//! a schedule, a Hive dump) into check jobs on the job bus; handlers consume the bus.
//!
//! This crate knows nothing of Redis or HBase: it reads MySQL truth only to learn which
//! goods a change touched, and publishes [`model::job::Job`]s.
//!
//! Runtime shape (as in Quickwit's sources): every long-running piece exposes a one-step
//! method (`step`, `pass`, `wait_due`) that the `serve` runtime drives in a loop, so
//! shutdown, back-off and metrics stay in one place.

pub mod bus;
pub mod dts;
pub mod dump;
pub mod error;
pub mod mysql;
pub mod scanner;
pub mod schedule;

pub use bus::{AckHandle, Delivery, JobConsumer, JobPublisher};
pub use error::TriggerError;
