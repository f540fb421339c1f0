//! Progress of long runs: a bar on a terminal, a log line every few seconds otherwise.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use handlers::run::{Progress, ProgressFn};
use indicatif::{ProgressBar, ProgressStyle};

/// A progress callback suited to where stderr goes; `quiet` disables it (JSON output).
pub fn reporter(quiet: bool) -> Option<ProgressFn> {
    if quiet {
        return None;
    }
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}").expect("static template"));
        bar.enable_steady_tick(Duration::from_millis(200));
        let start = Instant::now();
        Some(Arc::new(move |p: &Progress| {
            let rate = p.checked as f64 / start.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!(
                "{}: {} goods checked ({rate:.0}/s), {} drifted, {} repaired",
                p.phase, p.checked, p.drifted, p.repaired
            ));
        }))
    } else {
        let last = Mutex::new(Instant::now());
        let start = Instant::now();
        Some(Arc::new(move |p: &Progress| {
            let mut last = last.lock().unwrap();
            if last.elapsed() >= Duration::from_secs(5) {
                *last = Instant::now();
                let rate = p.checked as f64 / start.elapsed().as_secs_f64().max(0.001);
                tracing::info!(
                    phase = p.phase,
                    checked = p.checked,
                    drifted = p.drifted,
                    repaired = p.repaired,
                    goods_per_sec = rate as u64,
                    "progress"
                );
            }
        }))
    }
}
