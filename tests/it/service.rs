//! `reconciler serve` as a process: handler workers on a real Kafka broker, the admin
//! HTTP endpoints, and a clean SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use model::job::{Job, TriggerKind};
use model::GoodsId;
use rand::Rng;
use triggers::JobPublisher;

use crate::common::{corrupt, data, healed, projected_goods, TestEnv};

pub fn brokers() -> String {
    ::common::testenv::kafka_brokers()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `reconciler serve`, killed on drop if still alive.
pub struct Service {
    pub child: Child,
    pub admin: String,
    pub config_path: std::path::PathBuf,
}

impl Service {
    /// Starts serve on `env`'s stores with `extra` TOML appended (bus, triggers, ...).
    pub fn start(env: &TestEnv, extra: &str) -> Service {
        let admin = format!("127.0.0.1:{}", free_port());
        let toml = format!("{}\n[admin]\nlisten = \"{admin}\"\ntoken = \"sekret\"\n{extra}", env.toml);
        let config_path =
            std::env::temp_dir().join(format!("{}serve-{}.toml", env.prefix, rand::thread_rng().gen::<u32>()));
        std::fs::write(&config_path, toml).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_reconciler"))
            .args(["--config", config_path.to_str().unwrap(), "serve"])
            .env("RECONCILER_LOG", "info,sqlx=warn,rdkafka=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let service = Service { child, admin, config_path };
        service.wait_healthy();
        service
    }

    fn wait_healthy(&self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok((200, _)) = http(&self.admin, "GET", "/healthz", None, None) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("serve did not become healthy on {}", self.admin);
    }

    /// Sends SIGTERM and waits for the exit status and stderr.
    pub fn terminate(mut self) -> (i32, String) {
        let pid = self.child.id() as i32;
        unsafe_kill(pid, 15);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                self.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                return (status.code().unwrap_or(-1), err);
            }
            assert!(start.elapsed() < Duration::from_secs(60), "serve did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config_path);
    }
}

fn unsafe_kill(pid: i32, signal: i32) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success());
}

/// Minimal HTTP/1.1 client: (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// Polls until `check` holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check()
}

pub fn kafka_section(env: &TestEnv) -> String {
    format!(
        "[bus]\nkind = \"kafka\"\n[kafka]\nbrokers = \"{}\"\ngroup = \"{p}handlers\"\njobs_topic = \"{p}jobs\"\ndead_letter_topic = \"{p}dlq\"\ntrigger_group = \"{p}dts\"\npartitions = 2\nproducer_config = {{ \"batch.num.messages\" = \"1\" }}\n[handler]\nworkers = 2\nbatch_size = 50\nbatch_wait_ms = 20\n",
        brokers(),
        p = env.prefix
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_on_kafka_are_checked_and_repaired_and_sigterm_drains() {
    let env = TestEnv::new().await;
    let set = data(11_000, 30);
    env.seed(&set, 3_600_000).await;
    let goods = projected_goods(&env, &set).await;
    let ids: Vec<GoodsId> = (11_000..11_030).collect();
    handlers::run::run_goods(&env.app.handler, &ids, &handlers::Mode::sync("t".into()), &env.app.run_options(None))
        .await
        .unwrap();
    let victims = &goods[..5];
    let fields = corrupt(&env, "redis-a", victims);

    let service = Service::start(&env, &kafka_section(&env));
    let publisher =
        triggers::bus::kafka::publisher::KafkaPublisher::new(&brokers(), &format!("{}jobs", env.prefix)).unwrap();
    let now = ::common::clock::now_ms();
    let jobs: Vec<Job> = victims
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mut j = Job::new(*g, TriggerKind::Scanner, format!("t-{i}"));
            j.origin_ms = now;
            // The last one is due a little later: workers hold it until then.
            if i == victims.len() - 1 {
                j.not_before_ms = now + 1500;
            }
            j
        })
        .collect();
    publisher.publish(&jobs).await.unwrap();
    assert!(
        eventually(Duration::from_secs(30), || healed(&env, "redis-a", victims, &fields)).await,
        "every job's goods repaired"
    );

    let (status, metrics) = http(&service.admin, "GET", "/metrics", None, None).unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("reconciler_repairs_total{target=\"redis-a\",kind=\"corrupt\",trigger=\"scanner\"} 5"),
        "{metrics}"
    );
    assert!(metrics.contains("reconciler_jobs_total{trigger=\"scanner\",outcome=\"done\"} 5"), "{metrics}");
    assert!(metrics.contains("reconciler_change_to_repair_ms_count{trigger=\"scanner\"} 5"), "{metrics}");

    let (code, stderr) = service.terminate();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("draining"), "{stderr}");
}

/// Polls `GET /runs/{id}` until the run is finished; its record.
async fn finished_run(admin: &str, run_id: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let done = eventually(Duration::from_secs(90), || {
        let (status, body) = http(admin, "GET", &format!("/runs/{run_id}"), None, None).unwrap();
        assert_eq!(status, 200, "{body}");
        last = serde_json::from_str(&body).unwrap();
        last["state"] != "running"
    })
    .await;
    assert!(done, "run {run_id} still running: {last}");
    last
}

