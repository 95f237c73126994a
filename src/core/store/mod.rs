//! The replicated map: key → (value or tombstone, version, optional expiry).
//!
//! Connection tasks read and write it directly from their own tasks (the
//! client path must not funnel through one task or lock), so it is sharded
//! by key hash, each shard behind its own `RwLock`. Every rule that decides
//! *what* is stored — version stamping, last-write-wins merge, expiry — lives
//! here and takes wall time as an argument, so a single thread driving it
//! (the simulator) gets deterministic results. Hashing uses fixed-seed xxh3,
//! never a random-state hasher, so iteration order is reproducible too.

mod dead;
mod flush;
mod shard;
mod sweep;
#[cfg(test)]
mod tests;
mod tree;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::RwLock;

use super::changes::{Change, ChangeLog, ReplayedLog};
use super::digest::TREE_DEPTH;

use super::hlc::{DriftExceeded, Hlc, NoTimestamp};
use super::horizon::SUBTREES;
use super::loading::CatchUpState;
use super::sabotage::Sabotage;
use super::version::{NodeId, Timestamp, Version};

pub use super::entry::{Entry, LiveValue};
pub use flush::FlushOutcome;
pub use shard::{DEAD_ENTRY_OVERHEAD_BYTES, ENTRY_OVERHEAD_BYTES, footprint};
use shard::{MergeInput, Shard, Slot, Tally, Totals};
use tree::node_offset;

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
    /// The clock has issued every timestamp its durable lease covers (the
    /// wall clock jumped ahead of it, or a peer's reading took the clock
    /// past it), and the next lease is not durable yet: nothing was
    /// written. Transient — the driver renews the lease at once.
    #[error("the clock is at the end of its durable lease")]
    ClockAtLease,
}

impl From<NoTimestamp> for WriteError {
    fn from(refused: NoTimestamp) -> Self {
        match refused {
            NoTimestamp::Exhausted => WriteError::VersionExhausted,
            NoTimestamp::AtCeiling => WriteError::ClockAtLease,
        }
    }
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
    /// The latest FLUSHALL taken, a packed [`Timestamp`] (0: none): every
    /// entry written at or before it is gone and refused (see [`flush`]).
    flushed: AtomicU64,
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
            flushed: AtomicU64::new(0),
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

