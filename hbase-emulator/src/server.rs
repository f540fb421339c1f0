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
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport, TFramedReadTransport, TFramedWriteTransport};

use crate::handler::Handler;
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
    let (processor, worker_shared) = (processor.clone(), shared.clone());
    let spawned = std::thread::Builder::new().name(format!("hbase-emu-conn-{id}")).spawn(move || {
        tracing::debug!(%peer, "connection opened");
        if let Err(e) = serve(&processor, stream, &opts) {
            tracing::debug!(%peer, error = %e, "connection closed");
        }
        lock(&worker_shared.conns).remove(&id);
        *lock(&worker_shared.active) -= 1;
        worker_shared.freed.notify_all();
    });
    match spawned {
        Ok(handle) => {
            let mut threads = lock(&shared.threads);
            threads.retain(|h| !h.is_finished());
            threads.push(handle);
            Ok(())
        }
        Err(e) => {
            lock(&shared.conns).remove(&id);
            *lock(&shared.active) -= 1;
            Err(e)
        }
    }
}

/// Answers calls on one connection until the client hangs up (an error ends it too).
fn serve(processor: &Processor, stream: TcpStream, opts: &EmulatorOptions) -> thrift::Result<()> {
    let read = stream.try_clone()?;
    match opts.transport {
        Transport::Buffered => with_protocol(
            processor,
            TBufferedReadTransport::new(read),
            TBufferedWriteTransport::new(stream),
            opts.protocol,
        ),
        Transport::Framed => {
            with_protocol(processor, TFramedReadTransport::new(read), TFramedWriteTransport::new(stream), opts.protocol)
        }
    }
}

fn with_protocol<R: Read, W: Write>(processor: &Processor, r: R, w: W, protocol: Protocol) -> thrift::Result<()> {
    match protocol {
        // Lenient reads accept old non-strict clients as HBase's server does.
        Protocol::Binary => {
            run(processor, Lenient::new(TBinaryInputProtocol::new(r, false)), TBinaryOutputProtocol::new(w, true))
        }
        Protocol::Compact => {
            run(processor, Lenient::new(TCompactInputProtocol::new(r)), TCompactOutputProtocol::new(w))
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
