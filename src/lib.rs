//! The `reconciler` binary's library: command line, wiring of config into running parts,
//! the demo, and what operators see. The logic lives in the `model`, `handlers` and
//! `triggers` crates; this crate only connects them.

pub mod admin_client;
pub mod alloc;
pub mod app;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod dump;
pub mod hbase_admin;
pub mod output;
pub mod progress;
pub mod runs;
pub mod seed;
pub mod serve;
pub mod verify;
