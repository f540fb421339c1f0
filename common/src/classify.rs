//! The one error classifier. Every error a store, broker or database returns is either
//! transient (an outage or contention that retrying with backoff can outlast) or
//! permanent (retrying the same request gives the same answer). Handlers, triggers and
//! the service loop all ask this module, so "what counts as an outage" is decided once.
//!
//! | source | transient |
//! |---|---|
//! | IO | refused, reset, aborted, broken pipe, timed out, unexpected EOF, unreachable |
//! | MySQL | IO, pool timeout, TLS, protocol, worker crash; server errors 1040, 1053, 1205, 1213, 1317, 1927, 2002, 2003, 2006, 2013; SQLSTATE class `08` and `40001` |
//! | Redis | IO, timeout, refused, dropped, no cluster connection to a slot's node; replies LOADING, READONLY, TRYAGAIN, CLUSTERDOWN, MASTERDOWN, BUSY, MOVED, ASK |
//! | HBase Thrift | transport errors; `IOError`s of a moving or busy region (NotServingRegion, RegionMoved, RegionOpening, RegionTooBusy, ServerNotRunningYet, PleaseHold, CallQueueTooBig, RetriesExhausted) |
//! | Kafka | transport, timeouts, leader/coordinator movement, queue full |
//!
//! Everything else is permanent.

/// Whether trying again later can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// An outage or contention: retry with backoff, keep the work.
    Transient,
    /// Retrying cannot help: report it, dead-letter the work, move on.
    Permanent,
}

pub trait Classify {
    fn class(&self) -> ErrorClass;

    fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }
}

fn transient_if(yes: bool) -> ErrorClass {
    if yes {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    }
}

impl Classify for std::io::Error {
    fn class(&self) -> ErrorClass {
        use std::io::ErrorKind::*;
        transient_if(matches!(
            self.kind(),
            ConnectionRefused
                | ConnectionReset
                | ConnectionAborted
                | NotConnected
                | BrokenPipe
                | TimedOut
                | UnexpectedEof
                | Interrupted
                | WouldBlock
                | AddrNotAvailable
                | HostUnreachable
                | NetworkUnreachable
                | NetworkDown
        ))
    }
}

/// MySQL server error numbers that mean "not now": too many connections (1040), server
/// shutdown (1053), lock wait timeout (1205), deadlock (1213), query interrupted (1317),
/// connection killed (1927), and the client-side connection losses (2002, 2003, 2006,
/// 2013) some proxies relay as server errors.
pub const MYSQL_TRANSIENT_ERRORS: [u16; 10] = [1040, 1053, 1205, 1213, 1317, 1927, 2002, 2003, 2006, 2013];

/// Classifies a MySQL server error by number and SQLSTATE.
pub fn mysql_server_error(number: u16, sqlstate: Option<&str>) -> ErrorClass {
    transient_if(
        MYSQL_TRANSIENT_ERRORS.contains(&number) || sqlstate.is_some_and(|s| s.starts_with("08") || s == "40001"),
    )
}

impl Classify for sqlx::Error {
    fn class(&self) -> ErrorClass {
        match self {
            // Any IO failure talking to the database is an outage, whatever its kind.
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => ErrorClass::Transient,
            sqlx::Error::Database(db) => {
                let number = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().map(|e| e.number()).unwrap_or(0);
                mysql_server_error(number, db.code().as_deref())
            }
            _ => ErrorClass::Permanent,
        }
    }
}

