//! Anti-entropy, the node's repair of what gossip missed: rounds that
//! compare digest trees with one peer level by level and send only the
//! entries that differ, each message within the byte budget and the frame
//! limit; the catch-up of a node that starts empty, which serves clients
//! only once a caught-up peer has matched it everywhere; and the hand-off
//! of a memory-only node's entries before it stops. The node owns this
//! state and calls in here from its inputs and timers.

use ::core::net::SocketAddr; // an address value; the core opens no socket
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;

use super::{Node, NodeTimer};
use crate::core::digest::{TREE_DEPTH, TREE_FANOUT, leaf_of_hash};
use crate::core::entry::Entry;
use crate::core::gossip::choose_peers;
use crate::core::horizon::{SUBTREE_LEVEL, subtrees_under};
use crate::core::io::{Now, Transmit, Transport};
use crate::core::loading::{CatchUpEnd, Loading, LoadingPolicy};
use crate::core::store::MergeOutcome;
use crate::core::version::{EntryStamp, Timestamp};
use crate::core::wire::{Message, SYNC_MESSAGE_OVERHEAD_BYTES};

/// One `SyncDigests` position and its children's digests, at most: a
/// varint position (5) and `TREE_FANOUT` varint digests (10 each).
const SYNC_DIGESTS_NODE_BYTES: usize = 5 + TREE_FANOUT as usize * 10;

/// Extra rounds a node catching up opens per sync interval, at most.
const LOADING_ROUNDS_MAX: usize = 4;

/// How often a stopping node opens a hand-off round.
pub(super) const HANDOFF_ROUND_EVERY: Duration = Duration::from_millis(100);

impl Node {
    /// The sync timer: a round with one random live peer, the extra rounds
    /// of a node catching up, and the next tick.
    pub(super) fn sync_round(&mut self, now: Now) {
        if let Some(&peer) = choose_peers(self.membership.live_peers(), 1, &[], &mut self.rng).first() {
            self.start_sync(peer);
        }
        self.open_loading_rounds();
        let next = self.jittered(self.config.sync_interval);
        self.timers.schedule(now.mono + next, NodeTimer::Sync);
    }

    /// The next chunk of a round a budget cut short: the leaves left over,
    /// or a new round if none are.
    pub(super) fn continue_sync_with(&mut self, peer: SocketAddr, now_ms: u64) {
        self.sync_continuations.remove(&peer);
        match self.pending_leaves.remove(&peer) {
            Some(leaves) => self.send_leaf_versions(peer, &leaves, now_ms),
            None => self.start_sync(peer),
        }
    }

    /// Entries a peer sent because we lacked them or held older ones.
    pub(super) fn handle_sync_entries(&mut self, entries: Vec<(Bytes, Entry)>, held: u64, now_ms: u64) {
        self.stats.sync_peer_held = held;
        let mut applied = 0;
        for (key, entry) in entries {
            if self.store.merge(key, entry, now_ms) == MergeOutcome::Applied {
                applied += 1;
            }
        }
        self.stats.sync_entries_applied += applied;
    }

    /// Starts handing off before a stop: a memory-only node's last writes
    /// were pushed once, by datagram, and one lost datagram would lose them
    /// with the process. Until [`Node::handoff_done`], the node opens a sync
    /// round with a random live peer every `HANDOFF_ROUND_EVERY` (100 ms),
    /// saying it is not caught up so that the peer shows it every subtree;
    /// once every subtree has matched a caught-up peer since this call,
    /// each of them holds what we hold there. The driver bounds the wait.
    /// Returns `false`, and waits for nothing, when no peer is live.
    pub fn begin_handoff(&mut self, now: Now) -> bool {
        if self.membership.live_peers().is_empty() {
            return false;
        }
        self.handoff = Some(Loading::new(true, LoadingPolicy::Refuse, Duration::MAX, now.mono));
        self.handoff_round();
        self.timers.schedule(now.mono + HANDOFF_ROUND_EVERY, NodeTimer::Handoff);
        true
    }

    /// Whether a hand-off begun with [`Node::begin_handoff`] is complete
    /// (every subtree matched a caught-up peer since it began).
    pub fn handoff_done(&self) -> bool {
        self.handoff.as_ref().is_none_or(Loading::is_done)
    }

