//! What operators read: the report as a short readable text, or one JSON document.
//!
//! Runs stream their entries into a [`Spool`] batch by batch, so memory does not grow
//! with the drift (a wiped target at millions of goods): up to [`HELD_ENTRIES`] entries
//! are held in memory, and the output is then exactly as if the report held them all
//! (sorted by target, goods and activity). Past that, entries go to JSON-lines files:
//!
//! - `--json` writes one streamed JSON document with the contract's keys (`checked`,
//!   `drift`, `repairs`, `deferred`, `unreachable`, and the others), the lists in the
//!   order the entries were found, copied from the files, which are then removed;
//! - the human report shows the counts, the drift table and the first entries of each
//!   list, and the directory holding the full lists (`drift.jsonl`, `repairs.jsonl`,
//!   `deferred.jsonl`, `unknown_goods.jsonl`, `errors.jsonl`), which is kept. (A human
//!   report of a run held in memory writes that directory too when a list is longer
//!   than the 40 entries it shows.)

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use handlers::run::EntrySink;
use model::report::{Entries, Report};
use model::DriftKind;
use serde::Serialize;

/// Rows of each list printed before "… and N more".
const LIST_LIMIT: usize = 40;
/// Entries held in memory before a run's lists go to files.
pub const HELD_ENTRIES: usize = 20_000;

const LISTS: [&str; 5] = ["drift", "repairs", "deferred", "unknown_goods", "errors"];

pub fn json(report: &Report) -> String {
    serde_json::to_string(report).expect("report serialization cannot fail")
}

fn len(e: &Entries) -> usize {
    e.drift.len() + e.repairs.len() + e.deferred.len() + e.unknown_goods.len() + e.errors.len()
}

/// Entry lists written as JSON lines, one file per list.
struct Files {
    dir: PathBuf,
    writers: Vec<BufWriter<File>>,
}

impl Files {
    fn create(dir: PathBuf) -> std::io::Result<Files> {
        std::fs::create_dir_all(&dir)?;
        let writers = LISTS
            .iter()
            .map(|name| File::create(dir.join(format!("{name}.jsonl"))).map(BufWriter::new))
            .collect::<std::io::Result<_>>()?;
        Ok(Files { dir, writers })
    }

    fn write(&mut self, e: &Entries) -> std::io::Result<()> {
        fn lines<T: Serialize>(w: &mut BufWriter<File>, items: &[T]) -> std::io::Result<()> {
            for item in items {
                serde_json::to_writer(&mut *w, item)?;
                w.write_all(b"\n")?;
            }
            Ok(())
        }
        lines(&mut self.writers[0], &e.drift)?;
        lines(&mut self.writers[1], &e.repairs)?;
        lines(&mut self.writers[2], &e.deferred)?;
        lines(&mut self.writers[3], &e.unknown_goods)?;
        lines(&mut self.writers[4], &e.errors)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writers.iter_mut().try_for_each(|w| w.flush())
    }

    fn path(&self, list: usize) -> PathBuf {
        self.dir.join(format!("{}.jsonl", LISTS[list]))
    }
}

#[derive(Default)]
struct SpoolState {
    held: Entries,
    /// The first entries of each list, for the human report once spilled.
    first: Entries,
    files: Option<Files>,
    error: Option<String>,
}

/// Collects a run's entries: in memory up to a bound, then in files (see the module).
pub struct Spool {
    state: Mutex<SpoolState>,
    dir: PathBuf,
    held_limit: usize,
}

fn keep_first<T: Clone>(first: &mut Vec<T>, items: &[T]) {
    let room = LIST_LIMIT.saturating_sub(first.len());
    first.extend(items.iter().take(room).cloned());
}

impl Spool {
    /// A spool whose files (if any) go to a fresh directory named after `run_id` under
    /// the system's temporary directory.
    pub fn new(run_id: &str) -> Arc<Spool> {
        Spool::with_limit(std::env::temp_dir().join(format!("reconciler-{run_id}")), HELD_ENTRIES)
    }

    pub fn with_limit(dir: PathBuf, held_limit: usize) -> Arc<Spool> {
        Arc::new(Spool { state: Mutex::new(SpoolState::default()), dir, held_limit })
    }

    fn spill(&self, s: &mut SpoolState, e: Entries) {
        if s.error.is_some() {
            return;
        }
        let result = (|| {
            if s.files.is_none() {
                let mut files = Files::create(self.dir.clone())?;
                files.write(&std::mem::take(&mut s.held))?;
                s.files = Some(files);
            }
            s.files.as_mut().expect("created above").write(&e)
        })();
        if let Err(err) = result {
            let msg = format!("writing the run's entries to {}: {err}", self.dir.display());
            tracing::error!("{msg}");
            s.error = Some(msg);
        }
    }

