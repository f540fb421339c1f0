//! The benchmark's environment: its own config file (databases `bench_*`, Redis dbs 2
//! and 3, an HBase Thrift1 emulator in a separate process), server sizing, clean-up,
//! and a description of the machine for BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use model::config::{Config, HbaseTarget, TargetConfig};

pub const DB_PREFIX: &str = "bench_";
pub const HBASE_LISTEN: &str = "127.0.0.1:19090";
pub const REDIS_A: &str = "redis://127.0.0.1:6379/2";
pub const REDIS_B: &str = "redis://127.0.0.1:6379/3";
pub const KEY_PREFIX: &str = "bench:goods:";

pub struct Settings {
    pub batch_size: usize,
    pub concurrency: usize,
}

pub fn config_text(s: &Settings) -> String {
    format!(
        r#"# Written by the benchmark (bench/src/env.rs); regenerated on every run.
[mysql]
url = "mysql://root@127.0.0.1:3306"
databases = 2
tables_per_database = 4
db_prefix = "{DB_PREFIX}"

[repair]
settle_ms = 3000
max_drift_ratio = 0.5
max_repairs_per_sec = 1000000

[full]
batch_size = {batch}
concurrency = {conc}

[[targets]]
name = "redis-a"
kind = "redis"
url  = "{REDIS_A}"
key_prefix = "{KEY_PREFIX}"

[[targets]]
name = "redis-b"
kind = "redis"
url  = "{REDIS_B}"
key_prefix = "{KEY_PREFIX}"

[[targets]]
name = "hbase-a"
kind = "hbase"
address = "{HBASE_LISTEN}"
table = "bench_activity_goods"
"#,
        batch = s.batch_size,
        conc = s.concurrency
    )
}

/// Writes the config to `target/bench/bench.toml` and loads it.
pub fn write_config(root: &Path, s: &Settings) -> Result<(PathBuf, Config)> {
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bench.toml");
    std::fs::write(&path, config_text(s))?;
    let config = Config::load(&path).map_err(|e| anyhow::anyhow!("bench config: {e}"))?;
    Ok((path, config))
}

pub fn hbase_target(config: &Config) -> HbaseTarget {
    config
        .targets
        .iter()
        .find_map(|t| match t {
            TargetConfig::Hbase(h) => Some(h.clone()),
            _ => None,
        })
        .expect("bench config has an hbase target")
}

/// The release binary `cargo build` puts under `CARGO_TARGET_DIR` (default `target/`).
pub fn reconciler_binary(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from).join("release/reconciler")
}

/// Builds the release `reconciler` binary (a no-op when up to date).
pub fn build_reconciler(root: &Path) -> Result<()> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "reconciler", "--bin", "reconciler"])
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release --bin reconciler failed");
    }
    Ok(())
}

/// The HBase emulator as its own process, killed on drop.
pub struct Emulator {
    child: Child,
}

