//! Versions: the total order that last-write-wins merge is built on.
//!
//! A [`Version`] is a hybrid logical clock [`Timestamp`] with the writer's
//! [`NodeId`] as the tie-break, so two writes never compare equal unless they
//! are the same write.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Bits of a [`Timestamp`] that hold the logical counter.
const LOGICAL_BITS: u32 = 16;

/// A hybrid logical clock reading packed into one `u64`: wall-clock
/// milliseconds in the high 48 bits, a logical counter in the low 16.
///
/// Packing makes "the next timestamp" a plain `+ 1`: a logical counter that
/// overflows carries into the millisecond part, which keeps the order total
/// and never goes backwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The smallest timestamp; every real write is greater.
    pub const ZERO: Timestamp = Timestamp(0);

    /// The first timestamp of wall-clock millisecond `ms`.
    pub fn from_physical_ms(ms: u64) -> Self {
        Timestamp(ms << LOGICAL_BITS)
    }

    /// The last timestamp of wall-clock millisecond `ms` (logical counter
    /// at its maximum): a lease covers its whole millisecond.
    pub fn end_of_ms(ms: u64) -> Self {
        Timestamp(Timestamp::from_physical_ms(ms.min(u64::MAX >> LOGICAL_BITS)).0 | ((1 << LOGICAL_BITS) - 1))
    }

    /// Rebuilds a timestamp from its packed form (as sent on the wire).
    pub fn from_packed(packed: u64) -> Self {
        Timestamp(packed)
    }

    /// The packed form.
    pub fn packed(self) -> u64 {
        self.0
    }

    /// Wall-clock milliseconds of this reading.
    pub fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter within the millisecond.
    pub fn logical(self) -> u16 {
        (self.0 & ((1 << LOGICAL_BITS) - 1)) as u16
    }

    /// The smallest timestamp greater than this one, unless this is the
    /// last one: a write must never be stamped with a version that does not
    /// beat the one it replaces, so the caller refuses the write instead.
    pub fn checked_next(self) -> Option<Self> {
        self.0.checked_add(1).map(Timestamp)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms(), self.logical())
    }
}

/// A node's identity in versions and membership: a UUID.
///
/// Real nodes draw it from the OS RNG at start; the simulator draws it from
/// its seeded RNG so that runs replay.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(Uuid);

impl NodeId {
    /// A random (v4) id from 16 bytes of the caller's randomness.
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        NodeId(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }

    /// The id's 16 bytes, as storage keeps it.
    pub fn to_bytes(self) -> [u8; 16] {
        *self.0.as_bytes()
    }

    /// The id whose bytes [`NodeId::to_bytes`] gave.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        NodeId(Uuid::from_bytes(bytes))
    }

    /// The underlying UUID.
    pub fn uuid(self) -> Uuid {
        self.0
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The version of one entry: merge keeps the greater.
///
/// Ordered by timestamp first, then by writer, so the order is total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// When the write happened, by the writer's hybrid logical clock.
    pub timestamp: Timestamp,
    /// Who wrote it; breaks ties between equal timestamps.
    pub writer: NodeId,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.timestamp, self.writer)
    }
}

/// The version of an entry's deadline: when it was set (or cleared).
///
/// A deadline is versioned apart from the value so that EXPIRE and PERSIST,
/// which change only the deadline, never rewrite a value written
/// concurrently elsewhere. It stores no writer id (8 bytes per entry
/// instead of another 24); deadlines are ordered by
/// [`EntryStamp::deadline_order`], which recovers the writer where it
/// matters — see there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeadlineStamp {
    /// When the deadline was set, by the setter's hybrid logical clock.
    pub set_at: Timestamp,
    /// The deadline (Unix ms), `None` for none.
    pub expires_at_ms: Option<u64>,
}

/// Both versions of an entry, as anti-entropy compares them: merge takes
/// each part from the greater of its own versions, so two entries differ
/// when either part does, and one is worth sending when either of its parts
/// is newer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntryStamp {
    /// The value's (or tombstone's) version.
    pub value: Version,
    /// The deadline's version.
    pub deadline: DeadlineStamp,
}

