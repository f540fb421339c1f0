//! One row's cells and delete markers, with HBase's visibility rules.
//!
//! Every delete the Thrift1 API can express masks *all* versions at or below its
//! timestamp (`Delete.addColumns`, `addFamily`, whole-row delete), so one marker per
//! column and one per family (the highest timestamp seen) decide visibility exactly.
//! Markers and the cells they mask stay until a major compaction, which is what makes
//! a put with an older timestamp written after a delete invisible.
//!
//! Storage: a row is one allocation, a [`RowBuf`]: its key, then its families (by id, the
//! family's position in the table's sorted family list), each with its marker and its
//! columns (sorted by qualifier), each with its qualifier, marker and versions (newest
//! first), each a timestamp and the value. Reads walk those bytes without allocating
//! ([`RowBuf::families`]); a write decodes the row into a [`RowEdit`] that borrows the old
//! bytes and the new values, changes it, and encodes one new buffer.
//!
//! ```text
//! row     = varint(key length) key varint(family count) family*
//! family  = varint(family id) marker varint(column count) column*
//! column  = varint(qualifier length) qualifier marker varint(version count) version*
//! version = timestamp (i64 LE) varint(value length) value
//! marker  = 0 | 1 timestamp (i64 LE)
//! ```

use std::borrow::Borrow;
use std::cmp::Ordering;

pub type Ts = i64;

/// A cell as a read returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub family: Vec<u8>,
    pub qualifier: Vec<u8>,
    pub timestamp: Ts,
    pub value: Vec<u8>,
}

/// Which versions a read wants.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Exclusive upper bound of the time range (`Get.setTimeRange(0, ts)`).
    pub below: Ts,
    /// Versions per column, already capped by the family's max versions.
    pub versions: usize,
}

fn masked(ts: Ts, a: Option<Ts>, b: Option<Ts>) -> bool {
    a.is_some_and(|m| ts <= m) || b.is_some_and(|m| ts <= m)
}

fn raise(marker: &mut Option<Ts>, ts: Ts) {
    *marker = Some(marker.map_or(ts, |m| m.max(ts)));
}

/// A row, encoded; ordered (and looked up in a table's set) by its key alone.
#[derive(Debug)]
pub struct RowBuf(Box<[u8]>);

impl RowBuf {
    pub fn key(&self) -> &[u8] {
        Reader(&self.0).bytes()
    }

    pub fn families(&self) -> Families<'_> {
        let mut r = Reader(&self.0);
        r.bytes();
        let left = r.varint();
        Families { r, left }
    }

    /// The newest visible value of one column (checkAndPut, atomicIncrement).
    pub fn current(&self, family: usize, qualifier: &[u8]) -> Option<(Ts, &[u8])> {
        let f = self.families().find(|f| f.id == family)?;
        f.columns().find(|c| c.qualifier == qualifier)?.newest(f.marker)
    }
}

impl Borrow<[u8]> for RowBuf {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

impl PartialEq for RowBuf {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for RowBuf {}

impl PartialOrd for RowBuf {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RowBuf {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(other.key())
    }
}

/// A cursor over encoded bytes written by [`RowEdit::encode`].
#[derive(Debug, Clone, Copy)]
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> usize {
        let (mut v, mut shift) = (0usize, 0);
        loop {
            let b = self.0[0];
            self.0 = &self.0[1..];
            v |= ((b & 0x7f) as usize) << shift;
            if b < 0x80 {
                return v;
            }
            shift += 7;
        }
    }

    fn ts(&mut self) -> Ts {
        let (head, rest) = self.0.split_at(8);
        self.0 = rest;
        Ts::from_le_bytes(head.try_into().expect("8 bytes"))
    }

    fn bytes(&mut self) -> &'a [u8] {
        let n = self.varint();
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }

    fn marker(&mut self) -> Option<Ts> {
        let present = self.0[0] != 0;
        self.0 = &self.0[1..];
        present.then(|| self.ts())
    }
}

