//! The bounded labels a verified sample is counted under (contract section 10,
//! "Dimensions"), so that trends by day and week can be drawn and alerted on.
//!
//! Every value set is bounded, whatever the samples say (no ids as labels):
//!
//! | dimension   | values |
//! |-------------|--------|
//! | `scene`     | `list`, `detail`, `order_page`, `order` |
//! | `type`      | `discount`, `seckill`, `subsidy`, `member_price`, `other`, `none` |
//! | `biz`       | the allow-list `verifier.biz_codes`, others `other`; with an empty list, every code as it is, up to `verifier.max_biz_codes` distinct codes per process, then `other` |
//! | `condition` | `member_sku`, `member_goods`, `nonmember_sku`, `nonmember_goods` |
//! | `band`      | from `verifier.price_bands` (ascending cents): `nonpositive`, `0-B0`, `B0-B1`, …, `Bn+`, and `none` |
//! | `tag`       | the allow-list `verifier.tags`, others `other`, `none` for no tag; a sample counts once per distinct label |
//! | `source`    | a configured target name, `unknown` for another name, `none` when not given |
//!
//! The activity a sample is counted under (type, business code, tags) is the rule's winner,
//! else the service's answer, else none ([`super::verdict::Subject`]). Dropped activities
//! are counted by scene, reason ([`DROP_REASONS`], others `other`) and type.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::sample::Sample;
use super::verdict::Judgement;

/// The dimension names, in the order [`Labels::pairs`] yields them.
pub const DIMENSIONS: [&str; 7] = ["scene", "type", "biz", "condition", "band", "tag", "source"];

/// Drop reasons the contract names; any other text is counted as `other`.
pub const DROP_REASONS: [&str; 6] =
    ["not_started", "ended", "member_only", "sku_not_covered", "lower_priority", "higher_price"];

pub const OTHER: &str = "other";
pub const NONE: &str = "none";

/// Activity type label.
pub fn kind_label(kind: Option<i32>) -> &'static str {
    match kind {
        None => NONE,
        Some(1) => "discount",
        Some(2) => "seckill",
        Some(3) => "subsidy",
        Some(4) => "member_price",
        Some(_) => OTHER,
    }
}

/// Drop reason label.
pub fn reason_label(reason: &str) -> &'static str {
    DROP_REASONS.iter().find(|r| **r == reason).copied().unwrap_or(OTHER)
}

/// One sample's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    pub scene: &'static str,
    pub kind: &'static str,
    pub biz: String,
    pub condition: &'static str,
    pub band: String,
    /// Distinct tag labels, at least one (`none`).
    pub tags: Vec<String>,
    pub source: String,
}

impl Labels {
    /// `(dimension, value)` pairs, one per tag label for `tag`.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("scene", self.scene),
            ("type", self.kind),
            ("biz", self.biz.as_str()),
            ("condition", self.condition),
            ("band", self.band.as_str()),
        ]
        .into_iter()
        .chain(self.tags.iter().map(|t| ("tag", t.as_str())))
        .chain(std::iter::once(("source", self.source.as_str())))
    }
}

/// Labels samples; configured once from `[verifier]` and the target names.
#[derive(Debug)]
pub struct Labeler {
    bounds: Vec<i64>,
    bands: Vec<String>,
    tags: BTreeSet<String>,
    biz_codes: BTreeSet<String>,
    max_biz_codes: usize,
    seen_biz: Mutex<BTreeSet<String>>,
    targets: BTreeSet<String>,
}

impl Labeler {
    /// `price_bands`: ascending positive bounds in cents.
    pub fn new(
        price_bands: &[i64],
        tags: &[String],
        biz_codes: &[String],
        max_biz_codes: usize,
        targets: impl IntoIterator<Item = String>,
    ) -> Labeler {
        let mut bands = Vec::with_capacity(price_bands.len() + 1);
        let mut low = 0;
        for b in price_bands {
            bands.push(format!("{low}-{b}"));
            low = *b;
        }
        bands.push(format!("{low}+"));
        Labeler {
            bounds: price_bands.to_vec(),
            bands,
            tags: tags.iter().cloned().collect(),
            biz_codes: biz_codes.iter().cloned().collect(),
            max_biz_codes,
            seen_biz: Mutex::new(BTreeSet::new()),
            targets: targets.into_iter().collect(),
        }
    }

    /// Every value `band` can take.
    pub fn band_values(&self) -> impl Iterator<Item = &str> {
        ["nonpositive", NONE].into_iter().chain(self.bands.iter().map(String::as_str))
    }

    pub fn band(&self, price: Option<i64>) -> String {
        match price {
            None => NONE.into(),
            Some(p) if p <= 0 => "nonpositive".into(),
            Some(p) => self.bands[self.bounds.iter().take_while(|b| p >= **b).count()].clone(),
        }
    }

    pub fn biz(&self, code: Option<&str>) -> String {
        let Some(code) = code else { return NONE.into() };
        if !self.biz_codes.is_empty() {
            return if self.biz_codes.contains(code) { code.into() } else { OTHER.into() };
        }
        let mut seen = self.seen_biz.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(code) {
            return code.into();
        }
        if seen.len() < self.max_biz_codes && code != OTHER && code != NONE {
            seen.insert(code.to_string());
            return code.into();
        }
        OTHER.into()
    }

