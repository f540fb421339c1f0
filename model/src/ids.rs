//! Identifier types and the `IDS` command-line list format.

use thiserror::Error;

/// A goods id, the sharding key of the truth tables.
pub type GoodsId = u64;
/// An activity id, the hash field / column qualifier of every derived store.
pub type ActivityId = u64;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdListError {
    #[error("goods id list is empty")]
    Empty,
    #[error("`{token}` at position {position} of the goods id list is not a positive decimal integer")]
    BadToken { token: String, position: usize },
}

/// Parses a comma-separated list of goods ids (`1001,1002, 1003`), keeping order and
/// dropping duplicates.
pub fn parse_id_list(text: &str) -> Result<Vec<GoodsId>, IdListError> {
    let mut ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, raw) in text.split(',').enumerate() {
        let token = raw.trim();
        if token.is_empty() && text.trim().is_empty() {
            return Err(IdListError::Empty);
        }
        let id: GoodsId = token
            .parse()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| IdListError::BadToken { token: token.to_string(), position: i + 1 })?;
        if seen.insert(id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_dedups() {
        assert_eq!(parse_id_list("3, 1,3,2").unwrap(), vec![3, 1, 2]);
    }

    #[test]
    fn rejects_bad_tokens_with_position() {
        assert_eq!(parse_id_list("1,x2").unwrap_err(), IdListError::BadToken { token: "x2".into(), position: 2 });
        assert_eq!(parse_id_list("").unwrap_err(), IdListError::Empty);
        assert!(matches!(parse_id_list("1,,2"), Err(IdListError::BadToken { position: 2, .. })));
        assert!(matches!(parse_id_list("0"), Err(IdListError::BadToken { .. })));
    }
}
