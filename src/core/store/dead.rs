//! The dead table: what a shard keeps of a dead entry (a tombstone, or an
//! expired value the sweep reclaimed) until it may be forgotten.
//!
//! A dead key is kept only for its versions, so that an older copy still
//! held elsewhere cannot come back, and it is kept until every member that
//! may return has it — a day at least, whatever the key's TTL was. A
//! session cache creates and expires keys all day, so what one dead key
//! costs, times the keys created in that time, is most of its memory. Each
//! is one allocation holding a fixed header and the key (no value, no
//! shared key handle, no queue record), found through a table of one
//! pointer per slot: about its key plus 100 bytes.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use crate::core::entry::Entry;
use crate::core::version::{NodeId, Timestamp, Version};

/// Where each field lives in a [`DeadKey`]'s bytes (little-endian).
const VALUE_AT: usize = 0;
const WRITER_AT: usize = 8;
const DEADLINE_SET_AT: usize = 24;
const DEADLINE_AT: usize = 32;
const HELD_SINCE_AT: usize = 40;
const HAS_DEADLINE_AT: usize = 48;
/// Bytes before the key.
const HEADER: usize = 49;

/// A dead entry and its key in one allocation: the value's version, the
/// deadline's stamp, and when this store came to hold it dead. That time,
/// not the delete's, is what the horizon compares: it says which peers
/// matched us since, so what counts is when a copy reached *us*.
///
/// Hashed and compared by its key alone, and borrowed as the key, so the
/// table is a set looked up by key.
#[derive(Debug)]
pub(super) struct DeadKey(Box<[u8]>);

impl DeadKey {
    /// `entry` (dead: its value is ignored) for `key`, held since `held_since_ms`.
    pub(super) fn new(key: &[u8], entry: &Entry, held_since_ms: u64) -> DeadKey {
        let mut bytes = vec![0; HEADER + key.len()];
        bytes[VALUE_AT..][..8].copy_from_slice(&entry.version.timestamp.packed().to_le_bytes());
        bytes[WRITER_AT..][..16].copy_from_slice(&entry.version.writer.to_bytes());
        bytes[DEADLINE_SET_AT..][..8].copy_from_slice(&entry.deadline_set_at.packed().to_le_bytes());
        bytes[DEADLINE_AT..][..8].copy_from_slice(&entry.expires_at_ms.unwrap_or(0).to_le_bytes());
        bytes[HELD_SINCE_AT..][..8].copy_from_slice(&held_since_ms.to_le_bytes());
        bytes[HAS_DEADLINE_AT] = u8::from(entry.expires_at_ms.is_some());
        bytes[HEADER..].copy_from_slice(key);
        DeadKey(bytes.into_boxed_slice())
    }

    fn u64_at(&self, at: usize) -> u64 {
        let mut word = [0; 8];
        word.copy_from_slice(&self.0[at..][..8]);
        u64::from_le_bytes(word)
    }

    /// The key.
    pub(super) fn key(&self) -> &[u8] {
        &self.0[HEADER..]
    }

    /// The value's version.
    pub(super) fn version(&self) -> Version {
        let mut writer = [0; 16];
        writer.copy_from_slice(&self.0[WRITER_AT..][..16]);
        Version { timestamp: Timestamp::from_packed(self.u64_at(VALUE_AT)), writer: NodeId::from_bytes(writer) }
    }

    /// When this store came to hold it dead (wall ms).
    pub(super) fn held_since_ms(&self) -> u64 {
        self.u64_at(HELD_SINCE_AT)
    }

    /// The entry it stands for (no value, so no allocation).
    pub(super) fn entry(&self) -> Entry {
        Entry {
            value: None,
            version: self.version(),
            expires_at_ms: (self.0[HAS_DEADLINE_AT] != 0).then(|| self.u64_at(DEADLINE_AT)),
            deadline_set_at: Timestamp::from_packed(self.u64_at(DEADLINE_SET_AT)),
        }
    }
}

impl Borrow<[u8]> for DeadKey {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

impl Hash for DeadKey {
    /// As the key hashes, so that a lookup by key finds it.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for DeadKey {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for DeadKey {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn entry(expires_at_ms: Option<u64>) -> Entry {
        Entry {
            value: None,
            version: Version { timestamp: Timestamp::from_packed(u64::MAX - 3), writer: NodeId::from_bytes([7; 16]) },
            expires_at_ms,
            deadline_set_at: Timestamp::from_packed(1 << 40),
        }
    }

    #[test]
    fn a_dead_key_gives_back_what_it_was_made_of() {
        for expires_at_ms in [None, Some(0), Some(1_700_000_000_000), Some(u64::MAX)] {
            let dead = DeadKey::new(b"session:42", &entry(expires_at_ms), 123_456);
            assert_eq!(dead.key(), b"session:42");
            assert_eq!(dead.entry(), entry(expires_at_ms));
            assert_eq!(dead.held_since_ms(), 123_456);
        }
        assert_eq!(DeadKey::new(b"", &entry(None), 0).key(), b"");
    }

    #[test]
    fn a_set_of_dead_keys_is_looked_up_by_key() {
        let mut set = HashSet::new();
        set.insert(DeadKey::new(b"a", &entry(None), 1));
        set.insert(DeadKey::new(b"b", &entry(Some(5)), 2));
        assert!(!set.insert(DeadKey::new(b"a", &entry(Some(9)), 3)), "one record per key");
        assert_eq!(set.get(b"b".as_slice()).map(DeadKey::held_since_ms), Some(2));
        assert_eq!(set.get(b"a".as_slice()).map(DeadKey::held_since_ms), Some(1));
        assert!(!set.contains(b"c".as_slice()));
    }
}
