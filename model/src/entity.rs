//! The projected entity and its canonical JSON encoding (contract section 3).
//!
//! Writers write [`Entity::encode`]; readers [`Entity::decode`] and compare fields, so key
//! order and white space are never drift while bytes that do not decode are.

use serde::{Deserialize, Serialize};

use crate::ids::ActivityId;

/// One activity as it applies to one goods, as every derived store must hold it.
///
/// Field order is the canonical encoding order; do not reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    pub aid: ActivityId,
    #[serde(rename = "type")]
    pub kind: i32,
    pub biz: String,
    pub tags: Vec<String>,
    pub prio: i32,
    pub start: i64,
    pub end: i64,
    pub price: i64,
    pub limit: i32,
    /// `[sku_id, price]`, ascending sku id.
    pub skus: Vec<(u64, i64)>,
    /// Largest `updated_at` (epoch ms) among the rows the entity was built from.
    pub ver: i64,
}

/// Names of the comparable fields, in canonical order, as reported in `stale` drift.
pub const FIELDS: [&str; 11] = ["aid", "type", "biz", "tags", "prio", "start", "end", "price", "limit", "skus", "ver"];

impl Entity {
    /// Canonical compact JSON.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("entity serialization cannot fail")
    }

    /// Decodes any JSON rendering of an entity. Unknown or missing fields, wrong types
    /// and invalid UTF-8 are errors (the value is `corrupt`).
    pub fn decode(bytes: &[u8]) -> Result<Entity, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The fields in which `other` differs from `self`, in canonical order.
    pub fn differing_fields(&self, other: &Entity) -> Vec<&'static str> {
        let checks = [
            self.aid != other.aid,
            self.kind != other.kind,
            self.biz != other.biz,
            self.tags != other.tags,
            self.prio != other.prio,
            self.start != other.start,
            self.end != other.end,
            self.price != other.price,
            self.limit != other.limit,
            self.skus != other.skus,
            self.ver != other.ver,
        ];
        FIELDS.iter().zip(checks).filter(|(_, differs)| *differs).map(|(f, _)| *f).collect()
    }
}

#[cfg(test)]
pub(crate) fn sample() -> Entity {
    Entity {
        aid: 7001,
        kind: 2,
        biz: "main".into(),
        tags: vec!["618".into(), "hot".into()],
        prio: 10,
        start: 1781740800000,
        end: 1781827199000,
        price: 250,
        limit: 2,
        skus: vec![(88, 240), (89, 250)],
        ver: 1781700000123,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_exactly_the_contract_example() {
        let expected = r#"{"aid":7001,"type":2,"biz":"main","tags":["618","hot"],"prio":10,"start":1781740800000,"end":1781827199000,"price":250,"limit":2,"skus":[[88,240],[89,250]],"ver":1781700000123}"#;
        assert_eq!(String::from_utf8(sample().encode()).unwrap(), expected);
        assert_eq!(Entity::decode(expected.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn key_order_and_white_space_decode_the_same() {
        let shuffled = r#"{ "ver":1781700000123, "skus":[[88,240],[89,250]], "limit":2, "price":250,
            "end":1781827199000, "start":1781740800000, "prio":10, "tags":["618","hot"],
            "biz":"main", "type":2, "aid":7001 }"#;
        assert_eq!(Entity::decode(shuffled.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn undecodable_values_are_errors() {
        for bad in [
            &b"not json"[..],
            b"{}",
            br#"{"aid":"7001"}"#,
            b"\xff\xfe",
            br#"{"aid":7001,"type":2,"biz":"main","tags":[],"prio":10,"start":1,"end":2,"price":250,"limit":2,"skus":[],"ver":1,"extra":1}"#,
        ] {
            assert!(Entity::decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn reports_differing_fields_in_order() {
        let a = sample();
        let mut b = sample();
        b.price = 1;
        b.skus.pop();
        b.ver += 1;
        assert_eq!(a.differing_fields(&b), vec!["price", "skus", "ver"]);
        assert!(a.differing_fields(&a).is_empty());
    }
}
