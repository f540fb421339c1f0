//! Environment overrides for addresses and secrets, and URL redaction for logs.
//!
//! | variable | overrides |
//! |---|---|
//! | `RECONCILER_MYSQL_URL` | `mysql.url` |
//! | `RECONCILER_MYSQL_DATABASE_URLS` | `mysql.database_urls` (comma-separated) |
//! | `RECONCILER_DB_PREFIX` | `mysql.db_prefix` |
//! | `RECONCILER_TARGET_<NAME>_URL` | `url` of the redis target `<name>` |
//! | `RECONCILER_TARGET_<NAME>_CLUSTER` | `cluster` of the Redis Cluster target `<name>` (comma-separated) |
//! | `RECONCILER_TARGET_<NAME>_ADDRESS` | `address` of the hbase target `<name>` |
//! | `RECONCILER_KAFKA_BROKERS` | `kafka.brokers` |
//! | `RECONCILER_KAFKA_INSTANCE_ID` | `kafka.instance_id` (static group membership: e.g. the pod name of a StatefulSet) |
//! | `RECONCILER_ADMIN_LISTEN` | `admin.listen` |
//! | `RECONCILER_ADMIN_TOKEN` | `admin.token` |
//!
//! `<NAME>` is the target name upper-cased with `-` as `_` (`redis-a` → `REDIS_A`).

use super::{Config, TargetConfig};

pub fn target_env_name(target: &str) -> String {
    target.to_ascii_uppercase().replace('-', "_")
}

/// Applies the overrides above; `Err` names a target-specific variable set for a target
/// of the other kind.
pub fn apply_env_overrides(config: &mut Config, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    if let Some(v) = env("RECONCILER_MYSQL_URL") {
        config.mysql.url = v;
    }
    if let Some(v) = env("RECONCILER_MYSQL_DATABASE_URLS") {
        config.mysql.database_urls = v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    }
    if let Some(v) = env("RECONCILER_DB_PREFIX") {
        config.mysql.db_prefix = v;
    }
    if let Some(v) = env("RECONCILER_KAFKA_BROKERS") {
        config.kafka.brokers = v;
    }
    if let Some(v) = env("RECONCILER_KAFKA_INSTANCE_ID") {
        config.kafka.instance_id = (!v.is_empty()).then_some(v);
    }
    if let Some(v) = env("RECONCILER_ADMIN_LISTEN") {
        config.admin.listen = v;
    }
    if let Some(v) = env("RECONCILER_ADMIN_TOKEN") {
        config.admin.token = Some(v);
    }
    let mut problems = Vec::new();
    for target in &mut config.targets {
        let base = format!("RECONCILER_TARGET_{}", target_env_name(target.name()));
        match target {
            TargetConfig::Redis(t) => {
                if let Some(v) = env(&format!("{base}_URL")) {
                    if t.cluster.is_some() {
                        problems.push(format!(
                            "{base}_URL is set but `{}` is a cluster target (use {base}_CLUSTER)",
                            t.name
                        ));
                    } else {
                        t.url = Some(v);
                    }
                }
                if let Some(v) = env(&format!("{base}_CLUSTER")) {
                    if t.url.is_some() {
                        problems.push(format!(
                            "{base}_CLUSTER is set but `{}` is a one-server target (use {base}_URL)",
                            t.name
                        ));
                    } else {
                        t.cluster =
                            Some(v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect());
                    }
                }
                if env(&format!("{base}_ADDRESS")).is_some() {
                    problems.push(format!("{base}_ADDRESS is set but `{}` is a redis target (use {base}_URL)", t.name));
                }
            }
            TargetConfig::Hbase(t) => {
                if let Some(v) = env(&format!("{base}_ADDRESS")) {
                    t.address = v;
                }
                if env(&format!("{base}_URL")).is_some() {
                    problems
                        .push(format!("{base}_URL is set but `{}` is an hbase target (use {base}_ADDRESS)", t.name));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Replaces the password of a `scheme://user:password@host` URL with `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return url.to_string() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_string(),
    }
}
