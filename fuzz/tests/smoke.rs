//! The short run of every fuzz target that CI affords: each body over its committed seeds
//! and `MUTATIONS` deterministic mutations of them (see `mutate`). The long runs are
//! `scripts/fuzz.sh` (libFuzzer, nightly), recorded in RELIABILITY.md.

use fuzz_bodies::mutate::{mutate, Rng};
use fuzz_bodies::{seeds, TARGETS};

const MUTATIONS: usize = 3000;

#[test]
fn every_target_has_a_body_a_fuzz_target_and_seeds() {
    let fuzz_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("libfuzzer");
    for (name, _) in TARGETS {
        assert!(fuzz_dir.join(format!("fuzz_targets/{name}.rs")).is_file(), "fuzz/libfuzzer/fuzz_targets/{name}.rs");
        assert!(!seeds::load(name).is_empty(), "fuzz/seeds/{name}/ is empty");
    }
}

#[test]
fn every_target_survives_its_seeds_and_their_mutations() {
    for (i, (name, body)) in TARGETS.iter().enumerate() {
        let started = std::time::Instant::now();
        let corpus = seeds::load(name);
        for (file, seed) in &corpus {
            run(name, *body, seed, file);
        }
        let mut rng = Rng::new(i as u64 + 1);
        for _ in 0..MUTATIONS {
            let a = &corpus[rng.below(corpus.len())].1;
            let b = &corpus[rng.below(corpus.len())].1;
            let input = mutate(&mut rng, a, b);
            run(name, *body, &input, "a mutation");
        }
        eprintln!("{name}: {} seeds and {MUTATIONS} mutations in {:?}", corpus.len(), started.elapsed());
    }
}

/// Runs one input, naming the target and the input when the body panics.
fn run(target: &str, body: fuzz_bodies::Body, input: &[u8], what: &str) {
    if std::panic::catch_unwind(|| body(input)).is_err() {
        panic!("fuzz target {target} failed on {what}: {:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn thrift_seeds_are_what_the_generator_writes() {
    let committed = seeds::load("thrift");
    let regenerated = seeds::thrift_requests();
    for (name, bytes) in &regenerated {
        let found = committed.iter().find(|(n, _)| n == name);
        assert_eq!(found.map(|(_, b)| b), Some(bytes), "fuzz/seeds/thrift/{name}: run the thrift_seeds example");
    }
}
