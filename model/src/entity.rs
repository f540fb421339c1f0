//! The projected entity and its canonical JSON encoding (contract section 3).
//!
//! Writers write [`Entity::encode`]; readers [`Entity::decode`] and compare fields, so key
//! order and white space are never drift while bytes that do not decode are.

use std::sync::Arc;

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
    /// Shared with the activity row it was projected from (and its other entities).
    pub biz: Arc<str>,
    pub tags: Arc<[String]>,
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
    ///
    /// Written by hand, byte for byte what `serde_json::to_vec` of the derived
    /// `Serialize` gives (a test holds the two equal on arbitrary entities): a full run
    /// encodes every entity of every goods, and serde's generic path was a twentieth of
    /// its CPU (BENCHMARKS.md).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        self.encode_head(&mut out);
        self.encode_tail(&mut out);
        out
    }

    /// Room for the encoding (a guess that holds for usual entities: one allocation).
    pub(crate) fn encoded_len_hint(&self) -> usize {
        let strings = self.biz.len() + self.tags.iter().map(|t| t.len() + 3).sum::<usize>();
        160 + strings + self.skus.len() * 32
    }

    /// The encoding up to and including `end`: `{"aid":..,"type":..,"biz":..,"tags":[..],
    /// "prio":..,"start":..,"end":..`, the fields an entity takes from its activity row
    /// alone, the same for every goods the activity applies to.
    pub(crate) fn encode_head(&self, out: &mut Vec<u8>) {
        number(out, b"{\"aid\":", self.aid);
        number(out, b",\"type\":", self.kind);
        out.extend_from_slice(b",\"biz\":");
        json_string(out, &self.biz);
        out.extend_from_slice(b",\"tags\":[");
        for (i, t) in self.tags.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_string(out, t);
        }
        out.push(b']');
        number(out, b",\"prio\":", self.prio);
        number(out, b",\"start\":", self.start);
        number(out, b",\"end\":", self.end);
    }

    /// The rest of the encoding after [`encode_head`](Self::encode_head): the goods' own
    /// fields, `,"price":..,"limit":..,"skus":[..],"ver":..}`.
    pub(crate) fn encode_tail(&self, out: &mut Vec<u8>) {
        number(out, b",\"price\":", self.price);
        number(out, b",\"limit\":", self.limit);
        out.extend_from_slice(b",\"skus\":[");
        for (i, (sku, price)) in self.skus.iter().enumerate() {
            number(out, if i > 0 { b",[" } else { b"[" }, *sku);
            number(out, b",", *price);
            out.push(b']');
        }
        out.push(b']');
        number(out, b",\"ver\":", self.ver);
        out.push(b'}');
    }

    /// Whether `other` has the same head fields ([`encode_head`](Self::encode_head)), so
    /// the same head encoding.
    pub(crate) fn same_head(&self, other: &Entity) -> bool {
        self.aid == other.aid
            && self.kind == other.kind
            && self.biz == other.biz
            && self.tags == other.tags
            && self.prio == other.prio
            && self.start == other.start
            && self.end == other.end
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

/// `prefix` then the decimal of `n`.
fn number(out: &mut Vec<u8>, prefix: &[u8], n: impl itoa::Integer) {
    out.extend_from_slice(prefix);
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A JSON string as serde_json writes it: only `"`, `\\` and control characters are
/// escaped (by serde_json itself, the rare case).
fn json_string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        serde_json::to_writer(out, s).expect("writing to a Vec cannot fail");
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

#[cfg(test)]
pub(crate) fn sample() -> Entity {
    Entity {
        aid: 7001,
        kind: 2,
        biz: "main".into(),
        tags: ["618".to_string(), "hot".to_string()].into(),
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
