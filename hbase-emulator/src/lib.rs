//! An in-memory server speaking HBase's Thrift1 protocol (the `Hbase` service of
//! `Hbase.thrift`), for tests, benchmarks and the embedded default where no HBase can
//! run. It keeps HBase's cell semantics, including the ones that bite repair tools:
//! versions by timestamp, and delete markers that mask older versions written later
//! until a major compaction. Known differences from HBase are listed in `README.md`.
//!
//! ```no_run
//! let emu = hbase_emulator::start("127.0.0.1:0", Default::default()).unwrap();
//! println!("serving on {}", emu.local_addr());
//! emu.shutdown();
//! ```

mod error;
mod handler;
mod lenient;
mod server;
pub mod store;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

pub use error::Error;
pub use handler::Handler;
pub use store::Store;

/// Byte framing on the socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Transport {
    /// HBase's default (`hbase.regionserver.thrift.framed = false`).
    #[default]
    Buffered,
    Framed,
}

/// Encoding of the messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// HBase's default.
    #[default]
    Binary,
    /// `hbase.regionserver.thrift.compact = true`.
    Compact,
}

#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Connections served at once (one thread each, as thrift's `TServer`); further
    /// clients wait in the accept backlog, so keep it above every client's pool size.
    pub workers: usize,
    pub transport: Transport,
    pub protocol: Protocol,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions { workers: 64, transport: Transport::Buffered, protocol: Protocol::Binary }
    }
}

/// A running emulator; [`EmulatorHandle::shutdown`] stops it (dropping the handle
/// does too).
pub struct EmulatorHandle {
    addr: SocketAddr,
    store: Arc<Store>,
    shared: Arc<server::Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// Binds `listen` (`host:port`, port 0 for any free port) and serves on background
/// threads with an empty store.
pub fn start(listen: &str, opts: EmulatorOptions) -> std::io::Result<EmulatorHandle> {
    start_with_store(listen, opts, Arc::new(Store::new()))
}

/// Like [`start`], serving an existing store (shared with other emulators or tests).
pub fn start_with_store(listen: &str, opts: EmulatorOptions, store: Arc<Store>) -> std::io::Result<EmulatorHandle> {
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let processor = Arc::new(hbase_thrift::hbase::HbaseSyncProcessor::new(Handler::new(store.clone())));
    let shared = Arc::new(server::Shared::default());
    tracing::info!(%addr, transport = ?opts.transport, protocol = ?opts.protocol, "hbase emulator listening");
    let acceptor = server::spawn_acceptor(listener, processor, opts, shared.clone())?;
    Ok(EmulatorHandle { addr, store, shared, acceptor: Some(acceptor) })
}

/// Answers the calls in `request` (the bytes a client sent on one connection) as a
/// connection of the server would, and returns the reply bytes: the same transport,
/// input protocol and handler as a socket, without one. For tests and fuzzing.
pub fn answer(store: Arc<Store>, transport: Transport, protocol: Protocol, request: &[u8]) -> Vec<u8> {
    let processor = hbase_thrift::hbase::HbaseSyncProcessor::new(Handler::new(store));
    server::answer(&processor, transport, protocol, request)
}

impl EmulatorHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The served store, for direct inspection in tests.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stops accepting, closes every connection and joins every thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            server::shutdown(&self.shared, self.addr, acceptor);
            tracing::info!(addr = %self.addr, "hbase emulator stopped");
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
