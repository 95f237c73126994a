//! The node: the one facade a driver talks to.
//!
//! Inputs are `handle_*` calls, each with the current [`Now`]; outputs are
//! drained with `poll_*`. After every input a driver drains, in this order:
//! [`Node::poll_transmit`] until `None` (send), [`Node::poll_event`] until
//! `None` (log), [`Node::poll_in_mesh`] (keep in the data dir, if any), then
//! [`Node::poll_timeout`] (when to call
//! [`Node::handle_timeout`] next). The node never reads a clock, never touches
//! a socket and draws randomness only from the seed it was given.

use ::core::net::SocketAddr; // an address value; the core opens no socket
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::gossip::{Packed, choose_peers, pack};
use super::horizon::{Horizon, KeptMember, Presence};
use super::io::{Event, Now, Transmit, Transport};
use super::loading::Loading;
use super::membership::{Effects, Identity, MemberState, MemberView, Membership, MembershipStats, SwimTimer};
use super::start::is_stale;
pub use super::start::{NodeConfig, NodeMemory};
use super::store::{Entry, FlushOutcome, MergeOutcome, SHARD_COUNT, Store};
use super::strangers::StrangerGate;
use super::tag::{STRANGER_ANSWER_FACTOR, TAG_GOSSIP, TAG_SWIM, TAG_SWIM_PADDED, pad_swim, unpad_swim};
use super::timer::TimerQueue;
use super::version::Timestamp;
use super::wire::Message;

mod anti_entropy;
mod confirm;

use anti_entropy::HANDOFF_ROUND_EVERY;
use confirm::Confirmations;
pub use confirm::{CONFIRM_RETRY, ConfirmStats};

/// Shards swept per sweep tick; a full pass takes `SHARD_COUNT / SWEEP_SHARDS` ticks.
const SWEEP_SHARDS: usize = 64;
/// How often the sweep runs.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// First wait between announces while not joined.
const JOIN_RETRY_MIN: Duration = Duration::from_millis(100);
/// Down members to re-announce to per round while isolated.
const DOWN_MEMBERS_PER_ANNOUNCE: usize = 3;
/// Refusals of strangers logged as warnings before they go to debug: the
/// first ones tell the operator the port is probed, a flood must not fill
/// the log.
const STRANGER_WARNINGS: u64 = 10;

/// How a packet arrived: a datagram's source is its sender's gossip
/// address; a stream's source port is an ephemeral one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Datagram,
    Stream,
}

/// The node's timers.
#[derive(Debug)]
pub enum NodeTimer {
    /// foca's.
    Swim(SwimTimer),
    /// Announce to seeds (and remembered members); the number is a
    /// generation so a rescheduled announce cancels older ones.
    Announce(u64),
    /// Start an anti-entropy round with a random live peer.
    Sync,
    /// Go on at once with a round that hit its byte budget.
    SyncWith(SocketAddr),
    /// Sweep expired entries and old tombstones from a few shards.
    Sweep,
    /// Open the next hand-off round of a stopping node.
    Handoff,
    /// Send again the confirmation rounds not yet acknowledged (WAIT).
    ConfirmRetry,
}

impl From<SwimTimer> for NodeTimer {
    fn from(timer: SwimTimer) -> Self {
        NodeTimer::Swim(timer)
    }
}

