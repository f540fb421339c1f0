//! A private Redis Cluster for tests that stop nodes (fault injection): `n` masters on
//! free loopback ports (and their bus ports, +10000), no replicas, nothing on disk but
//! `nodes.conf` in a temp directory, joined with `redis-cli --cluster create`. Never the
//! shared cluster of `scripts/redis-cluster.sh`. Needs `redis-server` and `redis-cli` on
//! the PATH. Every node is stopped when the value is dropped.
//!
//! ```no_run
//! let mut c = common::testenv::redis_cluster::PrivateRedisCluster::start(3).unwrap();
//! let seeds = c.seeds(); // ["redis://127.0.0.1:PORT", ...]
//! c.stop_node(1).unwrap(); // SIGKILL one master
//! ```

use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivateRedisCluster {
    ports: Vec<u16>,
    dir: PathBuf,
    nodes: Vec<Option<Child>>,
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_cluster_port(taken: &[u16]) -> io::Result<u16> {
    for _ in 0..200 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if port < 55_000 && !taken.contains(&port) && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::other("no free port pair for a cluster node"))
}

fn redis_cli(port: u16, args: &[&str]) -> io::Result<String> {
    let out = Command::new("redis-cli").args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(args).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl PrivateRedisCluster {
    /// Starts `masters` nodes and joins them; returns once every node reports
    /// `cluster_state:ok`.
    pub fn start(masters: usize) -> io::Result<PrivateRedisCluster> {
        let mut ports = Vec::new();
        for _ in 0..masters {
            ports.push(free_cluster_port(&ports)?);
        }
        let dir = std::env::temp_dir().join(format!("reconciler-redis-cluster-{}-{}", std::process::id(), ports[0]));
        let mut cluster = PrivateRedisCluster { ports: ports.clone(), dir, nodes: Vec::new() };
        for &port in &ports {
            let node_dir = cluster.dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir)?;
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                .args(["--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no"])
                .arg("--cluster-config-file")
                .arg(node_dir.join("nodes.conf"))
                .arg("--dir")
                .arg(&node_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            cluster.nodes.push(Some(child));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for &port in &ports {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if Instant::now() > deadline {
                    return Err(io::Error::other(format!("redis-server on {port} did not start")));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        for &port in &ports {
            while !redis_cli(port, &["cluster", "info"])?.contains("cluster_state:ok") {
                if Instant::now() > deadline {
                    return Err(io::Error::other(format!("cluster node {port} is not ok")));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(cluster)
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// `redis://127.0.0.1:PORT` of every node.
    pub fn seeds(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect()
    }

    /// Kills node `index` (SIGKILL, as a crash) and waits until it is gone.
    pub fn stop_node(&mut self, index: usize) -> io::Result<()> {
        if let Some(mut child) = self.nodes[index].take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }
}

impl Drop for PrivateRedisCluster {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
