//! The garbage-collection horizon: when a dead entry may be forgotten.
//!
//! A tombstone (or an expired value) can be dropped only once every member
//! that may still come back holds it: a member that lacks it may hold the
//! older value, and with the tombstone gone nothing would stop that value
//! from spreading again. A time-to-live alone cannot know that (a member
//! partitioned or stopped for longer than the TTL still holds the old
//! value), so the node learns it from anti-entropy instead.
//!
//! When a sync round finds one of our subtrees equal to a peer's — the peer
//! sent its digest, we compare it with ours at `now` — the peer held, when
//! it sent the digest, exactly what we hold in that subtree now. We note
//! `now` for that (peer, subtree). A dead entry that we have held since
//! before the oldest note of its subtree, over every member that may come
//! back, is held by all of them: that oldest note is the subtree's horizon.
//!
//! Members that are down or left count until they have been away for
//! `member_gone_after`; after that they are treated as gone for good and no
//! longer hold the horizon back (a member that does come back after that
//! drops what could have been deleted and forgotten meanwhile; see
//! `Node`). A member whose gossip address is taken by a new node id is gone
//! at once: a node keeps its id across restarts only with its data dir, so
//! a new id on the same address means the old one's data is gone.
//!
//! The members that may come back outlive a restart: a data dir keeps them
//! ([`KeptMember`]), since the membership forgets a down member long before
//! `member_gone_after` (foca's `forget_down_after`, an hour by default), and
//! a node restarted after that would hear of it from nobody — and forget
//! deletes it lacks. Their matches are not kept: a restored member has
//! matched nothing, which only holds dead entries longer.

use ::core::net::SocketAddr; // an address value; the core opens no socket
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::digest::{TREE_FANOUT, leaves_under};
use super::version::NodeId;

/// Subtrees the horizon is kept for: the nodes of the digest tree's second
/// level below the root, 256 leaves each. A note is 4 bytes, so a peer
/// costs 1 KiB; a finer grain would be noted more often under load but
/// cost 16 times as much per peer.
pub const SUBTREES: usize = (TREE_FANOUT * TREE_FANOUT) as usize;

/// Tree level whose nodes are the subtrees.
pub const SUBTREE_LEVEL: u8 = 2;

/// The subtree of a leaf.
pub fn subtree_of_leaf(leaf: u32) -> usize {
    (leaf / leaves_under(SUBTREE_LEVEL)) as usize
}

/// The subtrees under node `node` at `level` of the digest tree (0 = root),
/// or `None` below the subtree level.
pub fn subtrees_under(level: u8, node: u32) -> Option<std::ops::Range<usize>> {
    if level > SUBTREE_LEVEL {
        return None;
    }
    let per_node = TREE_FANOUT.pow(u32::from(SUBTREE_LEVEL - level)) as usize;
    let start = (node as usize).checked_mul(per_node)?;
    (start < SUBTREES).then(|| start..(start + per_node).min(SUBTREES))
}

/// What we know of one other member.
#[derive(Debug)]
struct Peer {
    addr: SocketAddr,
    /// Per subtree, the wall second at which the peer last matched us
    /// there (0: never).
    matched_s: Box<[u32; SUBTREES]>,
    /// Wall ms since which it has been down or left, if it is.
    away_since_ms: Option<u64>,
}

/// A member that may come back, as a data dir keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptMember {
    /// Its node id.
    pub id: NodeId,
    /// Its gossip address.
    pub addr: SocketAddr,
    /// Wall ms since which it has been down or left (None: it was there).
    pub away_since_ms: Option<u64>,
}

/// The kept members as a data dir stores them.
pub fn encode_kept(members: &[KeptMember]) -> Vec<u8> {
    postcard::to_stdvec(members).unwrap_or_default()
}

/// Kept members read back from a data dir; `None` if the bytes are not
/// what [`encode_kept`] wrote.
pub fn decode_kept(bytes: &[u8]) -> Option<Vec<KeptMember>> {
    postcard::from_bytes(bytes).ok()
}

/// A member's standing, as the horizon needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Alive or suspected: it is there, or may be in a moment.
    Present,
    /// Down or left: it may come back with what it held.
    Away,
}

/// The members that may come back and where each last matched us.
#[derive(Debug)]
pub struct Horizon {
    peers: BTreeMap<NodeId, Peer>,
    by_addr: BTreeMap<SocketAddr, NodeId>,
    /// Members treated as gone for good that the membership still lists
    /// as away: not counted again unless they come back.
    gone: BTreeSet<NodeId>,
    member_gone_after_ms: u64,
    /// Until the node has heard of some member, it cannot know who may come
    /// back (a node restarted from its data dir has not met its peers yet),
    /// so nothing is forgotten — unless it is alone by design.
    known: bool,
    /// The members that may come back changed since the last
    /// [`Horizon::take_changed`].
    changed: bool,
}

