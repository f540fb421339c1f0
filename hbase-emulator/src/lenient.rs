//! Reads call arguments as HBase's Java server does where the generated Rust code is
//! stricter: Java accepts a `null` column list (all columns), a `null` attribute map
//! and a `null` checkAndPut value, which clients such as happybase send by leaving the
//! field out; the generated Rust reader rejects a missing field. This input protocol
//! wrapper supplies those fields, empty, when the arguments struct ends without them.

use thrift::protocol::{
    TFieldIdentifier, TInputProtocol, TListIdentifier, TMapIdentifier, TMessageIdentifier, TSetIdentifier,
    TStructIdentifier, TType,
};

/// Arguments that may be left out: (call, field id, type). Column lists and attribute
/// maps mean "all" / "none" when null in HBase's handler.
const OPTIONAL_ARGS: &[(&str, i16, TType)] = &[
    ("get", 4, TType::Map),
    ("getVer", 5, TType::Map),
    ("getVerTs", 6, TType::Map),
    ("getRow", 3, TType::Map),
    ("getRowWithColumns", 3, TType::List),
    ("getRowWithColumns", 4, TType::Map),
    ("getRowTs", 4, TType::Map),
    ("getRowWithColumnsTs", 3, TType::List),
    ("getRowWithColumnsTs", 5, TType::Map),
    ("getRows", 3, TType::Map),
    ("getRowsWithColumns", 3, TType::List),
    ("getRowsWithColumns", 4, TType::Map),
    ("getRowsTs", 4, TType::Map),
    ("getRowsWithColumnsTs", 3, TType::List),
    ("getRowsWithColumnsTs", 5, TType::Map),
    ("mutateRow", 4, TType::Map),
    ("mutateRowTs", 5, TType::Map),
    ("mutateRows", 3, TType::Map),
    ("mutateRowsTs", 4, TType::Map),
    ("deleteAll", 4, TType::Map),
    ("deleteAllTs", 5, TType::Map),
    ("deleteAllRow", 3, TType::Map),
    ("deleteAllRowTs", 4, TType::Map),
    ("scannerOpenWithScan", 3, TType::Map),
    ("scannerOpen", 3, TType::List),
    ("scannerOpen", 4, TType::Map),
    ("scannerOpenWithStop", 4, TType::List),
    ("scannerOpenWithStop", 5, TType::Map),
    ("scannerOpenWithPrefix", 3, TType::List),
    ("scannerOpenWithPrefix", 4, TType::Map),
    ("scannerOpenTs", 3, TType::List),
    ("scannerOpenTs", 5, TType::Map),
    ("scannerOpenWithStopTs", 4, TType::List),
    ("scannerOpenWithStopTs", 6, TType::Map),
    ("checkAndPut", 5, TType::String),
    ("checkAndPut", 7, TType::Map),
];

pub struct Lenient<P> {
    inner: P,
    method: String,
    /// Struct nesting; the arguments struct is depth 1.
    depth: usize,
    /// Field ids of the arguments struct read so far.
    seen: Vec<i16>,
    /// The inner protocol has delivered the arguments struct's stop field.
    stopped: bool,
    /// The type of the empty field being supplied, while the reader consumes it.
    supplying: Option<TType>,
}

impl<P: TInputProtocol> Lenient<P> {
    pub fn new(inner: P) -> Self {
        Lenient { inner, method: String::new(), depth: 0, seen: Vec::new(), stopped: false, supplying: None }
    }

    fn missing(&self) -> Option<(i16, TType)> {
        OPTIONAL_ARGS.iter().find(|(m, id, _)| *m == self.method && !self.seen.contains(id)).map(|&(_, id, t)| (id, t))
    }
}

impl<P: TInputProtocol> TInputProtocol for Lenient<P> {
    fn read_message_begin(&mut self) -> thrift::Result<TMessageIdentifier> {
        let m = self.inner.read_message_begin()?;
        self.method = m.name.clone();
        self.depth = 0;
        self.seen.clear();
        self.stopped = false;
        self.supplying = None;
        Ok(m)
    }

    fn read_message_end(&mut self) -> thrift::Result<()> {
        self.inner.read_message_end()
    }

    fn read_struct_begin(&mut self) -> thrift::Result<Option<TStructIdentifier>> {
        self.depth += 1;
        self.inner.read_struct_begin()
    }

    fn read_struct_end(&mut self) -> thrift::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        self.inner.read_struct_end()
    }

    fn read_field_begin(&mut self) -> thrift::Result<TFieldIdentifier> {
        if self.depth != 1 {
            return self.inner.read_field_begin();
        }
        if !self.stopped {
            let f = self.inner.read_field_begin()?;
            if f.field_type != TType::Stop {
                self.seen.extend(f.id);
                return Ok(f);
            }
            self.stopped = true;
        }
        match self.missing() {
            Some((id, t)) => {
                self.seen.push(id);
                self.supplying = Some(t);
                Ok(TFieldIdentifier { name: None, field_type: t, id: Some(id) })
            }
            None => Ok(TFieldIdentifier { name: None, field_type: TType::Stop, id: None }),
        }
    }

    fn read_field_end(&mut self) -> thrift::Result<()> {
        if self.depth == 1 && self.supplying.take().is_some() {
            return Ok(());
        }
        self.inner.read_field_end()
    }

    fn read_bool(&mut self) -> thrift::Result<bool> {
        self.inner.read_bool()
    }

    fn read_bytes(&mut self) -> thrift::Result<Vec<u8>> {
        if self.depth == 1 && self.supplying == Some(TType::String) {
            return Ok(Vec::new());
        }
        self.inner.read_bytes()
    }

    fn read_i8(&mut self) -> thrift::Result<i8> {
        self.inner.read_i8()
    }

    fn read_i16(&mut self) -> thrift::Result<i16> {
        self.inner.read_i16()
    }

    fn read_i32(&mut self) -> thrift::Result<i32> {
        self.inner.read_i32()
    }

    fn read_i64(&mut self) -> thrift::Result<i64> {
        self.inner.read_i64()
    }

    fn read_double(&mut self) -> thrift::Result<f64> {
        self.inner.read_double()
    }

    fn read_string(&mut self) -> thrift::Result<String> {
        self.inner.read_string()
    }

    fn read_list_begin(&mut self) -> thrift::Result<TListIdentifier> {
        if self.depth == 1 && self.supplying == Some(TType::List) {
            return Ok(TListIdentifier::new(TType::String, 0));
        }
        self.inner.read_list_begin()
    }

    fn read_list_end(&mut self) -> thrift::Result<()> {
        if self.depth == 1 && self.supplying == Some(TType::List) {
            return Ok(());
        }
        self.inner.read_list_end()
    }

    fn read_set_begin(&mut self) -> thrift::Result<TSetIdentifier> {
        self.inner.read_set_begin()
    }

    fn read_set_end(&mut self) -> thrift::Result<()> {
        self.inner.read_set_end()
    }

    fn read_map_begin(&mut self) -> thrift::Result<TMapIdentifier> {
        if self.depth == 1 && self.supplying == Some(TType::Map) {
            return Ok(TMapIdentifier::new(TType::String, TType::String, 0));
        }
        self.inner.read_map_begin()
    }

    fn read_map_end(&mut self) -> thrift::Result<()> {
        if self.depth == 1 && self.supplying == Some(TType::Map) {
            return Ok(());
        }
        self.inner.read_map_end()
    }

    fn read_byte(&mut self) -> thrift::Result<u8> {
        self.inner.read_byte()
    }
}
