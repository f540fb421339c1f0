//! A Rust `hbase-thrift` client for the tests, over any transport and protocol, and
//! small helpers that read results the way the scenario compares them.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use hbase_emulator::{Protocol, Transport};
use hbase_thrift::hbase::{
    BatchMutation, HbaseSyncClient, IOError, IllegalArgument, Mutation, THbaseSyncClient, TRowResult,
};
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TCompactInputProtocol, TCompactOutputProtocol, TInputProtocol,
    TOutputProtocol,
};
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport, TFramedReadTransport, TFramedWriteTransport};

pub type Client = HbaseSyncClient<Box<dyn TInputProtocol + Send>, Box<dyn TOutputProtocol + Send>>;

pub fn connect(addr: SocketAddr, transport: Transport, protocol: Protocol) -> Client {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    let read = stream.try_clone().unwrap();
    let (r, w): (Box<dyn Read + Send>, Box<dyn Write + Send>) = match transport {
        Transport::Buffered => {
            (Box::new(TBufferedReadTransport::new(read)), Box::new(TBufferedWriteTransport::new(stream)))
        }
        Transport::Framed => (Box::new(TFramedReadTransport::new(read)), Box::new(TFramedWriteTransport::new(stream))),
    };
    let (i, o): (Box<dyn TInputProtocol + Send>, Box<dyn TOutputProtocol + Send>) = match protocol {
        Protocol::Binary => {
            (Box::new(TBinaryInputProtocol::new(r, true)), Box::new(TBinaryOutputProtocol::new(w, true)))
        }
        Protocol::Compact => (Box::new(TCompactInputProtocol::new(r)), Box::new(TCompactOutputProtocol::new(w))),
    };
    HbaseSyncClient::new(i, o)
}

pub fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

pub fn put_m(column: &str, value: &str) -> Mutation {
    Mutation::new(false, b(column), b(value), true)
}

pub fn delete_m(column: &str) -> Mutation {
    Mutation::new(true, b(column), None, true)
}

/// Puts one cell, at `ts` or (None) at the server's now.
pub fn put(c: &mut Client, table: &str, row: &str, column: &str, value: &str, ts: Option<i64>) {
    let batch = vec![BatchMutation::new(b(row), vec![put_m(column, value)])];
    match ts {
        Some(ts) => c.mutate_rows_ts(b(table), batch, ts, BTreeMap::new()),
        None => c.mutate_rows(b(table), batch, BTreeMap::new()),
    }
    .expect("put");
}

/// Column name to (value, timestamp) of the first row of a result.
pub fn cells_of(rows: Vec<TRowResult>) -> BTreeMap<String, (String, i64)> {
    let Some(r) = rows.into_iter().next() else { return BTreeMap::new() };
    r.columns
        .unwrap_or_default()
        .into_iter()
        .map(|(k, c)| {
            let v = String::from_utf8(c.value.unwrap_or_default()).unwrap();
            (String::from_utf8(k).unwrap(), (v, c.timestamp.unwrap_or_default()))
        })
        .collect()
}

/// The row's columns, optionally restricted and bounded by `ts` (exclusive).
pub fn row(
    c: &mut Client,
    table: &str,
    row: &str,
    columns: &[&str],
    ts: Option<i64>,
) -> BTreeMap<String, (String, i64)> {
    let cols = columns.iter().map(|s| b(s)).collect();
    let rows = match ts {
        Some(ts) => c.get_row_with_columns_ts(b(table), b(row), cols, ts, BTreeMap::new()),
        None => c.get_row_with_columns(b(table), b(row), cols, BTreeMap::new()),
    };
    cells_of(rows.expect("get row"))
}

pub fn values(
    c: &mut Client,
    table: &str,
    row: &str,
    column: &str,
    versions: i32,
    ts: Option<i64>,
) -> Vec<(String, i64)> {
    let cells = match ts {
        Some(ts) => c.get_ver_ts(b(table), b(row), b(column), ts, versions, BTreeMap::new()),
        None => c.get_ver(b(table), b(row), b(column), versions, BTreeMap::new()),
    };
    cells
        .expect("get versions")
        .into_iter()
        .map(|c| (String::from_utf8(c.value.unwrap()).unwrap(), c.timestamp.unwrap()))
        .collect()
}

pub fn scan_keys(c: &mut Client, id: i32) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let batch = c.scanner_get_list(id, 3).expect("scanner get");
        if batch.is_empty() {
            break;
        }
        out.extend(batch.into_iter().map(|r| String::from_utf8(r.row.unwrap()).unwrap()));
    }
    c.scanner_close(id).expect("scanner close");
    out
}

pub fn is_io_error<T: std::fmt::Debug>(r: thrift::Result<T>) -> bool {
    matches!(r, Err(thrift::Error::User(e)) if e.downcast_ref::<IOError>().is_some())
}

pub fn is_illegal_argument<T: std::fmt::Debug>(r: thrift::Result<T>) -> bool {
    matches!(r, Err(thrift::Error::User(e)) if e.downcast_ref::<IllegalArgument>().is_some())
}
