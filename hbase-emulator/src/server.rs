//! The accept loop around the generated `HbaseSyncProcessor`: one thread per open
//! connection (as thrift's `TServer`), at most `workers` at once, and a shutdown that
//! stops accepting, closes every connection and joins every thread.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use hbase_thrift::hbase::HbaseSyncProcessor;
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TCompactInputProtocol, TCompactOutputProtocol, TInputProtocol,
    TOutputProtocol,
};
use thrift::server::TProcessor;
use thrift::transport::{TBufferedWriteTransport, TFramedWriteTransport};

use crate::handler::Handler;
use crate::lenient::ahead::Ahead;
use crate::lenient::framed::Framed;
use crate::lenient::Lenient;
use crate::{EmulatorOptions, Protocol, Transport};

type Processor = HbaseSyncProcessor<Handler>;

/// State the acceptor, the workers and the handle share.
#[derive(Default)]
pub(crate) struct Shared {
    stopping: AtomicBool,
    next_conn: AtomicU64,
    /// A clone of every open connection, to close them on shutdown.
    conns: Mutex<HashMap<u64, TcpStream>>,
    /// Connections being served; the acceptor waits while this is at `workers`.
    active: Mutex<usize>,
    freed: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn spawn_acceptor(
    listener: TcpListener,
    processor: Arc<Processor>,
    opts: EmulatorOptions,
    shared: Arc<Shared>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("hbase-emu-accept".into()).spawn(move || {
        let workers = opts.workers.max(1);
        loop {
            {
                let mut active = lock(&shared.active);
                while *active >= workers && !shared.stopping.load(Ordering::SeqCst) {
                    active = shared.freed.wait(active).unwrap_or_else(|p| p.into_inner());
                }
            }
            if shared.stopping.load(Ordering::SeqCst) {
                break;
            }
            match listener.accept() {
                Ok((stream, peer)) => {
                    if shared.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Err(e) = start_worker(stream, peer, &processor, opts.clone(), &shared) {
                        tracing::warn!(%peer, error = %e, "cannot start a connection worker");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    })
}

fn start_worker(
    stream: TcpStream,
    peer: SocketAddr,
    processor: &Arc<Processor>,
    opts: EmulatorOptions,
    shared: &Arc<Shared>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    lock(&shared.conns).insert(id, stream.try_clone()?);
    *lock(&shared.active) += 1;
    let slot = Slot { id, shared: shared.clone() };
    let processor = processor.clone();
    let spawned = std::thread::Builder::new().name(format!("hbase-emu-conn-{id}")).spawn(move || {
        let _slot = slot;
        tracing::debug!(%peer, "connection opened");
        if let Err(e) = serve(&processor, stream, &opts) {
            tracing::debug!(%peer, error = %e, "connection closed");
        }
    });
    // A thread that could not start dropped its slot with the closure.
    let handle = spawned?;
    let mut threads = lock(&shared.threads);
    threads.retain(|h| !h.is_finished());
    threads.push(handle);
    Ok(())
}

/// A connection's worker slot, released when its thread ends, even by a panic.
struct Slot {
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.shared.conns).remove(&self.id);
        *lock(&self.shared.active) -= 1;
        self.shared.freed.notify_all();
    }
}

/// Answers calls on one connection until the client hangs up (an error ends it too).
fn serve(processor: &Processor, stream: TcpStream, opts: &EmulatorOptions) -> thrift::Result<()> {
    let read = stream.try_clone()?;
    with_transport(processor, read, stream, opts.transport, opts.protocol)
}

/// [`crate::answer`]: serves one connection's bytes from memory.
pub(crate) fn answer(processor: &Processor, transport: Transport, protocol: Protocol, request: &[u8]) -> Vec<u8> {
    let mut reply = Vec::new();
    let _ = with_transport(processor, request, &mut reply, transport, protocol);
    reply
}

/// Reply bytes written to the socket at a time (thrift's default is 4 KB: a batch's
/// answer of hundreds of KB went out in ~100 `sendto` calls).
const WRITE_BUFFER: usize = 64 * 1024;

fn with_transport<R: Read, W: Write>(
    processor: &Processor,
    r: R,
    w: W,
    transport: Transport,
    protocol: Protocol,
) -> thrift::Result<()> {
    match transport {
        Transport::Buffered => {
            with_protocol(processor, Ahead::new(r), TBufferedWriteTransport::with_capacity(WRITE_BUFFER, w), protocol)
        }
        Transport::Framed => with_protocol(
            processor,
            Ahead::new(Framed::new(r)),
            TFramedWriteTransport::with_capacity(WRITE_BUFFER, w),
            protocol,
        ),
    }
}

fn with_protocol<R: Read, W: Write>(
    processor: &Processor,
    r: Ahead<R>,
    w: W,
    protocol: Protocol,
) -> thrift::Result<()> {
    match protocol {
        // Lenient reads accept old non-strict clients as HBase's server does.
        Protocol::Binary => {
            let i = Lenient::new(TBinaryInputProtocol::new(r.clone(), false), r, false);
            run(processor, i, TBinaryOutputProtocol::new(w, true))
        }
        Protocol::Compact => {
            let i = Lenient::new(TCompactInputProtocol::new(r.clone()), r, true);
            run(processor, i, TCompactOutputProtocol::new(w))
        }
    }
}

fn run(processor: &Processor, mut i: impl TInputProtocol, mut o: impl TOutputProtocol) -> thrift::Result<()> {
    loop {
        processor.process(&mut i, &mut o)?;
    }
}

/// Stops accepting (waking the acceptor with a connection of its own), closes every
/// open connection and joins all threads.
pub(crate) fn shutdown(shared: &Shared, addr: SocketAddr, acceptor: JoinHandle<()>) {
    shared.stopping.store(true, Ordering::SeqCst);
    shared.freed.notify_all();
    let mut wake = addr;
    if wake.ip().is_unspecified() {
        wake.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
    let _ = acceptor.join();
    for conn in lock(&shared.conns).values() {
        let _ = conn.shutdown(Shutdown::Both);
    }
    let threads = std::mem::take(&mut *lock(&shared.threads));
    for t in threads {
        let _ = t.join();
    }
}