/// A repair of an activity with more goods than `admin.repair_async_goods` answers 202
/// with a run id at once and is followed through `GET /runs/{id}`; a small one still
/// answers its report (with its run id); a run whose instance died is failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_post_repair_answers_202_and_is_followed_through_runs() {
    let env = TestEnv::new().await;
    let set = data(13_000, 120);
    env.seed(&set, 3_600_000).await;
    let goods = projected_goods(&env, &set).await;
    handlers::run::run_goods(&env.app.handler, &goods, &handlers::Mode::sync("t".into()), &env.app.run_options(None))
        .await
        .unwrap();
    let activity = 7001;
    let of_activity: Vec<GoodsId> = {
        let mut ids: Vec<GoodsId> =
            set.goods.iter().filter(|g| g.activity_id == activity).map(|g| g.goods_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    assert!(of_activity.len() > 20, "activity {activity} has {} goods", of_activity.len());
    let drifted: Vec<GoodsId> = of_activity.iter().copied().filter(|g| goods.contains(g)).take(5).collect();
    let fields = corrupt(&env, "redis-a", &drifted);
    // Keys of [admin] (Service::start opens the table).
    let service = Service::start(&env, "repair_async_goods = 20\nrepair_wait_ms = 60000\n");

    let body = format!("{{\"activity_id\": {activity}}}");
    let (status, accepted) = http(&service.admin, "POST", "/repair", Some(&body), Some("sekret")).unwrap();
    assert_eq!(status, 202, "{accepted}");
    let accepted: serde_json::Value = serde_json::from_str(&accepted).unwrap();
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    assert_eq!(accepted["follow"], format!("/runs/{run_id}"));
    assert_eq!(accepted["goods_more_than"], 20, "{accepted}");
    let run = finished_run(&service.admin, &run_id).await;
    assert_eq!(run["state"], "done", "{run}");
    assert_eq!(run["source"], format!("repair:activity:{activity}"));
    assert_eq!(run["checked"], of_activity.len() as u64, "{run}");
    assert_eq!(run["published"], of_activity.len() as u64, "the run counted the activity's goods: {run}");
    assert_eq!(run["repaired"], drifted.len() as u64, "{run}");
    assert_eq!(run["progress"], 1.0, "{run}");
    assert!(healed(&env, "redis-a", &drifted, &fields));

    // Small: the report itself, with its run id, recorded done.
    let fields = corrupt(&env, "redis-b", &drifted[..2]);
    let body = format!("{{\"goods_ids\": [{}, {}]}}", drifted[0], drifted[1]);
    let (status, report) = http(&service.admin, "POST", "/repair", Some(&body), Some("sekret")).unwrap();
    assert_eq!(status, 200, "{report}");
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["repairs"].as_array().unwrap().len(), 2, "{report}");
    assert!(healed(&env, "redis-b", &drifted[..2], &fields));
    let run = finished_run(&service.admin, report["run_id"].as_str().unwrap()).await;
    assert_eq!((run["state"].as_str(), run["repaired"].as_u64()), (Some("done"), Some(2)), "{run}");

    // A local run whose instance stopped heartbeating is failed by the supervisor.
    let ledger = ::common::mysql::ledger::Ledger::new(&env.app.pools);
    let now = ::common::clock::now_ms();
    ledger.create_local("repair-of-a-dead-instance", "repair:activity:1", 10, "gone", now, -1).await.unwrap();
    let run = finished_run(&service.admin, "repair-of-a-dead-instance").await;
    assert_eq!(run["state"], "failed", "{run}");
    assert!(run["error"].as_str().unwrap().contains("instance gone stopped"), "{run}");
    let (code, stderr) = service.terminate();
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_repair_is_the_on_call_path() {
    let env = TestEnv::new().await;
    let set = data(12_000, 20);
    env.seed(&set, 3_600_000).await;
    let goods = projected_goods(&env, &set).await;
    let ids: Vec<GoodsId> = (12_000..12_020).collect();
    handlers::run::run_goods(&env.app.handler, &ids, &handlers::Mode::sync("t".into()), &env.app.run_options(None))
        .await
        .unwrap();
    let fields = corrupt(&env, "redis-a", &goods[..2]);
    let service = Service::start(&env, "");

    let body = format!("{{\"goods_ids\": [{}, {}]}}", goods[0], goods[1]);
    let (status, _) = http(&service.admin, "POST", "/repair", Some(&body), None).unwrap();
    assert_eq!(status, 401, "token required");
    let (status, _) = http(&service.admin, "POST", "/repair", Some(&body), Some("wrong")).unwrap();
    assert_eq!(status, 401);
    let (status, report) = http(&service.admin, "POST", "/repair", Some(&body), Some("sekret")).unwrap();
    assert_eq!(status, 200, "{report}");
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["checked"], 2);
    assert_eq!(report["repairs"].as_array().unwrap().len(), 2, "{report}");
    assert!(healed(&env, "redis-a", &goods[..2], &fields));

    let (status, body) =
        http(&service.admin, "POST", "/repair", Some("{\"activity_id\": 424242}"), Some("sekret")).unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("activity 424242 does not exist"));
    let (status, _) = http(&service.admin, "POST", "/repair", Some("{\"goods\": 1}"), Some("sekret")).unwrap();
    assert_eq!(status, 400);
    let (status, body) =
        http(&service.admin, "POST", "/repair", Some("{\"activity_id\": 7001}"), Some("sekret")).unwrap();
    assert_eq!(status, 200, "{body}");
    let (code, stderr) = service.terminate();
    assert_eq!(code, 0, "{stderr}");
}
