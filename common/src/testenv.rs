//! Addresses of the servers the test suites talk to: one set of environment variables,
//! loopback defaults, distinct from the production overrides (`RECONCILER_MYSQL_URL`,
//! `RECONCILER_KAFKA_BROKERS`, ...), so a shell configured for a real deployment never
//! points tests at it.
//!
//! | variable | default |
//! |---|---|
//! | `RECONCILER_TEST_MYSQL_URL` | `mysql://root@127.0.0.1:3306` |
//! | `RECONCILER_TEST_REDIS_URL` | `redis://127.0.0.1:6379` |
//! | `RECONCILER_TEST_KAFKA_BROKERS` | `127.0.0.1:9092` |
//! | `RECONCILER_TEST_REDIS_CLUSTER` | `redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003` |
//!
//! Tests that stop or restart the database start their own server: [`mariadb`]; tests
//! that stop a Redis Cluster node start their own cluster: [`redis_cluster`].

pub mod mariadb;
pub mod redis_cluster;

fn var(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_string())
}

pub fn mysql_url() -> String {
    var("RECONCILER_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306")
}

pub fn redis_url() -> String {
    var("RECONCILER_TEST_REDIS_URL", "redis://127.0.0.1:6379")
}

pub fn kafka_brokers() -> String {
    var("RECONCILER_TEST_KAFKA_BROKERS", "127.0.0.1:9092")
}

/// Seed nodes of the test Redis Cluster (`scripts/redis-cluster.sh` starts it).
pub fn redis_cluster_nodes() -> Vec<String> {
    var("RECONCILER_TEST_REDIS_CLUSTER", "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003")
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}
