//! Goods ids from a Hive-exported Parquet dump (file or directory of part files), as a
//! full run's id source: read on a blocking thread, streamed in batches.

use std::path::Path;

use handlers::run::IdBatch;
use model::config::Config;
use tokio::sync::mpsc;

/// Opens the dump (failing early on a missing path or an empty directory) and streams its
/// ids; a broken file or column mid-way ends the stream with an error naming it.
pub fn source(path: &Path, config: &Config, batch_size: usize) -> Result<mpsc::Receiver<IdBatch>, String> {
    let column = &config.triggers.full.goods_id_column;
    let mut raw = triggers::dump::spawn_dump_reader(path, column, batch_size, 4).map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        while let Some(batch) = raw.recv().await {
            let failed = batch.is_err();
            if tx.send(batch.map(Into::into).map_err(|e| e.to_string())).await.is_err() || failed {
                return;
            }
        }
    });
    Ok(rx)
}
