//! The batch reads of a redis target (`HGETALL`, `TYPE`, `DUMP` of every key of a batch;
//! on a cluster, per master) and the orphan scan's `SCAN` pages, over plain RESP2
//! connections of their own with a reply decoder written for them.
//!
//! Why: redis-rs decodes every reply with a `combine` parser grammar, which was 16% of
//! the instructions of a clean 200,000-goods full run (callgrind: ~9,500 instructions per
//! `HGETALL` reply of three fields; BENCHMARKS.md). [`Decoder`] is a plain state machine:
//! it keeps the arrays it has begun between reads, so a reply that arrives in many reads
//! (a poisoned hash of megabytes) is decoded once, not again from its start after every
//! read, and it waits for a bulk string's whole length before copying it.
//!
//! Used only where it can speak for redis-rs: a `redis://` URL or seed (plain TCP,
//! RESP2); TLS, unix sockets and RESP3 keep redis-rs's connection, and writes (the
//! compare-and-set script) always do. Each connection carries one pipeline at a time
//! (idle ones are kept for the next batch); a connection whose pipeline failed or timed
//! out is dropped, never reused.

use std::sync::Mutex;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use redis::{ConnectionAddr, ConnectionInfo, ProtocolVersion, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::StoreError;

/// Deepest nesting of arrays a reply may have (redis-rs refuses deeper replies too).
const MAX_DEPTH: usize = 64;

/// Bytes read at least per read.
const READ_CHUNK: usize = 64 * 1024;

/// Why a pipeline got no replies.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The server could not be reached, or the connection broke or spoke no RESP2.
    #[error("{0}")]
    Unreachable(String),
    /// The server refused the connection's handshake (`AUTH`, `SELECT`).
    #[error("{0}")]
    Refused(String),
    /// A command's error reply, as redis-rs's error (classified by its kind).
    #[error("{0}")]
    Reply(redis::RedisError),
}

impl From<std::io::Error> for PipelineError {
    fn from(e: std::io::Error) -> Self {
        PipelineError::Unreachable(e.to_string())
    }
}

/// A call on a target's own read connections, with its timeout, as a [`StoreError`] of
/// target `store`.
pub async fn timed<T>(
    store: &str,
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, PipelineError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(StoreError::unreachable(store, "command timed out")),
        Ok(Err(PipelineError::Unreachable(why))) => Err(StoreError::unreachable(store, why)),
        Ok(Err(PipelineError::Refused(why))) => Err(StoreError::failed(store, why)),
        Ok(Err(PipelineError::Reply(e))) => Err(StoreError::classified(store, &e, &e)),
        Ok(Ok(v)) => Ok(v),
    }
}

/// Where and how to connect, and the idle connections.
pub struct RawPipeline {
    host: String,
    port: u16,
    db: i64,
    username: Option<String>,
    password: Option<String>,
    idle: Mutex<Vec<Conn>>,
}

struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl RawPipeline {
    /// `None` when the target needs what only redis-rs speaks (TLS, a unix socket, RESP3).
    pub fn for_connection(info: &ConnectionInfo) -> Option<RawPipeline> {
        let ConnectionAddr::Tcp(host, port) = &info.addr else { return None };
        if info.redis.protocol != ProtocolVersion::RESP2 {
            return None;
        }
        Some(RawPipeline {
            host: host.clone(),
            port: *port,
            db: info.redis.db,
            username: info.redis.username.clone(),
            password: info.redis.password.clone(),
            idle: Mutex::default(),
        })
    }

    /// `cmd key` for every key, one reply per key in order (an error reply is that key's
    /// value), in one round trip.
    pub async fn run(&self, cmd: &str, keys: &[&str]) -> Result<Vec<Value>, PipelineError> {
        let mut out = Vec::new();
        for key in keys {
            encode(&mut out, &[cmd.as_bytes(), key.as_bytes()]);
        }
        self.send(&out, keys.len()).await
    }

    /// One `SCAN cursor MATCH pattern COUNT limit`; an error reply is redis-rs's error, as
    /// `query_async` returns it (classified by its kind).
    pub async fn scan(&self, cursor: &str, pattern: &str, limit: usize) -> Result<Value, PipelineError> {
        let count = limit.to_string();
        let args: [&[u8]; 6] = [b"SCAN", cursor.as_bytes(), b"MATCH", pattern.as_bytes(), b"COUNT", count.as_bytes()];
        self.command(&args).await?.extract_error().map_err(PipelineError::Reply)
    }

    /// One command and its reply.
    async fn command(&self, args: &[&[u8]]) -> Result<Value, PipelineError> {
        let mut out = Vec::new();
        encode(&mut out, args);
        Ok(self.send(&out, 1).await?.pop().expect("one reply"))
    }

    /// Writes `commands` (encoded) on an idle or new connection and reads `n` replies.
    async fn send(&self, commands: &[u8], n: usize) -> Result<Vec<Value>, PipelineError> {
        let idle = self.idle.lock().expect("idle connections").pop();
        let mut conn = match idle {
            Some(c) => c,
            None => self.connect().await?,
        };
        conn.stream.write_all(commands).await?;
        let replies = conn.replies(n).await?;
        self.idle.lock().expect("idle connections").push(conn);
        Ok(replies)
    }

    async fn connect(&self) -> Result<Conn, PipelineError> {
        let stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        stream.set_nodelay(true)?;
        let mut conn = Conn { stream, buf: BytesMut::with_capacity(READ_CHUNK) };
        let mut hello: Vec<Vec<&[u8]>> = Vec::new();
        match (&self.username, &self.password) {
            (Some(user), Some(pass)) => hello.push(vec![b"AUTH", user.as_bytes(), pass.as_bytes()]),
            (None, Some(pass)) => hello.push(vec![b"AUTH", pass.as_bytes()]),
            _ => {}
        }
        let db = self.db.to_string();
        if self.db != 0 {
            hello.push(vec![b"SELECT", db.as_bytes()]);
        }
        if hello.is_empty() {
            return Ok(conn);
        }
        let mut out = Vec::new();
        for command in &hello {
            encode(&mut out, command);
        }
        conn.stream.write_all(&out).await?;
        for (command, reply) in hello.iter().zip(conn.replies(hello.len()).await?) {
            match reply {
                Value::Okay => {}
                Value::ServerError(e) => {
                    let what = String::from_utf8_lossy(command[0]);
                    return Err(PipelineError::Refused(format!(
                        "{what} refused: {} {}",
                        e.code(),
                        e.details().unwrap_or_default()
                    )));
                }
                other => {
                    let what = String::from_utf8_lossy(command[0]);
                    return Err(PipelineError::Unreachable(format!("{what} answered {other:?}")));
                }
            }
        }
        Ok(conn)
    }
}

impl Conn {
    /// The next `n` replies; nothing may follow them.
    async fn replies(&mut self, n: usize) -> Result<Vec<Value>, PipelineError> {
        let mut decoder = Decoder::default();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let step = decoder.decode(&self.buf).map_err(PipelineError::Unreachable)?;
            self.buf.advance(step.used);
            if let Some(value) = step.value {
                out.push(value);
                continue;
            }
            // Incomplete: read until the next token can be whole.
            let want = step.need.max(self.buf.len() + 1);
            while self.buf.len() < want {
                self.buf.reserve((want - self.buf.len()).max(READ_CHUNK));
                if self.stream.read_buf(&mut self.buf).await? == 0 {
                    return Err(PipelineError::Unreachable("the server closed the connection".into()));
                }
            }
        }
        if !self.buf.is_empty() {
            return Err(PipelineError::Unreachable(format!("{} bytes after the last reply", self.buf.len())));
        }
        Ok(out)
    }
}

