//! `Entity::encode` is written by hand for speed; it must stay byte for byte what
//! serde_json writes for the derived `Serialize` (the contract's canonical encoding), for
//! any entity: strings with quotes, backslashes, control and non-ASCII characters,
//! numbers at their extremes, empty and long lists.

use model::diff::Heads;
use model::Entity;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_]{0,12}",
        any::<String>(),
        proptest::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('\n'),
                Just('\u{1}'),
                Just('\u{7f}'),
                Just('é'),
                Just('/'),
                any::<char>()
            ],
            0..8
        )
        .prop_map(|cs| cs.into_iter().collect()),
    ]
}

fn entity() -> impl Strategy<Value = Entity> {
    (
        (any::<u64>(), any::<i32>(), text(), proptest::collection::vec(text(), 0..4), any::<i32>()),
        (any::<i64>(), any::<i64>(), any::<i64>(), any::<i32>()),
        (proptest::collection::vec((any::<u64>(), any::<i64>()), 0..5), any::<i64>()),
    )
        .prop_map(|((aid, kind, biz, tags, prio), (start, end, price, limit), (skus, ver))| Entity {
            aid,
            kind,
            biz: biz.into(),
            tags: tags.into(),
            prio,
            start,
            end,
            price,
            limit,
            skus,
            ver,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn hand_written_encoding_is_serde_jsons(e in entity()) {
        let ours = e.encode();
        let serde = serde_json::to_vec(&e).unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&serde));
        prop_assert_eq!(Entity::decode(&ours).unwrap(), e);
    }

    /// Encoding through the head memo gives the same bytes as `encode`, entity after
    /// entity, when activities repeat with the same head and when an activity's head
    /// fields changed between two entities (few aids, so both happen often).
    #[test]
    fn heads_from_the_memo_encode_as_encode_does(
        es in proptest::collection::vec((0u64..4, entity(), any::<bool>()), 1..40)
    ) {
        let mut heads = Heads::default();
        let mut last: std::collections::HashMap<u64, Entity> = Default::default();
        for (aid, e, same_head) in es {
            // Half the time the previous entity of this activity with new goods fields:
            // the memo's head is reused.
            let e = match last.get(&aid) {
                Some(prev) if same_head => Entity { price: e.price, limit: e.limit, skus: e.skus.clone(), ver: e.ver, ..prev.clone() },
                _ => Entity { aid, ..e },
            };
            let (memo, plain) = (heads.encode(&e), e.encode());
            prop_assert_eq!(String::from_utf8_lossy(&memo), String::from_utf8_lossy(&plain));
            last.insert(aid, e);
        }
        prop_assert!(heads.len() <= 4);
    }
}

/// The memo starts over past its capacity, and an entity whose activity changed (one head
/// field) is encoded with its own head, not the one held.
#[test]
fn a_changed_head_is_encoded_again_and_the_memo_is_bounded() {
    let base = Entity {
        aid: 7,
        kind: 1,
        biz: "shop".into(),
        tags: vec!["a".to_string()].into(),
        prio: 3,
        start: 1_700_000_000_000,
        end: 1_800_000_000_000,
        price: 990,
        limit: 0,
        skus: vec![(1, 900)],
        ver: 1_750_000_000_000,
    };
    let mut heads = Heads::default();
    assert_eq!(heads.encode(&base), base.encode());
    for changed in [
        Entity { end: base.end + 1, ..base.clone() },
        Entity { biz: "other".into(), ..base.clone() },
        Entity { tags: vec![].into(), ..base.clone() },
        Entity { kind: 2, ..base.clone() },
        Entity { prio: 4, ..base.clone() },
        Entity { start: 0, ..base.clone() },
    ] {
        assert_eq!(heads.encode(&changed), changed.encode());
        assert_eq!(heads.encode(&base), base.encode());
    }
    for aid in 0..Heads::CAPACITY as u64 + 5 {
        let e = Entity { aid, ..base.clone() };
        assert_eq!(heads.encode(&e), e.encode());
    }
    assert!(heads.len() <= Heads::CAPACITY, "{}", heads.len());
}
