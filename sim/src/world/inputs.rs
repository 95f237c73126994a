//! The world's inputs to nodes given outside a lookahead window — client
//! operations, a leave's last hand-over, the drain after a start — and the
//! world's side of every step: carrying out what it asked for.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use rumor::core::io::{Event as NodeEvent, Transmit, Transport};
use rumor::core::loading::CatchUpState;
use rumor::core::store::Entry;
use rumor::core::version::NodeId;

use super::step::{self, Effect, FreshQueue, LocalEvent, StepView};
use super::{CHANNEL_DELAY, Phase, World, WorldEvent};
use crate::check::Violation;
use crate::check::membership::{MemberNote, late_detection};
use crate::check::replies;
use crate::host::{Host, index_of};
use crate::net::{Fate, LinkFaults};
use crate::trace::TraceKind;
use crate::workload::{Held, Op};

impl World {
    // ----- inputs ---------------------------------------------------------

    /// Hands `host`'s queued local writes to its node now, outside a window
    /// (a graceful stop pushes them out before leaving).
    pub(super) fn hand_over_now(&mut self, host: usize, life: u32) {
        let (shared, h) = self.shared_now(host);
        let mut out = VecDeque::new();
        step::hand_over(h, shared.window_end, life, &shared, &mut FreshQueue::default(), &mut out);
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
    fn shared_now(&mut self, host: usize) -> (StepView, &mut Host) {
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
            Effect::HandedOver { count } => {
                self.trace.record(self.now, TraceKind::HandOver, host, host, &count.to_le_bytes(), None);
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
                    None => self.schedule(at, WorldEvent::local(host, event)),
                }
            }
            Effect::Transmit(t) => self.route(host, t),
            Effect::Node(e) => self.node_event(host, e),
            Effect::Suspicions { new, suspects } => self.classify_suspicions(host, new, &suspects),
            Effect::Runaway(detail) => self.runaway(detail),
        }
        None
    }

    /// One client operation: its RESP command run by the server's command
    /// executor on the chosen host at the host's wall-clock time; the reply
    /// is judged and counted, and the writes the executor reports are the
    /// acknowledged ones, handed to the node after the channel delay.
    pub(super) fn client_op(&mut self) {
        if self.phase != Phase::Safety {
            return;
        }
        if let Some(gap) = self.workload.next_gap() {
            self.schedule(self.now + gap, WorldEvent::Client);
        }
        let (host, op) = self.workload.next_op(self.hosts.len());
        let command = op.frame();
        let h = &mut self.hosts[host];
        let life = h.life;
        let now = h.now(self.now);
        let (Some(store), Some(client)) = (h.store().cloned(), h.client.as_mut()) else {
            self.history.refused += 1;
            let detail = Some(format!("refused (n{host} down)"));
            self.trace.record(self.now, TraceKind::Client, host, host, &command, detail);
            return;
        };
        let keys: Vec<Bytes> = op.keys().into_iter().cloned().collect();
        let before: Vec<Option<Entry>> = keys.iter().map(|key| store.entry(key)).collect();
        let catching_up = store.catch_up() == CatchUpState::Refusing;
        let ran = client.run(&command, now.wall_ms);
        for (key, held) in keys.iter().zip(&before) {
            self.history.observe(self.now, host, life, key.clone(), held.as_ref().map(Held::of));
        }
        let executed = match ran {
            Ok(executed) => executed,
            Err(error) => {
                let detail = format!("{} was not run: {error}", op.name());
                self.reply_violation(host, &keys, detail);
                return;
            }
        };
        self.history.record_reply(op.name(), &executed.reply);
        if let Err(detail) = replies::judge_at(catching_up, &op, &before, now.wall_ms, &executed) {
            self.reply_violation(host, &keys, format!("{} at n{host}: {detail}", op.name()));
        }
        match op {
            Op::Get { .. } | Op::Exists { .. } => self.history.reads += 1,
            Op::Del { .. } if executed.writes.is_empty() => self.history.empty_deletes += 1,
            _ => {}
        }
        let mut payload = command;
        payload.extend_from_slice(&executed.reply);
        *self.history.writes_by_command.entry(op.name()).or_default() += executed.writes.len();
        for (key, entry) in executed.writes {
            payload.extend_from_slice(&entry.version.timestamp.packed().to_le_bytes());
            payload.extend_from_slice(entry.version.writer.uuid().as_bytes());
            self.acknowledged(host, life, key, entry);
        }
        if let Some(upto) = executed.flushed {
            payload.extend_from_slice(&upto.packed().to_le_bytes());
            self.history.record_flush(host, self.now, upto);
            self.dissemination.write().on_flush(upto);
            let h = &mut self.hosts[host];
            h.pending_flush = Some(upto);
            self.queue_hand_over(host, life);
        }
        self.trace.record(self.now, TraceKind::Client, host, host, &payload, None);
    }

    /// Records a write `host` acknowledged and queues it for its node.
    fn acknowledged(&mut self, host: usize, life: u32, key: Bytes, entry: Entry) {
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
        self.hosts[host].pending_writes.push((key, entry));
        self.queue_hand_over(host, life);
    }

    /// Queues the hand-over of `host`'s pending writes (and flush) to its
    /// node after the channel delay, unless one is queued.
    fn queue_hand_over(&mut self, host: usize, life: u32) {
        let h = &mut self.hosts[host];
        if !h.hand_over_queued {
            h.hand_over_queued = true;
            self.schedule(self.now + CHANNEL_DELAY, WorldEvent::local(host, LocalEvent::HandOver { life }));
        }
    }

    fn reply_violation(&mut self, host: usize, keys: &[Bytes], detail: String) {
        self.violations.push(Violation {
            checker: replies::NAME,
            invariant: replies::INVARIANT,
            detail,
            key: keys.first().cloned(),
            hosts: vec![host],
            at: self.now,
        });
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
                    self.schedule(dup_at, WorldEvent::local(to, event));
                }
                let event = LocalEvent::Deliver { from, transport: t.transport, payload: t.payload };
                self.schedule(at, WorldEvent::local(to, event));
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