    /// Puts the held entries back into `report` (sorted, as if it had held them all
    /// along) and returns `None`; or, once spilled, returns the files.
    fn finish(&self, report: &mut Report) -> Result<Option<Files>, String> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        match s.files.take() {
            None => {
                let held = std::mem::take(&mut s.held);
                report.streamed = Default::default();
                report.drift = held.drift;
                report.repairs = held.repairs;
                report.deferred = held.deferred;
                report.unknown_goods = held.unknown_goods;
                report.errors = held.errors;
                report.sort();
                Ok(None)
            }
            Some(mut files) => {
                files.flush().map_err(|e| format!("writing the run's entries to {}: {e}", files.dir.display()))?;
                Ok(Some(files))
            }
        }
    }

    /// Prints the run's report (`--json` or human) to stdout.
    pub fn print(&self, report: Report, json_output: bool) -> Result<(), String> {
        let stdout = std::io::stdout();
        let mut out = BufWriter::new(stdout.lock());
        self.write(report, json_output, &mut out)
    }

    /// Writes the run's report (`--json` or human) to `out`.
    pub fn write(&self, mut report: Report, json_output: bool, out: &mut impl Write) -> Result<(), String> {
        let files = self.finish(&mut report)?;
        let io = |e: std::io::Error| format!("writing the report: {e}");
        match (files, json_output) {
            (None, true) => writeln!(out, "{}", json(&report)).map_err(io)?,
            (None, false) if lists_longer_than_shown(&report) => {
                // The full lists go to files, so the report can name them.
                let mut files = Files::create(self.dir.clone()).map_err(io)?;
                let all = Entries {
                    drift: std::mem::take(&mut report.drift),
                    repairs: std::mem::take(&mut report.repairs),
                    deferred: std::mem::take(&mut report.deferred),
                    unknown_goods: std::mem::take(&mut report.unknown_goods),
                    errors: std::mem::take(&mut report.errors),
                };
                files.write(&all).and_then(|()| files.flush()).map_err(io)?;
                report.drift = all.drift;
                report.repairs = all.repairs;
                report.deferred = all.deferred;
                report.unknown_goods = all.unknown_goods;
                report.errors = all.errors;
                write!(out, "{}", human_lists(&report, &entries_of(&report), Some(&files.dir))).map_err(io)?;
            }
            (None, false) => write!(out, "{}", human(&report)).map_err(io)?,
            (Some(files), true) => {
                streamed_json(out, &report, &files).map_err(io)?;
                writeln!(out).map_err(io)?;
                drop(files);
                let _ = std::fs::remove_dir_all(&self.dir);
            }
            (Some(files), false) => {
                let first = std::mem::take(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()).first);
                write!(out, "{}", human_lists(&report, &first, Some(&files.dir))).map_err(io)?;
            }
        }
        out.flush().map_err(io)
    }
}

/// One JSON document, its lists copied line by line from the spool's files.
fn streamed_json(out: &mut impl Write, report: &Report, files: &Files) -> std::io::Result<()> {
    let list = |out: &mut dyn Write, key: &str, i: usize, first: bool| -> std::io::Result<()> {
        write!(out, "{}\"{key}\":[", if first { "" } else { "," })?;
        let reader = BufReader::new(File::open(files.path(i))?);
        for (n, line) in reader.lines().enumerate() {
            if n > 0 {
                out.write_all(b",")?;
            }
            out.write_all(line?.as_bytes())?;
        }
        out.write_all(b"]")
    };
    out.write_all(b"{")?;
    write!(out, "\"checked\":{}", report.checked)?;
    list(out, "drift", 0, false)?;
    list(out, "repairs", 1, false)?;
    list(out, "deferred", 2, false)?;
    write!(out, ",\"unreachable\":{}", js(&report.unreachable))?;
    write!(out, ",\"drifted_goods\":{}", report.drifted_goods)?;
    if report.unknown_count() > 0 {
        list(out, "unknown_goods", 3, false)?;
    }
    if report.error_count() > 0 {
        list(out, "errors", 4, false)?;
    }
    if let Some(h) = &report.halted {
        write!(out, ",\"halted\":{}", js(h))?;
    }
    write!(out, ",\"dry_run\":{},\"elapsed_ms\":{}", report.dry_run, report.elapsed_ms)?;
    write!(
        out,
        ",\"counts\":{{\"drift\":{},\"repairs\":{},\"deferred\":{},\"drift_left\":{}}}",
        report.drift_count(),
        report.repair_count(),
        report.deferred_count(),
        report.drift_left()
    )?;
    out.write_all(b"}")
}

fn js<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("serializable")
}

