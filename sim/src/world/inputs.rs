//! The world's inputs to nodes — deliveries, wake-ups, local writes,
//! client operations — and draining a node after each, in the order the
//! core documents: transmits, then events, then the next timeout.

use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;

use bytes::Bytes;
use rumor::core::io::{Event as NodeEvent, Transmit, Transport};
use rumor::core::membership::MemberState;
use rumor::core::store::{Store, Write};
use rumor::core::wire::{Message, TAG_GOSSIP, TAG_SWIM};

use super::{CHANNEL_DELAY, DRAIN_MAX, Event, Phase, WRITE_BATCH_MAX, World};
use crate::check::Violation;
use crate::check::membership::{MemberNote, late_detection};
use crate::host::{addr_of, index_of};
use crate::net::{Fate, LinkFaults};
use crate::trace::TraceKind;
use crate::workload::{Held, Op};

impl World {
    // ----- inputs -------------------------------------------------------

    pub(super) fn deliver(&mut self, from: usize, to: usize, transport: Transport, payload: Bytes) {
        if !self.hosts[to].is_up() {
            self.net.stats.to_down_host += 1;
            return;
        }
        // A cut that began while the packet was in flight drops it too (and
        // a TCP connection across it would fail).
        if self.net.blocks(from, to) {
            self.net.stats.partitioned += 1;
            return;
        }
        self.net.count_delivered(to, payload.len());
        let kind = match transport {
            Transport::Datagram => TraceKind::Datagram,
            Transport::Stream => TraceKind::Frame,
        };
        self.trace.record(self.now, kind, from, to, &payload, None);
        let now = self.hosts[to].now(self.now);
        let from_addr = addr_of(from);
        let Some(node) = self.hosts[to].node.as_mut() else {
            return;
        };
        let store = Arc::clone(node.store());
        let applied_before = store.stats().merges_applied.load(AtomicOrdering::Relaxed);
        match transport {
            Transport::Datagram => node.handle_datagram(from_addr, &payload, now),
            Transport::Stream => node.handle_frame(from_addr, &payload, now),
        }
        if store.stats().merges_applied.load(AtomicOrdering::Relaxed) != applied_before {
            self.note_applied(to, &store, &payload);
        }
        self.after_input(to);
    }

    /// Something new was merged at `host` from `payload`: tell the
    /// dissemination tracker which keys to look at.
    pub(super) fn note_applied(&mut self, host: usize, store: &Store, payload: &[u8]) {
        let keys: Vec<Bytes> = match payload.split_first() {
            // Membership traffic carries no entries: nothing to look at
            // (it was most packets, each looking at every missing write).
            Some((&TAG_SWIM, _)) => return,
            Some((&TAG_GOSSIP, body)) => match Message::decode_body(body) {
                Ok(Message::Push { entries, .. }) => entries.into_iter().map(|(k, _)| k).collect(),
                // Repair traffic: look at every write this host still lacks.
                _ => self.dissemination.missing_at(host),
            },
            _ => self.dissemination.missing_at(host),
        };
        for key in keys {
            let held = store.version(&key);
            self.dissemination.on_held(host, &key, held, self.now, self.up_hosts);
        }
    }

    pub(super) fn wake(&mut self, host: usize) {
        if self.hosts[host].wake_at != Some(self.now) {
            return;
        }
        self.hosts[host].wake_at = None;
        let now = self.hosts[host].now(self.now);
        let Some(node) = self.hosts[host].node.as_mut() else {
            return;
        };
        if node.poll_timeout().is_some_and(|d| d <= self.now) {
            node.handle_timeout(now);
            self.trace.record(self.now, TraceKind::Timer, host, host, &[], None);
        }
        self.after_input(host);
    }

    pub(super) fn flush(&mut self, host: usize, life: u32) {
        let h = &mut self.hosts[host];
        if h.life != life || !h.is_up() {
            return;
        }
        h.flush_queued = false;
        if h.pending_writes.is_empty() {
            return;
        }
        let take = h.pending_writes.len().min(WRITE_BATCH_MAX);
        let batch: Vec<_> = h.pending_writes.drain(..take).collect();
        let more = !h.pending_writes.is_empty();
        let now = h.now(self.now);
        if let Some(node) = h.node.as_mut() {
            node.handle_local_writes(&batch, now);
        }
        self.trace.record(self.now, TraceKind::Flush, host, host, &(batch.len() as u64).to_le_bytes(), None);
        if more {
            self.hosts[host].flush_queued = true;
            self.schedule(self.now, Event::Flush { host, life });
        }
        self.after_input(host);
    }

