//! The map and its shards: where entries live, and the counts and digests
//! kept in step with every change to them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::{Entry, SHARD_COUNT};
use crate::core::digest::{LEAF_COUNT, TREE_FANOUT, entry_hash, key_hash, leaf_of_hash};
use crate::core::horizon::SUBTREES;
use crate::core::version::Timestamp;

/// Hashes a key in one xxh3 call per `write` (the streaming `Xxh3` state
/// showed in profiles for short keys). Fixed seed: iteration order is the
/// same in every run, which the simulator's determinism relies on.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64_with_seed(bytes, self.0);
    }

    fn write_usize(&mut self, n: usize) {
        // The length prefix `[u8]`'s Hash writes: mix it in cheaply.
        self.0 = self.0.rotate_left(5) ^ n as u64;
    }
}

pub(super) type KeyHash = std::hash::BuildHasherDefault<KeyHasher>;

// A subtree of the horizon is a whole number of shards.
const _: () = assert!(SHARD_COUNT.is_multiple_of(SUBTREES) && SHARD_COUNT >= SUBTREES);

/// Leaves of the digest tree per shard: a shard is a contiguous leaf range.
pub(super) const LEAVES_PER_SHARD: usize = LEAF_COUNT / SHARD_COUNT;
// `visit_leaves` keeps a shard's requested leaves in a u64 mask.
const _: () = assert!(LEAVES_PER_SHARD <= 64);
// `children_digests`: a child's span (a power of the fanout) either divides
// a shard's width or is a multiple of it.
const _: () = assert!(LEAVES_PER_SHARD.is_power_of_two() && TREE_FANOUT.is_power_of_two());

// A parent of leaves lies within one shard (`children_digests` reads its
// leaves under one lock).
const _: () = assert!(TREE_FANOUT as usize <= LEAVES_PER_SHARD);

#[derive(Debug)]
pub(super) struct Shard {
    pub(super) map: HashMap<Bytes, Entry, KeyHash>,
    /// Counts over `map`, so DBSIZE and INFO do not walk it.
    pub(super) tally: Tally,
    /// Digests of this shard's leaves, kept in step with every change.
    pub(super) leaves: [u64; LEAVES_PER_SHARD],
    /// XOR of `leaves`: the upper tree levels combine shards, not leaves,
    /// so a sync round's first comparison reads 1,024 words, not 65,536.
    pub(super) digest: u64,
    /// `digest` as last published (see [`Store::publish`]).
    pub(super) published: u64,
    /// Dead entries in the order they became dead here, for the sweep to
    /// forget once the horizon has passed them (see [`DeadRecord`]).
    pub(super) dead: VecDeque<DeadRecord>,
}

/// A dead entry (tombstone or swept expired value), noted when this store
/// came to hold it dead: the horizon says which peers matched us since,
/// so the time a peer's copy reached *us* is what counts, not when the
/// delete happened. A record whose key has since changed is stale and
/// skipped (the change noted a record of its own if it was dead too).
#[derive(Debug)]
pub(super) struct DeadRecord {
    pub(super) held_since_ms: u64,
    pub(super) timestamp: Timestamp,
    pub(super) key: Bytes,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            map: HashMap::default(),
            tally: Tally::default(),
            leaves: [0; LEAVES_PER_SHARD],
            digest: 0,
            published: 0,
            dead: VecDeque::new(),
        }
    }
}

/// Counts over a shard's entries, kept in step with every change (put,
/// remove, sweep), so that DBSIZE and INFO's keyspace line cost one read
/// per shard rather than a walk of the map. Values past their deadline are
/// counted until the sweep turns them into tombstones, as Redis counts keys
/// it has not yet reclaimed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Tally {
    /// Entries holding a value.
    pub(super) values: usize,
    /// Of those, the ones with a deadline.
    pub(super) expiring: usize,
    /// Sum of those deadlines, Unix ms; u128 so that no choice of
    /// deadlines (EXAT/PXAT accept any) can overflow it.
    pub(super) deadlines_ms: u128,
}

impl Tally {
    /// Counts `entry` in.
    pub(super) fn add(&mut self, entry: &Entry) {
        if entry.value.is_some() {
            self.values += 1;
            if let Some(deadline) = entry.expires_at_ms {
                self.expiring += 1;
                self.deadlines_ms += u128::from(deadline);
            }
        }
    }

    /// Counts `entry` out; it must have been counted in.
    pub(super) fn sub(&mut self, entry: &Entry) {
        if entry.value.is_some() {
            self.values -= 1;
            if let Some(deadline) = entry.expires_at_ms {
                self.expiring -= 1;
                self.deadlines_ms -= u128::from(deadline);
            }
        }
    }

    /// The sum of two tallies.
    pub(super) fn plus(self, other: Tally) -> Tally {
        Tally {
            values: self.values + other.values,
            expiring: self.expiring + other.expiring,
            deadlines_ms: self.deadlines_ms + other.deadlines_ms,
        }
    }
}

/// An entry to merge, owned or borrowed: [`Store::merge_from`] takes it
/// by reference and turns it into an owned pair only to store it.
pub(super) trait MergeInput {
    fn key(&self) -> &Bytes;
    fn entry(&self) -> &Entry;
    fn into_owned(self) -> (Bytes, Entry);
}

