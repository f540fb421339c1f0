//! The incremental phase: `reconciler serve` (a child process, Kafka bus, DTS-delay
//! trigger on one Canal topic) keeps up with a stream of truth changes, offered at a
//! rising rate until it no longer does: the ceiling.
//!
//! One service runs through every ladder and step. A ladder is one share of changes the
//! sync pipeline loses (`--events-lost`): 100% makes every event a repair (the
//! repair-bound ceiling), 1% makes nearly every event a clean check (the stream a
//! healthy pipeline gives). Step k of a ladder offers `start × factor^k` events/s for
//! the same number of seconds (a ladder starts at the highest rate an earlier ladder with
//! as many or more lost changes held, since fewer repairs cost less, so the goods left
//! untouched go to the rates that find its ceiling), each change on goods no
//! earlier step touched, and waits
//! until every change of the step is checked and every lost one repaired (or a minute
//! past the stage delay) before the next. A step *holds* when nothing is left unchecked
//! or unrepaired, the sustained rate is at least 90% of the offered rate, and p99
//! change-to-repair of the lost changes is within the stage delay plus one second. The
//! ceiling is the highest offered rate that held; a ladder stops at the first step that
//! does not hold (or after `max_steps`).

mod service;
mod step;

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use model::{ActivityId, ShardLayout};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

pub use service::{Service, ADMIN_LISTEN, BROKERS};

use crate::cpu::CpuMeter;
use crate::data::{self, Clock};

pub struct Options {
    /// Offered rate of the first step, events/s.
    pub start_rate: u64,
    /// Each step offers this factor more than the one before.
    pub factor: f64,
    pub max_steps: u32,
    pub seconds: u64,
    pub stage_ms: u64,
    /// Canal events per Kafka record batch at most (the generator's producer).
    pub canal_batch: u32,
    /// One ladder per entry: the percent of changes the sync pipeline loses.
    pub lost_percents: Vec<u32>,
}

/// The incremental target, events/s: a ladder that reaches it offers it exactly.
pub const TARGET_EVENTS_PER_SEC: u64 = 10_000;

/// The CPU rows' label of `reconciler serve`.
const SERVICE_PROCESS: &str = "serve";

/// One offered rate and what the service made of it.
#[derive(Debug, Clone)]
pub struct Step {
    pub offered: u64,
    /// Events/s the bench managed to produce (truth UPDATE, sync writes, Canal event).
    pub achieved_offer: f64,
    pub events: u64,
    /// Percent of the changes the sync pipeline lost (the ones to repair).
    pub lost_percent: u32,
    pub sustained: f64,
    /// Change-to-repair of the lost changes beyond the stage delay.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Lost changes not repaired within the wait.
    pub unrepaired: u64,
    /// Events the service had not checked within the wait.
    pub unchecked: u64,
    /// CPU time per event of each process over the step (offer to last repair), µs:
    /// what the step cost whom.
    pub cpu_us_per_event: Vec<(String, f64)>,
    /// Statements MariaDB served per event over the step (its `Questions` counter: the
    /// service's reads and audit writes, and the generator's UPDATEs).
    pub statements_per_event: Option<f64>,
}

impl Step {
    pub fn holds(&self) -> bool {
        self.unrepaired == 0
            && self.unchecked == 0
            && self.sustained >= 0.9 * self.offered as f64
            && self.p99_ms <= 1000.0
    }

    pub fn summary(&self, stage_ms: u64) -> String {
        format!(
            "offered {}/s (produced at {:.0}/s), {} events ({}% lost): {:.0} events/s sustained; repair beyond the {} ms stage delay p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {} not repaired, {} not checked; {}",
            self.offered,
            self.achieved_offer,
            self.events,
            self.lost_percent,
            self.sustained,
            stage_ms,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.unrepaired,
            self.unchecked,
            if self.holds() { "holds" } else { "does not hold" }
        ) + &self.cpu()
    }

    /// `; CPU per event: MariaDB 120 µs, ...`, largest first (empty when not measured).
    fn cpu(&self) -> String {
        if self.cpu_us_per_event.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = self.cpu_us_per_event.iter().map(|(who, us)| format!("{who} {us:.0} µs")).collect();
        let statements =
            self.statements_per_event.map(|n| format!("; MariaDB statements per event {n:.2}")).unwrap_or_default();
        let bound = self.others_allow().map_or(String::new(), |r| {
            let cores = crate::cpu::cores();
            format!("; the other processes alone: these {cores} cores take at most {r:.0} events/s, however little serve used")
        });
        format!("; CPU per event: {}{statements}{bound}", parts.join(", "))
    }