    pub(super) fn client_op(&mut self) {
        if self.phase != Phase::Safety {
            return;
        }
        if let Some(gap) = self.workload.next_gap() {
            self.schedule(self.now + gap, Event::Client);
        }
        let (host, op) = self.workload.next_op(self.hosts.len());
        let h = &self.hosts[host];
        let Some(store) = h.store().cloned() else {
            self.history.refused += 1;
            self.trace.record(
                self.now,
                TraceKind::Client,
                host,
                host,
                op.key(),
                Some(format!("refused (n{host} down)")),
            );
            return;
        };
        let life = h.life;
        let now = h.now(self.now);
        let key = op.key().clone();
        self.history.observe(self.now, host, life, key.clone(), store.entry(&key).as_ref().map(Held::of));
        let written = match op {
            Op::Set { value, px_ms, .. } => {
                let expires_at_ms = px_ms.map(|px| now.wall_ms.saturating_add(px));
                store.update(&key, now.wall_ms, |_| (Some(Write::Put { value, expires_at_ms }), ())).0
            }
            Op::Del { .. } => {
                // As the server's DEL: a tombstone only for a live key.
                let written = store.update(&key, now.wall_ms, |live| (live.map(|_| Write::Delete), ())).0;
                if written.is_none() {
                    self.history.empty_deletes += 1;
                }
                written
            }
            Op::Get { .. } => {
                let _ = store.get(&key, now.wall_ms);
                self.history.reads += 1;
                None
            }
        };
        let mut payload = key.to_vec();
        if let Some(entry) = &written {
            payload.extend_from_slice(&entry.version.timestamp.packed().to_le_bytes());
            payload.extend_from_slice(entry.version.writer.uuid().as_bytes());
            let id = self.history.record_write(key.clone(), host, life, self.now, entry.clone());
            self.dissemination.on_write(id, key.clone(), entry.version, host, self.now, self.up_hosts);
            // Hosts that already hold something newer have it, in effect
            // (a push of this write will be stale there and go unnoticed);
            // and the writer's own older pending writes are now covered.
            for h in &self.hosts {
                if let Some(s) = h.store() {
                    self.dissemination.on_held(h.index, &key, s.version(&key), self.now, self.up_hosts);
                }
            }
            let h = &mut self.hosts[host];
            h.pending_writes.push((key, entry.clone()));
            if !h.flush_queued {
                h.flush_queued = true;
                self.schedule(self.now + CHANNEL_DELAY, Event::Flush { host, life });
            }
        }
        self.trace.record(self.now, TraceKind::Client, host, host, &payload, None);
    }

    // ----- draining a node ------------------------------------------------

    /// Drains `host`'s node in the documented order: transmits, events,
    /// then its next timeout.
    pub(super) fn after_input(&mut self, host: usize) {
        let Some(node) = self.hosts[host].node.as_mut() else {
            return;
        };
        let mut transmits = std::mem::take(&mut self.transmit_buf);
        let mut events = std::mem::take(&mut self.event_buf);
        while let Some(t) = node.poll_transmit() {
            transmits.push(t);
            if transmits.len() > DRAIN_MAX {
                break;
            }
        }
        while let Some(e) = node.poll_event() {
            events.push(e);
            if events.len() > DRAIN_MAX {
                break;
            }
        }
        let deadline = node.poll_timeout();
        let suspicions = node.membership_stats().suspicions;
        let in_mesh = !node.is_cut_off();
        let h = &self.hosts[host];
        if let Some(disk) = &h.disk
            && in_mesh
        {
            disk.note_in_mesh(h.clock.now(self.now).wall_ms);
        }
        if transmits.len() > DRAIN_MAX || events.len() > DRAIN_MAX {
            self.runaway(format!("n{host} produced more than {DRAIN_MAX} transmits or events from one input"));
        }
        for t in transmits.drain(..) {
            self.route(host, t);
        }
        for e in events.drain(..) {
            self.node_event(host, e);
        }
        self.transmit_buf = transmits;
        self.event_buf = events;
        if suspicions > self.hosts[host].suspicions_seen {
            let new = suspicions - self.hosts[host].suspicions_seen;
            self.hosts[host].suspicions_seen = suspicions;
            self.classify_suspicions(host, new);
        }
        if let Some(deadline) = deadline {
            let at = deadline.max(self.now);
            let h = &mut self.hosts[host];
            if h.wake_at.is_none_or(|w| at < w) {
                h.wake_at = Some(at);
                self.schedule(at, Event::Wake { host });
            }
        }
    }

