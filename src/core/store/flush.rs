//! FLUSHALL across the mesh: one timestamp, not a tombstone per key.
//!
//! A flush at `upto` removes every entry whose value was written at or
//! before `upto`, on every node it reaches, and every node that has taken
//! it refuses such entries from then on — from a peer that missed it, or
//! from its own data dir. Writes after the flush have greater timestamps
//! (the flush moves the clock of every node it reaches), so they stay.
//! Taking it costs one timestamp of state and one walk that frees what it
//! removes; no per-key record is written or sent.

use std::sync::atomic::Ordering;

use super::shard::{Slot, Totals, footprint};
use super::{Store, WriteError};
use crate::core::changes::Change;
use crate::core::digest::entry_hash;
use crate::core::version::Timestamp;

/// What offering a flush to the store did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushOutcome {
    /// It was newer than the store's: taken, the entries before it dropped.
    Applied,
    /// The store had taken this flush or a later one.
    Stale,
    /// Stamped beyond `max_version_ahead_ms` of our wall clock: refused,
    /// as an entry that far ahead is (it would remove every write made
    /// until our clock caught up).
    TooFarAhead,
}

impl Store {
    /// The latest flush taken ([`Timestamp::ZERO`]: none).
    pub fn flushed(&self) -> Timestamp {
        Timestamp::from_packed(self.flushed.load(Ordering::Acquire))
    }

    /// FLUSHALL from a client of this node: a flush at a fresh timestamp,
    /// after every write this node has made or taken. Returns it, to be
    /// disseminated.
    pub fn flush_local(&self, now_ms: u64) -> Result<Timestamp, WriteError> {
        let mut upto = self.hlc.tick(now_ms)?;
        // After the last flush even if it came from a clock ahead of ours.
        if upto <= self.flushed() {
            upto = self.flushed().checked_next().ok_or(WriteError::VersionExhausted)?;
        }
        self.apply_flush(upto);
        Ok(upto)
    }

    /// Takes a flush at `upto` heard from a peer (or read back from disk).
    pub fn flush(&self, upto: Timestamp, now_ms: u64) -> FlushOutcome {
        if upto <= self.flushed() {
            return FlushOutcome::Stale;
        }
        if upto.physical_ms().saturating_sub(now_ms) > self.max_version_ahead_ms {
            self.stats.future_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%upto, "flush stamped beyond max_version_ahead_ms refused");
            return FlushOutcome::TooFarAhead;
        }
        // Writes made here from now on come after it.
        let _ = self.hlc.observe(upto, now_ms);
        self.apply_flush(upto);
        FlushOutcome::Applied
    }

    /// The flush a data dir kept, before its entries are restored: those
    /// it removes are then refused by [`Store::restore`].
    pub fn restore_flushed(&self, upto: Timestamp) {
        self.hlc.raise_to(upto);
        self.flushed.fetch_max(upto.packed(), Ordering::AcqRel);
    }

    /// Drops every entry the flush at `upto` removes, with every shard
    /// locked (in index order, as no other path takes two): no command on
    /// this node sees some keys flushed and others not, and the flush
    /// reaches the change log before any later change. What is dropped is
    /// freed after the locks are released.
    fn apply_flush(&self, upto: Timestamp) {
        let mut locked: Vec<_> = self.shards.iter().map(|shard| shard.write()).collect();
        if upto <= self.flushed() {
            return;
        }
        self.flushed.store(upto.packed(), Ordering::Release);
        self.log(Change::Flush { upto });
        let mut dropped = Vec::new();
        let Totals { entries, bytes } = &self.totals;
        for (index, shard) in locked.iter_mut().enumerate() {
            let shard = &mut **shard;
            let mut removed = 0;
            for (key, entry) in shard.live.extract_if(|_, entry| entry.flushed_by(upto)) {
                shard.tally.sub(&entry);
                let hash = entry_hash(&key, &entry.stamp());
                shard.leaves[Slot::of(&key).leaf] ^= hash;
                shard.digest ^= hash;
                bytes.fetch_sub(footprint(&key, &entry), Ordering::Relaxed);
                removed += 1;
                dropped.push((key, entry));
            }
            for dead in shard.dead.extract_if(|dead| dead.entry().flushed_by(upto)) {
                let (key, entry) = (dead.key(), dead.entry());
                let hash = entry_hash(key, &entry.stamp());
                shard.leaves[Slot::of(key).leaf] ^= hash;
                shard.digest ^= hash;
                bytes.fetch_sub(footprint(key, &entry), Ordering::Relaxed);
                removed += 1;
            }
            entries.fetch_sub(removed, Ordering::Relaxed);
            shard.shrink_if_emptied();
            self.publish(index, shard, None);
        }
        drop(locked);
        drop(dropped);
    }
}
