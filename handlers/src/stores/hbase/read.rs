//! The two reads of the hot path, decoded straight into the reconciler's cells:
//! `getRowsWithColumns` (a batch's rows) and `scannerGetList` (the orphan scan's row
//! keys). The generated client decodes every row into a `TRowResult` holding a
//! `BTreeMap` of `TCell`s, which then had to be copied into [`Rows`] and dropped: 11% of
//! a clean full run's instructions (callgrind, BENCHMARKS.md). Here the same bytes, read
//! through the same `TInputProtocol`, go once into their final place. Every other call
//! (writes, scanner open and close) keeps the generated client.
//!
//! Wire shapes (`Hbase.thrift`): a call's arguments are a struct; a reply is a struct
//! whose field 0 is the result and fields 1 and 2 the declared exceptions (`IOError`,
//! and for `scannerGetList` `IllegalArgument`), raised as the generated client raises
//! them. `TRowResult` is `1: row binary, 2: columns map<binary, TCell>, 3: sortedColumns
//! list<TColumn>`; `TCell` is `1: value binary, 2: timestamp i64`. Fields of other ids
//! are skipped, as the generated code skips them.

use std::collections::BTreeMap;

use hbase_thrift::hbase::{IOError, IllegalArgument};
use model::{ObservedCell, ObservedGoods};
use thrift::protocol::{
    field_id, verify_expected_message_type, verify_expected_sequence_number, verify_expected_service_call,
    TFieldIdentifier, TInputProtocol, TListIdentifier, TMapIdentifier, TMessageIdentifier, TMessageType,
    TOutputProtocol, TStructIdentifier, TType,
};
use thrift::{ApplicationError, ApplicationErrorKind, TThriftClient};

use super::cells::Rows;
use super::pool::Client;

/// A row's cells by qualifier, as [`ObservedGoods`] holds them.
type Cells = BTreeMap<Vec<u8>, ObservedCell>;

const GET_ROWS: &str = "getRowsWithColumns";
const SCANNER_GET_LIST: &str = "scannerGetList";

/// `getRowsWithColumns(table, rows, [family])`: the family's cells of each row, keyed by
/// qualifier (rows the server does not have are absent).
pub fn get_rows(c: &mut Client, table: &[u8], rows: &[Vec<u8>], family: &str) -> thrift::Result<Rows> {
    send(c, GET_ROWS, |o| {
        field(o, "tableName", TType::String, 1, |o| o.write_bytes(table))?;
        field(o, "rows", TType::List, 2, |o| {
            o.write_list_begin(&TListIdentifier::new(TType::String, rows.len() as i32))?;
            rows.iter().try_for_each(|r| o.write_bytes(r))?;
            o.write_list_end()
        })?;
        field(o, "columns", TType::List, 3, |o| {
            o.write_list_begin(&TListIdentifier::new(TType::String, 1))?;
            o.write_bytes(family.as_bytes())?;
            o.write_list_end()
        })?;
        field(o, "attributes", TType::Map, 4, |o| {
            o.write_map_begin(&TMapIdentifier::new(TType::String, TType::String, 0))?;
            o.write_map_end()
        })
    })?;
    let seq = c.sequence_number();
    rows_reply(c.i_prot_mut(), seq, family)
}

/// `scannerGetList(id, limit)`: the keys of the rows the scanner returns, and how many
/// rows it returned (a row without a key is counted, not listed).
pub fn scanner_row_keys(c: &mut Client, id: i32, limit: i32) -> thrift::Result<(usize, Vec<Vec<u8>>)> {
    send(c, SCANNER_GET_LIST, |o| {
        field(o, "id", TType::I32, 1, |o| o.write_i32(id))?;
        field(o, "nbRows", TType::I32, 2, |o| o.write_i32(limit))
    })?;
    let seq = c.sequence_number();
    keys_reply(c.i_prot_mut(), seq)
}

/// The reply to `getRowsWithColumns` call number `seq`, its cells of `family`.
pub fn rows_reply(i: &mut dyn TInputProtocol, seq: i32, family: &str) -> thrift::Result<Rows> {
    let prefix = super::cells::column(family, b"");
    reply(i, seq, GET_ROWS, |i| {
        let list = i.read_list_begin()?;
        let mut rows = Rows::with_capacity(list.size.max(0) as usize);
        for _ in 0..list.size {
            let (row, cells) = row_result(i, Some(&prefix))?;
            if let Some(row) = row {
                rows.insert(row, ObservedGoods::of_cells(cells));
            }
        }
        i.read_list_end()?;
        Ok(rows)
    })
}

