//! The generated `HbaseSyncHandler` over the store: argument handling and exception
//! types follow `ThriftHBaseServiceHandler` (HBase's Thrift1 handler) call by call.

mod convert;

use std::collections::BTreeMap;
use std::sync::Arc;

use hbase_thrift::hbase::{
    BatchMutation, Bytes, ColumnDescriptor, HbaseSyncHandler, Mutation, ScannerID, TAccessControlEntity, TAppend,
    TCell, TIncrement, TRegionInfo, TRowResult, TScan, TThriftServerType, Text,
};

use crate::error::{Error, Result};
use crate::store::select::parse_column;
use crate::store::{DeleteTarget, FamilySpec, Filter, Op, RowMutation, ScanSpec, Store, Ts, LATEST};
use convert::{check_put, row_results, tcell};

type Attrs = BTreeMap<Text, Text>;

/// Serves one shared [`Store`]; cheap to clone into every connection.
#[derive(Debug, Clone)]
pub struct Handler {
    store: Arc<Store>,
}

impl Handler {
    pub fn new(store: Arc<Store>) -> Self {
        Handler { store }
    }

    fn rows(&self, table: &[u8], rows: Vec<Text>, columns: Vec<Text>, ts: Ts) -> thrift::Result<Vec<TRowResult>> {
        let rows = self.store.get_rows(table, &rows, &columns, ts)?;
        Ok(row_results(rows, false))
    }

    fn cells(&self, table: &[u8], row: &[u8], column: &[u8], ts: Ts, versions: i32) -> thrift::Result<Vec<TCell>> {
        Ok(self.store.get_cells(table, row, column, ts, versions)?.into_iter().map(tcell).collect())
    }

    fn mutate_row(&self, table: &[u8], row: Text, mutations: &[Mutation], ts: Ts) -> thrift::Result<()> {
        let m = convert::row_mutation(row, mutations, ts, false)?;
        Ok(self.store.mutate_row(table, &m, ts)?)
    }

    fn mutate_rows(&self, table: &[u8], batches: Vec<BatchMutation>, ts: Ts) -> thrift::Result<()> {
        // HBase builds the batch outside its try block: bad arguments escape unchecked.
        let batch = convert::batch(batches, ts).map_err(Error::undeclared_illegal)?;
        Ok(self.store.mutate_rows(table, &batch, ts)?)
    }

    fn delete(&self, table: &[u8], row: Text, target: DeleteTarget, ts: Ts) -> thrift::Result<()> {
        check_put(&row, if ts == LATEST { 0 } else { ts }).map_err(Error::undeclared_illegal)?;
        let m = RowMutation { row, ops: vec![Op::Delete(target)] };
        Ok(self.store.mutate_row(table, &m, ts)?)
    }

    fn delete_column(&self, table: &[u8], row: Text, column: &[u8], ts: Ts) -> thrift::Result<()> {
        let target = match parse_column(column) {
            (family, None) => DeleteTarget::Family { family },
            (family, Some(qualifier)) => DeleteTarget::Column { family, qualifier },
        };
        self.delete(table, row, target, ts)
    }

    fn open(&self, table: &[u8], spec: ScanSpec) -> thrift::Result<ScannerID> {
        Ok(self.store.scanner_open(table, spec)?)
    }
}

fn unsupported<T>(call: &str) -> thrift::Result<T> {
    Err(Error::Io(format!("java.io.IOException: {call} is not supported by the hbase emulator")).into())
}

impl HbaseSyncHandler for Handler {
    fn handle_enable_table(&self, table_name: Bytes) -> thrift::Result<()> {
        Ok(self.store.set_enabled(&table_name, true)?)
    }

    fn handle_disable_table(&self, table_name: Bytes) -> thrift::Result<()> {
        Ok(self.store.set_enabled(&table_name, false)?)
    }

    fn handle_is_table_enabled(&self, table_name: Bytes) -> thrift::Result<bool> {
        Ok(self.store.table(&table_name)?.is_enabled())
    }

    fn handle_compact(&self, table_name_or_region_name: Bytes) -> thrift::Result<()> {
        Ok(self.store.compact(&table_name_or_region_name, false)?)
    }

