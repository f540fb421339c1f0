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

/// Column `i` of a row read over the text protocol (`sqlx::raw_sql`, where every value
/// comes as its decimal text) as an integer; `Ok(None)` for NULL. Parses the bytes itself
/// instead of `Row::try_get`, whose type check, UTF-8 check, generic parse and error
/// plumbing cost ~330 instructions a value (this: ~90), the largest share of a full run's
/// instructions outside sqlx (callgrind, BENCHMARKS.md). Text that is not an integer of
/// `T` is a decode error naming the column, as `try_get`'s.
pub fn text_int<T: TryFrom<u64> + TryFrom<i128>>(
    row: &sqlx::mysql::MySqlRow,
    i: usize,
) -> Result<Option<T>, sqlx::Error> {
    Ints::text().int(row, i)
}

/// [`text_int`] of a NOT NULL column: NULL is a decode error.
pub fn text_int_not_null<T: TryFrom<u64> + TryFrom<i128>>(
    row: &sqlx::mysql::MySqlRow,
    i: usize,
) -> Result<T, sqlx::Error> {
    Ints::text().int_not_null(row, i)
}

/// How the integers of one statement's rows come, column by column, judged once per
/// statement from its column definitions (not per value). Over the text protocol
/// (`sqlx::raw_sql`) every value is decimal text; over the binary protocol (a prepared
/// statement, `sqlx::query`) an integer column's value is its 1, 2, 4 or 8 little-endian
/// bytes, signed or not as the column says (MariaDB formats no digits and the reader
/// parses none), while a DECIMAL or character column still comes as text.
#[derive(Debug, Clone, Default)]
pub struct Ints {
    /// Per column; empty: every column is text.
    kinds: Vec<Kind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Signed,
    Unsigned,
    /// A binary value of no integer or text type (a DOUBLE, a DATETIME).
    Other,
}

impl Ints {
    /// Rows of a text-protocol statement.
    pub fn text() -> Ints {
        Ints::default()
    }

    /// Rows of a prepared statement, whose columns are `columns` (any row's).
    pub fn binary(columns: &[sqlx::mysql::MySqlColumn]) -> Ints {
        use sqlx::{Column, TypeInfo};
        let kind = |c: &sqlx::mysql::MySqlColumn| match c.type_info().name() {
            "BIGINT UNSIGNED" | "INT UNSIGNED" | "MEDIUMINT UNSIGNED" | "SMALLINT UNSIGNED" | "TINYINT UNSIGNED"
            | "YEAR" => Kind::Unsigned,
            "BIGINT" | "INT" | "MEDIUMINT" | "SMALLINT" | "TINYINT" | "BOOLEAN" => Kind::Signed,
            "DECIMAL" | "CHAR" | "VARCHAR" | "TEXT" | "BINARY" | "VARBINARY" | "BLOB" => Kind::Text,
            _ => Kind::Other,
        };
        Ints { kinds: columns.iter().map(kind).collect() }
    }

    /// Column `i` as an integer; `Ok(None)` for NULL. A value out of `T`'s range, or
    /// not an integer, is a decode error naming the column.
    pub fn int<T: TryFrom<u64> + TryFrom<i128>>(
        &self,
        row: &sqlx::mysql::MySqlRow,
        i: usize,
    ) -> Result<Option<T>, sqlx::Error> {
        use sqlx::{Row, ValueRef};
        let value = row.try_get_raw(i)?;
        if value.is_null() {
            return Ok(None);
        }
        let bytes = <&[u8] as sqlx::Decode<sqlx::MySql>>::decode(value).map_err(|e| column_error(row, i, e))?;
        let n = match self.kinds.get(i).copied().unwrap_or(Kind::Text) {
            Kind::Text => decimal(bytes),
            Kind::Signed => little_endian(bytes, true).and_then(|v| T::try_from(i128::from(v)).ok()),
            Kind::Unsigned => little_endian(bytes, false).and_then(|v| T::try_from(v as u64).ok()),
            Kind::Other => None,
        };
        match n {
            Some(n) => Ok(Some(n)),
            None => Err(not_an_integer::<T>(row, i, bytes)),
        }
    }

    /// [`int`](Self::int) of a NOT NULL column: NULL is a decode error.
    pub fn int_not_null<T: TryFrom<u64> + TryFrom<i128>>(
        &self,
        row: &sqlx::mysql::MySqlRow,
        i: usize,
    ) -> Result<T, sqlx::Error> {
        self.int(row, i)?.ok_or_else(|| column_error(row, i, "unexpected NULL".into()))
    }
}

