//! `reconciler serve`: the long-running service (being built).

use crate::app::{exit, App};

pub async fn run(_app: App) -> i32 {
    eprintln!("error: `serve` is not part of this build yet");
    exit::USAGE
}
