//! The harness's own HBase Thrift1 client (the `hbase-thrift` crate, binary protocol,
//! buffered transport), independent of the reconciler's adapter: creates the table, reads
//! rows raw, writes cells as a sync pipeline or a poisoner would.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, Result};
use hbase_thrift::hbase::{ColumnDescriptor, HbaseSyncClient, Mutation, THbaseSyncClient};
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::transport::{
    ReadHalf, TBufferedReadTransport, TBufferedWriteTransport, TIoChannel, TTcpChannel, WriteHalf,
};

pub type Client = HbaseSyncClient<
    TBinaryInputProtocol<TBufferedReadTransport<ReadHalf<TTcpChannel>>>,
    TBinaryOutputProtocol<TBufferedWriteTransport<WriteHalf<TTcpChannel>>>,
>;

/// The family every scenario's table holds.
pub const FAMILY: &str = "a";

/// Connects with a 10 s read/write timeout, so a frozen server fails the call instead of
/// hanging the harness.
pub fn connect(address: &str) -> Result<Client> {
    let stream = std::net::TcpStream::connect_timeout(
        &address.parse().map_err(|e| anyhow!("hbase address {address}: {e}"))?,
        Duration::from_secs(5),
    )
    .map_err(|e| anyhow!("hbase at {address}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let channel = TTcpChannel::with_stream(stream);
    let (read, write) = channel.split()?;
    Ok(HbaseSyncClient::new(
        TBinaryInputProtocol::new(TBufferedReadTransport::with_capacity(1 << 16, read), true),
        TBinaryOutputProtocol::new(TBufferedWriteTransport::with_capacity(1 << 16, write), true),
    ))
}

/// Creates `table` with family `a` (3 versions) unless it exists.
pub fn ensure_table(address: &str, table: &str) -> Result<()> {
    let mut c = connect(address)?;
    if c.get_table_names()?.iter().any(|t| t == table.as_bytes()) {
        return Ok(());
    }
    let family = ColumnDescriptor {
        name: Some(format!("{FAMILY}:").into_bytes()),
        max_versions: Some(3),
        compression: Some("NONE".into()),
        in_memory: Some(false),
        bloom_filter_type: Some("NONE".into()),
        bloom_filter_vector_size: Some(0),
        bloom_filter_nb_hashes: Some(0),
        block_cache_enabled: Some(false),
        time_to_live: Some(i32::MAX),
    };
    c.create_table(table.as_bytes().to_vec(), vec![family])?;
    Ok(())
}

/// One row's cells of family `a`: qualifier → (value, timestamp).
pub type Cells = BTreeMap<Vec<u8>, (Vec<u8>, i64)>;

/// Reads rows; a row that does not exist is absent from the answer.
pub fn read_rows(c: &mut Client, table: &str, rows: &[String]) -> Result<BTreeMap<String, Cells>> {
    let keys = rows.iter().map(|r| r.as_bytes().to_vec()).collect();
    // Every column of the row (a column `a:` could be read as the empty qualifier).
    let got = c.get_rows(table.as_bytes().to_vec(), keys, BTreeMap::new())?;
    let mut out = BTreeMap::new();
    for r in got {
        let row = String::from_utf8_lossy(&r.row.unwrap_or_default()).into_owned();
        let mut cells = Cells::new();
        for (column, cell) in r.columns.unwrap_or_default() {
            let Some(qualifier) = column.strip_prefix(format!("{FAMILY}:").as_bytes()) else { continue };
            let qualifier = qualifier.to_vec();
            cells.insert(qualifier, (cell.value.unwrap_or_default(), cell.timestamp.unwrap_or(-1)));
        }
        if !cells.is_empty() {
            out.insert(row, cells);
        }
    }
    Ok(out)
}

/// Writes one cell with timestamp `ts`.
pub fn put(c: &mut Client, table: &str, row: &str, qualifier: &[u8], value: Vec<u8>, ts: i64) -> Result<()> {
    let mut column = format!("{FAMILY}:").into_bytes();
    column.extend_from_slice(qualifier);
    let m = Mutation::new(false, column, value, true);
    c.mutate_row_ts(table.as_bytes().to_vec(), row.as_bytes().to_vec(), vec![m], ts, BTreeMap::new())?;
    Ok(())
}
