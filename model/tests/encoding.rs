//! `Entity::encode` is written by hand for speed; it must stay byte for byte what
//! serde_json writes for the derived `Serialize` (the contract's canonical encoding), for
//! any entity: strings with quotes, backslashes, control and non-ASCII characters,
//! numbers at their extremes, empty and long lists.

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
}
