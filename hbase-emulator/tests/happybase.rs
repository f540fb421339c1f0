//! The independent check: happybase (Python) runs `happybase_scenario.py` against an
//! in-process emulator, over buffered and framed transports and both protocols.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use hbase_emulator::{EmulatorOptions, Protocol, Transport};

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Creates the venv once per test binary (the script itself is idempotent).
fn python() -> &'static Path {
    static VENV: OnceLock<std::path::PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let out = Command::new("bash").arg("scripts/python-venv.sh").current_dir(workspace()).output().unwrap();
        assert!(
            out.status.success(),
            "python-venv.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        workspace().join(".venv/bin/python")
    })
}

fn run(transport: Transport, protocol: Protocol, names: (&str, &str)) {
    let py = python();
    let emu =
        hbase_emulator::start("127.0.0.1:0", EmulatorOptions { transport, protocol, ..Default::default() }).unwrap();
    let out = Command::new(py)
        .arg("hbase-emulator/tests/happybase_scenario.py")
        .arg(emu.local_addr().port().to_string())
        .args([names.0, names.1])
        .current_dir(workspace())
        .output()
        .unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{log}");
    assert!(out.status.success(), "happybase scenario failed:\n{log}");
    assert!(log.contains("all checks passed"), "{log}");
    assert!(!log.contains("FAIL"), "{log}");
    emu.shutdown();
}

#[test]
fn happybase_buffered_binary() {
    run(Transport::Buffered, Protocol::Binary, ("buffered", "binary"));
}

#[test]
fn happybase_framed_binary() {
    run(Transport::Framed, Protocol::Binary, ("framed", "binary"));
}

#[test]
fn happybase_buffered_compact() {
    run(Transport::Buffered, Protocol::Compact, ("buffered", "compact"));
}
