//! The task that owns the node core: feeds it packets, frames, local
//! writes, timers and questions, and carries out what it asks — in the
//! drain order `core::node` documents.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::core::io::{Event, Transport};
use crate::core::loading::CatchUpState;
use crate::core::membership::MemberState;
use crate::core::node::Node;
use crate::core::store::Entry;
use crate::server::catch_up::{CatchUp, CatchUpReport};
use crate::server::clock::Clock;
use crate::server::control::{Control, Replicate};
use crate::server::envelope::ClusterKeys;
use crate::server::handover;
use crate::server::metrics::{MemberChanges, NodeSnapshot};
use crate::server::storage::ChangeQueue;
use crate::server::stream::{StreamPool, StreamStats};
use crate::server::waits::Waits;

/// How long leaving waits for queued stream frames to be written.
const STREAM_FLUSH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);
/// How often a catch-up through anti-entropy reports its progress.
const CATCH_UP_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// Changes the data dir may fall behind by before the driver stops taking
/// input until it catches up (about 100 MB of small entries).
const STORAGE_BACKLOG_MAX: usize = 1 << 20;
/// Largest datagram we read.
const DATAGRAM_BUFFER_BYTES: usize = 65_536;
/// Datagrams read without waiting after a wake-up, before draining: the
/// node then packs everything they caused into shared datagrams.
const RECEIVE_BURST: usize = 256;

/// The driver's inputs besides the UDP socket.
pub struct Inputs {
    /// Local writes from connection tasks.
    pub writes: handover::Receiver,
    /// Questions from connection tasks.
    pub control: mpsc::Receiver<Control>,
    /// Frames from gossip streams.
    pub frames: mpsc::Receiver<(SocketAddr, Bytes)>,
}

/// What a driver is set up with besides the node, socket and clock.
#[derive(Debug)]
pub struct DriverOptions {
    /// Local writes handed to the node per batch, at most.
    pub write_batch_max: usize,
    /// The data dir's change queue, with `--data-dir`.
    pub storage: Option<Arc<ChangeQueue>>,
    /// The cluster keys, with `--cluster-key-file`.
    pub keys: Option<ClusterKeys>,
    /// Where refused gossip payloads are counted (shared with the stream
    /// readers).
    pub auth_failures: Arc<AtomicU64>,
    /// Inbound stream counters (kept by the stream readers).
    pub stream_stats: Arc<StreamStats>,
    /// Outbound stream connections idle this long are closed.
    pub stream_idle_close: std::time::Duration,
    /// How long a stopping node may wait for a live peer to hold its last
    /// writes (see [`Node::begin_handoff`]); `None` with a data dir, which
    /// keeps them, or when turned off.
    pub handoff_wait: Option<std::time::Duration>,
}

/// One node's event loop.
pub struct Driver {
    node: Node,
    udp: UdpSocket,
    clock: Clock,
    streams: StreamPool,
    write_batch_max: usize,
    send_errors: u64,
    member_changes: MemberChanges,
    catch_up: CatchUp,
    /// The data dir's change queue, with `--data-dir`.
    storage: Option<Arc<ChangeQueue>>,
    /// Seals and opens every gossip payload, with a cluster key.
    keys: Option<ClusterKeys>,
    /// Gossip payloads refused for not being sealed with our key
    /// (datagrams here, stream frames in their reader tasks).
    auth_failures: Arc<AtomicU64>,
    /// Inbound stream counters.
    stream_stats: Arc<StreamStats>,
    /// The longest hand-off at a stop, for a memory-only node.
    handoff_wait: Option<std::time::Duration>,
    /// Clients blocked in WAIT.
    waits: Waits,
}

impl Driver {
    /// A driver for `node` on `udp`.
    pub fn new(node: Node, udp: UdpSocket, clock: Clock, options: DriverOptions) -> Self {
        let DriverOptions {
            write_batch_max,
            storage,
            keys,
            auth_failures,
            stream_stats,
            stream_idle_close,
            handoff_wait,
        } = options;
        Driver {
            node,
            udp,
            clock,
            streams: StreamPool::new(keys.clone(), clock, stream_idle_close),
            write_batch_max,
            send_errors: 0,
            member_changes: MemberChanges::default(),
            catch_up: CatchUp::default(),
            storage,
            keys,
            auth_failures,
            stream_stats,
            handoff_wait,
            waits: Waits::default(),
        }
    }

