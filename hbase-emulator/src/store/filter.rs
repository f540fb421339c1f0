//! The part of HBase's filter language (`ParseFilter`, the `filterString` of a Thrift1
//! `TScan`) the emulator evaluates: `FirstKeyOnlyFilter()` and `KeyOnlyFilter([lenAsVal])`,
//! alone or joined by `AND` (what a key-only scan sends: row keys without their cells'
//! values). Any other filter HBase knows is answered as unsupported; text HBase's parser
//! rejects (an unknown name, wrong arguments, a dangling `AND`) gets the internal error
//! its uncaught `IllegalArgumentException` gives a Thrift1 client.

use crate::error::{Error, Result};

/// Filters HBase's `ParseFilter` registers that the emulator does not evaluate.
const KNOWN_ELSEWHERE: &[&str] = &[
    "PrefixFilter",
    "ColumnPrefixFilter",
    "MultipleColumnPrefixFilter",
    "ColumnCountGetFilter",
    "PageFilter",
    "ColumnPaginationFilter",
    "InclusiveStopFilter",
    "TimestampsFilter",
    "RowFilter",
    "FamilyFilter",
    "QualifierFilter",
    "ValueFilter",
    "ColumnRangeFilter",
    "SingleColumnValueFilter",
    "SingleColumnValueExcludeFilter",
    "DependentColumnFilter",
    "FirstKeyValueMatchingQualifiersFilter",
    "MultiRowRangeFilter",
    "ColumnValueFilter",
    "FuzzyRowFilter",
];

/// A parsed filter: every part of an `AND` applies to each row's cells.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    /// `FirstKeyOnlyFilter()`: only the first cell of each row.
    pub first_key_only: bool,
    /// `KeyOnlyFilter(lenAsVal)`: values dropped (`Some(false)`) or replaced by their
    /// length as a 4-byte big-endian int (`Some(true)`).
    pub key_only: Option<bool>,
}

impl Filter {
    /// Parses `text` as HBase's filter language; see the module header for what is
    /// evaluated.
    pub fn parse(text: &[u8]) -> Result<Filter> {
        let text = std::str::from_utf8(text).map_err(|_| Error::internal("filter string is not UTF-8"))?;
        let incorrect = || Error::internal(format!("Incorrect filter string {text}"));
        let mut filter = Filter::default();
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(Error::internal("Filter String is empty"));
        }
        loop {
            let open = rest.find('(').ok_or_else(incorrect)?;
            let name = rest[..open].trim();
            let close = rest[open..].find(')').map(|i| open + i).ok_or_else(incorrect)?;
            let args: Vec<&str> = rest[open + 1..close].split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
            match name {
                "" => return Err(not_emulated(format!("parentheses in filter string {text}"))),
                "FirstKeyOnlyFilter" => {
                    expect_args(&args, 0)?;
                    filter.first_key_only = true;
                }
                "KeyOnlyFilter" => {
                    filter.key_only = Some(match args.as_slice() {
                        [] => false,
                        [flag] => boolean(flag)?,
                        _ => return Err(Error::internal(format!("Expected: 0 or 1 but got: {}", args.len()))),
                    });
                }
                n if KNOWN_ELSEWHERE.contains(&n) => return Err(not_emulated(format!("filter {n}"))),
                n => return Err(Error::internal(format!("Filter Name {n} not supported"))),
            }
            rest = rest[close + 1..].trim_start();
            if rest.is_empty() {
                return Ok(filter);
            }
            match rest.split_once(char::is_whitespace) {
                Some(("AND", next)) if !next.trim().is_empty() => rest = next.trim_start(),
                _ if rest == "AND" => return Err(incorrect()),
                _ => {
                    let word = rest.split_whitespace().next().unwrap_or(rest);
                    return Err(not_emulated(format!("`{word}` (only AND) in filter string {text}")));
                }
            }
        }
    }

    /// How many cells of a row pass (`FirstKeyOnlyFilter`: the first one, in HBase's
    /// order: family, qualifier, newest version first).
    pub fn max_cells(&self) -> usize {
        if self.first_key_only {
            1
        } else {
            usize::MAX
        }
    }

    /// The value a passing cell is answered with.
    pub fn value(&self, value: &[u8]) -> Vec<u8> {
        match self.key_only {
            None => value.to_vec(),
            Some(false) => Vec::new(),
            Some(true) => (value.len() as i32).to_be_bytes().to_vec(),
        }
    }
}

/// What HBase evaluates and the emulator does not: an `IOError`, as for other calls.
fn not_emulated(what: String) -> Error {
    Error::Io(format!("java.io.IOException: {what} is not supported by the hbase emulator"))
}

fn expect_args(args: &[&str], n: usize) -> Result<()> {
    if args.len() == n {
        Ok(())
    } else {
        Err(Error::internal(format!("Expected: {n} but got: {}", args.len())))
    }
}

/// `ParseFilter.convertByteArrayToBoolean`: `true` / `false`, any case.
fn boolean(arg: &str) -> Result<bool> {
    match arg.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::internal("Incorrect Boolean Expression")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_key_only_scan_and_its_parts() {
        let both = Filter { first_key_only: true, key_only: Some(false) };
        assert_eq!(Filter::parse(b"FirstKeyOnlyFilter() AND KeyOnlyFilter()").unwrap(), both);
        assert_eq!(Filter::parse(b"  KeyOnlyFilter ( )AND   FirstKeyOnlyFilter ()  ").unwrap(), both);
        assert_eq!(
            Filter::parse(b"KeyOnlyFilter(TRUE)").unwrap(),
            Filter { first_key_only: false, key_only: Some(true) }
        );
        assert_eq!(Filter::parse(b"FirstKeyOnlyFilter()").unwrap().key_only, None);
    }

    #[test]
    fn rejects_like_hbase_or_says_what_is_not_emulated() {
        let internal = |t: &[u8]| matches!(Filter::parse(t), Err(Error::Internal(_)));
        let unsupported = |t: &[u8]| matches!(Filter::parse(t), Err(Error::Io(m)) if m.contains("not supported"));
        assert!(internal(b"NoSuchFilter()"));
        assert!(internal(b"FirstKeyOnlyFilter(1)"));
        assert!(internal(b"KeyOnlyFilter(maybe)"));
        assert!(internal(b"KeyOnlyFilter(true, false)"));
        assert!(internal(b"FirstKeyOnlyFilter("));
        assert!(internal(b"   "));
        assert!(unsupported(b"PrefixFilter('r')"));
        assert!(unsupported(b"FirstKeyOnlyFilter() OR KeyOnlyFilter()"));
        assert!(internal(b"FirstKeyOnlyFilter() AND"));
        assert!(unsupported(b"(FirstKeyOnlyFilter())"));
    }

    #[test]
    fn keeps_the_first_cell_and_drops_or_measures_values() {
        let both = Filter { first_key_only: true, key_only: Some(false) };
        assert_eq!((both.max_cells(), both.value(b"12345")), (1, vec![]));
        let len = Filter { first_key_only: false, key_only: Some(true) };
        assert_eq!((len.max_cells(), len.value(b"12345")), (usize::MAX, vec![0, 0, 0, 5]));
        assert_eq!(Filter::default().value(b"xy"), b"xy".to_vec());
    }
}
