//! The processes a scenario starts and hurts: `reconciler serve` instances, the HBase
//! Thrift server (`reconciler hbase-emulator`), a private `redis-server`, a private Tansu
//! broker on S3 storage (a local `moto_server`). Each on a free loopback port, each
//! killed on drop; none of them is a server other suites share.

use std::fs::OpenOptions;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn listening(addr: &str) -> bool {
    addr.parse().ok().is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
}

/// Waits until something accepts connections on `addr`, or fails naming `what`.
pub fn wait_listen(addr: &str, what: &str, child: &mut Child, within: Duration) -> Result<()> {
    let started = Instant::now();
    while !listening(addr) {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited with {status} before listening on {addr}");
        }
        if started.elapsed() > within {
            bail!("{what} did not listen on {addr} within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on the pid of a child we own and have not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, sig);
    }
}

fn log_file(path: &Path) -> Result<std::fs::File> {
    Ok(OpenOptions::new().create(true).append(true).open(path)?)
}

/// A child killed (SIGKILL) and reaped on drop.
pub struct Owned(pub Option<Child>);

impl Owned {
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.0.take() {
            signal(&c, libc::SIGKILL);
            let _ = c.wait();
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One `reconciler serve` instance: its config, its admin address, its log (appended
/// across restarts).
pub struct Serve {
    pub binary: PathBuf,
    pub config: PathBuf,
    pub admin: String,
    pub log: PathBuf,
    pub proc: Owned,
    pub starts: u32,
    /// Its static group membership id (`RECONCILER_KAFKA_INSTANCE_ID`), kept across
    /// restarts as a StatefulSet pod keeps its name; `None`: dynamic membership.
    pub instance_id: Option<String>,
}

impl Serve {
    pub fn new(binary: &Path, config: &Path, dir: &Path, index: usize, static_membership: bool) -> Result<Serve> {
        let admin = format!("127.0.0.1:{}", free_port()?);
        let log = dir.join(format!("serve-{index}.log"));
        let instance_id = static_membership.then(|| format!("serve-{index}"));
        Ok(Serve {
            binary: binary.into(),
            config: config.into(),
            admin,
            log,
            proc: Owned(None),
            starts: 0,
            instance_id,
        })
    }

    /// Starts the process (the admin address through `RECONCILER_ADMIN_LISTEN`).
    pub fn start(&mut self) -> Result<()> {
        let child = Command::new(&self.binary)
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("RECONCILER_ADMIN_LISTEN", &self.admin)
            .env("RECONCILER_KAFKA_INSTANCE_ID", self.instance_id.as_deref().unwrap_or(""))
            .env("RECONCILER_LOG", "warn,triggers::bus::kafka=info")
            .stdout(Stdio::null())
            .stderr(log_file(&self.log)?)
            .spawn()
            .context("starting reconciler serve")?;
        self.proc = Owned(Some(child));
        self.starts += 1;
        Ok(())
    }

    /// Starts and waits until the admin HTTP answers.
    pub fn start_and_wait(&mut self) -> Result<()> {
        self.start()?;
        let log = self.log.display().to_string();
        let child = self.proc.0.as_mut().expect("started");
        wait_listen(&self.admin, &format!("reconciler serve (log {log})"), child, Duration::from_secs(60))
    }

    pub fn kill9(&mut self) {
        self.proc.kill9();
    }

    pub fn alive(&mut self) -> bool {
        self.proc.0.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The admin `/metrics` text, if it answers.
    pub fn metrics(&self) -> Option<String> {
        crate::observe::http_get(&self.admin, "/metrics")
    }

    /// SIGTERM, then SIGKILL after 20 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.proc.0.take() {
            signal(&c, libc::SIGTERM);
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            signal(&c, libc::SIGKILL);
            let _ = c.wait();
        }
    }
}

/// The project's HBase Thrift1 server in its own process.
pub fn start_emulator(binary: &Path, dir: &Path) -> Result<(Owned, String)> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mut child = Command::new(binary)
        .args(["hbase-emulator", "--listen", &addr])
        .stdout(Stdio::null())
        .stderr(log_file(&dir.join("hbase-emulator.log"))?)
        .spawn()
        .context("starting reconciler hbase-emulator")?;
    wait_listen(&addr, "hbase-emulator", &mut child, Duration::from_secs(20))?;
    Ok((Owned(Some(child)), addr))
}

/// A private `redis-server` whose data survives a kill: append-only file, fsync on
/// every write, in its own directory.
pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    proc: Owned,
}

impl PrivateRedis {
    pub fn start(dir: &Path) -> Result<PrivateRedis> {
        let dir = dir.join("redis");
        std::fs::create_dir_all(&dir)?;
        let mut r = PrivateRedis { port: free_port()?, dir, proc: Owned(None) };
        r.launch()?;
        Ok(r)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn launch(&mut self) -> Result<()> {
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(log_file(&self.dir.join("redis.log"))?)
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        wait_listen(&format!("127.0.0.1:{}", self.port), "redis-server", &mut child, Duration::from_secs(20))?;
        self.proc = Owned(Some(child));
        Ok(())
    }

    /// Down: SIGKILL (every acknowledged write is in the fsynced append-only file).
    pub fn kill(&mut self) {
        self.proc.kill9();
    }

    pub fn start_again(&mut self) -> Result<()> {
        self.launch()
    }
}

/// A private Tansu broker whose storage survives its restart: Tansu's `s3://` engine on
/// a bucket of a local S3-compatible server (`moto_server`, PyPI `moto[server]`).
pub struct PrivateTansu {
    pub port: u16,
    s3_port: u16,
    dir: PathBuf,
    s3: Owned,
    broker: Owned,
}

fn tool(root: &Path, name: &str) -> PathBuf {
    let venv = root.join(".venv/bin").join(name);
    if venv.exists() {
        return venv;
    }
    let cargo = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".cargo/bin").join(name);
    if cargo.exists() {
        return cargo;
    }
    PathBuf::from(name)
}

impl PrivateTansu {
    pub fn start(root: &Path, dir: &Path) -> Result<PrivateTansu> {
        let dir = dir.join("tansu");
        std::fs::create_dir_all(&dir)?;
        let s3_port = free_port()?;
        let mut s3 = Command::new(tool(root, "moto_server"))
            .args(["-H", "127.0.0.1", "-p", &s3_port.to_string()])
            .stdout(Stdio::null())
            .stderr(log_file(&dir.join("moto.log"))?)
            .spawn()
            .context("starting moto_server (scripts/python-venv.sh installs it)")?;
        wait_listen(&format!("127.0.0.1:{s3_port}"), "moto_server", &mut s3, Duration::from_secs(30))?;
        // CreateBucket: an unsigned PUT (moto does not check signatures).
        let reply = crate::observe::http_request(&format!("127.0.0.1:{s3_port}"), "PUT", "/tansu", "")
            .context("creating the S3 bucket")?;
        if !reply.starts_with("HTTP/1.1 200") && !reply.starts_with("HTTP/1.0 200") {
            bail!("moto_server refused the bucket: {}", reply.lines().next().unwrap_or(""));
        }
        let mut t = PrivateTansu { port: free_port()?, s3_port, dir, s3: Owned(Some(s3)), broker: Owned(None) };
        t.launch()?;
        Ok(t)
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) -> Result<()> {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut child = Command::new(tool(Path::new("."), "tansu"))
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "s3://tansu/"])
            .env("AWS_ACCESS_KEY_ID", "faults")
            .env("AWS_SECRET_ACCESS_KEY", "faults")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.s3_port))
            .env("AWS_ALLOW_HTTP", "true")
            .stdout(Stdio::null())
            .stderr(log_file(&self.dir.join("tansu.log"))?)
            .spawn()
            .context("starting tansu")?;
        wait_listen(&self.brokers(), "tansu (s3 storage)", &mut child, Duration::from_secs(60))?;
        self.broker = Owned(Some(child));
        Ok(())
    }

    /// Down: SIGKILL of the broker; its storage (the S3 server) stays.
    pub fn kill(&mut self) {
        self.broker.kill9();
    }

    pub fn start_again(&mut self) -> Result<()> {
        self.launch()
    }
}

impl Drop for PrivateTansu {
    fn drop(&mut self) {
        self.broker.kill9();
        self.s3.kill9();
    }
}
