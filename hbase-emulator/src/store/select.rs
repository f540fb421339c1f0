//! Column selection as HBase's Thrift1 handler builds it from `family[:qualifier]`
//! strings, and the read of one row through a selection.

use std::collections::{BTreeMap, BTreeSet};

use super::cells::{Cell, RowBuf, Window};
use super::filter::Filter;
use super::table::Table;
use crate::error::Result;

/// Splits a column name the way `CellUtil.parseColumn` does: no `:` means the whole
/// family; `family:` is the *empty qualifier* (HBASE-9549), not the whole family.
pub fn parse_column(column: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    match column.iter().position(|&b| b == b':') {
        None => (column.to_vec(), None),
        Some(i) => (column[..i].to_vec(), Some(column[i + 1..].to_vec())),
    }
}

/// Qualifiers wanted per family; `None` is the whole family.
type Families = BTreeMap<Vec<u8>, Option<BTreeSet<Vec<u8>>>>;

/// Which families and qualifiers a read returns.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `None`: every family.
    families: Option<Families>,
}

impl Selection {
    pub fn all() -> Self {
        Selection { families: None }
    }

    /// Builds the selection like successive `Get.addFamily` / `addColumn` calls: a
    /// column after its family narrows it, a family after a column widens it again.
    /// Every family must exist in `table`.
    pub fn parse(table: &Table, columns: &[Vec<u8>]) -> Result<Self> {
        if columns.is_empty() {
            return Ok(Self::all());
        }
        let mut map = Families::new();
        for c in columns {
            let (family, qualifier) = parse_column(c);
            table.family(&family)?;
            match qualifier {
                None => {
                    map.insert(family, None);
                }
                Some(q) => match map.entry(family).or_insert_with(|| Some(BTreeSet::new())) {
                    Some(set) => {
                        set.insert(q);
                    }
                    slot @ None => {
                        *slot = Some(BTreeSet::from([q]));
                    }
                },
            }
        }
        Ok(Selection { families: Some(map) })
    }

    /// A single column (get, getVer, getVerTs).
    pub fn one(table: &Table, column: &[u8]) -> Result<Self> {
        Self::parse(table, std::slice::from_ref(&column.to_vec()))
    }

    /// The visible cells of `row`, by family then qualifier, newest version first.
    pub fn read(&self, table: &Table, row: &RowBuf, w: Window, out: &mut Vec<Cell>) {
        self.read_filtered(table, row, w, &Filter::default(), out)
    }

    /// [`read`](Self::read) through a scan's filter: only the cells it passes, with the
    /// values it answers.
    pub fn read_filtered(&self, table: &Table, row: &RowBuf, w: Window, filter: &Filter, out: &mut Vec<Cell>) {
        let (start, max) = (out.len(), filter.max_cells());
        for cells in row.families() {
            let (family, spec) = table.family_by_id(cells.id);
            let wanted = match &self.families {
                None => None,
                Some(map) => match map.get(family) {
                    None => continue,
                    Some(q) => q.as_ref(),
                },
            };
            let w = Window { versions: w.versions.min(spec.max_versions as usize), ..w };
            for column in cells.columns() {
                if wanted.is_some_and(|set| !set.contains(column.qualifier)) {
                    continue;
                }
                for (ts, value) in column.visible(cells.marker, w) {
                    if out.len() - start == max {
                        return;
                    }
                    out.push(Cell {
                        family: family.to_vec(),
                        qualifier: column.qualifier.to_vec(),
                        timestamp: ts,
                        value: filter.value(value),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_cell_util() {
        assert_eq!(parse_column(b"a"), (b"a".to_vec(), None));
        assert_eq!(parse_column(b"a:"), (b"a".to_vec(), Some(vec![])));
        assert_eq!(parse_column(b"a:b:c"), (b"a".to_vec(), Some(b"b:c".to_vec())));
    }
}
