//! `reconciler`: parses the command line, loads the configuration, runs one command and
//! exits with the contract's status (0 clean, 1 drift left, 2 usage or configuration,
//! 3 a store could not be reached).

use std::process::ExitCode;

use clap::Parser;
use reconciler::app::exit;
use reconciler::cli::Cli;

/// mimalloc: flat memory whatever the number of goods (glibc's per-thread arenas grew
/// with the run), and less CPU per allocation (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE as u8 } else { 0 });
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RECONCILER_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let code = runtime.block_on(reconciler::commands::run(cli));
    ExitCode::from(code as u8)
}
