//! The exceptions the emulator answers with, shaped like the ones HBase's Thrift1
//! handler throws: `IOError` for anything the region server or master rejects,
//! `IllegalArgument` where the handler catches an `IllegalArgumentException`,
//! `AlreadyExists` from `createTable`, and an internal-error application exception
//! where HBase lets an unchecked exception escape the handler.

use hbase_thrift::hbase::{AlreadyExists, IOError, IllegalArgument};
use thrift::{ApplicationError, ApplicationErrorKind};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Answered as the `IOError` exception of the call.
    #[error("{0}")]
    Io(String),
    /// Answered as the `IllegalArgument` exception of the call (only calls that declare it).
    #[error("{0}")]
    IllegalArgument(String),
    /// Answered as the `AlreadyExists` exception of `createTable`.
    #[error("{0}")]
    AlreadyExists(String),
    /// Answered as a `TApplicationException` (INTERNAL_ERROR), what the Java server sends
    /// when an unchecked exception escapes the handler.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn table_not_found(table: &[u8]) -> Self {
        Error::Io(format!("org.apache.hadoop.hbase.TableNotFoundException: {}", show(table)))
    }

    pub fn table_disabled(table: &[u8]) -> Self {
        Error::Io(format!("org.apache.hadoop.hbase.TableNotEnabledException: {} is disabled.", show(table)))
    }

    pub fn no_such_family(table: &[u8], family: &[u8]) -> Self {
        Error::Io(format!(
            "org.apache.hadoop.hbase.regionserver.NoSuchColumnFamilyException: column family {} does not exist in table {}",
            show(family),
            show(table)
        ))
    }

    pub fn illegal(message: impl Into<String>) -> Self {
        Error::IllegalArgument(format!("java.lang.IllegalArgumentException: {}", message.into()))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(format!("java.lang.IllegalArgumentException: {}", message.into()))
    }

    /// For calls whose Thrift signature does not declare `IllegalArgument`: HBase's
    /// handler does not catch the `IllegalArgumentException` there, so the client sees
    /// an internal error instead.
    pub fn undeclared_illegal(self) -> Self {
        match self {
            Error::IllegalArgument(m) => Error::Internal(m),
            other => other,
        }
    }
}

impl From<Error> for thrift::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(m) => thrift::Error::User(Box::new(IOError::new(m, false))),
            Error::IllegalArgument(m) => thrift::Error::User(Box::new(IllegalArgument::new(m))),
            Error::AlreadyExists(m) => thrift::Error::User(Box::new(AlreadyExists::new(m))),
            Error::Internal(m) => {
                thrift::Error::Application(ApplicationError::new(ApplicationErrorKind::InternalError, m))
            }
        }
    }
}

/// Bytes as HBase's `Bytes.toStringBinary` shows them: printable ASCII as is, the
/// rest as `\xNN`.
pub fn show(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}