/// The families of an encoded row, by id.
pub struct Families<'a> {
    r: Reader<'a>,
    left: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct FamilyRef<'a> {
    pub id: usize,
    /// Highest family delete marker: masks every column's versions at or below it.
    pub marker: Option<Ts>,
    columns: Reader<'a>,
    count: usize,
}

impl<'a> Iterator for Families<'a> {
    type Item = FamilyRef<'a>;

    fn next(&mut self) -> Option<FamilyRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (id, marker, count) = (self.r.varint(), self.r.marker(), self.r.varint());
        let family = FamilyRef { id, marker, columns: self.r, count };
        let mut columns = family.columns();
        columns.by_ref().for_each(drop);
        self.r = columns.r;
        Some(family)
    }
}

impl<'a> FamilyRef<'a> {
    /// Columns by qualifier.
    pub fn columns(&self) -> Columns<'a> {
        Columns { r: self.columns, left: self.count }
    }
}

pub struct Columns<'a> {
    r: Reader<'a>,
    left: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct ColumnRef<'a> {
    pub qualifier: &'a [u8],
    /// Highest column delete marker: masks this column's versions at or below it.
    pub marker: Option<Ts>,
    versions: Reader<'a>,
    count: usize,
}

impl<'a> Iterator for Columns<'a> {
    type Item = ColumnRef<'a>;

    fn next(&mut self) -> Option<ColumnRef<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (qualifier, marker, count) = (self.r.bytes(), self.r.marker(), self.r.varint());
        let column = ColumnRef { qualifier, marker, versions: self.r, count };
        for _ in 0..count {
            self.r.ts();
            self.r.bytes();
        }
        Some(column)
    }
}

impl<'a> ColumnRef<'a> {
    /// Every stored version, newest first, masked or not.
    pub fn versions(&self) -> impl Iterator<Item = (Ts, &'a [u8])> {
        let mut r = self.versions;
        (0..self.count).map(move |_| (r.ts(), r.bytes()))
    }

    /// Visible versions, newest first.
    pub fn visible(&self, family_marker: Option<Ts>, w: Window) -> impl Iterator<Item = (Ts, &'a [u8])> {
        let marker = self.marker;
        self.versions().filter(move |(ts, _)| *ts < w.below && !masked(*ts, marker, family_marker)).take(w.versions)
    }

    /// The newest visible version at any time.
    pub fn newest(&self, family_marker: Option<Ts>) -> Option<(Ts, &'a [u8])> {
        self.visible(family_marker, Window { below: Ts::MAX, versions: 1 }).next()
    }
}

/// A row being changed: borrows the old row's bytes and the values being written.
#[derive(Debug, Default)]
pub struct RowEdit<'a> {
    /// By id.
    families: Vec<FamilyEdit<'a>>,
}

#[derive(Debug)]
pub struct FamilyEdit<'a> {
    id: usize,
    marker: Option<Ts>,
    /// By qualifier.
    columns: Vec<ColumnEdit<'a>>,
}

#[derive(Debug)]
pub struct ColumnEdit<'a> {
    qualifier: &'a [u8],
    marker: Option<Ts>,
    /// Newest first, one per timestamp.
    versions: Vec<(Ts, &'a [u8])>,
}

impl<'a> RowEdit<'a> {
    pub fn decode(row: &'a RowBuf) -> Self {
        let families = row
            .families()
            .map(|f| FamilyEdit {
                id: f.id,
                marker: f.marker,
                columns: f
                    .columns()
                    .map(|c| ColumnEdit { qualifier: c.qualifier, marker: c.marker, versions: c.versions().collect() })
                    .collect(),
            })
            .collect();
        RowEdit { families }
    }