    /// Subtrees a hand-off still waits on, for the log of one that timed out.
    pub fn handoff_remaining(&self) -> usize {
        self.handoff.as_ref().and_then(Loading::remaining).unwrap_or(0)
    }

    pub(super) fn handoff_round(&mut self) {
        if let Some(&peer) = choose_peers(self.membership.live_peers(), 1, &[], &mut self.rng).first() {
            self.start_sync(peer);
        }
    }

    /// Opens a round: our digests of the root's children.
    pub(super) fn start_sync(&mut self, peer: SocketAddr) {
        let sender = self.membership.identity().addr;
        // Membership first: SWIM's gossip can miss a member for a whole
        // probe round in a large mesh (seen at 1,000 nodes); one mismatched
        // digest repairs it.
        self.send_sync(peer, Message::MembersDigest { sender, digest: self.membership.digest() });
        if self.config.sabotage.no_anti_entropy {
            return;
        }
        // Before the digests, so that the peer drops what the flush
        // removes before comparing.
        let flushed = self.store.flushed();
        if flushed != Timestamp::ZERO {
            self.send_sync(peer, Message::Flush { sender, hops_left: 0, upto: flushed });
        }
        self.stats.sync_rounds += 1;
        let digests = self.store.children_digests(0, 0);
        let caught_up = self.says_caught_up();
        self.send_sync(peer, Message::SyncDigests { sender, level: 0, nodes: vec![0], digests, caught_up });
    }

