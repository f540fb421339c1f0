//! Integration tests of the reconciler against the real MariaDB and Redis servers and the
//! project's HBase Thrift1 server, one test binary (`cargo test --test it`).

mod audit;
mod cli;
mod cluster;
mod common;
mod distributed;
mod dts;
mod key;
mod liveness;
mod poison;
mod reconcile;
mod rounds;
mod safety;
mod service;
mod triggers_e2e;
mod verify;
