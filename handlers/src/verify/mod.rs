//! The price verifier's IO (contract section 10): for a batch of pricing samples, read
//! truth once (one query per shard table per batch, through [`TruthReader`]) and what each
//! sample's source target holds now (one batched [`Target::read`] per source), then judge
//! every sample with the pure [`model::pricing::judge`].
//!
//! Nothing is written here: a `stale_source` judgement says `check_goods`, and the caller
//! publishes a check job so the data path repairs the goods.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use futures::future::try_join_all;
use model::diff::parse_qualifier;
use model::pricing::{judge, Judgement, Sample, SourceView};
use model::{ActivityId, Entity, GoodsId, ObservedGoods};

use crate::error::StoreError;
use crate::stores::Target;
use crate::truth::TruthReader;

/// The decodable entities a target holds for one goods, by activity id.
pub type Held = BTreeMap<ActivityId, Entity>;

pub struct Verifier {
    truth: TruthReader,
    targets: BTreeMap<String, Arc<dyn Target>>,
}

impl Verifier {
    pub fn new(truth: TruthReader, targets: &[Arc<dyn Target>]) -> Verifier {
        Verifier { truth, targets: targets.iter().map(|t| (t.name().to_string(), t.clone())).collect() }
    }

    /// Names of the configured targets (the values a sample's `source` may take).
    pub fn target_names(&self) -> impl Iterator<Item = &str> {
        self.targets.keys().map(String::as_str)
    }

    /// Judges every sample, in order. `Err` when truth or a named source target cannot
    /// be read: the whole batch is then to be retried (nothing was judged).
    pub async fn verify(&self, samples: &[Sample]) -> Result<Vec<Judgement>, StoreError> {
        let goods: Vec<GoodsId> = samples.iter().map(|s| s.goods_id).collect::<BTreeSet<_>>().into_iter().collect();
        let mut by_source: BTreeMap<&str, BTreeSet<GoodsId>> = BTreeMap::new();
        for s in samples {
            if let Some(name) = s.source().filter(|n| self.targets.contains_key(*n)) {
                by_source.entry(name).or_default().insert(s.goods_id);
            }
        }
        let reads = try_join_all(by_source.into_iter().map(|(name, ids)| async move {
            let ids: Vec<GoodsId> = ids.into_iter().collect();
            let observed = self.targets[name].read(&ids).await?;
            let held: HashMap<GoodsId, Held> = ids.into_iter().zip(observed.iter().map(decode_held)).collect();
            Ok::<_, StoreError>((name, held))
        }));
        let (truth, sources) = tokio::try_join!(self.truth.read(&goods), reads)?;
        let sources: HashMap<&str, HashMap<GoodsId, Held>> = sources.into_iter().collect();
        Ok(samples
            .iter()
            .map(|s| {
                let view = match s.source() {
                    None => SourceView::Absent,
                    Some(name) => match sources.get(name).and_then(|h| h.get(&s.goods_id)) {
                        Some(held) => SourceView::Held(held),
                        None => SourceView::Unknown(name),
                    },
                };
                judge(s, &truth[&s.goods_id], &view)
            })
            .collect())
    }
}

/// The entities a target holds for one goods; cells whose qualifier is not an activity
/// id or whose value does not decode are left out (the service could not price from them).
pub fn decode_held(observed: &ObservedGoods) -> Held {
    observed
        .cells
        .iter()
        .filter_map(|(q, cell)| {
            let aid = parse_qualifier(q)?;
            Entity::decode(&cell.value).ok().filter(|e| e.aid == aid).map(|e| (aid, e))
        })
        .collect()
}
