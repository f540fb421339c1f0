//! A private MariaDB server for tests that stop, kill or restart the database (fault
//! injection): its own data directory under the system temp dir, its own port and
//! socket, never the shared server of the other suites. Needs `mariadb-install-db` and
//! `mariadbd` on the PATH (or in /usr/sbin); grants are skipped, so `root` without a
//! password (or any user) connects over TCP.
//!
//! ```no_run
//! # async fn t() {
//! let mut db = common::testenv::mariadb::PrivateMariadb::start().unwrap();
//! let url = db.url(); // mysql://root@127.0.0.1:PORT
//! db.restart().unwrap(); // SIGTERM, wait, start again on the same port and data
//! # }
//! ```

use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivateMariadb {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn binary(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl PrivateMariadb {
    /// Initializes a data directory and starts a server on a free port; returns once it
    /// accepts connections.
    pub fn start() -> io::Result<PrivateMariadb> {
        let dir = std::env::temp_dir().join(format!("reconciler-mariadb-{}-{}", std::process::id(), free_port()?));
        std::fs::create_dir_all(dir.join("data"))?;
        let out = Command::new(binary("mariadb-install-db"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .args(["--user=root", "--skip-test-db", "--auth-root-authentication-method=normal"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "mariadb-install-db failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let mut db = PrivateMariadb { port: free_port()?, dir, child: None };
        db.launch()?;
        Ok(db)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://root@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) -> io::Result<()> {
        let d = &self.dir;
        let log = std::fs::File::create(d.join("server.log"))?;
        let child = Command::new(binary("mariadbd"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("mysqld.sock").display()))
            .arg(format!("--pid-file={}", d.join("mysqld.pid").display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-grant-tables",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=64M",
                "--performance-schema=OFF",
                "--max-connections=200",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(io::Error::other(format!("mariadbd exited with {status}: {}", self.log())));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(io::Error::other(format!("mariadbd did not listen on {} within 60 s: {}", self.port, self.log())))
    }

    /// The server's error log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn signal(&mut self, signal: &str) -> io::Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status()?;
        child.wait()?;
        Ok(())
    }

    /// A clean shutdown (SIGTERM), waiting for the server to exit.
    pub fn stop(&mut self) -> io::Result<()> {
        self.signal("TERM")
    }

    /// A crash (SIGKILL).
    pub fn kill(&mut self) -> io::Result<()> {
        self.signal("KILL")
    }

    /// Starts the server again on the same port and data.
    pub fn start_again(&mut self) -> io::Result<()> {
        if self.child.is_none() {
            self.launch()?;
        }
        Ok(())
    }

    /// [`stop`](Self::stop) then [`start_again`](Self::start_again).
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop()?;
        self.start_again()
    }
}

impl Drop for PrivateMariadb {
    fn drop(&mut self) {
        let _ = self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
