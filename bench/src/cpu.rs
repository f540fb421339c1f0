//! What a phase cost whom: CPU time of every process of the run over one phase (the
//! servers, found by name, and the processes the caller names), per item of work, and
//! how busy the machine's cores were. On a machine where the reconciler shares two cores
//! with MariaDB, Redis, the emulator and the broker, a rate is bounded by the sum of
//! these, so the report gives the split beside every rate it measures this way.

use std::time::Instant;

use crate::env::{cpu_seconds, server_pids};

/// CPU counters of the run's processes at the start of a phase.
pub struct CpuMeter {
    before: Vec<(String, u32, Option<f64>)>,
    started: Instant,
}

/// CPU of one phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuUse {
    /// µs of CPU per item of work, by process, largest first.
    pub per_item_us: Vec<(String, f64)>,
    /// CPU used by all of them over the phase, as a share of every core's time.
    pub busy: f64,
}

impl CpuMeter {
    /// Starts counting the servers and `also` (label, pid).
    pub fn start(also: &[(&str, u32)]) -> CpuMeter {
        let mut processes: Vec<(String, u32)> =
            server_pids().into_iter().map(|(name, pid)| (name.to_string(), pid)).collect();
        processes.extend(also.iter().map(|(label, pid)| (label.to_string(), *pid)));
        let before = processes.into_iter().map(|(label, pid)| (label, pid, cpu_seconds(pid))).collect();
        CpuMeter { before, started: Instant::now() }
    }

    /// What each process used since [`start`](Self::start), per item (`items` of work
    /// done in the phase); processes that ended or could not be read are left out.
    pub fn per_item(&self, items: u64) -> CpuUse {
        let wall = self.started.elapsed().as_secs_f64();
        let used: Vec<(String, f64)> = self
            .before
            .iter()
            .filter_map(|(label, pid, before)| Some((label.clone(), cpu_seconds(*pid)? - (*before)?)))
            .collect();
        CpuUse::of(used, items, wall, cores())
    }
}

/// The machine's cores (what a phase's CPU shares are of).
pub fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// [`quiet_servers`] (at most 90 s) before a measured phase; when that took more than a
/// few seconds, says so on stderr and returns the note for the report.
pub async fn quiet_before(phase: &str) -> Option<String> {
    let waited = quiet_servers(std::time::Duration::from_secs(90)).await;
    (waited > std::time::Duration::from_secs(3)).then(|| {
        let note = format!("waited {:.0} s for the servers to be quiet before {phase}", waited.as_secs_f64());
        eprintln!("bench: {note}");
        note
    })
}

/// Waits (at most `max`) until the servers are quiet: together under 5% of a core over
/// a second. A phase's servers' CPU would otherwise carry the work an earlier phase left
/// them (MariaDB flushing the pages a seed or a full run dirtied, its purge). Returns
/// how long it waited.
pub async fn quiet_servers(max: std::time::Duration) -> std::time::Duration {
    let started = Instant::now();
    let pids: Vec<u32> = server_pids().into_iter().map(|(_, pid)| pid).collect();
    let used = || pids.iter().filter_map(|&pid| cpu_seconds(pid)).sum::<f64>();
    while started.elapsed() < max {
        let before = used();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        if used() - before < 0.05 {
            break;
        }
    }
    started.elapsed()
}

impl CpuUse {
    /// From CPU seconds by process over `wall` seconds on `cores` cores.
    fn of(used: Vec<(String, f64)>, items: u64, wall: f64, cores: f64) -> CpuUse {
        let total: f64 = used.iter().map(|(_, s)| s).sum();
        let mut per_item_us: Vec<(String, f64)> =
            used.into_iter().map(|(label, s)| (label, s * 1e6 / items.max(1) as f64)).collect();
        per_item_us.sort_by(|a, b| b.1.total_cmp(&a.1));
        CpuUse { per_item_us, busy: if wall > 0.0 { total / (wall * cores) } else { 0.0 } }
    }

    /// `MariaDB 120 µs, Redis 30 µs: 150 µs in all, cores 85% busy` (`item`: what a
    /// figure is per, e.g. "goods").
    pub fn describe(&self, item: &str) -> String {
        if self.per_item_us.is_empty() {
            return "not measured".into();
        }
        let parts: Vec<String> = self.per_item_us.iter().map(|(who, us)| format!("{who} {us:.1} µs")).collect();
        let total: f64 = self.per_item_us.iter().map(|(_, us)| us).sum();
        format!("{} per {item}: {total:.1} µs in all; cores {:.0}% busy", parts.join(", "), self.busy * 100.0)
    }
}

/// The `run / floor` rate ratio the run could reach if its own process cost no more than
/// the floor's (`run_own`, `floor_own`: those processes' labels): the floor's CPU per item
/// over the run's with its own process's share replaced by the floor process's. Both
/// phases are bound by the cores, so this is the most any change to the run's own code
/// could give; what is left is what the servers do for the run beyond the floor's reads
/// (repair writes, the audit log, re-reads of truth before repairing). `None` when a
/// phase was not measured or does not name the process.
pub fn ratio_if_own_were_floor(run: &CpuUse, run_own: &str, floor: &CpuUse, floor_own: &str) -> Option<f64> {
    let share = |u: &CpuUse, who: &str| u.per_item_us.iter().find(|(label, _)| label == who).map(|(_, us)| *us);
    let total = |u: &CpuUse| u.per_item_us.iter().map(|(_, us)| us).sum::<f64>();
    let (run_own, floor_own) = (share(run, run_own)?, share(floor, floor_own)?);
    let floor_total = total(floor);
    let run_as_floor = total(run) - run_own + floor_own;
    (run_as_floor > 0.0).then(|| floor_total / run_as_floor)
}

