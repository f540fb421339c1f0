//! Comparison of one goods' truth with what one target holds (contract section 5).

use std::collections::{BTreeMap, HashMap};

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
///
/// Poison is data, not an outage: a key that is not of the contract's shape (a Redis
/// key of another type) is held in `foreign`, as an opaque image the store can compare
/// before removing it (Redis: the `DUMP` serialization); the diff reports it as drift of
/// the goods. A goods the store could not read for a reason of its own (an error reply
/// for this key only) carries `error`, which the report shows for that goods alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedGoods {
    pub cells: BTreeMap<Vec<u8>, ObservedCell>,
    /// The store holds something for this goods that is not a set of cells; its image.
    pub foreign: Option<ObservedCell>,
    /// This goods (only) could not be read: why.
    pub error: Option<String>,
}

impl ObservedGoods {
    pub fn of_cells(cells: BTreeMap<Vec<u8>, ObservedCell>) -> ObservedGoods {
        ObservedGoods { cells, ..Default::default() }
    }

    /// Nothing at all is stored for the goods.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty() && self.foreign.is_none()
    }
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
    /// The target's value does not decode, or (with a null activity id) the whole key is
    /// not of the contract's shape (a Redis key of another type).
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
    Qualifier::of(aid).as_bytes().to_vec()
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
    cells: Vec<(Qualifier, Vec<u8>)>,
}

/// An activity id's qualifier (its decimal, at most 20 digits) held inline.
#[derive(Debug, Clone, Copy)]
struct Qualifier {
    bytes: [u8; 20],
    len: u8,
}