/// The reply to `scannerGetList` call number `seq`: rows returned, their keys.
pub fn keys_reply(i: &mut dyn TInputProtocol, seq: i32) -> thrift::Result<(usize, Vec<Vec<u8>>)> {
    reply(i, seq, SCANNER_GET_LIST, |i| {
        let list = i.read_list_begin()?;
        let mut keys = Vec::with_capacity(list.size.max(0) as usize);
        for _ in 0..list.size {
            keys.extend(row_result(i, None)?.0);
        }
        i.read_list_end()?;
        Ok((list.size.max(0) as usize, keys))
    })
}

/// Writes one call: message header, the argument struct's fields (by `args`), end.
fn send(
    c: &mut Client,
    name: &str,
    args: impl FnOnce(&mut dyn TOutputProtocol) -> thrift::Result<()>,
) -> thrift::Result<()> {
    c.increment_sequence_number();
    let ident = TMessageIdentifier::new(name, TMessageType::Call, c.sequence_number());
    let o = c.o_prot_mut();
    o.write_message_begin(&ident)?;
    o.write_struct_begin(&TStructIdentifier::new(name))?;
    args(o)?;
    o.write_field_stop()?;
    o.write_struct_end()?;
    o.write_message_end()?;
    o.flush()
}

fn field(
    o: &mut dyn TOutputProtocol,
    name: &str,
    kind: TType,
    id: i16,
    value: impl FnOnce(&mut dyn TOutputProtocol) -> thrift::Result<()>,
) -> thrift::Result<()> {
    o.write_field_begin(&TFieldIdentifier::new(name, kind, id))?;
    value(o)?;
    o.write_field_end()
}

/// Reads the reply to call `name` number `seq`: its result (field 0, by `result`), or
/// the exception the server raised, as the generated client would.
fn reply<T>(
    i: &mut dyn TInputProtocol,
    seq: i32,
    name: &str,
    result: impl FnOnce(&mut dyn TInputProtocol) -> thrift::Result<T>,
) -> thrift::Result<T> {
    let ident = i.read_message_begin()?;
    verify_expected_sequence_number(seq, ident.sequence_number)?;
    verify_expected_service_call(name, &ident.name)?;
    if ident.message_type == TMessageType::Exception {
        let remote = thrift::Error::read_application_error_from_in_protocol(i)?;
        i.read_message_end()?;
        return Err(thrift::Error::Application(remote));
    }
    verify_expected_message_type(TMessageType::Reply, ident.message_type)?;
    i.read_struct_begin()?;
    let (mut value, mut raised, mut result) = (None, None, Some(result));
    loop {
        let f = i.read_field_begin()?;
        if f.field_type == TType::Stop {
            break;
        }
        match field_id(&f)? {
            0 if result.is_some() => value = result.take().map(|read| read(i)).transpose()?,
            1 => raised = Some(thrift::Error::User(Box::new(IOError::read_from_in_protocol(i)?))),
            2 => raised = Some(thrift::Error::User(Box::new(IllegalArgument::read_from_in_protocol(i)?))),
            _ => i.skip(f.field_type)?,
        }
        i.read_field_end()?;
    }
    i.read_struct_end()?;
    i.read_message_end()?;
    match (raised, value) {
        (Some(e), _) => Err(e),
        (None, Some(v)) => Ok(v),
        (None, None) => Err(thrift::Error::Application(ApplicationError::new(
            ApplicationErrorKind::MissingResult,
            format!("no result received for {name}"),
        ))),
    }
}

/// One `TRowResult`: its key, and (with the `family:` prefix) its cells of that family
/// keyed by qualifier; without a prefix the cells are skipped.
fn row_result(i: &mut dyn TInputProtocol, prefix: Option<&[u8]>) -> thrift::Result<(Option<Vec<u8>>, Cells)> {
    let (mut row, mut cells) = (None, BTreeMap::new());
    i.read_struct_begin()?;
    loop {
        let f = i.read_field_begin()?;
        if f.field_type == TType::Stop {
            break;
        }
        match (field_id(&f)?, prefix) {
            (1, _) => row = Some(i.read_bytes()?),
            (2, Some(prefix)) => {
                let map = i.read_map_begin()?;
                for _ in 0..map.size {
                    let mut name = i.read_bytes()?;
                    let cell = cell(i)?;
                    if name.starts_with(prefix) {
                        name.drain(..prefix.len());
                        cells.insert(name, cell);
                    }
                }
                i.read_map_end()?;
            }
            _ => i.skip(f.field_type)?,
        }
        i.read_field_end()?;
    }
    i.read_struct_end()?;
    Ok((row, cells))
}