    fn handle_major_compact(&self, table_name_or_region_name: Bytes) -> thrift::Result<()> {
        Ok(self.store.compact(&table_name_or_region_name, true)?)
    }

    fn handle_get_table_names(&self) -> thrift::Result<Vec<Text>> {
        Ok(self.store.table_names())
    }

    fn handle_get_table_names_with_is_table_enabled(&self) -> thrift::Result<BTreeMap<Text, bool>> {
        Ok(self.store.tables_enabled())
    }

    fn handle_get_column_descriptors(&self, table_name: Text) -> thrift::Result<BTreeMap<Text, ColumnDescriptor>> {
        let t = self.store.table(&table_name)?;
        Ok(t.families
            .iter()
            .map(|(f, spec)| (spec.to_thrift(f).name.clone().unwrap_or_default(), spec.to_thrift(f)))
            .collect())
    }

    fn handle_get_table_regions(&self, _table_name: Text) -> thrift::Result<Vec<TRegionInfo>> {
        unsupported("getTableRegions")
    }

    fn handle_create_table(&self, table_name: Text, column_families: Vec<ColumnDescriptor>) -> thrift::Result<()> {
        let families = column_families.iter().map(FamilySpec::from_thrift).collect::<Result<BTreeMap<_, _>>>()?;
        Ok(self.store.create_table(&table_name, families)?)
    }

    fn handle_delete_table(&self, table_name: Text) -> thrift::Result<()> {
        Ok(self.store.delete_table(&table_name)?)
    }

    fn handle_get(&self, table_name: Text, row: Text, column: Text, _attributes: Attrs) -> thrift::Result<Vec<TCell>> {
        self.cells(&table_name, &row, &column, LATEST, 1)
    }

    fn handle_get_ver(
        &self,
        table_name: Text,
        row: Text,
        column: Text,
        num_versions: i32,
        _attributes: Attrs,
    ) -> thrift::Result<Vec<TCell>> {
        self.cells(&table_name, &row, &column, LATEST, num_versions)
    }

    fn handle_get_ver_ts(
        &self,
        table_name: Text,
        row: Text,
        column: Text,
        timestamp: i64,
        num_versions: i32,
        _attributes: Attrs,
    ) -> thrift::Result<Vec<TCell>> {
        self.cells(&table_name, &row, &column, timestamp, num_versions)
    }

    fn handle_get_row(&self, table_name: Text, row: Text, _attributes: Attrs) -> thrift::Result<Vec<TRowResult>> {
        self.rows(&table_name, vec![row], vec![], LATEST)
    }

    fn handle_get_row_with_columns(
        &self,
        table_name: Text,
        row: Text,
        columns: Vec<Text>,
        _attributes: Attrs,
    ) -> thrift::Result<Vec<TRowResult>> {
        self.rows(&table_name, vec![row], columns, LATEST)
    }

    fn handle_get_row_ts(
        &self,
        table_name: Text,
        row: Text,
        timestamp: i64,
        _attributes: Attrs,
    ) -> thrift::Result<Vec<TRowResult>> {
        self.rows(&table_name, vec![row], vec![], timestamp)
    }

    fn handle_get_row_with_columns_ts(
        &self,
        table_name: Text,
        row: Text,
        columns: Vec<Text>,
        timestamp: i64,
        _attributes: Attrs,
    ) -> thrift::Result<Vec<TRowResult>> {
        self.rows(&table_name, vec![row], columns, timestamp)
    }

    fn handle_get_rows(
        &self,
        table_name: Text,
        rows: Vec<Text>,
        _attributes: Attrs,
    ) -> thrift::Result<Vec<TRowResult>> {
        self.rows(&table_name, rows, vec![], LATEST)
    }

    fn handle_get_rows_with_columns(
        &self,
        table_name: Text,
        rows: Vec<Text>,
        columns: Vec<Text>,
        _attributes: Attrs,
    ) -> thrift::Result<Vec<TRowResult>> {
        self.rows(&table_name, rows, columns, LATEST)
    }

