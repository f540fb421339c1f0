use super::*;

const CONTRACT_MINIMAL: &str = r#"
[mysql]
url = "mysql://root@127.0.0.1:3306"
databases = 2
tables_per_database = 4

[repair]
settle_ms = 3000
max_drift_ratio = 0.2
max_repairs_per_sec = 1000

[[targets]]
name = "redis-a"
kind = "redis"
url  = "redis://127.0.0.1:6379/0"

[[targets]]
name = "hbase-a"
kind = "hbase"
address = "127.0.0.1:9090"
table = "activity_goods"
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn contract_keys_alone_are_a_complete_config() {
    let c = Config::parse(CONTRACT_MINIMAL, "t.toml", &no_env).unwrap();
    assert_eq!(c.targets.len(), 2);
    assert_eq!(c.targets[1].kind(), "hbase");
    assert_eq!(c.layout().total_shards(), 8);
    assert_eq!(c.kafka.jobs_topic, "reconcile.jobs");
    match &c.targets[0] {
        TargetConfig::Redis(r) => assert_eq!(r.key_prefix, "act:goods:"),
        _ => panic!(),
    }
}

#[test]
fn reports_every_problem_at_once_with_key_paths() {
    let text = r#"
[mysql]
url = "mysql://root@127.0.0.1:3306"
databases = "two"
colour = 1

[repair]
max_drift_ratio = 3.0

[[targets]]
name = "redis-a"
kind = "redis"
url  = "http://x"
port = 1

[[targets]]
name = "redis-a"
kind = "memcached"

[bogus]
x = 1
"#;
    let err = Config::parse(text, "bad.toml", &no_env).unwrap_err();
    let all = err.to_string();
    assert!(all.starts_with("invalid configuration in bad.toml"), "{all}");
    for needle in [
        "`mysql.databases`",
        "unknown key `mysql.colour`",
        "`repair.max_drift_ratio`",
        "`targets[0]`",
        "port",
        "`targets[1].kind`",
        "memcached",
        "unknown key `bogus`",
    ] {
        assert!(all.contains(needle), "missing {needle} in:\n{all}");
    }
}

#[test]
fn env_overrides_addresses_and_secrets() {
    let env = |k: &str| match k {
        "RECONCILER_MYSQL_URL" => Some("mysql://u:pw@db:3306".to_string()),
        "RECONCILER_TARGET_REDIS_A_URL" => Some("redis://other:6379/3".to_string()),
        "RECONCILER_TARGET_HBASE_A_ADDRESS" => Some("hb:9091".to_string()),
        "RECONCILER_ADMIN_TOKEN" => Some("s3cret".to_string()),
        "RECONCILER_KAFKA_INSTANCE_ID" => Some("reconciler-2".to_string()),
        _ => None,
    };
    let c = Config::parse(CONTRACT_MINIMAL, "t.toml", &env).unwrap();
    assert_eq!(c.mysql.url, "mysql://u:pw@db:3306");
    assert_eq!(c.kafka.instance_id.as_deref(), Some("reconciler-2"));
    let debug = format!("{c:?}");
    assert!(!debug.contains("pw"), "{debug}");
    assert!(!debug.contains("s3cret"), "{debug}");
    match (&c.targets[0], &c.targets[1]) {
        (TargetConfig::Redis(r), TargetConfig::Hbase(h)) => {
            assert_eq!(r.url.as_deref(), Some("redis://other:6379/3"));
            assert_eq!(h.address, "hb:9091");
        }
        _ => panic!(),
    }
}

#[test]
fn redacts_passwords() {
    assert_eq!(redact_url("mysql://root:pw@h:3306/db"), "mysql://root:***@h:3306/db");
    assert_eq!(redact_url("redis://:pw@h:6379/0"), "redis://:***@h:6379/0");
    assert_eq!(redact_url("mysql://root@h:3306"), "mysql://root@h:3306");
}