impl Emulator {
    pub fn start(root: &Path) -> Result<Emulator> {
        if std::net::TcpStream::connect(HBASE_LISTEN).is_ok() {
            bail!("{HBASE_LISTEN} is already taken; stop the process listening there (a previous bench run?)");
        }
        let child = Command::new(reconciler_binary(root))
            .args(["hbase-emulator", "--listen", HBASE_LISTEN])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the hbase emulator")?;
        let started = Instant::now();
        while std::net::TcpStream::connect(HBASE_LISTEN).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("hbase emulator did not listen on {HBASE_LISTEN}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Emulator { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sizes MariaDB for the data set (dynamic settings only; `buffer_pool_gb` 0 leaves the
/// server as it is) and empties the bench's Redis dbs and databases.
pub async fn prepare_servers(pool: &sqlx::MySqlPool, buffer_pool_gb: u64) -> Result<()> {
    let bytes = buffer_pool_gb << 30;
    if buffer_pool_gb > 0 {
        if let Err(e) = sqlx::raw_sql(&format!("SET GLOBAL innodb_buffer_pool_size = {bytes}")).execute(pool).await {
            tracing::warn!(error = %e, "could not resize the InnoDB buffer pool");
        }
    }
    for url in [REDIS_A, REDIS_B] {
        let client = redis::Client::open(url)?;
        let mut c = client.get_multiplexed_async_connection().await?;
        redis::cmd("FLUSHDB").query_async::<()>(&mut c).await?;
    }
    Ok(())
}

pub async fn clean_up(pool: &sqlx::MySqlPool) -> Result<()> {
    for url in [REDIS_A, REDIS_B] {
        let client = redis::Client::open(url)?;
        let mut c = client.get_multiplexed_async_connection().await?;
        redis::cmd("FLUSHDB").query_async::<()>(&mut c).await?;
    }
    for db in ["act_meta", "act_0", "act_1"] {
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{DB_PREFIX}{db}`")).execute(pool).await?;
    }
    Ok(())
}

/// Peak memory of a process so far (VmHWM), in kB.
pub fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Output of a shell command, trimmed; empty when it cannot run.
fn sh(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The load average, read before the run starts anything.
pub fn load_average() -> String {
    sh("cut -d' ' -f1-3 /proc/loadavg")
}

/// Machine and versions, as lines of markdown: `load_before` from [`load_average`]
/// before the run, `mariadb` from [`mariadb`] once [`prepare_servers`] has sized the
/// buffer pool (read before it, a fresh server's 128 MB was reported for a run that used
/// 6 GB).
pub fn machine(load_before: String, mariadb: (String, String)) -> Vec<(String, String)> {
    vec![
        ("cpu".into(), sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")),
        ("cores".into(), sh("nproc")),
        ("memory".into(), sh("grep MemTotal /proc/meminfo | awk '{printf \"%.1f GB\", $2/1048576}'")),
        ("kernel".into(), sh("uname -sr")),
        ("load before run".into(), load_before),
        mariadb,
        ("Redis".into(), sh("redis-cli -h 127.0.0.1 INFO server | grep redis_version | cut -d: -f2")),
        ("HBase".into(), "the project's HBase Thrift1 emulator (`reconciler hbase-emulator`), separate process".into()),
        ("rustc".into(), sh("rustc --version")),
        ("commit".into(), sh("git rev-parse --short HEAD")),
    ]
}

/// The MariaDB line of the machine section: version and the buffer pool the run uses.
pub async fn mariadb(pool: &sqlx::MySqlPool) -> (String, String) {
    let version: String = sqlx::query_scalar("SELECT VERSION()").fetch_one(pool).await.unwrap_or_default();
    let bp: String =
        sqlx::query_scalar("SELECT CAST(@@innodb_buffer_pool_size AS CHAR)").fetch_one(pool).await.unwrap_or_default();
    ("MariaDB".into(), format!("{version} (innodb_buffer_pool_size {} MB)", bp.parse::<u64>().unwrap_or(0) >> 20))
}

/// The servers of a run, found by process name: `mariadbd` (or `mysqld`), `tansu`, the
/// `redis-server` on 6379 and the HBase emulator, as (short name, pid).
pub fn server_pids() -> Vec<(&'static str, u32)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .filter(|a| !a.is_empty())
            .collect();
        let Some(exe) = args.first().map(|a| a.rsplit('/').next().unwrap_or(a).to_string()) else { continue };
        let name = match exe.as_str() {
            "mariadbd" | "mysqld" => "MariaDB",
            "tansu" => "Tansu",
            e if e.starts_with("redis-server") && args.iter().any(|a| a.ends_with(":6379") || a == "6379") => "Redis",
            _ if args.iter().any(|a| a == "hbase-emulator") => "HBase emulator",
            _ => continue,
        };
        out.push((name, pid));
    }
    out.sort();
    out
}

/// Peak RSS (VmHWM, kB) of the servers the run used, since each started: MariaDB,
/// the Redis on 6379 and the Kafka broker (Tansu).
pub fn server_peaks() -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for (name, pid) in server_pids() {
        let label = match name {
            "MariaDB" => "MariaDB (`mariadbd`, since it started)",
            "Tansu" => "Kafka broker (Tansu, since it started)",
            "Redis" => "Redis 6379 (`redis-server`, since it started; redis-a and redis-b)",
            _ => continue,
        };
        if let Some(kb) = vm_hwm_kb(pid) {
            out.push((label.to_string(), kb));
        }
    }
    out.sort();
    out
}

/// CPU time (user + system) a process has used so far, seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces): state is the first, utime the
    // 12th and stime the 13th (fields 14 and 15 of proc(5)).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / hz)
}

#[cfg(test)]
mod tests {
    use crate::cpu::clocks;

    /// /proc's count of the bench's own CPU time agrees with the process CPU clock (to
    /// a few 10 ms clock ticks) over 0.3 s of burned CPU, however loaded the machine.
    #[test]
    fn cpu_seconds_counts_what_a_process_burns() {
        const PROCESS: libc::clockid_t = libc::CLOCK_PROCESS_CPUTIME_ID;
        let me = std::process::id();
        let (before, clock_before) = (super::cpu_seconds(me).expect("own /proc stat"), clocks::seconds(PROCESS));
        clocks::burn(PROCESS, 0.3);
        let (used, clock_used) = (super::cpu_seconds(me).unwrap() - before, clocks::seconds(PROCESS) - clock_before);
        assert!((used - clock_used).abs() < 0.05, "/proc counted {used} s, the CPU clock {clock_used} s");
    }
}
