//! Metric definitions. Each component records its own figures through the `metrics`
//! facade and declares them here-shaped in a `pub const METRICS: &[MetricDef]`; the
//! service describes every definition to the Prometheus exporter at start, the operator
//! docs list them, and tests check that dashboards and alert rules query only metrics
//! that some component declares.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricKind,
    /// Label names (values are bounded: never ids).
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

impl MetricDef {
    pub const fn counter(name: &'static str, labels: &'static [&'static str], help: &'static str) -> MetricDef {
        MetricDef { name, kind: MetricKind::Counter, labels, help }
    }

    pub const fn gauge(name: &'static str, labels: &'static [&'static str], help: &'static str) -> MetricDef {
        MetricDef { name, kind: MetricKind::Gauge, labels, help }
    }

    pub const fn histogram(name: &'static str, labels: &'static [&'static str], help: &'static str) -> MetricDef {
        MetricDef { name, kind: MetricKind::Histogram, labels, help }
    }
}

/// Registers the help text of every definition with the installed recorder.
pub fn describe(defs: &[MetricDef]) {
    for d in defs {
        match d.kind {
            MetricKind::Counter => metrics::describe_counter!(d.name, d.help),
            MetricKind::Gauge => metrics::describe_gauge!(d.name, d.help),
            MetricKind::Histogram => metrics::describe_histogram!(d.name, d.help),
        }
    }
}

/// The Markdown table of a set of definitions (for the operator docs).
pub fn markdown(defs: &[MetricDef]) -> String {
    let mut out = String::from("| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for d in defs {
        out.push_str(&format!("| `{}` | {} | {} | {} |\n", d.name, d.kind.as_str(), d.labels.join(", "), d.help));
    }
    out
}
