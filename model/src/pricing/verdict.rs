//! The verdict on one sample (contract section 10): the rule applied to truth against the
//! service's answer, the cause of a mismatch, and `wrong_drop` findings.
//!
//! Order of judgement:
//! 1. *Inconclusive* when truth moved after the sample: any row of the goods (any status,
//!    and the activities it references) has `updated_at` newer than `at_ms`
//!    ([`Inconclusive::TruthChanged`]); or an activity the sample names has no
//!    `activity_goods` row (or no `activity` row) any more, or the source holds an entity
//!    of it with a `ver` newer than truth's (a SKU row was deleted): rows were removed
//!    physically, which leaves no time behind, so truth at `at_ms` is unknown
//!    ([`Inconclusive::RowRemoved`]).
//! 2. The rule on truth gives the expected answer; equal to the service's: `match`.
//!    Otherwise `wrong_price` (same activity), `wrong_activity` (another one),
//!    `missed_activity` (the service gave none) or `phantom_activity` (the rule gives none).
//! 3. Cause of a mismatch: `stale_source` when the rule applied to what the sample's source
//!    target holds now reproduces the service's answer, else `logic` (also when the
//!    source is not a configured target, or not named: then with a note).
//! 4. `wrong_drop`: the rule's winner is among the activities the service dropped.

use std::collections::BTreeMap;

use super::rule::{winner, Pick, Query};
use super::sample::{Dropped, Sample};
use crate::entity::Entity;
use crate::ids::ActivityId;
use crate::projection::GoodsTruth;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    Match,
    WrongPrice,
    WrongActivity,
    MissedActivity,
    PhantomActivity,
    Inconclusive,
}

impl Verdict {
    pub const ALL: [Verdict; 6] = [
        Verdict::Match,
        Verdict::WrongPrice,
        Verdict::WrongActivity,
        Verdict::MissedActivity,
        Verdict::PhantomActivity,
        Verdict::Inconclusive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::WrongPrice => "wrong_price",
            Verdict::WrongActivity => "wrong_activity",
            Verdict::MissedActivity => "missed_activity",
            Verdict::PhantomActivity => "phantom_activity",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// Neither `match` nor `inconclusive`.
    pub fn is_mismatch(self) -> bool {
        !matches!(self, Verdict::Match | Verdict::Inconclusive)
    }

    /// Compares the service's answer with the rule's.
    pub fn of(answer: Option<Pick>, expected: Option<Pick>) -> Verdict {
        match (answer, expected) {
            (a, e) if a == e => Verdict::Match,
            (Some(a), Some(e)) if a.activity_id == e.activity_id => Verdict::WrongPrice,
            (Some(_), Some(_)) => Verdict::WrongActivity,
            (None, Some(_)) => Verdict::MissedActivity,
            (Some(_), None) => Verdict::PhantomActivity,
            (None, None) => unreachable!("equal answers are a match"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// The pricing code is wrong: a human must look.
    Logic,
    /// The derived data the service read drifted: check and repair the goods.
    StaleSource,
}

impl Cause {
    pub const ALL: [Cause; 2] = [Cause::Logic, Cause::StaleSource];

    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Logic => "logic",
            Cause::StaleSource => "stale_source",
        }
    }
}

/// Why a sample is inconclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Inconclusive {
    TruthChanged,
    RowRemoved,
}

impl Inconclusive {
    pub const ALL: [Inconclusive; 2] = [Inconclusive::TruthChanged, Inconclusive::RowRemoved];

    pub fn as_str(self) -> &'static str {
        match self {
            Inconclusive::TruthChanged => "truth_changed",
            Inconclusive::RowRemoved => "row_removed",
        }
    }
}

/// What the sample's source target holds for the goods now.
#[derive(Debug, Clone, Copy)]
pub enum SourceView<'a> {
    /// The sample names no source.
    Absent,
    /// The sample names a target that is not configured.
    Unknown(&'a str),
    /// The decodable entities the target holds, by activity id (undecodable cells left out:
    /// the service can not have priced from them either).
    Held(&'a BTreeMap<ActivityId, Entity>),
}

impl SourceView<'_> {
    fn entity(&self, aid: ActivityId) -> Option<&Entity> {
        match self {
            SourceView::Held(held) => held.get(&aid),
            _ => None,
        }
    }
}

/// The activity a sample is counted under in the dimensions (type, business code, tags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub kind: i32,
    pub biz: String,
    pub tags: Vec<String>,
}

