//! The DTS-delay trigger runtime: one consumer group over every configured change topic.
//!
//! `step` takes one record and spawns its processing (bounded by `max_in_flight`), so a
//! slow fan-out does not hold back other partitions; offsets are committed per partition
//! in order of the records, whatever order they finish in. Processing a record retries
//! transient failures (the shared classifier: a broker or database outage, a MySQL
//! restart in the middle of an activity's fan-out, deadlocks) under the shared retry
//! policy, redoing the record from the start (its jobs are de-duplicated), and only then
//! acks. A record that can not be parsed, that fails permanently, or whose transient
//! failure outlasts the retry policy is dead-lettered with the reason (topic, partition,
//! offset, what was wrong, attempts) and acked, and consumption goes on. A dead letter
//! that cannot be published is retried until it is: the record is never acked unsent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::config::{DtsConfig, EventFormat, KafkaConfig};
use model::job::Job;
use model::GoodsId;
use tokio::task::JoinSet;

use super::event::{LogicalTable, Parsed};
use super::planner::StagePlanner;
use crate::bus::kafka::{DeadLetterPublisher, KafkaSource, RawRecord, SourceOptions};
use crate::bus::{AckHandle, JobPublisher};
use crate::error::{Result, TriggerError};
use common::clock::now_ms;
use common::mysql::pager::ActivityGoodsPager;
use common::mysql::MysqlPools;
use common::RetryPolicy;

#[derive(Debug, Clone)]
pub struct DtsOptions {
    /// Records processed at once (each may fan out to many goods).
    pub max_in_flight: usize,
    /// Goods per fan-out page and per publish call.
    pub page_size: u32,
    /// How transient failures of one record are retried before it is dead-lettered.
    pub retry: RetryPolicy,
    pub source: SourceOptions,
}

impl Default for DtsOptions {
    fn default() -> Self {
        DtsOptions {
            max_in_flight: 1024,
            page_size: 1000,
            retry: RetryPolicy::default(),
            source: SourceOptions::default(),
        }
    }
}

struct TopicState {
    format: EventFormat,
    planner: Mutex<StagePlanner>,
}

struct Context {
    topics: HashMap<String, TopicState>,
    publisher: Arc<dyn JobPublisher>,
    dead_letters: DeadLetterPublisher,
    pools: MysqlPools,
    options: DtsOptions,
    /// Key activities: their goods are planned with the key stages (`None`: none is key).
    keys: Option<crate::key::SharedKeySet>,
}

pub struct DtsTrigger {
    source: KafkaSource,
    ctx: Arc<Context>,
    tasks: JoinSet<()>,
}

impl DtsTrigger {
    /// Joins `kafka.trigger_group` on every topic of `dts`. Jobs go to `publisher`, dead
    /// letters to `kafka.dead_letter_topic`; `pools` serve the activity fan-out.
    pub fn new(
        kafka: &KafkaConfig,
        dts: &[DtsConfig],
        publisher: Arc<dyn JobPublisher>,
        pools: MysqlPools,
        options: DtsOptions,
    ) -> Result<DtsTrigger> {
        if dts.is_empty() {
            return Err(TriggerError::Config("no [[triggers.dts]] topic configured".into()));
        }
        let topics: HashMap<String, TopicState> = dts
            .iter()
            .map(|d| {
                (
                    d.topic.clone(),
                    TopicState { format: d.format, planner: Mutex::new(StagePlanner::new(d.stages_ms.clone())) },
                )
            })
            .collect();
        let names: Vec<&str> = topics.keys().map(String::as_str).collect();
        let source = KafkaSource::subscribe(&kafka.brokers, &kafka.trigger_group, &names, options.source.clone())?;
        let dead_letters = DeadLetterPublisher::new(&kafka.brokers, &kafka.dead_letter_topic)?;
        let ctx = Arc::new(Context { topics, publisher, dead_letters, pools, options, keys: None });
        Ok(DtsTrigger { source, ctx, tasks: JoinSet::new() })
    }

    /// Goods of the activities in `keys` are planned with `key_stages_ms`, on the
    /// priority lane (`[key_activities]`). Call before the first `step`.
    pub fn with_key_activities(mut self, keys: crate::key::SharedKeySet, key_stages_ms: &[u64]) -> DtsTrigger {
        let ctx = Arc::get_mut(&mut self.ctx).expect("with_key_activities is called before the trigger runs");
        for topic in ctx.topics.values_mut() {
            let planner = topic.planner.get_mut().expect("planner lock");
            *planner = StagePlanner::new(planner.stages_ms().to_vec()).with_key_stages(key_stages_ms.to_vec());
        }
        ctx.keys = Some(keys);
        self
    }

    /// Takes one record and starts its processing; waits first while `max_in_flight`
    /// records are being processed. `false` once the source is closed.
    pub async fn step(&mut self) -> bool {
        while self.tasks.try_join_next().is_some() {}
        while self.tasks.len() >= self.ctx.options.max_in_flight.max(1) {
            self.tasks.join_next().await;
        }
        let Some((record, ack)) = self.source.next().await else {
            return false;
        };
        self.tasks.spawn(process(self.ctx.clone(), record, ack));
        true
    }

