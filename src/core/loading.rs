//! Whether a node that started empty has caught up with the mesh once.
//!
//! A node that starts with nothing (memory only, or an empty data dir) and
//! has peers would otherwise answer `GET` with nil and let `SET NX` succeed
//! for keys the mesh holds, until anti-entropy has brought them. So it
//! counts as *loading* until every subtree of its digest tree (the horizon's
//! 256) has once compared equal to the same subtree of a peer that had
//! caught up itself: at that moment we held exactly what that peer held
//! there, and the peer held everything acknowledged to it. A peer that is
//! loading too says so in its digests and does not count, so two fresh
//! nodes do not take each other's empty stores as the mesh's.
//!
//! A mesh that starts for the first time (or restarts whole, memory only)
//! has no caught-up node at all. A node catching up therefore also counts
//! as caught up once every seed is a live member and every live member is
//! catching up too and has matched it in every subtree: nobody there holds
//! anything it lacks. A member that caught up, or one that never matched
//! it, keeps it waiting.
//!
//! A node gives up waiting, and counts as caught up, when no caught-up peer
//! has sent it digests for `wait`: a mesh that restarted empty as a whole
//! has nobody to catch up with, and a node cut off from every peer serves
//! what it has rather than nothing for ever.
//!
//! The node only tracks the state; what clients see of it (`-LOADING` or
//! partial data) is the [`LoadingPolicy`], read from the store.

use ::core::net::SocketAddr; // an address value; the core opens no socket
use std::collections::BTreeMap;
use std::time::Duration;

use super::horizon::SUBTREES;

/// What clients of a node that is catching up get.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadingPolicy {
    /// `-LOADING` for every command that reads or writes keys, as Redis
    /// answers while it loads its dataset.
    #[default]
    Refuse,
    /// Whatever has arrived so far: reads may miss keys the mesh holds.
    Serve,
}

/// What clients are told, as the node publishes it to the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CatchUpState {
    /// Caught up once (or never had to): serve.
    Done,
    /// Catching up, and clients get `-LOADING`.
    Refusing,
    /// Catching up, and clients get what has arrived.
    Serving,
}

/// How far the catch-up has come.
#[derive(Debug)]
pub struct Loading {
    /// Per subtree, whether a caught-up peer matched us there; `None` once
    /// caught up.
    matched: Option<Box<[bool; SUBTREES]>>,
    /// Subtrees still to be matched.
    remaining: usize,
    /// Give up after this long without digests from a caught-up peer.
    wait: Duration,
    /// When digests from a caught-up peer last came (monotonic), or the start.
    last_heard: Duration,
    policy: LoadingPolicy,
    /// Peers catching up too, and how many subtrees each has matched us in.
    fresh: BTreeMap<SocketAddr, Matches>,
    /// Peers that said they caught up.
    caught_up_peers: std::collections::BTreeSet<SocketAddr>,
}

/// Which subtrees one peer matched us in.
#[derive(Debug)]
struct Matches {
    seen: Box<[bool; SUBTREES]>,
    count: usize,
}

impl Matches {
    fn note(&mut self, subtrees: std::ops::Range<usize>) {
        for s in subtrees {
            if let Some(seen) = self.seen.get_mut(s)
                && !*seen
            {
                *seen = true;
                self.count += 1;
            }
        }
    }
}

/// How a catch-up ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatchUpEnd {
    /// Every subtree matched a caught-up peer.
    Matched,
    /// Every seed is live and every live member is catching up too and
    /// matched us everywhere: a new mesh.
    NewMesh,
    /// No caught-up peer sent digests for the whole wait.
    GaveUp,
}

impl Loading {
    /// A node that must catch up (`needed`: it starts empty and has peers),
    /// started at `now` (monotonic).
    pub fn new(needed: bool, policy: LoadingPolicy, wait: Duration, now: Duration) -> Self {
        Loading {
            matched: needed.then(|| Box::new([false; SUBTREES])),
            remaining: SUBTREES,
            wait,
            last_heard: now,
            policy,
            fresh: BTreeMap::new(),
            caught_up_peers: Default::default(),
        }
    }

    /// Whether the node has caught up once (or never had to).
    pub fn is_done(&self) -> bool {
        self.matched.is_none()
    }

    /// What clients are told now.
    pub fn state(&self) -> CatchUpState {
        match (self.is_done(), self.policy) {
            (true, _) => CatchUpState::Done,
            (false, LoadingPolicy::Refuse) => CatchUpState::Refusing,
            (false, LoadingPolicy::Serve) => CatchUpState::Serving,
        }
    }

    /// Digests came at `now` from `peer`, which has caught up.
    pub fn heard(&mut self, peer: SocketAddr, now: Duration) {
        self.last_heard = self.last_heard.max(now);
        if self.matched.is_some() {
            self.caught_up_peers.insert(peer);
        }
    }

    /// Whether a round with `peer` may still teach us something the
    /// regular rounds would not: it is neither known caught up (the regular
    /// rounds reach it) nor a fresh peer that matched us everywhere.
    pub fn worth_a_round(&self, peer: &SocketAddr) -> bool {
        !self.caught_up_peers.contains(peer) && !self.fresh_matched(peer)
    }

