//! The map and its shards: where entries live, and the counts and digests
//! kept in step with every change to them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::dead::DeadKey;
use super::{Entry, SHARD_COUNT};
use crate::core::digest::{LEAF_COUNT, TREE_FANOUT, entry_hash, key_hash, leaf_of_hash};
use crate::core::horizon::SUBTREES;

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

/// A shard: the entries of a contiguous range of the digest tree's leaves,
/// in two tables by what they hold. A key is in at most one of them.
#[derive(Debug)]
pub(super) struct Shard {
    /// Entries holding a value: live, or expired and not yet swept.
    pub(super) live: HashMap<Bytes, Entry, KeyHash>,
    /// Dead entries (tombstones, swept expired values), kept only for their
    /// versions until they may be forgotten: the key and a fixed record,
    /// not a whole entry (see [`DeadKey`]).
    pub(super) dead: HashSet<DeadKey, KeyHash>,
    /// Counts over `live`, so DBSIZE and INFO do not walk it.
    pub(super) tally: Tally,
    /// Digests of this shard's leaves, kept in step with every change.
    pub(super) leaves: [u64; LEAVES_PER_SHARD],
    /// XOR of `leaves`: the upper tree levels combine shards, not leaves,
    /// so a sync round's first comparison reads 1,024 words, not 65,536.
    pub(super) digest: u64,
    /// `digest` as last published (see [`Store::publish`]).
    pub(super) published: u64,
}

/// What a shard holds for a key: a live entry borrowed, or a dead one
/// rebuilt from its record (no value, so no allocation).
#[derive(Clone)]
pub(super) enum Held<'a> {
    Live(&'a Entry),
    Dead(Entry),
}

impl std::ops::Deref for Held<'_> {
    type Target = Entry;

    fn deref(&self) -> &Entry {
        match self {
            Held::Live(entry) => entry,
            Held::Dead(entry) => entry,
        }
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            live: HashMap::default(),
            dead: HashSet::default(),
            tally: Tally::default(),
            leaves: [0; LEAVES_PER_SHARD],
            digest: 0,
            published: 0,
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
/// table slot and allocations. A live entry: a 112-byte slot (key handle
/// and entry) at a load between 7/16 and 7/8, and the key's and value's
/// allocations with the shared headers their first clones add. Measured
/// against the process's resident memory: loading a million 12-byte keys
/// with 16-byte values grew it by 378 MB, at a point where every shard's
/// table had just doubled (the worst case); this counts 316 MB for them,
/// about what a table at its average load costs. A dead entry: an 8-byte
/// slot and one allocation of the key and a 49-byte header (see
/// [`DeadKey`]).
pub fn footprint(key: &[u8], entry: &Entry) -> usize {
    match &entry.value {
        Some(value) => key.len() + value.len() + ENTRY_OVERHEAD_BYTES,
        None => key.len() + DEAD_ENTRY_OVERHEAD_BYTES,
    }
}

/// The fixed part of [`footprint`] for an entry holding a value.
pub const ENTRY_OVERHEAD_BYTES: usize = 288;

/// A table with room for fewer entries than this is never shrunk.
const SHRINK_ABOVE: usize = 64;

/// The fixed part of [`footprint`] for a dead entry.
pub const DEAD_ENTRY_OVERHEAD_BYTES: usize = 128;

impl Shard {
    /// What the shard holds for `key`, dead or alive.
    pub(super) fn held(&self, key: &[u8]) -> Option<Held<'_>> {
        match self.live.get(key) {
            Some(entry) => Some(Held::Live(entry)),
            None if self.dead.is_empty() => None,
            None => self.dead.get(key).map(|dead| Held::Dead(dead.entry())),
        }
    }

    /// Removes `key`, keeping the tally, digest and store-wide `totals` in
    /// step; returns what was held.
    pub(super) fn remove(&mut self, key: &[u8], slot: Slot, totals: &Totals) -> Option<Entry> {
        let old = match self.live.remove(key) {
            Some(old) => {
                self.tally.sub(&old);
                old
            }
            None => self.dead.take(key)?.entry(),
        };
        totals.entries.fetch_sub(1, Ordering::Relaxed);
        totals.bytes.fetch_sub(footprint(key, &old), Ordering::Relaxed);
        self.flip(slot, entry_hash(key, &old.stamp()));
        Some(old)
    }

    /// Adds or removes one entry hash from its leaf's and the shard's digest.
    pub(super) fn flip(&mut self, slot: Slot, hash: u64) {
        self.leaves[slot.leaf] ^= hash;
        self.digest ^= hash;
    }

    /// Puts `entry`, keeping the tally, digest and store-wide `totals` in
    /// step. A dead entry is noted as held dead since `now_ms`, or since
    /// it was first held dead if the same delete was held before (a later
    /// deadline merged into a tombstone does not restart its wait).
    pub(super) fn put(&mut self, key: &Bytes, entry: Entry, now_ms: u64, slot: Slot, totals: &Totals) {
        let added = footprint(key, &entry);
        self.flip(slot, entry_hash(key, &entry.stamp()));
        let old = if entry.value.is_some() {
            self.tally.add(&entry);
            match self.live.insert(key.clone(), entry) {
                Some(old) => {
                    self.tally.sub(&old);
                    Some(old)
                }
                None if self.dead.is_empty() => None,
                None => self.dead.take(key.as_ref()).map(|dead| dead.entry()),
            }
        } else {
            let old_live = self.live.remove(key.as_ref());
            if let Some(old) = &old_live {
                self.tally.sub(old);
            }
            let held_dead = self.dead.take(key.as_ref());
            let held_since_ms = match &held_dead {
                Some(held) if held.version() == entry.version => held.held_since_ms().min(now_ms),
                _ => now_ms,
            };
            self.dead.insert(DeadKey::new(key, &entry, held_since_ms));
            held_dead.map(|held| held.entry()).or(old_live)
        };
        match old {
            Some(old) => {
                totals.resize(added, footprint(key, &old));
                self.flip(slot, entry_hash(key, &old.stamp()));
            }
            None => {
                totals.entries.fetch_add(1, Ordering::Relaxed);
                totals.bytes.fetch_add(added, Ordering::Relaxed);
            }
        }
    }

    /// Gives back the memory of a table that holds a quarter of what it
    /// has room for, keeping room for twice what it holds: a cache whose
    /// keys expired after a peak would otherwise keep the peak's table for
    /// good (hash tables never shrink by themselves).
    pub(super) fn shrink_if_emptied(&mut self) {
        if self.live.capacity() > SHRINK_ABOVE && self.live.len() * 4 < self.live.capacity() {
            self.live.shrink_to(self.live.len() * 2);
        }
        if self.dead.capacity() > SHRINK_ABOVE && self.dead.len() * 4 < self.dead.capacity() {
            self.dead.shrink_to(self.dead.len() * 2);
        }
    }

    /// Moves the expired value of `key` to the dead table, held dead since
    /// `now_ms`, with the same versions (the digest does not change).
    /// Returns the dead entry, if there was a value.
    pub(super) fn expire(&mut self, key: &[u8], now_ms: u64, totals: &Totals) -> Option<Entry> {
        let live = self.live.remove(key)?;
        self.tally.sub(&live);
        let dead = DeadKey::new(key, &live, now_ms);
        let entry = dead.entry();
        totals.resize(footprint(key, &entry), footprint(key, &live));
        self.dead.insert(dead);
        Some(entry)
    }
}