    pub fn source(&self, name: Option<&str>) -> String {
        match name {
            None => NONE.into(),
            Some(n) if self.targets.contains(n) => n.into(),
            Some(_) => "unknown".into(),
        }
    }

    pub fn labels(&self, sample: &Sample, j: &Judgement) -> Labels {
        let subject = j.subject.as_ref();
        let mut tags: Vec<String> = subject
            .map(|s| {
                s.tags
                    .iter()
                    .map(|t| if self.tags.contains(t) { t.clone() } else { OTHER.to_string() })
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            })
            .unwrap_or_default();
        if tags.is_empty() {
            tags.push(NONE.into());
        }
        Labels {
            scene: sample.scene.as_str(),
            kind: kind_label(subject.map(|s| s.kind)),
            biz: self.biz(subject.map(|s| s.biz.as_str())),
            condition: match (sample.member, sample.sku_id.is_some()) {
                (true, true) => "member_sku",
                (true, false) => "member_goods",
                (false, true) => "nonmember_sku",
                (false, false) => "nonmember_goods",
            },
            band: self.band(j.band_price),
            tags,
            source: self.source(sample.source()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::sample::{SampleContext, Scene};
    use crate::pricing::verdict::{Subject, Verdict};

    fn labeler(biz: &[&str], max_biz: usize) -> Labeler {
        Labeler::new(
            &[1000, 5000],
            &["618".to_string()],
            &biz.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            max_biz,
            ["redis-a".to_string()],
        )
    }

    fn judgement(subject: Option<Subject>, band_price: Option<i64>) -> Judgement {
        Judgement {
            verdict: Verdict::Match,
            cause: None,
            inconclusive: None,
            expected: None,
            wrong_drops: vec![],
            note: None,
            check_goods: false,
            subject,
            band_price,
            dropped_kinds: vec![],
        }
    }

    fn sample(member: bool, sku: Option<u64>, source: Option<&str>) -> Sample {
        Sample {
            sample_id: "s".into(),
            scene: Scene::OrderPage,
            goods_id: 1,
            sku_id: sku,
            at_ms: 0,
            member,
            answer: None,
            context: source.map(|s| SampleContext { source: Some(s.into()), ..Default::default() }),
        }
    }

    #[test]
    fn price_bands_are_half_open_with_edges() {
        let l = labeler(&[], 10);
        assert_eq!(l.band(None), "none");
        assert_eq!(l.band(Some(0)), "nonpositive");
        assert_eq!(l.band(Some(-5)), "nonpositive");
        assert_eq!(l.band(Some(1)), "0-1000");
        assert_eq!(l.band(Some(999)), "0-1000");
        assert_eq!(l.band(Some(1000)), "1000-5000");
        assert_eq!(l.band(Some(5000)), "5000+");
        assert_eq!(l.band_values().count(), 5);
    }

    #[test]
    fn business_codes_are_bounded() {
        let allow = labeler(&["main"], 10);
        assert_eq!(allow.biz(Some("main")), "main");
        assert_eq!(allow.biz(Some("brand")), "other");
        assert_eq!(allow.biz(None), "none");
        let open = labeler(&[], 2);
        assert_eq!(open.biz(Some("a")), "a");
        assert_eq!(open.biz(Some("b")), "b");
        assert_eq!(open.biz(Some("c")), "other", "past max_biz_codes");
        assert_eq!(open.biz(Some("a")), "a", "codes seen keep their label");
    }

    #[test]
    fn labels_of_one_sample() {
        let l = labeler(&[], 10);
        let subject = Subject { kind: 4, biz: "main".into(), tags: vec!["618".into(), "x".into(), "y".into()] };
        let labels = l.labels(&sample(true, Some(8), Some("redis-a")), &judgement(Some(subject), Some(1200)));
        let pairs: Vec<(&str, &str)> = labels.pairs().collect();
        assert_eq!(
            pairs,
            [
                ("scene", "order_page"),
                ("type", "member_price"),
                ("biz", "main"),
                ("condition", "member_sku"),
                ("band", "1000-5000"),
                ("tag", "618"),
                ("tag", "other"),
                ("source", "redis-a"),
            ]
        );
        let labels = l.labels(&sample(false, None, Some("redis-q")), &judgement(None, None));
        let pairs: Vec<(&str, &str)> = labels.pairs().collect();
        assert_eq!(
            pairs,
            [
                ("scene", "order_page"),
                ("type", "none"),
                ("biz", "none"),
                ("condition", "nonmember_goods"),
                ("band", "none"),
                ("tag", "none"),
                ("source", "unknown"),
            ]
        );
        assert_eq!(l.labels(&sample(false, None, None), &judgement(None, None)).source, "none");
    }

    #[test]
    fn kinds_and_reasons() {
        assert_eq!(kind_label(Some(1)), "discount");
        assert_eq!(kind_label(Some(9)), "other");
        assert_eq!(reason_label("member_only"), "member_only");
        assert_eq!(reason_label("because I said so"), "other");
    }
}