impl EntrySink for Spool {
    fn accept(&self, e: Entries) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        keep_first(&mut s.first.drift, &e.drift);
        keep_first(&mut s.first.repairs, &e.repairs);
        keep_first(&mut s.first.deferred, &e.deferred);
        keep_first(&mut s.first.unknown_goods, &e.unknown_goods);
        keep_first(&mut s.first.errors, &e.errors);
        if s.files.is_none() && len(&s.held) + len(&e) <= self.held_limit {
            let held = &mut s.held;
            held.drift.extend(e.drift);
            held.repairs.extend(e.repairs);
            held.deferred.extend(e.deferred);
            held.unknown_goods.extend(e.unknown_goods);
            held.errors.extend(e.errors);
            return;
        }
        self.spill(&mut s, e);
    }
}

pub fn human(report: &Report) -> String {
    human_lists(report, &entries_of(report), None)
}

/// The first entries of each list of a report holding them all.
fn entries_of(report: &Report) -> Entries {
    let first = |n: usize| n.min(LIST_LIMIT);
    Entries {
        drift: report.drift[..first(report.drift.len())].to_vec(),
        repairs: report.repairs[..first(report.repairs.len())].to_vec(),
        deferred: report.deferred[..first(report.deferred.len())].to_vec(),
        unknown_goods: report.unknown_goods[..first(report.unknown_goods.len())].to_vec(),
        errors: report.errors[..first(report.errors.len())].to_vec(),
    }
}

fn lists_longer_than_shown(r: &Report) -> bool {
    [r.drift.len(), r.repairs.len(), r.deferred.len(), r.unknown_goods.len(), r.errors.len()]
        .iter()
        .any(|n| *n > LIST_LIMIT)
}