    /// How long a tombstone is kept at least, ms.
    pub fn tombstone_ttl_ms(&self) -> u64 {
        self.tombstone_ttl_ms
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

    /// How far ahead of our wall clock a remote version may be, ms.
    pub fn max_version_ahead_ms(&self) -> u64 {
        self.max_version_ahead_ms
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

    /// Takes `entry` for `key` from durable storage at start-up: kept if its
    /// version is greater than what the store holds, and not reported to the
    /// change log (storage already has it). Moves the clock past the
    /// version, within the drift bound, as a merge would. An entry stamped
    /// beyond `max_version_ahead_ms` is refused as a merge refuses it
    /// (storage keeps it; a later start, with the clock past it, takes it).
    pub fn restore(&self, key: Bytes, entry: Entry, now_ms: u64) {
        if entry.flushed_by(self.flushed()) || self.too_far_ahead(&key, &entry, now_ms) {
            return;
        }
        let _ = self.hlc.observe(entry.last_stamped(), now_ms);
        let slot = Slot::of(&key);
        let mut shard = self.shards[slot.shard].write();
        let entry = match shard.held(&key) {
            None => Some(entry),
            Some(held) => held.merged_with(&entry, now_ms, false),
        };
        if let Some(entry) = entry {
            shard.put(&key, entry, now_ms, slot, &self.totals);
            self.publish(slot.shard, &mut shard, Some(slot.leaf));
        }
    }

    /// Restores what a [`ReplayedLog`] holds — its flush, then its
    /// entries — as a data dir kept in memory is loaded at start.
    pub fn restore_replayed(&self, log: &ReplayedLog, now_ms: u64) {
        if let Some(upto) = log.flushed() {
            self.restore_flushed(upto);
        }
        for (key, entry) in log.entries() {
            self.restore(key, entry, now_ms);
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
        shard.live.get(key).and_then(|e| e.live_value(now_ms)).cloned()
    }

    /// The raw entry for `key`, tombstones and expired entries included.
    pub fn entry(&self, key: &[u8]) -> Option<Entry> {
        self.shard_of(key).read().held(key).map(|held| Entry::clone(&held))
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
    /// ([`WriteError::VersionExhausted`]) or the clock is at its lease
    /// ([`WriteError::ClockAtLease`]), nothing is written.
    pub fn update<R>(
        &self,
        key: &Bytes,
        now_ms: u64,
        decide: impl FnOnce(Option<LiveValue<'_>>) -> (Option<Write>, R),
    ) -> Result<(Option<Entry>, R), WriteError> {
        let slot = Slot::of(key);
        let mut shard = self.shards[slot.shard].write();
        let existing = shard.held(key);
        let live = existing
            .as_deref()
            .and_then(|e| e.live_value(now_ms).map(|value| LiveValue { value, expires_at_ms: e.expires_at_ms }));
        let (write, result) = decide(live);
        let Some(write) = write else {
            return Ok((None, result));
        };
        let Some(entry) = self.local_entry(existing.as_deref(), write, now_ms)? else {
            return Ok((None, result));
        };
        drop(existing);
        self.store_local(&mut shard, key, slot, &entry, now_ms);
        Ok((Some(entry), result))
    }

    /// [`Store::update`] of several keys as one: every key's shard is
    /// locked (in shard order, so two of these never deadlock) before
    /// `decide` sees their live values, in the order given, and until its
    /// writes (one per key, or none) are stored in that order; so no other
    /// command on this node sees some of them and not the others (MSET,
    /// MSETNX). A key named twice is seen as it was before either write,
    /// and written twice, the later write last.
    ///
    /// Returns the entries written, in order, and what `decide` returned.
    pub fn update_many<R>(
        &self,
        keys: &[Bytes],
        now_ms: u64,
        decide: impl FnOnce(&[Option<LiveValue<'_>>]) -> (Vec<Option<Write>>, R),
    ) -> Result<(Vec<(Bytes, Entry)>, R), WriteError> {
        let slots: Vec<Slot> = keys.iter().map(|key| Slot::of(key)).collect();
        let mut order: Vec<usize> = slots.iter().map(|slot| slot.shard).collect();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<_> = order.iter().map(|&index| self.shards[index].write()).collect();
        let guard_of = |shard: usize| order.binary_search(&shard).unwrap_or_default();
        // Owned copies (a value is a shared `Bytes`), so the locks can be
        // written through once `decide` is done.
        let held: Vec<Option<(Bytes, Option<u64>)>> = keys
            .iter()
            .zip(&slots)
            .map(|(key, slot)| {
                let entry = guards[guard_of(slot.shard)].held(key);
                entry.and_then(|e| e.live_value(now_ms).map(|value| (value.clone(), e.expires_at_ms)))
            })
            .collect();
        let live: Vec<Option<LiveValue<'_>>> = held
            .iter()
            .map(|h| h.as_ref().map(|(value, expires_at_ms)| LiveValue { value, expires_at_ms: *expires_at_ms }))
            .collect();
        let (writes, result) = decide(&live);
        let mut written = Vec::new();
        for ((key, slot), write) in keys.iter().zip(&slots).zip(writes) {
            let Some(write) = write else { continue };
            let shard = &mut guards[guard_of(slot.shard)];
            let existing = shard.held(key);
            let Some(entry) = self.local_entry(existing.as_deref(), write, now_ms)? else { continue };
            drop(existing);
            self.store_local(shard, key, *slot, &entry, now_ms);
            written.push((key.clone(), entry));
        }
        Ok((written, result))
    }

    /// The entry a local `write` makes of `existing` (what the key's locked
    /// shard holds), with a version greater than the clock and than what is
    /// held; none when a one-part write finds no live value to change (a
    /// value-only write then makes a whole value).
    fn local_entry(&self, existing: Option<&Entry>, write: Write, now_ms: u64) -> Result<Option<Entry>, WriteError> {
        // Only the live value's parts are kept by a one-part write.
        let held_live = existing.filter(|e| e.live_value(now_ms).is_some());
        let write = match (write, held_live) {
            (Write::Deadline { .. }, None) => return Ok(None),
            (Write::Value { value }, None) => Write::Put { value, expires_at_ms: None },
            (write, _) => write,
        };
        // Greater than what the key holds, and than the last flush: a flush
        // from a peer whose clock is ahead (further than the drift the
        // clock follows) must not swallow the writes made after it here.
        let mut timestamp = self.hlc.tick(now_ms)?;
        let floor = existing.map_or(Timestamp::ZERO, |held| held.last_stamped()).max(self.flushed());
        if floor >= timestamp {
            timestamp = floor.checked_next().ok_or(WriteError::VersionExhausted)?;
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
        Ok(Some(entry))
    }

    /// Stores a local write's `entry` of `key` in its locked `shard`.
    fn store_local(&self, shard: &mut Shard, key: &Bytes, slot: Slot, entry: &Entry, now_ms: u64) {
        if self.sabotage.drop_tombstones_early && entry.value.is_none() {
            shard.remove(key, slot, &self.totals);
        } else {
            self.log(Change::Put { key, entry });
            shard.put(key, entry.clone(), now_ms, slot, &self.totals);
        }
        self.publish(slot.shard, shard, Some(slot.leaf));
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
        // Read under the shard's lock, which a flush holds while it applies.
        if entry.flushed_by(self.flushed()) && !self.sabotage.flush_not_kept {
            self.stats.merges_stale.fetch_add(1, Ordering::Relaxed);
            return MergeOutcome::Stale;
        }
        // `None`: nothing changes; `Some(None)`: the incoming entry as it
        // is; `Some(Some(merged))`: a mix of both parts.
        let (refound, change) = match shard.held(input.key()) {
            // A dead entry we forgot, offered by a peer that still holds it:
            // see [`Store::was_forgotten`].
            None => (self.was_forgotten(entry, slot.shard / (SHARD_COUNT / SUBTREES), now_ms), Some(None)),
            Some(held) => (
                false,
                held.merged_with(entry, now_ms, self.sabotage.merge_keeps_smaller)
                    .map(|merged| if merged == *entry { None } else { Some(merged) }),
            ),
        };
        if refound && self.sabotage.ttl_only_gc {
            self.stats.merges_stale.fetch_add(1, Ordering::Relaxed);
            return MergeOutcome::Stale;
        }
        if let Some(merged) = change {
            let tombstone = merged.as_ref().map_or(entry.value.is_none(), |m| m.value.is_none());
            if self.sabotage.drop_tombstones_early && tombstone {
                shard.remove(input.key(), slot, &self.totals);
            } else if let Some(merged) = merged {
                self.log(Change::Put { key: input.key(), entry: &merged });
                shard.put(input.key(), merged, now_ms, slot, &self.totals);
            } else {
                self.log(Change::Put { key: input.key(), entry });
                let (key, entry) = input.into_owned();
                let held_since = if refound { Self::dead_since(&entry, now_ms).unwrap_or(now_ms) } else { now_ms };
                shard.put(&key, entry, held_since, slot, &self.totals);
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
        match shard.live.get(key) {
            Some(e) if e.live_value(now_ms).is_some() => match e.expires_at_ms {
                Some(deadline) => Ttl::RemainingMs(deadline - now_ms),
                None => Ttl::Persistent,
            },
            _ => Ttl::Missing,
        }
    }

    /// A live key chosen by `pick` (RANDOMKEY): the first shard with a live
    /// key from shard `pick % SHARD_COUNT` on, and in it the live key at
    /// about `pick / SHARD_COUNT` in its order. `None` with no live key.
    pub fn random_key(&self, pick: u64, now_ms: u64) -> Option<Bytes> {
        let first = (pick % SHARD_COUNT as u64) as usize;
        for step in 0..SHARD_COUNT {
            let shard = self.shards[(first + step) % SHARD_COUNT].read();
            let held = shard.live.len();
            if held == 0 {
                continue;
            }
            let start = (pick / SHARD_COUNT as u64 % held as u64) as usize;
            let found = shard.live.iter().cycle().skip(start).take(held).find(|(_, e)| e.live_value(now_ms).is_some());
            if let Some((key, _)) = found {
                return Some(key.clone());
            }
        }
        None
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

    /// Calls `visit` for every entry, tombstones included, shard by shard.
    pub fn for_each_entry(&self, mut visit: impl FnMut(&Bytes, &Entry)) {
        for shard in self.shards.iter() {
            let shard = shard.read();
            for (k, e) in shard.live.iter() {
                visit(k, e);
            }
            for dead in shard.dead.iter() {
                visit(&Bytes::copy_from_slice(dead.key()), &dead.entry());
            }
        }
    }

    /// The version the store holds for `key`, for tests and checkers.
    pub fn version(&self, key: &[u8]) -> Option<Version> {
        self.shard_of(key).read().held(key).map(|held| held.version)
    }

    /// The greatest timestamp this node has issued or accepted.
    pub fn clock_reading(&self) -> Timestamp {
        self.hlc.last()
    }
}