    /// Runs until `stop` completes, then hands every queued local write to
    /// gossip, leaves the mesh and flushes what that sends.
    ///
    /// `stop` should complete only once no client can write any more (the
    /// client listener has finished), so that nothing acknowledged is left
    /// behind in the hand-over queue.
    pub async fn run(mut self, inputs: Inputs, stop: impl Future<Output = ()>) {
        let Inputs { writes, mut control, mut frames } = inputs;
        let mut buf = vec![0u8; DATAGRAM_BUFFER_BYTES];
        let mut batch = Vec::with_capacity(self.write_batch_max);
        let mut stop = pin!(stop);
        let mut progress = tokio::time::interval(CATCH_UP_REPORT_EVERY);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            // After every input: the WAITs it satisfied, or that timed out.
            self.waits.settle(&mut self.node, self.clock.now());
            self.drain().await;
            // After every input, not on a timer: a wall clock that jumped
            // forward, or a peer's reading the clock followed, stalls local
            // writes at the lease until the next one is synced, and the
            // first write after the jump wakes the driver (its Replicate).
            self.renew_clock_lease();
            if let Some(storage) = &self.storage {
                // Gossip and sync merges do not wait on storage one by one
                // as clients do: if they outrun the disk, pause here — but
                // not past a stop (a disk that hangs must not hold up
                // SIGTERM). A failed storage thread stops the node through
                // `stop`.
                tokio::select! {
                    biased;
                    () = &mut stop => break,
                    _ = storage.wait_backlog_below(STORAGE_BACKLOG_MAX) => {}
                }
            }
            let next = [self.node.poll_timeout(), self.waits.next_deadline()].into_iter().flatten().min();
            let deadline = next.map(|d| self.clock.instant_at(d));
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = &mut stop => break,
                received = self.udp.recv_from(&mut buf) => match received {
                    Ok((len, from)) => {
                        self.handle_datagram(from, &buf[..len]);
                        for _ in 0..RECEIVE_BURST {
                            let Ok((len, from)) = self.udp.try_recv_from(&mut buf) else { break };
                            self.handle_datagram(from, &buf[..len]);
                        }
                    }
                    Err(error) => tracing::debug!(%error, "gossip recv failed"),
                },
                () = sleep => self.node.handle_timeout(self.clock.now()),
                () = writes.ready() => {
                    // Let the other connections with commands read get
                    // their writes in first: when clients do not pipeline,
                    // one push then carries many writes, not one.
                    tokio::task::yield_now().await;
                    self.hand_local_writes(&writes, self.write_batch_max, &mut batch);
                }
                Some((from, frame)) = frames.recv() => self.node.handle_frame(from, &frame, self.clock.now()),
                Some(question) = control.recv() => {
                    if matches!(question, Control::Wait { .. }) {
                        // The connection's writes were queued before its
                        // WAIT: hand them to the node first.
                        self.hand_local_writes(&writes, usize::MAX, &mut batch);
                    }
                    self.answer(question);
                }
                _ = progress.tick() => self.report_catch_up(),
            }
        }
        // No lease at the stop: the clock issued nothing past the last one
        // synced, which is what the next start reads.
        // Writes acknowledged to clients but not yet pushed go out before we leave.
        self.hand_local_writes(&writes, usize::MAX, &mut batch);
        if let Some(wait) = self.handoff_wait {
            self.hand_off(&mut frames, wait).await;
        }
        self.node.leave(self.clock.now());
        self.drain().await;
        self.streams.close(STREAM_FLUSH_DEADLINE).await;
        tracing::info!(name = %self.node.identity().name, "left the mesh");
    }

    /// Notes a new clock lease with the data dir if the clock is near the
    /// last one (see [`ChangeQueue::renew_clock_lease`]).
    fn renew_clock_lease(&self) {
        if let Some(storage) = &self.storage {
            storage.renew_clock_lease(self.node.store().clock_reading(), self.clock.wall_ms());
        }
    }

    /// A memory-only node's writes live only in its peers once it exits:
    /// before leaving, it goes on gossiping, without clients, until a live
    /// peer has matched every part of its store (or `wait` passes).
    async fn hand_off(&mut self, frames: &mut mpsc::Receiver<(SocketAddr, Bytes)>, wait: std::time::Duration) {
        let started = self.clock.now();
        if !self.node.begin_handoff(started) {
            let entries = self.node.store().entry_count();
            tracing::warn!(entries, "no live peer: the writes only this memory-only node holds are lost with it");
            return;
        }
        let deadline = self.clock.instant_at(started.mono + wait);
        let mut buf = vec![0u8; DATAGRAM_BUFFER_BYTES];
        while !self.node.handoff_done() {
            self.drain().await;
            let timer = self.node.poll_timeout().map_or(deadline, |d| self.clock.instant_at(d).min(deadline));
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    let remaining = self.node.handoff_remaining();
                    tracing::warn!(
                        wait_ms = wait.as_millis() as u64,
                        remaining,
                        "stop_handoff_ms passed before a live peer matched every part of the store: writes not                          yet at a peer may be lost"
                    );
                    return;
                }
                received = self.udp.recv_from(&mut buf) => {
                    if let Ok((len, from)) = received {
                        self.handle_datagram(from, &buf[..len]);
                    }
                }
                Some((from, frame)) = frames.recv() => self.node.handle_frame(from, &frame, self.clock.now()),
                () = tokio::time::sleep_until(timer) => self.node.handle_timeout(self.clock.now()),
            }
        }
        let took = self.clock.now().mono.saturating_sub(started.mono);
        tracing::info!(took_ms = took.as_millis() as u64, "a live peer holds every entry of this node: stopping");
    }

    /// Hands a datagram to the node, opened first with a cluster key.
    fn handle_datagram(&mut self, from: SocketAddr, data: &[u8]) {
        let now = self.clock.now();
        match &self.keys {
            None => self.node.handle_datagram(from, data, now),
            Some(keys) => match keys.open(data, now.wall_ms) {
                Ok(plain) => self.node.handle_datagram(from, &plain, now),
                Err(error) => {
                    let failures = self.auth_failures.fetch_add(1, Ordering::Relaxed) + 1;
                    // At warn on the 1st, 2nd, 4th, 8th… so that a node with
                    // the wrong key shows in the log without flooding it.
                    if failures.is_power_of_two() {
                        tracing::warn!(%from, failures, "gossip datagram dropped: {error}");
                    } else {
                        tracing::debug!(%from, %error, "gossip datagram dropped");
                    }
                }
            },
        }
    }

    /// Sends what the node queued and logs its events.
    async fn drain(&mut self) {
        while let Some(transmit) = self.node.poll_transmit() {
            match transmit.transport {
                Transport::Datagram => {
                    let sealed = self.keys.as_ref().map(|keys| keys.seal(&transmit.payload, self.clock.wall_ms()));
                    let payload = sealed.as_deref().unwrap_or(&transmit.payload);
                    if let Err(error) = self.udp.send_to(payload, transmit.to).await {
                        self.send_errors += 1;
                        tracing::debug!(to = %transmit.to, %error, "gossip send failed");
                    }
                }
                Transport::Stream => self.streams.send(transmit.to, transmit.payload),
            }
        }
        while let Some(event) = self.node.poll_event() {
            match event {
                Event::MemberUp { name, addr } => {
                    self.member_changes.up += 1;
                    tracing::info!(%name, %addr, "member up");
                }
                Event::MemberDown { name, addr, left: true } => {
                    self.member_changes.left += 1;
                    tracing::info!(%name, %addr, "member left");
                }
                Event::MemberDown { name, addr, left: false } => {
                    self.member_changes.down += 1;
                    tracing::info!(%name, %addr, "member down");
                }
                Event::Joined => tracing::info!("joined the mesh"),
                Event::Isolated => {
                    tracing::warn!("no other member is reachable; announcing to seeds")
                }
                Event::DeclaredDown => {
                    tracing::warn!("the mesh declared this node down; rejoining")
                }
            }
        }
        if let Some(wall_ms) = self.node.poll_in_mesh()
            && let Some(storage) = &self.storage
        {
            storage.note_in_mesh(wall_ms);
        }
        if let Some(members) = self.node.poll_kept_members()
            && let Some(storage) = &self.storage
        {
            storage.note_kept_members(&members);
        }
    }

    /// Logs how far a catch-up through anti-entropy has come, if one is on.
    fn report_catch_up(&mut self) {
        let g = self.node.gossip_stats();
        let held = self.node.store().entry_count() as u64;
        match self.catch_up.tick(self.clock.now().mono, g.sync_entries_applied, held, g.sync_peer_held) {
            Some(CatchUpReport::Progress { percent, held, peer_held, per_second }) => tracing::info!(
                percent,
                held,
                peer_held,
                per_second,
                "catching up from peers: {percent}% ({held} of {peer_held} entries), {per_second} entries/s"
            ),
            Some(CatchUpReport::Done { applied, took }) => {
                tracing::info!(applied, took_ms = took.as_millis() as u64, "caught up: {applied} entries in {took:.1?}")
            }
            None => {}
        }
    }

    /// Hands the node the connections' queued batches, up to `writes_max`
    /// writes. A FLUSHALL among them goes out as it is met (the writes
    /// before it are gone from the store, and pushing them still does no
    /// harm: receivers that took the flush refuse them).
    fn hand_local_writes(&mut self, writes: &handover::Receiver, writes_max: usize, batch: &mut Vec<(Bytes, Entry)>) {
        writes.take(writes_max, |local: Replicate| {
            if let Some(upto) = local.flushed {
                self.node.handle_local_flush(upto, self.clock.now());
            }
            batch.extend(local.writes);
        });
        if !batch.is_empty() {
            self.node.handle_local_writes(batch, self.clock.now());
            batch.clear();
        }
    }

    fn answer(&mut self, question: Control) {
        match question {
            Control::Wait { numpeers, timeout, wrote, answer } => {
                let upto = if wrote { self.node.local_batches() } else { 0 };
                self.waits.add(&mut self.node, upto, numpeers, timeout, answer, self.clock.now());
            }
            Control::Members(reply) => {
                let _ = reply.send(self.node.members().iter().map(ToString::to_string).collect());
            }
            Control::Snapshot(reply) => {
                let _ = reply.send(self.metrics_snapshot());
            }
        }
    }

    /// The node-side numbers for a metrics scrape, read from where they are
    /// kept (nothing here is counted twice).
    fn metrics_snapshot(&self) -> NodeSnapshot {
        // Every state is listed, at zero if need be.
        let mut members: BTreeMap<String, u64> = MemberState::ALL.iter().map(|s| (s.to_string(), 0)).collect();
        for member in self.node.members() {
            *members.entry(member.state.to_string()).or_default() += 1;
        }
        let store = self.node.store();
        let entries = store.entry_count() as u64;
        let keys = store.value_count() as u64;
        NodeSnapshot {
            identity: Some(self.node.identity().clone()),
            hlc: store.clock_reading(),
            gossip: self.node.gossip_stats(),
            membership: self.node.membership_stats(),
            confirm: self.node.confirm_stats(),
            members,
            member_changes: self.member_changes,
            joined: self.node.is_joined(),
            catching_up: store.catch_up() != CatchUpState::Done,
            send_errors: self.send_errors,
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
            stream_connections_refused: self.stream_stats.refused.load(Ordering::Relaxed),
            stream_timeouts: self.stream_stats.timed_out.load(Ordering::Relaxed),
            stream_frames_dropped: self.streams.dropped.load(Ordering::Relaxed),
            keys,
            tombstones: entries.saturating_sub(keys),
            clock_drift_rejections: store.stats().drift_rejections.load(Ordering::Relaxed),
            max_clock_drift_seen_ms: store.stats().max_drift_seen_ms.load(Ordering::Relaxed),
            future_versions_refused: store.stats().future_refused.load(Ordering::Relaxed),
        }
    }
}
