//! One stored entry: a value (or tombstone) and a deadline, each with its
//! own version, and the rule that merges two copies of it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::version::{DeadlineStamp, EntryStamp, Timestamp, Version};

/// One stored entry, exactly as it travels between nodes.
///
/// It has two parts, each with its own version, and merge takes each part
/// from the greater of its versions: the value (or tombstone) with
/// `version`, and the deadline with `deadline_set_at` (see
/// [`DeadlineStamp`]). SET and DEL stamp both; EXPIRE and PERSIST only the
/// deadline; SET KEEPTTL only the value. So an EXPIRE on one node never
/// undoes a SET that raced it on another: the SET's value survives, with
/// whichever deadline was set last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The value, or `None` for a tombstone left by a delete.
    pub value: Option<Bytes>,
    /// The value's version: decides which value survives a merge.
    pub version: Version,
    /// Absolute wall-clock deadline (Unix ms) after which the entry reads as
    /// missing on every node.
    pub expires_at_ms: Option<u64>,
    /// When the deadline (or its absence) was set: decides, with the
    /// deadline as the tie-break, which deadline survives a merge.
    pub deadline_set_at: Timestamp,
}

impl Entry {
    /// The deadline's version.
    pub fn deadline_stamp(&self) -> DeadlineStamp {
        DeadlineStamp { set_at: self.deadline_set_at, expires_at_ms: self.expires_at_ms }
    }

    /// Both versions, as anti-entropy compares them.
    pub fn stamp(&self) -> EntryStamp {
        EntryStamp { value: self.version, deadline: self.deadline_stamp() }
    }

    /// The later of the two parts' timestamps: when the entry last changed.
    pub fn last_stamped(&self) -> Timestamp {
        self.version.timestamp.max(self.deadline_set_at)
    }

    /// What merging `incoming` into `self` gives, if it changes anything:
    /// each part from the greater of its versions. On a value tie (the same
    /// write) a swept copy (no value) takes the value back only if the
    /// merged deadline leaves it live at `now_ms` — a PERSIST that raced the
    /// expiry elsewhere — so the sweep's work is not undone for nothing.
    pub(crate) fn merged_with(&self, incoming: &Entry, now_ms: u64, keep_smaller: bool) -> Option<Entry> {
        let value_newer = if keep_smaller { incoming.version < self.version } else { incoming.version > self.version };
        let deadline_newer = incoming.stamp().deadline_order() > self.stamp().deadline_order();
        let (value, version) =
            if value_newer { (incoming.value.clone(), incoming.version) } else { (self.value.clone(), self.version) };
        let deadline = if deadline_newer { incoming.deadline_stamp() } else { self.deadline_stamp() };
        let mut merged =
            Entry { value, version, expires_at_ms: deadline.expires_at_ms, deadline_set_at: deadline.set_at };
        if !value_newer && incoming.version == self.version && merged.value.is_none() && incoming.value.is_some() {
            let revived = Entry { value: incoming.value.clone(), ..merged.clone() };
            if revived.live_value(now_ms).is_some() {
                merged = revived;
            }
        }
        (merged != *self).then_some(merged)
    }

    /// Whether a FLUSHALL at `upto` removes it: its value (or delete) was
    /// written at or before the flush. A deadline set later does not keep
    /// it: it was set on a value the flush removes. [`Timestamp::ZERO`] is
    /// no flush.
    pub fn flushed_by(&self, upto: Timestamp) -> bool {
        upto != Timestamp::ZERO && self.version.timestamp <= upto
    }

    /// The value if it is neither deleted nor expired at `now_ms`.
    pub fn live_value(&self, now_ms: u64) -> Option<&Bytes> {
        match self.expires_at_ms {
            Some(deadline) if deadline <= now_ms => None,
            _ => self.value.as_ref(),
        }
    }
}

/// A key's current content as a client sees it: present, unexpired.
#[derive(Clone, Copy, Debug)]
pub struct LiveValue<'a> {
    /// The value.
    pub value: &'a Bytes,
    /// Its deadline, if any.
    pub expires_at_ms: Option<u64>,
}
