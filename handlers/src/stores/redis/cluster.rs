//! A redis target on a Redis Cluster (`cluster` = seed node URLs).
//!
//! - **Reads** are pipelined per master: the keys of a batch are grouped by hash slot →
//!   master (the slot map from `CLUSTER SLOTS`), and each master gets one pipeline over
//!   connections of its own ([`super::resp`]'s, or a multiplexed redis-rs connection
//!   where the seed's URL needs it), all masters at once. redis-rs's cluster pipeline
//!   does not do this: it sends a whole pipeline to the node of its first key, refuses
//!   keys of different slots (`CrossSlot`) and turns any error reply into an error of the
//!   whole pipeline (so one poisoned key would fail a batch). A key a master answers with
//!   `MOVED` / `ASK` (a slot migrating) is read again on its own through the cluster
//!   client, which follows the redirect, and the slot map is re-read before the next
//!   batch.
//! - **Repairs** are one compare-and-set script call per goods through the cluster client
//!   (`EVALSHA`, one key, so it runs on the key's master; the client follows `MOVED` /
//!   `ASK`, re-reads the topology after a failover, and loads the script on `NOSCRIPT`).
//! - **The orphan scan** `SCAN`s every master in turn ([`masters`](RedisClusterStore::masters),
//!   [`scan_node`](RedisClusterStore::scan_node)); the cursor names the master and its
//!   own cursor.
//!
//! Errors are classified by `common::classify`: `CLUSTERDOWN`, `TRYAGAIN`, `MOVED`,
//! `ASK`, a master that refuses connections or does not answer make the target
//! unreachable (retried); poison (a key of another type) is drift as on one server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use model::config::RedisTarget;
use model::repair_plan::CellRepair;
use model::{GoodsId, ObservedGoods};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Value};
use tokio::sync::Mutex;

use super::resp::{self, RawPipeline};
use super::slots::SlotMap;
use super::{error_reply, outcomes, read_keys, scan_page, scan_pattern, script_calls, KeyPipeline};
use crate::error::StoreError;
use crate::stores::{ApplyOutcome, ScanPage, Target};

/// Commands routed one key at a time (repair scripts, redirected reads) in flight at once
/// per batch; they share the client's multiplexed connections, so concurrent calls to
/// one master are pipelined on the wire.
const ROUTED_IN_FLIGHT: usize = 64;

pub struct RedisClusterStore {
    name: String,
    key_prefix: String,
    timeout: Duration,
    script: redis::Script,
    client: ClusterClient,
    /// The first seed: its credentials, TLS mode and host (for masters announced without
    /// one) are used for the per-master connections.
    seed: ConnectionInfo,
    /// The cluster client's connection, made on first use, dropped when the cluster did
    /// not answer.
    conn: Mutex<Option<ClusterConnection>>,
    /// Slot map and one connection per master, made on first use, dropped when a master
    /// did not answer or redirected a key.
    topology: Mutex<Option<Arc<Topology>>>,
}

struct Topology {
    slots: SlotMap,
    /// One connection per entry of `slots.masters`, made on first use.
    conns: Vec<Mutex<Option<MultiplexedConnection>>>,
    /// Per master, the batch reads' own connections (`None` where the seed's URL needs
    /// redis-rs's: TLS, RESP3; see [`super::resp`]).
    reads: Vec<Option<RawPipeline>>,
}

impl RedisClusterStore {
    pub fn new(config: &RedisTarget, seeds: &[String]) -> Result<RedisClusterStore, StoreError> {
        let bad = |e: redis::RedisError| StoreError::failed(&config.name, format!("bad redis cluster seed: {e}"));
        let infos =
            seeds.iter().map(|s| s.as_str().into_connection_info()).collect::<Result<Vec<_>, _>>().map_err(bad)?;
        let seed = infos.first().cloned().ok_or_else(|| StoreError::failed(&config.name, "no cluster seed node"))?;
        let timeout = Duration::from_millis(config.timeout_ms);
        let client = ClusterClientBuilder::new(infos)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(3)
            .build()
            .map_err(bad)?;
        Ok(RedisClusterStore {
            name: config.name.clone(),
            key_prefix: config.key_prefix.clone(),
            timeout,
            script: super::cas_script(),
            client,
            seed,
            conn: Mutex::new(None),
            topology: Mutex::new(None),
        })
    }