impl MergeInput for (Bytes, Entry) {
    fn key(&self) -> &Bytes {
        &self.0
    }

    fn entry(&self) -> &Entry {
        &self.1
    }

    fn into_owned(self) -> (Bytes, Entry) {
        self
    }
}

impl MergeInput for (&Bytes, &Entry) {
    fn key(&self) -> &Bytes {
        self.0
    }

    fn entry(&self) -> &Entry {
        self.1
    }

    fn into_owned(self) -> (Bytes, Entry) {
        (self.0.clone(), self.1.clone())
    }
}

/// Where a key lives: its shard and its leaf slot within the shard.
#[derive(Clone, Copy, Debug)]
pub(super) struct Slot {
    pub(super) shard: usize,
    pub(super) leaf: usize,
}

impl Slot {
    pub(super) fn of(key: &[u8]) -> Slot {
        let leaf = leaf_of_hash(key_hash(key)) as usize;
        Slot { shard: leaf / LEAVES_PER_SHARD, leaf: leaf % LEAVES_PER_SHARD }
    }
}

/// Store-wide counts, kept in step under each shard's write lock.
#[derive(Debug, Default)]
pub(super) struct Totals {
    /// Entries in all shards.
    pub(super) entries: AtomicUsize,
    /// Their [`footprint`]s summed: `maxmemory` compares against it.
    pub(super) bytes: AtomicUsize,
}

impl Totals {
    /// An entry of `removed` bytes replaced by one of `added`: one atomic
    /// step (none for a same-size overwrite), so no reader sees both.
    pub(super) fn resize(&self, added: usize, removed: usize) {
        if added > removed {
            self.bytes.fetch_add(added - removed, Ordering::Relaxed);
        } else if removed > added {
            self.bytes.fetch_sub(removed - added, Ordering::Relaxed);
        }
    }
}

/// What one entry is counted as holding, for `maxmemory` and INFO's
/// `used_memory`: its key and value bytes plus a fixed overhead for its
/// hash-table slot (112 bytes, at a load between 7/16 and 7/8), and the
/// key's and value's allocations with the shared headers their first
/// clones add. Measured against the process's resident memory: loading a
/// million 12-byte keys with 16-byte values grew it by 378 MB, at a point
/// where every shard's table had just doubled (the worst case); this
/// counts 316 MB for them, about what a table at its average load costs.
pub fn footprint(key: &[u8], entry: &Entry) -> usize {
    key.len() + entry.value.as_ref().map_or(0, Bytes::len) + ENTRY_OVERHEAD_BYTES
}

/// The fixed part of [`footprint`].
pub const ENTRY_OVERHEAD_BYTES: usize = 288;

impl Shard {
    /// Removes `key`, keeping the tally, digest and store-wide `totals` in step.
    pub(super) fn remove(&mut self, key: &[u8], slot: Slot, totals: &Totals) {
        if let Some(old) = self.map.remove(key) {
            totals.entries.fetch_sub(1, Ordering::Relaxed);
            totals.bytes.fetch_sub(footprint(key, &old), Ordering::Relaxed);
            self.tally.sub(&old);
            self.flip(slot, entry_hash(key, &old.stamp()));
        }
    }

    /// Adds or removes one entry hash from its leaf's and the shard's digest.
    pub(super) fn flip(&mut self, slot: Slot, hash: u64) {
        self.leaves[slot.leaf] ^= hash;
        self.digest ^= hash;
    }

    /// Puts `entry`, keeping the tally, digest and store-wide `totals` in step.
    pub(super) fn put(&mut self, key: Bytes, entry: Entry, slot: Slot, totals: &Totals) {
        self.tally.add(&entry);
        let added = footprint(&key, &entry);
        self.flip(slot, entry_hash(&key, &entry.stamp()));
        match self.map.insert(key.clone(), entry) {
            Some(old) => {
                self.tally.sub(&old);
                totals.resize(added, footprint(&key, &old));
                self.flip(slot, entry_hash(&key, &old.stamp()));
            }
            None => {
                totals.entries.fetch_add(1, Ordering::Relaxed);
                totals.bytes.fetch_add(added, Ordering::Relaxed);
            }
        }
    }

    /// Notes `entry`, just stored for `key`, as dead since `now_ms` if it is.
    pub(super) fn note_if_dead(&mut self, key: &Bytes, entry: &Entry, now_ms: u64) {
        if entry.value.is_none() {
            self.dead.push_back(DeadRecord {
                held_since_ms: now_ms,
                timestamp: entry.version.timestamp,
                key: key.clone(),
            });
        }
    }

    /// Turns the value of `key` into a tombstone of the same version (the
    /// digest does not change). Returns whether there was a value.
    pub(super) fn drop_value(&mut self, key: &[u8], totals: &Totals) -> bool {
        match self.map.get_mut(key) {
            Some(entry) if entry.value.is_some() => {
                self.tally.sub(entry);
                let value_bytes = entry.value.take().map_or(0, |v| v.len());
                totals.bytes.fetch_sub(value_bytes, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }
}
