//! MySQL change events as Kafka carries them (Canal, Debezium or Maxwell JSON): bytes in,
//! the reconciler's reading of the change out (which logical table, when committed,
//! which goods or activity ids). Pure parsing; the DTS-delay trigger (`triggers::dts`)
//! consumes the topics and turns the changes into check jobs.

pub mod canal;
pub mod debezium;
pub mod event;
pub mod maxwell;

use crate::config::EventFormat;

pub use event::{ChangeEvent, ChangeOp, LogicalTable, ParseError, Parsed};

/// Parses one message of a change-event topic in the topic's configured format.
pub fn parse(format: EventFormat, payload: &[u8]) -> Result<Parsed, ParseError> {
    match format {
        EventFormat::Canal => canal::parse(payload),
        EventFormat::Debezium => debezium::parse(payload),
        EventFormat::Maxwell => maxwell::parse(payload),
    }
}
