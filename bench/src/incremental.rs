//! The incremental phase: events/s sustained through Kafka (Canal flat messages) and
//! change-to-repair latency beyond the configured stage delay.
//!
//! Not measured yet: it needs the `serve` runtime with the DTS trigger, which is being
//! finished separately. Until then the phase reports itself as not measured; it never
//! prints a figure it did not measure.

use anyhow::Result;

/// `Some(summary)` when measured, `None` when not measured.
pub async fn run() -> Result<Option<String>> {
    eprintln!("bench: incremental phase not measured yet (needs the serve runtime with the DTS trigger)");
    Ok(None)
}
