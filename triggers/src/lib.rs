//! What asks for checks. Triggers turn signals (MySQL change events, recently updated rows,
//! a schedule, a Hive dump) into check jobs on the job bus; handlers consume the bus.
//!
//! This crate knows nothing of Redis or HBase: it reads MySQL truth only to learn which
//! goods a change touched, and publishes [`model::job::Job`]s.
//!
//! Runtime shape (as in Quickwit's sources): every long-running piece exposes a one-step
//! method (`step`, `pass`, `wait_due`) that the `serve` runtime drives in a loop, so
//! shutdown, back-off and metrics stay in one place.
//!
//! What `serve` wires together:
//! - [`bus::embedded::channel`], or [`bus::kafka::KafkaPublisher`] +
//!   [`bus::kafka::KafkaJobConsumer`]: one [`JobPublisher`] for every trigger, one
//!   [`JobConsumer`] per handler worker; the handler acks each [`Delivery`] when its check
//!   (and repair) is done.
//! - [`dts::DtsTrigger`]: `new(&kafka, &triggers.dts, publisher, pools, options)`, then
//!   `run(shutdown)`.
//! - [`scanner::Scanner`]: `new(pools, publisher, triggers.scanner)`, then `run(shutdown)`.
//! - [`schedule::FullTrigger`]: `wait_due()` yields a [`schedule::FireGuard`]; run the full
//!   reconciliation, then `release()` it. Goods ids of a dump come from
//!   [`dump::DumpReader`] / [`dump::spawn_dump_reader`].

pub mod bus;
pub mod dts;
pub mod dump;
pub mod error;
pub mod full;
pub mod key;
pub mod metrics;
pub mod scanner;
pub mod schedule;

pub use bus::{AckHandle, Delivery, JobConsumer, JobPublisher};
pub use error::TriggerError;