    pub fn key(&self, goods: GoodsId) -> String {
        model::redis_key(&self.key_prefix, goods)
    }

    fn error(&self, e: redis::RedisError) -> StoreError {
        StoreError::classified(&self.name, &e, &e)
    }

    /// `Err` unreachable when `fut` did not finish within the target's timeout.
    async fn timed<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(StoreError::unreachable(&self.name, format!("{what} timed out"))),
            Ok(r) => r.map_err(|e| self.error(e)),
        }
    }

    async fn cluster_conn(&self) -> Result<ClusterConnection, StoreError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = self.timed("cluster connect", self.client.get_async_connection()).await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Forgets connections and the slot map after `result` says the cluster did not
    /// answer, so the next call starts over.
    async fn forget_if_unreachable<T>(&self, result: &Result<T, StoreError>) {
        if matches!(result, Err(StoreError::Unreachable { .. })) {
            *self.conn.lock().await = None;
            *self.topology.lock().await = None;
        }
    }

    async fn topology(&self) -> Result<Arc<Topology>, StoreError> {
        let mut guard = self.topology.lock().await;
        if let Some(t) = guard.as_ref() {
            return Ok(t.clone());
        }
        let mut conn = self.cluster_conn().await?;
        let reply = self
            .timed(
                "CLUSTER SLOTS",
                conn.route_command(
                    redis::cmd("CLUSTER").arg("SLOTS"),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                ),
            )
            .await?;
        let slots = SlotMap::parse(&reply, &self.seed_host()).map_err(|e| StoreError::failed(&self.name, e))?;
        if slots.masters.is_empty() {
            return Err(StoreError::unreachable(&self.name, "the cluster serves no slot"));
        }
        let conns = slots.masters.iter().map(|_| Mutex::new(None)).collect();
        let reads = slots.masters.iter().map(|m| RawPipeline::for_connection(&self.master_info(m))).collect();
        let t = Arc::new(Topology { slots, conns, reads });
        *guard = Some(t.clone());
        Ok(t)
    }

    fn seed_host(&self) -> String {
        match &self.seed.addr {
            ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
            ConnectionAddr::Unix(_) => "127.0.0.1".into(),
        }
    }

    /// How to connect to a master: its address, the seed's TLS mode and credentials.
    fn master_info(&self, (host, port): &(String, u16)) -> ConnectionInfo {
        let (host, port) = (host.clone(), *port);
        let addr = match &self.seed.addr {
            ConnectionAddr::TcpTls { insecure, tls_params, .. } => {
                ConnectionAddr::TcpTls { host, port, insecure: *insecure, tls_params: tls_params.clone() }
            }
            _ => ConnectionAddr::Tcp(host, port),
        };
        ConnectionInfo { addr, redis: self.seed.redis.clone() }
    }

    /// The connection to master `index` of `topo`.
    async fn master_conn(&self, topo: &Topology, index: usize) -> Result<MultiplexedConnection, StoreError> {
        let mut guard = topo.conns[index].lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let client = redis::Client::open(self.master_info(&topo.slots.masters[index])).map_err(|e| self.error(e))?;
        let c = self.timed("master connect", client.get_multiplexed_async_connection()).await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// `host:port` of every master, sorted: the units of a distributed orphan scan.
    pub async fn masters(&self) -> Result<Vec<String>, StoreError> {
        let result = self.topology().await;
        self.forget_if_unreachable(&result).await;
        let mut masters: Vec<String> = result?.slots.masters.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        masters.sort();
        Ok(masters)
    }

    /// One `SCAN` page of the target's keys on master `node` (`host:port`, as
    /// [`masters`](Self::masters) names it); `next` is `None` when that master is done.
    pub async fn scan_node(&self, node: &str, cursor: Option<Vec<u8>>, limit: usize) -> Result<ScanPage, StoreError> {
        let result = self.scan_node_inner(node, cursor, limit).await;
        self.forget_if_unreachable(&result).await;
        result
    }

    async fn scan_node_inner(&self, node: &str, cursor: Option<Vec<u8>>, limit: usize) -> Result<ScanPage, StoreError> {
        let topo = self.topology().await?;
        let index =
            topo.slots.masters.iter().position(|(h, p)| format!("{h}:{p}") == node).ok_or_else(|| {
                StoreError::unreachable(&self.name, format!("{node} is not a master of the cluster now"))
            })?;
        let start = cursor.map(|c| String::from_utf8_lossy(&c).into_owned()).unwrap_or_else(|| "0".into());
        let pattern = scan_pattern(&self.key_prefix);
        let reply: Value = match &topo.reads[index] {
            Some(reads) => resp::timed(&self.name, self.timeout, reads.scan(&start, &pattern, limit)).await?,
            None => {
                let mut conn = self.master_conn(&topo, index).await?;
                let scan = redis::cmd("SCAN").arg(&start).arg("MATCH").arg(&pattern).arg("COUNT").arg(limit).clone();
                self.timed("SCAN", scan.query_async(&mut conn)).await?
            }
        };
        let (next, keys): (String, Vec<Vec<u8>>) = redis::from_redis_value(&reply).map_err(|e| self.error(e))?;
        Ok(scan_page(&self.key_prefix, keys, (next != "0").then(|| next.into_bytes())))
    }

    /// One key's command through the cluster client (which follows redirects); an error
    /// reply is returned as that key's reply.
    async fn routed(&self, cmd: &'static str, key: &str) -> Result<Value, StoreError> {
        let mut conn = self.cluster_conn().await?;
        match tokio::time::timeout(self.timeout, redis::cmd(cmd).arg(key).query_async::<Value>(&mut conn)).await {
            Err(_) => Err(StoreError::unreachable(&self.name, format!("{cmd} timed out"))),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => match e.code() {
                Some(code) if !common::Classify::is_transient(&e) => Ok(error_reply(code, e.detail())),
                _ => Err(self.error(e)),
            },
        }
    }

    async fn pipeline_inner(&self, cmd: &'static str, keys: &[String]) -> Result<Vec<Value>, StoreError> {
        let topo = self.topology().await?;
        let mut per_master: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut alone = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match topo.slots.master_of(key.as_bytes()) {
                Some(m) => per_master.entry(m).or_default().push(i),
                None => alone.push(i),
            }
        }
        let mut replies: Vec<Value> = vec![Value::Nil; keys.len()];
        let topo_ref = &topo;
        let answers = futures::future::try_join_all(per_master.into_iter().map(|(m, indexes)| async move {
            let got = match &topo_ref.reads[m] {
                Some(reads) => {
                    let these: Vec<&str> = indexes.iter().map(|&i| keys[i].as_str()).collect();
                    resp::timed(&self.name, self.timeout, reads.run(cmd, &these)).await?
                }
                None => {
                    let mut conn = self.master_conn(topo_ref, m).await?;
                    let mut pipe = redis::pipe();
                    for &i in &indexes {
                        pipe.cmd(cmd).arg(&keys[i]);
                    }
                    self.timed(cmd, async { conn.req_packed_commands(&pipe, 0, indexes.len()).await }).await?
                }
            };
            if got.len() != indexes.len() {
                return Err(StoreError::failed(
                    &self.name,
                    format!("{cmd} pipeline: {} replies for {} keys", got.len(), indexes.len()),
                ));
            }
            Ok(indexes.into_iter().zip(got).collect::<Vec<_>>())
        }))
        .await?;
        for (i, reply) in answers.into_iter().flatten() {
            let redirected =
                matches!(&reply, Value::ServerError(e) if matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN"));
            if redirected {
                alone.push(i);
            } else {
                replies[i] = reply;
            }
        }
        if !alone.is_empty() {
            // The slot map is out of date (a slot moved or is moving): read it again next
            // time, and let the cluster client find these keys now.
            *self.topology.lock().await = None;
            tracing::debug!(target = %self.name, keys = alone.len(), "keys redirected or in unserved slots: read through the cluster client");
            let found: Vec<(usize, Value)> = futures::stream::iter(alone)
                .map(|i| async move { Ok::<_, StoreError>((i, self.routed(cmd, &keys[i]).await?)) })
                .buffer_unordered(ROUTED_IN_FLIGHT)
                .try_collect()
                .await?;
            for (i, reply) in found {
                replies[i] = reply;
            }
        }
        Ok(replies)
    }

    async fn apply_inner(&self, repairs: &[CellRepair]) -> Result<Vec<ApplyOutcome>, StoreError> {
        let calls = script_calls(repairs);
        let conn = self.cluster_conn().await?;
        let results: HashMap<GoodsId, Value> = futures::stream::iter(calls.order.iter().copied())
            .map(|g| {
                let mut conn = conn.clone();
                let mut invocation = self.script.key(self.key(g));
                invocation.arg(&calls.args[&g]);
                async move {
                    let reply = tokio::time::timeout(self.timeout, invocation.invoke_async::<Value>(&mut conn)).await;
                    let value = match reply {
                        Err(_) => return Err(StoreError::unreachable(&self.name, "compare-and-set timed out")),
                        Ok(Ok(v)) => v,
                        // The script failed for this goods alone: its outcome is unknown.
                        Ok(Err(e)) if e.code().is_some() && !common::Classify::is_transient(&e) => {
                            error_reply(e.code().unwrap_or_default(), e.detail())
                        }
                        Ok(Err(e)) => return Err(self.error(e)),
                    };
                    Ok((g, value))
                }
            })
            .buffer_unordered(ROUTED_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(outcomes(calls.slots, &results))
    }
}

#[async_trait]
impl KeyPipeline for RedisClusterStore {
    fn store_name(&self) -> &str {
        &self.name
    }

    /// `cmd key` for every key: one pipeline per master, all masters at once.
    async fn pipeline(&self, cmd: &'static str, keys: &[String]) -> Result<Vec<Value>, StoreError> {
        let result = self.pipeline_inner(cmd, keys).await;
        self.forget_if_unreachable(&result).await;
        result
    }
}

#[async_trait]
impl Target for RedisClusterStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn read(&self, goods: &[GoodsId]) -> Result<Vec<ObservedGoods>, StoreError> {
        if goods.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = goods.iter().map(|&g| self.key(g)).collect();
        read_keys(self, &keys).await
    }

    async fn apply(&self, repairs: &[CellRepair]) -> Result<Vec<ApplyOutcome>, StoreError> {
        if repairs.is_empty() {
            return Ok(Vec::new());
        }
        let result = self.apply_inner(repairs).await;
        self.forget_if_unreachable(&result).await;
        result
    }

    /// Every master in turn, in address order; the cursor is `host:port cursor`. A master
    /// that is gone when its turn comes is skipped (its slots' keys are on the master that
    /// took over, scanned when its address sorts later; a full run after a failover may
    /// need a second pass).
    async fn scan(&self, cursor: Option<Vec<u8>>, limit: usize) -> Result<ScanPage, StoreError> {
        let masters = self.masters().await?;
        let (node, node_cursor) = match cursor {
            None => match masters.first() {
                Some(first) => (first.clone(), None),
                None => return Ok(ScanPage::default()),
            },
            Some(c) => {
                let text = String::from_utf8_lossy(&c).into_owned();
                let (node, at) = text
                    .split_once(' ')
                    .ok_or_else(|| StoreError::failed(&self.name, format!("bad cluster scan cursor `{text}`")))?;
                (node.to_string(), Some(at.as_bytes().to_vec()))
            }
        };
        let next_master =
            |node: &str| masters.iter().find(|m| m.as_str() > node).map(|m| format!("{m} 0").into_bytes());
        if !masters.contains(&node) {
            // The master of the cursor failed over or left: go on with the next address.
            return Ok(ScanPage { next: next_master(&node), ..Default::default() });
        }
        let mut page = self.scan_node(&node, node_cursor, limit).await?;
        page.next = match page.next.take() {
            Some(at) => Some(format!("{node} {}", String::from_utf8_lossy(&at)).into_bytes()),
            // This master is done: the next one in address order (a master that took over
            // during the scan is scanned when its address sorts after this one).
            None => next_master(&node),
        };
        Ok(page)
    }
}
