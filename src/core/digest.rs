//! The store's digest tree, for anti-entropy.
//!
//! Keys hash to one of [`LEAF_COUNT`] leaves. A leaf's digest is the XOR of
//! `entry_hash(key, stamp)` over its entries, updated on every write (XOR
//! takes the old hash out and puts the new one in), never recomputed by
//! walking entries. Inner nodes — [`TREE_FANOUT`] children each,
//! [`TREE_DEPTH`] levels below the root — are XORs of leaf ranges, computed
//! from the shards' leaf arrays when a sync asks (65,536 XORs: microseconds).
//!
//! Only the versions are hashed (the value's and the deadline's): one
//! version is one write, so equal versions mean equal entries, and turning
//! an expired value into a tombstone of the same versions (the sweep) leaves
//! digests unchanged.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::version::EntryStamp;

/// Children per inner node.
pub const TREE_FANOUT: u32 = 16;
/// Levels below the root; leaves are at this level.
pub const TREE_DEPTH: u8 = 4;
/// Leaves in the tree: `TREE_FANOUT ^ TREE_DEPTH`.
pub const LEAF_COUNT: usize = 65_536;

/// The leaf a key belongs to (the top 16 bits of its xxh3).
pub fn leaf_of_hash(key_hash: u64) -> u32 {
    (key_hash >> 48) as u32
}

/// The key's xxh3, from which both its shard and its leaf derive.
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// What one entry contributes to its leaf's digest.
pub fn entry_hash(key: &[u8], stamp: &EntryStamp) -> u64 {
    let version = stamp.value;
    let writer = version.writer.uuid().as_u128();
    let deadline = stamp.deadline;
    // The deadline's part: its timestamp and deadline, mixed so that a
    // deadline stamped with the value's own timestamp (every SET) still
    // leaves the seed depending on both.
    let deadline_mix = (deadline.set_at.packed().rotate_left(17)
        ^ deadline.expires_at_ms.map_or(0, |d| d ^ 0x9E37_79B9_7F4A_7C15))
    .wrapping_mul(0xA24B_AED4_963E_E407);
    let seed = version.timestamp.packed() ^ (writer as u64) ^ ((writer >> 64) as u64).rotate_left(29) ^ deadline_mix;
    xxh3_64_with_seed(key, seed)
}

/// Leaves under one node at `level` (0 = root).
pub const fn leaves_under(level: u8) -> u32 {
    TREE_FANOUT.pow(TREE_DEPTH.saturating_sub(level) as u32)
}

/// Digests of the children of `node` (at `level`), from a copy of the leaf
/// array: the reference that `Store::children_digests` is tested against.
#[cfg(test)]
pub fn children_digests(leaves: &[u64], level: u8, node: u32) -> Vec<u64> {
    let span = leaves_under(level + 1) as usize;
    (0..TREE_FANOUT)
        .map(|i| {
            let child = (node * TREE_FANOUT + i) as usize;
            leaves.get(child * span..(child + 1) * span).map_or(0, |range| range.iter().fold(0, |acc, d| acc ^ d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_shape_is_consistent() {
        assert_eq!(leaves_under(0) as usize, LEAF_COUNT);
        assert_eq!(leaves_under(TREE_DEPTH), 1);
        let mut leaves = vec![0u64; LEAF_COUNT];
        leaves[LEAF_COUNT - 1] = 7;
        // The last leaf is the last child at every level.
        let root_children = children_digests(&leaves, 0, 0);
        assert_eq!(root_children[15], 7);
        assert_eq!(root_children[..15].iter().fold(0, |a, d| a ^ d), 0);
        let leaf_level = children_digests(&leaves, TREE_DEPTH - 1, (LEAF_COUNT / 16 - 1) as u32);
        assert_eq!(leaf_level[15], 7);
    }
}
