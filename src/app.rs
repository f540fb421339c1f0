//! Wiring: from a validated [`Config`] to a [`Handler`] with its pools and targets.

use std::sync::Arc;

use anyhow::Context;
use common::mysql::MysqlPools;
use handlers::audit::AuditLog;
use handlers::run::{ProgressFn, RunOptions};
use handlers::stores::build_targets;
use handlers::truth::TruthReader;
use handlers::Handler;
use model::config::Config;

/// Process exit codes (contract section 7).
pub mod exit {
    pub const CLEAN: i32 = 0;
    pub const DRIFT_LEFT: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const UNREACHABLE: i32 = 3;
}

pub struct App {
    pub config: Config,
    pub pools: MysqlPools,
    pub handler: Arc<Handler>,
}

impl App {
    pub fn new(config: Config) -> anyhow::Result<App> {
        let layout = config.layout();
        let pools = MysqlPools::new(&config.mysql, layout.clone()).context("mysql")?;
        let truth = TruthReader::new(pools.clone())
            .reusing_activities(std::time::Duration::from_millis(config.full.activity_reuse_ms));
        let targets = build_targets(&config.targets).context("targets")?;
        let audit = AuditLog::new(pools.meta_pool().clone(), &layout.meta_database());
        let handler = Arc::new(Handler::new(truth, targets, audit, config.repair.clone()));
        Ok(App { config, pools, handler })
    }

    pub fn run_options(&self, progress: Option<ProgressFn>) -> RunOptions {
        RunOptions {
            batch_size: self.config.full.batch_size,
            concurrency: self.config.full.concurrency,
            goods_per_sec: self.config.full.goods_per_sec,
            progress,
            ..Default::default()
        }
    }
}

/// A run id for audit rows: command name and start time.
pub fn run_id(command: &str) -> String {
    format!("{command}-{}-{}", common::clock::now_ms(), std::process::id())
}
