//! The stateless handler: for a batch of goods, read MySQL truth, read every target,
//! diff, and repair drift safely (settle window, compare-and-set, write-ahead audit,
//! rate and blast-radius limits).
//!
//! Invariant: handlers never write the truth tables. [`truth::TruthReader`] only has
//! read methods; the only MySQL write is the audit log ([`audit::AuditLog`]).

pub mod audit;
pub mod breaker;
pub mod error;
pub mod handler;
pub mod jobs;
pub mod limit;
pub mod metrics;
pub mod run;
pub mod stores;
pub mod truth;
pub mod undo;
pub mod verify;

pub use breaker::Breaker;
pub use error::StoreError;
pub use handler::{Handler, Mode, RunState, Verdict};
pub use stores::{ApplyOutcome, ScanPage, Target};
pub use verify::Verifier;
