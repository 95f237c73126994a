//! How an entry is laid out on disk: a format byte, then the entry in
//! postcard, the encoding it already has on the wire. The format byte lets
//! a later version of rumor read (or refuse) what an earlier one wrote.
//!
//! Format 2 adds the deadline's own version (`deadline_set_at`). Format 1
//! records, written before deadlines were versioned apart, are still read:
//! their deadline was set by the write that set the value, so it gets the
//! value's timestamp — exactly what a SET stamps today.

use bytes::Bytes;
use serde::Deserialize;

use crate::core::store::Entry;
use crate::core::version::Version;

/// The layout before the deadline had its own version (read only).
const FORMAT_V1: u8 = 1;

/// The layout this version writes.
const FORMAT_V2: u8 = 2;

/// An entry as format 1 laid it out.
#[derive(Deserialize)]
struct EntryV1 {
    value: Option<Bytes>,
    version: Version,
    expires_at_ms: Option<u64>,
}

impl From<EntryV1> for Entry {
    fn from(old: EntryV1) -> Entry {
        Entry {
            value: old.value,
            version: old.version,
            expires_at_ms: old.expires_at_ms,
            deadline_set_at: old.version.timestamp,
        }
    }
}

/// First byte of every stored key: fjall refuses empty keys, and a client
/// may `SET ""` as in Redis.
const KEY_PREFIX: u8 = b'k';

/// Longest key the data dir can hold: fjall's limit (65,535 bytes) less the
/// prefix. `--data-dir` caps `limits.max_key_bytes` to it.
pub const MAX_STORED_KEY_BYTES: usize = u16::MAX as usize - 1;

/// The fjall key for `key`, if it is not too long to store.
pub fn stored_key(key: &[u8]) -> Option<Vec<u8>> {
    if key.len() > MAX_STORED_KEY_BYTES {
        return None;
    }
    let mut stored = Vec::with_capacity(1 + key.len());
    stored.push(KEY_PREFIX);
    stored.extend_from_slice(key);
    Some(stored)
}

/// The client's key behind a fjall key.
pub fn client_key(stored: &[u8]) -> Result<&[u8], DecodeError> {
    match stored.split_first() {
        Some((&KEY_PREFIX, key)) => Ok(key),
        _ => Err(DecodeError::KeyPrefix),
    }
}

/// Why stored bytes could not be read back as an entry.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Nothing stored, not even the format byte.
    #[error("empty record")]
    Empty,
    /// Written in a layout this version does not know.
    #[error("record format {0} is not known to this version of rumor")]
    UnknownFormat(u8),
    /// The bytes do not hold an entry.
    #[error("malformed record: {0}")]
    Malformed(#[from] postcard::Error),
    /// A stored key without the prefix this version writes.
    #[error("stored key without its prefix")]
    KeyPrefix,
}

/// The bytes stored for `entry`.
pub fn encode(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + entry.value.as_ref().map_or(0, |v| v.len()));
    out.push(FORMAT_V2);
    match postcard::to_extend(entry, out) {
        Ok(out) => out,
        // Serializing an in-memory entry into a Vec has no failure mode
        // (no length limits, no I/O); keep the format byte regardless.
        Err(_) => unreachable!("postcard cannot fail to encode an entry into a Vec"),
    }
}

/// The entry `bytes` holds.
pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&FORMAT_V2, body)) => Ok(postcard::from_bytes(body)?),
        Some((&FORMAT_V1, body)) => Ok(postcard::from_bytes::<EntryV1>(body)?.into()),
        Some((&format, _)) => Err(DecodeError::UnknownFormat(format)),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::core::version::{NodeId, Timestamp, Version};

    fn entry(value: Option<&'static [u8]>, expires_at_ms: Option<u64>) -> Entry {
        let version = Version {
            timestamp: Timestamp::from_packed((1_700_000_000_000 << 16) | 3),
            writer: NodeId::from_bytes([7; 16]),
        };
        Entry { value: value.map(Bytes::from_static), version, expires_at_ms, deadline_set_at: version.timestamp }
    }

    #[test]
    fn values_tombstones_and_deadlines_round_trip_with_a_format_byte() {
        for e in [entry(Some(b"hello"), None), entry(None, None), entry(Some(b""), Some(1_700_000_005_000))] {
            let bytes = encode(&e);
            assert_eq!(bytes[0], FORMAT_V2);
            assert_eq!(decode(&bytes).unwrap(), e);
        }
        // Format byte 1; value: option tag 1, length 1, bytes 5; version:
        // the packed HLC word as a 9-byte varint, the writer's 16 bytes
        // with their length 17; no deadline 1; the deadline's timestamp 9.
        assert_eq!(encode(&entry(Some(b"hello"), None)).len(), 44);
    }

    #[test]
    fn format_1_records_are_read_with_the_deadline_stamped_by_the_value() {
        // Format 1 is format 2 without the trailing deadline timestamp.
        let e = entry(Some(b"hello"), Some(1_700_000_005_000));
        let mut v1 = encode(&e);
        v1[0] = FORMAT_V1;
        v1.truncate(v1.len() - 9);
        assert_eq!(decode(&v1).unwrap(), e);
    }

    #[test]
    fn keys_get_a_prefix_so_that_empty_keys_store_and_long_ones_are_refused() {
        assert_eq!(stored_key(b"").unwrap(), b"k");
        assert_eq!(client_key(&stored_key(b"user:1").unwrap()).unwrap(), b"user:1");
        assert!(stored_key(&vec![b'x'; MAX_STORED_KEY_BYTES]).is_some_and(|k| k.len() == u16::MAX as usize));
        assert!(stored_key(&vec![b'x'; MAX_STORED_KEY_BYTES + 1]).is_none());
        assert!(matches!(client_key(b""), Err(DecodeError::KeyPrefix)));
        assert!(matches!(client_key(b"zz"), Err(DecodeError::KeyPrefix)));
    }

    #[test]
    fn unknown_formats_and_garbage_are_refused() {
        assert!(matches!(decode(&[]), Err(DecodeError::Empty)));
        assert!(matches!(decode(&[9, 1, 2]), Err(DecodeError::UnknownFormat(9))));
        assert!(matches!(decode(&[FORMAT_V1, 1]), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode(&[FORMAT_V2, 1]), Err(DecodeError::Malformed(_))));
    }

    proptest! {
        #[test]
        fn any_entry_round_trips(
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            physical in 0u64..(1 << 47),
            logical in any::<u16>(),
            writer in any::<[u8; 16]>(),
            expires in proptest::option::of(any::<u64>()),
            deadline_set_at in any::<u64>(),
        ) {
            let version = Version { timestamp: Timestamp::from_packed((physical << 16) | u64::from(logical)), writer: NodeId::from_bytes(writer) };
            let e = Entry { value: value.map(Bytes::from), version, expires_at_ms: expires, deadline_set_at: Timestamp::from_packed(deadline_set_at) };
            prop_assert_eq!(decode(&encode(&e)).unwrap(), e);
        }
    }
}