    /// A caught-up peer matched us in `subtrees`; returns whether that
    /// ended the catch-up.
    pub fn note_match(&mut self, subtrees: std::ops::Range<usize>) -> Option<CatchUpEnd> {
        let matched = self.matched.as_mut()?;
        for s in subtrees {
            if let Some(seen) = matched.get_mut(s)
                && !*seen
            {
                *seen = true;
                self.remaining -= 1;
            }
        }
        (self.remaining == 0).then(|| {
            self.matched = None;
            self.fresh.clear();
            self.caught_up_peers.clear();
            CatchUpEnd::Matched
        })
    }

    /// `peer`, catching up too, matched us in `subtrees`.
    pub fn note_fresh_match(&mut self, peer: SocketAddr, subtrees: std::ops::Range<usize>) {
        if self.matched.is_none() {
            return;
        }
        self.fresh
            .entry(peer)
            .or_insert_with(|| Matches { seen: Box::new([false; SUBTREES]), count: 0 })
            .note(subtrees);
    }

    /// Whether `peer` is catching up too and matched us everywhere.
    pub fn fresh_matched(&self, peer: &SocketAddr) -> bool {
        self.fresh.get(peer).is_some_and(|m| m.count == SUBTREES)
    }

    /// Ends the catch-up as a new mesh if every one of `live` (the live
    /// members, every seed among them) is catching up too and matched us
    /// everywhere.
    pub fn check_new_mesh(&mut self, live: &[SocketAddr]) -> Option<CatchUpEnd> {
        if self.matched.is_none() || live.is_empty() || !live.iter().all(|p| self.fresh_matched(p)) {
            return None;
        }
        self.matched = None;
        self.fresh.clear();
        self.caught_up_peers.clear();
        Some(CatchUpEnd::NewMesh)
    }

    /// Gives up if no caught-up peer has sent digests for the whole wait.
    pub fn check_wait(&mut self, now: Duration) -> Option<CatchUpEnd> {
        if self.matched.is_none() || now.saturating_sub(self.last_heard) < self.wait {
            return None;
        }
        self.matched = None;
        self.fresh.clear();
        self.caught_up_peers.clear();
        Some(CatchUpEnd::GaveUp)
    }

    /// Subtrees still to be matched, while catching up.
    pub fn remaining(&self) -> Option<usize> {
        self.matched.as_ref().map(|_| self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn caught_up_when_every_subtree_matched_once() {
        let mut loading = Loading::new(true, LoadingPolicy::Refuse, secs(10), secs(0));
        assert_eq!(loading.state(), CatchUpState::Refusing);
        assert_eq!(loading.note_match(0..128), None);
        assert_eq!(loading.note_match(0..128), None, "a subtree counts once");
        assert_eq!(loading.remaining(), Some(128));
        assert_eq!(loading.note_match(128..256), Some(CatchUpEnd::Matched));
        assert_eq!(loading.state(), CatchUpState::Done);
        assert_eq!(loading.note_match(0..1), None);
    }

    #[test]
    fn gives_up_only_after_the_whole_wait_without_a_caught_up_peer() {
        let mut loading = Loading::new(true, LoadingPolicy::Serve, secs(10), secs(0));
        assert_eq!(loading.state(), CatchUpState::Serving);
        assert_eq!(loading.check_wait(secs(9)), None);
        loading.heard(SocketAddr::from(([127, 0, 0, 1], 1)), secs(9));
        assert_eq!(loading.check_wait(secs(18)), None, "heard from a caught-up peer at 9 s");
        assert_eq!(loading.check_wait(secs(19)), Some(CatchUpEnd::GaveUp));
        assert!(loading.is_done());
        assert_eq!(loading.check_wait(secs(100)), None);
    }

    #[test]
    fn a_new_mesh_is_every_live_member_catching_up_and_matched_everywhere() {
        let (a, b) = (SocketAddr::from(([127, 0, 0, 1], 1)), SocketAddr::from(([127, 0, 0, 1], 2)));
        let mut loading = Loading::new(true, LoadingPolicy::Refuse, secs(10), secs(0));
        assert_eq!(loading.check_new_mesh(&[]), None, "nobody live");
        loading.note_fresh_match(a, 0..256);
        loading.note_fresh_match(b, 0..255);
        assert_eq!(loading.check_new_mesh(&[a, b]), None, "b has not matched subtree 255");
        assert_eq!(loading.remaining(), Some(256), "fresh matches are not catch-up matches");
        loading.note_fresh_match(b, 255..256);
        assert_eq!(loading.check_new_mesh(&[a, b]), Some(CatchUpEnd::NewMesh));
        assert!(loading.is_done());
    }

    #[test]
    fn a_node_that_need_not_catch_up_is_done_from_the_start() {
        let mut loading = Loading::new(false, LoadingPolicy::Refuse, secs(10), secs(0));
        assert_eq!(loading.state(), CatchUpState::Done);
        assert_eq!(loading.remaining(), None);
        assert_eq!(loading.check_wait(secs(100)), None);
    }
}