impl Horizon {
    /// A horizon that treats members away for longer than
    /// `member_gone_after_ms` as gone for good. `alone` is a node with no
    /// seeds: it is the whole mesh until someone joins it.
    pub fn new(member_gone_after_ms: u64, alone: bool) -> Self {
        Horizon {
            peers: BTreeMap::new(),
            by_addr: BTreeMap::new(),
            gone: BTreeSet::new(),
            member_gone_after_ms,
            known: alone,
            changed: false,
        }
    }

    /// Takes the members a data dir kept, at start-up (`now_ms`), as not
    /// yet matched anywhere. One that was there when the node stopped
    /// counts as away from now: it may have gone since, and the time it
    /// went is not known.
    pub fn restore(&mut self, kept: &[KeptMember], now_ms: u64) {
        for member in kept {
            let peer = Peer {
                addr: member.addr,
                matched_s: Box::new([0; SUBTREES]),
                away_since_ms: Some(member.away_since_ms.unwrap_or(now_ms)),
            };
            if let Some(replaced) = self.peers.insert(member.id, peer) {
                self.by_addr.remove(&replaced.addr);
            }
            self.by_addr.insert(member.addr, member.id);
            self.known = true;
        }
    }

    /// The members that may come back, if they changed since the last call:
    /// a driver with a data dir keeps them there.
    pub fn take_changed(&mut self) -> Option<Vec<KeptMember>> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        let kept = self
            .peers
            .iter()
            .map(|(id, peer)| KeptMember { id: *id, addr: peer.addr, away_since_ms: peer.away_since_ms })
            .collect();
        Some(kept)
    }

    /// Takes the current members (self excluded) as the membership reports
    /// them; returns the ids now treated as gone for good. Members the
    /// membership forgot stay, away, until their time runs out.
    pub fn reconcile(
        &mut self,
        members: impl IntoIterator<Item = (NodeId, SocketAddr, Presence)>,
        now_ms: u64,
    ) -> Vec<NodeId> {
        let mut gone = Vec::new();
        let mut still_listed = BTreeSet::new();
        for (id, addr, presence) in members {
            self.known = true;
            if self.gone.contains(&id) {
                match presence {
                    Presence::Away => {
                        still_listed.insert(id);
                        continue;
                    }
                    // Back: it drops what the mesh may have forgotten (see
                    // `Node`) and counts again, from no match at all.
                    Presence::Present => {
                        self.gone.remove(&id);
                    }
                }
            }
            let changed = &mut self.changed;
            let peer = self.peers.entry(id).or_insert_with(|| {
                *changed = true;
                Peer { addr, matched_s: Box::new([0; SUBTREES]), away_since_ms: None }
            });
            match presence {
                Presence::Present => *changed |= peer.away_since_ms.take().is_some(),
                Presence::Away => {
                    *changed |= peer.away_since_ms.is_none();
                    peer.away_since_ms.get_or_insert(now_ms);
                }
            }
            if peer.addr != addr {
                self.by_addr.remove(&peer.addr);
                peer.addr = addr;
                self.changed = true;
            }
            if let Some(previous) = self.by_addr.insert(addr, id)
                && previous != id
                && self.peers.get(&previous).is_some_and(|p| p.away_since_ms.is_some())
            {
                self.peers.remove(&previous);
                gone.push(previous);
                self.changed = true;
            }
        }
        // Forgotten by the membership too: it cannot be listed again as away.
        self.gone.retain(|id| still_listed.contains(id));
        let gone_after = self.member_gone_after_ms;
        let expired: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.away_since_ms.is_some_and(|since| now_ms.saturating_sub(since) > gone_after))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(peer) = self.peers.remove(&id)
                && self.by_addr.get(&peer.addr) == Some(&id)
            {
                self.by_addr.remove(&peer.addr);
            }
            self.gone.insert(id);
            gone.push(id);
            self.changed = true;
        }
        gone
    }

    /// The peer at `addr` matched us in `subtrees` at `now_ms`.
    pub fn note_match(&mut self, addr: SocketAddr, subtrees: std::ops::Range<usize>, now_ms: u64) {
        let Some(peer) = self.by_addr.get(&addr).and_then(|id| self.peers.get_mut(id)) else {
            return;
        };
        let now_s = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
        for s in subtrees {
            peer.matched_s[s] = now_s;
        }
    }

    /// Per subtree, the wall ms before which every dead entry we held is
    /// held by every member that may come back: 0 while that is not known,
    /// `u64::MAX` when there is nobody else.
    pub fn subtree_horizons(&self) -> Box<[u64; SUBTREES]> {
        if !self.known {
            return Box::new([0; SUBTREES]);
        }
        let mut horizons = Box::new([u64::MAX; SUBTREES]);
        for peer in self.peers.values() {
            for (h, &matched) in horizons.iter_mut().zip(peer.matched_s.iter()) {
                *h = (*h).min(u64::from(matched) * 1000);
            }
        }
        horizons
    }

    /// Members that may come back.
    #[cfg(test)]
    fn members(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId::from_random_bytes([n; 16])
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn subtrees_under_each_level() {
        assert_eq!(subtrees_under(0, 0), Some(0..256));
        assert_eq!(subtrees_under(1, 3), Some(48..64));
        assert_eq!(subtrees_under(2, 255), Some(255..256));
        assert_eq!(subtrees_under(2, 256), None);
        assert_eq!(subtrees_under(3, 0), None);
        assert_eq!(subtrees_under(1, u32::MAX), None);
        assert_eq!(subtree_of_leaf(65_535), 255);
        assert_eq!(subtree_of_leaf(256), 1);
    }

    #[test]
    fn the_horizon_is_the_oldest_match_over_members_that_may_come_back() {
        let mut horizon = Horizon::new(60_000, false);
        assert_eq!(horizon.subtree_horizons()[0], 0, "nothing known before any member");
        horizon.reconcile([(id(1), addr(1), Presence::Present), (id(2), addr(2), Presence::Away)], 1_000);
        horizon.note_match(addr(1), 0..256, 10_000);
        assert_eq!(horizon.subtree_horizons()[7], 0, "the away member never matched");
        horizon.note_match(addr(2), 0..16, 20_000);
        let h = horizon.subtree_horizons();
        assert_eq!((h[0], h[15], h[16]), (10_000, 10_000, 0));
        // Away for longer than the grace: gone for good, no longer counted.
        assert_eq!(horizon.reconcile([(id(1), addr(1), Presence::Present)], 61_001), vec![id(2)]);
        assert_eq!(horizon.subtree_horizons()[16], 10_000);
        // Still listed as away: it stays gone, and does not hold the horizon back.
        let listed = [(id(1), addr(1), Presence::Present), (id(2), addr(2), Presence::Away)];
        assert!(horizon.reconcile(listed, 70_000).is_empty());
        assert_eq!(horizon.subtree_horizons()[16], 10_000);
        // Back: counted again, from no match.
        horizon.reconcile([(id(1), addr(1), Presence::Present), (id(2), addr(2), Presence::Present)], 80_000);
        assert_eq!(horizon.subtree_horizons()[16], 0);
    }

    #[test]
    fn a_new_id_on_an_away_members_address_replaces_it() {
        let mut horizon = Horizon::new(u64::MAX, false);
        horizon.reconcile([(id(1), addr(1), Presence::Away)], 0);
        let gone = horizon.reconcile([(id(1), addr(1), Presence::Away), (id(9), addr(1), Presence::Present)], 5);
        assert_eq!(gone, vec![id(1)]);
        assert_eq!(horizon.members(), 1);
        assert_eq!(horizon.subtree_horizons()[0], 0, "the new node has matched nothing yet");
    }

    #[test]
    fn kept_members_outlive_a_restart_and_hold_the_horizon_back() {
        let mut horizon = Horizon::new(60_000, false);
        assert_eq!(horizon.take_changed(), None);
        horizon.reconcile([(id(1), addr(1), Presence::Present), (id(2), addr(2), Presence::Away)], 1_000);
        let kept = horizon.take_changed().expect("two new members");
        assert_eq!(
            kept,
            vec![
                KeptMember { id: id(1), addr: addr(1), away_since_ms: None },
                KeptMember { id: id(2), addr: addr(2), away_since_ms: Some(1_000) },
            ]
        );
        horizon.note_match(addr(1), 0..256, 5_000);
        horizon.reconcile([(id(1), addr(1), Presence::Present), (id(2), addr(2), Presence::Away)], 6_000);
        assert_eq!(horizon.take_changed(), None, "matches are not kept");
        assert_eq!(decode_kept(&encode_kept(&kept)).as_ref(), Some(&kept));
        assert_eq!(decode_kept(&[0xFF; 3]), None);

        // After a restart the membership lists only member 1.
        let mut restarted = Horizon::new(60_000, false);
        restarted.restore(&kept, 30_000);
        restarted.reconcile([(id(1), addr(1), Presence::Present)], 30_000);
        restarted.note_match(addr(1), 0..256, 31_000);
        assert_eq!(restarted.subtree_horizons()[0], 0, "member 2 may come back: nothing is forgotten");
        // Member 2 is gone for good `member_gone_after` after it went away.
        assert_eq!(restarted.reconcile([(id(1), addr(1), Presence::Present)], 61_001), vec![id(2)]);
        assert_eq!(restarted.subtree_horizons()[0], 31_000);
        // One that was there when we stopped counts as away from the restart.
        let mut again = Horizon::new(60_000, false);
        again.restore(&kept, 100_000);
        assert_eq!(again.reconcile([], 160_000), vec![id(2)], "away since 1,000: gone long ago");
        assert_eq!(again.reconcile([], 160_001), vec![id(1)]);
    }

    #[test]
    fn alone_by_design_forgets_freely() {
        let horizon = Horizon::new(1, true);
        assert_eq!(horizon.subtree_horizons()[100], u64::MAX);
    }
}
