//! The hook through which durable storage sees every change to the store.
//!
//! The core does no I/O, so it does not write to disk: it reports each
//! change, in the order it made them per key, to a [`ChangeLog`] the driver
//! hands it. The tokio driver's log queues the changes for a storage thread;
//! the simulator's data dirs keep a [`ReplayedLog`].

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use parking_lot::Mutex;

use super::entry::Entry;
use super::version::Timestamp;

/// One change to the store, as storage must replay it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change<'a> {
    /// `key` now holds `entry` (a value or a tombstone).
    Put {
        /// The key.
        key: &'a Bytes,
        /// Its new entry.
        entry: &'a Entry,
    },
    /// `key` is gone (a tombstone past the TTL was forgotten).
    Remove {
        /// The key.
        key: &'a [u8],
    },
    /// Every entry is gone (stale state discarded after a long absence).
    Clear,
    /// FLUSHALL: every entry whose value was written at or before `upto`
    /// is gone, and such entries are never to be taken again. Storage
    /// keeps `upto` and drops those entries; later changes come after it.
    Flush {
        /// The flush's timestamp.
        upto: Timestamp,
    },
}

/// Receives every change to the store.
///
/// [`ChangeLog::record`] is called while the changed key's shard is locked,
/// so two changes to one key reach the log in the order the store made
/// them: a log that replays its changes in the order received ends with the
/// store's entry for every key. It must be quick and must not block (it
/// holds a shard lock): queue the change, write it elsewhere.
pub trait ChangeLog: Send + Sync + fmt::Debug {
    /// Notes one change.
    fn record(&self, change: Change<'_>);
}

/// A change log replayed into memory as it goes: after any sequence of
/// changes it holds what the store holds. The simulator's data dirs and the
/// store's tests keep their "disk" in one.
#[derive(Debug, Default)]
pub struct ReplayedLog(Mutex<Replayed>);

#[derive(Debug, Default)]
struct Replayed {
    entries: BTreeMap<Bytes, Entry>,
    flushed: Option<Timestamp>,
}

impl ReplayedLog {
    /// What it holds, in key order.
    pub fn entries(&self) -> Vec<(Bytes, Entry)> {
        self.0.lock().entries.iter().map(|(k, e)| (k.clone(), e.clone())).collect()
    }

    /// The latest flush it took, if any.
    pub fn flushed(&self) -> Option<Timestamp> {
        self.0.lock().flushed
    }

    /// Drops every entry (the flush it took stays: it is no entry).
    pub fn clear(&self) {
        self.0.lock().entries.clear();
    }
}

impl ChangeLog for ReplayedLog {
    fn record(&self, change: Change<'_>) {
        let mut replayed = self.0.lock();
        match change {
            Change::Put { key, entry } => {
                replayed.entries.insert(key.clone(), entry.clone());
            }
            Change::Remove { key } => {
                replayed.entries.remove(key);
            }
            Change::Clear => replayed.entries.clear(),
            Change::Flush { upto } => {
                replayed.entries.retain(|_, entry| !entry.flushed_by(upto));
                replayed.flushed = replayed.flushed.max(Some(upto));
            }
        }
    }
}
