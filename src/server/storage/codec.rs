//! How an entry is laid out on disk: a format byte, then the entry in
//! postcard, the encoding it already has on the wire. The format byte lets
//! a later version of rumor read (or refuse) what an earlier one wrote.

use crate::core::store::Entry;

/// The one layout this version writes and reads.
const FORMAT_V1: u8 = 1;

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
}

/// The bytes stored for `entry`.
pub fn encode(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + entry.value.as_ref().map_or(0, |v| v.len()));
    out.push(FORMAT_V1);
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
        Some((&FORMAT_V1, body)) => Ok(postcard::from_bytes(body)?),
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
        Entry { value: value.map(Bytes::from_static), version, expires_at_ms }
    }

    #[test]
    fn values_tombstones_and_deadlines_round_trip_with_a_format_byte() {
        for e in [entry(Some(b"hello"), None), entry(None, None), entry(Some(b""), Some(1_700_000_005_000))] {
            let bytes = encode(&e);
            assert_eq!(bytes[0], FORMAT_V1);
            assert_eq!(decode(&bytes).unwrap(), e);
        }
        // Format byte 1; value: option tag 1, length 1, bytes 5; version:
        // the packed HLC word as a 9-byte varint, the writer's 16 bytes
        // with their length 17; no deadline 1.
        assert_eq!(encode(&entry(Some(b"hello"), None)).len(), 35);
    }

    #[test]
    fn unknown_formats_and_garbage_are_refused() {
        assert!(matches!(decode(&[]), Err(DecodeError::Empty)));
        assert!(matches!(decode(&[9, 1, 2]), Err(DecodeError::UnknownFormat(9))));
        assert!(matches!(decode(&[FORMAT_V1, 1]), Err(DecodeError::Malformed(_))));
    }

    proptest! {
        #[test]
        fn any_entry_round_trips(
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            physical in 0u64..(1 << 47),
            logical in any::<u16>(),
            writer in any::<[u8; 16]>(),
            expires in proptest::option::of(any::<u64>()),
        ) {
            let version = Version { timestamp: Timestamp::from_packed((physical << 16) | u64::from(logical)), writer: NodeId::from_bytes(writer) };
            let e = Entry { value: value.map(Bytes::from), version, expires_at_ms: expires };
            prop_assert_eq!(decode(&encode(&e)).unwrap(), e);
        }
    }
}