#[test]
fn service_sections_parse() {
    let text = format!(
        "{CONTRACT_MINIMAL}\n{}",
        r#"
[bus]
kind = "kafka"
[kafka]
brokers = "127.0.0.1:9092"
group = "reconciler"
jobs_topic = "reconcile.jobs"
dead_letter_topic = "reconcile.dlq"
[[triggers.dts]]
topic = "canal.activity"
format = "canal"
stages_ms = [3000, 30000, 300000]
[triggers.scanner]
enabled = true
interval_ms = 10000
rows_per_sec = 5000
[triggers.full]
cron = "0 0 3 * * *"
[admin]
listen = "127.0.0.1:9100"
"#
    );
    let c = Config::parse(&text, "svc.toml", &no_env).unwrap();
    assert_eq!(c.bus.kind, BusKind::Kafka);
    assert_eq!(c.triggers.dts[0].format, EventFormat::Canal);
    assert_eq!(c.triggers.full.cron.as_deref(), Some("0 0 3 * * *"));
    assert!(c.triggers.scanner.enabled);
}

#[test]
fn verifier_section_defaults_and_validation() {
    let c = Config::parse(CONTRACT_MINIMAL, "t.toml", &no_env).unwrap();
    assert_eq!(c.verifier.topic, None, "absent: no verifier in serve");
    assert_eq!(c.verifier.price_bands, vec![1000, 5000, 10_000, 50_000, 100_000]);
    let text = format!("{CONTRACT_MINIMAL}\n[verifier]\ntopic = \"pricing.samples\"\ntags = [\"618\"]\n");
    let c = Config::parse(&text, "v.toml", &no_env).unwrap();
    assert_eq!(c.verifier.topic.as_deref(), Some("pricing.samples"));
    assert_eq!(c.verifier.tags, vec!["618"]);

    let bad = format!(
        "{CONTRACT_MINIMAL}\n[verifier]\ntopic = \"\"\nprice_bands = [500, 100]\nbatch_size = 0\ncolour = \"red\"\n"
    );
    let all = Config::parse(&bad, "v.toml", &no_env).unwrap_err().to_string();
    for needle in
        ["`verifier.topic`", "`verifier.price_bands`", "`verifier.batch_size`", "unknown key `verifier.colour`"]
    {
        assert!(all.contains(needle), "missing {needle} in:\n{all}");
    }
}

const CLUSTER_TARGET: &str = r#"
[[targets]]
name = "redis-c"
kind = "redis"
cluster = ["redis://redis-c-1:7000", "redis://:pw@redis-c-2:7000"]
"#;

#[test]
fn a_redis_target_may_be_a_cluster() {
    let c = Config::parse(CLUSTER_TARGET, "t.toml", &no_env).unwrap();
    let TargetConfig::Redis(r) = &c.targets[0] else { panic!() };
    assert_eq!(
        r.endpoint(),
        Some(RedisEndpoint::Cluster(&["redis://redis-c-1:7000".to_string(), "redis://:pw@redis-c-2:7000".to_string()]))
    );
    assert!(!format!("{c:?}").contains("pw@"), "seed passwords are redacted");
    let env = |k: &str| (k == "RECONCILER_TARGET_REDIS_C_CLUSTER").then(|| "redis://x:1, redis://y:2".to_string());
    let c = Config::parse(CLUSTER_TARGET, "t.toml", &env).unwrap();
    let TargetConfig::Redis(r) = &c.targets[0] else { panic!() };
    assert_eq!(r.cluster.as_deref(), Some(&["redis://x:1".to_string(), "redis://y:2".to_string()][..]));
    let env = |k: &str| (k == "RECONCILER_TARGET_REDIS_C_URL").then(|| "redis://x:1".to_string());
    let err = Config::parse(CLUSTER_TARGET, "t.toml", &env).unwrap_err().to_string();
    assert!(err.contains("RECONCILER_TARGET_REDIS_C_URL") && err.contains("REDIS_C_CLUSTER"), "{err}");
}