/// Gossip counters for INFO and metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct GossipStats {
    /// Datagrams and frames received.
    pub packets_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Datagrams and frames handed to the driver to send, SWIM's included.
    pub packets_out: u64,
    /// Bytes handed to the driver to send.
    pub bytes_out: u64,
    /// Entries received in pushes.
    pub entries_received: u64,
    /// Received entries that were new to us.
    pub entries_applied: u64,
    /// Entries sent in pushes (counted once per peer).
    pub entries_sent: u64,
    /// Payloads that did not decode.
    pub decode_errors: u64,
    /// Sync messages refused for their shape (positions out of range or
    /// out of order, counts that do not match) before anything acted on them.
    pub sync_refused: u64,
    /// Sync messages not sent because they came out over the frame limit
    /// (a receiver would drop them).
    pub sync_oversized: u64,
    /// Anti-entropy rounds started.
    pub sync_rounds: u64,
    /// Sync messages that found the compared trees equal.
    pub sync_in_step: u64,
    /// Entries sent in sync messages.
    pub sync_entries_sent: u64,
    /// Entries received in sync messages that were new to us.
    pub sync_entries_applied: u64,
    /// Entries held by the last peer that sent us sync entries: the
    /// target of a catch-up, for its progress report.
    pub sync_peer_held: u64,
    /// Bytes of sync messages sent.
    pub sync_bytes_out: u64,
    /// Expired values turned into tombstones by the sweep.
    pub expired_swept: u64,
    /// Dead entries forgotten after the tombstone TTL.
    pub tombstones_forgotten: u64,
    /// Times this node came back after being away for longer than
    /// `member_gone_after` and dropped its old entries.
    pub stale_state_discarded: u64,
    /// Entries dropped on those returns.
    pub stale_entries_dropped: u64,
    /// Members treated as gone for good by the horizon.
    pub members_gone: u64,
    /// Gossip messages refused because their sender is not a current member
    /// at the packet's source (strangers, forged or redirected senders).
    pub strangers_refused: u64,
    /// SWIM packets from strangers dropped over their rate limit.
    pub strangers_limited: u64,
    /// Answers to strangers dropped for being over
    /// [`STRANGER_ANSWER_FACTOR`] times the request's size.
    pub stranger_answers_dropped: u64,
    /// FLUSHALLs taken from peers.
    pub flushes_applied: u64,
}

/// One rumor node: membership, store and dissemination.
pub struct Node {
    config: NodeConfig,
    store: Arc<Store>,
    membership: Membership,
    rng: Xoshiro256PlusPlus,
    timers: TimerQueue<NodeTimer>,
    transmits: VecDeque<Transmit>,
    /// Entries waiting to be pushed, by (peer, hops left), as indexes into
    /// `outbox_batches`. Everything pushed between two drains shares
    /// datagrams: under load that turns many one-entry packets into a few
    /// full ones.
    outbox: BTreeMap<(SocketAddr, u8), Vec<usize>>,
    /// The entries of each push since the last drain, held once however
    /// many peers they go to: peers sent the same batches get the same
    /// payloads, encoded once.
    outbox_batches: Vec<Vec<(Bytes, Entry)>>,
    events: VecDeque<Event>,
    announce_generation: u64,
    announce_backoff: Duration,
    stats: GossipStats,
    /// Next shard the sweep visits.
    sweep_cursor: usize,
    /// Wall ms since when no other member was active, if isolated after
    /// having been joined.
    isolated_since_ms: Option<u64>,
    /// Peers with a continuation round scheduled. One at a time per peer:
    /// both sides of a round may cut their entries short, and a round per
    /// cut would double the rounds in flight each time.
    sync_continuations: BTreeSet<SocketAddr>,
    /// Differing leaves a budget cut left for the next chunk, per peer: the
    /// continuation resumes there instead of descending the tree again.
    pending_leaves: BTreeMap<SocketAddr, Vec<u32>>,
    /// Who may come back and where each last matched us: what dead
    /// entries may be forgotten.
    horizon: Horizon,
    /// Rate limits for addresses that are not members.
    strangers: StrangerGate,
    /// Whether a node that started empty has caught up with a peer once.
    loading: Loading,
    /// Whether the round a catching-up node opens on joining was opened.
    loading_round_opened: bool,
    /// While a stopping node hands its entries off: which subtrees a
    /// caught-up peer has matched since the stop began.
    handoff: Option<Loading>,
    /// When this node was last noted as in a mesh (wall ms), for the data
    /// dir's age at the next start.
    in_mesh_noted_ms: Option<u64>,
    /// A note not yet taken by [`Node::poll_in_mesh`].
    in_mesh_note: Option<u64>,
    /// Local write batches and the peers that confirmed them (WAIT).
    confirmations: Confirmations,
}

/// How often a node in a mesh has that noted for its data dir: the next
/// start judges the dir's age by the last note, so a stop loses at most
/// this much of it.
const IN_MESH_NOTE_EVERY_MS: u64 = 1000;

macro_rules! effects {
    ($self:ident) => {
        Effects { transmits: &mut $self.transmits, timers: &mut $self.timers, events: &mut $self.events }
    };
}

