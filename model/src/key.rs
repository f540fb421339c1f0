//! Key activities, as rules over activity rows: which activity is key (by id, type, tag,
//! business code, any combination), which goods belong to a key activity, and when a key
//! activity is due for a live sweep. Pure: the rows come from the caller
//! (`triggers::key::refresh` reads them from MySQL).

use std::collections::{BTreeMap, HashSet};

use crate::config::{KeyActivitiesConfig, KeyRuleConfig};
use crate::ids::{ActivityId, GoodsId};

/// `activity.type` code of a type name (contract section 2).
pub fn type_code(name: &str) -> Option<i64> {
    match name {
        "discount" => Some(1),
        "seckill" => Some(2),
        "subsidy" => Some(3),
        "member_price" => Some(4),
        digits => digits.parse().ok(),
    }
}

/// What the rules look at in an `activity` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityMeta {
    pub activity_id: ActivityId,
    pub activity_type: i64,
    pub biz_code: String,
    /// As stored: comma-separated.
    pub tags: String,
    pub status: i64,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl ActivityMeta {
    fn tags(&self) -> impl Iterator<Item = &str> {
        self.tags.split(',').map(str::trim).filter(|t| !t.is_empty())
    }
}

/// The configured rules, compiled.
#[derive(Debug, Clone, Default)]
pub struct KeyRules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    ids: HashSet<ActivityId>,
    types: HashSet<i64>,
    tags: HashSet<String>,
    biz_codes: HashSet<String>,
}

impl Rule {
    fn from_config(r: &KeyRuleConfig) -> Rule {
        Rule {
            ids: r.ids.iter().copied().collect(),
            types: r.types.iter().filter_map(|t| t.code()).collect(),
            tags: r.tags.iter().map(|t| t.trim().to_string()).collect(),
            biz_codes: r.biz_codes.iter().map(|b| b.trim().to_string()).collect(),
        }
    }

    fn matches(&self, a: &ActivityMeta) -> bool {
        let any = !(self.ids.is_empty() && self.types.is_empty() && self.tags.is_empty() && self.biz_codes.is_empty());
        any && (self.ids.is_empty() || self.ids.contains(&a.activity_id))
            && (self.types.is_empty() || self.types.contains(&a.activity_type))
            && (self.tags.is_empty() || a.tags().any(|t| self.tags.contains(t)))
            && (self.biz_codes.is_empty() || self.biz_codes.contains(a.biz_code.trim()))
    }
}

impl KeyRules {
    pub fn from_config(c: &KeyActivitiesConfig) -> KeyRules {
        KeyRules { rules: c.rules.iter().map(Rule::from_config).collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The index of the first rule (`key_activities.rules[i]`) that makes `a` key.
    pub fn matched_by(&self, a: &ActivityMeta) -> Option<usize> {
        self.rules.iter().position(|r| r.matches(a))
    }
}

/// A key activity as the refresher last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyActivity {
    pub meta: ActivityMeta,
    /// Index of the rule that made it key.
    pub rule: usize,
}

impl KeyActivity {
    /// Whether a live sweep is due at `now_ms`: the activity is online, `now_ms` lies in
    /// `[start - lead, end]`, and the last sweep (if any) started `interval_ms` or more ago.
    pub fn sweep_due(&self, now_ms: i64, last_swept_ms: Option<i64>, lead_ms: i64, interval_ms: i64) -> bool {
        self.in_sweep_window(now_ms, lead_ms) && last_swept_ms.is_none_or(|t| now_ms.saturating_sub(t) >= interval_ms)
    }

    /// Online and within `[start - lead, end]`.
    pub fn in_sweep_window(&self, now_ms: i64, lead_ms: i64) -> bool {
        self.meta.status == 1 && now_ms >= self.meta.start_ms.saturating_sub(lead_ms) && now_ms <= self.meta.end_ms
    }
}

/// Which activities are key, and which goods belong to one.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    activities: BTreeMap<ActivityId, KeyActivity>,
    goods: HashSet<GoodsId>,
    /// When the set was read (epoch ms); 0: never.
    pub refreshed_ms: i64,
}

impl KeySet {
    /// The key activities among `rows`; goods are added with [`add_goods`](Self::add_goods).
    pub fn build(rules: &KeyRules, rows: impl IntoIterator<Item = ActivityMeta>, refreshed_ms: i64) -> KeySet {
        let activities = rows
            .into_iter()
            .filter_map(|meta| rules.matched_by(&meta).map(|rule| (meta.activity_id, KeyActivity { meta, rule })))
            .collect();
        KeySet { activities, goods: HashSet::new(), refreshed_ms }
    }