#[test]
fn a_redis_target_gives_exactly_one_of_url_and_cluster() {
    let both = format!("{CLUSTER_TARGET}url = \"redis://127.0.0.1:6379\"\n");
    let err = Config::parse(&both, "t.toml", &no_env).unwrap_err().to_string();
    assert!(err.contains("`targets[0]`: redis target `redis-c` gives both `url` and `cluster`"), "{err}");
    let neither = "[[targets]]\nname = \"redis-n\"\nkind = \"redis\"\n";
    let err = Config::parse(neither, "t.toml", &no_env).unwrap_err().to_string();
    assert!(err.contains("`targets[0]`: redis target `redis-n` gives neither `url`"), "{err}");
    let bad = "[[targets]]\nname = \"redis-b\"\nkind = \"redis\"\ncluster = [\"http://a:1\"]\n";
    let err = Config::parse(bad, "t.toml", &no_env).unwrap_err().to_string();
    assert!(err.contains("`targets[0].cluster[0]`: `http://a:1` is not a redis:// URL"), "{err}");
    let empty = "[[targets]]\nname = \"redis-e\"\nkind = \"redis\"\ncluster = []\n";
    let err = Config::parse(empty, "t.toml", &no_env).unwrap_err().to_string();
    assert!(err.contains("`targets[0].cluster`: target `redis-e` names no seed node"), "{err}");
}

/// Where the fields of each struct of `sections.rs` live in the file; `None` for
/// containers whose fields are sections themselves.
const SECTION_PATHS: &[(&str, Option<&str>)] = &[
    ("Config", None),
    ("TriggersConfig", None),
    ("MysqlConfig", Some("mysql")),
    ("RepairConfig", Some("repair")),
    ("RetryConfig", Some("retry")),
    ("FullConfig", Some("full")),
    ("RedisTarget", Some("targets")),
    ("HbaseTarget", Some("targets")),
    ("BusConfig", Some("bus")),
    ("KafkaConfig", Some("kafka")),
    ("DtsConfig", Some("triggers.dts")),
    ("ScannerConfig", Some("triggers.scanner")),
    ("FullTriggerConfig", Some("triggers.full")),
    ("HandlerConfig", Some("handler")),
    ("AdminConfig", Some("admin")),
    ("VerifierConfig", Some("verifier")),
    ("EmulatorConfig", Some("hbase_emulator")),
];

/// `(struct, field)` of every `pub` field of every struct in `sections.rs`.
fn section_fields() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in include_str!("sections.rs").lines() {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            current = Some(rest.split([' ', '{', '(']).next().unwrap().to_string());
        } else if line == "}" {
            current = None;
        } else if let (Some(s), Some(field)) = (&current, line.trim().strip_prefix("pub ")) {
            if let Some((name, _)) = field.split_once(':') {
                out.push((s.clone(), name.trim().to_string()));
            }
        }
    }
    out
}

