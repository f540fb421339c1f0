//! One row's cells and delete markers, with HBase's visibility rules.
//!
//! Every delete the Thrift1 API can express masks *all* versions at or below its
//! timestamp (`Delete.addColumns`, `addFamily`, whole-row delete), so one marker per
//! column and one per family (the highest timestamp seen) decide visibility exactly.
//! Markers and the cells they mask stay until a major compaction, which is what makes
//! a put with an older timestamp written after a delete invisible.

use std::cmp::Reverse;
use std::collections::BTreeMap;

pub type Ts = i64;

/// A cell as a read returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub family: Vec<u8>,
    pub qualifier: Vec<u8>,
    pub timestamp: Ts,
    pub value: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct Row {
    pub families: BTreeMap<Vec<u8>, FamilyCells>,
}

#[derive(Debug, Default)]
pub struct FamilyCells {
    /// Highest family delete marker: masks every column's versions at or below it.
    pub marker: Option<Ts>,
    pub columns: BTreeMap<Vec<u8>, Column>,
}

#[derive(Debug, Default)]
pub struct Column {
    /// Highest column delete marker: masks this column's versions at or below it.
    pub marker: Option<Ts>,
    /// Newest first.
    pub versions: BTreeMap<Reverse<Ts>, Vec<u8>>,
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

impl Column {
    /// Stores a version (replacing one at the same timestamp) and drops versions beyond
    /// `max_versions`, which no read could return any more.
    pub fn put(&mut self, ts: Ts, value: Vec<u8>, max_versions: usize) {
        self.versions.insert(Reverse(ts), value);
        while self.versions.len() > max_versions.max(1) {
            self.versions.pop_last();
        }
    }

    pub fn delete(&mut self, ts: Ts) {
        self.marker = Some(self.marker.map_or(ts, |m| m.max(ts)));
    }

    /// Visible versions, newest first.
    pub fn visible<'a>(&'a self, family_marker: Option<Ts>, w: Window) -> impl Iterator<Item = (Ts, &'a Vec<u8>)> + 'a {
        let marker = self.marker;
        self.versions
            .range(Reverse(w.below.saturating_sub(1))..)
            .map(|(Reverse(ts), v)| (*ts, v))
            .filter(move |(ts, _)| !masked(*ts, marker, family_marker))
            .take(w.versions)
    }

    /// The newest visible version at any time.
    pub fn newest(&self, family_marker: Option<Ts>) -> Option<(Ts, &Vec<u8>)> {
        self.visible(family_marker, Window { below: Ts::MAX, versions: 1 }).next()
    }

    fn compact(&mut self, family_marker: Option<Ts>, major: bool) {
        let marker = self.marker;
        self.versions.retain(|Reverse(ts), _| !masked(*ts, marker, family_marker));
        if major {
            self.marker = None;
        }
    }
}

impl FamilyCells {
    pub fn column_mut(&mut self, qualifier: &[u8]) -> &mut Column {
        if !self.columns.contains_key(qualifier) {
            self.columns.insert(qualifier.to_vec(), Column::default());
        }
        self.columns.get_mut(qualifier).expect("just inserted")
    }

    pub fn delete(&mut self, ts: Ts) {
        self.marker = Some(self.marker.map_or(ts, |m| m.max(ts)));
    }

    fn compact(&mut self, major: bool) {
        let marker = self.marker;
        for c in self.columns.values_mut() {
            c.compact(marker, major);
        }
        if major {
            self.marker = None;
            self.columns.retain(|_, c| !c.versions.is_empty());
        }
    }
}

impl Row {
    pub fn family_mut(&mut self, family: &[u8]) -> &mut FamilyCells {
        if !self.families.contains_key(family) {
            self.families.insert(family.to_vec(), FamilyCells::default());
        }
        self.families.get_mut(family).expect("just inserted")
    }

    /// Purges masked cells (both kinds of compaction) and, on a major compaction, the
    /// markers too. Returns whether the row holds nothing any more.
    pub fn compact(&mut self, major: bool) -> bool {
        for f in self.families.values_mut() {
            f.compact(major);
        }
        if major {
            self.families.retain(|_, f| !f.columns.is_empty());
        }
        self.families.is_empty()
    }

    /// The newest visible value of one column (checkAndPut, atomicIncrement).
    pub fn current(&self, family: &[u8], qualifier: &[u8]) -> Option<(Ts, &Vec<u8>)> {
        let f = self.families.get(family)?;
        f.columns.get(qualifier)?.newest(f.marker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Window = Window { below: Ts::MAX, versions: 10 };

    #[test]
    fn delete_masks_older_versions_even_when_written_later() {
        let mut c = Column::default();
        c.put(10, b"a".to_vec(), 3);
        c.delete(20);
        c.put(15, b"late".to_vec(), 3);
        c.put(25, b"new".to_vec(), 3);
        let seen: Vec<_> = c.visible(None, ALL).map(|(ts, _)| ts).collect();
        assert_eq!(seen, vec![25]);
        c.compact(None, true);
        assert_eq!(c.versions.len(), 1);
        assert_eq!(c.marker, None);
    }

    #[test]
    fn time_range_is_exclusive_and_versions_capped() {
        let mut c = Column::default();
        for ts in 1..=5 {
            c.put(ts, vec![ts as u8], 3);
        }
        assert_eq!(c.versions.len(), 3);
        let seen: Vec<_> = c.visible(None, Window { below: 5, versions: 10 }).map(|(ts, _)| ts).collect();
        assert_eq!(seen, vec![4, 3]);
        assert_eq!(c.visible(Some(4), ALL).count(), 1);
    }

    #[test]
    fn minor_compaction_keeps_markers() {
        let mut r = Row::default();
        r.family_mut(b"a").column_mut(b"q").put(5, b"x".to_vec(), 1);
        r.family_mut(b"a").delete(9);
        assert!(!r.compact(false));
        assert_eq!(r.families[&b"a".to_vec()].marker, Some(9));
        assert!(r.compact(true));
    }
}
