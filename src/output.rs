//! What operators read: the report as a short readable text, or one JSON document.

use std::fmt::Write;

use model::report::Report;
use model::DriftKind;

/// Rows of each list printed before "… and N more".
const LIST_LIMIT: usize = 40;

pub fn json(report: &Report) -> String {
    serde_json::to_string(report).expect("report serialization cannot fail")
}

pub fn human(report: &Report) -> String {
    let mut out = String::new();
    let secs = report.elapsed_ms as f64 / 1000.0;
    let _ = writeln!(
        out,
        "checked {} goods in {secs:.2} s: {} drifted goods, {} drift entries, {} repaired, {} deferred{}",
        report.checked,
        report.drifted_goods,
        report.drift.len(),
        report.repairs.len(),
        report.deferred.len(),
        if report.dry_run { " (dry run: nothing written)" } else { "" }
    );
    if !report.drift.is_empty() {
        let mut targets: Vec<&str> = report.drift.iter().map(|d| d.target.as_str()).collect();
        targets.sort_unstable();
        targets.dedup();
        let _ = writeln!(out, "drift by target and kind:");
        let _ = write!(out, "  {:<12}", "target");
        for k in DriftKind::ALL {
            let _ = write!(out, "{:>9}", k.as_str());
        }
        let _ = writeln!(out);
        for t in targets {
            let _ = write!(out, "  {t:<12}");
            for k in DriftKind::ALL {
                let n = report.drift.iter().filter(|d| d.target == t && d.kind == k).count();
                let _ = write!(out, "{n:>9}");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "drift:");
        for d in report.drift.iter().take(LIST_LIMIT) {
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
        more(&mut out, report.drift.len());
    }
    if !report.repairs.is_empty() {
        let _ = writeln!(out, "repairs:");
        for r in report.repairs.iter().take(LIST_LIMIT) {
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
        more(&mut out, report.repairs.len());
    }
    if !report.deferred.is_empty() {
        let _ = writeln!(out, "deferred:");
        for d in report.deferred.iter().take(LIST_LIMIT) {
            let _ = writeln!(out, "  goods {:<10} {:<10} {}", d.goods_id, d.target, d.reason);
        }
        more(&mut out, report.deferred.len());
    }
    if !report.unknown_goods.is_empty() {
        let ids: Vec<String> = report.unknown_goods.iter().take(LIST_LIMIT).map(u64::to_string).collect();
        let _ = writeln!(out, "unknown goods (no truth rows, no derived data): {}", ids.join(", "));
    }
    if let Some(h) = &report.halted {
        let _ = writeln!(out, "HALTED: {h}");
    }
    if !report.unreachable.is_empty() {
        let _ = writeln!(out, "UNREACHABLE: {}", report.unreachable.join(", "));
    }
    out
}

fn more(out: &mut String, n: usize) {
    if n > LIST_LIMIT {
        let _ = writeln!(out, "  … and {} more", n - LIST_LIMIT);
    }
}