/// A binary-protocol integer of 1, 2, 4 or 8 bytes, sign-extended when `signed` (an
/// unsigned one of 8 bytes comes back as the `i64` of the same bits); `None` for another
/// length.
fn little_endian(bytes: &[u8], signed: bool) -> Option<i64> {
    Some(match (bytes.len(), signed) {
        (1, true) => i64::from(bytes[0] as i8),
        (1, false) => i64::from(bytes[0]),
        (2, true) => i64::from(i16::from_le_bytes(bytes.try_into().ok()?)),
        (2, false) => i64::from(u16::from_le_bytes(bytes.try_into().ok()?)),
        (4, true) => i64::from(i32::from_le_bytes(bytes.try_into().ok()?)),
        (4, false) => i64::from(u32::from_le_bytes(bytes.try_into().ok()?)),
        (8, _) => i64::from_le_bytes(bytes.try_into().ok()?),
        _ => return None,
    })
}

/// `-?[0-9]+` as a `T`, `None` for anything else (more than 20 digits, out of `T`'s range).
/// A non-negative number is parsed as a `u64` and narrowed; only a negative one goes
/// through `i128`.
fn decimal<T: TryFrom<u64> + TryFrom<i128>>(text: &[u8]) -> Option<T> {
    match text.split_first() {
        Some((b'-', digits)) => T::try_from(-i128::from(magnitude(digits)?)).ok(),
        _ => T::try_from(magnitude(text)?).ok(),
    }
}

/// `[0-9]+` as a `u64`: unchecked arithmetic up to 19 digits (below 10^19 < 2^64, so it
/// cannot overflow), checked for a 20th.
fn magnitude(digits: &[u8]) -> Option<u64> {
    let (head, last) = match digits.len() {
        1..=19 => (digits, None),
        20 => (&digits[..19], Some(digits[19])),
        _ => return None,
    };
    let mut n: u64 = 0;
    for &d in head {
        let v = d.wrapping_sub(b'0');
        if v > 9 {
            return None;
        }
        n = n * 10 + u64::from(v);
    }
    match last {
        None => Some(n),
        Some(d) if d.is_ascii_digit() => n.checked_mul(10)?.checked_add(u64::from(d - b'0')),
        Some(_) => None,
    }
}

#[cold]
fn not_an_integer<T>(row: &sqlx::mysql::MySqlRow, i: usize, bytes: &[u8]) -> sqlx::Error {
    use sqlx::{Column, TypeInfo};
    let column = sqlx::Row::columns(row).get(i).map_or("?", |c| c.type_info().name());
    let what = match std::str::from_utf8(bytes) {
        Ok(text) => format!("`{text}`"),
        Err(_) => format!("{bytes:02x?}"),
    };
    column_error(row, i, format!("{column} value {what} is not an integer of {}", std::any::type_name::<T>()).into())
}