impl Qualifier {
    fn of(aid: ActivityId) -> Qualifier {
        let mut buf = itoa::Buffer::new();
        let digits = buf.format(aid).as_bytes();
        let mut bytes = [0u8; 20];
        bytes[..digits.len()].copy_from_slice(digits);
        Qualifier { bytes, len: digits.len() as u8 }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl Encoded {
    pub fn of(truth: &GoodsTruth) -> Encoded {
        // The qualifier in a stack buffer: no allocation per entity (a full run encodes
        // ~3 entities per goods).
        let cells = truth.entities.iter().map(|(&aid, e)| (Qualifier::of(aid), e.encode())).collect();
        Encoded { cells }
    }

    /// [`of`](Self::of), taking each entity's head (its activity's fields) from `heads`
    /// when the same head was encoded before: the same bytes.
    pub fn of_with(truth: &GoodsTruth, heads: &mut Heads) -> Encoded {
        let cells = truth.entities.iter().map(|(&aid, e)| (Qualifier::of(aid), heads.encode(e))).collect();
        Encoded { cells }
    }
}

/// Encoded entity heads by activity id, kept by their owner across batches. The head
/// (`aid` … `end`, [`Entity`]'s fields taken from its activity row) is the same for every
/// goods an activity applies to, and about half of an entity's digits; a batch of a full
/// run names ~2,000 distinct activities for ~2,700 entities, so the memo pays only when it
/// outlives the batch. A head is reused only when every head field equals the entity's
/// (an activity that changed is encoded again); at most [`Heads::CAPACITY`] are kept.
#[derive(Debug, Default)]
pub struct Heads {
    /// Per activity: an entity with the head's fields (the rest empty), its encoding.
    by_aid: HashMap<ActivityId, (Entity, Vec<u8>), foldhash::fast::RandomState>,
}

impl Heads {
    /// Above this many heads the memo starts over.
    pub const CAPACITY: usize = 10_000;

    /// `entity`'s canonical encoding ([`Entity::encode`]'s bytes).
    pub fn encode(&mut self, entity: &Entity) -> Vec<u8> {
        let mut out = Vec::with_capacity(entity.encoded_len_hint());
        match self.by_aid.get(&entity.aid) {
            Some((held, head)) if held.same_head(entity) => out.extend_from_slice(head),
            _ => {
                entity.encode_head(&mut out);
                if self.by_aid.len() >= Self::CAPACITY {
                    self.by_aid.clear();
                }
                let key = Entity {
                    skus: Vec::new(),
                    price: 0,
                    limit: 0,
                    ver: 0,
                    biz: entity.biz.clone(),
                    tags: entity.tags.clone(),
                    ..*entity
                };
                self.by_aid.insert(entity.aid, (key, out.clone()));
            }
        }
        entity.encode_tail(&mut out);
        out
    }

    pub fn len(&self) -> usize {
        self.by_aid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_aid.is_empty()
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
        if observed.is_empty() {
            return Vec::new();
        }
        return vec![Drift { goods_id, kind: DriftKind::Orphan, activity_id: None, fields: Vec::new() }];
    }
    let mut drift = Vec::new();
    if observed.foreign.is_some() {
        // The key must go before the entities can be written: one whole-goods corrupt,
        // then (its cells being empty) every entity is missing.
        drift.push(Drift { goods_id, kind: DriftKind::Corrupt, activity_id: None, fields: Vec::new() });
    }
    for ((&aid, entity), (q, canonical)) in truth.entities.iter().zip(&encoded.cells) {
        let found = match observed.cells.get(q.as_bytes()) {
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
        if encoded.cells.iter().any(|(eq, _)| eq.as_bytes() == q.as_slice()) {
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
        ObservedGoods::of_cells(
            cells
                .into_iter()
                .map(|(q, v)| (q.as_bytes().to_vec(), ObservedCell { value: v, timestamp: None }))
                .collect(),
        )
    }

    fn foreign() -> ObservedGoods {
        ObservedGoods { foreign: Some(ObservedCell { value: b"dump".to_vec(), timestamp: None }), ..Default::default() }
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
        old.tags = ["618".to_string()].into();
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
    fn a_key_of_another_type_is_corrupt_then_every_entity_missing() {
        let mut e2 = sample();
        e2.aid = 2;
        let d = diff_goods(1, &truth_of(vec![sample(), e2]), &foreign());
        let got: Vec<_> = d.iter().map(|d| (d.kind, d.activity_id)).collect();
        assert_eq!(
            got,
            vec![(DriftKind::Corrupt, None), (DriftKind::Missing, Some(2)), (DriftKind::Missing, Some(7001))]
        );
        let d = diff_goods(1, &truth_of(vec![]), &foreign());
        assert_eq!(d, vec![Drift { goods_id: 1, kind: DriftKind::Orphan, activity_id: None, fields: vec![] }]);
    }

    #[test]
    fn qualifiers_of_any_length_and_bytes_are_extra() {
        let long = "9".repeat(300);
        let junk = ObservedGoods::of_cells(
            [
                (long.as_bytes().to_vec(), ObservedCell { value: vec![0xff; 70_000], timestamp: None }),
                (vec![0, 0xfe, b'\n'], ObservedCell { value: vec![], timestamp: None }),
            ]
            .into(),
        );
        let d = diff_goods(1, &truth_of(vec![sample()]), &junk);
        let got: Vec<_> = d.iter().map(|d| (d.kind, d.activity_id)).collect();
        assert_eq!(got, vec![(DriftKind::Missing, Some(7001)), (DriftKind::Extra, None), (DriftKind::Extra, None)]);
    }

    #[test]
    fn qualifiers_are_the_decimal_of_the_id() {
        for aid in [0, 7, 7001, 1_000_000_007, u64::MAX / 3, u64::MAX] {
            assert_eq!(Qualifier::of(aid).as_bytes(), aid.to_string().as_bytes());
            assert_eq!(qualifier(aid), aid.to_string().into_bytes());
        }
    }

    #[test]
    fn qualifiers_must_be_canonical_decimals() {
        assert_eq!(parse_qualifier(b"7001"), Some(7001));
        assert_eq!(parse_qualifier(b"07001"), None);
        assert_eq!(parse_qualifier(b"+1"), None);
    }
}