    /// Events/s the machine's cores could take were `serve` free, the other processes
    /// costing what they did in this step; `None` when CPU was not measured.
    pub fn others_allow(&self) -> Option<f64> {
        crate::cpu::rate_if_free(&self.cpu_us_per_event, SERVICE_PROCESS, crate::cpu::cores())
    }
}

/// One ladder: its share of lost changes and its steps, in order.
pub struct Ceiling {
    pub lost_percent: u32,
    pub steps: Vec<Step>,
    pub stage_ms: u64,
    /// The ladder stopped before a step it wanted to run: the data set had too few goods
    /// no earlier step changed.
    pub short_of_goods: Option<Shortfall>,
}

/// The step a ladder could not run for want of untouched goods.
#[derive(Debug, Clone, Copy)]
pub struct Shortfall {
    /// Its offered rate, events/s.
    pub rate: u64,
    /// The goods it needed (one change each).
    pub needed: u64,
    /// The goods no earlier step had changed.
    pub left: u64,
}

/// Every ladder, and the serve child's peak RSS over all of them, kB.
pub struct Incremental {
    pub ladders: Vec<Ceiling>,
    pub serve_rss_kb: Option<u64>,
}

impl Ceiling {
    /// The highest step that held.
    pub fn best(&self) -> Option<&Step> {
        self.steps.iter().filter(|s| s.holds()).max_by_key(|s| s.offered)
    }

    /// When the ladder missed the target and even its most favourable step's other
    /// processes alone leave the cores less than the target: that rate (the target is
    /// beyond this machine whatever `serve` costs).
    pub fn beyond_machine(&self) -> Option<f64> {
        if self.best().is_some_and(|b| b.offered >= TARGET_EVENTS_PER_SEC) {
            return None;
        }
        let most = self.steps.iter().filter_map(Step::others_allow).reduce(f64::max)?;
        (most < TARGET_EVENTS_PER_SEC as f64).then_some(most)
    }

    /// The ladder's figure: its ceiling (the highest step that held), and, when it ran
    /// out of untouched goods, which step it could not run: a ladder cut short is not a
    /// ceiling, and one with no step at all was not measured rather than failed.
    pub fn figure(&self) -> String {
        let best = match self.best() {
            Some(b) => format!("ceiling {} events/s offered ({})", b.offered, b.summary(self.stage_ms)),
            None if self.steps.is_empty() => "not measured".to_string(),
            None => "no step held".to_string(),
        };
        match self.short_of_goods {
            None => best,
            Some(Shortfall { rate, needed, left }) => format!(
                "{best}; the search stopped before {rate} events/s: that step needs {needed} goods no earlier step changed, the data set has {left} left (a larger --goods or a shorter --event-seconds)"
            ),
        }
    }
}

/// MariaDB's count of statements served since it started (`Questions`); `None` when it
/// cannot be read (the figure is then left out, the step still counts).
async fn statements_served(pools: &common::mysql::MysqlPools) -> Option<u64> {
    let row: (String, String) =
        sqlx::query_as("SHOW GLOBAL STATUS LIKE 'Questions'").fetch_one(pools.meta_pool()).await.ok()?;
    row.1.parse().ok()
}

/// Where a ladder losing `lost_percent` starts, after ladders `held` (lost percent, the
/// highest rate held): at the highest rate a ladder losing as many or more held (fewer
/// repairs cost less), and never below `start`.
fn first_rate(held: &[(u32, Option<u64>)], lost_percent: u32, start: u64) -> u64 {
    held.iter().filter(|(lost, _)| *lost >= lost_percent).filter_map(|(_, best)| *best).fold(start, u64::max)
}

