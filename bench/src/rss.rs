//! A command of the release binary as a child process (`reconciler --config <bench>
//! full --json`, `verify --samples ...`), with its peak RSS and its output.
//!
//! The peak is the child's `VmHWM` (/proc/<pid>/status), polled every 2 ms until it
//! exits. Not `wait4`'s `ru_maxrss`: Linux folds the high-water mark of the address
//! space replaced at exec into it, and `Command` spawns with vfork semantics, so that
//! figure is the bench's own RSS whenever the bench is bigger than the child.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct ChildRun {
    pub elapsed: Duration,
    pub max_rss_kb: u64,
    pub exit: i32,
    pub checked: u64,
    pub drift: u64,
}

/// What a child run printed and used.
pub struct Child {
    pub elapsed: Duration,
    pub max_rss_kb: u64,
    pub exit: i32,
    pub stdout: String,
}

pub fn full(binary: &Path, config: &Path) -> Result<ChildRun> {
    let c = child(binary, config, &["full", "--json"])?;
    let json: serde_json::Value = serde_json::from_str(c.stdout.trim())
        .with_context(|| format!("report of reconciler full (exit {})", c.exit))?;
    Ok(ChildRun {
        elapsed: c.elapsed,
        max_rss_kb: c.max_rss_kb,
        exit: c.exit,
        checked: json["checked"].as_u64().unwrap_or(0),
        drift: json["drift"].as_array().map_or(0, |d| d.len() as u64),
    })
}

/// Runs `reconciler --config CONFIG ARGS...`, polling its VmHWM until it exits.
pub fn child(binary: &Path, config: &Path, args: &[&str]) -> Result<Child> {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RECONCILER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting reconciler {}", args.join(" ")))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let pid = child.id() as libc::pid_t;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(kb) = crate::env::vm_hwm_kb(pid as u32) {
                    peak = peak.max(kb);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // Wait without reaping first, so the last VmHWM can still be read.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
    let last = crate::env::vm_hwm_kb(pid as u32).unwrap_or(0);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = poller.join().unwrap_or(0).max(last);
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    let elapsed = started.elapsed();
    let out = reader.join().map_err(|_| anyhow::anyhow!("stdout reader panicked"))??;
    let exit = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    // The child is reaped; make sure std does not wait for it again.
    std::mem::forget(child);
    Ok(Child { elapsed, max_rss_kb: peak, exit, stdout: out })
}