    /// Drives [`step`](Self::step) until `shutdown` resolves, then shuts down cleanly.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                more = self.step() => if !more { break },
            }
        }
        self.shutdown().await
    }

    /// Finishes the records being processed, commits and leaves the group.
    pub async fn shutdown(mut self) {
        while self.tasks.join_next().await.is_some() {}
        self.source.shutdown().await
    }
}

async fn process(ctx: Arc<Context>, record: RawRecord, ack: AckHandle) {
    let mut delays = ctx.options.retry.delays();
    let mut attempt = 1u32;
    let failure = loop {
        match process_once(&ctx, &record).await {
            Ok(()) => {
                ack.ack();
                return;
            }
            Err(Failure::Permanent(reason)) => break reason,
            Err(Failure::Retry(e)) => match delays.next() {
                Some(delay) => {
                    tracing::warn!(topic = %record.topic, partition = record.partition, offset = record.offset, attempt, error = %e, retry_in_ms = delay.as_millis() as u64, "change event processing failed, retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                None => break format!("transient failure outlasted {attempt} attempts (the [retry] policy): {e}"),
            },
        }
    };
    let reason = format!("topic {} partition {} offset {}: {failure}", record.topic, record.partition, record.offset);
    let mut backoff = Duration::from_millis(100);
    while let Err(e) = ctx.dead_letters.send(&record, &reason).await {
        tracing::warn!(error = %e, "dead letter not published, retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(ctx.options.retry.max_delay);
    }
    count_event(&ctx, &record, "dead_lettered");
    metrics::counter!(crate::metrics::DEAD_LETTERS, "source" => "dts").increment(1);
    ack.ack();
}

enum Failure {
    Permanent(String),
    Retry(TriggerError),
}

impl From<TriggerError> for Failure {
    /// The shared classifier decides; any broker error is worth the retries (a publish
    /// the broker refused is not the event's fault).
    fn from(e: TriggerError) -> Self {
        if e.is_retryable() || matches!(e, TriggerError::Kafka(_)) {
            Failure::Retry(e)
        } else {
            Failure::Permanent(e.to_string())
        }
    }
}

async fn process_once(ctx: &Context, record: &RawRecord) -> Result<(), Failure> {
    let Some(topic) = ctx.topics.get(&*record.topic) else {
        return Err(Failure::Permanent("topic has no configured format".into()));
    };
    let payload = record.payload.as_deref().unwrap_or_default();
    let event = match super::parse(topic.format, payload) {
        Ok(Parsed::Change(event)) => event,
        Ok(Parsed::Skip(why)) => {
            tracing::debug!(topic = %record.topic, offset = record.offset, why, "skipping message");
            count_event(ctx, record, "skipped");
            return Ok(());
        }
        Err(e) => return Err(Failure::Permanent(format!("unparseable {} message: {e}", format_name(topic.format)))),
    };
    let commit_ms = event.commit_ms.or(record.timestamp_ms).unwrap_or_else(now_ms);
    count_event(ctx, record, "parsed");
    match event.table {
        LogicalTable::ActivityGoods | LogicalTable::ActivitySku => {
            let (key, bulk): (Vec<GoodsId>, Vec<GoodsId>) = match &ctx.keys {
                Some(keys) => {
                    let keys = keys.read().expect("key set lock");
                    event.ids.iter().copied().partition(|g| keys.is_key_goods(*g))
                }
                None => (Vec::new(), event.ids.clone()),
            };
            publish_goods(ctx, topic, &key, commit_ms, true).await?;
            publish_goods(ctx, topic, &bulk, commit_ms, false).await?
        }
        LogicalTable::Activity => {
            for &activity_id in &event.ids {
                let key =
                    ctx.keys.as_ref().is_some_and(|k| k.read().expect("key set lock").activity(activity_id).is_some());
                let mut pager = ActivityGoodsPager::new(&ctx.pools, activity_id, ctx.options.page_size);
                while let Some(goods) = pager.next_page().await.map_err(TriggerError::from)? {
                    publish_goods(ctx, topic, &goods, commit_ms, key).await?;
                }
            }
        }
    }
    Ok(())
}

async fn publish_goods(ctx: &Context, topic: &TopicState, goods: &[GoodsId], commit_ms: i64, key: bool) -> Result<()> {
    if goods.is_empty() {
        return Ok(());
    }
    let jobs: Vec<Job> = topic.planner.lock().expect("planner lock").plan_lane(goods, commit_ms, now_ms(), key);
    for (i, chunk) in jobs.chunks(ctx.options.page_size.max(1) as usize).enumerate() {
        if let Err(e) = ctx.publisher.publish(chunk).await {
            let unpublished = &jobs[i * ctx.options.page_size.max(1) as usize..];
            topic.planner.lock().expect("planner lock").release(unpublished);
            return Err(e);
        }
    }
    Ok(())
}

fn count_event(ctx: &Context, record: &RawRecord, outcome: &'static str) {
    let format = ctx.topics.get(&*record.topic).map_or("unknown", |t| format_name(t.format));
    metrics::counter!(crate::metrics::EVENTS, "topic" => record.topic.to_string(), "format" => format, "outcome" => outcome)
        .increment(1);
}

fn format_name(format: EventFormat) -> &'static str {
    match format {
        EventFormat::Canal => "canal",
        EventFormat::Debezium => "debezium",
        EventFormat::Maxwell => "maxwell",
    }
}
