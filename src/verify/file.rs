//! `reconciler verify --samples PATH|- [--json]`: verifies a JSON-lines file of pricing
//! samples (or stdin) against truth.
//!
//! The file is streamed, never held: a reader cuts it into micro-batches of
//! `verifier.batch_size` samples, `verifier.concurrency` batches are verified at once
//! (results kept in file order), and each sample is counted and dropped. With `--json`
//! the document is streamed too: `{"mismatches":[` each mismatch as it is found `],`
//! then the counts (`samples`, `verdicts`, `causes`, ...), so memory stays flat for any
//! number of mismatches. Bad lines are named by line number (the first
//! [`BAD_LINES_SHOWN`] with their error, all counted), the rest of the file is still
//! verified, and the exit status is 2.
//!
//! Exit: 0 every sample matched or was inconclusive, 1 a mismatch, 2 bad input or
//! usage, 3 a store could not be reached (the document then ends with `"error"`).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use model::pricing::Sample;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

use super::tally::Tally;
use super::Engine;
use crate::app::{exit, App};

/// Bad lines reported with their error; the rest are counted.
pub const BAD_LINES_SHOWN: usize = 20;

#[derive(Debug, Default)]
struct BadLines {
    count: u64,
    first: Vec<(u64, String)>,
}

pub async fn run(app: &App, path: &Path, json: bool) -> i32 {
    let input: Box<dyn AsyncRead + Unpin + Send> = if path.as_os_str() == "-" {
        Box::new(tokio::io::stdin())
    } else {
        match tokio::fs::File::open(path).await {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("error: --samples {}: {e}", path.display());
                return exit::USAGE;
            }
        }
    };
    let started = Instant::now();
    let engine = Arc::new(Engine::new(app));
    let v = &app.config.verifier;
    let (tx, rx) = mpsc::channel::<Vec<Sample>>(v.concurrency * 2);
    let reader = tokio::spawn(read_batches(input, v.batch_size, tx));
    let batches = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    let mut results = Box::pin(batches.map(|batch| engine.verify(batch)).buffered(v.concurrency));

    let mut tally = Tally::default();
    let mut out = JsonOut::new(json);
    let mut failure = None;
    while let Some(result) = results.next().await {
        match result {
            Ok(verified) => {
                for item in &verified {
                    if let Some(entry) = tally.add(item) {
                        out.mismatch(&entry);
                    }
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    // Dropping the stream closes the channel, so a reader blocked on a full channel ends.
    drop(results);
    let bad = match reader.await {
        Ok(Ok(bad)) => bad,
        Ok(Err(e)) if failure.is_none() => {
            eprintln!("error: reading --samples {}: {e}", path.display());
            out.finish(&tally, &BadLines::default(), started, Some(&e.to_string()));
            return exit::USAGE;
        }
        _ => BadLines::default(),
    };
    for (line, error) in &bad.first {
        eprintln!("error: line {line}: {error}");
    }
    if bad.count > bad.first.len() as u64 {
        eprintln!("error: … and {} more bad lines", bad.count - bad.first.len() as u64);
    }
    if let Some(e) = failure {
        eprintln!("error: {e}");
        out.finish(&tally, &bad, started, Some(&e.to_string()));
        return exit::UNREACHABLE;
    }
    if json {
        out.finish(&tally, &bad, started, None);
    } else {
        print!("{}", tally.human(started.elapsed().as_millis() as u64));
        if bad.count > 0 {
            println!("BAD INPUT: {} lines could not be read (see stderr)", bad.count);
        }
    }
    if bad.count > 0 {
        exit::USAGE
    } else if tally.mismatches() > 0 {
        exit::DRIFT_LEFT
    } else {
        exit::CLEAN
    }
}

/// Reads JSON lines into batches; blank lines are skipped, bad lines recorded.
async fn read_batches(
    input: Box<dyn AsyncRead + Unpin + Send>,
    batch_size: usize,
    tx: mpsc::Sender<Vec<Sample>>,
) -> std::io::Result<BadLines> {
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let mut bad = BadLines::default();
    let mut batch = Vec::with_capacity(batch_size);
    let mut line = Vec::with_capacity(1024);
    let mut number = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            break;
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match Sample::decode(&line) {
            Ok(sample) => {
                batch.push(sample);
                if batch.len() >= batch_size {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                    if tx.send(full).await.is_err() {
                        return Ok(bad);
                    }
                }
            }
            Err(e) => {
                bad.count += 1;
                if bad.first.len() < BAD_LINES_SHOWN {
                    bad.first.push((number, e.to_string()));
                }
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch).await;
    }
    Ok(bad)
}

/// The `--json` document, streamed; a no-op without `--json`.
struct JsonOut {
    out: Option<std::io::BufWriter<std::io::Stdout>>,
    first: bool,
}

impl JsonOut {
    fn new(enabled: bool) -> JsonOut {
        let mut out = enabled.then(|| std::io::BufWriter::new(std::io::stdout()));
        if let Some(w) = &mut out {
            let _ = w.write_all(b"{\"mismatches\":[");
        }
        JsonOut { out, first: true }
    }

    fn mismatch(&mut self, entry: &Value) {
        let Some(w) = &mut self.out else { return };
        if !self.first {
            let _ = w.write_all(b",\n");
        }
        self.first = false;
        let _ = serde_json::to_writer(&mut *w, entry);
    }

    fn finish(&mut self, tally: &Tally, bad: &BadLines, started: Instant, error: Option<&str>) {
        let Some(w) = &mut self.out else { return };
        let mut counts = tally.json_counts();
        counts.insert("bad_lines".into(), json!(bad.count));
        counts.insert(
            "bad_line_errors".into(),
            bad.first.iter().map(|(line, e)| json!({"line": line, "error": e})).collect(),
        );
        counts.insert("elapsed_ms".into(), json!(started.elapsed().as_millis() as u64));
        if let Some(e) = error {
            counts.insert("error".into(), json!(e));
        }
        let rest = serde_json::to_string(&Value::Object(counts)).expect("serializable");
        // `rest` is `{...}`: splice its members after the mismatches.
        let _ = writeln!(w, "]{}{}", if rest.len() > 2 { "," } else { "" }, &rest[1..]);
        let _ = w.flush();
        self.out = None;
    }
}
