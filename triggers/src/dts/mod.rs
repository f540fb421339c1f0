//! The DTS-delay trigger: MySQL change events from Kafka (Canal, Debezium or Maxwell JSON,
//! per topic) become check jobs for every goods they touch, one per configured stage.
//!
//! Design (loss-free, no timers held in memory): for a change committed at `c`, the
//! trigger publishes at once one job per stage `i` with `not_before_ms` = `c + stage_i`
//! rounded up to the stage's dedup window, and `origin_ms = c`; the handler side waits
//! until `not_before_ms` before checking. The source offset of the change event is acked
//! only after every job it caused (including the fan-out of an `activity` change to all its
//! goods) was acknowledged by the jobs topic, so killing the trigger at any moment loses
//! nothing: unacked events are redelivered. Changes of one goods whose stage times fall in
//! the same window get the same `not_before_ms` and job id, and are published once.

pub mod planner;
pub mod trigger;

// The event parsers are pure and live in the core (`model::change`), where they build
// without a Kafka client (and are fuzzed, see fuzz/).
pub use model::change::{canal, debezium, event, maxwell, parse};
pub use model::change::{ChangeEvent, ChangeOp, LogicalTable, ParseError, Parsed};
pub use planner::StagePlanner;
pub use trigger::DtsTrigger;