    pub fn add_goods(&mut self, goods: &[GoodsId]) {
        self.goods.extend(goods.iter().copied());
    }

    pub fn activity(&self, id: ActivityId) -> Option<&KeyActivity> {
        self.activities.get(&id)
    }

    pub fn activities(&self) -> impl Iterator<Item = &KeyActivity> {
        self.activities.values()
    }

    pub fn is_key_goods(&self, goods_id: GoodsId) -> bool {
        self.goods.contains(&goods_id)
    }

    pub fn goods_count(&self) -> usize {
        self.goods.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ActivityTypeRef;

    fn meta(id: u64, ty: i64, biz: &str, tags: &str) -> ActivityMeta {
        ActivityMeta {
            activity_id: id,
            activity_type: ty,
            biz_code: biz.into(),
            tags: tags.into(),
            status: 1,
            start_ms: 10_000,
            end_ms: 20_000,
        }
    }

    fn rules(rules: Vec<KeyRuleConfig>) -> KeyRules {
        KeyRules::from_config(&KeyActivitiesConfig { rules, ..Default::default() })
    }

    #[test]
    fn by_id_type_tag_and_biz_code() {
        let r = rules(vec![
            KeyRuleConfig { ids: vec![7001], ..Default::default() },
            KeyRuleConfig { types: vec![ActivityTypeRef::Name("seckill".into())], ..Default::default() },
            KeyRuleConfig { tags: vec!["618".into()], ..Default::default() },
            KeyRuleConfig { biz_codes: vec!["bn-subsidy".into()], ..Default::default() },
        ]);
        assert_eq!(r.matched_by(&meta(7001, 1, "main", "")), Some(0));
        assert_eq!(r.matched_by(&meta(8, 2, "main", "")), Some(1));
        assert_eq!(r.matched_by(&meta(9, 1, "main", "hot, 618")), Some(2), "tags are split and trimmed");
        assert_eq!(r.matched_by(&meta(10, 3, "bn-subsidy", "")), Some(3));
        assert_eq!(r.matched_by(&meta(11, 1, "main", "6180,hot")), None, "a tag matches whole");
    }

    #[test]
    fn fields_of_one_rule_combine_with_and() {
        let r = rules(vec![KeyRuleConfig {
            types: vec![ActivityTypeRef::Code(2)],
            tags: vec!["618".into(), "1111".into()],
            ..Default::default()
        }]);
        assert_eq!(r.matched_by(&meta(1, 2, "main", "1111")), Some(0));
        assert_eq!(r.matched_by(&meta(2, 2, "main", "hot")), None);
        assert_eq!(r.matched_by(&meta(3, 1, "main", "618")), None);
        assert_eq!(rules(vec![KeyRuleConfig::default()]).matched_by(&meta(1, 2, "m", "")), None, "empty rule");
    }

    #[test]
    fn key_set_holds_key_activities_and_their_goods() {
        let r = rules(vec![KeyRuleConfig { tags: vec!["618".into()], ..Default::default() }]);
        let mut set = KeySet::build(&r, [meta(1, 2, "m", "618"), meta(2, 2, "m", "")], 5);
        assert!(set.activity(1).is_some() && set.activity(2).is_none());
        set.add_goods(&[1001, 1002]);
        assert!(set.is_key_goods(1001) && !set.is_key_goods(1003));
        assert_eq!((set.activities().count(), set.goods_count(), set.refreshed_ms), (1, 2, 5));
    }

    #[test]
    fn sweeps_run_from_the_lead_time_to_the_end_every_interval() {
        let a = KeyActivity { meta: meta(1, 2, "m", ""), rule: 0 };
        assert!(!a.sweep_due(8_999, None, 1000, 500), "before the lead time");
        assert!(a.sweep_due(9_000, None, 1000, 500), "from start - lead");
        assert!(a.sweep_due(20_000, Some(19_500), 1000, 500), "until the end");
        assert!(!a.sweep_due(20_001, None, 1000, 500), "not after it");
        assert!(!a.sweep_due(15_000, Some(14_600), 1000, 500), "within the interval");
        let mut offline = a.clone();
        offline.meta.status = 2;
        assert!(!offline.sweep_due(15_000, None, 1000, 500), "only online activities");
        assert_eq!(type_code("seckill"), Some(2));
        assert_eq!(type_code("7"), Some(7));
        assert_eq!(type_code("flash"), None);
    }
}