/// Redis replies that mean "not now" (server loading its data set, a replica that
/// cannot take writes during failover, a slot migrating, the cluster healing).
pub const REDIS_TRANSIENT_CODES: [&str; 8] =
    ["LOADING", "READONLY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "BUSY", "MOVED", "ASK"];

#[cfg(feature = "redis")]
impl Classify for redis::RedisError {
    fn class(&self) -> ErrorClass {
        transient_if(
            self.is_io_error()
                || self.is_timeout()
                || self.is_connection_refusal()
                || self.is_connection_dropped()
                // A cluster client without a connection to the node of a slot (a master down).
                || self.kind() == redis::ErrorKind::ClusterConnectionNotFound
                || self.code().is_some_and(|c| REDIS_TRANSIENT_CODES.contains(&c)),
        )
    }
}

/// Words in an HBase `IOError` that mean the region is moving, opening or overloaded.
pub const HBASE_TRANSIENT_MESSAGES: [&str; 8] = [
    "NotServingRegion",
    "RegionMoved",
    "RegionOpening",
    "RegionTooBusy",
    "ServerNotRunningYet",
    "PleaseHold",
    "CallQueueTooBig",
    "RetriesExhausted",
];

/// Classifies the message of an HBase `IOError`.
pub fn hbase_io_error(message: &str) -> ErrorClass {
    transient_if(HBASE_TRANSIENT_MESSAGES.iter().any(|m| message.contains(m)))
}

#[cfg(feature = "hbase")]
impl Classify for thrift::Error {
    fn class(&self) -> ErrorClass {
        match self {
            thrift::Error::Transport(_) => ErrorClass::Transient,
            thrift::Error::User(u) => match u.downcast_ref::<hbase_thrift::hbase::IOError>() {
                Some(io) => hbase_io_error(io.message.as_deref().unwrap_or_default()),
                None => ErrorClass::Permanent,
            },
            _ => ErrorClass::Permanent,
        }
    }
}

#[cfg(feature = "kafka")]
impl Classify for rdkafka::error::KafkaError {
    fn class(&self) -> ErrorClass {
        use rdkafka::error::KafkaError;
        use rdkafka::types::RDKafkaErrorCode as C;
        if matches!(self, KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_)) {
            return ErrorClass::Permanent;
        }
        transient_if(matches!(
            self.rdkafka_error_code(),
            Some(
                C::BrokerTransportFailure
                    | C::AllBrokersDown
                    | C::Resolve
                    | C::MessageTimedOut
                    | C::QueueFull
                    | C::RequestTimedOut
                    | C::NetworkException
                    | C::NotLeaderForPartition
                    | C::LeaderNotAvailable
                    | C::NotEnoughReplicas
                    | C::NotEnoughReplicasAfterAppend
                    | C::CoordinatorNotAvailable
                    | C::NotCoordinator
                    | C::CoordinatorLoadInProgress
                    | C::OperationTimedOut
                    | C::TimedOutQueue
                    | C::UnknownTopicOrPartition
                    | C::RebalanceInProgress
                    | C::KafkaStorageError
                    | C::FencedLeaderEpoch
                    | C::UnknownLeaderEpoch
                    | C::OffsetNotAvailable
                    | C::PreferredLeaderNotAvailable
                    | C::ThrottlingQuotaExceeded
            )
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_numbers_and_states() {
        for n in [1040, 1053, 1205, 1213, 2006, 2013] {
            assert_eq!(mysql_server_error(n, Some("HY000")), ErrorClass::Transient, "{n}");
        }
        assert_eq!(mysql_server_error(1146, Some("42S02")), ErrorClass::Permanent, "no such table");
        assert_eq!(mysql_server_error(1064, Some("42000")), ErrorClass::Permanent, "syntax");
        assert_eq!(mysql_server_error(0, Some("08S01")), ErrorClass::Transient);
        assert_eq!(mysql_server_error(0, Some("40001")), ErrorClass::Transient);
    }

    #[test]
    fn io_kinds() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(refused.is_transient());
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!denied.is_transient());
        assert!(sqlx::Error::Io(denied).is_transient(), "any IO failure towards MySQL is an outage");
        assert!(sqlx::Error::PoolTimedOut.is_transient());
        assert!(!sqlx::Error::RowNotFound.is_transient());
    }

    #[test]
    fn hbase_region_moves() {
        assert_eq!(
            hbase_io_error("org.apache.hadoop.hbase.NotServingRegionException: region x is not online"),
            ErrorClass::Transient
        );
        assert_eq!(hbase_io_error("TableNotFoundException: t"), ErrorClass::Permanent);
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_codes() {
        let e = redis::RedisError::from((redis::ErrorKind::BusyLoadingError, "LOADING", "loading".to_string()));
        assert!(e.is_transient(), "{e:?} {:?}", e.code());
        let e = redis::RedisError::from((redis::ErrorKind::TypeError, "WRONGTYPE", "wrong kind".to_string()));
        assert!(!e.is_transient());
        for (kind, code) in [
            (redis::ErrorKind::ClusterDown, "CLUSTERDOWN"),
            (redis::ErrorKind::TryAgain, "TRYAGAIN"),
            (redis::ErrorKind::Moved, "MOVED"),
            (redis::ErrorKind::Ask, "ASK"),
        ] {
            let e = redis::RedisError::from((kind, code, "cluster".to_string()));
            assert!(e.is_transient(), "{code}");
        }
        let e = redis::RedisError::from((redis::ErrorKind::ClusterConnectionNotFound, "no connection to the slot"));
        assert!(e.is_transient());
    }
}
