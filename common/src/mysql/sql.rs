//! SQL fragments shared by every query: time conversion, identifier quoting, id lists.

/// A DATETIME column as epoch milliseconds. `TIMESTAMPDIFF` against the epoch keeps the
/// conversion independent of the session time zone (truth times are UTC).
pub fn epoch_ms_of(column: &str) -> String {
    format!("CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {column}) DIV 1000 AS SIGNED)")
}

/// A bound epoch-ms parameter as a DATETIME(3).
pub const DATETIME_OF_MS: &str = "TIMESTAMPADD(MICROSECOND, ? * 1000, '1970-01-01 00:00:00')";

/// Backtick-quotes an identifier built from configuration (database prefix, table name).
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `1,2,3`: integers rendered into a statement (no injection surface; one text-protocol
/// round trip, no prepared-statement cache growth for varying list lengths).
pub fn id_list(ids: &[u64]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(ids.len() * 8);
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{id}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(id_list(&[1, 22, 333]), "1,22,333");
        assert_eq!(id_list(&[]), "");
        assert!(epoch_ms_of("updated_at").contains("updated_at"));
    }
}
