//! The activity fan-out pages through every shard table with bounded pages.

mod common;

use std::collections::BTreeSet;

use ::common::mysql::pager::ActivityGoodsPager;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_fans_out_to_every_goods_of_every_shard_in_bounded_pages() {
    let truth = Truth::create().await;
    let goods: BTreeSet<u64> = (5001..=5025).collect();
    for &g in &goods {
        truth.insert_goods(9001, g, "NOW(3)").await;
    }
    for g in [5001, 5002, 6000] {
        truth.insert_goods(9002, g, "NOW(3)").await; // other activity, same goods too
    }
    let pools = truth.pools();
    let mut pager = ActivityGoodsPager::new(&pools, 9001, 4);
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(page) = pager.next_page().await.unwrap() {
        assert!(!page.is_empty() && page.len() <= 4, "page of {}", page.len());
        pages += 1;
        seen.extend(page);
    }
    assert_eq!(seen.len(), 25, "each goods once");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), goods);
    assert!(pages >= 7, "25 goods over 4 shards in pages of 4: {pages}");
    assert!(ActivityGoodsPager::new(&pools, 424242, 4).next_page().await.unwrap().is_none());
    truth.drop_all().await;
}
