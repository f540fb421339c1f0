//! Semantic checks of a parsed configuration; each problem names its key path.

use std::collections::HashSet;

use super::{BusKind, Config, TargetConfig};

pub fn validate(c: &Config) -> Vec<String> {
    let mut p = Vec::new();
    if !c.mysql.url.starts_with("mysql://") && !c.mysql.url.starts_with("mariadb://") {
        p.push(format!("`mysql.url`: `{}` is not a mysql:// URL", super::redact_url(&c.mysql.url)));
    }
    if c.retry.initial_backoff_ms == 0 || c.retry.initial_backoff_ms > c.retry.max_backoff_ms {
        p.push("`retry.initial_backoff_ms`: must be at least 1 and at most `retry.max_backoff_ms`".into());
    }
    if c.retry.max_attempts == 0 && c.retry.give_up_after_ms == 0 {
        p.push("`retry.max_attempts`, `retry.give_up_after_ms`: both 0 would retry forever; set at least one".into());
    }
    if c.mysql.databases == 0 {
        p.push("`mysql.databases`: must be at least 1".into());
    }
    if c.mysql.tables_per_database == 0 {
        p.push("`mysql.tables_per_database`: must be at least 1".into());
    }
    if c.mysql.databases.saturating_mul(c.mysql.tables_per_database) > 10_000 {
        p.push(
            "`mysql.databases` * `mysql.tables_per_database`: table names have 4 digits, at most 10000 shards".into(),
        );
    }
    if !c.mysql.database_urls.is_empty() && c.mysql.database_urls.len() != c.mysql.databases as usize {
        p.push(format!(
            "`mysql.database_urls`: {} URLs given for {} databases (one per act_n, or none)",
            c.mysql.database_urls.len(),
            c.mysql.databases
        ));
    }
    if !c.mysql.db_prefix.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
        p.push("`mysql.db_prefix`: only ASCII letters, digits and `_`".into());
    }
    if c.mysql.pool_size == 0 {
        p.push("`mysql.pool_size`: must be at least 1".into());
    }
    if !(c.repair.max_drift_ratio > 0.0 && c.repair.max_drift_ratio <= 1.0) {
        p.push(format!("`repair.max_drift_ratio`: {} is not in (0, 1]", c.repair.max_drift_ratio));
    }
    if c.repair.breaker_window_goods == 0 || c.repair.breaker_window_ms == 0 {
        p.push("`repair.breaker_window_goods`, `repair.breaker_window_ms`: must be at least 1".into());
    }
    if c.kafka.partitions < 0 || c.kafka.replication_factor < 0 {
        p.push("`kafka.partitions`, `kafka.replication_factor`: at least 0 (0: the broker's default)".into());
    }
    if c.repair.max_repairs_per_sec == 0 {
        p.push("`repair.max_repairs_per_sec`: must be at least 1".into());
    }
    if c.full.batch_size == 0 || c.full.batch_size > 10_000 {
        p.push("`full.batch_size`: must be in 1..=10000".into());
    }
    if c.full.concurrency == 0 {
        p.push("`full.concurrency`: must be at least 1".into());
    }
    if c.full.activity_reuse_ms > 60_000 {
        p.push("`full.activity_reuse_ms`: at most 60000 (a full run's check may see activities this old)".into());
    }
    if c.targets.is_empty() {
        p.push("`targets`: at least one [[targets]] is required".into());
    }
    let mut names = HashSet::new();
    for (i, t) in c.targets.iter().enumerate() {
        let name = t.name();
        if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
            p.push(format!("`targets[{i}].name`: `{name}` must be non-empty ASCII letters, digits, `-` or `_`"));
        }
        if !names.insert(name.to_string()) {
            p.push(format!("`targets[{i}].name`: `{name}` is used by another target"));
        }
        match t {
            TargetConfig::Redis(r) => {
                let is_redis_url = |u: &str| u.starts_with("redis://") || u.starts_with("rediss://");
                match (&r.url, &r.cluster) {
                    (Some(url), None) => {
                        if !is_redis_url(url) {
                            p.push(format!("`targets[{i}].url`: `{}` is not a redis:// URL", super::redact_url(url)));
                        }
                    }
                    (None, Some(seeds)) => {
                        if seeds.is_empty() {
                            p.push(format!("`targets[{i}].cluster`: target `{name}` names no seed node"));
                        }
                        for (j, seed) in seeds.iter().enumerate() {
                            if !is_redis_url(seed) {
                                p.push(format!(
                                    "`targets[{i}].cluster[{j}]`: `{}` is not a redis:// URL",
                                    super::redact_url(seed)
                                ));
                            }
                        }
                    }
                    (Some(_), Some(_)) => p.push(format!(
                        "`targets[{i}]`: redis target `{name}` gives both `url` and `cluster`; give exactly one"
                    )),
                    (None, None) => p.push(format!(
                        "`targets[{i}]`: redis target `{name}` gives neither `url` (one server) nor `cluster` \
                         (seed nodes of a Redis Cluster); give exactly one"
                    )),
                }
            }
            TargetConfig::Hbase(h) => {
                if h.address.rsplit_once(':').and_then(|(_, port)| port.parse::<u16>().ok()).is_none() {
                    p.push(format!("`targets[{i}].address`: `{}` is not host:port", h.address));
                }
                if h.pool_size == 0 {
                    p.push(format!("`targets[{i}].pool_size`: must be at least 1"));
                }
                if h.table.is_empty() || h.family.is_empty() {
                    p.push(format!("`targets[{i}]`: table and family must be non-empty"));
                }
            }
        }
    }
    if c.bus.kind == BusKind::Kafka && c.kafka.brokers.trim().is_empty() {
        p.push("`kafka.brokers`: required when `bus.kind` is \"kafka\"".into());
    }
    if c.bus.queue_capacity == 0 {
        p.push("`bus.queue_capacity`: must be at least 1".into());
    }
    let mut topics = HashSet::new();
    for (i, d) in c.triggers.dts.iter().enumerate() {
        if d.topic.is_empty() || !topics.insert(d.topic.clone()) {
            p.push(format!("`triggers.dts[{i}].topic`: empty or repeated topic `{}`", d.topic));
        }
        if d.stages_ms.is_empty() {
            p.push(format!("`triggers.dts[{i}].stages_ms`: at least one stage"));
        }
        if d.stages_ms.windows(2).any(|w| w[0] >= w[1]) {
            p.push(format!("`triggers.dts[{i}].stages_ms`: stages must increase"));
        }
    }
    if c.triggers.scanner.enabled && (c.triggers.scanner.rows_per_sec == 0 || c.triggers.scanner.page_size == 0) {
        p.push("`triggers.scanner`: rows_per_sec and page_size must be at least 1".into());
    }
    if c.triggers.full.job_goods == 0 || c.triggers.full.job_goods > 10_000 {
        p.push("`triggers.full.job_goods`: must be in 1..=10000".into());
    }
    if c.triggers.full.orphan_parts == 0 || c.triggers.full.orphan_parts > 65_536 {
        p.push("`triggers.full.orphan_parts`: must be in 1..=65536".into());
    }
    if c.triggers.full.lease_ms < 1000 {
        p.push("`triggers.full.lease_ms`: must be at least 1000".into());
    }
    if c.triggers.full.goods_id_column.is_empty() {
        p.push("`triggers.full.goods_id_column`: must be non-empty".into());
    }
    if c.handler.workers == 0 || c.handler.batch_size == 0 {
        p.push("`handler`: workers and batch_size must be at least 1".into());
    }
    if c.admin.listen.parse::<std::net::SocketAddr>().is_err() {
        p.push(format!("`admin.listen`: `{}` is not ip:port", c.admin.listen));
    }
    let v = &c.verifier;
    if v.topic.as_deref().is_some_and(|t| t.trim().is_empty()) {
        p.push("`verifier.topic`: must not be empty (leave it out for no verifier)".into());
    }
    if v.topic.is_some() && c.kafka.brokers.trim().is_empty() {
        p.push("`kafka.brokers`: required when `verifier.topic` is set".into());
    }
    if v.price_bands.iter().any(|b| *b <= 0) || v.price_bands.windows(2).any(|w| w[0] >= w[1]) {
        p.push(format!("`verifier.price_bands`: {:?} must be positive and strictly ascending (cents)", v.price_bands));
    }
    if v.price_bands.len() > 20 {
        p.push("`verifier.price_bands`: at most 20 bounds (each band is a label value)".into());
    }
    if v.tags.len() > 100 || v.biz_codes.len() > 100 || v.max_biz_codes > 1000 {
        p.push("`verifier`: at most 100 tags and 100 biz_codes, max_biz_codes at most 1000 (label values)".into());
    }
    if v.batch_size == 0 || v.batch_size > 10_000 {
        p.push("`verifier.batch_size`: must be in 1..=10000".into());
    }
    if v.concurrency == 0 {
        p.push("`verifier.concurrency`: must be at least 1".into());
    }
    super::key::validate(&c.key_activities, &mut p);
    if let Some(e) = &c.hbase_emulator {
        if e.listen.parse::<std::net::SocketAddr>().is_err() {
            p.push(format!("`hbase_emulator.listen`: `{}` is not ip:port", e.listen));
        }
    }
    p
}
