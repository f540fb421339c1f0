//! The publisher's checkpoint as the ledger stores it: `s{shard}:{last id}` (or
//! `s{shard}:` at a shard's start), `d{batches}` (dump batches published), `o{jobs}`
//! (orphan-scan jobs published); empty before the first batch.

use std::fmt;

use model::GoodsId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Start,
    Shard { shard: u32, after: Option<GoodsId> },
    Dump { batches: u64 },
    Orphans { jobs: u64 },
}

impl Position {
    /// Parses a checkpoint; anything unknown (including `published`) restarts from the
    /// beginning, which only republishes jobs the ledger already counts.
    pub fn parse(s: &str) -> Position {
        let parsed = || -> Option<Position> {
            if let Some(rest) = s.strip_prefix('s') {
                let (shard, after) = rest.split_once(':')?;
                let after = if after.is_empty() { None } else { Some(after.parse().ok()?) };
                return Some(Position::Shard { shard: shard.parse().ok()?, after });
            }
            if let Some(rest) = s.strip_prefix('d') {
                return Some(Position::Dump { batches: rest.parse().ok()? });
            }
            if let Some(rest) = s.strip_prefix('o') {
                return Some(Position::Orphans { jobs: rest.parse().ok()? });
            }
            None
        };
        parsed().unwrap_or(Position::Start)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Start => Ok(()),
            Position::Shard { shard, after: None } => write!(f, "s{shard}:"),
            Position::Shard { shard, after: Some(a) } => write!(f, "s{shard}:{a}"),
            Position::Dump { batches } => write!(f, "d{batches}"),
            Position::Orphans { jobs } => write!(f, "o{jobs}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip() {
        for p in [
            Position::Start,
            Position::Shard { shard: 3, after: None },
            Position::Shard { shard: 0, after: Some(0) },
            Position::Shard { shard: 7, after: Some(u64::MAX) },
            Position::Dump { batches: 12 },
            Position::Orphans { jobs: 5 },
        ] {
            assert_eq!(Position::parse(&p.to_string()), p, "{p}");
        }
        assert_eq!(Position::parse("garbage"), Position::Start);
        assert_eq!(Position::parse("s1:x"), Position::Start);
    }
}