/// One `TCell` (a missing value is an empty one, as the contract's reads take it).
fn cell(i: &mut dyn TInputProtocol) -> thrift::Result<ObservedCell> {
    let mut cell = ObservedCell { value: Vec::new(), timestamp: None };
    i.read_struct_begin()?;
    loop {
        let f = i.read_field_begin()?;
        if f.field_type == TType::Stop {
            break;
        }
        match field_id(&f)? {
            1 => cell.value = i.read_bytes()?,
            2 => cell.timestamp = Some(i.read_i64()?),
            _ => i.skip(f.field_type)?,
        }
        i.read_field_end()?;
    }
    i.read_struct_end()?;
    Ok(cell)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hbase_thrift::hbase::{TCell, TColumn, TRowResult};
    use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};

    /// A reply message as a server writes it: header, then the result struct's fields.
    fn message(name: &str, kind: TMessageType, seq: i32, body: impl FnOnce(&mut dyn TOutputProtocol)) -> Vec<u8> {
        let mut bytes = Vec::new();
        {
            let mut o = TBinaryOutputProtocol::new(&mut bytes, true);
            o.write_message_begin(&TMessageIdentifier::new(name, kind, seq)).unwrap();
            body(&mut o);
            o.write_message_end().unwrap();
            o.flush().unwrap();
        }
        bytes
    }

    fn result_struct(o: &mut dyn TOutputProtocol, fields: impl FnOnce(&mut dyn TOutputProtocol)) {
        o.write_struct_begin(&TStructIdentifier::new("result")).unwrap();
        fields(o);
        o.write_field_stop().unwrap();
        o.write_struct_end().unwrap();
    }

    fn row_list(o: &mut dyn TOutputProtocol, rows: &[TRowResult]) {
        o.write_field_begin(&TFieldIdentifier::new("success", TType::List, 0)).unwrap();
        o.write_list_begin(&TListIdentifier::new(TType::Struct, rows.len() as i32)).unwrap();
        rows.iter().for_each(|r| r.write_to_out_protocol(o).unwrap());
        o.write_list_end().unwrap();
        o.write_field_end().unwrap();
    }

    fn input(bytes: &[u8]) -> TBinaryInputProtocol<&[u8]> {
        TBinaryInputProtocol::new(bytes, true)
    }

    fn cell(value: Option<&[u8]>, ts: Option<i64>) -> TCell {
        TCell::new(value.map(<[u8]>::to_vec), ts)
    }

    #[test]
    fn rows_keep_the_family_cells_by_qualifier_and_skip_what_is_not_theirs() {
        let columns = |cells: Vec<(&[u8], TCell)>| Some(cells.into_iter().map(|(n, c)| (n.to_vec(), c)).collect());
        let rows = [
            TRowResult::new(
                b"r1".to_vec(),
                columns(vec![
                    (b"a:1", cell(Some(b"v1"), Some(5))),
                    (b"a:22", cell(None, None)),
                    (b"ab:3", cell(Some(b"other family"), Some(1))),
                    (b"a", cell(Some(b"no qualifier separator"), Some(1))),
                    (b"a:", cell(Some(b"empty qualifier"), Some(9))),
                ]),
                None,
            ),
            TRowResult::new(None, columns(vec![(b"a:7", cell(Some(b"keyless"), Some(1)))]), None),
            TRowResult::new(b"r3".to_vec(), None, Some(vec![TColumn::new(b"a:4".to_vec(), cell(Some(b"s"), Some(2)))])),
        ];
        let bytes = message(GET_ROWS, TMessageType::Reply, 7, |o| {
            result_struct(o, |o| {
                o.write_field_begin(&TFieldIdentifier::new("unknown", TType::I32, 9)).unwrap();
                o.write_i32(3).unwrap();
                o.write_field_end().unwrap();
                row_list(o, &rows);
            })
        });
        let got = rows_reply(&mut input(&bytes), 7, "a").unwrap();
        let observed = |cells: Vec<(&[u8], &[u8], Option<i64>)>| {
            ObservedGoods::of_cells(
                cells
                    .into_iter()
                    .map(|(q, v, timestamp)| (q.to_vec(), ObservedCell { value: v.to_vec(), timestamp }))
                    .collect(),
            )
        };
        let want: Rows = [
            (
                b"r1".to_vec(),
                observed(vec![(b"1", b"v1", Some(5)), (b"22", b"", None), (b"", b"empty qualifier", Some(9))]),
            ),
            (b"r3".to_vec(), ObservedGoods::default()),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn scanner_keys_count_every_row_and_list_the_keyed_ones() {
        let rows = [
            TRowResult::new(b"k1".to_vec(), Some([(b"a:1".to_vec(), cell(Some(b""), Some(3)))].into()), None),
            TRowResult::new(None, None, None),
            TRowResult::new(b"k2".to_vec(), None, None),
        ];
        let bytes = message(SCANNER_GET_LIST, TMessageType::Reply, 2, |o| result_struct(o, |o| row_list(o, &rows)));
        assert_eq!(keys_reply(&mut input(&bytes), 2).unwrap(), (3, vec![b"k1".to_vec(), b"k2".to_vec()]));
    }

    #[test]
    fn exceptions_and_wrong_replies_are_errors_as_the_generated_client_makes_them() {
        // A declared exception: a user error carrying the IOError (and its message).
        let io = message(GET_ROWS, TMessageType::Reply, 1, |o| {
            result_struct(o, |o| {
                o.write_field_begin(&TFieldIdentifier::new("io", TType::Struct, 1)).unwrap();
                IOError::new("table gone".to_string(), None).write_to_out_protocol(o).unwrap();
                o.write_field_end().unwrap();
            })
        });
        match rows_reply(&mut input(&io), 1, "a") {
            Err(thrift::Error::User(u)) => {
                assert_eq!(u.downcast_ref::<IOError>().and_then(|e| e.message.as_deref()), Some("table gone"))
            }
            other => panic!("{other:?}"),
        }
        let illegal = message(SCANNER_GET_LIST, TMessageType::Reply, 1, |o| {
            result_struct(o, |o| {
                o.write_field_begin(&TFieldIdentifier::new("ia", TType::Struct, 2)).unwrap();
                IllegalArgument::new("no such scanner".to_string()).write_to_out_protocol(o).unwrap();
                o.write_field_end().unwrap();
            })
        });
        match keys_reply(&mut input(&illegal), 1) {
            Err(thrift::Error::User(u)) => assert!(u.downcast_ref::<IllegalArgument>().is_some()),
            other => panic!("{other:?}"),
        }
        // The server's application exception.
        let app = message(GET_ROWS, TMessageType::Exception, 1, |o| {
            thrift::Error::write_application_error_to_out_protocol(
                &ApplicationError::new(ApplicationErrorKind::UnknownMethod, "no"),
                o,
            )
            .unwrap()
        });
        assert!(matches!(rows_reply(&mut input(&app), 1, "a"), Err(thrift::Error::Application(_))));
        // No result, another call's number, another call's name, a cut-off reply.
        let empty = message(GET_ROWS, TMessageType::Reply, 1, |o| result_struct(o, |_| {}));
        match rows_reply(&mut input(&empty), 1, "a") {
            Err(thrift::Error::Application(e)) => assert_eq!(e.kind, ApplicationErrorKind::MissingResult),
            other => panic!("{other:?}"),
        }
        let rows = [TRowResult::new(b"r".to_vec(), None, None)];
        let ok = message(GET_ROWS, TMessageType::Reply, 4, |o| result_struct(o, |o| row_list(o, &rows)));
        assert!(rows_reply(&mut input(&ok), 5, "a").is_err(), "sequence number");
        assert!(keys_reply(&mut input(&ok), 4).is_err(), "call name");
        assert!(matches!(rows_reply(&mut input(&ok[..ok.len() - 3]), 4, "a"), Err(thrift::Error::Transport(_))));
        assert_eq!(rows_reply(&mut input(&ok), 4, "a").unwrap().len(), 1);
    }
}
