//! Comparison of one goods' truth with what one target holds (contract section 5).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::entity::Entity;
use crate::ids::{ActivityId, GoodsId};
use crate::projection::GoodsTruth;

/// One stored value as read from a target: the raw bytes (needed for compare-and-set and
/// the audit before-image) and, for HBase, the cell timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedCell {
    pub value: Vec<u8>,
    pub timestamp: Option<i64>,
}

/// Everything one target holds for one goods, by hash field / column qualifier. Empty
/// when the key or row does not exist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedGoods {
    pub cells: BTreeMap<Vec<u8>, ObservedCell>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftKind {
    /// Truth has the entity, the target not.
    Missing,
    /// The target has an entity truth does not.
    Extra,
    /// Both have it and fields differ.
    Stale,
    /// The target's value does not decode.
    Corrupt,
    /// The target holds a key/row for a goods with no entities.
    Orphan,
}

impl DriftKind {
    pub const ALL: [DriftKind; 5] =
        [DriftKind::Missing, DriftKind::Extra, DriftKind::Stale, DriftKind::Corrupt, DriftKind::Orphan];

    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::Missing => "missing",
            DriftKind::Extra => "extra",
            DriftKind::Stale => "stale",
            DriftKind::Corrupt => "corrupt",
            DriftKind::Orphan => "orphan",
        }
    }
}

/// One difference between truth and one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub goods_id: GoodsId,
    pub kind: DriftKind,
    /// `None` for `orphan`, and for a qualifier that is not a decimal activity id.
    pub activity_id: Option<ActivityId>,
    /// The differing fields, for `stale`.
    pub fields: Vec<&'static str>,
}

/// The qualifier / hash field under which an activity's entity is stored.
pub fn qualifier(aid: ActivityId) -> Vec<u8> {
    aid.to_string().into_bytes()
}

/// Parses a qualifier back to an activity id, if it is a canonical decimal.
pub fn parse_qualifier(q: &[u8]) -> Option<ActivityId> {
    let text = std::str::from_utf8(q).ok()?;
    let id: ActivityId = text.parse().ok()?;
    (id.to_string() == text).then_some(id)
}

/// Compares one goods' truth with one target's cells. Drift comes out in activity-id
/// order: truth's entities first, then the target's extras.
pub fn diff_goods(goods_id: GoodsId, truth: &GoodsTruth, observed: &ObservedGoods) -> Vec<Drift> {
    diff_goods_encoded(goods_id, truth, &Encoded::of(truth), observed)
}

/// The canonical encoding and qualifier of each of a goods' entities, computed once per
/// goods and shared by the diffs against every target.
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    /// `(qualifier, canonical JSON)` per entity, in activity-id order.
    cells: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Encoded {
    pub fn of(truth: &GoodsTruth) -> Encoded {
        Encoded { cells: truth.entities.iter().map(|(&aid, e)| (qualifier(aid), e.encode())).collect() }
    }
}

