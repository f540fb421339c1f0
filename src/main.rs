//! `reconciler`: parses the command line, loads the configuration, runs one command and
//! exits with the contract's status (0 clean, 1 drift left, 2 usage or configuration,
//! 3 a store could not be reached).

use std::process::ExitCode;

use clap::Parser;
use reconciler::app::exit;
use reconciler::cli::{Cli, LogFormat};

/// mimalloc: flat memory whatever the number of goods (glibc's per-thread arenas grew
/// with the run), and less CPU per allocation (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    fn mi_option_set(option: std::os::raw::c_int, value: std::os::raw::c_long);
}

/// mimalloc (v3) options: commit arena memory on demand and return freed pages at once.
/// With the defaults, arenas committed eagerly in transparent huge pages made the peak
/// RSS of a full run 80-230 MB; with these, ~40-70 MB (see BENCHMARKS.md).
fn tune_allocator() {
    const ARENA_EAGER_COMMIT: std::os::raw::c_int = 4; // mi_option_arena_eager_commit
    const PURGE_DELAY: std::os::raw::c_int = 15; // mi_option_purge_delay

    // SAFETY: mimalloc's documented option setter, called before any thread starts.
    unsafe {
        mi_option_set(ARENA_EAGER_COMMIT, 0);
        mi_option_set(PURGE_DELAY, 0);
    }
}

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
    tune_allocator();
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
