//! `reconciler serve` as a child process for the Kafka phases (incremental, verifier):
//! its config, start-up until healthy, its peak RSS, and a drain on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::env;

pub const BROKERS: &str = "127.0.0.1:9092";
pub const ADMIN_LISTEN: &str = "127.0.0.1:19100";

/// The serve config of the incremental phase: Kafka bus, one Canal topic, one stage.
pub fn config(base: &str, tag: &str, stage_ms: u64) -> String {
    // Every event is drift (a lost sync), so the blast-radius ratio must not stop repairs.
    let base =
        base.replace("settle_ms = 3000", "settle_ms = 1000").replace("max_drift_ratio = 0.5", "max_drift_ratio = 1.0");
    format!(
        r#"{base}
[bus]
kind = "kafka"

[kafka]
brokers = "{BROKERS}"
group = "bench-{tag}-handlers"
jobs_topic = "bench-{tag}-jobs"
dead_letter_topic = "bench-{tag}-dlq"
trigger_group = "bench-{tag}-dts"
partitions = 16
producer_config = {{ "batch.num.messages" = "1" }}

[handler]
workers = 4

[admin]
listen = "{ADMIN_LISTEN}"

[[triggers.dts]]
topic = "bench-{tag}-canal"
format = "canal"
stages_ms = [{stage_ms}]
"#
    )
}

/// A running `reconciler serve`; SIGTERM (drain), then kill, when dropped.
pub struct Service(pub Child);

impl Service {
    /// Starts `reconciler --config PATH serve`, logging to `log`, and waits until
    /// `/healthz` answers 200 (30 s at most).
    pub async fn start(root: &Path, config: &Path, log: &Path) -> Result<Service> {
        let log = std::fs::File::create(log)?;
        let child = Command::new(env::reconciler_binary(root))
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env("RECONCILER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting reconciler serve")?;
        let service = Service(child);
        let started = Instant::now();
        while !healthy() {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("reconciler serve did not become healthy (see its log)");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(service)
    }

    /// The child's peak RSS so far (VmHWM), kB.
    pub fn peak_rss_kb(&self) -> Option<u64> {
        env::vm_hwm_kb(self.0.id())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SIGTERM: the service drains; then make sure it is gone.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` on the admin listener: the whole response, status line first.
fn get(path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(ADMIN_LISTEN)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Whether the admin listener answers `GET /healthz` with 200.
pub fn healthy() -> bool {
    get("/healthz").is_ok_and(|out| out.starts_with("HTTP/1.1 200"))
}

/// The goods the service has checked for the DTS trigger since it started
/// (`reconciler_checks_total{trigger="dts"}` on `/metrics`; 0 before the first).
pub async fn checks_total() -> Result<u64> {
    let out = tokio::task::spawn_blocking(|| get("/metrics")).await?.context("GET /metrics of reconciler serve")?;
    if !out.starts_with("HTTP/1.1 200") {
        bail!("GET /metrics of reconciler serve: {}", out.lines().next().unwrap_or(""));
    }
    Ok(checks_in(&out))
}

/// The DTS check counter in a Prometheus text exposition (0 when absent).
fn checks_in(exposition: &str) -> u64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(r#"reconciler_checks_total{trigger="dts"} "#))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_dts_check_counter_and_nothing_else() {
        let text = "# TYPE reconciler_checks_total counter\nreconciler_checks_total{trigger=\"full\"} 9\nreconciler_checks_total{trigger=\"dts\"} 1234\n";
        assert_eq!(super::checks_in(text), 1234);
        assert_eq!(super::checks_in("reconciler_checks_total{trigger=\"full\"} 9\n"), 0);
    }
}
