//! The replicated map: key → (value or tombstone, version, optional expiry).
//!
//! Connection tasks read and write it directly from their own tasks (the
//! client path must not funnel through one task or lock), so it is sharded
//! by key hash, each shard behind its own `RwLock`. Every rule that decides
//! *what* is stored — version stamping, last-write-wins merge, expiry — lives
//! here and takes wall time as an argument, so a single thread driving it
//! (the simulator) gets deterministic results. Hashing uses fixed-seed xxh3,
//! never a random-state hasher, so iteration order is reproducible too.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::changes::{Change, ChangeLog};
use super::digest::{LEAF_COUNT, TREE_DEPTH, TREE_FANOUT, entry_hash, key_hash, leaf_of_hash, leaves_under};

use super::hlc::{DriftExceeded, Hlc};
use super::horizon::SUBTREES;
use super::loading::CatchUpState;
use super::sabotage::Sabotage;
use super::version::{DeadlineStamp, EntryStamp, NodeId, Timestamp, Version};
use super::wire::entry_size_bound;

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
    fn merged_with(&self, incoming: &Entry, now_ms: u64, keep_smaller: bool) -> Option<Entry> {
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

/// What a client command decided to write to one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Store `value`, expiring at `expires_at_ms` if set (SET): both parts.
    Put {
        /// The new value.
        value: Bytes,
        /// Absolute deadline (Unix ms).
        expires_at_ms: Option<u64>,
    },
    /// Store `value`, keeping the deadline part as it is (SET KEEPTTL on a
    /// live key): the value part only. On a key without a live value it is
    /// a [`Write::Put`] without a deadline.
    Value {
        /// The new value.
        value: Bytes,
    },
    /// Set or clear the deadline of the live value (EXPIRE, PERSIST): the
    /// deadline part only; nothing is written if there is no live value.
    Deadline {
        /// Absolute deadline (Unix ms), `None` to clear it.
        expires_at_ms: Option<u64>,
    },
    /// Leave a tombstone: both parts.
    Delete,
}

/// Whether a merged entry changed the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The entry was newer and replaced (or created) the key.
    Applied,
    /// The store already held this version or a greater one.
    Stale,
    /// Stamped further ahead of our wall clock than `max_version_ahead_ms`:
    /// refused, since a version that far ahead would beat every local write
    /// until our clock caught up. An honest peer's entry is only delayed:
    /// once our clock is within the bound, a resend or anti-entropy brings it.
    TooFarAhead,
}

/// Why a local write was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// No timestamp greater than both the clock and the key's held version
    /// is left: storing one that is not greater would be undone by merge.
    #[error("no version greater than the one held for the key is left")]
    VersionExhausted,
}

/// Default bound on how far ahead of our wall clock a remote version may
/// be: 5 minutes, the envelope's bound on a packet's time.
pub const DEFAULT_MAX_VERSION_AHEAD_MS: u64 = 5 * 60 * 1000;

/// At most one warning per this many ms about refused future versions.
const FUTURE_WARN_INTERVAL_MS: u64 = 10_000;

/// What `TTL`/`PTTL` report for a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// No live value.
    Missing,
    /// A live value without a deadline.
    Persistent,
    /// Milliseconds left.
    RemainingMs(u64),
}

/// Counters the store keeps for INFO and metrics.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Remote versions that were too far ahead to move our clock.
    pub drift_rejections: AtomicU64,
    /// Largest drift seen beyond the bound, in ms.
    pub max_drift_seen_ms: AtomicU64,
    /// Entries merged that replaced what we held.
    pub merges_applied: AtomicU64,
    /// Entries merged that we already had (duplicates, stale).
    pub merges_stale: AtomicU64,
    /// Remote or restored entries refused as stamped too far in the future.
    pub future_refused: AtomicU64,
    /// Wall ms of the last warning about them (the warning is rate-limited).
    future_warned_ms: AtomicU64,
}

/// Hashes a key in one xxh3 call per `write` (the streaming `Xxh3` state
/// showed in profiles for short keys). Fixed seed: iteration order is the
/// same in every run, which the simulator's determinism relies on.
#[derive(Clone, Copy, Debug, Default)]
struct KeyHasher(u64);

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

type KeyHash = std::hash::BuildHasherDefault<KeyHasher>;

// A subtree of the horizon is a whole number of shards.
const _: () = assert!(SHARD_COUNT.is_multiple_of(SUBTREES) && SHARD_COUNT >= SUBTREES);

/// Leaves of the digest tree per shard: a shard is a contiguous leaf range.
const LEAVES_PER_SHARD: usize = LEAF_COUNT / SHARD_COUNT;
// `visit_leaves` keeps a shard's requested leaves in a u64 mask.
const _: () = assert!(LEAVES_PER_SHARD <= 64);
// `children_digests`: a child's span (a power of the fanout) either divides
// a shard's width or is a multiple of it.
const _: () = assert!(LEAVES_PER_SHARD.is_power_of_two() && TREE_FANOUT.is_power_of_two());

// A parent of leaves lies within one shard (`children_digests` reads its
// leaves under one lock).
const _: () = assert!(TREE_FANOUT as usize <= LEAVES_PER_SHARD);

/// Where the nodes of `level` (1..`TREE_DEPTH`) start in
/// [`Store::node_digests`]: after every shallower level's nodes.
const fn node_offset(level: u8) -> usize {
    let mut offset = 0;
    let mut l = 1;
    while l < level {
        offset += TREE_FANOUT.pow(l as u32) as usize;
        l += 1;
    }
    offset
}

#[derive(Debug)]
struct Shard {
    map: HashMap<Bytes, Entry, KeyHash>,
    /// Counts over `map`, so DBSIZE and INFO do not walk it.
    tally: Tally,
    /// Digests of this shard's leaves, kept in step with every change.
    leaves: [u64; LEAVES_PER_SHARD],
    /// XOR of `leaves`: the upper tree levels combine shards, not leaves,
    /// so a sync round's first comparison reads 1,024 words, not 65,536.
    digest: u64,
    /// `digest` as last published (see [`Store::publish`]).
    published: u64,
    /// Dead entries in the order they became dead here, for the sweep to
    /// forget once the horizon has passed them (see [`DeadRecord`]).
    dead: VecDeque<DeadRecord>,
}

/// A dead entry (tombstone or swept expired value), noted when this store
/// came to hold it dead: the horizon says which peers matched us since,
/// so the time a peer's copy reached *us* is what counts, not when the
/// delete happened. A record whose key has since changed is stale and
/// skipped (the change noted a record of its own if it was dead too).
#[derive(Debug)]
struct DeadRecord {
    held_since_ms: u64,
    timestamp: Timestamp,
    key: Bytes,
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
struct Tally {
    /// Entries holding a value.
    values: usize,
    /// Of those, the ones with a deadline.
    expiring: usize,
    /// Sum of those deadlines, Unix ms; u128 so that no choice of
    /// deadlines (EXAT/PXAT accept any) can overflow it.
    deadlines_ms: u128,
}

impl Tally {
    /// Counts `entry` in.
    fn add(&mut self, entry: &Entry) {
        if entry.value.is_some() {
            self.values += 1;
            if let Some(deadline) = entry.expires_at_ms {
                self.expiring += 1;
                self.deadlines_ms += u128::from(deadline);
            }
        }
    }

    /// Counts `entry` out; it must have been counted in.
    fn sub(&mut self, entry: &Entry) {
        if entry.value.is_some() {
            self.values -= 1;
            if let Some(deadline) = entry.expires_at_ms {
                self.expiring -= 1;
                self.deadlines_ms -= u128::from(deadline);
            }
        }
    }

