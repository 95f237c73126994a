//! One host's share of a lookahead window: its deliveries, wake-ups and
//! hand-overs, carried out on whatever thread, with everything they ask of the
//! world kept as [`Effect`]s for the world to carry out afterwards.
//!
//! No packet reaches another host sooner than the shortest link latency
//! ([`LOOKAHEAD`]), so what one host does within that much simulated time
//! of the earliest queued event cannot change what another host does in it:
//! each host's events of the window can run on their own. The world then
//! carries out the effects in the order one thread would have — by
//! (simulated time, sequence), handing out sequence numbers as it would
//! have — so routing draws the same random numbers, the trace hashes the
//! same events and every checker sees the same run, for any thread count.
//!
//! A step reads only what no step of the same window can change: the
//! network's partition (changed only by faults, which end a window), and
//! the dissemination tracker's list of writes the host lacks (a step can
//! only shorten it, and looking at a key the host already holds is a no-op
//! in the tracker).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;
use rumor::core::io::{Event as NodeEvent, Transmit, Transport};
use rumor::core::membership::MemberState;
use rumor::core::store::Store;
use rumor::core::tag::{TAG_GOSSIP, TAG_SWIM, TAG_SWIM_PADDED};
use rumor::core::version::{NodeId, Version};
use rumor::core::wire::Message;

use super::{DRAIN_MAX, WRITE_BATCH_MAX};
use crate::check::bounds::DisseminationTracker;
use crate::host::{Host, addr_of, index_of};
use crate::net::Partition;

/// The shortest time a packet spends between two hosts (the network's
/// smallest base latency), so the longest stretch of simulated time in
/// which hosts cannot affect one another.
pub const LOOKAHEAD: Duration = crate::net::BASE_LATENCY_MIN;

/// An event that only its host's state decides.
#[derive(Clone, Debug)]
pub(super) enum LocalEvent {
    /// A datagram or frame arrives.
    Deliver { from: usize, transport: Transport, payload: Bytes },
    /// The node asked to be woken.
    Wake,
    /// The driver's channel hands queued local writes to the node.
    HandOver { life: u32 },
}

/// A host's event taken from the world's queue, with its place in it.
#[derive(Debug)]
pub(super) struct Queued {
    pub at: Duration,
    pub seq: u64,
    pub event: LocalEvent,
}

/// What a step asks of the world, in the order one thread would do it.
#[derive(Debug)]
pub(super) enum Effect {
    /// A packet for a host that is down: count it.
    ToDownHost,
    /// A packet cut by a partition that began in flight: count it.
    Partitioned,
    /// A packet handed to the node: count it and trace it.
    Delivered { from: usize, transport: Transport, payload: Bytes },
    /// The node's timers fired: trace it.
    Timer,
    /// `count` local writes handed to the node: trace it.
    HandedOver { count: u64 },
    /// The host now holds these versions: tell the dissemination tracker.
    Held(Vec<(Bytes, Option<Version>)>),
    /// Queue `event` at `at`; `fresh` names it if this window runs it.
    Schedule { at: Duration, event: LocalEvent, fresh: Option<usize> },
    /// Route a packet.
    Transmit(Transmit),
    /// Note a membership event.
    Node(NodeEvent),
    /// `new` members turned suspect; these are the suspects now.
    Suspicions { new: u64, suspects: Vec<(usize, NodeId)> },
    /// A node produced more than the drain bound from one input.
    Runaway(String),
}

/// One event a step carried out, and how many effects it left.
#[derive(Debug)]
pub(super) struct Record {
    pub at: Duration,
    /// Its sequence number if it came from the world's queue; a fresh
    /// event gets its number when the world carries out the effect that
    /// scheduled it.
    pub seq: Option<u64>,
    pub effects: usize,
}

/// What a step may read of the world.
#[derive(Clone)]
pub(super) struct StepView {
    /// The network's cut, if any.
    pub cut: Option<Arc<Partition>>,
    /// Read only while steps run; the world writes it between windows.
    pub dissemination: Arc<RwLock<DisseminationTracker>>,
    /// Events scheduled before this (exclusive) run in this window.
    pub window_end: Duration,
}

impl StepView {
    fn blocks(&self, from: usize, to: usize) -> bool {
        self.cut.as_ref().is_some_and(|p| p.blocks(from, to))
    }
}

/// Events scheduled during a step, run in the window if early enough.
#[derive(Debug, Default)]
pub(super) struct FreshQueue {
    /// (time, id) of the fresh events not run yet: ids grow in the order
    /// the events were scheduled.
    heap: BinaryHeap<Reverse<(Duration, usize)>>,
    /// Each fresh event, by id, until run.
    events: Vec<Option<LocalEvent>>,
    /// The record index of each fresh event, by id, once run.
    pub records: Vec<usize>,
}