    pub fn family_mut(&mut self, id: usize) -> &mut FamilyEdit<'a> {
        let i = match self.families.binary_search_by_key(&id, |f| f.id) {
            Ok(i) => i,
            Err(i) => {
                self.families.insert(i, FamilyEdit { id, marker: None, columns: Vec::new() });
                i
            }
        };
        &mut self.families[i]
    }

    /// Purges masked cells (both kinds of compaction) and, on a major compaction, the
    /// markers too. Returns whether anything changed.
    pub fn compact(&mut self, major: bool) -> bool {
        let mut changed = false;
        for f in &mut self.families {
            changed |= f.compact(major);
        }
        if major {
            self.families.retain(|f| !f.columns.is_empty());
        }
        changed
    }

    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    /// The row as one allocation of exactly its size.
    pub fn encode(&self, key: &[u8]) -> RowBuf {
        fn varint_len(v: usize) -> usize {
            (usize::BITS - (v | 1).leading_zeros()).div_ceil(7) as usize
        }
        let bytes_len = |b: &[u8]| varint_len(b.len()) + b.len();
        let marker_len = |m: Option<Ts>| if m.is_some() { 9 } else { 1 };
        let mut size = bytes_len(key) + varint_len(self.families.len());
        for f in &self.families {
            size += varint_len(f.id) + marker_len(f.marker) + varint_len(f.columns.len());
            for c in &f.columns {
                size += bytes_len(c.qualifier) + marker_len(c.marker) + varint_len(c.versions.len());
                size += c.versions.iter().map(|(_, v)| 8 + bytes_len(v)).sum::<usize>();
            }
        }
        let mut w = Writer(Vec::with_capacity(size));
        w.bytes(key);
        w.varint(self.families.len());
        for f in &self.families {
            w.varint(f.id);
            w.marker(f.marker);
            w.varint(f.columns.len());
            for c in &f.columns {
                w.bytes(c.qualifier);
                w.marker(c.marker);
                w.varint(c.versions.len());
                for (ts, value) in &c.versions {
                    w.0.extend_from_slice(&ts.to_le_bytes());
                    w.bytes(value);
                }
            }
        }
        debug_assert_eq!(w.0.len(), size);
        RowBuf(w.0.into_boxed_slice())
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn varint(&mut self, mut v: usize) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len());
        self.0.extend_from_slice(b);
    }

    fn marker(&mut self, m: Option<Ts>) {
        match m {
            None => self.0.push(0),
            Some(ts) => {
                self.0.push(1);
                self.0.extend_from_slice(&ts.to_le_bytes());
            }
        }
    }
}

impl<'a> FamilyEdit<'a> {
    pub fn column_mut(&mut self, qualifier: &'a [u8]) -> &mut ColumnEdit<'a> {
        let i = match self.columns.binary_search_by(|c| c.qualifier.cmp(qualifier)) {
            Ok(i) => i,
            Err(i) => {
                self.columns.insert(i, ColumnEdit { qualifier, marker: None, versions: Vec::new() });
                i
            }
        };
        &mut self.columns[i]
    }

    pub fn delete(&mut self, ts: Ts) {
        raise(&mut self.marker, ts);
    }

    fn compact(&mut self, major: bool) -> bool {
        let marker = self.marker;
        let mut changed = false;
        for c in &mut self.columns {
            changed |= c.compact(marker, major);
        }
        if major {
            changed |= self.marker.take().is_some();
            self.columns.retain(|c| !c.versions.is_empty());
        }
        changed
    }
}

impl<'a> ColumnEdit<'a> {
    /// Stores a version (replacing one at the same timestamp) and drops versions beyond
    /// `max_versions`, which no read could return any more.
    pub fn put(&mut self, ts: Ts, value: &'a [u8], max_versions: usize) {
        match self.versions.binary_search_by(|(t, _)| ts.cmp(t)) {
            Ok(i) => self.versions[i].1 = value,
            Err(i) => self.versions.insert(i, (ts, value)),
        }
        self.versions.truncate(max_versions.max(1));
    }

    pub fn delete(&mut self, ts: Ts) {
        raise(&mut self.marker, ts);
    }

