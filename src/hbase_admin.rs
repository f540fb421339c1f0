//! HBase table administration over Thrift1, for `schema`, `demo` and tests: creates the
//! configured table with its family when absent. In production the table is created by
//! the HBase operators; creating it here is a no-op there.

use hbase_thrift::hbase::{ColumnDescriptor, HbaseSyncClient, THbaseSyncClient};
use model::config::HbaseTarget;
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport, TIoChannel, TTcpChannel};

/// Creates `target.table` with family `target.family` (3 versions) unless it exists.
/// Returns whether it created it.
pub fn ensure_table(target: &HbaseTarget) -> anyhow::Result<bool> {
    let mut channel = TTcpChannel::new();
    channel
        .open(target.address.as_str())
        .map_err(|e| anyhow::anyhow!("hbase target `{}` at {}: {e}", target.name, target.address))?;
    let (read, write) = channel.split()?;
    let mut client = HbaseSyncClient::new(
        TBinaryInputProtocol::new(TBufferedReadTransport::new(read), true),
        TBinaryOutputProtocol::new(TBufferedWriteTransport::new(write), true),
    );
    let tables = client.get_table_names()?;
    if tables.iter().any(|t| t == target.table.as_bytes()) {
        return Ok(false);
    }
    // Hbase.thrift's IDL defaults; the generated `Default` leaves names empty, which
    // HBase rejects.
    let family = ColumnDescriptor {
        name: Some(format!("{}:", target.family).into_bytes()),
        max_versions: Some(3),
        compression: Some("NONE".into()),
        in_memory: Some(false),
        bloom_filter_type: Some("NONE".into()),
        bloom_filter_vector_size: Some(0),
        bloom_filter_nb_hashes: Some(0),
        block_cache_enabled: Some(false),
        time_to_live: Some(i32::MAX),
    };
    client.create_table(target.table.clone().into_bytes(), vec![family])?;
    Ok(true)
}
