//! The suite's output: a table on stdout and the `## Fault injection` section of
//! RELIABILITY.md (rewritten in place; every other section is kept).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::scenarios::Outcome;

const HEADER: &str = "## Fault injection";

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn machine() -> Vec<(String, String)> {
    vec![
        ("cpu".into(), sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'")),
        ("cores".into(), sh("nproc")),
        ("memory".into(), sh("grep MemTotal /proc/meminfo | awk '{printf \"%.1f GB\", $2/1048576}'")),
        ("load at start".into(), sh("cut -d' ' -f1-3 /proc/loadavg")),
        ("MariaDB".into(), sh("mariadbd --version 2>/dev/null || /usr/sbin/mariadbd --version")),
        ("Redis".into(), sh("redis-server --version | cut -d' ' -f3")),
        ("Tansu".into(), sh("$HOME/.cargo/bin/tansu --version 2>/dev/null || tansu --version")),
        ("commit".into(), sh("git rev-parse --short HEAD")),
    ]
}

fn ms(v: Option<u64>) -> String {
    v.map_or("not within the wait".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0))
}

fn repairs(o: &Outcome) -> String {
    if o.audit.is_empty() {
        return "0".into();
    }
    let total: u64 = o.audit.values().sum();
    let parts: Vec<String> = o.audit.iter().map(|(k, v)| format!("{v} {k}")).collect();
    format!("{total} ({})", parts.join(", "))
}

pub fn table(outcomes: &[Outcome]) -> String {
    let mut s = String::from(
        "| scenario | events | goods expected consistent | consistent at end | lost | repairs (audit rows) | dead letters | recovery after the fault | stale overwrites |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        if let Some(e) = &o.error {
            let _ = writeln!(
                s,
                "| {} | the scenario failed: {} | | | | | | | |",
                o.name,
                e.replace('|', "/").replace('\n', " ")
            );
            continue;
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            o.name,
            o.events,
            o.expected,
            o.consistent,
            o.lost_count(),
            repairs(o),
            o.dead_letters,
            ms(o.recovery_ms),
            o.stale_overwrites.map_or("-".into(), |n| n.to_string())
        );
    }
    s
}

pub fn details(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    for o in outcomes {
        let _ = writeln!(s, "- **{}** ({:.0} s): {}.", o.name, o.seconds, o.fault);
        if o.error.is_some() {
            continue;
        }
        let _ = writeln!(
            s,
            "  Truth changes committed {}, refused while down {}; events resent after a failed delivery {}, not delivered {}; first stage {} ms.",
            o.changes, o.refused, o.resent, o.undelivered, o.stage_ms
        );
        for n in &o.notes {
            let _ = writeln!(s, "  {n}.");
        }
        if !o.dead_letter_reasons.is_empty() {
            let r: Vec<String> =
                o.dead_letter_reasons.iter().map(|(r, n)| format!("{n} × `{}`", r.replace('`', "'"))).collect();
            let _ = writeln!(s, "  Dead letters by reason: {}.", r.join("; "));
        }
        for l in &o.lost {
            let _ = writeln!(s, "  Left inconsistent: {l}.");
        }
    }
    s
}

pub fn section(command: &str, outcomes: &[Outcome], machine: &[(String, String)], date: &str) -> String {
    let mut s = format!("{HEADER}\n\n");
    s.push_str(
        "Written by the fault suite (`faults/`, run by `scripts/faults.sh`); rerun it to refresh this section.\n\
         Each scenario runs `reconciler serve` (spawned release binary, Kafka bus, the DTS trigger on a\n\
         Canal, a Debezium and a Maxwell topic, stages [first, 10 × first], scanner off so the event path\n\
         alone must carry every change) on its own databases, Redis keys, HBase server, topics and ports,\n\
         under a stream of truth changes with one Canal event each, then checks every goods it touched on\n\
         every target against truth with its own clients (SQL + `model::project_goods`, redis-rs,\n\
         hbase-thrift).\n\n",
    );
    let _ = writeln!(s, "    {command}\n");
    let _ = writeln!(s, "Run {date}. Machine:\n");
    for (k, v) in machine {
        let _ = writeln!(s, "- {k}: {v}");
    }
    s.push('\n');
    s.push_str(&table(outcomes));
    s.push('\n');
    s.push_str(
        "*Events*: change events produced (each a committed truth change the targets never got). *Goods\n\
         expected consistent*: every goods the scenario changed or poisoned whose latest change event the\n\
         broker took (events are resent for five minutes, as a CDC tool retries). *Lost*: expected minus\n\
         consistent after the wait (the last stage plus 90 s). *Repairs*: rows of the audit log by outcome.\n\
         *Recovery*: from the end of the fault (the store back, the last restart, the last racing write, the\n\
         poison) until every goods changed before it was seen consistent on every target; the goal is one\n\
         stage delay. *Stale overwrites*: cells found holding an older version than the harness had\n\
         written there (race only).\n\n",
    );
    s.push_str(&details(outcomes));
    s
}

/// Replaces (or adds, before `## Fuzzing` or at the end) the fault section of `path`.
pub fn write_section(path: &Path, section: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Reliability\n".into());
    let new = splice(&old, section);
    std::fs::write(path, new)?;
    Ok(())
}

pub fn splice(old: &str, section: &str) -> String {
    let section = section.trim_end().to_string() + "\n\n";
    if let Some(start) = old.find(&format!("\n{HEADER}\n")).map(|i| i + 1) {
        let rest = &old[start + HEADER.len()..];
        let end = rest.find("\n## ").map_or(old.len(), |i| start + HEADER.len() + i + 1);
        return format!("{}{}{}", &old[..start], section, &old[end..]);
    }
    match old.find("\n## Fuzzing\n") {
        Some(i) => format!("{}\n{}{}", &old[..i], section, &old[i + 1..]),
        None => format!("{}\n{}", old.trim_end(), "\n".to_string() + &section),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_replaced_in_place_and_fuzzing_kept() {
        let doc = "# Reliability\n\n## Fuzzing\n\nfuzz text\n";
        let once = splice(doc, "## Fault injection\n\nfirst\n");
        assert_eq!(once, "# Reliability\n\n## Fault injection\n\nfirst\n\n## Fuzzing\n\nfuzz text\n");
        let twice = splice(&once, "## Fault injection\n\nsecond\n");
        assert_eq!(twice, "# Reliability\n\n## Fault injection\n\nsecond\n\n## Fuzzing\n\nfuzz text\n");
        let at_end = splice("# R\n\n## Fault injection\n\nold\n", "## Fault injection\n\nnew\n");
        assert_eq!(at_end, "# R\n\n## Fault injection\n\nnew\n\n");
    }
}