/// A command as a RESP array of bulk strings.
fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    let mut num = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(num.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(num.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// What one [`Decoder::decode`] call did.
#[derive(Debug)]
pub struct Step {
    /// Bytes consumed from the front of the input (the decoder holds what they built).
    pub used: usize,
    /// A whole reply, when one completed.
    pub value: Option<Value>,
    /// When no reply completed: how many bytes (from the front of what is left) the next
    /// token needs at least; 0 when unknown (any more).
    pub need: usize,
}

/// RESP2 replies from a byte stream, resumable between reads.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Arrays begun and not complete: their items so far and how many are still due.
    open: Vec<(Vec<Value>, usize)>,
}

impl Decoder {
    /// Consumes whole tokens from `input` until one reply completes or a token is
    /// incomplete. `Err` when the input is not RESP2.
    pub fn decode(&mut self, input: &[u8]) -> Result<Step, String> {
        let mut used = 0;
        loop {
            let (token, len) = match token(&input[used..])? {
                Token::Incomplete(need) => return Ok(Step { used, value: None, need }),
                Token::Whole(token, len) => (token, len),
            };
            used += len;
            let mut value = match token {
                Parsed::Array(n) if n > 0 => {
                    if self.open.len() >= MAX_DEPTH {
                        return Err(format!("a reply nests arrays deeper than {MAX_DEPTH}"));
                    }
                    self.open.push((Vec::with_capacity(n.min(1024)), n));
                    continue;
                }
                Parsed::Array(_) => Value::Array(Vec::new()),
                Parsed::Value(v) => v,
            };
            // Close every array the value completes.
            loop {
                let Some((items, due)) = self.open.last_mut() else {
                    return Ok(Step { used, value: Some(value), need: 0 });
                };
                items.push(value);
                *due -= 1;
                if *due > 0 {
                    break;
                }
                let (items, _) = self.open.pop().expect("last_mut was some");
                value = Value::Array(items);
            }
        }
    }
}

enum Token {
    /// The token and its length in bytes.
    Whole(Parsed, usize),
    /// Bytes the token needs at least (0: unknown).
    Incomplete(usize),
}

enum Parsed {
    /// An array header with this many items.
    Array(usize),
    Value(Value),
}

/// One token at the start of `input`: a scalar, a bulk string with its data, or an
/// array header.
fn token(input: &[u8]) -> Result<Token, String> {
    let Some(end) = line_end(input) else { return Ok(Token::Incomplete(0)) };
    let line = &input[1..end];
    let after = end + 2;
    let parsed = match input[0] {
        b'+' => match line {
            b"OK" => Value::Okay,
            _ => Value::SimpleString(String::from_utf8_lossy(line).into_owned()),
        },
        b'-' => error_value(&input[..after])?,
        b':' => Value::Int(number(line)?),
        b'$' => match number(line)? {
            -1 => Value::Nil,
            n if n < 0 => return Err(format!("a bulk string of length {n}")),
            n => {
                let total = after + n as usize + 2;
                if input.len() < total {
                    return Ok(Token::Incomplete(total));
                }
                if &input[total - 2..total] != b"\r\n" {
                    return Err("a bulk string not followed by CRLF".into());
                }
                return Ok(Token::Whole(Parsed::Value(Value::BulkString(input[after..total - 2].to_vec())), total));
            }
        },
        b'*' => match number(line)? {
            -1 => Value::Nil,
            n if n < 0 => return Err(format!("an array of length {n}")),
            n => return Ok(Token::Whole(Parsed::Array(n as usize), after)),
        },
        other => return Err(format!("a reply starting with byte {other:#04x}, not RESP2")),
    };
    Ok(Token::Whole(Parsed::Value(parsed), after))
}

/// Index of the `\r` of the first CRLF.
fn line_end(input: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = input[from..].iter().position(|&b| b == b'\r') {
        let at = from + i;
        match input.get(at + 1) {
            Some(b'\n') => return Some(at),
            Some(_) => from = at + 1,
            None => return None,
        }
    }
    None
}

/// `-?[0-9]+` within i64: a length or an integer reply.
fn number(line: &[u8]) -> Result<i64, String> {
    let (negative, digits) = match line.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, line),
    };
    let n = (!digits.is_empty() && digits.len() <= 19)
        .then(|| {
            digits.iter().try_fold(0i64, |n, &d| {
                d.is_ascii_digit().then_some(())?;
                n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
            })
        })
        .flatten();
    match n {
        Some(n) if negative => Ok(-n),
        Some(n) => Ok(n),
        None => Err(format!("{:?} is not a RESP integer", String::from_utf8_lossy(line))),
    }
}

