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

/// `X'0a1b'`: bytes as a hex literal, for a BLOB or BINARY column (no escaping, whatever
/// the bytes and the session's `sql_mode`).
pub fn bytes_literal(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(3 + bytes.len() * 2);
    out.push_str("X'");
    for &b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out.push('\'');
    out
}

/// `_utf8mb4 X'..'`: text as a hex literal in utf8mb4, for a character column.
pub fn text_literal(text: &str) -> String {
    format!("_utf8mb4 {}", bytes_literal(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(id_list(&[1, 22, 333]), "1,22,333");
        assert_eq!(id_list(&[]), "");
        assert_eq!(bytes_literal(&[0, 0x1f, 0xab, b'\'']), "X'001fab27'");
        assert_eq!(bytes_literal(&[]), "X''");
        assert_eq!(text_literal("é'"), "_utf8mb4 X'c3a927'");
        assert!(epoch_ms_of("updated_at").contains("updated_at"));
    }
}