impl FreshQueue {
    fn schedule(&mut self, at: Duration, event: LocalEvent, shared: &StepView, out: &mut VecDeque<Effect>) {
        let fresh = (at < shared.window_end).then(|| {
            let id = self.records.len();
            self.records.push(usize::MAX);
            self.events.push(Some(event.clone()));
            self.heap.push(Reverse((at, id)));
            id
        });
        out.push_back(Effect::Schedule { at, event, fresh });
    }
}

/// One host's events of a window, and what running them left.
#[derive(Debug, Default)]
pub(super) struct HostBatch {
    pub host: usize,
    /// Taken from the world's queue, in queue order.
    pub queued: VecDeque<Queued>,
    pub records: Vec<Record>,
    pub effects: VecDeque<Effect>,
    pub fresh: FreshQueue,
    /// Records carried out so far (a check on the order).
    pub committed: usize,
}

impl HostBatch {
    /// Empties it for reuse by `host`.
    pub fn reset(&mut self, host: usize) {
        self.host = host;
        self.queued.clear();
        self.records.clear();
        self.effects.clear();
        self.fresh.heap.clear();
        self.fresh.events.clear();
        self.fresh.records.clear();
    }

    /// Runs the queued events and those they schedule within the window,
    /// in the order one thread would: by time, and at equal times queued
    /// events (scheduled earlier) before fresh ones, fresh ones in the
    /// order they were scheduled.
    pub fn run(&mut self, host: &mut Host, shared: &StepView) {
        loop {
            let from_queue = match (self.queued.front(), self.fresh.heap.peek()) {
                (Some(q), Some(Reverse((at, _)))) => q.at <= *at,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (at, seq, event, fresh_id) = if from_queue {
                let Some(q) = self.queued.pop_front() else { break };
                (q.at, Some(q.seq), q.event, None)
            } else {
                let Some(Reverse((at, id))) = self.fresh.heap.pop() else { break };
                let Some(event) = self.fresh.events.get_mut(id).and_then(Option::take) else { break };
                (at, None, event, Some(id))
            };
            if let Some(id) = fresh_id {
                self.fresh.records[id] = self.records.len();
            }
            let before = self.effects.len();
            run_event(host, at, event, shared, &mut self.fresh, &mut self.effects);
            self.records.push(Record { at, seq, effects: self.effects.len() - before });
        }
    }
}

/// Carries out one event at `host`.
pub(super) fn run_event(
    host: &mut Host,
    at: Duration,
    event: LocalEvent,
    shared: &StepView,
    fresh: &mut FreshQueue,
    out: &mut VecDeque<Effect>,
) {
    match event {
        LocalEvent::Deliver { from, transport, payload } => {
            deliver(host, at, from, transport, payload, shared, fresh, out)
        }
        LocalEvent::Wake => wake(host, at, shared, fresh, out),
        LocalEvent::HandOver { life } => hand_over(host, at, life, shared, fresh, out),
    }
}

#[allow(clippy::too_many_arguments)]
fn deliver(
    host: &mut Host,
    at: Duration,
    from: usize,
    transport: Transport,
    payload: Bytes,
    shared: &StepView,
    fresh: &mut FreshQueue,
    out: &mut VecDeque<Effect>,
) {
    if !host.is_up() {
        out.push_back(Effect::ToDownHost);
        return;
    }
    // A cut that began while the packet was in flight drops it too (and
    // a TCP connection across it would fail).
    if shared.blocks(from, host.index) {
        out.push_back(Effect::Partitioned);
        return;
    }
    out.push_back(Effect::Delivered { from, transport, payload: payload.clone() });
    let now = host.now(at);
    let from_addr = addr_of(from);
    let Some(node) = host.node.as_mut() else {
        return;
    };
    let store = Arc::clone(node.store());
    let applied_before = store.stats().merges_applied.load(AtomicOrdering::Relaxed);
    match transport {
        Transport::Datagram => node.handle_datagram(from_addr, &payload, now),
        Transport::Stream => node.handle_frame(from_addr, &payload, now),
    }
    if store.stats().merges_applied.load(AtomicOrdering::Relaxed) != applied_before {
        note_applied(host.index, &store, &payload, shared, out);
    }
    drain(host, at, shared, fresh, out);
}

/// Something new was merged at `host` from `payload`: which keys the
/// dissemination tracker should look at, with what the host now holds.
fn note_applied(host: usize, store: &Store, payload: &[u8], shared: &StepView, out: &mut VecDeque<Effect>) {
    let keys: Vec<Bytes> = match payload.split_first() {
        // Membership traffic carries no entries: nothing to look at
        // (it was most packets, each looking at every missing write).
        Some((&TAG_SWIM | &TAG_SWIM_PADDED, _)) => return,
        Some((&TAG_GOSSIP, body)) => match Message::decode_body(body) {
            Ok(Message::Push { entries, .. }) => entries.into_iter().map(|(k, _)| k).collect(),
            // Repair traffic: look at every write this host still lacks.
            _ => shared.dissemination.read().missing_at(host),
        },
        _ => shared.dissemination.read().missing_at(host),
    };
    let held = keys
        .into_iter()
        .map(|key| {
            let version = store.version(&key);
            (key, version)
        })
        .collect();
    out.push_back(Effect::Held(held));
}

fn wake(host: &mut Host, at: Duration, shared: &StepView, fresh: &mut FreshQueue, out: &mut VecDeque<Effect>) {
    if host.wake_at != Some(at) {
        return;
    }
    host.wake_at = None;
    let now = host.now(at);
    let Some(node) = host.node.as_mut() else {
        return;
    };
    if node.poll_timeout().is_some_and(|d| d <= at) {
        node.handle_timeout(now);
        out.push_back(Effect::Timer);
    }
    drain(host, at, shared, fresh, out);
}

/// Hands the host's queued local writes to its node, a batch at a time.
pub(super) fn hand_over(
    host: &mut Host,
    at: Duration,
    life: u32,
    shared: &StepView,
    fresh: &mut FreshQueue,
    out: &mut VecDeque<Effect>,
) {
    if host.life != life || !host.is_up() {
        return;
    }
    host.hand_over_queued = false;
    if let Some(upto) = host.pending_flush.take() {
        let now = host.now(at);
        if let Some(node) = host.node.as_mut() {
            node.handle_local_flush(upto, now);
        }
        if host.pending_writes.is_empty() {
            drain(host, at, shared, fresh, out);
        }
    }
    if host.pending_writes.is_empty() {
        return;
    }
    let take = host.pending_writes.len().min(WRITE_BATCH_MAX);
    let batch: Vec<_> = host.pending_writes.drain(..take).collect();
    let more = !host.pending_writes.is_empty();
    let now = host.now(at);
    if let Some(node) = host.node.as_mut() {
        node.handle_local_writes(&batch, now);
    }
    out.push_back(Effect::HandedOver { count: batch.len() as u64 });
    if more {
        host.hand_over_queued = true;
        fresh.schedule(at, LocalEvent::HandOver { life }, shared, out);
    }
    drain(host, at, shared, fresh, out);
}

/// Drains the host's node in the order the core documents: transmits,
/// events, then its next timeout.
pub(super) fn drain(
    host: &mut Host,
    at: Duration,
    shared: &StepView,
    fresh: &mut FreshQueue,
    out: &mut VecDeque<Effect>,
) {
    let Some(node) = host.node.as_mut() else {
        return;
    };
    let first = out.len();
    let transmits = drain_bounded(|| node.poll_transmit(), Effect::Transmit, out);
    let events = drain_bounded(|| node.poll_event(), Effect::Node, out);
    let deadline = node.poll_timeout();
    let suspicions = node.membership_stats().suspicions;
    if let Some(wall_ms) = node.poll_in_mesh()
        && let Some(disk) = &host.disk
    {
        disk.note_in_mesh(wall_ms);
    }
    if let Some(members) = node.poll_kept_members()
        && let Some(disk) = &host.disk
    {
        disk.note_kept_members(&members);
    }
    if transmits > DRAIN_MAX || events > DRAIN_MAX {
        let detail = format!("n{} produced more than {DRAIN_MAX} transmits or events from one input", host.index);
        out.insert(first, Effect::Runaway(detail));
    }
    if suspicions > host.suspicions_seen {
        let new = suspicions - host.suspicions_seen;
        host.suspicions_seen = suspicions;
        let suspects = node
            .members()
            .into_iter()
            .filter(|m| m.state == MemberState::Suspect)
            .filter_map(|m| index_of(m.identity.addr).map(|j| (j, m.identity.id)))
            .collect();
        out.push_back(Effect::Suspicions { new, suspects });
    }
    if let Some(deadline) = deadline {
        let wake_at = deadline.max(at);
        if host.wake_at.is_none_or(|w| wake_at < w) {
            host.wake_at = Some(wake_at);
            fresh.schedule(wake_at, LocalEvent::Wake, shared, out);
        }
    }
}

/// Moves what `next` yields into `out` as effects, stopping past
/// [`DRAIN_MAX`] (a runaway node); returns how many it moved.
fn drain_bounded<T>(
    mut next: impl FnMut() -> Option<T>,
    effect: impl Fn(T) -> Effect,
    out: &mut VecDeque<Effect>,
) -> usize {
    let mut moved = 0;
    while let Some(item) = next() {
        out.push_back(effect(item));
        moved += 1;
        if moved > DRAIN_MAX {
            break;
        }
    }
    moved
}
