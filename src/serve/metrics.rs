//! Prometheus metrics of the service, rendered in the text exposition format. A small
//! registry of labelled counters, gauges and one latency histogram is all `/metrics`
//! needs, without pulling a metrics framework into the build.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use model::job::TriggerKind;
use model::report::Report;

type Labels = Vec<(&'static str, String)>;

/// Upper bounds (ms) of the change-to-repair latency histogram.
const LATENCY_BUCKETS_MS: [u64; 14] =
    [100, 250, 500, 1000, 2000, 3000, 4000, 5000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000];

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS_MS.len()],
    count: u64,
    sum: u64,
}

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, Labels), u64>>,
    gauges: Mutex<BTreeMap<(&'static str, Labels), i64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

const HELP: &[(&str, &str, &str)] = &[
    ("reconciler_jobs_total", "counter", "check jobs handled, by trigger and outcome"),
    ("reconciler_checks_total", "counter", "goods checked, by trigger"),
    ("reconciler_drift_total", "counter", "drift found, by target, kind and trigger"),
    ("reconciler_repairs_total", "counter", "repairs applied, by target, kind and trigger"),
    ("reconciler_deferred_total", "counter", "repairs deferred, by target and trigger"),
    ("reconciler_unreachable_total", "counter", "batches in which a target could not be reached"),
    ("reconciler_errors_total", "counter", "errors, by component"),
    ("reconciler_halted_total", "counter", "batches whose repairs the blast-radius limit stopped"),
    ("reconciler_job_lag_ms", "gauge", "how late the last job was handled after its not-before time"),
    ("reconciler_jobs_waiting", "gauge", "jobs received and waiting for their not-before time"),
    ("reconciler_full_progress_goods", "gauge", "goods checked by the running full reconciliation"),
];

impl Metrics {
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        let key = (name, labels.iter().map(|(k, v)| (*k, v.to_string())).collect());
        *self.counters.lock().unwrap().entry(key).or_default() += by;
    }

    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: i64) {
        let key = (name, labels.iter().map(|(k, v)| (*k, v.to_string())).collect());
        self.gauges.lock().unwrap().insert(key, value);
    }

    /// Records one change-to-repair latency (ms) for `trigger`.
    pub fn observe_latency(&self, trigger: TriggerKind, ms: u64) {
        let mut all = self.latency.lock().unwrap();
        let h = all.entry(trigger.as_str().to_string()).or_default();
        for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
            if ms <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += ms;
    }

    /// Counts what one batch report says.
    pub fn record_report(&self, trigger: TriggerKind, report: &Report) {
        let t = trigger.as_str();
        self.inc("reconciler_checks_total", &[("trigger", t)], report.checked);
        for d in &report.drift {
            self.inc("reconciler_drift_total", &[("target", &d.target), ("kind", d.kind.as_str()), ("trigger", t)], 1);
        }
        for r in &report.repairs {
            self.inc(
                "reconciler_repairs_total",
                &[("target", &r.target), ("kind", r.kind.as_str()), ("trigger", t)],
                1,
            );
        }
        for d in &report.deferred {
            self.inc("reconciler_deferred_total", &[("target", &d.target), ("trigger", t)], 1);
        }
        for u in &report.unreachable {
            self.inc("reconciler_unreachable_total", &[("target", u)], 1);
        }
        if report.halted.is_some() {
            self.inc("reconciler_halted_total", &[("trigger", t)], 1);
        }
    }

    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        let key = (name, labels.iter().map(|(k, v)| (*k, v.to_string())).collect::<Labels>());
        self.counters.lock().unwrap().get(&key).copied().unwrap_or(0)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().unwrap();
        let gauges = self.gauges.lock().unwrap();
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((n, labels), v) in counters.iter().filter(|((n, _), _)| n == name) {
                let _ = writeln!(out, "{n}{} {v}", render_labels(labels));
            }
            for ((n, labels), v) in gauges.iter().filter(|((n, _), _)| n == name) {
                let _ = writeln!(out, "{n}{} {v}", render_labels(labels));
            }
        }
        let name = "reconciler_change_to_repair_ms";
        let _ = writeln!(
            out,
            "# HELP {name} time from a change's commit to the end of its check and repair\n# TYPE {name} histogram"
        );
        for (trigger, h) in self.latency.lock().unwrap().iter() {
            for (bound, n) in LATENCY_BUCKETS_MS.iter().zip(h.buckets) {
                let _ = writeln!(out, "{name}_bucket{{trigger=\"{trigger}\",le=\"{bound}\"}} {n}");
            }
            let _ = writeln!(out, "{name}_bucket{{trigger=\"{trigger}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(
                out,
                "{name}_sum{{trigger=\"{trigger}\"}} {}\n{name}_count{{trigger=\"{trigger}\"}} {}",
                h.sum, h.count
            );
        }
        out
    }
}

fn render_labels(labels: &Labels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> =
        labels.iter().map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))).collect();
    format!("{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let m = Metrics::default();
        m.inc("reconciler_jobs_total", &[("trigger", "dts"), ("outcome", "done")], 3);
        m.set("reconciler_job_lag_ms", &[], 42);
        m.observe_latency(TriggerKind::Dts, 3100);
        let text = m.render();
        assert!(text.contains("reconciler_jobs_total{trigger=\"dts\",outcome=\"done\"} 3"), "{text}");
        assert!(text.contains("reconciler_job_lag_ms 42"));
        assert!(text.contains("reconciler_change_to_repair_ms_bucket{trigger=\"dts\",le=\"3000\"} 0"));
        assert!(text.contains("reconciler_change_to_repair_ms_bucket{trigger=\"dts\",le=\"4000\"} 1"));
        assert!(text.contains("reconciler_change_to_repair_ms_count{trigger=\"dts\"} 1"));
    }
}
