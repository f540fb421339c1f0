//! The binary as operators run it: exit codes, JSON output, errors.

use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{data, projected_goods, TestEnv};

fn reconciler(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reconciler")).args(args).env("RECONCILER_LOG", "warn").output().expect("runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_repair_exit_codes_and_json() {
    let env = TestEnv::new().await;
    let set = data(7000, 10);
    env.seed(&set, 3_600_000).await;
    let g = projected_goods(&env, &set).await[0];
    let gs = g.to_string();
    let cfg = env.config_path.to_str().unwrap();
    let ids = "7000,7001,7002,7003,7004,7005,7006,7007,7008,7009";
    let o = reconciler(&["--config", cfg, "sync", "--goods", ids, "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = reconciler(&["--config", cfg, "check", "--goods", ids, "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["checked"], 10);

    let field = env.redis_hash("redis-b", g).into_keys().next().unwrap();
    let _: () = redis::cmd("HDEL").arg(env.redis_key("redis-b", g)).arg(&field).query(&mut env.redis()).unwrap();
    let o = reconciler(&["--config", cfg, "check", "--goods", ids, "--json"]);
    assert_eq!(code(&o), 1, "drift found and left");
    let report = json(&o);
    for key in ["checked", "drift", "repairs", "deferred", "unreachable"] {
        assert!(report.get(key).is_some(), "{key}");
    }
    assert_eq!(report["drift"][0]["kind"], "missing");
    assert_eq!(report["drift"][0]["target"], "redis-b");
    assert_eq!(report["drift"][0]["goods_id"], g);
    let o = reconciler(&["--config", cfg, "repair", "--goods", &gs, "--dry-run", "--json"]);
    assert_eq!(code(&o), 1);
    assert!(json(&o)["repairs"].as_array().unwrap().is_empty());
    let o = reconciler(&["--config", cfg, "repair", "--goods", &gs, "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = json(&o)["repairs"][0]["repair_id"].as_u64().unwrap();
    assert!(env.redis_hash("redis-b", g).contains_key(&field));
    let o = reconciler(&["--config", cfg, "undo", &id.to_string(), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!env.redis_hash("redis-b", g).contains_key(&field), "undo removed the repaired field again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_target_exits_3_and_the_others_are_checked() {
    let env = TestEnv::new().await;
    let set = data(8000, 5);
    env.seed(&set, 3_600_000).await;
    let g = projected_goods(&env, &set).await[0];
    let ok_cfg = env.config_path.to_str().unwrap();
    let o = reconciler(&["--config", ok_cfg, "sync", "--goods", "8000,8001,8002,8003,8004"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let field = env.redis_hash("redis-a", g).into_keys().next().unwrap();
    let _: () =
        redis::cmd("HSET").arg(env.redis_key("redis-a", g)).arg(&field).arg("x").query(&mut env.redis()).unwrap();

    let down = env.toml.replace(
        &format!("{}/0\"\nkey_prefix = \"{}b:\"", crate::common::redis_url(), env.prefix),
        &format!("redis://127.0.0.1:1/0\"\nkey_prefix = \"{}b:\"", env.prefix),
    );
    assert_ne!(down, env.toml);
    let path = std::env::temp_dir().join(format!("{}down.toml", env.prefix));
    std::fs::write(&path, down).unwrap();
    let o = reconciler(&["--config", path.to_str().unwrap(), "check", "--goods", "8000,8001,8002,8003,8004", "--json"]);
    std::fs::remove_file(&path).ok();
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let report = json(&o);
    assert_eq!(report["unreachable"], serde_json::json!(["redis-b"]));
    let drift = report["drift"].as_array().unwrap();
    assert_eq!(drift.len(), 1, "the reachable targets were still checked: {drift:?}");
    assert_eq!(drift[0]["target"], "redis-a");
    assert_eq!(drift[0]["kind"], "corrupt");

    let mysql_down = env.toml.replace(&crate::common::mysql_url(), "mysql://root@127.0.0.1:1");
    let path = std::env::temp_dir().join(format!("{}nomysql.toml", env.prefix));
    std::fs::write(
        &path,
        mysql_down.replace("[repair]", "[repair]\n").replace("[mysql]", "[mysql]\nconnect_timeout_ms = 1000"),
    )
    .unwrap();
    let o = reconciler(&["--config", path.to_str().unwrap(), "check", "--goods", "8000"]);
    std::fs::remove_file(&path).ok();
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("mysql is unreachable"), "{}", stderr(&o));
}

#[test]
fn bad_config_and_usage_exit_2_with_clear_errors() {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("bad-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[mysql]\ndatabases = \"two\"\nflavour = 1\n[[targets]]\nname = \"x\"\nkind = \"memcached\"\n",
    )
    .unwrap();
    let o = reconciler(&["--config", path.to_str().unwrap(), "check", "--goods", "1"]);
    std::fs::remove_file(&path).ok();
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    for needle in ["`mysql.databases`", "`mysql.flavour`", "`targets[0].kind`", "memcached", "bad-"] {
        assert!(err.contains(needle), "{needle} in {err}");
    }
    let o = reconciler(&["--config", "/nonexistent/reconciler.toml", "check", "--goods", "1"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("/nonexistent/reconciler.toml"));
    let o = reconciler(&["check"]);
    assert_eq!(code(&o), 2, "selection required");
    let o = reconciler(&["check", "--goods", "1", "--activity", "2"]);
    assert_eq!(code(&o), 2, "one selection only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_give_clear_errors() {
    let env = TestEnv::new().await;
    env.seed(&data(9000, 3), 3_600_000).await;
    let cfg = env.config_path.to_str().unwrap();
    let o = reconciler(&["--config", cfg, "check", "--goods", "9000,abc"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("`abc` at position 2"), "{}", stderr(&o));
    let o = reconciler(&["--config", cfg, "repair", "--activity", "424242"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("activity 424242 does not exist"), "{}", stderr(&o));
    let o = reconciler(&["--config", cfg, "undo", "999999999"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("repair 999999999 is not in the audit log"), "{}", stderr(&o));
    let o = reconciler(&["--config", cfg, "check", "--goods", "123456789", "--json"]);
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["unknown_goods"], serde_json::json!([123456789]));
}

/// The README's first command: the demo on the embedded default.
#[test]
fn demo_runs_clean_on_the_embedded_default() {
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/config/reconciler.toml");
    let o = reconciler(&["--config", cfg, "demo"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out}\n{}", stderr(&o));
    assert!(out.contains("injected 15 drifts"), "{out}");
    for kind in ["missing", "extra", "stale", "corrupt", "orphan"] {
        assert!(out.contains(kind), "{kind}");
    }
    assert!(out.contains("15 repaired"), "{out}");
    assert!(out.contains("clean: every target equals truth"), "{out}");
}

/// Logs are for people (text, and no ANSI colour codes when stderr is a file or pipe:
/// journald and log files got escape sequences before) or machines (`--log-format json`,
/// one JSON object per line). Fails on the code before: colour was always on and JSON
/// did not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_plain_text_off_a_terminal_or_json_lines() {
    let env = TestEnv::new().await;
    let cfg = env.config_path.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["--config", cfg];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["check", "--goods", "1,2"]);
        Command::new(env!("CARGO_BIN_EXE_reconciler")).args(&args).env("RECONCILER_LOG", "debug").output().unwrap()
    };
    let text = run(&[]);
    assert_eq!(code(&text), 0, "{}", stderr(&text));
    let err = stderr(&text);
    assert!(err.lines().count() > 0, "debug logs expected");
    assert!(!err.contains('\u{1b}'), "no ANSI escapes off a terminal: {err:?}");

    let json_logs = run(&["--log-format", "json"]);
    assert_eq!(code(&json_logs), 0, "{}", stderr(&json_logs));
    let err = stderr(&json_logs);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v.get("level").is_some() && v.get("timestamp").is_some(), "{line}");
    }
}
