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

/// Drops `table` if it exists (disabled first, as HBase requires); returns whether it
/// existed. The bench's own emulator starts empty, but an external server
/// (`--external-hbase`) keeps what earlier runs wrote: cells an earlier run's repairs
/// wrote above the seed's timestamps hid the newly seeded cells (drift in the clean run)
/// and outlived the deletes injected as `missing` drift (found: 0).
pub fn drop_table(client: &mut Client, table: &str) -> Result<bool> {
    let name = table.as_bytes().to_vec();
    if !client.get_table_names()?.contains(&name) {
        return Ok(false);
    }
    client.disable_table(name.clone())?;
    client.delete_table(name)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(client: &mut Client, table: &str, key: &[u8]) -> Vec<(Vec<u8>, Vec<u8>, Option<i64>)> {
        let rows = client.get_row(table.as_bytes().to_vec(), key.to_vec(), BTreeMap::new()).unwrap();
        rows.into_iter()
            .flat_map(|r| r.columns.unwrap_or_default())
            .map(|(name, cell)| (name, cell.value.unwrap_or_default(), cell.timestamp))
            .collect()
    }

    /// Regression: a second run against the same external server read the first run's
    /// repaired cells (written above the seed's timestamp) instead of its own seed, and
    /// its injected `missing` deletes (at the entity's version) did not hide them.
    #[test]
    fn a_dropped_table_forgets_cells_an_earlier_run_wrote_above_the_seed() {
        let emu = hbase_emulator::start("127.0.0.1:0", Default::default()).unwrap();
        let target = model::config::HbaseTarget {
            name: "hbase-a".into(),
            address: emu.local_addr().to_string(),
            table: "t".into(),
            family: "a".into(),
            pool_size: 1,
            timeout_ms: 2000,
            transport: model::config::ThriftTransport::Buffered,
        };
        let create = || assert!(reconciler::hbase_admin::ensure_table(&target).unwrap(), "created");
        create();
        let mut c = connect(&emu.local_addr().to_string()).unwrap();
        let put = |value: Option<&[u8]>, ts| Cell {
            row: b"r".to_vec(),
            qualifier: b"1".to_vec(),
            value: value.map(<[u8]>::to_vec),
            ts,
        };
        // Run 1: seed at ver 100, a repair above it at 5,000.
        write(&mut c, "t", "a", vec![put(Some(b"seed 1"), 100)]).unwrap();
        write(&mut c, "t", "a", vec![put(Some(b"repaired"), 5_000)]).unwrap();
        // Run 2 without dropping: its seed (ver 200) stays hidden, its `missing` delete too.
        write(&mut c, "t", "a", vec![put(Some(b"seed 2"), 200)]).unwrap();
        write(&mut c, "t", "a", vec![put(None, 200)]).unwrap();
        assert_eq!(row(&mut c, "t", b"r"), vec![(b"a:1".to_vec(), b"repaired".to_vec(), Some(5_000))]);
        // Run 2 as the bench does it now: the table dropped and created again first.
        assert!(drop_table(&mut c, "t").unwrap());
        assert!(!drop_table(&mut c, "t").unwrap(), "a second drop finds nothing");
        create();
        write(&mut c, "t", "a", vec![put(Some(b"seed 2"), 200)]).unwrap();
        assert_eq!(row(&mut c, "t", b"r"), vec![(b"a:1".to_vec(), b"seed 2".to_vec(), Some(200))]);
        write(&mut c, "t", "a", vec![put(None, 200)]).unwrap();
        assert_eq!(row(&mut c, "t", b"r"), vec![], "the injected delete hides the seeded cell");
    }
}
