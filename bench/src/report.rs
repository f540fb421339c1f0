//! The figures of one benchmark run: printed as a table and written to BENCHMARKS.md
//! (machine, versions, command, figures, accuracy), with the targets of the issue.

use std::fmt::Write as _;

use crate::cpu::CpuUse;
use crate::drift::Accuracy;
use crate::incremental::TARGET_EVENTS_PER_SEC;

/// The CPU rows' label of the process that runs the full reconciliations (the bench).
pub const RUN_PROCESS: &str = "reconciler (in the bench)";
/// The CPU rows' label of the process that runs the raw read floor (the bench).
pub const FLOOR_PROCESS: &str = "floor (in the bench)";

/// BENCHMARKS.md keeps everything from this line on when the benchmark rewrites it.
pub const ANALYSIS_MARKER: &str = "<!-- analysis: kept by the benchmark when it rewrites this file -->";

/// One ladder of the incremental ceiling search, as reported.
#[derive(Debug)]
pub struct Ladder {
    /// Percent of the changes the sync pipeline lost.
    pub lost_percent: u32,
    /// The ceiling and its step, or why there is none.
    pub best: String,
    /// The ceiling is at least 10,000 events/s.
    pub met: bool,
    /// Missed, and the other processes alone leave room for less than the target at
    /// most: that rate ([`Ceiling::beyond_machine`](crate::incremental::Ceiling::beyond_machine)).
    pub beyond_machine: Option<f64>,
    /// Every step's summary, in order.
    pub steps: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Figures {
    pub command: String,
    pub goods: u64,
    pub drift_rate: f64,
    pub seed: Vec<String>,
    pub full_clean: Option<f64>,
    pub full_drift: Option<f64>,
    pub full_recheck: Option<f64>,
    pub floor: Option<f64>,
    /// The floor measured again right after the drift run (the ratio's target is judged
    /// against it).
    pub floor_beside: Option<f64>,
    /// CPU of every process per goods over the clean full run, the drift full run and
    /// the floor: what bounds the rates on a shared machine.
    pub cpu_clean: Option<CpuUse>,
    pub cpu_drift: Option<CpuUse>,
    pub cpu_floor: Option<CpuUse>,
    pub cpu_floor_beside: Option<CpuUse>,
    /// One goods at a time, one worker.
    pub naive: Option<(f64, u64)>,
    /// One goods at a time per worker, as many workers as the full run.
    pub naive_concurrent: Option<(f64, u64)>,
    pub rss_n: Option<(u64, f64)>,
    pub rss_4n: Option<(u64, f64)>,
    pub injected: u64,
    pub accuracy: Option<Accuracy>,
    pub recheck_drift: Option<u64>,
    /// One per ladder of the ceiling search (percent of changes lost), in order.
    pub incremental: Vec<Ladder>,
    /// Peak RSS (VmHWM, kB) of every process of the run: children over their life,
    /// servers since they started.
    pub processes: Vec<(String, u64)>,
    /// `verify --samples`: samples/s, peak RSS kB, samples.
    pub verify_file: Option<(f64, u64, u64)>,
    /// `serve` verifier on Kafka: samples/s, samples.
    pub verify_kafka: Option<(f64, u64)>,
    /// More rows of the table: (figure, value, target) (the distributed-run phase).
    pub extra: Vec<(String, String, String)>,
    pub notes: Vec<String>,
}

fn rate(v: Option<f64>) -> String {
    v.map_or("not measured".into(), |v| format!("{v:.0} goods/s"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// The full run's target column: met or not, and when not, whether the raw read floor of
/// this machine (the best of the run's floor phases) is itself below the target.
fn full_verdict(full_drift: Option<f64>, floor: Option<f64>) -> String {
    let met = full_drift.is_some_and(|v| v >= FULL_TARGET);
    match floor {
        Some(f) if !met && f < FULL_TARGET => {
            format!("{}; the raw read floor is {f:.0} goods/s on this machine", verdict(met))
        }
        _ => verdict(met).to_string(),
    }
}

/// Full reconciliation at 1% drift, goods/s.
const FULL_TARGET: f64 = 40_000.0;

impl Figures {
    pub fn table(&self) -> String {
        let mut t = String::new();
        let first_ratio = ratio(self.full_drift, self.floor);
        let floor_ratio = ratio(self.full_drift, self.floor_beside.or(self.floor));
        let naive_ratio = ratio(self.full_drift, self.naive.map(|n| n.0));
        let _ = writeln!(t, "| figure | value | target |");
        let _ = writeln!(t, "|---|---|---|");
        let _ = writeln!(t, "| goods (N) | {} | |", self.goods);
        let _ = writeln!(t, "| full reconciliation, clean | {} | |", rate(self.full_clean));
        let _ = writeln!(
            t,
            "| full reconciliation, {:.1}% drift | {} | ≥ {FULL_TARGET} goods/s: {} |",
            self.drift_rate * 100.0,
            rate(self.full_drift),
            full_verdict(self.full_drift, self.floor.into_iter().chain(self.floor_beside).reduce(f64::max))
        );
        let _ = writeln!(t, "| full check after repair (clean) | {} | |", rate(self.full_recheck));
        let _ = writeln!(t, "| raw read floor, after the clean run | {} | |", rate(self.floor));
        let _ = writeln!(t, "| raw read floor, after the drift run | {} | |", rate(self.floor_beside));
        let _ = writeln!(
            t,
            "| full (drift) / floor after it (/ floor after the clean run) | {} ({}) | ≥ 0.9: {} |",
            floor_ratio.map_or("-".into(), |r| format!("{r:.3}")),
            first_ratio.map_or("-".into(), |r| format!("{r:.3}")),
            verdict(floor_ratio.is_some_and(|r| r >= 0.9))
        );
        let bound = match (&self.cpu_drift, self.cpu_floor_beside.as_ref().or(self.cpu_floor.as_ref())) {
            (Some(run), Some(floor)) => crate::cpu::ratio_if_own_were_floor(run, RUN_PROCESS, floor, FLOOR_PROCESS),
            _ => None,
        };
        let _ = writeln!(
            t,
            "| full (drift) / floor at most, were the reconciler's own CPU the floor's (the servers' CPU of both phases as measured) | {} | |",
            bound.map_or("not measured".into(), |r| format!("{r:.2}"))
        );
        for (phase, cpu) in [
            ("full reconciliation, clean", &self.cpu_clean),
            (&*format!("full reconciliation, {:.1}% drift", self.drift_rate * 100.0), &self.cpu_drift),
            ("raw read floor, after the clean run", &self.cpu_floor),
            ("raw read floor, after the drift run", &self.cpu_floor_beside),
        ] {
            let value = cpu.as_ref().map_or("not measured".into(), |c| c.describe("goods"));
            let _ = writeln!(t, "| CPU, {phase} | {value} | |");
        }
        let naive_c_ratio = ratio(self.full_drift, self.naive_concurrent.map(|n| n.0));
        let _ = writeln!(
            t,
            "| naive baseline (one goods at a time, 1 worker) | {} | |",
            self.naive.map_or("not measured".into(), |(v, n)| format!("{v:.0} goods/s (sample of {n})"))
        );
        let _ = writeln!(
            t,
            "| full (drift) / naive | {} | ≥ 10: {} |",
            naive_ratio.map_or("-".into(), |r| format!("{r:.1}")),
            verdict(naive_ratio.is_some_and(|r| r >= 10.0))
        );
        let _ = writeln!(
            t,
            "| naive, one goods at a time per worker, full run's worker count | {} | |",
            self.naive_concurrent.map_or("not measured".into(), |(v, n)| format!("{v:.0} goods/s (sample of {n})"))
        );
        let _ = writeln!(
            t,
            "| full (drift) / naive with the same workers | {} | ≥ 15: {} |",
            naive_c_ratio.map_or("-".into(), |r| format!("{r:.1}")),
            verdict(naive_c_ratio.is_some_and(|r| r >= 15.0))
        );
        let rss = |v: Option<(u64, f64)>| {
            v.map_or("not measured".into(), |(kb, gps)| format!("{:.1} MB ({gps:.0} goods/s)", kb as f64 / 1024.0))
        };
        let _ = writeln!(t, "| peak RSS, `reconciler full` at N | {} | |", rss(self.rss_n));
        let _ = writeln!(
            t,
            "| peak RSS, `reconciler full` at 4N | {} | ≤ 256 MB: {} |",
            rss(self.rss_4n),
            if self.rss_4n.is_none() {
                "not measured"
            } else {
                verdict(self.rss_4n.is_some_and(|(kb, _)| kb <= 256 * 1024))
            }
        );
        if self.incremental.is_empty() {
            let _ = writeln!(t, "| incremental (Kafka, Canal events) | not measured | ceiling ≥ {TARGET_EVENTS_PER_SEC} events/s (p99 ≤ stage delay + 1 s): not measured |");
        }
        for l in &self.incremental {
            let _ = writeln!(
                t,
                "| incremental (Kafka, Canal events, {}% lost by the sync pipeline) | {} | ceiling ≥ {TARGET_EVENTS_PER_SEC} events/s (p99 ≤ stage delay + 1 s): {} |",
                l.lost_percent,
                l.best,
                match l.beyond_machine {
                    Some(r) => format!(
                        "{}; the other processes alone leave room for {r:.0} events/s at most on this machine",
                        verdict(l.met)
                    ),
                    None => verdict(l.met).to_string(),
                }
            );
        }
        let _ = writeln!(
            t,
            "| price verifier, `verify --samples` | {} | |",
            self.verify_file.map_or("not measured".into(), |(r, kb, n)| format!(
                "{r:.0} samples/s on {n} samples, peak RSS {:.1} MB",
                kb as f64 / 1024.0
            ))
        );
        let _ = writeln!(
            t,
            "| price verifier, `serve` on Kafka | {} | |",
            self.verify_kafka.map_or("not measured".into(), |(r, n)| format!("{r:.0} samples/s ({n} samples)"))
        );
        if let Some(a) = &self.accuracy {
            let _ = writeln!(
                t,
                "| accuracy | {} injected; missed {}, unrepaired {}, not injected but reported {}, deferred {}{} | all found and repaired, nothing else: {} |",
                self.injected,
                a.missed,
                a.unrepaired,
                a.unexpected,
                a.deferred,
                a.halted.as_ref().map_or(String::new(), |h| format!(", halted: {h}")),
                verdict(a.perfect() && self.recheck_drift == Some(0))
            );
        }
        if let Some(d) = self.recheck_drift {
            let _ = writeln!(t, "| drift reported by the check after repair | {d} | 0 |");
        }
        for (figure, value, target) in &self.extra {
            let _ = writeln!(t, "| {figure} | {value} | {target} |");
        }
        t
    }

    pub fn accuracy_table(&self) -> String {
        let mut t = String::new();
        let Some(a) = &self.accuracy else { return t };
        let _ = writeln!(t, "| target | kind | injected | found | repaired |");
        let _ = writeln!(t, "|---|---|---|---|---|");
        for ((target, kind), [i, f, r]) in &a.rows {
            let _ = writeln!(t, "| {target} | {} | {i} | {f} | {r} |", kind.as_str());
        }
        t
    }

    pub fn markdown(&self, machine: &[(String, String)]) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "# Benchmarks\n");
        let _ = writeln!(
            m,
            "Written by the benchmark (`bench/`, see README \"Benchmarks\"); rerun it to refresh. \
             Every figure below was measured in one run on this machine, with MariaDB, Redis, the \
             HBase Thrift1 emulator and the reconciler sharing its cores.\n"
        );
        let _ = writeln!(m, "## Command\n\n    {}\n", self.command);
        let _ = writeln!(m, "## Machine\n");
        for (k, v) in machine {
            let _ = writeln!(m, "- {k}: {v}");
        }
        let _ = writeln!(m, "\n## Data set\n");
        for s in &self.seed {
            let _ = writeln!(m, "- {s}");
        }
        let _ = writeln!(m, "\n## Figures\n\n{}", self.table());
        let _ = writeln!(m, "## Detection accuracy ({} drifts injected)\n\n{}", self.injected, self.accuracy_table());
        for l in &self.incremental {
            let _ = writeln!(m, "## Incremental ceiling search, {}% of changes lost\n", l.lost_percent);
            for (i, step) in l.steps.iter().enumerate() {
                let _ = writeln!(m, "{}. {step}", i + 1);
            }
            let _ = writeln!(m);
        }
        if !self.processes.is_empty() {
            let _ = writeln!(m, "## Peak RSS of every process\n");
            let _ = writeln!(m, "| process | peak RSS (VmHWM) |");
            let _ = writeln!(m, "|---|---|");
            for (name, kb) in &self.processes {
                let _ = writeln!(m, "| {name} | {:.1} MB |", *kb as f64 / 1024.0);
            }
            let _ = writeln!(m);
        }
        if !self.notes.is_empty() {
            let _ = writeln!(m, "## Notes\n");
            for n in &self.notes {
                let _ = writeln!(m, "- {n}");
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missed_full_target_names_a_floor_below_it() {
        assert_eq!(full_verdict(Some(41_000.0), Some(39_000.0)), "met");
        assert_eq!(full_verdict(Some(32_079.0), Some(45_000.0)), "NOT met");
        assert_eq!(
            full_verdict(Some(32_079.0), Some(36_998.4)),
            "NOT met; the raw read floor is 36998 goods/s on this machine"
        );
        assert_eq!(full_verdict(None, None), "NOT met");
    }
}