    fn handle_get_rows_ts(
        &self,
        table_name: Text,
        rows: Vec<Text>,
        timestamp: i64,
        _attributes: Attrs,
    ) -> thrift::Result<Vec<TRowResult>> {
        self.rows(&table_name, rows, vec![], timestamp)
    }

    fn handle_get_rows_with_columns_ts(
        &self,
        table_name: Text,
        rows: Vec<Text>,
        columns: Vec<Text>,
        timestamp: i64,
        _attributes: Attrs,
    ) -> thrift::Result<Vec<TRowResult>> {
        self.rows(&table_name, rows, columns, timestamp)
    }

    fn handle_mutate_row(
        &self,
        table_name: Text,
        row: Text,
        mutations: Vec<Mutation>,
        _attributes: Attrs,
    ) -> thrift::Result<()> {
        self.mutate_row(&table_name, row, &mutations, LATEST)
    }

    fn handle_mutate_row_ts(
        &self,
        table_name: Text,
        row: Text,
        mutations: Vec<Mutation>,
        timestamp: i64,
        _attributes: Attrs,
    ) -> thrift::Result<()> {
        self.mutate_row(&table_name, row, &mutations, timestamp)
    }

    fn handle_mutate_rows(
        &self,
        table_name: Text,
        row_batches: Vec<BatchMutation>,
        _attributes: Attrs,
    ) -> thrift::Result<()> {
        self.mutate_rows(&table_name, row_batches, LATEST)
    }

    fn handle_mutate_rows_ts(
        &self,
        table_name: Text,
        row_batches: Vec<BatchMutation>,
        timestamp: i64,
        _attributes: Attrs,
    ) -> thrift::Result<()> {
        self.mutate_rows(&table_name, row_batches, timestamp)
    }

    fn handle_atomic_increment(&self, table_name: Text, row: Text, column: Text, value: i64) -> thrift::Result<i64> {
        let (family, qualifier) = parse_column(&column);
        Ok(self.store.increment(&table_name, &row, &family, &qualifier.unwrap_or_default(), value)?)
    }

    fn handle_delete_all(&self, table_name: Text, row: Text, column: Text, _attributes: Attrs) -> thrift::Result<()> {
        self.delete_column(&table_name, row, &column, LATEST)
    }

    fn handle_delete_all_ts(
        &self,
        table_name: Text,
        row: Text,
        column: Text,
        timestamp: i64,
        _attributes: Attrs,
    ) -> thrift::Result<()> {
        self.delete_column(&table_name, row, &column, timestamp)
    }

    fn handle_delete_all_row(&self, table_name: Text, row: Text, _attributes: Attrs) -> thrift::Result<()> {
        self.delete(&table_name, row, DeleteTarget::Row, LATEST)
    }

    fn handle_increment(&self, _increment: TIncrement) -> thrift::Result<()> {
        unsupported("increment")
    }

    fn handle_increment_rows(&self, _increments: Vec<TIncrement>) -> thrift::Result<()> {
        unsupported("incrementRows")
    }

    fn handle_delete_all_row_ts(
        &self,
        table_name: Text,
        row: Text,
        timestamp: i64,
        _attributes: Attrs,
    ) -> thrift::Result<()> {
        self.delete(&table_name, row, DeleteTarget::Row, timestamp)
    }

    fn handle_scanner_open_with_scan(
        &self,
        table_name: Text,
        scan: TScan,
        _attributes: Attrs,
    ) -> thrift::Result<ScannerID> {
        // Empty / zero values are what the Rust client's `TScan::default()` sends.
        let filter = match scan.filter_string.as_deref() {
            Some(text) if !text.is_empty() => Filter::parse(text)?,
            _ => Filter::default(),
        };
        if scan.batch_size.is_some_and(|b| b > 0) {
            return unsupported("TScan.batchSize");
        }
        let mut spec = ScanSpec::new(
            scan.start_row.unwrap_or_default(),
            scan.stop_row.unwrap_or_default(),
            scan.columns.unwrap_or_default(),
            scan.timestamp.unwrap_or(LATEST),
        );
        spec.reversed = scan.reversed.unwrap_or(false);
        spec.sort_columns = scan.sort_columns.unwrap_or(false);
        spec.filter = filter;
        self.open(&table_name, spec)
    }