impl EntryStamp {
    /// Whether some part of `self` is newer than the same part of `other`:
    /// merging `self` into `other` would change it.
    pub fn newer_in_some_part(&self, other: &EntryStamp) -> bool {
        self.value > other.value || self.deadline_order() > other.deadline_order()
    }

    /// The order of deadline parts: when set, then the writer if the value
    /// was written at that same timestamp, then the deadline itself.
    ///
    /// A SET stamps value and deadline at one timestamp. Two SETs by
    /// different writers can share a timestamp; ordered by the deadline
    /// alone, a merge would take one SET's value (the greater writer) and
    /// the other's deadline — a state neither client wrote. Breaking the
    /// tie by the value's writer keeps each SET whole.
    ///
    /// The writer is recovered, not stored: where the value was written at
    /// the deadline's own timestamp, SET (or DEL) wrote both, so the
    /// value's writer is the deadline's. Merge stays a per-part maximum,
    /// and nodes converge: once every node holds the greatest value
    /// version, deadlines compare by one fixed total order. Only
    /// `SET … KEEPTTL`, which stamps the value after its deadline, can
    /// make the winner of three writes at one timestamp depend on the
    /// order they met in — still one of those writes' deadlines, on every
    /// node alike.
    pub fn deadline_order(&self) -> (Timestamp, Option<NodeId>, Option<u64>) {
        let writer = (self.value.timestamp == self.deadline.set_at).then_some(self.value.writer);
        (self.deadline.set_at, writer, self.deadline.expires_at_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_overflow_carries_into_physical() {
        let last_of_ms = Timestamp::end_of_ms(7);
        assert_eq!(last_of_ms, Timestamp::from_packed((7 << LOGICAL_BITS) | 0xFFFF));
        let next = last_of_ms.checked_next().unwrap();
        assert_eq!(next.physical_ms(), 8);
        assert_eq!(next.logical(), 0);
        assert!(next > last_of_ms);
        assert_eq!(Timestamp::from_packed(u64::MAX).checked_next(), None);
    }

    #[test]
    fn two_sets_at_one_timestamp_order_their_deadlines_as_their_values() {
        let ts = Timestamp::from_physical_ms(5);
        let (low, high) = (NodeId::from_random_bytes([1; 16]), NodeId::from_random_bytes([2; 16]));
        let (low, high) = (low.min(high), low.max(high));
        let set = |writer, expires_at_ms| EntryStamp {
            value: Version { timestamp: ts, writer },
            deadline: DeadlineStamp { set_at: ts, expires_at_ms },
        };
        // The greater writer wins the value: its deadline (none) must win too.
        let (plain, expiring) = (set(high, None), set(low, Some(9)));
        assert!(plain.value > expiring.value);
        assert!(plain.deadline_order() > expiring.deadline_order());
        assert!(plain.deadline.expires_at_ms < expiring.deadline.expires_at_ms, "the old order picked the other");
        // An EXPIRE set later wins over both, whoever wrote the value.
        let expire = EntryStamp {
            value: Version { timestamp: ts, writer: low },
            deadline: DeadlineStamp { set_at: ts.checked_next().unwrap(), expires_at_ms: Some(1) },
        };
        assert!(expire.deadline_order() > plain.deadline_order());
    }

    #[test]
    fn writer_breaks_timestamp_ties() {
        let ts = Timestamp::from_physical_ms(5);
        let a = Version { timestamp: ts, writer: NodeId::from_random_bytes([1; 16]) };
        let b = Version { timestamp: ts, writer: NodeId::from_random_bytes([2; 16]) };
        assert_ne!(a.cmp(&b), std::cmp::Ordering::Equal);
        let later = Version { timestamp: ts.checked_next().unwrap(), writer: a.writer.min(b.writer) };
        assert!(later > a && later > b);
    }
}
