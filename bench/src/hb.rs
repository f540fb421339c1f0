//! A plain synchronous HBase Thrift1 client for seeding and drift injection (the
//! reconciler's own adapter is only used by the measured paths).

use std::collections::BTreeMap;

use anyhow::Result;
use hbase_thrift::hbase::{BatchMutation, HbaseSyncClient, Mutation, THbaseSyncClient};
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::transport::{
    ReadHalf, TBufferedReadTransport, TBufferedWriteTransport, TIoChannel, TTcpChannel, WriteHalf,
};

pub type Client = HbaseSyncClient<
    TBinaryInputProtocol<TBufferedReadTransport<ReadHalf<TTcpChannel>>>,
    TBinaryOutputProtocol<TBufferedWriteTransport<WriteHalf<TTcpChannel>>>,
>;

pub fn connect(address: &str) -> Result<Client> {
    let mut channel = TTcpChannel::new();
    channel.open(address).map_err(|e| anyhow::anyhow!("hbase at {address}: {e}"))?;
    let (read, write) = channel.split()?;
    Ok(HbaseSyncClient::new(
        TBinaryInputProtocol::new(TBufferedReadTransport::with_capacity(1 << 16, read), true),
        TBinaryOutputProtocol::new(TBufferedWriteTransport::with_capacity(1 << 16, write), true),
    ))
}

/// One cell write: `None` value = delete of every version at or below `ts`.
pub struct Cell {
    pub row: Vec<u8>,
    pub qualifier: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub ts: i64,
}

/// Writes cells with one `mutateRowsTs` per timestamp.
pub fn write(client: &mut Client, table: &str, family: &str, cells: Vec<Cell>) -> Result<()> {
    let mut by_ts: BTreeMap<i64, BTreeMap<Vec<u8>, Vec<Mutation>>> = BTreeMap::new();
    for c in cells {
        let mut column = format!("{family}:").into_bytes();
        column.extend_from_slice(&c.qualifier);
        let m = Mutation::new(c.value.is_none(), column, c.value, true);
        by_ts.entry(c.ts).or_default().entry(c.row).or_default().push(m);
    }
    for (ts, rows) in by_ts {
        let batch = rows.into_iter().map(|(row, muts)| BatchMutation::new(row, muts)).collect();
        client.mutate_rows_ts(table.as_bytes().to_vec(), batch, ts, BTreeMap::new())?;
    }
    Ok(())
}
