//! Goods ids from a Hive- or Spark-exported Parquet dump: one file, or a table directory
//! of part files, with partition folders (`dt=2026-11-23/`, nested to any depth). Part
//! files may have any name (Hive writes `000000_0`, Spark `part-00000-….snappy.parquet`)
//! and any codec Hive and Spark write (snappy, gzip, zstd, lz4, uncompressed). Hidden and
//! `_`-prefixed entries (`_SUCCESS`, `_temporary/`) and `.crc` files are skipped at every
//! level; the rest is read in sorted path order. A part file that does not read fails
//! with its path named.
//!
//! Memory stays bounded whatever the dump size: only the id column is projected, and one
//! record batch (`batch_size` rows) is decoded at a time. The reader is blocking IO;
//! async callers run it on a blocking thread ([`spawn_dump_reader`]).
//!
//! Accepted id types: int64, uint64, int32, uint32, decimal with scale 0, and strings of
//! decimal digits. Nulls are skipped; negative or unparsable ids are errors naming the
//! file and the column. Duplicates are passed through (checks are idempotent).

pub mod convert;

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use thiserror::Error;

use model::GoodsId;

#[derive(Debug, Error)]
pub enum DumpError {
    #[error("dump {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("dump {path}: no Parquet part files")]
    Empty { path: PathBuf },
    #[error("dump file {path}: not a readable Parquet file: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("dump file {path}: no column `{column}` (columns: {available})")]
    MissingColumn { path: PathBuf, column: String, available: String },
    #[error("dump file {path}: column `{column}` has type {found}, expected an integer, scale-0 decimal or string id")]
    WrongType { path: PathBuf, column: String, found: String },
    #[error("dump file {path}: column `{column}`: {reason}")]
    BadValue { path: PathBuf, column: String, reason: String },
}

/// Lists the part files of a dump path (partition folders included) in read order.
pub fn part_files(path: &Path) -> Result<Vec<PathBuf>, DumpError> {
    let io = |source| DumpError::Io { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    collect_parts(path, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(DumpError::Empty { path: path.to_path_buf() });
    }
    Ok(files)
}

/// Part files under `dir`, descending into (partition) folders.
fn collect_parts(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), DumpError> {
    let io = |source| DumpError::Io { path: dir.to_path_buf(), source };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.starts_with('_') || name.ends_with(".crc") {
            continue;
        }
        // Follows symlinks: a partition may be linked in.
        let meta = std::fs::metadata(entry.path()).map_err(|source| DumpError::Io { path: entry.path(), source })?;
        if meta.is_dir() {
            collect_parts(&entry.path(), files)?;
        } else if meta.is_file() {
            files.push(entry.path());
        }
    }
    Ok(())
}

/// Iterator of goods-id batches over every part file of a dump.
pub struct DumpReader {
    files: std::vec::IntoIter<PathBuf>,
    column: String,
    batch_size: usize,
    current: Option<(PathBuf, ParquetRecordBatchReader)>,
}

impl DumpReader {
    /// Lists the part files; each file is opened and its schema checked when reached.
    pub fn open(path: impl AsRef<Path>, column: &str, batch_size: usize) -> Result<DumpReader, DumpError> {
        Ok(DumpReader {
            files: part_files(path.as_ref())?.into_iter(),
            column: column.to_string(),
            batch_size: batch_size.max(1),
            current: None,
        })
    }

    fn open_file(&self, path: &Path) -> Result<ParquetRecordBatchReader, DumpError> {
        let unreadable = |e: parquet::errors::ParquetError| DumpError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let file = File::open(path).map_err(|source| DumpError::Io { path: path.to_path_buf(), source })?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(unreadable)?;
        let schema = builder.schema().clone();
        let Ok(index) = schema.index_of(&self.column) else {
            let available = schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ");
            return Err(DumpError::MissingColumn { path: path.to_path_buf(), column: self.column.clone(), available });
        };
        let data_type = schema.field(index).data_type();
        if !convert::accepts(data_type) {
            return Err(DumpError::WrongType {
                path: path.to_path_buf(),
                column: self.column.clone(),
                found: data_type.to_string(),
            });
        }
        let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
        builder.with_projection(mask).with_batch_size(self.batch_size).build().map_err(unreadable)
    }
}

impl Iterator for DumpReader {
    type Item = Result<Vec<GoodsId>, DumpError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((path, reader)) = &mut self.current {
                match reader.next() {
                    Some(Ok(batch)) => {
                        let ids = convert::goods_ids(batch.column(0)).map_err(|reason| DumpError::BadValue {
                            path: path.clone(),
                            column: self.column.clone(),
                            reason,
                        });
                        return Some(ids);
                    }
                    Some(Err(e)) => {
                        let path = path.clone();
                        self.current = None;
                        self.files = Vec::new().into_iter();
                        return Some(Err(DumpError::Unreadable { path, reason: e.to_string() }));
                    }
                    None => self.current = None,
                }
            }
            let path = self.files.next()?;
            match self.open_file(&path) {
                Ok(reader) => self.current = Some((path, reader)),
                Err(e) => {
                    self.files = Vec::new().into_iter();
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Runs a [`DumpReader`] on a blocking thread and hands its batches over a bounded
/// channel (`depth` batches ahead at most), for async callers such as the full run.
pub fn spawn_dump_reader(
    path: impl AsRef<Path>,
    column: &str,
    batch_size: usize,
    depth: usize,
) -> Result<tokio::sync::mpsc::Receiver<Result<Vec<GoodsId>, DumpError>>, DumpError> {
    let reader = DumpReader::open(path, column, batch_size)?;
    let (tx, rx) = tokio::sync::mpsc::channel(depth.max(1));
    tokio::task::spawn_blocking(move || {
        for batch in reader {
            let failed = batch.is_err();
            if tx.blocking_send(batch).is_err() || failed {
                return;
            }
        }
    });
    Ok(rx)
}
