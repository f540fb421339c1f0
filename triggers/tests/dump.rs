//! Reading Hive-exported Parquet dumps: part-file directories with several row groups,
//! every accepted id type, bounded batches, and clear errors for broken files.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Decimal128Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use triggers::dump::{DumpError, DumpReader};

fn write(path: &Path, columns: Vec<(&str, ArrayRef)>, row_group_rows: usize) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(row_group_rows)).build();
    let mut writer = ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    // Written in slices so the file has several row groups.
    let mut offset = 0;
    while offset < batch.num_rows() {
        let len = 37.min(batch.num_rows() - offset);
        writer.write(&batch.slice(offset, len)).unwrap();
        offset += len;
    }
    let meta = writer.close().unwrap();
    assert!(meta.num_row_groups() > 1 || batch.num_rows() <= row_group_rows);
}

fn names(n: usize) -> ArrayRef {
    Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("goods-{i}"))))
}

fn read_all(reader: DumpReader) -> Result<Vec<Vec<u64>>, DumpError> {
    reader.collect()
}

#[test]
fn reads_a_directory_of_part_files_in_bounded_batches() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<i64> = (1..=250).collect();
    write(
        &dir.path().join("part-00000-abc.snappy.parquet"),
        vec![("name", names(250)), ("goods_id", Arc::new(Int64Array::from(ids)))],
        100,
    );
    let text: Vec<String> = (251..=300).map(|i| i.to_string()).collect();
    write(
        &dir.path().join("part-00001-abc.snappy.parquet"),
        vec![("goods_id", Arc::new(StringArray::from(text)) as ArrayRef)],
        20,
    );
    std::fs::write(dir.path().join("_SUCCESS"), b"").unwrap();
    std::fs::write(dir.path().join(".part-00000-abc.snappy.parquet.crc"), b"crc").unwrap();
    std::fs::write(dir.path().join("part-00000-abc.snappy.parquet.crc"), b"crc").unwrap();
    std::fs::write(dir.path().join(".hidden"), b"junk").unwrap();

    let batches = read_all(DumpReader::open(dir.path(), "goods_id", 64).unwrap()).unwrap();
    assert!(
        batches.iter().all(|b| !b.is_empty() && b.len() <= 64),
        "batch sizes: {:?}",
        batches.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let all: Vec<u64> = batches.concat();
    assert_eq!(all, (1..=300).collect::<Vec<u64>>(), "every id once, file order kept");
}

#[test]
fn accepts_every_id_type_under_a_configured_column_name() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, ArrayRef)> = vec![
        ("u64.parquet", Arc::new(UInt64Array::from(vec![Some(7), None, Some(u64::MAX)]))),
        ("i32.parquet", Arc::new(Int32Array::from(vec![7, 8, 8]))),
        ("dec.parquet", Arc::new(Decimal128Array::from(vec![7i128, 9]).with_precision_and_scale(20, 0).unwrap())),
        ("str.parquet", Arc::new(StringArray::from(vec![Some(" 7"), None, Some("10")]))),
    ];
    let expected: Vec<Vec<u64>> = vec![vec![7, u64::MAX], vec![7, 8, 8], vec![7, 9], vec![7, 10]];
    for ((file, column), want) in cases.into_iter().zip(expected) {
        let path = dir.path().join(file);
        write(&path, vec![("item_id", column)], 10);
        let got: Vec<u64> = read_all(DumpReader::open(&path, "item_id", 1000).unwrap()).unwrap().concat();
        assert_eq!(got, want, "{file}");
    }
}

