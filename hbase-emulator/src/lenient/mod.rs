//! Reads call arguments as HBase's Java server does where the generated Rust code is
//! stricter, and bounds what a message can make the server allocate as libthrift does
//! where the Rust code does not.
//!
//! Null arguments: Java accepts a `null` column list (all columns), a `null` attribute
//! map and a `null` checkAndPut value, which clients such as happybase send by leaving the
//! field out; the generated Rust reader rejects a missing field. This input protocol
//! wrapper supplies those fields, empty, when the arguments struct ends without them.
//!
//! Bounds: the Rust protocols allocate whatever a length or element count claims before
//! reading it (a 5-byte message could ask for gigabytes; a negative count panicked the
//! connection's thread and leaked its worker). Here every string length and collection
//! size is checked first (see [`ahead`]): negative is a protocol error, and it must fit
//! in the message limit and its bytes must have arrived. Framed transport: [`framed`].

pub mod ahead;
pub mod framed;

use std::io::Read;

use ahead::Ahead;
use thrift::protocol::{
    TFieldIdentifier, TInputProtocol, TListIdentifier, TMapIdentifier, TMessageIdentifier, TSetIdentifier,
    TStructIdentifier, TType,
};
use thrift::{ProtocolError, ProtocolErrorKind, TransportError, TransportErrorKind};

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

pub struct Lenient<P, R> {
    inner: P,
    /// The bytes `inner` reads, for looking ahead at lengths.
    ahead: Ahead<R>,
    /// Compact protocol (else binary): how lengths are encoded.
    compact: bool,
    method: String,
    /// Struct nesting; the arguments struct is depth 1.
    depth: usize,
    /// The last field id read in each open struct (compact protocol: ids are deltas).
    field_ids: Vec<i16>,
    /// Field ids of the arguments struct read so far.
    seen: Vec<i16>,
    /// The inner protocol has delivered the arguments struct's stop field.
    stopped: bool,
    /// The type of the empty field being supplied, while the reader consumes it.
    supplying: Option<TType>,
}

impl<P: TInputProtocol, R: Read> Lenient<P, R> {
    /// `inner` must read from (a clone of) `ahead`.
    pub fn new(inner: P, ahead: Ahead<R>, compact: bool) -> Self {
        Lenient {
            inner,
            ahead,
            compact,
            method: String::new(),
            depth: 0,
            field_ids: Vec::new(),
            seen: Vec::new(),
            stopped: false,
            supplying: None,
        }
    }

    /// Accepts a length or count `n` announced `offset` bytes ahead only if `n` bytes
    /// (at least one per element) fit in the message limit and have arrived.
    fn check(&self, what: &str, offset: usize, n: i64) -> thrift::Result<()> {
        let refuse = |kind, message| Err(thrift::Error::Protocol(ProtocolError { kind, message }));
        if n < 0 {
            return refuse(ProtocolErrorKind::NegativeSize, format!("negative {what}: {n}"));
        }
        let need = offset.saturating_add(n as usize);
        if need > self.ahead.budget() {
            let limit = ahead::MAX_MESSAGE;
            return refuse(
                ProtocolErrorKind::SizeLimit,
                format!("{what} {n} exceeds the message limit of {limit} bytes"),
            );
        }
        if !self.ahead.has(need)? {
            let message = format!("{what} {n}, but the input ends before");
            return Err(thrift::Error::Transport(TransportError { kind: TransportErrorKind::EndOfFile, message }));
        }
        Ok(())
    }

    /// Checks the length prefix of the string or binary value that follows, if complete.
    /// Peeks only at bytes the encoding requires, so a complete message never waits.
    fn check_length(&self) -> thrift::Result<()> {
        let length = if self.compact { self.varint_at(0)? } else { self.be_i32_at(0)?.map(|n| (n, 4)) };
        match length {
            Some((n, offset)) => self.check("string length", offset, n),
            None => Ok(()), // incomplete: the protocol reports the end of input
        }
    }