    fn handle_scanner_open(
        &self,
        table_name: Text,
        start_row: Text,
        columns: Vec<Text>,
        _attributes: Attrs,
    ) -> thrift::Result<ScannerID> {
        self.open(&table_name, ScanSpec::new(start_row, vec![], columns, LATEST))
    }

    fn handle_scanner_open_with_stop(
        &self,
        table_name: Text,
        start_row: Text,
        stop_row: Text,
        columns: Vec<Text>,
        _attributes: Attrs,
    ) -> thrift::Result<ScannerID> {
        self.open(&table_name, ScanSpec::new(start_row, stop_row, columns, LATEST))
    }

    fn handle_scanner_open_with_prefix(
        &self,
        table_name: Text,
        start_and_prefix: Text,
        columns: Vec<Text>,
        _attributes: Attrs,
    ) -> thrift::Result<ScannerID> {
        let mut spec = ScanSpec::new(start_and_prefix.clone(), vec![], columns, LATEST);
        spec.prefix = Some(start_and_prefix);
        self.open(&table_name, spec)
    }

    fn handle_scanner_open_ts(
        &self,
        table_name: Text,
        start_row: Text,
        columns: Vec<Text>,
        timestamp: i64,
        _attributes: Attrs,
    ) -> thrift::Result<ScannerID> {
        self.open(&table_name, ScanSpec::new(start_row, vec![], columns, timestamp))
    }

    fn handle_scanner_open_with_stop_ts(
        &self,
        table_name: Text,
        start_row: Text,
        stop_row: Text,
        columns: Vec<Text>,
        timestamp: i64,
        _attributes: Attrs,
    ) -> thrift::Result<ScannerID> {
        self.open(&table_name, ScanSpec::new(start_row, stop_row, columns, timestamp))
    }

    fn handle_scanner_get(&self, id: ScannerID) -> thrift::Result<Vec<TRowResult>> {
        self.handle_scanner_get_list(id, 1)
    }

    fn handle_scanner_get_list(&self, id: ScannerID, nb_rows: i32) -> thrift::Result<Vec<TRowResult>> {
        let (rows, sorted) = self.store.scanner_next(id, nb_rows)?;
        Ok(row_results(rows, sorted))
    }

    fn handle_scanner_close(&self, id: ScannerID) -> thrift::Result<()> {
        Ok(self.store.scanner_close(id)?)
    }

    fn handle_get_region_info(&self, _row: Text) -> thrift::Result<TRegionInfo> {
        unsupported("getRegionInfo")
    }

    fn handle_append(&self, _append: TAppend) -> thrift::Result<Vec<TCell>> {
        unsupported("append")
    }

    fn handle_check_and_put(
        &self,
        table_name: Text,
        row: Text,
        column: Text,
        value: Text,
        mput: Mutation,
        _attributes: Attrs,
    ) -> thrift::Result<bool> {
        check_put(&row, 0)?;
        let aioobe =
            || Error::Internal("java.lang.ArrayIndexOutOfBoundsException: Index 1 out of bounds for length 1".into());
        let put_column = mput.column.clone().ok_or_else(|| Error::illegal("mutation without a column"))?;
        let (family, qualifier) = parse_column(&put_column);
        let put = Op::Put { family, qualifier: qualifier.ok_or_else(aioobe)?, value: mput.value.unwrap_or_default() };
        let (check_family, check_qualifier) = parse_column(&column);
        let check_qualifier = check_qualifier.ok_or_else(aioobe)?;
        Ok(self.store.check_and_put(&table_name, &row, (&check_family, &check_qualifier), &value, &put)?)
    }

    fn handle_get_thrift_server_type(&self) -> thrift::Result<TThriftServerType> {
        Ok(TThriftServerType::ONE)
    }

    fn handle_get_cluster_id(&self) -> thrift::Result<String> {
        unsupported("getClusterId")
    }

    fn handle_grant(&self, _info: TAccessControlEntity) -> thrift::Result<bool> {
        unsupported("grant")
    }

    fn handle_revoke(&self, _info: TAccessControlEntity) -> thrift::Result<bool> {
        unsupported("revoke")
    }
}