#[cold]
fn column_error(
    row: &sqlx::mysql::MySqlRow,
    i: usize,
    source: Box<dyn std::error::Error + Send + Sync>,
) -> sqlx::Error {
    let name = sqlx::Row::columns(row).get(i).map_or("?", sqlx::Column::name);
    sqlx::Error::ColumnDecode { index: format!("{i} ({name})"), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool of one connection to the test server (a session's `USE` and temporary
    /// tables hold for every statement).
    async fn one_connection() -> sqlx::MySqlPool {
        sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(1)
            .connect(&crate::testenv::mysql_url())
            .await
            .expect("MariaDB on the test URL")
    }

    /// Integers of every width and sign, NULL, and text that is no integer of the type,
    /// read back over the text protocol from the real server.
    #[tokio::test]
    async fn text_ints_parse_as_try_get_would_and_name_the_column_when_they_cannot() {
        use sqlx::Row;
        let pool = one_connection().await;
        let rows = sqlx::raw_sql(
            "SELECT CAST(18446744073709551615 AS UNSIGNED) AS big, -9223372036854775808 AS low, \
             CAST(-7 AS SIGNED) AS neg, 127 AS tiny, NULL AS nothing, 'x1' AS word, 300 AS wide",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let r = &rows[0];
        assert_eq!(text_int::<u64>(r, 0).unwrap(), Some(u64::MAX));
        assert_eq!(text_int::<u64>(r, 0).unwrap(), r.try_get::<Option<u64>, _>(0).unwrap());
        assert_eq!(text_int::<i64>(r, 1).unwrap(), Some(i64::MIN));
        assert_eq!(text_int::<i64>(r, 2).unwrap(), Some(-7));
        assert_eq!(text_int_not_null::<i8>(r, 3).unwrap(), 127);
        assert_eq!(text_int::<i64>(r, 4).unwrap(), None);
        let null = text_int_not_null::<i64>(r, 4).unwrap_err().to_string();
        assert!(null.contains("nothing") && null.contains("NULL"), "{null}");
        let word = text_int::<i64>(r, 5).unwrap_err().to_string();
        assert!(word.contains("5 (word)"), "{word}");
        let wide = text_int::<i8>(r, 6).unwrap_err().to_string();
        assert!(wide.contains("wide"), "{wide}");
        assert!(text_int::<u64>(r, 2).is_err(), "a negative is no u64");
        assert!(text_int::<i64>(r, 0).is_err(), "u64::MAX is no i64");
    }

    /// Integer columns of every width and sign (the binary protocol's 1, 2, 4 and 8
    /// little-endian bytes, sign-extended or not), DECIMAL and character columns (text
    /// there too), NULL, and values out of the type's range, read back through a
    /// prepared statement from the real server: the same numbers `try_get` gives.
    #[tokio::test]
    async fn binary_ints_read_every_width_as_try_get_would_and_name_the_column_when_they_cannot() {
        use sqlx::Row;
        let pool = one_connection().await;
        sqlx::raw_sql(
            "CREATE DATABASE IF NOT EXISTS common_sql_test; USE common_sql_test; \
             CREATE TEMPORARY TABLE ints (t TINYINT, tu TINYINT UNSIGNED, s SMALLINT, su SMALLINT UNSIGNED, \
             m MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, b BIGINT, bu BIGINT UNSIGNED, \
             d DECIMAL(30,0), w VARCHAR(20), y YEAR, n INT, f DOUBLE); \
             INSERT INTO ints VALUES (-128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, \
             -9223372036854775808, 18446744073709551615, 12345678901234567890, '-42', 2026, NULL, 1.5), \
             (127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0, -7, 'x1', 1999, 5, 2)",
        )
        .execute(&pool)
        .await
        .unwrap();
        let rows = sqlx::query("SELECT * FROM ints").fetch_all(&pool).await.unwrap();
        let (low, high) = (&rows[0], &rows[1]);
        let ints = Ints::binary(low.columns());
        assert_eq!(ints.int::<i64>(low, 0).unwrap(), Some(-128));
        assert_eq!(ints.int::<i8>(high, 0).unwrap(), Some(127));
        assert_eq!(ints.int::<u8>(low, 1).unwrap(), Some(255));
        assert_eq!(ints.int::<i16>(low, 2).unwrap(), Some(-32768));
        assert_eq!(ints.int::<u64>(low, 3).unwrap(), Some(65535));
        assert_eq!(ints.int::<i32>(low, 4).unwrap(), Some(-8_388_608));
        assert_eq!(ints.int::<i32>(high, 4).unwrap(), Some(8_388_607));
        assert_eq!(ints.int::<u32>(low, 5).unwrap(), Some(16_777_215));
        assert_eq!(ints.int::<i32>(low, 6).unwrap(), Some(i32::MIN));
        assert_eq!(ints.int::<u32>(low, 7).unwrap(), Some(u32::MAX));
        assert_eq!(ints.int::<i64>(low, 8).unwrap(), Some(i64::MIN));
        assert_eq!(ints.int::<i64>(high, 8).unwrap(), Some(i64::MAX));
        assert_eq!(ints.int::<u64>(low, 9).unwrap(), Some(u64::MAX));
        assert_eq!(ints.int::<u64>(low, 9).unwrap(), low.try_get::<Option<u64>, _>(9).unwrap());
        assert_eq!(ints.int::<i64>(low, 8).unwrap(), low.try_get::<Option<i64>, _>(8).unwrap());
        assert_eq!(ints.int::<u64>(low, 10).unwrap(), Some(12_345_678_901_234_567_890), "DECIMAL as text");
        assert_eq!(ints.int::<i64>(high, 10).unwrap(), Some(-7));
        assert_eq!(ints.int::<i64>(low, 11).unwrap(), Some(-42), "VARCHAR as text");
        assert_eq!(ints.int::<u16>(low, 12).unwrap(), Some(2026));
        assert_eq!(ints.int::<i64>(low, 13).unwrap(), None);
        assert_eq!(ints.int_not_null::<i64>(high, 13).unwrap(), 5);
        let null = ints.int_not_null::<i64>(low, 13).unwrap_err().to_string();
        assert!(null.contains("13 (n)") && null.contains("NULL"), "{null}");
        let word = ints.int::<i64>(high, 11).unwrap_err().to_string();
        assert!(word.contains("11 (w)"), "{word}");
        let double = ints.int::<i64>(low, 14).unwrap_err().to_string();
        assert!(double.contains("14 (f)") && double.contains("DOUBLE"), "{double}");
        assert!(ints.int::<u64>(low, 0).is_err(), "a negative is no u64");
        assert!(ints.int::<i64>(low, 9).is_err(), "u64::MAX is no i64");
        assert!(ints.int::<i8>(low, 2).is_err(), "-32768 is no i8");
        assert!(ints.int::<u32>(low, 8).is_err());
        // The same rows as text: the same integers, column by column.
        let text = sqlx::raw_sql("SELECT * FROM ints").fetch_all(&pool).await.unwrap();
        for i in 0..13 {
            for (b, t) in [(low, &text[0]), (high, &text[1])] {
                assert_eq!(ints.int::<i128>(b, i).ok(), text_int::<i128>(t, i).ok(), "column {i}");
            }
        }
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal::<u64>(b"0"), Some(0));
        assert_eq!(decimal::<i64>(b"-0"), Some(0));
        assert_eq!(decimal::<u64>(b"-0"), Some(0));
        assert_eq!(decimal::<u64>(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(decimal::<u64>(b"18446744073709551616"), None, "20 digits above u64::MAX");
        assert_eq!(decimal::<u64>(b"99999999999999999999"), None);
        assert_eq!(decimal::<u64>(b"9999999999999999999"), Some(9_999_999_999_999_999_999), "19 nines");
        assert_eq!(decimal::<u64>(b"00000000000000000001"), Some(1), "20 digits, leading zeros");
        assert_eq!(decimal::<u64>(b"000000000000000000001"), None, "21 digits");
        assert_eq!(decimal::<i64>(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(decimal::<i64>(b"-9223372036854775809"), None);
        assert_eq!(decimal::<i64>(b"9223372036854775808"), None);
        assert_eq!(decimal::<i8>(b"-128"), Some(-128));
        assert_eq!(decimal::<i8>(b"128"), None);
        assert_eq!(decimal::<usize>(b"7"), Some(7));
        for bad in
            [&b""[..], b"-", b"--1", b"+1", b"1.5", b" 1", b"1e3", b"\xff", b"1/", b"1:", b"1844674407370955161x"]
        {
            assert_eq!(decimal::<i64>(bad), None, "{bad:?}");
            assert_eq!(decimal::<u64>(bad), None, "{bad:?}");
        }
    }

    /// Agrees with `str::parse` (which also takes a leading `+`, the text protocol never
    /// sends one) on numbers around every power of ten and the types' bounds.
    #[test]
    fn decimals_agree_with_str_parse() {
        let mut texts = vec![];
        for p in 0..=20u32 {
            let base = 10u128.pow(p);
            for n in [base.saturating_sub(1), base, base + 1] {
                texts.push(n.to_string());
                texts.push(format!("-{n}"));
            }
        }
        for n in [u64::MAX as u128, i64::MAX as u128, i64::MAX as u128 + 1, u64::MAX as u128 + 1] {
            texts.push(n.to_string());
            texts.push(format!("-{n}"));
        }
        // `-0` is 0 for every type here; `str::parse` refuses it for an unsigned one.
        texts.retain(|t| t != "-0");
        for t in &texts {
            assert_eq!(decimal::<u64>(t.as_bytes()), t.parse::<u64>().ok(), "{t}");
            assert_eq!(decimal::<i64>(t.as_bytes()), t.parse::<i64>().ok(), "{t}");
            assert_eq!(decimal::<i32>(t.as_bytes()), t.parse::<i32>().ok(), "{t}");
            assert_eq!(decimal::<u8>(t.as_bytes()), t.parse::<u8>().ok(), "{t}");
        }
    }

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