/// [`diff_goods`] with the entities' encodings computed beforehand (`Encoded::of` of the
/// same truth). A value byte-equal to the canonical encoding is equal without decoding
/// (decode(encode(e)) == e); any other value is decoded and compared field by field.
pub fn diff_goods_encoded(
    goods_id: GoodsId,
    truth: &GoodsTruth,
    encoded: &Encoded,
    observed: &ObservedGoods,
) -> Vec<Drift> {
    debug_assert_eq!(encoded.cells.len(), truth.entities.len());
    if truth.entities.is_empty() {
        if observed.cells.is_empty() {
            return Vec::new();
        }
        return vec![Drift { goods_id, kind: DriftKind::Orphan, activity_id: None, fields: Vec::new() }];
    }
    let mut drift = Vec::new();
    for ((&aid, entity), (q, canonical)) in truth.entities.iter().zip(&encoded.cells) {
        let found = match observed.cells.get(q) {
            None => Some((DriftKind::Missing, Vec::new())),
            Some(cell) if cell.value == *canonical => None,
            Some(cell) => match Entity::decode(&cell.value) {
                Err(_) => Some((DriftKind::Corrupt, Vec::new())),
                Ok(held) => {
                    let fields = entity.differing_fields(&held);
                    (!fields.is_empty()).then_some((DriftKind::Stale, fields))
                }
            },
        };
        if let Some((kind, fields)) = found {
            drift.push(Drift { goods_id, kind, activity_id: Some(aid), fields });
        }
    }
    for q in observed.cells.keys() {
        if encoded.cells.iter().any(|(eq, _)| eq == q) {
            continue;
        }
        let aid = parse_qualifier(q);
        if aid.is_some_and(|aid| truth.entities.contains_key(&aid)) {
            continue;
        }
        drift.push(Drift { goods_id, kind: DriftKind::Extra, activity_id: aid, fields: Vec::new() });
    }
    drift
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::sample;

    fn truth_of(entities: Vec<Entity>) -> GoodsTruth {
        GoodsTruth {
            entities: entities.into_iter().map(|e| (e.aid, e)).collect(),
            last_change_ms: 0,
            ..Default::default()
        }
    }

    fn held(cells: Vec<(&str, Vec<u8>)>) -> ObservedGoods {
        ObservedGoods {
            cells: cells
                .into_iter()
                .map(|(q, v)| (q.as_bytes().to_vec(), ObservedCell { value: v, timestamp: None }))
                .collect(),
        }
    }

    #[test]
    fn equal_is_clean_whatever_the_rendering() {
        let pretty = serde_json::to_vec_pretty(&sample()).unwrap();
        assert!(diff_goods(1, &truth_of(vec![sample()]), &held(vec![("7001", pretty)])).is_empty());
        assert!(diff_goods(1, &truth_of(vec![]), &held(vec![])).is_empty());
    }

    #[test]
    fn encoded_fast_path_agrees_with_decoding() {
        let t = truth_of(vec![sample()]);
        let mut old = sample();
        old.price = 300;
        for cells in
            [vec![("7001", sample().encode())], vec![("7001", old.encode())], vec![("7001", b"{".to_vec())], vec![]]
        {
            let h = held(cells);
            assert_eq!(diff_goods_encoded(1, &t, &Encoded::of(&t), &h), diff_goods(1, &t, &h));
        }
        assert!(diff_goods_encoded(1, &t, &Encoded::of(&t), &held(vec![("7001", sample().encode())])).is_empty());
    }

    #[test]
    fn finds_missing() {
        let d = diff_goods(1, &truth_of(vec![sample()]), &held(vec![]));
        assert_eq!(d, vec![Drift { goods_id: 1, kind: DriftKind::Missing, activity_id: Some(7001), fields: vec![] }]);
    }

    #[test]
    fn finds_stale_with_fields() {
        let mut old = sample();
        old.price = 300;
        old.tags = vec!["618".into()];
        let d = diff_goods(1, &truth_of(vec![sample()]), &held(vec![("7001", old.encode())]));
        assert_eq!(d[0].kind, DriftKind::Stale);
        assert_eq!(d[0].fields, vec!["tags", "price"]);
    }

    #[test]
    fn value_under_wrong_field_is_stale_on_aid() {
        let mut other = sample();
        other.aid = 9;
        let d = diff_goods(1, &truth_of(vec![sample()]), &held(vec![("7001", other.encode())]));
        assert_eq!(d[0].fields, vec!["aid"]);
    }

    #[test]
    fn finds_corrupt() {
        let d = diff_goods(1, &truth_of(vec![sample()]), &held(vec![("7001", b"{\"aid\":".to_vec())]));
        assert_eq!(d[0].kind, DriftKind::Corrupt);
        assert_eq!(d[0].activity_id, Some(7001));
    }

    #[test]
    fn finds_extra_including_junk_qualifiers() {
        let mut other = sample();
        other.aid = 5;
        let d = diff_goods(
            1,
            &truth_of(vec![sample()]),
            &held(vec![
                ("7001", sample().encode()),
                ("5", other.encode()),
                ("x", b"1".to_vec()),
                ("007001", b"1".to_vec()),
            ]),
        );
        let got: Vec<_> = d.iter().map(|d| (d.kind, d.activity_id)).collect();
        assert_eq!(got, vec![(DriftKind::Extra, None), (DriftKind::Extra, Some(5)), (DriftKind::Extra, None)]);
    }

    #[test]
    fn goods_without_entities_but_data_is_one_orphan() {
        let d = diff_goods(1, &truth_of(vec![]), &held(vec![("7001", sample().encode()), ("2", b"junk".to_vec())]));
        assert_eq!(d, vec![Drift { goods_id: 1, kind: DriftKind::Orphan, activity_id: None, fields: vec![] }]);
    }

    #[test]
    fn qualifiers_must_be_canonical_decimals() {
        assert_eq!(parse_qualifier(b"7001"), Some(7001));
        assert_eq!(parse_qualifier(b"07001"), None);
        assert_eq!(parse_qualifier(b"+1"), None);
    }
}