    /// Compares a peer's digests with ours and answers one level down (or
    /// with entries, at the leaves) only where they differ: the cost of a
    /// round follows the difference, not the store's size.
    /// `level`, `nodes` and `digests` were checked by [`Message::check_sync`];
    /// `caught_up` is the peer's word that it has caught up itself.
    pub(super) fn handle_sync_digests(
        &mut self,
        peer: SocketAddr,
        level: u8,
        nodes: &[u32],
        digests: &[u64],
        caught_up: bool,
        now_ms: u64,
    ) {
        let mut differing = Vec::new();
        // A peer catching up learns which subtrees match ours only from
        // digests we send it: above the subtree level, descend into every
        // child for it, not only the differing ones, so that it compares
        // down to the subtrees (one 256-digest message more per round it
        // opens, only while it catches up).
        let show_all = !caught_up && level + 1 < SUBTREE_LEVEL;
        for (node, theirs) in nodes.iter().zip(digests.chunks(TREE_FANOUT as usize)) {
            let ours = self.store.children_digests(level, *node);
            for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
                let child = node * TREE_FANOUT + i as u32;
                if a != b || show_all {
                    differing.push(child);
                }
                if a == b
                    && level < SUBTREE_LEVEL
                    && let Some(subtrees) = subtrees_under(level + 1, child)
                {
                    // The peer held, when it sent this, what we hold here now.
                    self.horizon.note_match(peer, subtrees.clone(), now_ms);
                    if caught_up && let Some(handoff) = self.handoff.as_mut() {
                        handoff.note_match(subtrees.clone());
                    }
                    if !caught_up {
                        self.loading.note_fresh_match(peer, subtrees);
                    } else if let Some(end) = self.loading.note_match(subtrees) {
                        self.caught_up(end);
                    }
                }
            }
        }
        if !caught_up {
            self.check_new_mesh();
        }
        if differing.is_empty() {
            self.stats.sync_in_step += 1;
            return;
        }
        let sender = self.membership.identity().addr;
        if level + 1 == TREE_DEPTH {
            self.send_leaf_versions(peer, &differing, now_ms);
        } else {
            // Within the frame limit: the positions left out still differ
            // next round, which descends to them once these are repaired.
            differing.truncate(self.frame_room(SYNC_DIGESTS_NODE_BYTES).max(1));
            let digests = differing.iter().flat_map(|n| self.store.children_digests(level + 1, *n)).collect();
            let caught_up = self.says_caught_up();
            let message = Message::SyncDigests { sender, level: level + 1, nodes: differing, digests, caught_up };
            self.send_sync(peer, message);
        }
    }

    /// At the differing leaves: sends what we hold there as version
    /// summaries, within the byte budget.
    pub(super) fn send_leaf_versions(&mut self, peer: SocketAddr, leaves: &[u32], now_ms: u64) {
        let (included, versions) =
            self.store.leaf_versions(leaves, now_ms, self.summary_budget(), self.summary_limit());
        if included.is_empty() {
            return;
        }
        self.continue_sync(peer, &leaves[included.len()..]);
        let sender = self.membership.identity().addr;
        self.send_sync(peer, Message::SyncVersions { sender, leaves: included, versions });
    }

    /// Compares a peer's summaries with ours: sends what it lacks, asks for
    /// what we lack. Only differing entries travel.
    pub(super) fn handle_sync_versions(
        &mut self,
        peer: SocketAddr,
        leaves: &[u32],
        versions: Vec<(u64, EntryStamp)>,
        now_ms: u64,
    ) {
        // Our side of the comparison is budgeted too: an empty peer sends no
        // summaries for every leaf, and comparing all of ours at once would
        // cost the whole store per chunk.
        let (included, ours) = self.store.leaf_versions(leaves, now_ms, self.summary_budget(), self.summary_limit());
        if included.is_empty() {
            return;
        }
        self.continue_sync(peer, &leaves[included.len()..]);
        let leaves = &included[..];
        let covered: BTreeSet<u32> = included.iter().copied().collect();
        let theirs: BTreeMap<u64, EntryStamp> =
            versions.into_iter().filter(|(hash, _)| covered.contains(&leaf_of_hash(*hash))).collect();
        let mut to_send = BTreeSet::new();
        for (hash, version) in &ours {
            if theirs.get(hash).is_none_or(|v| version.newer_in_some_part(v)) {
                to_send.insert(*hash);
            }
        }
        let ours: BTreeMap<u64, EntryStamp> = ours.into_iter().collect();
        let wanted: Vec<u64> = theirs
            .iter()
            .filter(|(h, v)| ours.get(*h).is_none_or(|mine| v.newer_in_some_part(mine)))
            .map(|(h, _)| *h)
            .collect();
        if to_send.is_empty() && wanted.is_empty() {
            self.stats.sync_in_step += 1;
            return;
        }
        if !wanted.is_empty() {
            let sender = self.membership.identity().addr;
            self.send_sync(peer, Message::SyncWant { sender, leaves: leaves.to_vec(), key_hashes: wanted });
        }
        self.send_entries(peer, leaves, &to_send, now_ms);
    }

    /// Sends our entries of `hashes` in `leaves`, within the byte budget; if
    /// the budget cut them short, another round follows at once.
    pub(super) fn send_entries(&mut self, peer: SocketAddr, leaves: &[u32], hashes: &BTreeSet<u64>, now_ms: u64) {
        if hashes.is_empty() {
            return;
        }
        let limit = self.frame_room(1);
        let sync_budget = self.config.sync_budget_bytes;
        let (covered, entries) = self.store.entries_by_hash(leaves, hashes, now_ms, sync_budget, limit);
        self.continue_sync(peer, &leaves[covered..]);
        self.stats.sync_entries_sent += entries.len() as u64;
        let held = self.store.entry_count() as u64;
        self.send_sync(peer, Message::SyncEntries { entries, held });
    }

    /// Schedules the next chunk with `peer` at once, from the leaves a
    /// budget cut left over (if any), unless a continuation is pending.
    pub(super) fn continue_sync(&mut self, peer: SocketAddr, rest: &[u32]) {
        if rest.is_empty() || !self.sync_continuations.insert(peer) {
            return;
        }
        self.pending_leaves.insert(peer, rest.to_vec());
        self.timers.schedule(Duration::ZERO, NodeTimer::SyncWith(peer));
    }

    /// Budget for version summaries: a quarter of the entry budget, since a
    /// summary is a fraction of an entry and the entries they lead to
    /// should fit one message.
    pub(super) fn summary_budget(&self) -> usize {
        (self.config.sync_budget_bytes / 4).max(1)
    }

    /// Bytes of summaries one `SyncVersions` may carry within the frame limit.
    pub(super) fn summary_limit(&self) -> usize {
        self.frame_room(1)
    }

    /// How many items of `item_bytes` (at most, encoded) fit in one sync
    /// message beside its fixed part, within the frame limit.
    pub(super) fn frame_room(&self, item_bytes: usize) -> usize {
        self.config.max_stream_bytes.saturating_sub(SYNC_MESSAGE_OVERHEAD_BYTES) / item_bytes
    }

    /// What our digests say of us: caught up, unless we are catching up —
    /// or handing off before a stop, when the peer must show us every
    /// subtree it matches (see [`Node::begin_handoff`]).
    pub(super) fn says_caught_up(&self) -> bool {
        self.loading.is_done() && self.handoff.is_none()
    }

    /// While catching up: rounds with a few live members that may still
    /// teach us something — a caught-up peer we have not heard from, or a
    /// peer catching up too that has not matched us everywhere (a new mesh
    /// is recognised only once every live member has).
    pub(super) fn open_loading_rounds(&mut self) {
        if self.loading.is_done() {
            return;
        }
        let candidates: Vec<SocketAddr> =
            self.membership.live_peers().iter().copied().filter(|p| self.loading.worth_a_round(p)).collect();
        for peer in choose_peers(&candidates, LOADING_ROUNDS_MAX, &[], &mut self.rng) {
            self.start_sync(peer);
        }
    }

    /// Ends the catch-up if this is a new mesh: every seed is a live
    /// member, and every live member is catching up too and matched us in
    /// every subtree (see [`Loading::check_new_mesh`]).
    pub(super) fn check_new_mesh(&mut self) {
        if self.loading.is_done() {
            return;
        }
        let me = self.membership.identity().addr;
        let live = self.membership.live_peers();
        if !self.config.seeds.iter().all(|seed| *seed == me || live.contains(seed)) {
            return;
        }
        let live = live.to_vec();
        if let Some(end) = self.loading.check_new_mesh(&live) {
            self.caught_up(end);
        }
    }

    /// The catch-up is over: clients are served from now on.
    pub(super) fn caught_up(&mut self, end: CatchUpEnd) {
        self.store.publish_catch_up(self.loading.state());
        let held = self.store.entry_count();
        match end {
            CatchUpEnd::Matched => tracing::info!(held, "caught up with the mesh: serving clients"),
            CatchUpEnd::NewMesh => {
                tracing::info!(held, "every seed and member is new and holds what we hold: serving clients")
            }
            CatchUpEnd::GaveUp => tracing::warn!(
                held,
                wait_ms = self.config.loading_wait.as_millis() as u64,
                "no caught-up peer answered within loading_wait_ms: serving what this node holds"
            ),
        }
    }

    /// Our member list, cut to what fits the frame limit: records past it
    /// reach the peer through SWIM or a later round.
    pub(super) fn send_members(&mut self, peer: SocketAddr, reply: bool) {
        let sender = self.membership.identity().addr;
        let mut members = self.membership.records();
        let room = self.frame_room(1);
        let mut spent = 0;
        let fit = members
            .iter()
            .take_while(|record| {
                spent += postcard::experimental::serialized_size(record).unwrap_or(usize::MAX / 2);
                spent <= room
            })
            .count();
        members.truncate(fit.max(1));
        self.send_sync(peer, Message::Members { sender, members, reply });
    }

    /// Sends a sync message over the stream, unless it came out over the
    /// frame limit: the receiver would drop it and the round would be
    /// rebuilt the same way forever, so it is never sent, and said loudly.
    pub(super) fn send_sync(&mut self, peer: SocketAddr, message: Message) {
        let payload = Bytes::from(message.encode());
        let limit = self.config.max_stream_bytes;
        if payload.len() > limit {
            self.stats.sync_oversized += 1;
            tracing::warn!(%peer, bytes = payload.len(), limit, "sync message over the frame limit not sent");
            return;
        }
        self.stats.sync_bytes_out += payload.len() as u64;
        self.transmits.push_back(Transmit { to: peer, transport: Transport::Stream, payload });
    }
}