impl Subject {
    fn of(e: &Entity) -> Subject {
        Subject { kind: e.kind, biz: e.biz.to_string(), tags: e.tags.to_vec() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    /// Set for mismatches.
    pub cause: Option<Cause>,
    /// Set for `inconclusive`.
    pub inconclusive: Option<Inconclusive>,
    /// What the rule gives on truth (`None` for inconclusive samples and when nothing applies).
    pub expected: Option<Pick>,
    /// Dropped activities the rule says win.
    pub wrong_drops: Vec<Dropped>,
    /// Human-readable detail (unknown source, which row changed, ...).
    pub note: Option<String>,
    /// The goods should get a check job: its source target differs from truth in a way
    /// that explains the answer (`stale_source`), or still holds a removed activity.
    pub check_goods: bool,
    /// The activity the sample is counted under: the rule's winner, else the service's
    /// answer (as truth or the source knows it); `None` when there is neither.
    pub subject: Option<Subject>,
    /// The price the sample is banded by: the rule's, else the service's.
    pub band_price: Option<i64>,
    /// Activity type of each of the context's dropped activities, in order (truth's, else
    /// the source's; `None` when neither knows the activity).
    pub dropped_kinds: Vec<Option<i32>>,
}

/// Judges one sample against its goods' truth and what its source target holds.
pub fn judge(sample: &Sample, truth: &GoodsTruth, source: &SourceView<'_>) -> Judgement {
    let query = Query { sku_id: sample.sku_id, at_ms: sample.at_ms, member: sample.member };
    let known = |aid: ActivityId| truth.entities.get(&aid).or_else(|| source.entity(aid));
    let dropped_kinds =
        sample.context.iter().flat_map(|c| c.dropped.iter()).map(|d| known(d.aid).map(|e| e.kind)).collect();
    let mut j = Judgement {
        verdict: Verdict::Inconclusive,
        cause: None,
        inconclusive: None,
        expected: None,
        wrong_drops: Vec::new(),
        note: None,
        check_goods: false,
        subject: sample.answer.and_then(|a| known(a.activity_id)).map(Subject::of),
        band_price: sample.answer.map(|a| a.price),
        dropped_kinds,
    };

    if truth.last_change_ms > sample.at_ms {
        j.inconclusive = Some(Inconclusive::TruthChanged);
        j.note = Some(format!(
            "truth of the goods changed at {} ms, after the sample's {} ms",
            truth.last_change_ms, sample.at_ms
        ));
        return j;
    }
    if let Some(removed) = removed_activity(sample, truth, source) {
        j.inconclusive = Some(Inconclusive::RowRemoved);
        j.note = Some(format!("activity {removed} lost rows for the goods since (physically removed): truth at the sample's time is unknown"));
        j.check_goods = source_holds_removed(truth, source);
        return j;
    }

    let expected = winner(truth.entities.values(), &query);
    j.expected = expected;
    j.verdict = Verdict::of(sample.answer, expected);
    if let Some(e) = expected {
        j.subject = Some(Subject::of(&truth.entities[&e.activity_id]));
        j.band_price = Some(e.price);
        j.wrong_drops =
            sample.context.iter().flat_map(|c| c.dropped.iter()).filter(|d| d.aid == e.activity_id).cloned().collect();
    }
    if j.verdict.is_mismatch() {
        let (cause, note) = match source {
            SourceView::Held(held) if winner(held.values(), &query) == sample.answer => (Cause::StaleSource, None),
            SourceView::Held(_) => (Cause::Logic, None),
            SourceView::Unknown(name) => (Cause::Logic, Some(format!("source `{name}` is not a configured target"))),
            SourceView::Absent => (Cause::Logic, Some("the sample names no source target".to_string())),
        };
        j.cause = Some(cause);
        j.note = note;
        j.check_goods = cause == Cause::StaleSource;
    }
    j
}

/// An activity the sample names whose truth rows are gone, or whose entity in the source
/// is newer than truth's (a SKU row deleted since).
fn removed_activity(sample: &Sample, truth: &GoodsTruth, source: &SourceView<'_>) -> Option<ActivityId> {
    sample.named_activities().find(|aid| {
        !truth.present.contains(aid)
            || matches!((source.entity(*aid), truth.entities.get(aid)), (Some(s), Some(t)) if s.ver > t.ver)
    })
}

fn source_holds_removed(truth: &GoodsTruth, source: &SourceView<'_>) -> bool {
    match source {
        SourceView::Held(held) => held
            .iter()
            .any(|(aid, e)| !truth.present.contains(aid) || truth.entities.get(aid).is_some_and(|t| e.ver > t.ver)),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
