//! A small pool of synchronous Thrift1 clients: connected lazily, with socket
//! timeouts, dropped when their connection breaks. Every call runs on a blocking
//! thread while holding one of `pool_size` permits.

use std::io::{BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hbase_thrift::hbase::{AlreadyExists, HbaseSyncClient, IOError, IllegalArgument};
use model::config::ThriftTransport;
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol, TInputProtocol, TOutputProtocol};
use thrift::transport::{TBufferedWriteTransport, TFramedReadTransport, TFramedWriteTransport};
use tokio::sync::Semaphore;

use crate::error::StoreError;

pub type Client = HbaseSyncClient<Box<dyn TInputProtocol + Send>, Box<dyn TOutputProtocol + Send>>;

pub struct Pool {
    /// Target name, for errors.
    name: String,
    address: String,
    transport: ThriftTransport,
    timeout: Duration,
    idle: Mutex<Vec<Client>>,
    /// Bounds the connections in use (and so the blocking threads held) to `pool_size`.
    permits: Arc<Semaphore>,
}

impl Pool {
    pub fn new(name: &str, address: &str, transport: ThriftTransport, timeout: Duration, size: usize) -> Self {
        Pool {
            name: name.to_string(),
            address: address.to_string(),
            transport,
            timeout,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    /// Runs `op` on a pooled client in a blocking thread. A pooled connection that
    /// turns out broken is replaced once by a fresh one (every call this adapter makes
    /// is idempotent: writes carry explicit timestamps).
    pub async fn call<T, F>(self: &Arc<Self>, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&mut Client) -> thrift::Result<T> + Send + 'static,
    {
        let permit = self.permits.clone().acquire_owned().await.expect("pool semaphore is never closed");
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pool.run(&op)
        })
        .await
        .map_err(|e| StoreError::failed(&self.name, format!("hbase call panicked: {e}")))?
    }

    fn run<T>(&self, op: &dyn Fn(&mut Client) -> thrift::Result<T>) -> Result<T, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let from_pool = pooled.is_some();
        let mut client = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        let mut result = op(&mut client);
        if from_pool && matches!(result, Err(thrift::Error::Transport(_))) {
            tracing::debug!(target_name = %self.name, "pooled hbase connection broken, reconnecting");
            client = self.connect()?;
            result = op(&mut client);
        }
        match result {
            Ok(v) => {
                self.give_back(client);
                Ok(v)
            }
            Err(e) => {
                let (keep, err) = self.classify(e);
                if keep {
                    self.give_back(client);
                }
                Err(err)
            }
        }
    }

    fn give_back(&self, client: Client) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(client);
    }

    /// Whether the connection is still usable, and the error as the caller sees it:
    /// exceptions the server sent are `Failed`, a broken or silent connection is
    /// `Unreachable`.
    fn classify(&self, e: thrift::Error) -> (bool, StoreError) {
        // A broken connection or a protocol error leaves the stream unusable; exceptions
        // the server sent leave it fine.
        let keep = matches!(e, thrift::Error::User(_) | thrift::Error::Application(_));
        let msg = match &e {
            thrift::Error::User(u) => {
                if let Some(io) = u.downcast_ref::<IOError>() {
                    format!("IOError: {}", first_line(io.message.as_deref()))
                } else if let Some(ia) = u.downcast_ref::<IllegalArgument>() {
                    format!("IllegalArgument: {}", first_line(ia.message.as_deref()))
                } else if let Some(ae) = u.downcast_ref::<AlreadyExists>() {
                    format!("AlreadyExists: {}", first_line(ae.message.as_deref()))
                } else {
                    u.to_string()
                }
            }
            thrift::Error::Application(a) => format!("application error: {a}"),
            thrift::Error::Protocol(p) => format!("protocol error: {p}"),
            thrift::Error::Transport(t) => t.to_string(),
        };
        (keep, StoreError::classified(&self.name, &e, msg))
    }

    fn connect(&self) -> Result<Client, StoreError> {
        let unreachable =
            |e: &dyn std::fmt::Display| StoreError::unreachable(&self.name, format!("{}: {e}", self.address));
        let addrs: Vec<_> = self.address.to_socket_addrs().map_err(|e| unreachable(&e))?.collect();
        let mut last = None;
        let stream = addrs.iter().find_map(|a| match TcpStream::connect_timeout(a, self.timeout) {
            Ok(s) => Some(s),
            Err(e) => {
                last = Some(e);
                None
            }
        });
        let stream = match (stream, last) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(unreachable(&e)),
            (None, None) => return Err(unreachable(&"address resolves to nothing")),
        };
        let setup = || -> std::io::Result<TcpStream> {
            stream.set_read_timeout(Some(self.timeout))?;
            stream.set_write_timeout(Some(self.timeout))?;
            stream.set_nodelay(true)?;
            stream.try_clone()
        };
        let read = setup().map_err(|e| unreachable(&e))?;
        let (r, w): (Box<dyn Read + Send>, Box<dyn Write + Send>) = match self.transport {
            ThriftTransport::Buffered => {
                (Box::new(BufReader::with_capacity(READ_BUFFER, read)), Box::new(TBufferedWriteTransport::new(stream)))
            }
            ThriftTransport::Framed => (
                Box::new(BufReader::new(TFramedReadTransport::with_capacity(READ_BUFFER, read))),
                Box::new(TFramedWriteTransport::new(stream)),
            ),
        };
        Ok(HbaseSyncClient::new(
            Box::new(TBinaryInputProtocol::new(r, true)),
            Box::new(TBinaryOutputProtocol::new(w, true)),
        ))
    }
}

/// Bytes read from the socket at a time. A batch's `getRowsWithColumns` answer is
/// hundreds of KB; thrift's default 4 KB buffer read it in ~40,000 `recvfrom` calls per
/// 200,000 goods (strace of `reconciler full`, BENCHMARKS.md).
///
/// The buffer is std's `BufReader` (framed: over thrift's frame reader), not thrift's
/// `TBufferedReadTransport`: the protocol reads every field with `read_exact`, which
/// `BufReader` serves from its buffer in one copy, while thrift's transport answers it
/// through the generic loop of `read` calls (that loop and its copies were ~5% of a clean
/// full run's instructions, callgrind, BENCHMARKS.md).
const READ_BUFFER: usize = 64 * 1024;

/// HBase sends Java stack traces; the first line names the exception.
fn first_line(msg: Option<&str>) -> &str {
    msg.unwrap_or("").lines().next().unwrap_or("")
}