#[test]
fn broken_or_mismatched_files_name_the_file_and_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    write(&good, vec![("goods_id", Arc::new(Int64Array::from_iter_values(1..=100)) as ArrayRef)], 30);

    let truncated = dir.path().join("truncated.parquet");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = read_all(DumpReader::open(&truncated, "goods_id", 10).unwrap()).unwrap_err();
    assert!(matches!(e, DumpError::Unreadable { .. }) && e.to_string().contains("truncated.parquet"), "{e}");

    let missing = read_all(DumpReader::open(&good, "item_id", 10).unwrap()).unwrap_err();
    assert!(matches!(missing, DumpError::MissingColumn { .. }), "{missing}");
    assert!(
        missing.to_string().contains("good.parquet")
            && missing.to_string().contains("`item_id`")
            && missing.to_string().contains("goods_id"),
        "{missing}"
    );

    let float = dir.path().join("float.parquet");
    write(&float, vec![("goods_id", Arc::new(Float64Array::from(vec![1.5])) as ArrayRef)], 10);
    let e = read_all(DumpReader::open(&float, "goods_id", 10).unwrap()).unwrap_err();
    assert!(
        matches!(e, DumpError::WrongType { .. })
            && e.to_string().contains("float.parquet")
            && e.to_string().contains("`goods_id`")
            && e.to_string().contains("Float64"),
        "{e}"
    );

    let negative = dir.path().join("negative.parquet");
    write(&negative, vec![("goods_id", Arc::new(Int64Array::from(vec![5, -3])) as ArrayRef)], 10);
    let e = read_all(DumpReader::open(&negative, "goods_id", 10).unwrap()).unwrap_err();
    assert!(matches!(e, DumpError::BadValue { .. }) && e.to_string().contains("-3"), "{e}");

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("_SUCCESS"), b"").unwrap();
    assert!(matches!(DumpReader::open(empty.path(), "goods_id", 10), Err(DumpError::Empty { .. })));
    assert!(matches!(DumpReader::open(dir.path().join("nope"), "goods_id", 10), Err(DumpError::Io { .. })));

    // In a directory, a bad part stops the read with its name, after the good parts.
    let parts = tempfile::tempdir().unwrap();
    std::fs::copy(&good, parts.path().join("part-0")).unwrap();
    std::fs::copy(&float, parts.path().join("part-1")).unwrap();
    let mut reader = DumpReader::open(parts.path(), "goods_id", 1000).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().len(), 100);
    let e = reader.next().unwrap().unwrap_err();
    assert!(e.to_string().contains("part-1"), "{e}");
    assert!(reader.next().is_none());
}

#[tokio::test]
async fn async_callers_get_batches_over_a_bounded_channel() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("part-0"),
        vec![("goods_id", Arc::new(Int64Array::from_iter_values(1..=1000)) as ArrayRef)],
        100,
    );
    let mut rx = triggers::dump::spawn_dump_reader(dir.path(), "goods_id", 128, 2).unwrap();
    let mut total = 0;
    while let Some(batch) = rx.recv().await {
        total += batch.unwrap().len();
    }
    assert_eq!(total, 1000);
}

fn write_codec(path: &Path, ids: std::ops::Range<i64>, codec: parquet::basic::Compression) {
    let batch = RecordBatch::try_from_iter(vec![("goods_id", Arc::new(Int64Array::from_iter_values(ids)) as ArrayRef)])
        .unwrap();
    let props = WriterProperties::builder().set_compression(codec).build();
    let mut writer = ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn reads_partition_folders_every_codec_and_hive_part_names() {
    use parquet::basic::{Compression, GzipLevel, ZstdLevel};
    let dir = tempfile::tempdir().unwrap();
    let p1 = dir.path().join("dt=2026-11-23").join("region=eu");
    let p2 = dir.path().join("dt=2026-11-24");
    std::fs::create_dir_all(&p1).unwrap();
    std::fs::create_dir_all(&p2).unwrap();
    std::fs::create_dir_all(dir.path().join("_temporary").join("0")).unwrap();
    write_codec(&p1.join("000000_0"), 0..100, Compression::ZSTD(ZstdLevel::default()));
    write_codec(&p1.join("000001_0"), 100..200, Compression::GZIP(GzipLevel::default()));
    write_codec(&p2.join("part-00000-x.snappy.parquet"), 200..300, Compression::SNAPPY);
    write_codec(&p2.join("part-00001-x.lz4.parquet"), 300..400, Compression::LZ4_RAW);
    write_codec(&p2.join("part-00002-x.parquet"), 400..500, Compression::UNCOMPRESSED);
    std::fs::write(dir.path().join("_SUCCESS"), b"").unwrap();
    std::fs::write(p2.join(".part-00000-x.snappy.parquet.crc"), b"crc").unwrap();
    std::fs::write(dir.path().join("_temporary").join("0").join("junk"), b"not parquet").unwrap();

    let mut ids: Vec<u64> = read_all(DumpReader::open(dir.path(), "goods_id", 64).unwrap()).unwrap().concat();
    ids.sort_unstable();
    assert_eq!(ids, (0..500).collect::<Vec<u64>>());

    // A broken part file deep in a partition fails with its path named.
    let broken = p2.join("000009_0");
    std::fs::write(&broken, b"PAR1 not really").unwrap();
    let err = read_all(DumpReader::open(dir.path(), "goods_id", 64).unwrap()).unwrap_err();
    assert!(err.to_string().contains(&broken.display().to_string()), "{err}");
}
