//! What the harness learns from outside the service: the admin HTTP (`/healthz`,
//! `/metrics`), the dead-letter topic (each record's `dlq.reason` header and payload),
//! and the audit log's row count by status (the one table of the reconciler's own the
//! harness reads, by the name `model::schema` gives it).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::Result;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

/// One HTTP/1.1 request over a plain socket; the whole reply, or `None` when nothing
/// answers.
pub fn http_request(addr: &str, method: &str, path: &str, body: &str) -> Option<String> {
    let sock = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Some(String::from_utf8_lossy(&out).into_owned())
}

pub fn http_get(addr: &str, path: &str) -> Option<String> {
    http_request(addr, "GET", path, "")
}

/// The sum of every sample of one Prometheus counter in a `/metrics` text.
pub fn counter_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Audit-log rows by status (`applied`, `conflict`, ...) in the scenario's meta database.
pub async fn audit_counts(pool: &sqlx::MySqlPool, meta_db: &str) -> BTreeMap<String, u64> {
    let sql = format!("SELECT status, COUNT(*) FROM `{meta_db}`.{} GROUP BY status", model::schema::REPAIR_LOG_TABLE);
    let rows: Vec<(String, i64)> = sqlx::query_as(&sql).fetch_all(pool).await.unwrap_or_default();
    rows.into_iter().map(|(s, n)| (s, n as u64)).collect()
}

/// A record of the dead-letter topic.
pub struct DeadLetter {
    pub reason: String,
    pub source_topic: String,
    pub payload: Vec<u8>,
}

/// Reads the dead-letter topic from its start until nothing more arrives for 5 s.
pub fn dead_letters(brokers: &str, topic: &str, group: &str) -> Result<Vec<DeadLetter>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut out = Vec::new();
    let started = Instant::now();
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(5) && started.elapsed() < Duration::from_secs(120) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            last = Instant::now();
            let mut reason = String::new();
            let mut source_topic = String::new();
            if let Some(h) = m.headers() {
                for header in h.iter() {
                    let v = String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned();
                    match header.key {
                        "dlq.reason" => reason = v,
                        "dlq.source.topic" => source_topic = v,
                        _ => {}
                    }
                }
            }
            out.push(DeadLetter { reason, source_topic, payload: m.payload().unwrap_or_default().to_vec() });
        }
    }
    Ok(out)
}

/// Reasons shortened to their gist (ids and numbers masked, cut at 90 characters), with
/// counts, most frequent first.
pub fn reason_counts(letters: &[DeadLetter]) -> Vec<(String, u64)> {
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    for l in letters {
        let mut gist: String = l.reason.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect();
        while gist.contains("##") {
            gist = gist.replace("##", "#");
        }
        if gist.chars().count() > 90 {
            gist = gist.chars().take(87).collect::<String>() + "...";
        }
        *by.entry(format!("{}: {gist}", l.source_topic)).or_default() += 1;
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by_key(|r| std::cmp::Reverse(r.1));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_summed_over_their_labels_only() {
        let text = "# TYPE reconciler_repairs_total counter\nreconciler_repairs_total{target=\"a\"} 3\nreconciler_repairs_total{target=\"b\"} 4\nreconciler_repairs_total_x 100\nreconciler_repairs 7\n";
        assert_eq!(counter_sum(text, "reconciler_repairs_total"), 7.0);
    }

    #[test]
    fn reasons_are_grouped_with_numbers_masked() {
        let l = |r: &str| DeadLetter { reason: r.into(), source_topic: "t".into(), payload: vec![] };
        let got = reason_counts(&[l("bad id 12 at 3"), l("bad id 4 at 55"), l("other")]);
        assert_eq!(got, vec![("t: bad id # at #".to_string(), 2), ("t: other".to_string(), 1)]);
    }
}