    /// The sum of two tallies.
    fn plus(self, other: Tally) -> Tally {
        Tally {
            values: self.values + other.values,
            expiring: self.expiring + other.expiring,
            deadlines_ms: self.deadlines_ms + other.deadlines_ms,
        }
    }
}

/// An entry to merge, owned or borrowed: [`Store::merge_from`] takes it
/// by reference and turns it into an owned pair only to store it.
trait MergeInput {
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
struct Slot {
    shard: usize,
    leaf: usize,
}

impl Slot {
    fn of(key: &[u8]) -> Slot {
        let leaf = leaf_of_hash(key_hash(key)) as usize;
        Slot { shard: leaf / LEAVES_PER_SHARD, leaf: leaf % LEAVES_PER_SHARD }
    }
}

/// Store-wide counts, kept in step under each shard's write lock.
#[derive(Debug, Default)]
struct Totals {
    /// Entries in all shards.
    entries: AtomicUsize,
    /// Their [`footprint`]s summed: `maxmemory` compares against it.
    bytes: AtomicUsize,
}

impl Totals {
    /// An entry of `removed` bytes replaced by one of `added`: one atomic
    /// step (none for a same-size overwrite), so no reader sees both.
    fn resize(&self, added: usize, removed: usize) {
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
    fn remove(&mut self, key: &[u8], slot: Slot, totals: &Totals) {
        if let Some(old) = self.map.remove(key) {
            totals.entries.fetch_sub(1, Ordering::Relaxed);
            totals.bytes.fetch_sub(footprint(key, &old), Ordering::Relaxed);
            self.tally.sub(&old);
            self.flip(slot, entry_hash(key, &old.stamp()));
        }
    }

    /// Adds or removes one entry hash from its leaf's and the shard's digest.
    fn flip(&mut self, slot: Slot, hash: u64) {
        self.leaves[slot.leaf] ^= hash;
        self.digest ^= hash;
    }

    /// Puts `entry`, keeping the tally, digest and store-wide `totals` in step.
    fn put(&mut self, key: Bytes, entry: Entry, slot: Slot, totals: &Totals) {
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
    fn note_if_dead(&mut self, key: &Bytes, entry: &Entry, now_ms: u64) {
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
    fn drop_value(&mut self, key: &[u8], totals: &Totals) -> bool {
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

/// The sharded store shared by connection tasks and the node core.
#[derive(Debug)]
pub struct Store {
    shards: Box<[RwLock<Shard>]>,
    /// Each shard's `digest`, published after every change under the
    /// shard's write lock: the upper levels of the digest tree (a sync
    /// round's first comparison) read these 8 KiB in a row instead of
    /// taking 1,024 locks on 1,024 separate allocations.
    shard_digests: Box<[AtomicU64]>,
    /// Digests of some inner nodes of the tree, level by level (see
    /// [`node_offset`]), kept in step as each shard's change is published:
    /// level 1, which a sync round's first comparison reads (16 words
    /// instead of a fold of all 1,024 shard digests), and the levels whose
    /// nodes lie within a shard (a word per child instead of a shard lock
    /// and a fold). Levels in between are folded from `shard_digests`.
    node_digests: Box<[AtomicU64]>,
    /// Entries in all shards, kept in step under each shard's write lock:
    /// every sync reply reports it, and summing 1,024 shards for it was a
    /// tenth of a large simulation.
    totals: Totals,
    hlc: Hlc,
    writer: NodeId,
    stats: StoreStats,
    sabotage: Sabotage,
    tombstone_ttl_ms: u64,
    /// Per subtree of the digest tree, the wall ms before which every
    /// dead entry held here is held by every member that may come back
    /// (published by the node from its [`Horizon`](super::horizon::Horizon)).
    /// A store on its own is the whole mesh: `u64::MAX`.
    horizons: Box<[AtomicU64]>,
    /// How far ahead of the wall clock a remote version may be.
    max_version_ahead_ms: u64,
    /// Where changes go to be made durable; `None` keeps the store in memory only.
    change_log: Option<Arc<dyn ChangeLog>>,
    /// Whether clients may be served yet, as the node publishes it (see
    /// [`Loading`](super::loading::Loading)): a [`CatchUpState`] as a byte.
    catch_up: AtomicU8,
}

/// The keyspace as INFO's `db0` line shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keyspace {
    /// Keys holding a value, as [`Store::value_count`].
    pub keys: usize,
    /// Of those, the keys with a deadline.
    pub expires: usize,
    /// Their average time left, ms (0 when there are none).
    pub avg_ttl_ms: u64,
}

/// What one sweep step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    /// Expired values turned into tombstones.
    pub expired: u64,
    /// Dead entries past the tombstone TTL dropped.
    pub forgotten: u64,
}

/// What [`Store::visit_leaves`] covered.
#[derive(Debug, Default)]
struct Visited {
    /// Leaves visited entirely, ascending.
    whole: Vec<u32>,
    /// The one leaf visited only in part, cut at the limit.
    partial: Option<u32>,
}

/// Bytes one `(key hash, version)` summary takes on the wire, at most.
const VERSION_SUMMARY_BYTES: usize = 64;

/// Default tombstone TTL: 24 hours, the least time a dead entry is kept.
pub const DEFAULT_TOMBSTONE_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// Shards in a store. A power of two; SCAN walks one shard per cursor step.
pub const SHARD_COUNT: usize = 1024;

impl Store {
    /// An empty store whose local writes are stamped with `writer`.
    pub fn new(writer: NodeId, max_clock_drift_ms: u64) -> Self {
        let shards = (0..SHARD_COUNT).map(|_| RwLock::new(Shard::default())).collect();
        Store {
            shards,
            shard_digests: (0..SHARD_COUNT).map(|_| AtomicU64::new(0)).collect(),
            node_digests: (0..node_offset(TREE_DEPTH)).map(|_| AtomicU64::new(0)).collect(),
            totals: Totals::default(),
            hlc: Hlc::new(max_clock_drift_ms),
            writer,
            stats: StoreStats::default(),
            sabotage: Sabotage::default(),
            tombstone_ttl_ms: DEFAULT_TOMBSTONE_TTL_MS,
            horizons: (0..SUBTREES).map(|_| AtomicU64::new(u64::MAX)).collect(),
            max_version_ahead_ms: DEFAULT_MAX_VERSION_AHEAD_MS,
            change_log: None,
            catch_up: AtomicU8::new(CatchUpState::Done as u8),
        }
    }

    /// A store that reports every change to `log` (see [`ChangeLog`]).
    pub fn with_change_log(mut self, log: Arc<dyn ChangeLog>) -> Self {
        self.change_log = Some(log);
        self
    }

    /// Reports a change; called with the key's shard locked.
    fn log(&self, change: Change<'_>) {
        if self.sabotage.no_change_log {
            return;
        }
        if let Some(log) = &self.change_log {
            log.record(change);
        }
    }

    /// A store that forgets tombstones `tombstone_ttl_ms` after their write.
    pub fn with_tombstone_ttl(mut self, tombstone_ttl_ms: u64) -> Self {
        self.tombstone_ttl_ms = tombstone_ttl_ms;
        self
    }

    /// When `entry` died (its delete, or its deadline), if it is dead at
    /// `now_ms`.
    fn dead_since(entry: &Entry, now_ms: u64) -> Option<u64> {
        let last_write = entry.last_stamped().physical_ms();
        match (&entry.value, entry.expires_at_ms) {
            // A swept expired value keeps its deadline: it died then. (A
            // deadline still ahead on a tombstone is one an EXPIRE set
            // while a DEL raced it: the key died with the DEL.)
            (None, Some(deadline)) if deadline <= now_ms => Some(deadline.max(last_write)),
            (None, _) => Some(last_write),
            (Some(_), Some(deadline)) if deadline <= now_ms => Some(deadline.max(last_write)),
            (Some(_), _) => None,
        }
    }

    /// Whether a dead entry offered for a key we hold nothing of is one we
    /// forgot: it died before the horizon of its subtree and longer than
    /// the tombstone TTL ago. Since it died, every member that may come
    /// back matched us in that subtree — the deleter among them, which
    /// held it — so we held it then and forgot it since. It is taken back
    /// as held since it died, so the next sweep forgets it again: refusing
    /// it would leave the peer offering it stuck, as the peer learns that
    /// we hold it only by matching us while we do, and we would never
    /// match it there again.
    fn was_forgotten(&self, entry: &Entry, subtree: usize, now_ms: u64) -> bool {
        Self::dead_since(entry, now_ms).is_some_and(|died| {
            died.saturating_add(self.tombstone_ttl_ms) < now_ms
                && (self.sabotage.ttl_only_gc || died < self.horizons[subtree].load(Ordering::Relaxed))
        })
    }

    /// Takes the node's horizon (see [`Store::horizons`]).
    pub fn publish_horizons(&self, horizons: &[u64; SUBTREES]) {
        for (published, &h) in self.horizons.iter().zip(horizons.iter()) {
            published.store(h, Ordering::Relaxed);
        }
    }

    /// Takes the node's catch-up state, which decides what clients get.
    pub fn publish_catch_up(&self, state: CatchUpState) {
        self.catch_up.store(state as u8, Ordering::Release);
    }

    /// Whether the node is still catching up, and what clients get meanwhile.
    pub fn catch_up(&self) -> CatchUpState {
        match self.catch_up.load(Ordering::Acquire) {
            s if s == CatchUpState::Refusing as u8 => CatchUpState::Refusing,
            s if s == CatchUpState::Serving as u8 => CatchUpState::Serving,
            _ => CatchUpState::Done,
        }
    }

    /// A store that refuses remote versions more than `ms` ahead of its
    /// wall clock (see [`MergeOutcome::TooFarAhead`]).
    pub fn with_max_version_ahead(mut self, ms: u64) -> Self {
        self.max_version_ahead_ms = ms;
        self
    }

    /// Whether `entry` is stamped too far ahead of `now_ms` to take; if so
    /// it is counted, and logged at most every [`FUTURE_WARN_INTERVAL_MS`].
    fn too_far_ahead(&self, key: &[u8], entry: &Entry, now_ms: u64) -> bool {
        let ahead_ms = entry.last_stamped().physical_ms().saturating_sub(now_ms);
        if ahead_ms <= self.max_version_ahead_ms {
            return false;
        }
        let refused = self.stats.future_refused.fetch_add(1, Ordering::Relaxed) + 1;
        let last = self.stats.future_warned_ms.load(Ordering::Relaxed);
        if (last == 0 || now_ms.saturating_sub(last) >= FUTURE_WARN_INTERVAL_MS)
            && self
                .stats
                .future_warned_ms
                .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                ahead_ms,
                version = %entry.version,
                key = %String::from_utf8_lossy(&key[..key.len().min(64)]),
                refused_so_far = refused,
                "entry stamped beyond max_version_ahead_ms refused (a peer's clock far ahead, or a bad peer)"
            );
        } else {
            tracing::debug!(ahead_ms, version = %entry.version, "entry stamped beyond max_version_ahead_ms refused");
        }
        true
    }

    /// Whether `node_digests` keeps the nodes of `level` (1..`TREE_DEPTH`).
    const fn kept(level: u8) -> bool {
        level == 1 || leaves_under(level) as usize <= LEAVES_PER_SHARD
    }

    /// Publishes shard `index`'s digests after a change to `leaf` (a slot
    /// in the shard; `None`: any of its leaves), with the shard's write lock
    /// held: its digest, and the kept nodes above it by the change in its
    /// digest (atomically: other shards below them change concurrently) and
    /// within it (only this shard's lock holders write those).
    fn publish(&self, index: usize, shard: &mut Shard, leaf: Option<usize>) {
        let change = shard.digest ^ std::mem::replace(&mut shard.published, shard.digest);
        self.shard_digests[index].store(shard.digest, Ordering::Relaxed);
        for level in (1..TREE_DEPTH).filter(|&level| Self::kept(level)) {
            let span = leaves_under(level) as usize;
            let nodes = &self.node_digests[node_offset(level)..];
            if span > LEAVES_PER_SHARD {
                if change != 0 {
                    nodes[index * LEAVES_PER_SHARD / span].fetch_xor(change, Ordering::Relaxed);
                }
                continue;
            }
            let base = index * LEAVES_PER_SHARD / span;
            match leaf {
                // One leaf changed, and with it each node above it by the
                // same change.
                Some(slot) => {
                    let node = &nodes[base + slot / span];
                    node.store(node.load(Ordering::Relaxed) ^ change, Ordering::Relaxed);
                }
                None => {
                    for (i, range) in shard.leaves.chunks_exact(span).enumerate() {
                        nodes[base + i].store(range.iter().fold(0, |d, leaf| d ^ leaf), Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Digests of the children of `node` at `level` of the digest tree,
    /// from kept node digests, the shards' digests or one shard's leaf
    /// array (no copy of the tree).
    pub fn children_digests(&self, level: u8, node: u32) -> Vec<u64> {
        let fanout = TREE_FANOUT as usize;
        let first = node as usize * fanout;
        let child_level = level + 1;
        if child_level < TREE_DEPTH && Self::kept(child_level) {
            let count = TREE_FANOUT.pow(u32::from(child_level)) as usize;
            let level_digests = &self.node_digests[node_offset(child_level)..][..count];
            return (first..first + fanout)
                .map(|child| level_digests.get(child).map_or(0, |digest| digest.load(Ordering::Relaxed)))
                .collect();
        }
        let span = leaves_under(child_level) as usize;
        if span > LEAVES_PER_SHARD {
            // Spans are powers of the fanout, so a child wider than a shard
            // starts and ends on shard boundaries.
            return (first..first + fanout)
                .map(|child| {
                    let start = (child * span).min(LEAF_COUNT) / LEAVES_PER_SHARD;
                    let end = (child * span + span).min(LEAF_COUNT) / LEAVES_PER_SHARD;
                    self.shard_digests[start..end]
                        .iter()
                        .fold(0, |digest, shard| digest ^ shard.load(Ordering::Relaxed))
                })
                .collect();
        }
        // The leaf level (and, as a leaf level, any deeper one).
        if first < LEAF_COUNT {
            let shard = self.shards[first / LEAVES_PER_SHARD].read();
            return shard.leaves[first % LEAVES_PER_SHARD..][..fanout].to_vec();
        }
        vec![0; fanout]
    }

    /// Digests of every leaf of the digest tree, shard by shard.
    pub fn leaf_digests(&self) -> Vec<u64> {
        let mut leaves = Vec::with_capacity(LEAF_COUNT);
        for shard in self.shards.iter() {
            leaves.extend_from_slice(&shard.read().leaves);
        }
        leaves
    }

    /// Visits the entries of `leaves` (ascending), whole leaves at a time,
    /// until `cost` of the visited entries reaches about `budget`, never
    /// past `limit` (the frame limit: a message over it would be dropped by
    /// the receiver and rebuilt every round). The first leaf is always
    /// visited, so a sync makes progress; if it alone costs more than
    /// `limit`, only the prefix of its entries that fits is visited (at
    /// least one entry, which then travels alone) and it is returned as
    /// `partial`, not among the whole leaves.
    ///
    /// Each shard holding requested leaves is scanned once, however many of
    /// its leaves are requested.
    fn visit_leaves(
        &self,
        leaves: &[u32],
        budget: usize,
        limit: usize,
        cost: impl Fn(&Bytes, &Entry) -> usize,
        mut visit: impl FnMut(&Bytes, &Entry),
    ) -> Visited {
        let mut visited = Visited::default();
        let mut spent = 0;
        let mut rest = leaves.iter().map(|l| *l as usize).filter(|l| *l < LEAF_COUNT).peekable();
        'shards: while let Some(&first) = rest.peek() {
            if spent >= budget && !visited.whole.is_empty() {
                break;
            }
            let shard_index = first / LEAVES_PER_SHARD;
            let mut wanted = 0u64;
            while let Some(&leaf) = rest.peek() {
                if leaf / LEAVES_PER_SHARD != shard_index {
                    break;
                }
                wanted |= 1 << (leaf % LEAVES_PER_SHARD);
                rest.next();
            }
            let shard = self.shards[shard_index].read();
            let mut by_leaf: Vec<Vec<(&Bytes, &Entry)>> = vec![Vec::new(); LEAVES_PER_SHARD];
            for (key, entry) in shard.map.iter() {
                let slot = Slot::of(key).leaf;
                if wanted & (1 << slot) != 0 {
                    by_leaf[slot].push((key, entry));
                }
            }
            for (slot, leaf_entries) in by_leaf.into_iter().enumerate() {
                if wanted & (1 << slot) == 0 {
                    continue;
                }
                if spent >= budget && !visited.whole.is_empty() {
                    break 'shards;
                }
                let leaf = (shard_index * LEAVES_PER_SHARD + slot) as u32;
                let leaf_cost: usize = leaf_entries.iter().map(|(k, e)| cost(k, e)).sum();
                if spent + leaf_cost > limit {
                    if !visited.whole.is_empty() {
                        break 'shards;
                    }
                    // The first leaf alone is over the limit: cut inside it.
                    for (key, entry) in leaf_entries {
                        let c = cost(key, entry);
                        if spent > 0 && spent + c > limit {
                            break;
                        }
                        spent += c;
                        visit(key, entry);
                    }
                    visited.partial = Some(leaf);
                    break 'shards;
                }
                for (key, entry) in leaf_entries {
                    visit(key, entry);
                }
                spent += leaf_cost;
                visited.whole.push(leaf);
            }
        }
        visited
    }

    /// `(key hash, version)` of every entry in `leaves` (ascending), whole
    /// leaves at a time until about `budget_bytes` of summaries and never
    /// past `limit_bytes`: what one side of a sync sends so the other can
    /// tell which entries differ without shipping the entries themselves.
    /// A first leaf whose summaries alone pass the limit is returned among
    /// the covered leaves with only the summaries that fit (the receiver
    /// then sends us entries we may hold already, which merge as no-ops).
    pub fn leaf_versions(
        &self,
        leaves: &[u32],
        budget_bytes: usize,
        limit_bytes: usize,
    ) -> (Vec<u32>, Vec<(u64, EntryStamp)>) {
        let mut versions = Vec::new();
        let visited = self.visit_leaves(
            leaves,
            budget_bytes,
            limit_bytes,
            |_, _| VERSION_SUMMARY_BYTES,
            |k, e| {
                versions.push((key_hash(k), e.stamp()));
            },
        );
        let mut covered = visited.whole;
        covered.extend(visited.partial);
        (covered, versions)
    }

    /// Entries in `leaves` whose key hash is in `hashes`, whole leaves at a
    /// time until about `budget_bytes`, never past `limit_bytes` (an entry
    /// bigger than that travels alone). Returns how many of `leaves` (a
    /// prefix) were covered entirely: a leaf cut inside is the first of
    /// the rest, so the next chunk resumes in it.
    pub fn entries_by_hash(
        &self,
        leaves: &[u32],
        hashes: &std::collections::BTreeSet<u64>,
        budget_bytes: usize,
        limit_bytes: usize,
    ) -> (usize, Vec<(Bytes, Entry)>) {
        let mut entries = Vec::new();
        let cost = |k: &Bytes, e: &Entry| if hashes.contains(&key_hash(k)) { entry_size_bound(k, e) } else { 0 };
        let visited = self.visit_leaves(leaves, budget_bytes, limit_bytes, cost, |k, e| {
            if hashes.contains(&key_hash(k)) {
                entries.push((k.clone(), e.clone()));
            }
        });
        (visited.whole.len(), entries)
    }

    /// One step of the background sweep over `shards` (a range of shard
    /// indexes): expired values become tombstones of the same version (the
    /// value's memory is freed, digests do not change) and dead entries past
    /// the tombstone TTL are dropped. Each shard is locked briefly on its own.
    pub fn sweep(&self, shards: std::ops::Range<usize>, now_ms: u64) -> SweepOutcome {
        let mut outcome = SweepOutcome::default();
        for index in shards.start.min(SHARD_COUNT)..shards.end.min(SHARD_COUNT) {
            let mut shard = self.shards[index].write();
            outcome.forgotten += self.forget_dead(index, &mut shard, now_ms);
            self.publish(index, &mut shard, None);
            let expired: Vec<Bytes> = shard
                .map
                .iter()
                .filter(|(_, entry)| entry.value.is_some() && entry.live_value(now_ms).is_none())
                .map(|(key, _)| key.clone())
                .collect();
            for key in expired {
                if shard.drop_value(&key, &self.totals) {
                    outcome.expired += 1;
                    if let Some(entry) = shard.map.get(&key) {
                        self.log(Change::Put { key: &key, entry });
                        let timestamp = entry.version.timestamp;
                        shard.dead.push_back(DeadRecord { held_since_ms: now_ms, timestamp, key });
                    }
                }
            }
        }
        outcome
    }

    /// Forgets the dead entries of shard `index` that have been held since
    /// before its subtree's horizon and for longer than the tombstone TTL,
    /// oldest first; returns how many.
    fn forget_dead(&self, index: usize, shard: &mut Shard, now_ms: u64) -> u64 {
        let horizon = if self.sabotage.ttl_only_gc {
            u64::MAX
        } else {
            self.horizons[index / (SHARD_COUNT / SUBTREES)].load(Ordering::Relaxed)
        };
        let ttl = self.tombstone_ttl_ms;
        let mut forgotten = 0;
        while let Some(front) = shard.dead.front() {
            if front.held_since_ms >= horizon || front.held_since_ms.saturating_add(ttl) >= now_ms {
                break;
            }
            let record = shard.dead.pop_front().expect("front exists");
            let died_long_ago = shard.map.get(&record.key).is_some_and(|entry| {
                entry.version.timestamp == record.timestamp
                    && Self::dead_since(entry, now_ms).is_some_and(|died| died.saturating_add(ttl) < now_ms)
            });
            if died_long_ago {
                shard.remove(&record.key, Slot::of(&record.key), &self.totals);
                self.log(Change::Remove { key: &record.key });
                forgotten += 1;
            }
        }
        forgotten
    }

    /// Drops every entry: for a node that was away longer than the
    /// tombstone TTL, whose state may hold keys the mesh deleted and forgot.
    pub fn clear(&self) {
        // Every shard locked at once (in index order, as no other path takes
        // two), so that no write lands between the logged clear and the
        // clearing of its shard.
        let mut locked: Vec<_> = self.shards.iter().map(|shard| shard.write()).collect();
        self.log(Change::Clear);
        for (shard, digest) in locked.iter_mut().zip(self.shard_digests.iter()) {
            **shard = Shard::default();
            digest.store(0, Ordering::Relaxed);
        }
        for digest in self.node_digests.iter() {
            digest.store(0, Ordering::Relaxed);
        }
        self.totals.entries.store(0, Ordering::Relaxed);
        self.totals.bytes.store(0, Ordering::Relaxed);
    }

    /// Drops every entry whose version is older than `before_ms` (wall ms),
    /// dead or alive: what a node that was gone for good holds of a time
    /// the mesh may have deleted and forgotten meanwhile. Returns how many.
    pub fn drop_older_than(&self, before_ms: u64) -> usize {
        let mut dropped = 0;
        for (index, lock) in self.shards.iter().enumerate() {
            let mut shard = lock.write();
            let old: Vec<Bytes> = shard
                .map
                .iter()
                .filter(|(_, e)| e.last_stamped().physical_ms() < before_ms)
                .map(|(k, _)| k.clone())
                .collect();
            for key in &old {
                shard.remove(key, Slot::of(key), &self.totals);
                self.log(Change::Remove { key });
            }
            dropped += old.len();
            self.publish(index, &mut shard, None);
        }
        dropped
    }

    /// Takes `entry` for `key` from durable storage at start-up: kept if its
    /// version is greater than what the store holds, and not reported to the
    /// change log (storage already has it). Moves the clock past the
    /// version, within the drift bound, as a merge would. An entry stamped
    /// beyond `max_version_ahead_ms` is refused as a merge refuses it
    /// (storage keeps it; a later start, with the clock past it, takes it).
    pub fn restore(&self, key: Bytes, entry: Entry, now_ms: u64) {
        if self.too_far_ahead(&key, &entry, now_ms) {
            return;
        }
        let _ = self.hlc.observe(entry.last_stamped(), now_ms);
        let slot = Slot::of(&key);
        let mut shard = self.shards[slot.shard].write();
        let entry = match shard.map.get(key.as_ref()) {
            None => Some(entry),
            Some(held) => held.merged_with(&entry, now_ms, false),
        };
        if let Some(entry) = entry {
            shard.note_if_dead(&key, &entry, now_ms);
            shard.put(key, entry, slot, &self.totals);
            self.publish(slot.shard, &mut shard, Some(slot.leaf));
        }
    }

    /// A store that breaks the rules `sabotage` names (simulator only).
    pub fn with_sabotage(mut self, sabotage: Sabotage) -> Self {
        self.sabotage = sabotage;
        self
    }

    /// The id local writes carry.
    pub fn writer(&self) -> NodeId {
        self.writer
    }

    /// The clock that stamps local writes.
    pub fn hlc(&self) -> &Hlc {
        &self.hlc
    }

    /// Counters for INFO and metrics.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    fn shard_of(&self, key: &[u8]) -> &RwLock<Shard> {
        &self.shards[Slot::of(key).shard]
    }

    /// The live value of `key` at `now_ms`.
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<Bytes> {
        let shard = self.shard_of(key).read();
        shard.map.get(key).and_then(|e| e.live_value(now_ms)).cloned()
    }

    /// The raw entry for `key`, tombstones and expired entries included.
    pub fn entry(&self, key: &[u8]) -> Option<Entry> {
        self.shard_of(key).read().map.get(key).cloned()
    }

    /// Reads the key's live state, lets `decide` choose a write, and applies
    /// it with a fresh version, all under the shard's lock so that
    /// read-modify-write commands (NX, XX, EXPIRE) are atomic per key.
    ///
    /// The new version is greater than both the clock and the version held
    /// for the key, so a local write always replaces what this node shows,
    /// even if that came from a peer with a clock far ahead.
    ///
    /// Returns the entry written (to be disseminated), if any, and what
    /// `decide` returned; or, when no greater version is left
    /// ([`WriteError::VersionExhausted`]), nothing is written.
    pub fn update<R>(
        &self,
        key: &Bytes,
        now_ms: u64,
        decide: impl FnOnce(Option<LiveValue<'_>>) -> (Option<Write>, R),
    ) -> Result<(Option<Entry>, R), WriteError> {
        let slot = Slot::of(key);
        let mut shard = self.shards[slot.shard].write();
        let existing = shard.map.get(key.as_ref());
        let live = existing
            .and_then(|e| e.live_value(now_ms).map(|value| LiveValue { value, expires_at_ms: e.expires_at_ms }));
        let (write, result) = decide(live);
        let Some(write) = write else {
            return Ok((None, result));
        };
        // Only the live value's parts are kept by a one-part write.
        let held_live = existing.filter(|e| e.live_value(now_ms).is_some());
        let write = match (write, held_live) {
            (Write::Deadline { .. }, None) => return Ok((None, result)),
            (Write::Value { value }, None) => Write::Put { value, expires_at_ms: None },
            (write, _) => write,
        };
        let mut timestamp = self.hlc.tick(now_ms).ok_or(WriteError::VersionExhausted)?;
        if let Some(held) = existing
            && held.last_stamped() >= timestamp
        {
            timestamp = held.last_stamped().checked_next().ok_or(WriteError::VersionExhausted)?;
        }
        let version = Version { timestamp, writer: self.writer };
        let entry = match (write, held_live) {
            (Write::Put { value, expires_at_ms }, _) => {
                Entry { value: Some(value), version, expires_at_ms, deadline_set_at: timestamp }
            }
            (Write::Delete, _) => Entry { value: None, version, expires_at_ms: None, deadline_set_at: timestamp },
            (Write::Value { value }, Some(held)) => Entry { value: Some(value), version, ..held.clone() },
            (Write::Deadline { expires_at_ms }, Some(held)) => {
                Entry { expires_at_ms, deadline_set_at: timestamp, ..held.clone() }
            }
            (Write::Value { .. } | Write::Deadline { .. }, None) => unreachable!("turned into a Put or returned above"),
        };
        if self.sabotage.drop_tombstones_early && entry.value.is_none() {
            shard.remove(key, slot, &self.totals);
        } else {
            self.log(Change::Put { key, entry: &entry });
            shard.note_if_dead(key, &entry, now_ms);
            shard.put(key.clone(), entry.clone(), slot, &self.totals);
        }
        self.publish(slot.shard, &mut shard, Some(slot.leaf));
        Ok((Some(entry), result))
    }

    /// Merges an entry from a peer: keeps whichever version is greater.
    ///
    /// Commutative, associative and idempotent, so the order and number of
    /// deliveries never change the result.
    pub fn merge(&self, key: Bytes, entry: Entry, now_ms: u64) -> MergeOutcome {
        self.merge_from((key, entry), now_ms)
    }

    /// [`Store::merge`] of a borrowed entry, cloned only if it is kept: a
    /// pushed entry is usually one the store already has, and the caller
    /// keeps the fresh ones to pass on.
    pub fn merge_ref(&self, key: &Bytes, entry: &Entry, now_ms: u64) -> MergeOutcome {
        self.merge_from((key, entry), now_ms)
    }

    fn merge_from(&self, input: impl MergeInput, now_ms: u64) -> MergeOutcome {
        let entry = input.entry();
        if self.too_far_ahead(input.key(), entry, now_ms) {
            return MergeOutcome::TooFarAhead;
        }
        if let Err(DriftExceeded { ahead_ms }) = self.hlc.observe(entry.last_stamped(), now_ms) {
            self.stats.drift_rejections.fetch_add(1, Ordering::Relaxed);
            self.stats.max_drift_seen_ms.fetch_max(ahead_ms, Ordering::Relaxed);
            tracing::debug!(ahead_ms, version = %entry.version, "remote version beyond max clock drift; clock not moved");
        }
        let slot = Slot::of(input.key());
        let mut shard = self.shards[slot.shard].write();
        // `None`: nothing changes; `Some(None)`: the incoming entry as it
        // is; `Some(Some(merged))`: a mix of both parts.
        let held = shard.map.get(input.key().as_ref());
        // A dead entry we forgot, offered by a peer that still holds it: see
        // [`Store::was_forgotten`].
        let refound = held.is_none() && self.was_forgotten(entry, slot.shard / (SHARD_COUNT / SUBTREES), now_ms);
        if refound && self.sabotage.ttl_only_gc {
            self.stats.merges_stale.fetch_add(1, Ordering::Relaxed);
            return MergeOutcome::Stale;
        }
        let change = match held {
            None => Some(None),
            Some(held) => held
                .merged_with(entry, now_ms, self.sabotage.merge_keeps_smaller)
                .map(|merged| if merged == *entry { None } else { Some(merged) }),
        };
        if let Some(merged) = change {
            let tombstone = merged.as_ref().map_or(entry.value.is_none(), |m| m.value.is_none());
            if self.sabotage.drop_tombstones_early && tombstone {
                shard.remove(input.key(), slot, &self.totals);
            } else if let Some(merged) = merged {
                self.log(Change::Put { key: input.key(), entry: &merged });
                shard.note_if_dead(input.key(), &merged, now_ms);
                shard.put(input.key().clone(), merged, slot, &self.totals);
            } else {
                self.log(Change::Put { key: input.key(), entry });
                let (key, entry) = input.into_owned();
                let held_since = if refound { Self::dead_since(&entry, now_ms).unwrap_or(now_ms) } else { now_ms };
                shard.note_if_dead(&key, &entry, held_since);
                shard.put(key, entry, slot, &self.totals);
            }
            self.publish(slot.shard, &mut shard, Some(slot.leaf));
            self.stats.merges_applied.fetch_add(1, Ordering::Relaxed);
            MergeOutcome::Applied
        } else {
            self.stats.merges_stale.fetch_add(1, Ordering::Relaxed);
            MergeOutcome::Stale
        }
    }

    /// TTL of `key` at `now_ms`.
    pub fn ttl(&self, key: &[u8], now_ms: u64) -> Ttl {
        let shard = self.shard_of(key).read();
        match shard.map.get(key) {
            Some(e) if e.live_value(now_ms).is_some() => match e.expires_at_ms {
                Some(deadline) => Ttl::RemainingMs(deadline - now_ms),
                None => Ttl::Persistent,
            },
            _ => Ttl::Missing,
        }
    }

    /// Keys holding a value, expired ones included until they are swept —
    /// the same approximation Redis's DBSIZE makes.
    pub fn value_count(&self) -> usize {
        self.shards.iter().map(|s| s.read().tally.values).sum()
    }

    /// Keys, keys with a deadline and their average time left at `now_ms`,
    /// from the shards' tallies (one brief read lock per shard, no walk).
    ///
    /// Like [`Store::value_count`], values past their deadline count until
    /// the sweep reaches them (up to a full sweep pass); each such value
    /// also pulls the average down by what it is overdue, and the average
    /// is never below 0. Redis's `avg_ttl` is a sampled estimate; this one
    /// is exact for the keys counted.
    pub fn keyspace(&self, now_ms: u64) -> Keyspace {
        let tally = self.shards.iter().map(|s| s.read().tally).fold(Tally::default(), Tally::plus);
        let avg_ttl_ms = match tally.deadlines_ms.checked_div(tally.expiring as u128) {
            Some(mean_deadline_ms) => mean_deadline_ms.saturating_sub(u128::from(now_ms)),
            None => 0,
        };
        Keyspace {
            keys: tally.values,
            expires: tally.expiring,
            avg_ttl_ms: u64::try_from(avg_ttl_ms).unwrap_or(u64::MAX),
        }
    }

    /// What the entries held are counted as using, bytes (the sum of
    /// their [`footprint`]s): one atomic read, cheap enough for every write.
    pub fn used_bytes(&self) -> usize {
        self.totals.bytes.load(Ordering::Relaxed)
    }

    /// Entries of any kind, tombstones included.
    pub fn entry_count(&self) -> usize {
        self.totals.entries.load(Ordering::Relaxed)
    }

    /// One step of a SCAN: live keys accepted by `filter`, from shard
    /// `cursor` on, whole shards at a time until at least `count` keys are
    /// gathered. Returns the next cursor, 0 when the walk is complete.
    ///
    /// Every key present for the whole walk is returned exactly once, since
    /// a shard is read entirely under one lock.
    pub fn scan(&self, cursor: u64, count: usize, now_ms: u64, filter: impl Fn(&[u8]) -> bool) -> (u64, Vec<Bytes>) {
        let mut keys = Vec::new();
        let mut index = usize::try_from(cursor).unwrap_or(usize::MAX);
        while index < self.shards.len() {
            let shard = self.shards[index].read();
            keys.extend(
                shard.map.iter().filter(|(k, e)| e.live_value(now_ms).is_some() && filter(k)).map(|(k, _)| k.clone()),
            );
            index += 1;
            if keys.len() >= count {
                break;
            }
        }
        let next = if index >= self.shards.len() { 0 } else { index as u64 };
        (next, keys)
    }

    /// Calls `visit` for every entry, tombstones included, shard by shard.
    pub fn for_each_entry(&self, mut visit: impl FnMut(&Bytes, &Entry)) {
        for shard in self.shards.iter() {
            for (k, e) in shard.read().map.iter() {
                visit(k, e);
            }
        }
    }

    /// The version the store holds for `key`, for tests and checkers.
    pub fn version(&self, key: &[u8]) -> Option<Version> {
        self.shard_of(key).read().map.get(key).map(|e| e.version)
    }

    /// The greatest timestamp this node has issued or accepted.
    pub fn clock_reading(&self) -> Timestamp {
        self.hlc.last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::changes::ReplayedLog;
    use proptest::prelude::*;

    fn node(n: u8) -> NodeId {
        NodeId::from_random_bytes([n; 16])
    }

    fn put(value: &'static str) -> Option<Write> {
        Some(Write::Put { value: Bytes::from_static(value.as_bytes()), expires_at_ms: None })
    }

    /// The sum of every held entry's footprint, walked.
    fn walked_bytes(store: &Store) -> usize {
        let mut bytes = 0;
        store.for_each_entry(|key, entry| bytes += footprint(key, entry));
        bytes
    }

    #[test]
    fn used_bytes_follows_every_change() {
        let (store, peer) = (Store::new(node(1), 500), Store::new(node(2), 500));
        assert_eq!(store.used_bytes(), 0);
        let (a, b) = (Bytes::from_static(b"a"), Bytes::from_static(b"bb"));
        store.update(&a, 1_000, |_| (put("12345"), ())).unwrap();
        assert_eq!(store.used_bytes(), 1 + 5 + ENTRY_OVERHEAD_BYTES);
        store.update(&a, 1_001, |_| (put("1"), ())).unwrap();
        assert_eq!(store.used_bytes(), 1 + 1 + ENTRY_OVERHEAD_BYTES, "an overwrite counts the new value only");
        let (from_peer, ()) = peer.update(&b, 1_000, |_| (put_until("xyz", 2_000), ())).unwrap();
        store.merge(b.clone(), from_peer.unwrap(), 1_000);
        assert_eq!(store.used_bytes(), walked_bytes(&store));
        store.update(&a, 1_002, |_| (Some(Write::Delete), ())).unwrap();
        assert_eq!(
            store.used_bytes(),
            1 + ENTRY_OVERHEAD_BYTES + 2 + 3 + ENTRY_OVERHEAD_BYTES,
            "a tombstone keeps its key"
        );
        assert_eq!(store.sweep(0..SHARD_COUNT, 2_500).expired, 1);
        assert_eq!(store.used_bytes(), walked_bytes(&store), "a swept value no longer counts");
        assert_eq!(store.used_bytes(), 1 + 2 + 2 * ENTRY_OVERHEAD_BYTES);
        store.clear();
        assert_eq!(store.used_bytes(), 0);
    }

    #[test]
    fn local_write_beats_a_held_version_from_a_clock_far_ahead() {
        let store = Store::new(node(1), 500);
        let key = Bytes::from_static(b"k");
        // Within max_version_ahead_ms (5 min) but far beyond the drift bound.
        let future = Version { timestamp: Timestamp::from_physical_ms(200_000), writer: node(2) };
        let remote = Entry {
            value: Some(Bytes::from_static(b"remote")),
            version: future,
            expires_at_ms: None,
            deadline_set_at: future.timestamp,
        };
        assert_eq!(store.merge(key.clone(), remote, 1_000), MergeOutcome::Applied);
        assert_eq!(store.stats().drift_rejections.load(Ordering::Relaxed), 1);
        let (written, ()) = store.update(&key, 1_000, |_| (put("local"), ())).unwrap();
        assert!(written.unwrap().version > future);
        assert_eq!(store.get(b"k", 1_000).unwrap(), "local");
    }

    #[test]
    fn expire_racing_set_on_another_node_keeps_the_set_value_on_both() {
        let (a, b) = (Store::new(node(1), 500), Store::new(node(2), 500));
        let key = Bytes::from_static(b"k");
        let (v1, ()) = a.update(&key, 1_000, |_| (put("v1"), ())).unwrap();
        b.merge(key.clone(), v1.unwrap(), 1_000);
        // Concurrently: SET v2 on a, EXPIRE (later by the clock) on b.
        let (set, ()) = a.update(&key, 1_001, |_| (put("v2"), ())).unwrap();
        let expire = Some(Write::Deadline { expires_at_ms: Some(60_000) });
        let (expired, ()) = b.update(&key, 1_002, |_| (expire, ())).unwrap();
        let (set, expired) = (set.unwrap(), expired.unwrap());
        assert_eq!(expired.value.as_deref(), Some(&b"v1"[..]), "b wrote only the deadline of what it held");
        assert_eq!(a.merge(key.clone(), expired, 1_003), MergeOutcome::Applied);
        assert_eq!(b.merge(key.clone(), set, 1_003), MergeOutcome::Applied);
        for store in [&a, &b] {
            assert_eq!(store.get(b"k", 1_003).unwrap(), "v2");
            assert_eq!(store.ttl(b"k", 1_003), Ttl::RemainingMs(58_997), "the later deadline");
        }
        assert_eq!(a.entry(b"k"), b.entry(b"k"));
        assert_eq!(a.leaf_digests(), b.leaf_digests());

        // PERSIST and SET KEEPTTL write one part each, too.
        let persist = Some(Write::Deadline { expires_at_ms: None });
        let (persisted, ()) = a.update(&key, 1_004, |_| (persist, ())).unwrap();
        let keep_ttl = Some(Write::Value { value: Bytes::from_static(b"v3") });
        let (kept, ()) = b.update(&key, 1_005, |_| (keep_ttl, ())).unwrap();
        assert_eq!(kept.as_ref().unwrap().expires_at_ms, Some(60_000), "KEEPTTL kept b's deadline");
        a.merge(key.clone(), kept.unwrap(), 1_006);
        b.merge(key.clone(), persisted.unwrap(), 1_006);
        for store in [&a, &b] {
            assert_eq!(store.get(b"k", 1_006).unwrap(), "v3");
            assert_eq!(store.ttl(b"k", 1_006), Ttl::Persistent);
        }
        assert_eq!(a.leaf_digests(), b.leaf_digests());
        // A one-part write on a missing key: EXPIRE writes nothing, KEEPTTL a plain SET.
        let missing = Bytes::from_static(b"missing");
        let (none, ()) =
            a.update(&missing, 1_007, |_| (Some(Write::Deadline { expires_at_ms: Some(9_000) }), ())).unwrap();
        assert!(none.is_none());
        let (fresh, ()) = a.update(&missing, 1_007, |_| (Some(Write::Value { value: missing.clone() }), ())).unwrap();
        let fresh = fresh.unwrap();
        assert_eq!((fresh.expires_at_ms, fresh.deadline_set_at), (None, fresh.version.timestamp));
    }

    #[test]
    fn a_swept_copy_takes_the_value_back_from_a_persist_that_raced_the_expiry() {
        let (a, b) = (Store::new(node(1), 500), Store::new(node(2), 500));
        let key = Bytes::from_static(b"k");
        let (v, ()) = a.update(&key, 1_000, |_| (put_until("v", 2_000), ())).unwrap();
        b.merge(key.clone(), v.unwrap(), 1_000);
        // b persists the key just before the deadline; a's clock passes it first and sweeps.
        let (persisted, ()) = b.update(&key, 1_999, |_| (Some(Write::Deadline { expires_at_ms: None }), ())).unwrap();
        assert_eq!(a.sweep(0..SHARD_COUNT, 2_500).expired, 1);
        let digests = a.leaf_digests();
        assert_eq!(a.merge(key.clone(), persisted.unwrap(), 2_500), MergeOutcome::Applied);
        assert_eq!(a.get(b"k", 2_500).unwrap(), "v");
        assert_eq!(a.entry(b"k"), b.entry(b"k"));
        assert_ne!(a.leaf_digests(), digests);
        // The swept copy offered back changes nothing: the value stays.
        let mut swept = a.entry(b"k").unwrap();
        swept.value = None;
        assert_eq!(b.merge(key.clone(), swept, 2_500), MergeOutcome::Stale);
    }

    #[test]
    fn stale_merge_is_ignored() {
        let store = Store::new(node(1), 500);
        let key = Bytes::from_static(b"k");
        let (newer, ()) = store.update(&key, 2_000, |_| (put("new"), ())).unwrap();
        let old = Entry {
            value: Some(Bytes::from_static(b"old")),
            version: Version { timestamp: Timestamp::from_physical_ms(1_000), writer: node(9) },
            expires_at_ms: None,
            deadline_set_at: Timestamp::from_physical_ms(1_000),
        };
        assert_eq!(store.merge(key.clone(), old, 2_000), MergeOutcome::Stale);
        assert_eq!(store.entry(b"k"), newer);
    }

    #[test]
    fn expired_and_deleted_keys_read_as_missing() {
        let store = Store::new(node(1), 500);
        let a = Bytes::from_static(b"a");
        let b = Bytes::from_static(b"b");
        store.update(&a, 1_000, |_| (Some(Write::Put { value: a.clone(), expires_at_ms: Some(1_500) }), ())).unwrap();
        store.update(&b, 1_000, |_| (put("v"), ())).unwrap();
        store.update(&b, 1_001, |_| (Some(Write::Delete), ())).unwrap();
        assert_eq!(store.get(b"a", 1_499).unwrap(), "a");
        assert_eq!(store.ttl(b"a", 1_400), Ttl::RemainingMs(100));
        assert_eq!(store.get(b"a", 1_500), None);
        assert_eq!(store.ttl(b"a", 1_500), Ttl::Missing);
        assert_eq!(store.get(b"b", 1_001), None);
        assert_eq!(store.value_count(), 1);
        assert_eq!(store.entry_count(), 2);
    }

    #[test]
    fn scan_returns_every_live_key_once() {
        let store = Store::new(node(1), 500);
        for i in 0..5_000u32 {
            let key = Bytes::from(format!("key:{i}"));
            store.update(&key, 1, |_| (put("v"), ())).unwrap();
        }
        let mut seen = Vec::new();
        let mut cursor = 0;
        loop {
            let (next, keys) = store.scan(cursor, 100, 1, |_| true);
            seen.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 5_000);
    }

    /// Every node's children, at every level, against the leaf array.
    fn assert_tree_matches_leaves(store: &Store) {
        let leaves = store.leaf_digests();
        for level in 0..TREE_DEPTH {
            for node in (0..TREE_FANOUT.pow(u32::from(level))).chain([TREE_FANOUT.pow(u32::from(level)), 1 << 24]) {
                assert_eq!(
                    store.children_digests(level, node),
                    crate::core::digest::children_digests(&leaves, level, node),
                    "level {level} node {node}"
                );
            }
        }
    }

    #[test]
    fn kept_inner_digests_follow_writes_sweeps_and_clears() {
        let store = Store::new(node(1), 500).with_tombstone_ttl(10);
        let peer = Store::new(node(2), 500);
        for i in 0..3_000u32 {
            let key = Bytes::from(format!("k{i}"));
            store.update(&key, 1_000, |_| (put("v"), ())).unwrap();
            if i % 3 == 0 {
                let (entry, ()) = peer.update(&key, 1_001 + u64::from(i % 7), |_| (put("w"), ())).unwrap();
                store.merge(key.clone(), entry.unwrap(), 1_001);
            }
            if i % 5 == 0 {
                store.update(&key, 1_002, |_| (Some(Write::Delete), ())).unwrap();
            }
        }
        assert_tree_matches_leaves(&store);
        // Forgetting old tombstones changes many leaves of each shard at once.
        let swept = store.sweep(0..SHARD_COUNT, 5_000);
        assert!(swept.forgotten > 0);
        assert_tree_matches_leaves(&store);
        store.clear();
        assert_tree_matches_leaves(&store);
        assert!(store.children_digests(0, 0).iter().all(|d| *d == 0));
    }

    #[test]
    fn equal_contents_give_equal_digests_whatever_the_order() {
        let a = Store::new(node(1), 500);
        let b = Store::new(node(2), 500);
        let mut written = Vec::new();
        for i in 0..500u32 {
            let key = Bytes::from(format!("k{i}"));
            let (entry, ()) = a.update(&key, 1_000, |_| (put("v"), ())).unwrap();
            written.push((key, entry.unwrap()));
        }
        for (key, entry) in written.iter().rev() {
            b.merge(key.clone(), entry.clone(), 1_000);
        }
        assert_eq!(a.leaf_digests(), b.leaf_digests());
        // Inner digests straight from the shards agree with the leaf array.
        let leaves = a.leaf_digests();
        for (level, node) in [(0, 0), (1, 3), (2, 40), (3, 4000)] {
            assert_eq!(a.children_digests(level, node), crate::core::digest::children_digests(&leaves, level, node));
        }
        // One changed key changes exactly one leaf.
        let key = Bytes::from_static(b"k7");
        b.update(&key, 2_000, |_| (put("w"), ())).unwrap();
        let differing = a.leaf_digests().iter().zip(b.leaf_digests()).filter(|(x, y)| *x != y).count();
        assert_eq!(differing, 1);
        // The shard digests followed the overwrite.
        let leaves = b.leaf_digests();
        for (level, node) in [(0, 0), (1, 0), (1, 15)] {
            assert_eq!(b.children_digests(level, node), crate::core::digest::children_digests(&leaves, level, node));
        }
        let leaf = leaf_of_hash(key_hash(b"k7"));
        let (leaves, versions) = b.leaf_versions(&[leaf], 1, usize::MAX);
        assert_eq!(leaves, vec![leaf]);
        let changed = b.entry(b"k7").unwrap().stamp();
        assert!(versions.contains(&(key_hash(b"k7"), changed)));
        let wanted = [key_hash(b"k7")].into_iter().collect();
        let (covered, entries) = b.entries_by_hash(&[leaf], &wanted, usize::MAX, usize::MAX);
        assert_eq!(covered, 1);
        assert_eq!(entries, vec![(key.clone(), b.entry(b"k7").unwrap())]);
    }

    #[test]
    fn sweep_turns_expired_values_into_tombstones_and_forgets_old_tombstones() {
        let ttl = 10_000;
        let store = Store::new(node(1), 500).with_tombstone_ttl(ttl);
        let e = Bytes::from_static(b"expiring");
        let d = Bytes::from_static(b"deleted");
        store.update(&e, 1_000, |_| (Some(Write::Put { value: e.clone(), expires_at_ms: Some(2_000) }), ())).unwrap();
        store.update(&d, 1_000, |_| (put("v"), ())).unwrap();
        store.update(&d, 1_001, |_| (Some(Write::Delete), ())).unwrap();
        let digests = store.leaf_digests();
        let outcome = store.sweep(0..SHARD_COUNT, 3_000);
        assert_eq!(outcome, SweepOutcome { expired: 1, forgotten: 0 });
        assert_eq!(store.entry(b"expiring").unwrap().value, None);
        assert_eq!(store.leaf_digests(), digests, "same versions, same digests");
        assert_eq!(store.value_count(), 0);
        let outcome = store.sweep(0..SHARD_COUNT, 1_001 + ttl + 1);
        assert_eq!(outcome.forgotten, 1, "the delete's tombstone is past the TTL");
        assert!(store.entry(b"deleted").is_none());
        // A forgotten tombstone offered again by a peer that still holds it
        // is taken back as held since it died, so that the peer can match
        // us there and forget it too; the next sweep forgets it again.
        let old = Entry {
            value: None,
            version: Version { timestamp: Timestamp::from_physical_ms(1_001), writer: node(3) },
            expires_at_ms: None,
            deadline_set_at: Timestamp::from_physical_ms(1_001),
        };
        assert_eq!(store.merge(d.clone(), old, 1_001 + ttl + 2), MergeOutcome::Applied);
        assert!(store.entry(b"deleted").is_some());
        assert_eq!(store.sweep(0..SHARD_COUNT, 1_001 + ttl + 3).forgotten, 1);
        assert!(store.entry(b"deleted").is_none());
    }

    fn put_until(value: &'static str, deadline_ms: u64) -> Option<Write> {
        Some(Write::Put { value: Bytes::from_static(value.as_bytes()), expires_at_ms: Some(deadline_ms) })
    }

    #[test]
    fn keyspace_counts_keys_with_a_deadline_and_their_average_time_left() {
        let store = Store::new(node(1), 500).with_tombstone_ttl(1_000_000);
        let (a, b, c) = (Bytes::from_static(b"a"), Bytes::from_static(b"b"), Bytes::from_static(b"c"));
        assert_eq!(store.keyspace(1_000), Keyspace::default());
        store.update(&a, 1_000, |_| (put_until("1", 11_000), ())).unwrap();
        store.update(&b, 1_000, |_| (put_until("2", 21_000), ())).unwrap();
        store.update(&c, 1_000, |_| (put("3"), ())).unwrap();
        assert_eq!(store.keyspace(1_000), Keyspace { keys: 3, expires: 2, avg_ttl_ms: 15_000 });
        assert_eq!(store.keyspace(6_000).avg_ttl_ms, 10_000, "the average counts down with the clock");

        // Overwriting without a deadline (SET, PERSIST) takes the key out.
        store.update(&a, 2_000, |_| (put("1"), ())).unwrap();
        assert_eq!(store.keyspace(2_000), Keyspace { keys: 3, expires: 1, avg_ttl_ms: 19_000 });
        // A deadline added to a persistent key (EXPIRE) brings it in.
        store.update(&c, 2_000, |_| (put_until("3", 4_000), ())).unwrap();
        assert_eq!(store.keyspace(2_000), Keyspace { keys: 3, expires: 2, avg_ttl_ms: 10_500 });
        // A delete takes it out.
        store.update(&b, 3_000, |_| (Some(Write::Delete), ())).unwrap();
        assert_eq!(store.keyspace(3_000), Keyspace { keys: 2, expires: 1, avg_ttl_ms: 1_000 });

        // A peer's entry with a deadline counts when it wins the merge, not when it is stale.
        let from_peer = |ms: u64, deadline: u64| Entry {
            value: Some(Bytes::from_static(b"peer")),
            version: Version { timestamp: Timestamp::from_physical_ms(ms), writer: node(2) },
            expires_at_ms: Some(deadline),
            deadline_set_at: Timestamp::from_physical_ms(ms),
        };
        assert_eq!(store.merge(b.clone(), from_peer(1_000, 99_000), 3_000), MergeOutcome::Stale);
        assert_eq!(store.keyspace(3_000).expires, 1);
        assert_eq!(store.merge(b.clone(), from_peer(3_500, 9_000), 3_000), MergeOutcome::Applied);
        assert_eq!(store.keyspace(3_000), Keyspace { keys: 3, expires: 2, avg_ttl_ms: 3_500 });

        // Past its deadline, c counts until the sweep, and its overdue time
        // pulls the average down; the sweep takes it out.
        assert_eq!(store.keyspace(5_000), Keyspace { keys: 3, expires: 2, avg_ttl_ms: 1_500 });
        assert_eq!(store.keyspace(8_000).avg_ttl_ms, 0, "never below 0");
        assert_eq!(store.sweep(0..SHARD_COUNT, 5_000).expired, 1);
        assert_eq!(store.keyspace(5_000), Keyspace { keys: 2, expires: 1, avg_ttl_ms: 4_000 });
        store.clear();
        assert_eq!(store.keyspace(5_000), Keyspace::default());
    }

    /// A shard's tally recounted from its map.
    fn recount(store: &Store) -> Vec<Tally> {
        store
            .shards
            .iter()
            .map(|s| {
                let mut tally = Tally::default();
                s.read().map.values().for_each(|e| tally.add(e));
                tally
            })
            .collect()
    }

    /// One change in the property tests' sequences.
    #[derive(Clone, Debug)]
    enum Step {
        Write { key: u8, ttl_ms: Option<u64> },
        Delete { key: u8 },
        Merge { key: u8, entry: Entry },
        Sweep,
        Clear,
    }

    impl Step {
        /// Makes this change to `store` at `now_ms`.
        fn apply(self, store: &Store, now_ms: u64) {
            match self {
                Step::Write { key, ttl_ms } => {
                    let write =
                        Write::Put { value: Bytes::from_static(b"v"), expires_at_ms: ttl_ms.map(|t| now_ms + t) };
                    store.update(&Bytes::from(vec![key]), now_ms, |_| (Some(write), ())).unwrap();
                }
                Step::Delete { key } => {
                    store.update(&Bytes::from(vec![key]), now_ms, |_| (Some(Write::Delete), ())).unwrap();
                }
                Step::Merge { key, entry } => {
                    store.merge(Bytes::from(vec![key]), entry, now_ms);
                }
                Step::Sweep => {
                    store.sweep(0..SHARD_COUNT, now_ms);
                }
                Step::Clear => store.clear(),
            }
        }
    }

    fn arb_step() -> impl Strategy<Value = Step> {
        let entry = (0u64..4_000, 0u8..3, any::<bool>(), proptest::option::of(0u64..4_000)).prop_map(
            |(ms, writer, value, expires_at_ms)| Entry {
                value: value.then(|| Bytes::from(vec![writer])),
                version: Version { timestamp: Timestamp::from_physical_ms(ms), writer: node(writer) },
                expires_at_ms,
                deadline_set_at: Timestamp::from_physical_ms(ms),
            },
        );
        prop_oneof![
            4 => (0u8..6, proptest::option::of(1u64..2_000)).prop_map(|(key, ttl_ms)| Step::Write { key, ttl_ms }),
            2 => (0u8..6).prop_map(|key| Step::Delete { key }),
            4 => (0u8..6, entry).prop_map(|(key, entry)| Step::Merge { key, entry }),
            2 => Just(Step::Sweep),
            1 => Just(Step::Clear),
        ]
    }

    fn arb_entry() -> impl Strategy<Value = (u8, Entry)> {
        // One version is one write, so the value — and, for a SET, its
        // deadline — is a function of it. The deadline part is set apart
        // (EXPIRE, PERSIST: always at a later timestamp than the value)
        // half of the time, deadlines far ahead (merge runs at time 0 here).
        let deadline = proptest::option::of((1u64..20, proptest::option::of(1u64..4)));
        (0u8..4, 0u64..50, 0u8..3, deadline).prop_map(|(key, ts, writer, deadline)| {
            let set_px = ((ts + u64::from(writer)) % 3 == 0).then_some(ts % 3 + 1);
            let (set_at, expires_at_ms) = deadline.map_or((ts, set_px), |(later, expires)| (ts + later, expires));
            let entry = Entry {
                value: (ts % 5 != 0).then(|| Bytes::from(vec![ts as u8, writer])),
                version: Version { timestamp: Timestamp::from_packed(ts), writer: node(writer) },
                expires_at_ms: expires_at_ms.map(|d| d * 1_000_000),
                deadline_set_at: Timestamp::from_packed(set_at),
            };
            (key, entry)
        })
    }

    fn final_state(entries: &[(u8, Entry)]) -> Vec<(Bytes, Entry)> {
        let store = Store::new(node(200), 500);
        for (k, e) in entries {
            store.merge(Bytes::from(vec![*k]), e.clone(), 0);
        }
        let mut all = Vec::new();
        store.for_each_entry(|k, e| all.push((k.clone(), e.clone())));
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    proptest! {
        /// Any order, with any duplicates, gives the same store: merge is
        /// commutative, associative and idempotent.
        #[test]
        fn merge_order_and_duplicates_do_not_matter(
            entries in proptest::collection::vec(arb_entry(), 0..40),
            seed in any::<u64>(),
        ) {
            let mut shuffled = entries.clone();
            // A deterministic permutation from the seed, plus duplicates.
            let n = shuffled.len();
            for i in 0..n {
                let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % n as u64) as usize;
                shuffled.swap(i, j);
            }
            shuffled.extend(entries.iter().take(n / 2).cloned());
            let expected = final_state(&entries);
            prop_assert_eq!(final_state(&shuffled), expected.clone());
            // Each key holds its greatest version of each part.
            for (k, e) in &expected {
                let of_key = || entries.iter().filter(|(key, _)| [*key] == k[..]).map(|(_, e)| e);
                prop_assert_eq!(Some(e.version), of_key().map(|e| e.version).max());
                let greatest = of_key().map(Entry::stamp).max_by_key(EntryStamp::deadline_order);
                prop_assert_eq!(Some(e.deadline_stamp()), greatest.map(|s| s.deadline));
            }
        }

        /// Local writes, deletes, merges, sweeps and clears, as time
        /// passes: every shard's tally always equals a recount of its map,
        /// the entry count a count of the entries, and `used_bytes` the sum
        /// of their footprints.
        #[test]
        fn tally_stays_exact_under_any_sequence_of_changes(
            steps in proptest::collection::vec((arb_step(), 0u64..500), 0..60),
        ) {
            let store = Store::new(node(1), 500).with_tombstone_ttl(1_000);
            let mut now_ms = 1_000;
            for (step, elapsed_ms) in steps {
                now_ms += elapsed_ms;
                step.apply(&store, now_ms);
                let kept: Vec<Tally> = store.shards.iter().map(|s| s.read().tally).collect();
                prop_assert_eq!(kept, recount(&store));
                let mut entries = 0;
                store.for_each_entry(|_, _| entries += 1);
                prop_assert_eq!(store.entry_count(), entries);
                prop_assert_eq!(store.used_bytes(), walked_bytes(&store));
            }
        }

        /// The same kinds of changes, with a change log attached: replaying
        /// the log in order always gives exactly the store's entries, which
        /// is what the data dir relies on.
        #[test]
        fn the_change_log_replays_to_the_store(
            steps in proptest::collection::vec((arb_step(), 0u64..500), 0..60),
        ) {
            let log = Arc::new(ReplayedLog::default());
            let store = Store::new(node(1), 500).with_tombstone_ttl(1_000).with_change_log(log.clone());
            let mut now_ms = 1_000;
            for (step, elapsed_ms) in steps {
                now_ms += elapsed_ms;
                step.apply(&store, now_ms);
                let mut held = std::collections::BTreeMap::new();
                store.for_each_entry(|k, e| {
                    held.insert(k.clone(), e.clone());
                });
                prop_assert_eq!(log.entries(), held.into_iter().collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn restore_keeps_the_greater_version_logs_nothing_and_moves_the_clock() {
        let log = Arc::new(ReplayedLog::default());
        let store = Store::new(node(1), 500).with_change_log(log.clone());
        let key = Bytes::from_static(b"k");
        let at = |ms| Version { timestamp: Timestamp::from_physical_ms(ms), writer: node(2) };
        let entry = |ms, v: &'static str| Entry {
            value: Some(Bytes::from_static(v.as_bytes())),
            version: at(ms),
            expires_at_ms: None,
            deadline_set_at: at(ms).timestamp,
        };
        // Written by us before a restart, with a clock now a little behind.
        store.restore(key.clone(), entry(2_000, "new"), 1_900);
        store.restore(key.clone(), entry(1_500, "old"), 1_900);
        assert_eq!(store.get(b"k", 1_900).unwrap(), "new");
        assert!(log.entries().is_empty());
        assert!(store.clock_reading() >= at(2_000).timestamp);
    }
}

#[cfg(test)]
mod far_future_tests {
    use super::*;

    fn node(n: u8) -> NodeId {
        NodeId::from_random_bytes([n; 16])
    }

    fn put(value: &'static str) -> Option<Write> {
        Some(Write::Put { value: Bytes::from_static(value.as_bytes()), expires_at_ms: None })
    }

    const NOW: u64 = 1_700_000_000_000;

    fn stamped(packed: u64, value: &'static str) -> Entry {
        Entry {
            value: Some(Bytes::from_static(value.as_bytes())),
            version: Version { timestamp: Timestamp::from_packed(packed), writer: node(2) },
            expires_at_ms: None,
            deadline_set_at: Timestamp::from_packed(packed),
        }
    }

    #[test]
    fn an_entry_from_the_far_future_is_refused_and_local_writes_stick() {
        let store = Store::new(node(1), 500);
        let key = Bytes::from_static(b"k");
        let poison = stamped(u64::MAX - 1, "poison");
        assert_eq!(store.merge(key.clone(), poison.clone(), NOW), MergeOutcome::TooFarAhead);
        assert_eq!(store.get(b"k", NOW), None);
        store.update(&key, NOW, |_| (put("mine"), ())).unwrap();
        assert_eq!(store.merge_ref(&key, &poison, NOW + 1), MergeOutcome::TooFarAhead);
        assert_eq!(store.get(b"k", NOW + 1).unwrap(), "mine");
        store.update(&key, NOW + 2, |_| (Some(Write::Delete), ())).unwrap();
        assert_eq!(store.merge(key.clone(), poison.clone(), NOW + 3), MergeOutcome::TooFarAhead);
        assert_eq!(store.get(b"k", NOW + 3), None, "the delete sticks too");
        // Restored from a data dir: refused the same way.
        store.restore(Bytes::from_static(b"r"), poison, NOW);
        assert!(store.entry(b"r").is_none());
        assert_eq!(store.stats().future_refused.load(Ordering::Relaxed), 4);
        assert!(store.clock_reading().physical_ms() <= NOW + 3, "the clock did not follow");
    }

    #[test]
    fn an_honest_entry_ahead_is_only_delayed_until_the_clock_is_within_the_bound() {
        let store = Store::new(node(1), 500).with_max_version_ahead(60_000);
        let key = Bytes::from_static(b"k");
        let ahead = stamped(Timestamp::from_physical_ms(NOW + 90_000).packed(), "ahead");
        assert_eq!(store.merge(key.clone(), ahead.clone(), NOW), MergeOutcome::TooFarAhead);
        assert_eq!(store.merge(key.clone(), ahead.clone(), NOW + 30_000), MergeOutcome::Applied);
        assert_eq!(store.entry(b"k"), Some(ahead));
    }

    #[test]
    fn a_local_write_with_no_greater_version_left_fails_and_stores_nothing() {
        // A bound wide enough to let the last timestamp in.
        let store = Store::new(node(1), 500).with_max_version_ahead(u64::MAX);
        let key = Bytes::from_static(b"k");
        let last = stamped(u64::MAX, "last");
        assert_eq!(store.merge(key.clone(), last.clone(), NOW), MergeOutcome::Applied);
        assert_eq!(store.update(&key, NOW, |_| (put("mine"), ())), Err(WriteError::VersionExhausted));
        assert_eq!(store.entry(b"k"), Some(last));
    }
}
