//! Memory per goods of the store, for the benchmark's data: loads N synthetic goods the
//! way the benchmark seeds them (row `{4 hex}_{goods_id}`, family `a` with 3 versions,
//! 1-5 qualifiers of decimal activity ids, ~150-250 byte JSON values, one
//! `mutateRowsTs` per timestamp and batch of 500 goods) straight into a [`Store`], then
//! prints live heap bytes and allocations per goods (a counting global allocator around
//! mimalloc, the reconciler binary's allocator, with its options) and VmRSS / VmHWM per
//! goods from /proc.
//!
//! `cargo run --release -p hbase-emulator --example memory -- 1000000`

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use hbase_emulator::store::{FamilySpec, Op, RowMutation, Store};

struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_ALLOCS: AtomicI64 = AtomicI64::new(0);
/// Live allocations by requested size (the last slot: 1 KiB and above), the profile of
/// where the bytes go.
static BY_SIZE: [AtomicI64; 1025] = [const { AtomicI64::new(0) }; 1025];

fn count(size: usize, n: i64) {
    LIVE_BYTES.fetch_add(size as i64 * n, Relaxed);
    LIVE_ALLOCS.fetch_add(n, Relaxed);
    BY_SIZE[size.min(1024)].fetch_add(n, Relaxed);
}

// SAFETY: forwards every call to mimalloc unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size(), 1);
        mimalloc::MiMalloc.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count(l.size(), 1);
        mimalloc::MiMalloc.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(l.size(), -1);
        mimalloc::MiMalloc.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(l.size(), -1);
        count(new, 1);
        mimalloc::MiMalloc.realloc(p, l, new)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

extern "C" {
    fn mi_option_set(option: std::os::raw::c_int, value: std::os::raw::c_long);
}

/// splitmix64, as the benchmark's data generator.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The cells of one goods: (qualifier, value, timestamp), like the benchmark's entities.
fn goods(id: u64) -> Vec<(Vec<u8>, Vec<u8>, i64)> {
    let mut r = mix(id);
    let mut next = || {
        r = mix(r);
        r
    };
    let n = 1 + next() % 5;
    (0..n)
        .map(|_| {
            let aid = 100_001 + next() % 5000;
            let skus: Vec<String> =
                (0..next() % 4).map(|k| format!("[{},{}]", id * 8 + k, 100 + next() % 9900)).collect();
            let ver = 1_781_700_000_000 - (next() % 16) as i64 * 60_000;
            let value = format!(
                r#"{{"aid":{aid},"type":{},"biz":"main","tags":["618","hot"],"prio":{},"start":1781613600000,"end":1782477599000,"price":{},"limit":{},"skus":[{}],"ver":{ver}}}"#,
                1 + next() % 4,
                next() % 10 * 10,
                100 + next() % 99_900,
                next() % 5,
                skus.join(",")
            );
            (aid.to_string().into_bytes(), value.into_bytes(), ver)
        })
        .collect()
}

fn proc_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    // The reconciler binary's mimalloc options (src/main.rs).
    // SAFETY: mimalloc's documented option setter, before any other thread starts.
    unsafe {
        mi_option_set(4, 0); // arena_eager_commit
        mi_option_set(15, 0); // purge_delay
    }
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let store = Store::new();
    let spec = FamilySpec {
        max_versions: 3,
        compression: "NONE".into(),
        in_memory: false,
        bloom_filter_type: "NONE".into(),
        block_cache_enabled: false,
        time_to_live: i32::MAX,
    };
    store.create_table(b"goods", BTreeMap::from([(b"a".to_vec(), spec)])).unwrap();
    let (rss0, bytes0, allocs0) = (proc_kb("VmRSS:"), LIVE_BYTES.load(Relaxed), LIVE_ALLOCS.load(Relaxed));
    let sizes0: Vec<i64> = BY_SIZE.iter().map(|c| c.load(Relaxed)).collect();
    let (mut payload, mut cells) = (0u64, 0u64);
    let started = std::time::Instant::now();
    for first in (1..=n).step_by(500) {
        let mut by_ts: BTreeMap<i64, Vec<RowMutation>> = BTreeMap::new();
        for id in first..(first + 500).min(n + 1) {
            let row = format!("{:04x}_{id}", mix(id) & 0xffff).into_bytes();
            payload += row.len() as u64;
            for (qualifier, value, ts) in goods(id) {
                payload += (qualifier.len() + value.len()) as u64;
                cells += 1;
                let op = Op::Put { family: b"a".to_vec(), qualifier, value };
                let batch = by_ts.entry(ts).or_default();
                match batch.last_mut() {
                    Some(m) if m.row == row => m.ops.push(op),
                    _ => batch.push(RowMutation { row: row.clone(), ops: vec![op] }),
                }
            }
        }
        for (ts, batch) in by_ts {
            store.mutate_rows(b"goods", &batch, ts).unwrap();
        }
    }
    let elapsed = started.elapsed();
    let (rss, hwm) = (proc_kb("VmRSS:"), proc_kb("VmHWM:"));
    let bytes = LIVE_BYTES.load(Relaxed) - bytes0;
    let allocs = LIVE_ALLOCS.load(Relaxed) - allocs0;
    let per = |v: f64| v / n as f64;
    println!("{n} goods, {cells} cells ({:.2} per goods), loaded in {:.1} s", per(cells as f64), elapsed.as_secs_f64());
    println!("payload (row key + qualifiers + values): {:.0} B/goods", per(payload as f64));
    println!(
        "live heap (requested):                   {:.0} B/goods in {:.2} allocations/goods",
        per(bytes as f64),
        per(allocs as f64)
    );
    println!(
        "VmRSS growth:                            {:.0} B/goods (VmRSS {} MB)",
        per((rss - rss0) as f64 * 1024.0),
        rss / 1024
    );
    println!(
        "VmHWM:                                   {:.0} B/goods (VmHWM {} MB)",
        per(hwm as f64 * 1024.0),
        hwm / 1024
    );
    let mut sizes: Vec<(usize, i64)> =
        BY_SIZE.iter().zip(&sizes0).map(|(c, s0)| c.load(Relaxed) - s0).enumerate().filter(|(_, c)| *c > 0).collect();
    sizes.sort_by_key(|&(size, c)| -(size as i64 * c));
    println!("largest shares of the live heap (requested size: allocations/goods, B/goods):");
    for (size, c) in sizes.iter().take(8) {
        let label = if *size == 1024 { ">=1024".to_string() } else { size.to_string() };
        println!("  {label:>6} B: {:.2}/goods, {:.0} B/goods", per(*c as f64), per((*size as i64 * c) as f64));
    }
    // Keep the store alive until the figures are taken.
    drop(store);
}