    pub(super) fn route(&mut self, from: usize, t: Transmit) {
        let Some(to) = index_of(t.to).filter(|i| *i < self.hosts.len()) else {
            self.net.stats.unroutable += 1;
            return;
        };
        match self.net.route(self.now, from, to, t.transport, &t.payload) {
            Fate::Deliver { at, duplicate } => {
                if let Some(dup_at) = duplicate {
                    self.schedule(
                        dup_at,
                        Event::Deliver { from, to, transport: t.transport, payload: t.payload.clone() },
                    );
                }
                self.schedule(at, Event::Deliver { from, to, transport: t.transport, payload: t.payload });
            }
            Fate::Lost | Fate::Partitioned => {}
        }
    }

    pub(super) fn node_event(&mut self, host: usize, event: NodeEvent) {
        match event {
            NodeEvent::MemberUp { addr, .. } => {
                if let Some(j) = index_of(addr).filter(|j| *j != host) {
                    self.views.member_up(host, j);
                    self.member_log.push(self.now, host, j, MemberNote::Up);
                }
            }
            NodeEvent::MemberDown { addr, .. } => {
                if let Some(j) = index_of(addr).filter(|j| *j != host) {
                    self.views.member_down(host, j);
                    self.detections.on_down(host, j, self.now);
                    self.member_log.push(self.now, host, j, MemberNote::Down);
                }
            }
            NodeEvent::Isolated => self.isolations += 1,
            NodeEvent::DeclaredDown => self.declared_down += 1,
            NodeEvent::Joined => {}
        }
    }

    /// `new` members just turned suspect at `host`: how many of them are
    /// live hosts behind links that are not cut?
    pub(super) fn classify_suspicions(&mut self, host: usize, new: u64) {
        self.suspicions.total += new;
        let Some(node) = self.hosts[host].node.as_ref() else {
            return;
        };
        let suspects: Vec<(usize, rumor::core::version::NodeId)> = node
            .members()
            .into_iter()
            .filter(|m| m.state == MemberState::Suspect)
            .filter_map(|m| index_of(m.identity.addr).map(|j| (j, m.identity.id)))
            .collect();
        for (j, _) in &suspects {
            self.member_log.push(self.now, host, *j, MemberNote::Suspect);
        }
        let clean = self.net.faults() == LinkFaults::NONE && !self.net.is_partitioned();
        let healthy = suspects
            .iter()
            .filter(|(j, id)| {
                self.hosts.get(*j).is_some_and(|h| h.node.as_ref().is_some_and(|n| n.identity().id == *id))
                    && !self.net.blocks(host, *j)
                    && !self.net.blocks(*j, host)
            })
            .count() as u64;
        let healthy = healthy.min(new);
        self.suspicions.false_on_healthy_links += healthy;
        if clean {
            self.suspicions.false_on_clean_network += healthy;
        }
    }

    pub(super) fn detection_deadline(&mut self, record: usize) {
        if let Some(r) = self.detections.record(record)
            && let Some(v) = late_detection(r, self.detect_bound, self.now)
            && self.late_reported.insert(record)
        {
            self.violations.push(v);
        }
    }

    pub(super) fn runaway(&mut self, detail: String) {
        self.violations.push(Violation {
            checker: "world",
            invariant: "every loop and queue is bounded",
            detail,
            key: None,
            hosts: Vec::new(),
            at: self.now,
        });
        self.phase = Phase::Done;
    }
}