    /// Checks the method name's length in the message header that follows, if complete.
    fn check_message_name(&self) -> thrift::Result<()> {
        let length = if self.compact {
            // protocol id, version and type, varint sequence number, varint name length
            match self.varint_at(2)? {
                Some((_, seq_end)) => self.varint_at(seq_end)?,
                None => None,
            }
        } else {
            match self.be_i32_at(0)? {
                Some(v) if v < 0 => self.be_i32_at(4)?.map(|n| (n, 8)), // strict: version word first
                other => other.map(|n| (n, 4)),
            }
        };
        match length {
            Some((n, offset)) => self.check("method name length", offset, n),
            None => Ok(()),
        }
    }

    /// A big-endian i32 `at` bytes ahead, unless the input ends first.
    fn be_i32_at(&self, at: usize) -> thrift::Result<Option<i64>> {
        let mut b = [0u8; 4];
        for (i, byte) in b.iter_mut().enumerate() {
            let Some(v) = self.ahead.peek(at + i)? else { return Ok(None) };
            *byte = v;
        }
        Ok(Some(i32::from_be_bytes(b) as i64))
    }

    /// A compact-protocol unsigned varint (32 bits) `at` bytes ahead, and where it ends;
    /// `None` if the input ends first or it runs over 5 bytes (the protocol rejects it).
    fn varint_at(&self, at: usize) -> thrift::Result<Option<(i64, usize)>> {
        let mut v = 0i64;
        for i in 0..5 {
            let Some(byte) = self.ahead.peek(at + i)? else { return Ok(None) };
            v |= ((byte & 0x7f) as i64) << (7 * i);
            if byte < 0x80 {
                return Ok(Some((v & 0xffff_ffff, at + i + 1)));
            }
        }
        Ok(None)
    }

    /// The inner protocol's next field header. In the compact protocol a field id is a
    /// delta from the last one; one that would run past `i16::MAX` is refused (thrift's
    /// reader overflows on it: a panic in debug builds, a wrong id in release).
    fn next_field(&mut self) -> thrift::Result<TFieldIdentifier> {
        if let (true, Some(&last)) = (self.compact, self.field_ids.last()) {
            if let Some(header) = self.ahead.peek(0)? {
                let delta = (header >> 4) as i16;
                if header & 0x0f != 0 && last.checked_add(delta).is_none() {
                    let message = format!("field id {last} + {delta} is past {}", i16::MAX);
                    return Err(thrift::Error::Protocol(ProtocolError {
                        kind: ProtocolErrorKind::InvalidData,
                        message,
                    }));
                }
            }
        }
        let f = self.inner.read_field_begin()?;
        if let (Some(id), Some(last)) = (f.id, self.field_ids.last_mut()) {
            *last = id;
        }
        Ok(f)
    }

    fn missing(&self) -> Option<(i16, TType)> {
        OPTIONAL_ARGS.iter().find(|(m, id, _)| *m == self.method && !self.seen.contains(id)).map(|&(_, id, t)| (id, t))
    }
}

impl<P: TInputProtocol, R: Read> TInputProtocol for Lenient<P, R> {
    fn read_message_begin(&mut self) -> thrift::Result<TMessageIdentifier> {
        self.ahead.start_message();
        self.check_message_name()?;
        let m = self.inner.read_message_begin()?;
        self.method = m.name.clone();
        self.depth = 0;
        self.field_ids.clear();
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
        self.field_ids.push(0);
        self.inner.read_struct_begin()
    }

    fn read_struct_end(&mut self) -> thrift::Result<()> {
        self.depth = self.depth.saturating_sub(1);
        self.field_ids.pop();
        self.inner.read_struct_end()
    }

