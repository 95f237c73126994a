//! The world's inputs to nodes given outside a lookahead window — client
//! operations, a leave's last flush, the drain after a start — and the
//! world's side of every step: carrying out what it asked for.

use std::collections::VecDeque;
use std::time::Duration;

use rumor::core::io::{Event as NodeEvent, Transmit, Transport};
use rumor::core::store::Write;
use rumor::core::version::NodeId;

use super::step::{self, Effect, FreshQueue, LocalEvent, Shared};
use super::{CHANNEL_DELAY, Event, Phase, World};
use crate::check::Violation;
use crate::check::membership::{MemberNote, late_detection};
use crate::host::{Host, index_of};
use crate::net::{Fate, LinkFaults};
use crate::trace::TraceKind;
use crate::workload::{Held, Op};

impl World {
    // ----- inputs ---------------------------------------------------------

    /// Hands `host`'s queued local writes to its node now, outside a window
    /// (a graceful stop pushes them out before leaving).
    pub(super) fn flush_now(&mut self, host: usize, life: u32) {
        let (shared, h) = self.shared_now(host);
        let mut out = VecDeque::new();
        step::flush(h, shared.window_end, life, &shared, &mut FreshQueue::default(), &mut out);
        self.apply_effects_now(host, out);
    }

    /// Drains `host`'s node after an input given outside a window (a start,
    /// a leave): transmits, events, then its next timeout.
    pub(super) fn after_input(&mut self, host: usize) {
        let (shared, h) = self.shared_now(host);
        let mut out = VecDeque::new();
        step::drain(h, shared.window_end, &shared, &mut FreshQueue::default(), &mut out);
        self.apply_effects_now(host, out);
    }

    /// What a step outside a window may read, and the host it runs on:
    /// everything it schedules goes to the queue.
    fn shared_now(&mut self, host: usize) -> (Shared, &mut Host) {
        let shared = self.shared(self.now);
        (shared, &mut self.hosts[host])
    }

    fn apply_effects_now(&mut self, host: usize, effects: VecDeque<Effect>) {
        for effect in effects {
            if let Some((at, seq, _)) = self.apply_effect(host, effect) {
                debug_assert!(false, "a step outside a window scheduled a fresh event at {at:?} (seq {seq})");
            }
        }
    }

    /// Carries out one effect of a step at `host`, at `self.now`. Returns
    /// the time, sequence number and fresh id of an event the step's
    /// window runs itself.
    pub(super) fn apply_effect(&mut self, host: usize, effect: Effect) -> Option<(Duration, u64, usize)> {
        match effect {
            Effect::ToDownHost => self.net.stats.to_down_host += 1,
            Effect::Partitioned => self.net.stats.partitioned += 1,
            Effect::Delivered { from, transport, payload } => {
                self.net.count_delivered(host, payload.len());
                let kind = match transport {
                    Transport::Datagram => TraceKind::Datagram,
                    Transport::Stream => TraceKind::Frame,
                };
                self.trace.record(self.now, kind, from, host, &payload, None);
            }
            Effect::Timer => self.trace.record(self.now, TraceKind::Timer, host, host, &[], None),
            Effect::Flushed { count } => {
                self.trace.record(self.now, TraceKind::Flush, host, host, &count.to_le_bytes(), None);
            }
            Effect::Held(held) => {
                for (key, version) in held {
                    self.dissemination.write().on_held(host, &key, version, self.now, self.up_hosts);
                }
            }
            Effect::Schedule { at, event, fresh } => {
                let seq = self.next_seq;
                match fresh {
                    Some(id) => {
                        self.next_seq += 1;
                        return Some((at, seq, id));
                    }
                    None => self.schedule(at, Event::local(host, event)),
                }
            }
            Effect::Transmit(t) => self.route(host, t),
            Effect::Node(e) => self.node_event(host, e),
            Effect::Suspicions { new, suspects } => self.classify_suspicions(host, new, &suspects),
            Effect::Runaway(detail) => self.runaway(detail),
        }
        None
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
                store
                    .update(&key, now.wall_ms, |_| (Some(Write::Put { value, expires_at_ms }), ()))
                    .ok()
                    .and_then(|(w, ())| w)
            }
            Op::Del { .. } => {
                // As the server's DEL: a tombstone only for a live key.
                let written = store
                    .update(&key, now.wall_ms, |live| (live.map(|_| Write::Delete), ()))
                    .ok()
                    .and_then(|(w, ())| w);
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
            let newest_before = self.history.newest_version(&key);
            let id = self.history.record_write(key.clone(), host, life, self.now, entry.clone());
            let mut tracker = self.dissemination.write();
            tracker.on_write(id, key.clone(), entry.version, host, self.now, self.up_hosts);
            // The writer's own older pending writes of the key are covered
            // now. And a host that already holds something newer has this
            // write, in effect (a push of it will be stale there and go
            // unnoticed) — but versions only come from writes, so unless an
            // earlier write of the key is newer than this one, only the
            // writer can (a look at every store was a tenth of a run).
            if newest_before.is_some_and(|v| v >= entry.version) {
                for h in &self.hosts {
                    if let Some(s) = h.store() {
                        tracker.on_held(h.index, &key, s.version(&key), self.now, self.up_hosts);
                    }
                }
            } else {
                tracker.on_held(host, &key, Some(entry.version), self.now, self.up_hosts);
            }
            drop(tracker);
            let h = &mut self.hosts[host];
            h.pending_writes.push((key, entry.clone()));
            if !h.flush_queued {
                h.flush_queued = true;
                self.schedule(self.now + CHANNEL_DELAY, Event::local(host, LocalEvent::Flush { life }));
            }
        }
        self.trace.record(self.now, TraceKind::Client, host, host, &payload, None);
    }

    // ----- what steps ask of the world -----------------------------------

    pub(super) fn route(&mut self, from: usize, t: Transmit) {
        let Some(to) = index_of(t.to).filter(|i| *i < self.hosts.len()) else {
            self.net.stats.unroutable += 1;
            return;
        };
        match self.net.route(self.now, from, to, t.transport, &t.payload) {
            Fate::Deliver { at, duplicate } => {
                if let Some(dup_at) = duplicate {
                    let event = LocalEvent::Deliver { from, transport: t.transport, payload: t.payload.clone() };
                    self.schedule(dup_at, Event::local(to, event));
                }
                let event = LocalEvent::Deliver { from, transport: t.transport, payload: t.payload };
                self.schedule(at, Event::local(to, event));
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

    /// `new` members just turned suspect at `host`, which now suspects
    /// `suspects`: how many of them are live hosts behind links that are
    /// not cut?
    pub(super) fn classify_suspicions(&mut self, host: usize, new: u64, suspects: &[(usize, NodeId)]) {
        self.suspicions.total += new;
        for (j, _) in suspects {
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