/// The step after one offering `rate`: `factor` more, except that a ladder crossing the
/// target offers the target itself first, so the figure says whether the target rate
/// holds rather than a rate a few percent past it.
fn next_rate(rate: f64, factor: f64) -> f64 {
    let target = TARGET_EVENTS_PER_SEC as f64;
    if rate < target && rate * factor > target {
        target
    } else {
        rate * factor
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    root: &Path,
    base_config: &str,
    pools: &common::mysql::MysqlPools,
    layout: &ShardLayout,
    clock: Clock,
    acts: &HashMap<ActivityId, model::ActivityRow>,
    goods: u64,
    opts: &Options,
    sync: crate::seed::Targets,
    mut progress: impl FnMut(&Step),
) -> Result<Incremental> {
    if std::net::TcpStream::connect(BROKERS).is_err() {
        bail!("no Kafka broker on {BROKERS} (scripts/kafka.sh starts one)");
    }
    let tag = format!("{}", common::clock::now_ms());
    let topic = format!("bench-{tag}-canal");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", BROKERS).create()?;
    admin
        .create_topics(&[NewTopic::new(&topic, 16, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .context("creating the canal topic")?;
    let path = root.join("target/bench/serve.toml");
    std::fs::write(&path, service::config(base_config, &tag, opts.stage_ms))?;
    let service = Service::start(root, &path, &root.join("target/bench/serve.log")).await?;
    // Let the consumers join their groups before the clock starts.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let mut rng = data::Rng::new(0x1AC4);
    let mut seen = std::collections::HashSet::new();
    let mut ladders: Vec<Ceiling> = Vec::new();
    for &lost_percent in &opts.lost_percents {
        let earlier: Vec<(u32, Option<u64>)> =
            ladders.iter().map(|l| (l.lost_percent, l.best().map(|b| b.offered))).collect();
        let ctx = step::Ctx {
            pools,
            layout,
            topic: topic.clone(),
            stage_ms: opts.stage_ms,
            canal_batch: opts.canal_batch,
            sync: sync.clone(),
            lost_percent,
        };
        let mut steps = Vec::new();
        let mut short_of_goods = None;
        let mut rate = first_rate(&earlier, lost_percent, opts.start_rate) as f64;
        for _ in 0..opts.max_steps.max(1) {
            let offered = rate.round() as u64;
            let needed = offered * opts.seconds;
            let changes = step::pick(goods, clock, acts, &mut seen, needed, lost_percent, &mut rng);
            if (changes.len() as u64) < needed {
                // The universe has too few untouched goods left for this step.
                eprintln!(
                    "bench: incremental ({lost_percent}% lost): the step at {offered} events/s needs {needed} untouched goods, {} left: the search stops here",
                    changes.len()
                );
                short_of_goods = Some(Shortfall { rate: offered, needed, left: changes.len() as u64 });
                break;
            }
            // Measured from quiet servers (an earlier phase's flushing is not this step's).
            crate::cpu::quiet_before("the step").await;
            // The servers, `reconciler serve` and the bench (the generator).
            let meter = CpuMeter::start(&[(SERVICE_PROCESS, service.0.id()), ("bench", std::process::id())]);
            let questions = statements_served(pools).await;
            let mut s = step::run(&ctx, changes, offered).await?;
            s.cpu_us_per_event = meter.per_item(s.events).per_item_us;
            if let (Some(before), Some(after)) = (questions, statements_served(pools).await) {
                s.statements_per_event = Some(after.saturating_sub(before) as f64 / s.events.max(1) as f64);
            }
            progress(&s);
            let held = s.holds();
            steps.push(s);
            if !held {
                break;
            }
            rate = next_rate(rate, opts.factor);
        }
        ladders.push(Ceiling { lost_percent, steps, stage_ms: opts.stage_ms, short_of_goods });
    }
    Ok(Incremental { ladders, serve_rss_kb: service.peak_rss_kb() })
}

#[cfg(test)]
mod tests {
    use super::{first_rate, next_rate, Ceiling, Shortfall, Step};

    fn step(offered: u64, holds: bool) -> Step {
        Step {
            offered,
            achieved_offer: offered as f64,
            events: offered * 10,
            lost_percent: 1,
            sustained: offered as f64,
            p50_ms: 100.0,
            p99_ms: if holds { 200.0 } else { 2000.0 },
            max_ms: 2500.0,
            unrepaired: 0,
            unchecked: 0,
            cpu_us_per_event: Vec::new(),
            statements_per_event: None,
        }
    }

    /// A ladder that ran out of untouched goods says so: with no step it was not
    /// measured (it used to read "no step held"), and a ceiling it reached is marked as
    /// where the search stopped, not where the service did.
    #[test]
    fn a_ladder_short_of_goods_says_so_instead_of_failing() {
        let ladder = |steps, short| Ceiling { lost_percent: 1, steps, stage_ms: 2000, short_of_goods: short };
        let none = ladder(vec![], Some(Shortfall { rate: 5000, needed: 100_000, left: 59_400 })).figure();
        assert!(none.starts_with("not measured; the search stopped before 5000 events/s"), "{none}");
        assert!(none.contains("needs 100000 goods") && none.contains("59400 left"), "{none}");
        let cut = ladder(vec![step(2000, true)], Some(Shortfall { rate: 2400, needed: 24_000, left: 10 })).figure();
        assert!(cut.starts_with("ceiling 2000 events/s offered") && cut.contains("stopped before 2400"), "{cut}");
        let failed = ladder(vec![step(2000, false)], None).figure();
        assert_eq!(failed, "no step held");
        let full = ladder(vec![step(2000, true), step(2400, false)], None).figure();
        assert!(full.starts_with("ceiling 2000 events/s offered") && !full.contains("stopped"), "{full}");
    }

    /// A step's CPU figures end with what the other processes alone leave room for.
    #[test]
    fn a_step_says_what_the_other_processes_alone_allow() {
        let mut s = step(2000, true);
        assert!(!s.summary(2000).contains("at most"), "no CPU measured, no bound");
        s.cpu_us_per_event = vec![("MariaDB".into(), 150.0), ("serve".into(), 90.0), ("bench".into(), 50.0)];
        let cores = crate::cpu::cores();
        let want = format!("take at most {:.0} events/s, however little serve used", cores * 1e6 / 200.0);
        assert!(s.summary(2000).contains(&want), "{}", s.summary(2000));
    }

    /// A missed target is said to be beyond the machine only when every step's other
    /// processes alone leave less room than the target.
    #[test]
    fn a_missed_target_is_beyond_the_machine_only_when_the_others_alone_leave_less() {
        let cores = crate::cpu::cores();
        // Other processes costing `us` per event: they alone allow cores * 1e6 / us.
        let costing = |offered, holds, us: f64| {
            let mut s = step(offered, holds);
            s.cpu_us_per_event = vec![("MariaDB".into(), us), ("serve".into(), 50.0)];
            s
        };
        let ladder = |steps| Ceiling { lost_percent: 1, steps, stage_ms: 2000, short_of_goods: None };
        let tight = cores * 1e6 / 12_000.0; // allows 12,000 events/s
        let loose = cores * 1e6 / 8_000.0; // allows 8,000
        let bound = ladder(vec![costing(5000, true, loose), costing(6000, false, loose)]).beyond_machine();
        assert!(bound.is_some_and(|b| (b - 8000.0).abs() < 1.0), "{bound:?}");
        assert_eq!(ladder(vec![costing(5000, true, loose), costing(6000, false, tight)]).beyond_machine(), None);
        assert_eq!(ladder(vec![step(5000, true), step(6000, false)]).beyond_machine(), None, "no CPU, no claim");
        assert_eq!(ladder(vec![costing(10_000, true, loose)]).beyond_machine(), None, "met is met");
    }

    /// The default ladder (2,000 x 1.2 per step) offers 8,600 then exactly 10,000 (it
    /// used to jump to 10,320), then goes on by the factor.
    #[test]
    fn a_ladder_crossing_the_target_offers_it_exactly() {
        let mut rate: f64 = 2000.0;
        let mut offered = Vec::new();
        for _ in 0..11 {
            offered.push(rate.round() as u64);
            rate = next_rate(rate, 1.2);
        }
        assert_eq!(offered, [2000, 2400, 2880, 3456, 4147, 4977, 5972, 7166, 8600, 10000, 12000]);
        assert_eq!(next_rate(10_000.0, 1.2), 12_000.0, "from the target on, by the factor");
        assert_eq!(next_rate(12_000.0, 1.2), 14_400.0);
        assert_eq!(next_rate(5_000.0, 2.0), 10_000.0, "landing on the target is the target");
    }

    #[test]
    fn a_ladder_starts_where_one_losing_as_much_or_more_held() {
        assert_eq!(first_rate(&[], 1, 2000), 2000);
        assert_eq!(first_rate(&[(100, Some(4977))], 1, 2000), 4977);
        assert_eq!(first_rate(&[(100, None)], 1, 2000), 2000, "nothing held: the start");
        assert_eq!(first_rate(&[(1, Some(10320))], 100, 2000), 2000, "fewer lost says nothing of more");
        assert_eq!(first_rate(&[(100, Some(1000))], 1, 2000), 2000, "never below the start");
        assert_eq!(first_rate(&[(100, Some(4977)), (50, Some(6000))], 1, 2000), 6000);
    }
}