/// An error reply as redis-rs holds it (its code and details), rare enough to go through
/// redis-rs's own parser.
fn error_value(line: &[u8]) -> Result<Value, String> {
    redis::parse_redis_value(line).map_err(|e| format!("an error reply redis-rs cannot read: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replies as the server sends them, decoded whole and split at every byte, must give
    /// what redis-rs gives.
    #[test]
    fn decodes_as_redis_rs_does_whatever_the_reads() {
        let replies: Vec<&[u8]> = vec![
            b"*4\r\n$4\r\n7001\r\n$5\r\n{\"a\"}\r\n$1\r\n9\r\n$0\r\n\r\n",
            b"*0\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"+OK\r\n",
            b"+hash\r\n",
            b":-42\r\n",
            b":9223372036854775807\r\n",
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            b"$6\r\na\r\nb\rc\r\n",
            b"*2\r\n*2\r\n:1\r\n$2\r\nhi\r\n*1\r\n*0\r\n",
            b"*3\r\n$1\r\nx\r\n-ERR inside\r\n$-1\r\n",
        ];
        let stream: Vec<u8> = replies.concat();
        let expected: Vec<Value> = replies.iter().map(|r| redis::parse_redis_value(r).unwrap()).collect();
        for split in 0..=stream.len() {
            let mut decoder = Decoder::default();
            let mut buf: Vec<u8> = stream[..split].to_vec();
            let mut rest = &stream[split..];
            let mut got = Vec::new();
            while got.len() < expected.len() {
                let step = decoder.decode(&buf).unwrap();
                buf.drain(..step.used);
                match step.value {
                    Some(v) => got.push(v),
                    None => {
                        assert!(!rest.is_empty(), "split {split}: incomplete with nothing left to read");
                        assert!(step.need == 0 || step.need > buf.len(), "split {split}: need {}", step.need);
                        let take = step.need.saturating_sub(buf.len()).max(1).min(rest.len());
                        buf.extend_from_slice(&rest[..take]);
                        rest = &rest[take..];
                    }
                }
            }
            assert_eq!(got, expected, "split at {split}");
            assert!(buf.is_empty() && rest.is_empty());
        }
    }

    #[test]
    fn refuses_what_is_not_resp2() {
        for bad in [
            &b"%1\r\n"[..],
            b"$x\r\n",
            b"$-2\r\n",
            b"*-5\r\n",
            b"$1\r\nab\r\n",
            b":1-\r\n",
            b":\r\n",
            b":9223372036854775808\r\n",
        ] {
            assert!(Decoder::default().decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1);
        assert!(Decoder::default().decode(deep.as_bytes()).unwrap_err().contains("deeper"));
    }

    #[test]
    fn a_long_bulk_string_says_how_much_it_needs() {
        let step = Decoder::default().decode(b"*2\r\n$100000\r\nab").unwrap();
        assert_eq!((step.used, step.value, step.need), (4, None, "$100000\r\n".len() + 100_000 + 2));
    }

    #[test]
    fn only_plain_tcp_resp2_urls_get_own_connections() {
        use redis::IntoConnectionInfo;
        let of = |url: &str| RawPipeline::for_connection(&url.into_connection_info().unwrap());
        let plain = of("redis://user:pw@127.0.0.1:6379/6").expect("plain TCP, RESP2");
        assert_eq!((plain.db, plain.username.as_deref(), plain.password.as_deref()), (6, Some("user"), Some("pw")));
        assert!(of("redis://127.0.0.1:6379/6?protocol=resp3").is_none(), "RESP3 stays on redis-rs");
        assert!(of("redis+unix:///tmp/redis.sock").is_none(), "unix sockets stay on redis-rs");
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode(&mut out, &[b"HGETALL", b"k:1"]);
        assert_eq!(out, b"*2\r\n$7\r\nHGETALL\r\n$3\r\nk:1\r\n");
    }
}
