//! The single-server Redis store's batch reads on their own RESP2 connections
//! (`stores/redis/resp.rs`) against the machine's Redis: every shape a key can have reads
//! as redis-rs reads it, the orphan scan pages as with redis-rs, replies of megabytes arrive whole, and a server with a password
//! and a database number is spoken to as its URL says.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use handlers::stores::redis::RedisStore;
use handlers::{StoreError, Target};
use model::config::RedisTarget;
use model::{GoodsId, ObservedGoods};
use redis::Commands;

fn target(url: &str, prefix: &str) -> RedisTarget {
    RedisTarget {
        name: "redis-t".into(),
        url: Some(url.into()),
        cluster: None,
        key_prefix: prefix.into(),
        timeout_ms: 5_000,
    }
}

fn store(url: &str, prefix: &str) -> RedisStore {
    RedisStore::new(&target(url, prefix), url).unwrap()
}

/// A prefix of its own per test run, and its keys removed at the end.
struct Keys {
    conn: redis::Connection,
    prefix: String,
}

impl Keys {
    fn new(url: &str, test: &str) -> Keys {
        let conn = redis::Client::open(url).unwrap().get_connection().unwrap();
        Keys { conn, prefix: format!("it:resp:{test}:{}:", std::process::id()) }
    }

    fn key(&self, goods: GoodsId) -> String {
        format!("{}{goods}", self.prefix)
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let keys: Vec<String> = self.conn.keys(format!("{}*", self.prefix)).unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = self.conn.del(keys);
        }
    }
}

#[tokio::test]
async fn every_shape_reads_as_redis_rs_reads_it() {
    // Database 6: the connections must SELECT it.
    let url = format!("{}/6", common::testenv::redis_url());
    let mut k = Keys::new(&url, "shapes");
    let big_value = vec![b'x'; 3 << 20];
    let many: Vec<(String, String)> = (0..20_000).map(|i| (i.to_string(), format!("v{i}"))).collect();
    let _: () = k.conn.hset_multiple(k.key(1), &[("7001", "{\"a\":1}"), ("7002", ""), ("x\r\ny", "\r\n")]).unwrap();
    let _: () = k.conn.set(k.key(2), "a string, not a hash").unwrap();
    let _: () = k.conn.rpush(k.key(3), "a list").unwrap();
    let _: () = k.conn.hset(k.key(4), "7001", &big_value).unwrap();
    let _: () = k.conn.hset_multiple(k.key(5), &many).unwrap();
    let _: () = k.conn.hset(k.key(6), vec![0u8, 0xff, b'\n'], vec![0xfeu8; 7]).unwrap();
    let goods: Vec<GoodsId> = (0..=7).collect(); // 0 and 7: no key at all

    let raw = store(&url, &k.prefix).read(&goods).await.unwrap();
    // RESP3 is redis-rs's own connection: the reference.
    let reference = store(&format!("{url}?protocol=resp3"), &k.prefix).read(&goods).await.unwrap();
    assert_eq!(raw, reference);

    let fields =
        |o: &ObservedGoods| o.cells.keys().map(|q| String::from_utf8_lossy(q).into_owned()).collect::<Vec<_>>();
    assert_eq!(fields(&raw[1]), vec!["7001", "7002", "x\r\ny"]);
    assert_eq!(raw[1].cells[&b"x\r\ny"[..]].value, b"\r\n");
    assert!(raw[2].foreign.is_some() && raw[3].foreign.is_some(), "keys of another type carry their DUMP");
    assert_eq!(raw[4].cells[&b"7001"[..]].value, big_value);
    assert_eq!(raw[5].cells.len(), 20_000);
    assert_eq!(raw[5].cells[&b"19999"[..]].value, b"v19999");
    assert_eq!(raw[6].cells[&vec![0u8, 0xff, b'\n']].value, vec![0xfe; 7]);
    assert!(raw[0].is_empty() && raw[7].is_empty());

    // The orphan scan's pages: every goods key and the keys not of the contract's shape.
    let _: () = k.conn.set(format!("{}not-a-goods", k.prefix), "x").unwrap();
    let scan_all = |s: RedisStore| async move {
        let (mut goods, mut foreign, mut cursor) = (Vec::new(), Vec::new(), None);
        loop {
            let page = s.scan(cursor, 3).await.unwrap();
            goods.extend(page.goods);
            foreign.extend(page.foreign);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        goods.sort_unstable();
        foreign.sort_unstable();
        (goods, foreign)
    };
    let scanned = scan_all(store(&url, &k.prefix)).await;
    assert_eq!(scanned, scan_all(store(&format!("{url}?protocol=resp3"), &k.prefix)).await);
    assert_eq!(scanned, ((1..=6).collect(), vec![format!("{}not-a-goods", k.prefix).into_bytes()]));

    // Idle connections serve the next batches, several at once.
    let s = store(&url, &k.prefix);
    let reads = futures::future::try_join_all((0..8).map(|_| s.read(&goods))).await.unwrap();
    assert!(reads.iter().all(|r| *r == reference));
}

/// A private `redis-server` with a password, stopped on drop.
struct PasswordRedis {
    port: u16,
    child: Child,
}

impl PasswordRedis {
    fn start(password: &str) -> PasswordRedis {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--requirepass", password])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        PasswordRedis { port, child }
    }
}

impl Drop for PasswordRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_password_and_a_database_number_are_used_as_the_url_says() {
    let server = PasswordRedis::start("s3cret");
    let url = format!("redis://:s3cret@127.0.0.1:{}/2", server.port);
    let mut conn = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
    let _: () = conn.hset("g:1", "7001", "in db 2").unwrap();

    let read = store(&url, "g:").read(&[1]).await.unwrap();
    let cells: BTreeMap<Vec<u8>, Vec<u8>> = read[0].cells.iter().map(|(q, c)| (q.clone(), c.value.clone())).collect();
    assert_eq!(cells, BTreeMap::from([(b"7001".to_vec(), b"in db 2".to_vec())]));
    let other_db = format!("redis://:s3cret@127.0.0.1:{}/3", server.port);
    assert!(store(&other_db, "g:").read(&[1]).await.unwrap()[0].is_empty());

    let wrong = format!("redis://:nope@127.0.0.1:{}/2", server.port);
    match store(&wrong, "g:").read(&[1]).await {
        Err(StoreError::Failed { store, reason }) => {
            assert_eq!(store, "redis-t");
            assert!(reason.contains("AUTH refused"), "{reason}");
        }
        other => panic!("a wrong password must fail the read, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_is_gone_is_unreachable() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}/0");
    match store(&url, "g:").read(&[1]).await {
        Err(StoreError::Unreachable { .. }) => {}
        other => panic!("expected unreachable, got {other:?}"),
    }
}
