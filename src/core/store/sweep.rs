//! The background sweep (expiry, forgetting dead entries) and the walks
//! over whole shards: SCAN, clearing, dropping what is older than a time.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::shard::{Shard, Slot, footprint};
use super::{Entry, SHARD_COUNT, Store, SweepOutcome};
use crate::core::changes::Change;
use crate::core::digest::entry_hash;
use crate::core::horizon::SUBTREES;

impl Store {
    /// When `entry` died (its delete, or its deadline), if it is dead at
    /// `now_ms`.
    pub(super) fn dead_since(entry: &Entry, now_ms: u64) -> Option<u64> {
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
    pub(super) fn was_forgotten(&self, entry: &Entry, subtree: usize, now_ms: u64) -> bool {
        Self::dead_since(entry, now_ms).is_some_and(|died| {
            died.saturating_add(self.tombstone_ttl_ms) < now_ms
                && (self.sabotage.ttl_only_gc || died < self.horizons[subtree].load(Ordering::Relaxed))
        })
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
                .live
                .iter()
                .filter(|(_, entry)| entry.live_value(now_ms).is_none())
                .map(|(key, _)| key.clone())
                .collect();
            for key in expired {
                if let Some(entry) = shard.expire(&key, now_ms, &self.totals) {
                    outcome.expired += 1;
                    self.log(Change::Put { key: &key, entry: &entry });
                }
            }
            shard.shrink_if_emptied();
        }
        outcome
    }

    /// The horizon of shard `index`'s subtree (see `core::horizon`).
    pub(super) fn shard_horizon(&self, index: usize) -> u64 {
        if self.sabotage.ttl_only_gc {
            u64::MAX
        } else {
            self.horizons[index / (SHARD_COUNT / SUBTREES)].load(Ordering::Relaxed)
        }
    }

    /// Whether a dead `entry` held since `held_since_ms` may be forgotten
    /// at `now_ms` under `horizon`: held since before the horizon, for
    /// longer than the tombstone TTL, and dead for longer than that.
    pub(super) fn may_forget(&self, entry: &Entry, held_since_ms: u64, horizon: u64, now_ms: u64) -> bool {
        let ttl = self.tombstone_ttl_ms;
        held_since_ms < horizon
            && held_since_ms.saturating_add(ttl) < now_ms
            && Self::dead_since(entry, now_ms).is_some_and(|died| died.saturating_add(ttl) < now_ms)
    }

    /// Forgets the dead entries of shard `index` that it may
    /// ([`Store::may_forget`]); returns how many.
    fn forget_dead(&self, index: usize, shard: &mut Shard, now_ms: u64) -> u64 {
        let horizon = self.shard_horizon(index);
        let Shard { dead, leaves, digest, .. } = shard;
        let mut forgotten = 0;
        dead.retain(|record| {
            let (key, entry) = (record.key(), record.entry());
            let forget = self.may_forget(&entry, record.held_since_ms(), horizon, now_ms);
            if forget {
                let hash = entry_hash(key, &entry.stamp());
                leaves[Slot::of(key).leaf] ^= hash;
                *digest ^= hash;
                self.totals.entries.fetch_sub(1, Ordering::Relaxed);
                self.totals.bytes.fetch_sub(footprint(key, &entry), Ordering::Relaxed);
                self.log(Change::Remove { key });
                forgotten += 1;
            }
            !forget
        });
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
            let old_live = shard.live.iter().filter(|(_, e)| e.last_stamped().physical_ms() < before_ms);
            let old_dead = shard.dead.iter().filter(|d| d.entry().last_stamped().physical_ms() < before_ms);
            let old: Vec<Bytes> =
                old_live.map(|(k, _)| k.clone()).chain(old_dead.map(|d| Bytes::copy_from_slice(d.key()))).collect();
            for key in &old {
                shard.remove(key, Slot::of(key), &self.totals);
                self.log(Change::Remove { key });
            }
            dropped += old.len();
            self.publish(index, &mut shard, None);
        }
        dropped
    }

    /// One step of a SCAN: live keys accepted by `filter`, from shard
    /// `cursor` on, whole shards at a time until at least `count` keys are
    /// gathered or, as Redis bounds a SCAN call's work, ten times `count`
    /// entries were looked at (a MATCH that finds little must not walk the
    /// whole store in one call). Returns the next cursor, 0 when the walk
    /// is complete.
    ///
    /// Every key present for the whole walk is returned exactly once, since
    /// a shard is read entirely under one lock.
    pub fn scan(&self, cursor: u64, count: usize, now_ms: u64, filter: impl Fn(&[u8]) -> bool) -> (u64, Vec<Bytes>) {
        let mut keys = Vec::new();
        let mut index = usize::try_from(cursor).unwrap_or(usize::MAX);
        let mut looked_at = 0usize;
        while index < self.shards.len() {
            let shard = self.shards[index].read();
            keys.extend(
                shard.live.iter().filter(|(k, e)| e.live_value(now_ms).is_some() && filter(k)).map(|(k, _)| k.clone()),
            );
            looked_at = looked_at.saturating_add(shard.live.len());
            index += 1;
            if keys.len() >= count || looked_at >= count.saturating_mul(10) {
                break;
            }
        }
        let next = if index >= self.shards.len() { 0 } else { index as u64 };
        (next, keys)
    }
}