    fn read_field_begin(&mut self) -> thrift::Result<TFieldIdentifier> {
        if self.depth != 1 {
            return self.next_field();
        }
        if !self.stopped {
            let f = self.next_field()?;
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
        self.check_length()?;
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
        self.check_length()?;
        self.inner.read_string()
    }

    fn read_list_begin(&mut self) -> thrift::Result<TListIdentifier> {
        if self.depth == 1 && self.supplying == Some(TType::List) {
            return Ok(TListIdentifier::new(TType::String, 0));
        }
        let list = self.inner.read_list_begin()?;
        self.check("list size", 0, list.size as i64)?;
        Ok(list)
    }

    fn read_list_end(&mut self) -> thrift::Result<()> {
        if self.depth == 1 && self.supplying == Some(TType::List) {
            return Ok(());
        }
        self.inner.read_list_end()
    }

    fn read_set_begin(&mut self) -> thrift::Result<TSetIdentifier> {
        let set = self.inner.read_set_begin()?;
        self.check("set size", 0, set.size as i64)?;
        Ok(set)
    }

    fn read_set_end(&mut self) -> thrift::Result<()> {
        self.inner.read_set_end()
    }

    fn read_map_begin(&mut self) -> thrift::Result<TMapIdentifier> {
        if self.depth == 1 && self.supplying == Some(TType::Map) {
            return Ok(TMapIdentifier::new(TType::String, TType::String, 0));
        }
        let map = self.inner.read_map_begin()?;
        self.check("map size", 0, map.size as i64)?;
        Ok(map)
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

#[cfg(test)]
mod tests {
    use thrift::protocol::{TBinaryInputProtocol, TCompactInputProtocol};

    use super::*;

    fn binary(bytes: &[u8]) -> Lenient<TBinaryInputProtocol<Ahead<&[u8]>>, &[u8]> {
        let a = Ahead::new(bytes);
        Lenient::new(TBinaryInputProtocol::new(a.clone(), false), a, false)
    }

    fn compact(bytes: &[u8]) -> Lenient<TCompactInputProtocol<Ahead<&[u8]>>, &[u8]> {
        let a = Ahead::new(bytes);
        Lenient::new(TCompactInputProtocol::new(a.clone()), a, true)
    }

    fn protocol_kind<T: std::fmt::Debug>(r: thrift::Result<T>) -> ProtocolErrorKind {
        match r {
            Err(thrift::Error::Protocol(e)) => e.kind,
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    fn at_end<T: std::fmt::Debug>(r: thrift::Result<T>) -> bool {
        matches!(r, Err(thrift::Error::Transport(e)) if e.kind == TransportErrorKind::EndOfFile)
    }

    /// Regression (fuzzing): these panicked (capacity overflow) or allocated what the
    /// length claimed before reading it.
    #[test]
    fn lengths_and_sizes_are_checked_before_anything_is_allocated() {
        // Method names: negative (strict and non-strict headers), over the limit, cut short.
        let negative = [0x80, 0x01, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(protocol_kind(binary(&negative).read_message_begin()), ProtocolErrorKind::NegativeSize);
        let huge = [0x7f, 0xff, 0xff, 0xff, b'g'];
        assert_eq!(protocol_kind(binary(&huge).read_message_begin()), ProtocolErrorKind::SizeLimit);
        assert!(at_end(binary(&[0, 0, 0, 9, b'g', b'e', b't']).read_message_begin()));
        let compact_huge = [0x82, 0x21, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(protocol_kind(compact(&compact_huge).read_message_begin()), ProtocolErrorKind::SizeLimit);
        // Strings and binary values.
        assert_eq!(protocol_kind(binary(&[0xff, 0xff, 0xff, 0xfe]).read_bytes()), ProtocolErrorKind::NegativeSize);
        assert_eq!(protocol_kind(binary(&[0x7f, 0xff, 0xff, 0xff]).read_string()), ProtocolErrorKind::SizeLimit);
        assert!(at_end(binary(&[0, 0, 0, 5, b'a']).read_bytes()));
        assert!(at_end(compact(&[0x85, 0x01, b'a']).read_bytes()));
        assert_eq!(binary(&[0, 0, 0, 2, b'o', b'k']).read_bytes().unwrap(), b"ok");
        assert_eq!(compact(&[0x02, b'o', b'k']).read_string().unwrap(), "ok");
        // Collections: negative, or more elements than bytes left.
        assert_eq!(
            protocol_kind(binary(&[0x0c, 0xff, 0xff, 0xff, 0xff]).read_list_begin()),
            ProtocolErrorKind::NegativeSize
        );
        assert!(at_end(binary(&[0x0c, 0x00, 0x01, 0x00, 0x00, 0x00]).read_list_begin()));
        assert!(at_end(binary(&[0x0b, 0x0b, 0x00, 0x00, 0x10, 0x00]).read_map_begin()));
        assert!(at_end(compact(&[0xfc, 0x80, 0x01, 0x00]).read_set_begin()));
        assert_eq!(
            protocol_kind(compact(&[0xfc, 0xff, 0xff, 0xff, 0x7f]).read_set_begin()),
            ProtocolErrorKind::SizeLimit
        );
        assert_eq!(binary(&[0x0c, 0x00, 0x00, 0x00, 0x01, 0x00]).read_list_begin().unwrap().size, 1);
    }

    /// Regression (fuzzing, fuzz/seeds/thrift/crash-compact-field-id-overflow): a field
    /// id delta after field 32767 overflowed inside thrift's compact reader.
    #[test]
    fn compact_field_ids_cannot_run_past_i16_max() {
        // field 32767 (explicit id, type i32) = 0, then a field with delta 1
        let mut p = compact(&[0x05, 0xfe, 0xff, 0x03, 0x00, 0x15, 0x00, 0x00]);
        p.read_struct_begin().unwrap();
        assert_eq!(p.read_field_begin().unwrap().id, Some(i16::MAX));
        assert_eq!(p.read_i32().unwrap(), 0);
        p.read_field_end().unwrap();
        assert_eq!(protocol_kind(p.read_field_begin()), ProtocolErrorKind::InvalidData);
        // a nested struct starts again from 0
        let mut p = compact(&[0x1c, 0x15, 0x00, 0x00, 0x00]);
        p.read_struct_begin().unwrap();
        assert_eq!(p.read_field_begin().unwrap().id, Some(1));
        p.read_struct_begin().unwrap();
        assert_eq!(p.read_field_begin().unwrap().id, Some(1));
    }

    #[test]
    fn frames_are_bounded_like_hbases() {
        let read = |bytes: &[u8]| {
            let mut out = Vec::new();
            framed::Framed::new(bytes).read_to_end(&mut out).map(|_| out)
        };
        assert_eq!(read(&[0, 0, 0, 2, b'o', b'k', 0, 0, 0, 1, b'!']).unwrap(), b"ok!");
        let err = read(&[0xff, 0xff, 0xff, 0xff]).unwrap_err();
        assert!(err.to_string().contains("negative frame size"), "{err}");
        let err = read(&[0x7f, 0xff, 0xff, 0xff, 0]).unwrap_err();
        assert!(err.to_string().contains("larger than max length"), "{err}");
        assert_eq!(read(&[0, 0, 0, 9, b'a']).unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
        // Regression (fuzzing): a read after a frame cut short underflowed `len - pos`.
        let mut f = framed::Framed::new(&[0, 0, 0, 2, b'o', b'k', 0, 0, 0, 9, b'a'][..]);
        let mut out = [0u8; 8];
        assert_eq!(f.read(&mut out).unwrap(), 2);
        assert!(f.read(&mut out).is_err());
        assert_eq!(f.read(&mut out).unwrap(), 0);
        // An empty frame is skipped, not taken for the end of input.
        assert_eq!(read(&[0, 0, 0, 0, 0, 0, 0, 1, b'!']).unwrap(), b"!");
    }
}