/// Every key path of a TOML file, descending into the known sections only.
fn file_keys(text: &str) -> Vec<String> {
    fn walk(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        let sections: Vec<&str> = SECTION_PATHS.iter().filter_map(|(_, p)| *p).chain(["triggers"]).collect();
        for (key, value) in table {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            let tables: Vec<&toml::Table> = match value {
                toml::Value::Table(t) => vec![t],
                toml::Value::Array(items) => items.iter().filter_map(|v| v.as_table()).collect(),
                _ => Vec::new(),
            };
            if sections.contains(&path.as_str()) && !tables.is_empty() {
                tables.into_iter().for_each(|t| walk(t, &path, out));
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&text.parse::<toml::Table>().unwrap(), "", &mut out);
    out
}

#[test]
fn every_config_key_is_documented() {
    let doc = include_str!("../../../docs/configuration.md");
    let mut keys = Vec::new();
    for (strukt, field) in section_fields() {
        match SECTION_PATHS.iter().find(|(s, _)| *s == strukt) {
            Some((_, Some(path))) => keys.push(format!("{path}.{field}")),
            Some((_, None)) => {}
            None => panic!("struct `{strukt}` of sections.rs is not in SECTION_PATHS (and maybe not documented)"),
        }
    }
    assert!(keys.len() > 60, "the section parser found {} keys", keys.len());
    keys.extend(file_keys(include_str!("../../../config/reconciler.toml")));
    keys.extend(file_keys(include_str!("../../../config/production.example.toml")));
    let missing: Vec<&String> = keys.iter().filter(|k| !doc.contains(&format!("`{k}`"))).collect();
    assert!(missing.is_empty(), "keys not in docs/configuration.md: {missing:?}");
}

#[test]
fn key_activities_by_id_type_tag_and_biz_code() {
    let c = Config::parse(CONTRACT_MINIMAL, "t.toml", &no_env).unwrap();
    assert!(!c.key_activities.enabled(), "absent: nothing is key");
    let text = format!(
        "{CONTRACT_MINIMAL}\n[key_activities]\nstages_ms = [1000, 5000]\n[[key_activities.rules]]\nids = [7001]\n\
         [[key_activities.rules]]\ntypes = [\"seckill\", 3]\ntags = [\"618\"]\nbiz_codes = [\"main\"]\n\
         [key_activities.sweep]\nlead_secs = 60\n"
    );
    let c = Config::parse(&text, "t.toml", &no_env).unwrap();
    let k = &c.key_activities;
    assert!(k.enabled());
    assert_eq!(k.rules[0].ids, vec![7001]);
    assert_eq!(k.rules[1].types.iter().map(|t| t.code()).collect::<Vec<_>>(), vec![Some(2), Some(3)]);
    assert_eq!((k.stages_ms.clone(), k.sweep.lead_secs, k.sweep.interval_secs), (vec![1000, 5000], 60, 60));
    assert_eq!(k.priority_group_or("reconciler"), "reconciler.key");
}

#[test]
fn bad_key_activity_settings_are_named() {
    let text = format!(
        "{CONTRACT_MINIMAL}\n[key_activities]\nstages_ms = [5000, 1000]\nrefresh_secs = 0\n[[key_activities.rules]]\n\
         [[key_activities.rules]]\ntypes = [\"flash\"]\n[key_activities.sweep]\ninterval_secs = 0\n"
    );
    let e = Config::parse(&text, "t.toml", &no_env).unwrap_err().to_string();
    for needle in [
        "`key_activities.rules[0]`: give at least one",
        "key_activities.stages_ms",
        "key_activities.refresh_secs",
        "key_activities.sweep",
        "`key_activities.rules[1].types`: `flash` is not",
    ] {
        assert!(e.contains(needle), "{needle} in {e}");
    }
    let text = format!("{CONTRACT_MINIMAL}\n[[key_activities.rules]]\nids = [1]\ncolour = \"red\"\n");
    let e = Config::parse(&text, "t.toml", &no_env).unwrap_err().to_string();
    assert!(e.contains("colour"), "{e}");
}

#[test]
fn a_retry_policy_with_neither_bound_is_refused() {
    let both = format!("{CONTRACT_MINIMAL}\n[retry]\nmax_attempts = 0\ngive_up_after_ms = 0\n");
    let Err(e) = Config::parse(&both, "t.toml", &no_env) else { panic!("refused") };
    assert!(e.problems.iter().any(|p| p.contains("`retry.give_up_after_ms`") && p.contains("forever")), "{e:?}");
    let count_only = format!("{CONTRACT_MINIMAL}\n[retry]\nmax_attempts = 5\ngive_up_after_ms = 0\n");
    let c = Config::parse(&count_only, "t.toml", &no_env).unwrap();
    assert_eq!((c.retry.max_attempts, c.retry.give_up_after_ms, c.retry.max_backoff_ms), (5, 0, 1_000));
    assert_eq!((c.handler.max_rechecks, c.kafka.session_timeout_ms), (12, 10_000));
}

#[test]
fn activity_reuse_defaults_to_a_second_and_is_bounded() {
    let c = Config::parse(CONTRACT_MINIMAL, "c.toml", &no_env).unwrap();
    assert_eq!(c.full.activity_reuse_ms, 1_000);
    let c = Config::parse(&format!("{CONTRACT_MINIMAL}\n[full]\nactivity_reuse_ms = 0\n"), "c.toml", &no_env).unwrap();
    assert_eq!(c.full.activity_reuse_ms, 0);
    let err = Config::parse(&format!("{CONTRACT_MINIMAL}\n[full]\nactivity_reuse_ms = 60001\n"), "c.toml", &no_env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`full.activity_reuse_ms`: at most 60000"), "{err}");
}
