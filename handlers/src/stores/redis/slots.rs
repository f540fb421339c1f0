//! Redis Cluster hash slots: the slot of a key (CRC16/XMODEM of the key or of its
//! `{hash tag}`, modulo 16384) and the slot map of a cluster (which master serves which
//! slot), read from `CLUSTER SLOTS`.

use redis::Value;

pub const SLOTS: usize = 16384;

/// The hash slot of a key, as Redis Cluster computes it.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16_xmodem(hash_tag(key)) % SLOTS as u16
}

/// The part of the key that is hashed: the text between the first `{` and the next `}`
/// when it is not empty, else the whole key.
fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// Which master serves each slot, as one `CLUSTER SLOTS` answer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    /// `host:port` of every master, sorted.
    pub masters: Vec<(String, u16)>,
    /// Per slot, the index in `masters` of the master serving it; `None` when no master
    /// serves it (a cluster being set up or broken).
    owner: Vec<Option<u16>>,
}

impl SlotMap {
    /// Parses a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, ...], replicas...], ...]`.
    /// A master announced with an empty host is at `default_host` (the node it was asked).
    pub fn parse(reply: &Value, default_host: &str) -> Result<SlotMap, String> {
        let Value::Array(ranges) = reply else { return Err(format!("CLUSTER SLOTS answered {reply:?}")) };
        let mut spans = Vec::new();
        for range in ranges {
            let Value::Array(fields) = range else { return Err(format!("CLUSTER SLOTS range {range:?}")) };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return Err(format!("CLUSTER SLOTS range {range:?}"));
            };
            let host = match master.first() {
                Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
                Some(Value::SimpleString(h)) => h.clone(),
                other => return Err(format!("CLUSTER SLOTS node host {other:?}")),
            };
            let host = if host.is_empty() || host == "?" { default_host.to_string() } else { host };
            let Some(Value::Int(port)) = master.get(1) else { return Err(format!("CLUSTER SLOTS node {master:?}")) };
            let port = u16::try_from(*port).map_err(|_| format!("CLUSTER SLOTS port {port}"))?;
            if !(0..SLOTS as i64).contains(start) || !(*start..SLOTS as i64).contains(end) {
                return Err(format!("CLUSTER SLOTS range {start}-{end}"));
            }
            spans.push((*start as usize, *end as usize, (host, port)));
        }
        let mut masters: Vec<(String, u16)> = spans.iter().map(|s| s.2.clone()).collect();
        masters.sort();
        masters.dedup();
        let mut owner = vec![None; SLOTS];
        for (start, end, node) in spans {
            let index = masters.binary_search(&node).expect("every master is listed") as u16;
            owner[start..=end].iter_mut().for_each(|o| *o = Some(index));
        }
        Ok(SlotMap { masters, owner })
    }

    /// The index in `masters` of the master serving `key`.
    pub fn master_of(&self, key: &[u8]) -> Option<usize> {
        self.owner[key_slot(key) as usize].map(usize::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"), "empty tag: the whole key");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![Value::BulkString(host.into()), Value::Int(port), Value::BulkString(b"id".to_vec())])
    }

    #[test]
    fn parses_cluster_slots() {
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Int(5461), Value::Int(16383), node("10.0.0.2", 7000)]),
            Value::Array(vec![Value::Int(0), Value::Int(5460), node("", 7001), node("10.0.0.9", 7009)]),
        ]);
        let map = SlotMap::parse(&reply, "seed").unwrap();
        assert_eq!(map.masters, vec![("10.0.0.2".to_string(), 7000), ("seed".to_string(), 7001)]);
        assert_eq!(map.master_of(b"bar"), Some(1), "slot 5061");
        assert_eq!(map.master_of(b"foo"), Some(0), "slot 12182");
        let broken = Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(100), node("h", 1)])]);
        assert_eq!(SlotMap::parse(&broken, "s").unwrap().master_of(b"foo"), None);
        assert!(SlotMap::parse(&Value::Nil, "s").is_err());
    }
}