/// Items per second `cores` could take if process `own` used no CPU at all: every core's
/// second over what the other processes spent per item. On a machine whose cores are
/// shared with the servers this caps the rate whatever `own` does. `None` when `own` is
/// not among the processes or the others spent nothing.
pub fn rate_if_free(per_item_us: &[(String, f64)], own: &str, cores: f64) -> Option<f64> {
    if !per_item_us.iter().any(|(label, _)| label == own) {
        return None;
    }
    let others: f64 = per_item_us.iter().filter(|(label, _)| label != own).map(|(_, us)| us).sum();
    (others > 0.0).then(|| cores * 1e6 / others)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_item_figures_sort_largest_first_and_busy_counts_every_core() {
        let used = vec![("Redis".to_string(), 0.5), ("MariaDB".to_string(), 2.0), ("reconciler".to_string(), 4.5)];
        let u = CpuUse::of(used, 1_000_000, 4.0, 2.0);
        assert_eq!(
            u.per_item_us,
            vec![("reconciler".to_string(), 4.5), ("MariaDB".to_string(), 2.0), ("Redis".to_string(), 0.5)]
        );
        assert!((u.busy - 7.0 / 8.0).abs() < 1e-9, "{}", u.busy);
        assert_eq!(
            u.describe("goods"),
            "reconciler 4.5 µs, MariaDB 2.0 µs, Redis 0.5 µs per goods: 7.0 µs in all; cores 88% busy"
        );
        assert_eq!(CpuUse::default().describe("goods"), "not measured");
    }

    /// The meter counts the CPU its own process burns during a phase: 0.3 s of this
    /// thread's CPU over 1,000 items is at least ~300 µs each (other tests of this
    /// process may add some; a unit slip would be off by 1,000).
    #[test]
    fn a_phase_that_burns_cpu_is_counted_against_its_process() {
        let meter = CpuMeter::start(&[("bench", std::process::id())]);
        clocks::burn(libc::CLOCK_THREAD_CPUTIME_ID, 0.3);
        let u = meter.per_item(1000);
        let bench = u.per_item_us.iter().find(|(who, _)| who == "bench").expect("own process counted").1;
        assert!((250.0..=3000.0).contains(&bench), "{bench} µs per item");
        assert!(u.busy > 0.0);
    }

    /// The bound replaces the run's own process with the floor's and keeps the servers'
    /// extra: floor 30 µs in all, run 42 (own 16 vs 12; the servers 26 vs 18) gives 30 /
    /// (42 - 16 + 12) = 0.789.
    #[test]
    fn the_ratio_bound_keeps_the_servers_extra_and_swaps_the_own_process() {
        let u = |v: &[(&str, f64)]| CpuUse {
            per_item_us: v.iter().map(|(l, us)| (l.to_string(), *us)).collect(),
            busy: 0.9,
        };
        let run = u(&[("reconciler", 16.0), ("MariaDB", 14.0), ("Redis", 12.0)]);
        let floor = u(&[("floor", 12.0), ("MariaDB", 10.0), ("Redis", 8.0)]);
        let bound = ratio_if_own_were_floor(&run, "reconciler", &floor, "floor").unwrap();
        assert!((bound - 30.0 / 38.0).abs() < 1e-9, "{bound}");
        assert_eq!(ratio_if_own_were_floor(&run, "serve", &floor, "floor"), None, "a process the run does not name");
        assert_eq!(ratio_if_own_were_floor(&CpuUse::default(), "reconciler", &floor, "floor"), None);
    }

    /// 2 cores, the others 250 µs per event: 8,000 events/s however cheap `serve` is.
    #[test]
    fn the_rate_bound_gives_the_cores_to_everyone_but_the_process() {
        let per = vec![("MariaDB".to_string(), 200.0), ("serve".to_string(), 90.0), ("Redis".to_string(), 50.0)];
        let bound = rate_if_free(&per, "serve", 2.0).unwrap();
        assert!((bound - 8_000.0).abs() < 1e-6, "{bound}");
        assert_eq!(rate_if_free(&per, "bench", 2.0), None, "a process not measured");
        assert_eq!(rate_if_free(&[("serve".to_string(), 90.0)], "serve", 2.0), None, "nothing else measured");
    }
}

/// CPU clocks, for the tests of this module and of `env`.
#[cfg(test)]
pub(crate) mod clocks {
    /// Seconds on a CPU clock (`CLOCK_PROCESS_CPUTIME_ID`, `CLOCK_THREAD_CPUTIME_ID`).
    pub fn seconds(clock: libc::clockid_t) -> f64 {
        // SAFETY: a zeroed timespec is valid; clock_gettime fills it.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    }

    /// Spins until `clock` has advanced `secs`.
    pub fn burn(clock: libc::clockid_t, secs: f64) {
        let start = seconds(clock);
        let mut x = 0u64;
        while seconds(clock) - start < secs {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}