    fn compact(&mut self, family_marker: Option<Ts>, major: bool) -> bool {
        let (marker, before) = (self.marker, self.versions.len());
        self.versions.retain(|(ts, _)| !masked(*ts, marker, family_marker));
        let cleared = major && self.marker.take().is_some();
        cleared || self.versions.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Window = Window { below: Ts::MAX, versions: 10 };

    fn versions(row: &RowBuf, w: Window) -> Vec<Ts> {
        let f = row.families().next().unwrap();
        let c = f.columns().next().unwrap();
        c.visible(f.marker, w).map(|(ts, _)| ts).collect()
    }

    #[test]
    fn delete_masks_older_versions_even_when_written_later() {
        let mut e = RowEdit::default();
        let c = e.family_mut(0).column_mut(b"q");
        c.put(10, b"a", 3);
        c.delete(20);
        c.put(15, b"late", 3);
        c.put(25, b"new", 3);
        let row = e.encode(b"r");
        assert_eq!(versions(&row, ALL), vec![25]);
        let mut e = RowEdit::decode(&row);
        assert!(e.compact(true));
        let row = e.encode(b"r");
        let c = row.families().next().unwrap().columns().next().unwrap();
        assert_eq!(c.versions().count(), 1);
        assert_eq!(c.marker, None);
    }

    #[test]
    fn time_range_is_exclusive_and_versions_capped() {
        let mut e = RowEdit::default();
        let values: Vec<[u8; 1]> = (1..=5).map(|ts| [ts as u8]).collect();
        for (ts, v) in (1..=5).zip(&values) {
            e.family_mut(0).column_mut(b"q").put(ts, v, 3);
        }
        let row = e.encode(b"r");
        assert_eq!(versions(&row, ALL), vec![5, 4, 3]);
        assert_eq!(versions(&row, Window { below: 5, versions: 10 }), vec![4, 3]);
        let mut e = RowEdit::decode(&row);
        e.family_mut(0).delete(4);
        assert_eq!(versions(&e.encode(b"r"), ALL), vec![5]);
    }

    #[test]
    fn put_at_an_existing_timestamp_replaces_that_version() {
        let mut e = RowEdit::default();
        e.family_mut(0).column_mut(b"q").put(7, b"old", 3);
        e.family_mut(0).column_mut(b"q").put(7, b"new", 3);
        let row = e.encode(b"r");
        assert_eq!(row.current(0, b"q"), Some((7, &b"new"[..])));
        assert_eq!(row.current(0, b"x"), None);
        assert_eq!(row.current(1, b"q"), None);
    }

    #[test]
    fn minor_compaction_keeps_markers() {
        let mut e = RowEdit::default();
        e.family_mut(0).column_mut(b"q").put(5, b"x", 1);
        e.family_mut(0).delete(9);
        assert!(e.compact(false));
        assert!(!e.is_empty());
        assert!(!e.compact(false), "nothing left to purge");
        assert_eq!(e.encode(b"r").families().next().unwrap().marker, Some(9));
        assert!(e.compact(true));
        assert!(e.is_empty());
    }

    #[test]
    fn encoding_round_trips_families_columns_and_long_values() {
        let long = vec![7u8; 300];
        let mut e = RowEdit::default();
        e.family_mut(2).column_mut(b"b").put(1, &long, 3);
        e.family_mut(0).column_mut(b"z").delete(4);
        e.family_mut(2).column_mut(b"a").put(Ts::MAX - 1, b"", 3);
        e.family_mut(0).column_mut(b"").put(3, b"e", 3);
        let key = vec![b'k'; 200];
        let row = e.encode(&key);
        assert_eq!(row.key(), &key[..]);
        let seen: Vec<(usize, Vec<&[u8]>)> =
            row.families().map(|f| (f.id, f.columns().map(|c| c.qualifier).collect())).collect();
        assert_eq!(seen, vec![(0, vec![&b""[..], b"z"]), (2, vec![&b"a"[..], b"b"])]);
        assert_eq!(row.current(2, b"b"), Some((1, &long[..])));
        assert_eq!(row.current(2, b"a"), Some((Ts::MAX - 1, &b""[..])));
        assert_eq!(RowEdit::decode(&row).encode(&key).0, row.0);
    }
}