impl Node {
    /// A node that starts announcing to its seeds at once, with `memory`
    /// from [`NodeConfig::start_store`]. A node started from a data dir
    /// whose age was judged current remembers when it was last in a
    /// mesh: until it rejoins it counts as away since then, and if it
    /// rejoins more than `member_gone_after` later it drops its old entries
    /// as after a long partition.
    pub fn new(
        identity: Identity,
        config: NodeConfig,
        store: Arc<Store>,
        seed: u64,
        now: Now,
        memory: NodeMemory,
    ) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let swim_rng = Xoshiro256PlusPlus::seed_from_u64(rng.next_u64());
        let alone = config.seeds.iter().all(|seed| *seed == identity.addr);
        let mut horizon = Horizon::new(config.member_gone_after.as_millis() as u64, alone);
        horizon.restore(&memory.members, now.wall_ms);
        store.publish_horizons(&horizon.subtree_horizons());
        let membership = Membership::new(identity, &config.swim, swim_rng);
        let strangers = StrangerGate::new(config.strangers);
        // Alone, or with what it held before, a node has nothing to wait for.
        let needs_catch_up = !alone && store.entry_count() == 0;
        let loading = Loading::new(needs_catch_up, config.loading, config.loading_wait, now.mono);
        store.publish_catch_up(loading.state());
        let mut node = Node {
            config,
            store,
            membership,
            rng,
            timers: TimerQueue::default(),
            transmits: VecDeque::new(),
            outbox: BTreeMap::new(),
            outbox_batches: Vec::new(),
            events: VecDeque::new(),
            announce_generation: 0,
            announce_backoff: JOIN_RETRY_MIN,
            stats: GossipStats::default(),
            sweep_cursor: 0,
            // A mesh of its own was never away.
            isolated_since_ms: memory.last_in_mesh_ms.filter(|_| !alone),
            sync_continuations: BTreeSet::new(),
            pending_leaves: BTreeMap::new(),
            horizon,
            strangers,
            loading,
            loading_round_opened: false,
            handoff: None,
            in_mesh_noted_ms: None,
            in_mesh_note: None,
            confirmations: Confirmations::default(),
        };
        node.schedule_announce(now.mono);
        let first_sync = node.jittered(node.config.sync_interval);
        node.timers.schedule(now.mono + first_sync, NodeTimer::Sync);
        node.timers.schedule(now.mono + SWEEP_INTERVAL, NodeTimer::Sweep);
        node
    }

    /// A UDP datagram arrived on the gossip port from `from`, which is the
    /// sender's gossip address. Strangers (not current members) may only
    /// speak SWIM, which is how they join, within a rate per source IP.
    pub fn handle_datagram(&mut self, from: SocketAddr, data: &[u8], now: Now) {
        self.stats.packets_in += 1;
        self.stats.bytes_in += data.len() as u64;
        match data.split_first() {
            Some((&TAG_SWIM, body)) => self.handle_swim(from, body, data.len(), now),
            Some((&TAG_SWIM_PADDED, body)) => match unpad_swim(body) {
                Some(body) => self.handle_swim(from, body, data.len(), now),
                None => self.stats.decode_errors += 1,
            },
            Some((&TAG_GOSSIP, body)) => self.handle_gossip(from, Via::Datagram, body, now),
            Some((tag, _)) => {
                self.stats.decode_errors += 1;
                tracing::debug!(%from, tag, "datagram with unknown tag");
            }
            None => self.stats.decode_errors += 1,
        }
        self.after_input(now);
    }

    /// A foca payload that came in a datagram of `request_bytes`.
    fn handle_swim(&mut self, from: SocketAddr, body: &[u8], request_bytes: usize, now: Now) {
        if self.membership.is_member(from) {
            self.membership.handle_data(from, body, now.mono, effects!(self));
        } else if self.strangers.admit(from.ip(), now.mono) {
            let queued = self.transmits.len();
            self.membership.handle_data(from, body, now.mono, effects!(self));
            self.cap_answers_to_stranger(from, queued, request_bytes);
        } else {
            self.stats.strangers_limited += 1;
            tracing::debug!(%from, "SWIM packet from a stranger over its rate limit dropped");
        }
    }

    /// Drops what the last input queued (from `queued` on) for the stranger
    /// at `to` past [`STRANGER_ANSWER_FACTOR`] times its `request_bytes`: a
    /// source can be forged, and what we send there must not be much more
    /// than what was sent to us.
    fn cap_answers_to_stranger(&mut self, to: SocketAddr, queued: usize, request_bytes: usize) {
        let mut room = request_bytes.saturating_mul(STRANGER_ANSWER_FACTOR);
        let mut index = queued;
        while index < self.transmits.len() {
            let transmit = &self.transmits[index];
            if transmit.to != to {
                index += 1;
            } else if transmit.payload.len() <= room {
                room -= transmit.payload.len();
                index += 1;
            } else {
                self.transmits.remove(index);
                self.stats.stranger_answers_dropped += 1;
                tracing::debug!(%to, request_bytes, "answer to a stranger over its size cap dropped");
            }
        }
    }

    /// A frame arrived on a TCP stream to the gossip port (length prefix
    /// already removed) from `from`, the connection's source address.
    pub fn handle_frame(&mut self, from: SocketAddr, data: &[u8], now: Now) {
        self.stats.packets_in += 1;
        self.stats.bytes_in += data.len() as u64;
        match data.split_first() {
            Some((&TAG_GOSSIP, body)) => self.handle_gossip(from, Via::Stream, body, now),
            _ => {
                self.stats.decode_errors += 1;
                tracing::debug!(%from, "stream frame with unknown tag");
            }
        }
        self.after_input(now);
    }

    /// Writes clients made on this node, already applied to the store:
    /// pushes them at once to every live peer (meshes of at most
    /// `direct_push_max`) or to `fanout` random ones. Takes `now` like every
    /// input, though pushing needs none.
    pub fn handle_local_writes(&mut self, writes: &[(Bytes, Entry)], _now: Now) {
        if writes.is_empty() {
            return;
        }
        self.note_local_batch(writes);
        let (peers, hops_left) = self.first_hop();
        self.push_to(peers, writes.to_vec(), hops_left);
    }

    /// Who hears of a local change first, and with how many hops left:
    /// every live peer in a mesh of at most `direct_push_max` (no
    /// forwarding), else `fanout` random ones.
    fn first_hop(&mut self) -> (Vec<SocketAddr>, u8) {
        let live = self.membership.live_peers();
        if live.len() <= self.config.direct_push_max {
            (live.to_vec(), 0)
        } else {
            (choose_peers(live, self.config.fanout, &[], &mut self.rng), self.config.max_hops)
        }
    }

    /// A FLUSHALL a client made on this node, already applied to the store:
    /// pushed as writes are (see [`Node::handle_local_writes`]); sync
    /// rounds carry it to whoever the push misses.
    pub fn handle_local_flush(&mut self, upto: Timestamp, _now: Now) {
        let (peers, hops_left) = self.first_hop();
        self.send_flush(peers, upto, hops_left);
    }

    fn send_flush(&mut self, peers: Vec<SocketAddr>, upto: Timestamp, hops_left: u8) {
        if self.config.sabotage.no_push {
            return;
        }
        let sender = self.membership.identity().addr;
        let payload = Bytes::from(Message::Flush { sender, hops_left, upto }.encode());
        for to in peers {
            self.transmits.push_back(Transmit { to, transport: Transport::Datagram, payload: payload.clone() });
        }
    }

    /// Fires every timer due at `now`.
    ///
    /// Only timers scheduled before the call fire: one a timer schedules
    /// for now (a sync continuation) waits for the next call, after the
    /// driver has sent what this one produced.
    pub fn handle_timeout(&mut self, now: Now) {
        let mark = self.timers.mark();
        while let Some(timer) = self.timers.pop_due_before(now.mono, mark) {
            match timer {
                NodeTimer::Swim(timer) => self.membership.handle_timer(timer, now.mono, effects!(self)),
                NodeTimer::Announce(generation) if generation == self.announce_generation => {
                    self.announce_round(now);
                }
                NodeTimer::Announce(_) => {}
                NodeTimer::Sync => self.sync_round(now),
                NodeTimer::SyncWith(peer) => self.continue_sync_with(peer, now.wall_ms),
                NodeTimer::ConfirmRetry => self.confirm_retry(now),
                NodeTimer::Handoff => {
                    if !self.handoff_done() {
                        self.handoff_round();
                        self.timers.schedule(now.mono + HANDOFF_ROUND_EVERY, NodeTimer::Handoff);
                    }
                }
                NodeTimer::Sweep => {
                    if let Some(end) = self.loading.check_wait(now.mono) {
                        self.caught_up(end);
                    }
                    self.check_new_mesh();
                    self.refresh_horizon(now);
                    let start = self.sweep_cursor;
                    let swept = self.store.sweep(start..start + SWEEP_SHARDS, now.wall_ms);
                    self.sweep_cursor = (start + SWEEP_SHARDS) % SHARD_COUNT;
                    self.stats.expired_swept += swept.expired;
                    self.stats.tombstones_forgotten += swept.forgotten;
                    self.timers.schedule(now.mono + SWEEP_INTERVAL, NodeTimer::Sweep);
                }
            }
        }
        self.after_input(now);
    }

    /// Takes `members` as already known and alive, without gossiping them
    /// (see [`Membership::restore`]).
    pub fn restore_members(&mut self, members: &[Identity], now: Now) {
        self.membership.restore(members, now.mono, effects!(self));
        self.after_input(now);
    }

    /// Leaves the mesh gracefully; the driver should drain transmits, send
    /// them, and stop.
    pub fn leave(&mut self, now: Now) {
        // Before SWIM's own Down, so that the others can tell a leave from
        // a failure; datagrams, as a leaving node cannot wait on streams.
        let payload = Bytes::from(Message::Leaving { identity: self.membership.identity().clone() }.encode());
        for &to in self.membership.live_peers() {
            self.transmits.push_back(Transmit { to, transport: Transport::Datagram, payload: payload.clone() });
        }
        self.membership.leave(now.mono, effects!(self));
        // In the mesh until now, as the next start will want to know.
        if !self.is_cut_off() {
            self.note_in_mesh(now.wall_ms);
        }
    }

    /// When this node was in a mesh, if that is news since the last call: a
    /// driver with a data dir keeps it there, and the next start judges the
    /// dir's age by it ([`NodeConfig::data_dir_age`]). Noted about once a
    /// second while the node is not cut off, and on leaving.
    pub fn poll_in_mesh(&mut self) -> Option<u64> {
        self.in_mesh_note.take()
    }

    /// The members that may come back with what they hold, if they changed
    /// since the last call: a driver with a data dir keeps them there, and
    /// the next start hands them back ([`NodeMemory::members`]), so that a
    /// restart does not forget a member the mesh no longer lists.
    pub fn poll_kept_members(&mut self) -> Option<Vec<KeptMember>> {
        self.horizon.take_changed()
    }

    /// The next thing to send. Membership traffic comes first; pushes are
    /// packed when it is drained.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.transmits.is_empty() {
            self.pack_outbox();
        }
        let transmit = self.transmits.pop_front()?;
        self.stats.packets_out += 1;
        self.stats.bytes_out += transmit.payload.len() as u64;
        Some(transmit)
    }

    /// The next event to log.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Node::handle_timeout`] must next be called (monotonic).
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.timers.next_deadline()
    }

    /// Our current identity.
    pub fn identity(&self) -> &Identity {
        self.membership.identity()
    }

    /// Every known member, self first.
    pub fn members(&self) -> Vec<MemberView> {
        self.membership.members()
    }

    /// The store this node replicates.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Gossip counters.
    pub fn gossip_stats(&self) -> GossipStats {
        self.stats
    }

    /// Membership counters.
    pub fn membership_stats(&self) -> MembershipStats {
        self.membership.stats()
    }

    /// Whether we are part of a mesh (some other member is active).
    pub fn is_joined(&self) -> bool {
        self.membership.is_active()
    }

    /// Subtrees still to be matched by a caught-up peer while the node
    /// catches up after starting empty; `None` once caught up (or when it
    /// never had to).
    pub fn catch_up_remaining(&self) -> Option<usize> {
        self.loading.remaining()
    }

    /// Whether we are cut off from a mesh that may live on without us: we
    /// lost every other member and some of them failed rather than left,
    /// or we restarted from disk and have not rejoined yet. A node alone
    /// from the start, or whose peers all left, is not cut off: it is the
    /// mesh.
    pub fn is_cut_off(&self) -> bool {
        self.isolated_since_ms.is_some()
    }

    /// Who sent `message`, if it may be acted on: a current member at the
    /// packet's real source. A datagram comes from its sender's gossip
    /// address; a stream from an ephemeral port, so there the member named
    /// as sender must be on the connection's IP. Answers go to the address
    /// returned, so never to one a stranger names.
    fn admit(&self, message: &Message, from: SocketAddr, via: Via) -> Option<SocketAddr> {
        let peer = match (via, message.sender()) {
            (Via::Datagram, Some(named)) if named != from => return None,
            (Via::Datagram, _) => from,
            (Via::Stream, Some(named)) if named.ip() == from.ip() => named,
            (Via::Stream, Some(_)) => return None,
            // Entries name no sender and get no answer: a member must be on
            // that IP.
            (Via::Stream, None) => return self.membership.has_member_at(from.ip()).then_some(from),
        };
        match message {
            // Its SWIM Down may have overtaken it: a member already listed
            // down may still say it left, which only changes how it is listed.
            Message::Leaving { .. } => self.membership.is_known(peer),
            _ => self.membership.is_member(peer),
        }
        .then_some(peer)
    }

    /// Counts and logs a refused message: warnings the first few times,
    /// debug after.
    fn refuse(&mut self, from: SocketAddr, message: &Message) {
        self.stats.strangers_refused += 1;
        let (kind, named) = (message.kind(), message.sender());
        if self.stats.strangers_refused <= STRANGER_WARNINGS {
            tracing::warn!(
                %from,
                ?named,
                kind,
                "gossip from an address that is not a current member refused (the first {STRANGER_WARNINGS} are \
                 logged as warnings, later ones at debug)"
            );
        } else {
            tracing::debug!(%from, ?named, kind, "gossip from an address that is not a current member refused");
        }
    }

    fn handle_gossip(&mut self, from: SocketAddr, via: Via, body: &[u8], now: Now) {
        let message = match Message::decode_body(body) {
            Ok(message) => message,
            Err(error) => {
                self.stats.decode_errors += 1;
                tracing::debug!(%from, %error, "gossip message dropped");
                return;
            }
        };
        if let Err(reason) = message.check_sync() {
            self.stats.sync_refused += 1;
            tracing::debug!(%from, %reason, "sync message refused");
            return;
        }
        let Some(peer) = self.admit(&message, from, via) else {
            self.refuse(from, &message);
            return;
        };
        match message {
            Message::Push { sender: _, hops_left, entries } => {
                self.stats.entries_received += entries.len() as u64;
                let mut fresh = Vec::new();
                for (key, entry) in entries {
                    if self.store.merge_ref(&key, &entry, now.wall_ms) == MergeOutcome::Applied {
                        fresh.push((key, entry));
                    }
                }
                self.stats.entries_applied += fresh.len() as u64;
                if hops_left > 0 && !fresh.is_empty() {
                    self.push(fresh, hops_left - 1, &[peer]);
                }
            }
            // `peer` is the sender each names, checked by `admit`.
            Message::SyncDigests { sender: _, level, nodes, digests, caught_up } => {
                if caught_up {
                    self.loading.heard(peer, now.mono);
                }
                self.handle_sync_digests(peer, level, &nodes, &digests, caught_up, now.wall_ms);
            }
            Message::SyncVersions { sender: _, leaves, versions } => {
                self.handle_sync_versions(peer, &leaves, versions, now.wall_ms)
            }
            Message::SyncWant { sender: _, leaves, key_hashes } => {
                let wanted: BTreeSet<u64> = key_hashes.into_iter().collect();
                self.send_entries(peer, &leaves, &wanted, now.wall_ms);
            }
            Message::MembersDigest { sender: _, digest } => {
                if digest != self.membership.digest() {
                    self.send_members(peer, true);
                }
            }
            Message::Members { sender: _, members, reply } => {
                self.membership.apply_records(members, now.mono, effects!(self));
                if reply {
                    self.send_members(peer, false);
                }
            }
            Message::Leaving { identity } => self.membership.note_leaving(&identity, now.mono, effects!(self)),
            Message::SyncEntries { entries, held } => self.handle_sync_entries(entries, held, now.wall_ms),
            Message::Confirm { sender: _, round, part, parts: _, entries, digests } => {
                self.handle_confirm(peer, round, part, entries, &digests, now.wall_ms);
            }
            Message::Confirmed { sender: _, round, part } => self.handle_confirmed(peer, round, part),
            Message::Flush { sender: _, hops_left, upto } => {
                if self.store.flush(upto, now.wall_ms) == FlushOutcome::Applied {
                    self.stats.flushes_applied += 1;
                    tracing::info!(%upto, from = %peer, "FLUSHALL from a peer taken");
                    if hops_left > 0 {
                        let peers =
                            choose_peers(self.membership.live_peers(), self.config.fanout, &[peer], &mut self.rng);
                        self.send_flush(peers, upto, hops_left - 1);
                    }
                }
            }
        }
    }

    /// `base` ± 25%, from the node's RNG, so rounds of different nodes do
    /// not fall into step.
    fn jittered(&mut self, base: Duration) -> Duration {
        let quarter = base / 4;
        base - quarter + quarter.mul_f64(2.0 * self.rng.random::<f64>())
    }

    fn push(&mut self, entries: Vec<(Bytes, Entry)>, hops_left: u8, skip: &[SocketAddr]) {
        if entries.is_empty() || self.config.sabotage.no_push {
            return;
        }
        let peers = choose_peers(self.membership.live_peers(), self.config.fanout, skip, &mut self.rng);
        self.push_to(peers, entries, hops_left);
    }

    fn push_to(&mut self, peers: Vec<SocketAddr>, entries: Vec<(Bytes, Entry)>, hops_left: u8) {
        if self.config.sabotage.no_push || peers.is_empty() {
            return;
        }
        let batch = self.outbox_batches.len();
        self.outbox_batches.push(entries);
        for peer in peers {
            self.outbox.entry((peer, hops_left)).or_default().push(batch);
        }
    }

    /// Packs each peer's entries (its batches in order) into pushes. Peers
    /// with the same batches and hops get the very payloads packed for the
    /// first of them: packing is a function of exactly those.
    fn pack_outbox(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let me = self.membership.identity().addr;
        let batches = std::mem::take(&mut self.outbox_batches);
        let mut packed_for: BTreeMap<(u8, Vec<usize>), Vec<Packed>> = BTreeMap::new();
        for ((to, hops_left), indexes) in std::mem::take(&mut self.outbox) {
            self.stats.entries_sent += indexes.iter().map(|&i| batches[i].len() as u64).sum::<u64>();
            let packed = packed_for.entry((hops_left, indexes)).or_insert_with_key(|(_, indexes)| {
                let (max_datagram, max_stream) = (self.config.max_datagram_bytes, self.config.max_stream_bytes);
                match indexes.as_slice() {
                    [one] => pack(&batches[*one], me, hops_left, max_datagram, max_stream),
                    several => {
                        let entries: Vec<(Bytes, Entry)> =
                            several.iter().flat_map(|&i| batches[i].iter().cloned()).collect();
                        pack(&entries, me, hops_left, max_datagram, max_stream)
                    }
                }
            });
            for message in packed.iter() {
                self.transmits.push_back(Transmit {
                    to,
                    transport: message.transport,
                    payload: message.payload.clone(),
                });
            }
        }
    }

    fn announce_round(&mut self, now: Now) {
        let me = self.membership.identity().addr;
        let live: BTreeSet<SocketAddr> = self.membership.live_peers().iter().copied().collect();
        let mut targets: Vec<SocketAddr> =
            self.config.seeds.iter().copied().filter(|s| *s != me && !live.contains(s)).collect();
        let delay = if self.membership.is_active() {
            self.announce_backoff = JOIN_RETRY_MIN;
            self.config.rejoin_interval
        } else {
            // Isolated: members we knew may be on the far side of a healed
            // partition, and may be the only way back if seeds are gone.
            let down: Vec<SocketAddr> = self.membership.down_peers().filter(|a| !targets.contains(a)).collect();
            targets.extend(choose_peers(&down, DOWN_MEMBERS_PER_ANNOUNCE, &[], &mut self.rng));
            let delay = self.announce_backoff;
            self.announce_backoff = (self.announce_backoff * 2).min(self.config.join_retry_max);
            delay
        };
        for target in targets {
            let queued = self.transmits.len();
            self.membership.announce(target, now.mono, effects!(self));
            // Padded, so that the members' list a seed answers with is
            // within the cap on answers to strangers.
            for transmit in self.transmits.range_mut(queued..).filter(|t| t.to == target) {
                if transmit.payload.first() == Some(&TAG_SWIM) {
                    transmit.payload = pad_swim(&transmit.payload).into();
                }
            }
        }
        self.announce_generation += 1;
        self.timers.schedule(now.mono + delay, NodeTimer::Announce(self.announce_generation));
    }

    fn schedule_announce(&mut self, at: Duration) {
        self.announce_generation += 1;
        self.timers.schedule(at, NodeTimer::Announce(self.announce_generation));
    }

    /// How long an absence makes a member gone for good.
    fn gone_after_ms(&self) -> u64 {
        let gone_after =
            if self.config.sabotage.ttl_only_gc { self.config.tombstone_ttl } else { self.config.member_gone_after };
        gone_after.as_millis() as u64
    }

    /// Brings the horizon up to date with the membership and hands it to
    /// the store, whose sweep forgets by it.
    fn refresh_horizon(&mut self, now: Now) {
        let me = self.membership.identity().id;
        let members = self.membership.members();
        let current = members.iter().filter(|m| m.identity.id != me).map(|m| {
            let presence = match m.state {
                MemberState::Alive | MemberState::Suspect => Presence::Present,
                MemberState::Down | MemberState::Left => Presence::Away,
            };
            (m.identity.id, m.identity.addr, presence)
        });
        for id in self.horizon.reconcile(current, now.wall_ms) {
            self.stats.members_gone += 1;
            tracing::info!(%id, "member treated as gone for good: dead entries are forgotten without it");
        }
        self.store.publish_horizons(&self.horizon.subtree_horizons());
    }

    /// Reacts to membership changes the last input caused.
    fn after_input(&mut self, now: Now) {
        if self.membership.take_isolated() {
            // Start re-joining now rather than at the next slow re-announce.
            self.announce_backoff = JOIN_RETRY_MIN;
            self.schedule_announce(now.mono);
            // Alone because every other member left on purpose, we are what
            // remains of the mesh, not a part cut off from it: nobody can
            // delete behind our back, and our state must survive their
            // return. Otherwise the others may live on without us.
            if self.membership.any_failed() {
                self.isolated_since_ms.get_or_insert(now.wall_ms);
            }
        }
        // A node catching up opens its first round as soon as it has a
        // peer, rather than a sync interval later: until a caught-up peer
        // has matched it, it serves no client.
        if !self.loading.is_done() && !self.loading_round_opened && self.membership.is_active() {
            self.loading_round_opened = true;
            self.open_loading_rounds();
        }
        // Taking `since` ends the absence whether or not it was too long.
        if self.membership.is_active()
            && let Some(since) = self.isolated_since_ms.take()
            && is_stale(since, now.wall_ms, self.gone_after_ms())
        {
            let away_ms = now.wall_ms.saturating_sub(since);
            // A member whose process started before we were cut off (its
            // life is its start-up wall time) kept the mesh going
            // meanwhile, and has treated us as gone for good: it may have
            // forgotten deletes of keys we hold. A forgotten delete died
            // more than the tombstone TTL ago, so what we hold from since
            // then is safe, and the rest anti-entropy brings back if the
            // mesh still has it. If every member we now see started since,
            // nobody ran without us — they were down, as after a crash of
            // the other node of a pair — and our state is the mesh's.
            let me = self.membership.identity().addr;
            let lived_on = self
                .membership
                .members()
                .iter()
                .any(|m| m.identity.addr != me && m.state == MemberState::Alive && m.identity.life < since);
            if lived_on {
                let before_ms = now.wall_ms.saturating_sub(self.config.tombstone_ttl.as_millis() as u64);
                let dropped = if self.config.sabotage.ttl_only_gc {
                    let held = self.store.entry_count();
                    self.store.clear();
                    held
                } else {
                    self.store.drop_older_than(before_ms)
                };
                tracing::warn!(
                    away_ms,
                    dropped,
                    "back after being gone for good: dropped entries older than the tombstone TTL"
                );
                self.stats.stale_state_discarded += 1;
                self.stats.stale_entries_dropped += dropped as u64;
            } else {
                tracing::info!(
                    away_ms,
                    "back after a long absence, among members that all started since: keeping local state"
                );
            }
        }
        if !self.is_cut_off()
            && self.in_mesh_noted_ms.is_none_or(|noted| now.wall_ms.abs_diff(noted) >= IN_MESH_NOTE_EVERY_MS)
        {
            self.note_in_mesh(now.wall_ms);
        }
    }

    fn note_in_mesh(&mut self, wall_ms: u64) {
        self.in_mesh_noted_ms = Some(wall_ms);
        self.in_mesh_note = Some(wall_ms);
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("identity", self.identity()).finish_non_exhaustive()
    }
}
