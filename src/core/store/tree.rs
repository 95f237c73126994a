//! The digest tree over the store: kept in step as shards change, read by
//! anti-entropy, and the leaf visits that build its sync messages.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::shard::{Held, LEAVES_PER_SHARD, Shard, Slot};
use super::{Entry, Store};
use crate::core::digest::{LEAF_COUNT, TREE_DEPTH, TREE_FANOUT, key_hash, leaves_under};
use crate::core::version::EntryStamp;
use crate::core::wire::entry_size_bound;

/// Where the nodes of `level` (1..`TREE_DEPTH`) start in
/// [`Store::node_digests`]: after every shallower level's nodes.
pub(super) const fn node_offset(level: u8) -> usize {
    let mut offset = 0;
    let mut l = 1;
    while l < level {
        offset += TREE_FANOUT.pow(l as u32) as usize;
        l += 1;
    }
    offset
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

impl Store {
    /// Whether `node_digests` keeps the nodes of `level` (1..`TREE_DEPTH`).
    const fn kept(level: u8) -> bool {
        level == 1 || leaves_under(level) as usize <= LEAVES_PER_SHARD
    }

    /// Publishes shard `index`'s digests after a change to `leaf` (a slot
    /// in the shard; `None`: any of its leaves), with the shard's write lock
    /// held: its digest, and the kept nodes above it by the change in its
    /// digest (atomically: other shards below them change concurrently) and
    /// within it (only this shard's lock holders write those).
    pub(super) fn publish(&self, index: usize, shard: &mut Shard, leaf: Option<usize>) {
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
        now_ms: u64,
        budget: usize,
        limit: usize,
        cost: impl Fn(&[u8], &Entry) -> usize,
        mut visit: impl FnMut(&[u8], &Entry),
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
            let mut by_leaf: Vec<Vec<(&[u8], Held<'_>)>> = vec![Vec::new(); LEAVES_PER_SHARD];
            let live = shard.live.iter().map(|(key, entry)| (key.as_ref(), Held::Live(entry)));
            // A dead entry the sweep may forget is as good as forgotten:
            // offered to a peer that forgot it already, it would be taken
            // back there, forgotten again, and offered back to us once we
            // forgot it, by turns, and neither side would ever be rid of it.
            let horizon = self.shard_horizon(shard_index);
            let dead = shard
                .dead
                .iter()
                .map(|dead| (dead.key(), dead.entry(), dead.held_since_ms()))
                .filter(|(_, entry, held_since_ms)| !self.may_forget(entry, *held_since_ms, horizon, now_ms))
                .map(|(key, entry, _)| (key, Held::Dead(entry)));
            for (key, held) in live.chain(dead) {
                let slot = Slot::of(key).leaf;
                if wanted & (1 << slot) != 0 {
                    by_leaf[slot].push((key, held));
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
                        let c = cost(key, &entry);
                        if spent > 0 && spent + c > limit {
                            break;
                        }
                        spent += c;
                        visit(key, &entry);
                    }
                    visited.partial = Some(leaf);
                    break 'shards;
                }
                for (key, entry) in leaf_entries {
                    visit(key, &entry);
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
        now_ms: u64,
        budget_bytes: usize,
        limit_bytes: usize,
    ) -> (Vec<u32>, Vec<(u64, EntryStamp)>) {
        let mut versions = Vec::new();
        let visited = self.visit_leaves(
            leaves,
            now_ms,
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
        now_ms: u64,
        budget_bytes: usize,
        limit_bytes: usize,
    ) -> (usize, Vec<(Bytes, Entry)>) {
        let mut entries = Vec::new();
        let cost = |k: &[u8], e: &Entry| if hashes.contains(&key_hash(k)) { entry_size_bound(k, e) } else { 0 };
        let visited = self.visit_leaves(leaves, now_ms, budget_bytes, limit_bytes, cost, |k, e| {
            if hashes.contains(&key_hash(k)) {
                entries.push((Bytes::copy_from_slice(k), e.clone()));
            }
        });
        (visited.whole.len(), entries)
    }
}
