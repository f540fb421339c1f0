//! What every component of the reconciler shares, so that there is exactly one of each:
//!
//! - [`mysql`]: the MySQL access layer (pools per server, SQL helpers, keyset pagers, the
//!   reconciler's own tables). Handlers read truth through it, triggers read changes
//!   through it; neither opens its own pools.
//! - [`classify`]: one error classifier. Every store error is [`ErrorClass::Transient`]
//!   (an outage: retry with backoff) or [`ErrorClass::Permanent`] (retrying cannot help:
//!   report, dead-letter, move on).
//! - [`retry`]: one retry policy (bounded attempts, exponential backoff with jitter).
//! - [`clock`]: one clock behind a trait, so timing logic runs under paused tokio time.
//! - [`telemetry`]: metric definitions (name, kind, labels, help) that each component
//!   declares and the service describes to the Prometheus exporter.
//! - [`testenv`]: addresses of the servers test suites talk to.

pub mod classify;
pub mod clock;
pub mod mysql;
pub mod retry;
pub mod telemetry;
pub mod testenv;

pub use classify::{Classify, ErrorClass};
pub use clock::{Clock, SystemClock};
pub use retry::RetryPolicy;