/// The human report from the report's counts and `lists` (all entries, or the first of
/// each list when the full lists are in `full`).
fn human_lists(report: &Report, lists: &Entries, full: Option<&Path>) -> String {
    let mut out = String::new();
    let secs = report.elapsed_ms as f64 / 1000.0;
    let _ = writeln!(
        out,
        "checked {} goods in {secs:.2} s: {} drifted goods, {} drift entries, {} repaired, {} deferred{}",
        report.checked,
        report.drifted_goods,
        report.drift_count(),
        report.repair_count(),
        report.deferred_count(),
        if report.dry_run { " (dry run: nothing written)" } else { "" }
    );
    let table = report.drift_by_target();
    if !table.is_empty() {
        let _ = writeln!(out, "drift by target and kind:");
        let _ = write!(out, "  {:<12}", "target");
        for k in DriftKind::ALL {
            let _ = write!(out, "{:>9}", k.as_str());
        }
        let _ = writeln!(out);
        for (t, counts) in &table {
            let _ = write!(out, "  {t:<12}");
            for n in counts {
                let _ = write!(out, "{n:>9}");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "drift:");
        for d in lists.drift.iter().take(LIST_LIMIT) {
            let activity = d.activity_id.map(|a| format!("activity {a}")).unwrap_or_else(|| "whole goods".into());
            let fields = d.fields.as_ref().map(|f| format!(" ({})", f.join(", "))).unwrap_or_default();
            let _ = writeln!(
                out,
                "  goods {:<10} {:<10} {:<16} {}{fields}",
                d.goods_id,
                d.target,
                activity,
                d.kind.as_str()
            );
        }
        more(&mut out, report.drift_count(), full);
    }
    if report.repair_count() > 0 {
        let _ = writeln!(out, "repairs:");
        for r in lists.repairs.iter().take(LIST_LIMIT) {
            let activity = r.activity_id.map(|a| format!("activity {a}")).unwrap_or_else(|| "-".into());
            let id = r.repair_id.map(|i| format!("repair_id {i}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "  goods {:<10} {:<10} {:<16} {:<8} {id}",
                r.goods_id,
                r.target,
                activity,
                r.kind.as_str()
            );
        }
        more(&mut out, report.repair_count(), full);
    }
    if report.deferred_count() > 0 {
        let _ = writeln!(out, "deferred:");
        for d in lists.deferred.iter().take(LIST_LIMIT) {
            let _ = writeln!(out, "  goods {:<10} {:<10} {}", d.goods_id, d.target, d.reason);
        }
        more(&mut out, report.deferred_count(), full);
    }
    if report.error_count() > 0 {
        let _ = writeln!(out, "could not be checked:");
        for e in lists.errors.iter().take(LIST_LIMIT) {
            let _ =
                writeln!(out, "  goods {:<10} {:<10} {}", e.goods_id, e.target.as_deref().unwrap_or("truth"), e.reason);
        }
        more(&mut out, report.error_count(), full);
    }
    if report.unknown_count() > 0 {
        let ids: Vec<String> = lists.unknown_goods.iter().take(LIST_LIMIT).map(u64::to_string).collect();
        let _ = writeln!(out, "unknown goods (no truth rows, no derived data): {}", ids.join(", "));
        more(&mut out, report.unknown_count(), full);
    }
    if let Some(h) = &report.halted {
        let _ = writeln!(out, "HALTED: {h}");
    }
    if !report.unreachable.is_empty() {
        let _ = writeln!(out, "UNREACHABLE: {}", report.unreachable.join(", "));
    }
    if let Some(dir) = full {
        let _ = writeln!(out, "full lists (JSON lines): {}", dir.display());
    }
    out
}

fn more(out: &mut String, n: u64, full: Option<&Path>) {
    if n > LIST_LIMIT as u64 {
        let where_ = full.map(|d| format!(" (full list in {})", d.display())).unwrap_or_default();
        let _ = writeln!(out, "  … and {} more{where_}", n - LIST_LIMIT as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::report::{DeferredEntry, DriftEntry, RepairEntry};

    fn batch(goods: std::ops::Range<u64>) -> Report {
        let mut r = Report { checked: goods.end - goods.start, ..Default::default() };
        for g in goods {
            r.drift.push(DriftEntry {
                goods_id: g,
                target: "redis-a".into(),
                activity_id: Some(7),
                kind: DriftKind::Missing,
                fields: None,
            });
            if g % 2 == 0 {
                r.repairs.push(RepairEntry {
                    goods_id: g,
                    target: "redis-a".into(),
                    activity_id: Some(7),
                    kind: DriftKind::Missing,
                    repair_id: Some(g),
                });
            } else {
                r.deferred.push(DeferredEntry { goods_id: g, target: "redis-a".into(), reason: "settle".into() });
            }
        }
        r.drifted_goods = r.checked;
        r
    }

    /// Runs batches through a spool holding at most `limit` entries, like a run does.
    fn run(limit: usize, dir: &Path, batches: Vec<Report>) -> (Arc<Spool>, Report) {
        let spool = Spool::with_limit(dir.to_path_buf(), limit);
        let mut total = Report::default();
        for mut b in batches {
            spool.accept(b.take_entries());
            total.merge(b);
        }
        (spool, total)
    }

    #[test]
    fn few_entries_print_exactly_as_an_unstreamed_report() {
        let dir = std::env::temp_dir().join(format!("spool-few-{}", std::process::id()));
        let (spool, total) = run(1000, &dir, vec![batch(10..20), batch(0..10)]);
        let mut out = Vec::new();
        spool.write(total, true, &mut out).unwrap();
        let mut plain = batch(10..20);
        plain.merge(batch(0..10));
        plain.sort();
        assert_eq!(String::from_utf8(out).unwrap().trim(), json(&plain));
        assert!(!dir.exists(), "nothing written to disk");
    }

    #[test]
    fn many_entries_stream_a_json_document_with_the_contract_keys() {
        let dir = std::env::temp_dir().join(format!("spool-many-{}", std::process::id()));
        let (spool, total) = run(50, &dir, (0..10).map(|i| batch(i * 100..i * 100 + 100)).collect());
        assert!(total.drift.is_empty(), "the run's report holds counters only");
        let mut out = Vec::new();
        spool.write(total, true, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["checked"], 1000);
        assert_eq!(v["drift"].as_array().unwrap().len(), 1000);
        assert_eq!(v["repairs"].as_array().unwrap().len(), 500);
        assert_eq!(v["deferred"].as_array().unwrap().len(), 500);
        assert_eq!(v["unreachable"], serde_json::json!([]));
        assert_eq!(v["drift"][999]["goods_id"], 999, "in the order found");
        assert_eq!(v["counts"]["drift_left"], 500);
        assert!(!dir.exists(), "the files are removed once copied");
    }

    #[test]
    fn a_held_report_longer_than_shown_names_its_full_lists_too() {
        let dir = std::env::temp_dir().join(format!("spool-held-{}", std::process::id()));
        let (spool, total) = run(1000, &dir, vec![batch(0..100)]);
        let mut out = Vec::new();
        spool.write(total, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("… and 60 more (full list in"), "{text}");
        assert_eq!(std::fs::read_to_string(dir.join("drift.jsonl")).unwrap().lines().count(), 100);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_human_report_keeps_counts_first_entries_and_the_full_lists() {
        let dir = std::env::temp_dir().join(format!("spool-human-{}", std::process::id()));
        let (spool, total) = run(50, &dir, (0..3).map(|i| batch(i * 100..i * 100 + 100)).collect());
        let mut out = Vec::new();
        spool.write(total, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("checked 300 goods"), "{text}");
        assert!(text.contains(&format!("full lists (JSON lines): {}", dir.display())), "{text}");
        assert!(text.contains("300 drift entries, 150 repaired, 150 deferred"), "{text}");
        assert!(text.contains("… and 260 more (full list in"), "{text}");
        let drift = std::fs::read_to_string(dir.join("drift.jsonl")).unwrap();
        assert_eq!(drift.lines().count(), 300);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
