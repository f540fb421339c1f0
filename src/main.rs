//! `reconciler`: parses the command line, loads the configuration, runs one command and
//! exits with the contract's status (0 clean, 1 drift left, 2 usage or configuration,
//! 3 a store could not be reached).

use std::process::ExitCode;

use clap::Parser;
use reconciler::app::exit;
use reconciler::cli::{Cli, LogFormat};

/// The allocator of every process this binary runs; tuned in `main` (see `reconciler::alloc`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Logs go to stderr: readable text (colour only on a terminal, never in files or
/// journald) or one JSON object per line for log pipelines. `RECONCILER_LOG` sets the
/// filter.
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("RECONCILER_LOG").unwrap_or_else(|_| "info,sqlx=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(false).flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    reconciler::alloc::tune();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE as u8 } else { 0 });
        }
    };
    init_logs(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = runtime.block_on(reconciler::commands::run(cli));
    ExitCode::from(code as u8)
}
