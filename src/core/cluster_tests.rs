//! A small cluster of cores under virtual time: packets delivered after a
//! fixed latency, timers fired in order, no sockets and no real clock.

use ::core::net::SocketAddr; // an address value; the core opens no socket
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::changes::ReplayedLog;
use super::horizon::KeptMember;
use super::io::{Event, Now, Transmit, Transport};
use super::membership::{Identity, MemberState, SwimConfig};
use super::node::{Node, NodeConfig, NodeMemory};
use super::sabotage::Sabotage;
use super::start::{DataDir, Recording, StaleData};
use super::store::Write;
use super::version::NodeId;

const LATENCY: Duration = Duration::from_millis(1);
const EPOCH_MS: u64 = 1_700_000_000_000;

struct Cluster {
    nodes: Vec<Option<Node>>,
    /// Nodes cut off from everyone: their packets are dropped both ways.
    cut_off: Vec<usize>,
    direct_push_max: usize,
    sabotage: Sabotage,
    now: Duration,
    in_flight: BTreeMap<(Duration, u64), (usize, SocketAddr, Transmit)>,
    seq: u64,
    /// Nodes start without seeds (they are given their members instead).
    no_seeds: bool,
    /// The tombstone TTL of nodes added from now on.
    tombstone_ttl: Duration,
    /// `member_gone_after` of nodes added from now on.
    member_gone_after: Duration,
    /// Each node's side of a partition: packets between sides are dropped.
    sides: BTreeMap<usize, u8>,
    /// The stream frame limit of nodes added from now on; a stream frame
    /// over the receiver's limit is dropped, as a real receiver does.
    max_stream_bytes: usize,
    /// The sync budget of nodes added from now on.
    sync_budget_bytes: usize,
    /// Stream frames dropped for being over the limit.
    oversized_dropped: u64,
    /// Packets sent to addresses that are no node's: what a node must never
    /// do but for its seeds.
    strays: Vec<SocketAddr>,
    /// Nodes whose gossip datagrams (pushes) are all lost; SWIM's and
    /// streams still arrive.
    lossy_pushes: Vec<usize>,
    /// Seeds of nodes added from now on, instead of node 0 alone.
    seeds: Option<Vec<SocketAddr>>,
    /// What each node noted as its time in a mesh ([`Node::poll_in_mesh`]).
    in_mesh_notes: BTreeMap<usize, Vec<u64>>,
    /// `wait_tracked_keys` of nodes added from now on.
    wait_tracked_keys: usize,
    /// `forget_down_after` of nodes added from now on.
    forget_down_after: Duration,
    /// The data dirs of nodes that have one.
    disks: BTreeMap<usize, MemoryDir>,
}

/// A data dir in memory: what a store's change log recorded, when its node
/// was last in a mesh, and the members it kept. A crash keeps all of it.
#[derive(Debug)]
pub(super) struct MemoryDir {
    pub(super) id: NodeId,
    pub(super) log: Arc<ReplayedLog>,
    pub(super) last_in_mesh_ms: Option<u64>,
    pub(super) members: Vec<KeptMember>,
}

impl MemoryDir {
    pub(super) fn new(id: NodeId) -> Self {
        MemoryDir { id, log: Arc::default(), last_in_mesh_ms: None, members: Vec::new() }
    }
}

impl DataDir for &mut MemoryDir {
    type Error = &'static str;
    type Running = ();

    fn node_id(&mut self, _fresh: NodeId) -> Result<NodeId, Self::Error> {
        Ok(self.id)
    }

    fn memory(&self) -> Result<NodeMemory, Self::Error> {
        Ok(NodeMemory { last_in_mesh_ms: self.last_in_mesh_ms, members: self.members.clone() })
    }

    fn discard_entries(&mut self) -> Result<(), Self::Error> {
        self.log.clear();
        self.last_in_mesh_ms = None;
        self.members.clear();
        Ok(())
    }

    fn load_into(&mut self, store: &super::store::Store, now_ms: u64) -> Result<(), Self::Error> {
        store.restore_replayed(&self.log, now_ms);
        Ok(())
    }

    fn start_change_log(self, _store: &super::store::Store) -> Result<Recording<()>, Self::Error> {
        Ok((self.log.clone(), ()))
    }
}

pub(super) fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16))
}

pub(super) fn identity(i: usize) -> Identity {
    Identity { id: NodeId::from_random_bytes([i as u8 + 1; 16]), addr: addr(i), life: 1, name: format!("n{i}").into() }
}

pub(super) fn config(seed_addr: SocketAddr, direct_push_max: usize) -> NodeConfig {
    NodeConfig {
        swim: SwimConfig { probe_interval: Duration::from_millis(400), ..SwimConfig::default() },
        seeds: vec![seed_addr],
        direct_push_max,
        max_stream_bytes: 1 << 20,
        join_retry_max: Duration::from_secs(1),
        sync_budget_bytes: 64 * 1024,
        tombstone_ttl: Duration::from_secs(3600),
        ..NodeConfig::default()
    }
}

impl Cluster {
    fn new(n: usize) -> Self {
        Self::with_direct_push_max(n, 16)
    }

    fn with_direct_push_max(n: usize, direct_push_max: usize) -> Self {
        Self::build(n, direct_push_max, Sabotage::default())
    }

    fn build(n: usize, direct_push_max: usize, sabotage: Sabotage) -> Self {
        let mut cluster = Cluster {
            nodes: Vec::new(),
            cut_off: Vec::new(),
            direct_push_max,
            sabotage,
            now: Duration::ZERO,
            in_flight: BTreeMap::new(),
            seq: 0,
            no_seeds: false,
            tombstone_ttl: Duration::from_secs(3600),
            member_gone_after: Duration::from_secs(7 * 24 * 3600),
            sides: BTreeMap::new(),
            max_stream_bytes: 1 << 20,
            sync_budget_bytes: 64 * 1024,
            oversized_dropped: 0,
            strays: Vec::new(),
            lossy_pushes: Vec::new(),
            seeds: None,
            in_mesh_notes: BTreeMap::new(),
            wait_tracked_keys: NodeConfig::default().wait_tracked_keys,
            forget_down_after: SwimConfig::default().forget_down_after,
            disks: BTreeMap::new(),
        };
        for _ in 0..n {
            cluster.add_node();
        }
        cluster
    }

    /// `n` nodes that already know each other (no seeds, no join), except
    /// for the `strangers` pairs, which never heard of each other.
    fn formed(n: usize, strangers: &[(usize, usize)]) -> Self {
        let mut cluster = Cluster::new(0);
        cluster.no_seeds = true;
        for _ in 0..n {
            cluster.add_node();
        }
        let identities: Vec<Identity> = (0..n).map(identity).collect();
        let now = cluster.time();
        for i in 0..n {
            let known: Vec<Identity> = identities
                .iter()
                .enumerate()
                .filter(|(j, _)| !strangers.iter().any(|&(a, b)| (a, b) == (i, *j) || (b, a) == (i, *j)))
                .map(|(_, m)| m.clone())
                .collect();
            cluster.nodes[i].as_mut().unwrap().restore_members(&known, now);
        }
        cluster
    }

    fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let node = self.new_node(identity(i), i as u64);
        self.nodes.push(Some(node));
        i
    }

    fn new_node(&self, identity: Identity, seed: u64) -> Node {
        let config = self.node_config();
        let store = Arc::new(config.new_store(identity.id));
        Node::new(identity, config, store, seed, self.time(), NodeMemory::default())
    }

    /// Adds a node with a data dir.
    fn add_persistent_node(&mut self) -> usize {
        let i = self.nodes.len();
        self.disks.insert(i, MemoryDir::new(identity(i).id));
        self.nodes.push(None);
        self.start_from_disk(i);
        i
    }

    /// Node `i` starts from its data dir, as `rumor serve --data-dir` does
    /// (see [`NodeConfig::start_store`]), with its start time as its life.
    fn start_from_disk(&mut self, i: usize) {
        let (config, now) = (self.node_config(), self.time());
        let disk = self.disks.get_mut(&i).expect("a node with a data dir");
        let started = config.start_store(addr(i), disk.id, Some(disk), StaleData::Discard, now.wall_ms).unwrap();
        let life = now.wall_ms;
        let identity = Identity { id: started.store.writer(), addr: addr(i), life, name: format!("n{i}").into() };
        let store = Arc::new(started.store);
        self.nodes[i] = Some(Node::new(identity, config, store, 2000 + i as u64, now, started.memory));
    }

    /// The settings of nodes added from now on.
    fn node_config(&self) -> NodeConfig {
        let mut config = config(addr(0), self.direct_push_max);
        if self.no_seeds {
            config.seeds.clear();
        }
        if let Some(seeds) = &self.seeds {
            config.seeds = seeds.clone();
        }
        config.sabotage = self.sabotage;
        config.tombstone_ttl = self.tombstone_ttl;
        config.member_gone_after = self.member_gone_after;
        config.max_stream_bytes = self.max_stream_bytes;
        config.sync_budget_bytes = self.sync_budget_bytes;
        config.wait_tracked_keys = self.wait_tracked_keys;
        config.swim.forget_down_after = self.forget_down_after;
        config
    }

    /// Node `i` crashes (its state is gone).
    fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
    }

    /// Node `i` starts again on its address, empty, with a new id and its
    /// start time as its life (as `rumor serve` does), announcing to
    /// node 0.
    fn restart(&mut self, i: usize) {
        let id = NodeId::from_random_bytes([i as u8 + 101; 16]);
        let life = self.time().wall_ms;
        let identity = Identity { id, addr: addr(i), life, name: format!("n{i}").into() };
        self.nodes[i] = Some(self.new_node(identity, 1000 + i as u64));
    }

    fn time(&self) -> Now {
        Now { mono: self.now, wall_ms: EPOCH_MS + self.now.as_millis() as u64 }
    }

    fn collect(&mut self, i: usize) {
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        while let Some(t) = node.poll_transmit() {
            self.in_flight.insert((self.now + LATENCY, self.seq), (i, addr(i), t));
            self.seq += 1;
        }
        while node.poll_event().is_some() {}
        if let Some(wall_ms) = node.poll_in_mesh() {
            self.in_mesh_notes.entry(i).or_default().push(wall_ms);
            if let Some(disk) = self.disks.get_mut(&i) {
                disk.last_in_mesh_ms = Some(wall_ms);
            }
        }
        if let Some(members) = node.poll_kept_members()
            && let Some(disk) = self.disks.get_mut(&i)
        {
            disk.members = members;
        }
    }

    /// Advances virtual time by `span`, delivering and firing in order.
    fn run_for(&mut self, span: Duration) {
        let end = self.now + span;
        for i in 0..self.nodes.len() {
            self.collect(i);
        }
        loop {
            let next_packet = self.in_flight.keys().next().map(|k| k.0);
            let next_timer = self.nodes.iter().flatten().filter_map(Node::poll_timeout).min();
            let Some(next) = [next_packet, next_timer].into_iter().flatten().min() else {
                break;
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            if next_packet == Some(next) {
                let ((_, _), (_, from, t)) = self.in_flight.pop_first().unwrap();
                let Some(to) = t.to.port().checked_sub(7000).map(usize::from).filter(|&to| addr(to) == t.to) else {
                    self.strays.push(t.to);
                    continue;
                };
                let sender = (from.port() - 7000) as usize;
                let now = self.time();
                if self.cut_off.contains(&to) || self.cut_off.contains(&sender) {
                    continue;
                }
                if self.sides.get(&to).unwrap_or(&0) != self.sides.get(&sender).unwrap_or(&0) {
                    continue;
                }
                let is_push = t.transport == Transport::Datagram && t.payload.first() == Some(&super::tag::TAG_GOSSIP);
                if is_push && self.lossy_pushes.contains(&sender) {
                    continue;
                }
                if t.transport == Transport::Stream && t.payload.len() > self.max_stream_bytes {
                    self.oversized_dropped += 1;
                    continue;
                }
                if let Some(node) = self.nodes.get_mut(to).and_then(Option::as_mut) {
                    match t.transport {
                        Transport::Datagram => node.handle_datagram(from, &t.payload, now),
                        Transport::Stream => node.handle_frame(from, &t.payload, now),
                    }
                    self.collect(to);
                }
            } else {
                let now = self.time();
                for i in 0..self.nodes.len() {
                    if let Some(node) = self.nodes[i].as_mut()
                        && node.poll_timeout().is_some_and(|d| d <= now.mono)
                    {
                        node.handle_timeout(now);
                        self.collect(i);
                    }
                }
            }
        }
        self.now = end;
    }

    fn states_seen_by(&self, i: usize) -> BTreeMap<SocketAddr, MemberState> {
        let node = self.nodes[i].as_ref().unwrap();
        node.members().into_iter().map(|m| (m.identity.addr, m.state)).collect()
    }

    fn write(&mut self, i: usize, key: &'static str, value: &'static str) {
        let now = self.time();
        let node = self.nodes[i].as_mut().unwrap();
        let key = Bytes::from_static(key.as_bytes());
        let (entry, ()) = node
            .store()
            .update(&key, now.wall_ms, |_| {
                (Some(Write::Put { value: Bytes::from_static(value.as_bytes()), expires_at_ms: None }), ())
            })
            .unwrap();
        node.handle_local_writes(&[(key, entry.unwrap())], now);
        self.collect(i);
    }

    fn delete(&mut self, i: usize, key: &'static str) {
        let now = self.time();
        let node = self.nodes[i].as_mut().unwrap();
        let key = Bytes::from_static(key.as_bytes());
        let (entry, ()) = node.store().update(&key, now.wall_ms, |_| (Some(Write::Delete), ())).unwrap();
        node.handle_local_writes(&[(key, entry.unwrap())], now);
        self.collect(i);
    }

    fn entries(&self, i: usize) -> Vec<(Bytes, super::store::Entry)> {
        let mut all = Vec::new();
        self.nodes[i].as_ref().unwrap().store().for_each_entry(|k, e| all.push((k.clone(), e.clone())));
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    fn read(&self, i: usize, key: &str) -> Option<Bytes> {
        self.nodes[i].as_ref().unwrap().store().get(key.as_bytes(), self.time().wall_ms)
    }
}

#[test]
fn members_converge_through_one_seed() {
    let mut cluster = Cluster::new(5);
    cluster.run_for(Duration::from_secs(3));
    for i in 0..5 {
        let seen = cluster.states_seen_by(i);
        assert_eq!(seen.len(), 5, "node {i} sees {seen:?}");
        assert!(seen.values().all(|s| *s == MemberState::Alive), "node {i} sees {seen:?}");
    }
}

#[test]
fn a_write_reaches_every_node_by_eager_push() {
    let mut cluster = Cluster::new(10);
    cluster.run_for(Duration::from_secs(3));
    cluster.write(3, "k", "v");
    // Eager push: a few hops of 1 ms each, not a gossip period.
    cluster.run_for(Duration::from_millis(20));
    for i in 0..10 {
        assert_eq!(cluster.read(i, "k").as_deref(), Some(&b"v"[..]), "node {i}");
    }
}

#[test]
fn rumor_mongering_reaches_most_of_a_large_mesh_without_direct_push() {
    let mut cluster = Cluster::with_direct_push_max(40, 0);
    cluster.run_for(Duration::from_secs(5));
    let mut informed = 0;
    for round in 0..20 {
        let key: &'static str = Box::leak(format!("k{round}").into_boxed_str());
        cluster.write(round % 40, key, "v");
        cluster.run_for(Duration::from_millis(50));
        informed += (0..40).filter(|i| cluster.read(*i, key).is_some()).count();
    }
    // fanout 3: the residue is about e^-3 (5%); anti-entropy repairs it.
    assert!(informed >= 20 * 40 * 9 / 10, "only {informed} of {} copies arrived", 20 * 40);
}

#[test]
fn last_write_wins_across_nodes() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(2));
    cluster.write(0, "k", "first");
    cluster.run_for(Duration::from_millis(5));
    cluster.write(2, "k", "second");
    cluster.run_for(Duration::from_millis(50));
    for i in 0..3 {
        assert_eq!(cluster.read(i, "k").as_deref(), Some(&b"second"[..]), "node {i}");
    }
}

#[test]
fn a_crashed_node_is_marked_down_within_three_seconds() {
    let mut cluster = Cluster::new(10);
    cluster.run_for(Duration::from_secs(3));
    cluster.nodes[7] = None;
    cluster.run_for(Duration::from_secs(3));
    for i in (0..10).filter(|i| *i != 7) {
        assert_eq!(cluster.states_seen_by(i)[&addr(7)], MemberState::Down, "node {i}");
    }
}

#[test]
fn a_node_that_leaves_is_listed_as_left_not_down() {
    let mut cluster = Cluster::new(10);
    cluster.run_for(Duration::from_secs(3));
    let now = cluster.time();
    cluster.nodes[7].as_mut().unwrap().leave(now);
    cluster.collect(7);
    // Its goodbye reaches everyone before it goes silent; well inside the
    // failure detector's probe + suspicion time.
    cluster.run_for(Duration::from_millis(20));
    cluster.nodes[7] = None;
    cluster.run_for(Duration::from_millis(200));
    for i in (0..10).filter(|i| *i != 7) {
        assert_eq!(cluster.states_seen_by(i)[&addr(7)], MemberState::Left, "node {i}");
    }
}

/// The leaver's goodbye can arrive after a third member's news that it
/// went down (that member heard the goodbye first, and passed the Down
/// on): it is still a leave, and said so.
#[test]
fn a_goodbye_heard_after_the_members_down_is_still_a_leave() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(3));
    let now = cluster.time();
    let leaver = cluster.nodes[2].as_mut().unwrap();
    leaver.leave(now);
    let mut held = Vec::new();
    while let Some(t) = leaver.poll_transmit() {
        if t.to == addr(0) {
            held.push(t);
        } else {
            cluster.in_flight.insert((cluster.now + LATENCY, cluster.seq), (2, addr(2), t));
            cluster.seq += 1;
        }
    }
    cluster.nodes[2] = None;
    cluster.run_for(Duration::from_secs(2));
    assert_eq!(cluster.states_seen_by(0)[&addr(2)], MemberState::Down, "node 0 heard of the Down from node 1");

    let observer = cluster.nodes[0].as_mut().unwrap();
    assert!(!held.is_empty(), "the leaver spoke to node 0");
    for t in held {
        observer.handle_datagram(addr(2), &t.payload, now);
    }
    let mut events = Vec::new();
    while let Some(event) = observer.poll_event() {
        events.push(event);
    }
    assert_eq!(cluster.states_seen_by(0)[&addr(2)], MemberState::Left);
    assert!(
        events.iter().any(|e| matches!(e, Event::MemberDown { addr: a, left: true, .. } if *a == addr(2))),
        "the late goodbye is told as a leave: {events:?}"
    );
}

#[test]
fn members_gossip_never_mentioned_are_found_by_the_digest_exchange() {
    // 8 and 9 never heard of each other, and no gossip will tell them (the
    // others learned of both without news to spread). SWIM alone would
    // notice only at a periodic announce (5 s), or when one probes the
    // other — which it cannot, not knowing it.
    let mut cluster = Cluster::formed(10, &[(8, 9)]);
    assert!(!cluster.states_seen_by(8).contains_key(&addr(9)));
    cluster.run_for(Duration::from_secs(3));
    assert_eq!(cluster.states_seen_by(8).get(&addr(9)), Some(&MemberState::Alive));
    assert_eq!(cluster.states_seen_by(9).get(&addr(8)), Some(&MemberState::Alive));
    for i in 0..10 {
        assert_eq!(cluster.states_seen_by(i).len(), 10, "node {i}");
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Writes and deletes while node 4 is cut off, then heals: pushes never
/// reach it, only anti-entropy can.
fn missed_writes_scenario(sabotage: Sabotage) -> Cluster {
    let mut cluster = Cluster::build(5, 16, sabotage);
    cluster.run_for(Duration::from_secs(3));
    for i in 0..200 {
        cluster.write(i % 4, leak(format!("k{i}")), "before");
    }
    cluster.run_for(Duration::from_secs(1));
    cluster.cut_off = vec![4];
    for i in 0..200 {
        cluster.write(i % 4, leak(format!("k{i}")), "during");
    }
    for i in 0..50 {
        cluster.delete(i % 4, leak(format!("k{i}")));
    }
    cluster.run_for(Duration::from_secs(2));
    cluster.cut_off.clear();
    cluster.run_for(Duration::from_secs(10));
    cluster
}

#[test]
fn anti_entropy_repairs_writes_and_deletes_a_node_missed() {
    let cluster = missed_writes_scenario(Sabotage::default());
    let expected = cluster.entries(0);
    assert_eq!(expected.len(), 200);
    for i in 1..5 {
        assert_eq!(cluster.entries(i), expected, "node {i} differs");
    }
    assert_eq!(cluster.read(4, "k0"), None, "a delete was missed");
    assert_eq!(cluster.read(4, "k199").as_deref(), Some(&b"during"[..]));
}

#[test]
fn without_anti_entropy_the_missed_writes_stay_missed() {
    let sabotage = Sabotage { no_anti_entropy: true, ..Sabotage::default() };
    let cluster = missed_writes_scenario(sabotage);
    assert_ne!(cluster.entries(4), cluster.entries(0));
}

#[test]
fn a_late_joiner_bootstraps_the_whole_store_in_budgeted_chunks() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(2));
    for i in 0..3000 {
        cluster.write(i % 3, leak(format!("key:{i}")), "some value of moderate length");
    }
    cluster.run_for(Duration::from_secs(1));
    let late = cluster.add_node();
    // Budget 64 KiB (see config()): ~300 KB of entries take several rounds.
    cluster.run_for(Duration::from_secs(10));
    assert_eq!(cluster.entries(late), cluster.entries(0));
    let stats = cluster.nodes[late].as_ref().unwrap().gossip_stats();
    assert!(stats.sync_entries_applied >= 3000, "{stats:?}");
}

#[test]
fn identical_stores_exchange_only_digests() {
    let mut cluster = Cluster::new(2);
    cluster.run_for(Duration::from_secs(2));
    for i in 0..2000 {
        cluster.write(0, leak(format!("key:{i}")), "v");
    }
    cluster.run_for(Duration::from_secs(3));
    let before = cluster.nodes[0].as_ref().unwrap().gossip_stats();
    cluster.run_for(Duration::from_secs(10));
    let after = cluster.nodes[0].as_ref().unwrap().gossip_stats();
    let rounds = after.sync_rounds - before.sync_rounds;
    assert!(rounds >= 5, "{rounds} rounds");
    assert_eq!(after.sync_entries_sent, before.sync_entries_sent, "entries sent between equal stores");
    // A round between equal stores is one message of 16 digests.
    let per_round = (after.sync_bytes_out - before.sync_bytes_out) / rounds;
    assert!(per_round < 200, "{per_round} bytes per round");
}

/// The survivor of a pair whose other node crashed, back after longer than
/// the tombstone TTL, keeps what it holds: nobody ran without it, and
/// discarding would lose every write (the returning node comes back empty).
#[test]
fn the_survivor_of_a_crash_keeps_its_state_when_the_other_returns_late() {
    let mut cluster = Cluster::new(0);
    cluster.tombstone_ttl = Duration::from_secs(5);
    cluster.add_node();
    cluster.add_node();
    cluster.run_for(Duration::from_secs(3));
    cluster.write(0, "before", "1");
    cluster.run_for(Duration::from_secs(1));
    cluster.crash(1);
    cluster.run_for(Duration::from_secs(3));
    cluster.write(0, "alone", "2");
    cluster.run_for(Duration::from_secs(10));
    cluster.restart(1);
    cluster.run_for(Duration::from_secs(5));
    assert_eq!(cluster.states_seen_by(0).get(&addr(1)), Some(&MemberState::Alive));
    let node0 = cluster.nodes[0].as_ref().unwrap();
    assert_eq!(node0.gossip_stats().stale_state_discarded, 0);
    for i in 0..2 {
        assert_eq!(cluster.read(i, "before").as_deref(), Some(&b"1"[..]), "node {i}");
        assert_eq!(cluster.read(i, "alone").as_deref(), Some(&b"2"[..]), "node {i}");
    }
}

/// Writes made and deletes done on every side of a partition held for
/// longer than the tombstone TTL: after the heal every node holds every
/// write and no deleted key. Deletes are of keys written before the split,
/// so the other side holds their old values all along.
fn long_split(sides: &[&[usize]], sabotage: Sabotage) -> Cluster {
    let nodes: usize = sides.iter().map(|side| side.len()).sum();
    let mut cluster = Cluster::build(0, 16, sabotage);
    cluster.tombstone_ttl = Duration::from_secs(5);
    for _ in 0..nodes {
        cluster.add_node();
    }
    cluster.run_for(Duration::from_secs(3));
    for (s, side) in sides.iter().enumerate() {
        cluster.write(side[0], leak(format!("doomed{s}")), "old");
    }
    cluster.run_for(Duration::from_secs(3));
    for (s, side) in sides.iter().enumerate() {
        for &i in side.iter() {
            cluster.sides.insert(i, s as u8);
        }
    }
    cluster.run_for(Duration::from_secs(3));
    for (s, side) in sides.iter().enumerate() {
        cluster.write(side[0], leak(format!("during{s}")), "new");
        cluster.delete(side[side.len() - 1], leak(format!("doomed{s}")));
    }
    // Past the TTL and two whole sweeps (16 s each).
    cluster.run_for(Duration::from_secs(40));
    cluster.sides.clear();
    cluster.run_for(Duration::from_secs(15));
    cluster
}

/// Every node of `cluster` after [`long_split`] of `sides` sides: each
/// side's write there, each side's delete done.
fn assert_nothing_lost_nothing_back(cluster: &Cluster, sides: usize) {
    for i in 0..cluster.nodes.len() {
        for s in 0..sides {
            assert_eq!(cluster.read(i, &format!("during{s}")).as_deref(), Some(&b"new"[..]), "node {i} lost a write");
            assert_eq!(cluster.read(i, &format!("doomed{s}")), None, "node {i} brought a deleted key back");
        }
    }
}

#[test]
fn a_one_one_split_longer_than_the_ttl_loses_nothing_and_brings_nothing_back() {
    let cluster = long_split(&[&[0], &[1]], Sabotage::default());
    assert_nothing_lost_nothing_back(&cluster, 2);
    for node in cluster.nodes.iter().flatten() {
        assert_eq!(node.gossip_stats().stale_state_discarded, 0);
    }
}

#[test]
fn a_two_two_split_longer_than_the_ttl_loses_nothing_and_brings_nothing_back() {
    let cluster = long_split(&[&[0, 1], &[2, 3]], Sabotage::default());
    assert_nothing_lost_nothing_back(&cluster, 2);
}

/// The split the isolation rule lost C's acknowledged writes in: C, alone
/// on its side, counted as cut off.
#[test]
fn a_two_one_split_longer_than_the_ttl_loses_nothing_and_brings_nothing_back() {
    let cluster = long_split(&[&[0, 1], &[2]], Sabotage::default());
    assert_nothing_lost_nothing_back(&cluster, 2);
    for node in cluster.nodes.iter().flatten() {
        assert_eq!(node.gossip_stats().stale_state_discarded, 0);
    }
}

/// The rule before the horizon fails both ways: the tests above can fail.
#[test]
#[should_panic(expected = "node")]
fn the_ttl_only_rule_fails_a_two_one_split() {
    let cluster = long_split(&[&[0, 1], &[2]], Sabotage { ttl_only_gc: true, ..Sabotage::default() });
    assert_nothing_lost_nothing_back(&cluster, 2);
}

#[test]
#[should_panic(expected = "node")]
fn the_ttl_only_rule_loses_writes_or_brings_deletes_back_after_a_long_split() {
    let cluster = long_split(&[&[0, 1], &[2, 3]], Sabotage { ttl_only_gc: true, ..Sabotage::default() });
    assert_nothing_lost_nothing_back(&cluster, 2);
}

/// The horizon lets dead entries go once every member holds them, so a
/// healthy mesh does not keep tombstones for ever.
#[test]
fn dead_entries_are_forgotten_once_every_member_holds_them() {
    let mut cluster = Cluster::new(0);
    cluster.tombstone_ttl = Duration::from_secs(5);
    for _ in 0..3 {
        cluster.add_node();
    }
    cluster.run_for(Duration::from_secs(3));
    for k in 0..20 {
        cluster.write(k % 3, leak(format!("k{k}")), "v");
    }
    cluster.run_for(Duration::from_secs(2));
    for k in 0..20 {
        cluster.delete((k + 1) % 3, leak(format!("k{k}")));
    }
    cluster.run_for(Duration::from_secs(40));
    for i in 0..3 {
        assert!(cluster.entries(i).is_empty(), "node {i} still holds {} dead entries", cluster.entries(i).len());
    }
}

/// A node cut off for longer than `member_gone_after` is treated as gone
/// for good: the others forget the tombstones it lacks, and on its return
/// it drops what it holds from before the tombstone TTL instead of
/// bringing the deleted keys back.
#[test]
fn a_node_gone_for_good_drops_what_the_mesh_may_have_forgotten() {
    let mut cluster = Cluster::new(0);
    cluster.tombstone_ttl = Duration::from_secs(5);
    cluster.member_gone_after = Duration::from_secs(10);
    for _ in 0..3 {
        cluster.add_node();
    }
    cluster.run_for(Duration::from_secs(3));
    cluster.write(0, "doomed", "old");
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.read(2, "doomed").as_deref(), Some(&b"old"[..]));
    cluster.cut_off.push(2);
    cluster.run_for(Duration::from_secs(3));
    cluster.delete(0, "doomed");
    // Past the grace, the TTL and a whole sweep (16 s): the tombstone is forgotten.
    cluster.run_for(Duration::from_secs(40));
    assert!(cluster.entries(0).is_empty() && cluster.entries(1).is_empty(), "the tombstone is forgotten");
    assert!(cluster.nodes[0].as_ref().unwrap().gossip_stats().members_gone >= 1);
    cluster.cut_off.clear();
    cluster.run_for(Duration::from_secs(10));
    assert_eq!(cluster.nodes[2].as_ref().unwrap().gossip_stats().stale_state_discarded, 1);
    for i in 0..3 {
        assert_eq!(cluster.read(i, "doomed"), None, "node {i} brought the deleted key back");
    }
}

/// A restarted node holds its dead entries as from its restart, so its peer
/// may forget them first. Offering them back to that peer (which takes a
/// forgotten entry back, to forget it again) passed them back and forth for
/// ever, never forgotten on both sides at once.
#[test]
fn dead_entries_are_forgotten_on_both_sides_after_a_restart() {
    let mut cluster = Cluster::new(0);
    cluster.tombstone_ttl = Duration::from_secs(5);
    for _ in 0..2 {
        cluster.add_persistent_node();
    }
    cluster.run_for(Duration::from_secs(3));
    for k in 0..20 {
        cluster.write(0, leak(format!("k{k}")), "v");
    }
    cluster.run_for(Duration::from_secs(1));
    for k in 0..20 {
        cluster.delete(0, leak(format!("k{k}")));
    }
    cluster.run_for(Duration::from_secs(1));
    cluster.crash(1);
    cluster.start_from_disk(1);
    let both_rid = (0..120).any(|_| {
        cluster.run_for(Duration::from_secs(1));
        cluster.entries(0).is_empty() && cluster.entries(1).is_empty()
    });
    let held = (cluster.entries(0).len(), cluster.entries(1).len());
    assert!(both_rid, "dead entries still held after 2 minutes: {held:?}");
}

/// The membership forgets a down member after `forget_down_after` (an
/// hour by default), long before `member_gone_after`. A node restarted from
/// its data dir after that hears of the away member from nobody; unless its
/// data dir kept the member, it forgets a delete the member lacks, and the
/// member's return brings the deleted key back.
fn restart_while_a_member_is_away(keep_members: bool) -> Cluster {
    let mut cluster = Cluster::new(0);
    cluster.tombstone_ttl = Duration::from_secs(5);
    cluster.member_gone_after = Duration::from_secs(3600);
    cluster.forget_down_after = Duration::from_secs(10);
    for _ in 0..3 {
        cluster.add_persistent_node();
    }
    cluster.run_for(Duration::from_secs(3));
    cluster.write(0, "doomed", "old");
    cluster.run_for(Duration::from_secs(1));
    assert_eq!(cluster.read(2, "doomed").as_deref(), Some(&b"old"[..]));
    // Node 2 stops, its data dir holding the old value.
    cluster.crash(2);
    cluster.delete(0, "doomed");
    // The others forget node 2 as a member, then restart one after the other.
    cluster.run_for(Duration::from_secs(30));
    assert!(!cluster.states_seen_by(0).contains_key(&addr(2)), "the membership forgot node 2");
    for i in 0..2 {
        if !keep_members {
            cluster.disks.get_mut(&i).unwrap().members.clear();
        }
        cluster.crash(i);
        cluster.start_from_disk(i);
        cluster.run_for(Duration::from_secs(3));
    }
    // Past the TTL and whole sweeps: forgotten on both at once, if it may be.
    let forgotten = (0..300).any(|_| {
        cluster.run_for(Duration::from_secs(1));
        cluster.entries(0).is_empty() && cluster.entries(1).is_empty()
    });
    assert_eq!(forgotten, !keep_members, "the tombstone is forgotten only without node 2 kept");
    cluster.start_from_disk(2);
    cluster.run_for(Duration::from_secs(10));
    cluster
}

#[test]
fn a_restart_keeps_the_members_that_may_come_back_and_their_deletes() {
    let cluster = restart_while_a_member_is_away(true);
    for i in 0..3 {
        assert_eq!(cluster.read(i, "doomed"), None, "node {i} brought the deleted key back");
    }
}

#[test]
fn without_the_kept_members_a_restart_brings_a_delete_back() {
    let cluster = restart_while_a_member_is_away(false);
    assert!((0..3).any(|i| cluster.read(i, "doomed").is_some()), "the scenario shows the defect it guards against");
}

/// A cluster of one node under the given frame limit and sync budget,
/// which later nodes share.
fn limited(max_stream_bytes: usize, sync_budget_bytes: usize) -> Cluster {
    let mut cluster = Cluster::new(0);
    cluster.max_stream_bytes = max_stream_bytes;
    cluster.sync_budget_bytes = sync_budget_bytes;
    cluster.add_node();
    cluster.run_for(Duration::from_millis(100));
    cluster
}

#[test]
fn a_fresh_peer_catches_up_when_the_budget_is_over_the_frame_limit() {
    // max_bulk_bytes = 1 MiB gives this frame limit; the budget stays at
    // its 4 MiB default, so an unclamped chunk could never be received.
    let mut cluster = limited((1 << 20) + 65_536 + 4096, 4 << 20);
    let value = leak("v".repeat(1000));
    for i in 0..3000 {
        cluster.write(0, leak(format!("key:{i}")), value);
    }
    let late = cluster.add_node();
    cluster.run_for(Duration::from_secs(20));
    assert_eq!(cluster.entries(late).len(), 3000);
    assert_eq!(cluster.entries(late), cluster.entries(0));
    assert_eq!(cluster.oversized_dropped, 0);
}

/// Two keys that hash to the same leaf of the digest tree.
fn same_leaf_pair() -> (&'static str, &'static str) {
    use super::digest::{key_hash, leaf_of_hash};
    let mut seen = BTreeMap::new();
    for i in 0.. {
        let key = format!("big:{i}");
        if let Some(other) = seen.insert(leaf_of_hash(key_hash(key.as_bytes())), key.clone()) {
            return (leak(other), leak(key));
        }
    }
    unreachable!()
}

#[test]
fn large_values_beside_many_small_differences_converge_within_the_frame_limit() {
    // Scaled down from a 60 MiB value under the default 64 MiB limit: one
    // value alone nearly fills a frame, and two share a leaf.
    let mut cluster = limited(100_000, 64 * 1024);
    let (a, b) = same_leaf_pair();
    cluster.write(0, a, leak("a".repeat(60_000)));
    cluster.write(0, b, leak("b".repeat(60_000)));
    cluster.write(0, "huge", leak("h".repeat(90_000)));
    for i in 0..500 {
        cluster.write(0, leak(format!("small:{i}")), "some value of moderate length");
    }
    let late = cluster.add_node();
    for i in 0..500 {
        cluster.write(late, leak(format!("other:{i}")), "written on the other side");
    }
    cluster.run_for(Duration::from_secs(30));
    assert_eq!(cluster.entries(late).len(), 1003);
    assert_eq!(cluster.entries(late), cluster.entries(0));
    assert_eq!(cluster.oversized_dropped, 0);
}

/// Drains node `i`'s transmits and returns where they go.
fn sent_to(cluster: &mut Cluster, i: usize) -> Vec<SocketAddr> {
    let node = cluster.nodes[i].as_mut().unwrap();
    std::iter::from_fn(|| node.poll_transmit()).map(|t| t.to).collect()
}

fn stranger_push(sender: SocketAddr) -> Vec<u8> {
    let entry = super::store::Entry {
        value: Some(Bytes::from_static(b"evil")),
        version: super::version::Version {
            timestamp: super::version::Timestamp::from_physical_ms(EPOCH_MS),
            writer: NodeId::from_random_bytes([99; 16]),
        },
        expires_at_ms: None,
        deadline_set_at: super::version::Timestamp::from_physical_ms(EPOCH_MS),
    };
    Message::Push { sender, hops_left: 3, entries: vec![(Bytes::from_static(b"planted"), entry)] }.encode()
}

use super::wire::Message;

#[test]
fn strangers_may_not_push_sync_or_speak_of_membership() {
    let mut cluster = Cluster::formed(2, &[]);
    cluster.write(0, "secret", "v");
    let _ = sent_to(&mut cluster, 0);
    let now = cluster.time();
    let stranger = SocketAddr::from(([127, 0, 0, 9], 9000));
    let stranger_tcp = SocketAddr::from(([127, 0, 0, 9], 50_000));
    let member = addr(1);
    let node = cluster.nodes[0].as_mut().unwrap();
    node.handle_datagram(stranger, &stranger_push(stranger), now);
    // A datagram naming a member it does not come from.
    node.handle_datagram(stranger, &stranger_push(member), now);
    let digests = |sender| {
        Message::SyncDigests { sender, level: 0, nodes: vec![0], digests: vec![0; 16], caught_up: true }.encode()
    };
    node.handle_frame(stranger_tcp, &digests(stranger), now);
    // A frame naming a member, from an IP the member is not on.
    node.handle_frame(stranger_tcp, &digests(member), now);
    node.handle_frame(stranger_tcp, &Message::MembersDigest { sender: stranger, digest: 0 }.encode(), now);
    node.handle_datagram(stranger, &Message::Leaving { identity: identity(1) }.encode(), now);
    let invented = Identity { addr: SocketAddr::from(([127, 0, 0, 9], 9001)), ..identity(5) };
    let record = super::membership::MemberRecord { identity: invented.clone(), incarnation: 0, down: false };
    node.handle_datagram(
        stranger,
        &Message::Members { sender: stranger, members: vec![record], reply: true }.encode(),
        now,
    );
    // A Flush would wipe the store; a Confirm carries entries and asks for
    // an answer; a Confirmed would count as a member's confirmation.
    let upto = super::version::Timestamp::from_physical_ms(now.wall_ms);
    node.handle_datagram(stranger, &Message::Flush { sender: stranger, hops_left: 3, upto }.encode(), now);
    let Message::Push { entries, .. } = Message::decode_body(&stranger_push(stranger)[1..]).unwrap() else {
        unreachable!()
    };
    let confirm = Message::Confirm { sender: stranger, round: 1, part: 0, parts: 1, entries, digests: vec![] }.encode();
    node.handle_datagram(stranger, &confirm, now);
    node.handle_frame(stranger_tcp, &confirm, now);
    node.handle_datagram(stranger, &Message::Confirmed { sender: stranger, round: 1, part: 0 }.encode(), now);
    assert_eq!(node.gossip_stats().strangers_refused, 11);
    assert_eq!(node.gossip_stats().flushes_applied, 0);
    assert_eq!(
        node.store().get(b"secret", now.wall_ms).as_deref(),
        Some(&b"v"[..]),
        "a stranger's Flush wiped the store"
    );
    assert_eq!(node.store().get(b"planted", now.wall_ms), None);
    assert!(sent_to(&mut cluster, 0).is_empty(), "nothing is answered, to anyone");
    let seen = cluster.states_seen_by(0);
    assert_eq!(seen.get(&member), Some(&MemberState::Alive), "a stranger's Leaving evicts nobody");
    assert!(!seen.contains_key(&invented.addr), "a stranger's Members invents nobody");
}

#[test]
fn members_are_answered_at_their_gossip_address_from_their_own_ip() {
    let mut cluster = Cluster::formed(2, &[]);
    cluster.write(0, "k", "v");
    let _ = sent_to(&mut cluster, 0);
    let now = cluster.time();
    let member = addr(1);
    let node = cluster.nodes[0].as_mut().unwrap();
    // A stream comes from an ephemeral port of the member's IP.
    let from = SocketAddr::new(member.ip(), 50_001);
    let digests =
        Message::SyncDigests { sender: member, level: 0, nodes: vec![0], digests: vec![0; 16], caught_up: true };
    node.handle_frame(from, &digests.encode(), now);
    node.handle_datagram(member, &stranger_push(member), now);
    assert_eq!(node.gossip_stats().strangers_refused, 0);
    assert_eq!(node.store().get(b"planted", now.wall_ms).as_deref(), Some(&b"evil"[..]), "a member's push applies");
    let sent = sent_to(&mut cluster, 0);
    assert!(!sent.is_empty() && sent.iter().all(|to| *to == member), "answers go to the member: {sent:?}");
}

#[test]
fn a_swim_packet_must_come_from_the_address_it_names() {
    let mut cluster = Cluster::new(2);
    let now = cluster.time();
    let joiner = cluster.nodes[1].as_mut().unwrap();
    joiner.handle_timeout(now);
    let announce = std::iter::from_fn(|| joiner.poll_transmit()).find(|t| t.to == addr(0)).expect("an announce");
    let _ = sent_to(&mut cluster, 0);
    let seed = cluster.nodes[0].as_mut().unwrap();
    // Forged: the joiner's announce from another host would make the seed
    // answer (and take in) an address the sender is not at.
    let forger = SocketAddr::from(([127, 0, 0, 9], 7001));
    let rejected = seed.membership_stats().swim_rejected;
    seed.handle_datagram(forger, &announce.payload, now);
    assert_eq!(seed.membership_stats().swim_rejected, rejected + 1);
    assert!(sent_to(&mut cluster, 0).is_empty(), "no answer to a forged sender");
    assert!(!cluster.states_seen_by(0).contains_key(&addr(1)));
    let seed = cluster.nodes[0].as_mut().unwrap();
    seed.handle_datagram(addr(1), &announce.payload, now);
    assert!(sent_to(&mut cluster, 0).contains(&addr(1)), "the real joiner is answered");
    assert!(cluster.states_seen_by(0).contains_key(&addr(1)));
}

#[test]
fn strangers_swim_traffic_is_rate_limited_per_source() {
    let mut cluster = Cluster::new(1);
    let now = cluster.time();
    let node = cluster.nodes[0].as_mut().unwrap();
    let burst = super::strangers::StrangerLimits::default().packets_per_sec as usize;
    for i in 0..burst * 2 {
        // Junk SWIM from one stranger IP, many ports.
        node.handle_datagram(SocketAddr::from(([127, 0, 0, 9], 1000 + i as u16)), &[super::tag::TAG_SWIM, 0xFF], now);
    }
    assert_eq!(node.gossip_stats().strangers_limited, burst as u64);
}

/// What a node sends a stranger is at most three times what the stranger
/// sent: a node's own (padded) announce gets the members' list, the same
/// announce unpadded — what a forged source would cost us — gets nothing.
#[test]
fn an_answer_to_a_stranger_is_at_most_three_times_its_request() {
    let mut cluster = Cluster::formed(12, &[]);
    cluster.run_for(Duration::from_secs(2));
    for i in 0..12 {
        sent_to(&mut cluster, i);
    }
    let now = cluster.time();
    let announce_of = |i: usize| {
        let config = config(addr(0), 16);
        let store = Arc::new(config.new_store(identity(i).id));
        let mut joining = Node::new(identity(i), config, store, i as u64, now, NodeMemory::default());
        joining.handle_timeout(now);
        std::iter::from_fn(|| joining.poll_transmit()).find(|t| t.to == addr(0)).unwrap().payload
    };
    let seed = cluster.nodes[0].as_mut().unwrap();
    let mut answer = |from: SocketAddr, payload: &[u8]| -> Vec<usize> {
        seed.handle_datagram(from, payload, now);
        std::iter::from_fn(|| seed.poll_transmit()).filter(|t| t.to == from).map(|t| t.payload.len()).collect()
    };
    let padded = announce_of(40);
    assert_eq!((padded[0], padded.len()), (super::tag::TAG_SWIM_PADDED, super::tag::PADDED_SWIM_BYTES));
    let to_padded = answer(addr(40), &padded);
    assert!(to_padded.iter().sum::<usize>() <= 3 * padded.len());
    let unpadded = announce_of(41);
    let plain = [&[super::tag::TAG_SWIM][..], super::tag::unpad_swim(&unpadded[1..]).unwrap()].concat();
    let to_plain = answer(addr(41), &plain);
    assert!(to_plain.iter().sum::<usize>() <= 3 * plain.len(), "{to_plain:?} for {} bytes", plain.len());
    assert!(
        to_padded.iter().any(|&len| len > plain.len() * 3),
        "the padded announce gets the members' list, over the cap of a plain one: {to_padded:?}"
    );
    assert_eq!(cluster.nodes[0].as_ref().unwrap().gossip_stats().stranger_answers_dropped, 1);
}

/// A SWIM payload (tag byte on) from `src` to `dst` carrying `message` and
/// no updates, encoded as foca encodes its own.
fn swim_packet(src: Identity, dst: Identity, message: foca::Message<Identity>) -> Vec<u8> {
    use foca::Codec;
    let header = foca::Header { src, src_incarnation: 0, dst, message };
    let mut payload = vec![super::tag::TAG_SWIM];
    foca::PostcardCodec.encode_header(&header, &mut payload).unwrap();
    payload
}

/// foca lists as down any identity a member's gossip names down, and on
/// its own announces to the members it lists as down every few seconds
/// (which is how a mesh split by a partition finds itself again): one
/// member's packet naming 10.9.9.9:1234 down would draw a packet there
/// every 5 s, from every node it reached, for as long as foca lists it.
#[test]
fn a_members_down_update_about_a_stranger_draws_no_packets_there() {
    use foca::Codec;
    let mut cluster = Cluster::formed(3, &[]);
    let named = Identity { addr: SocketAddr::from(([10, 9, 9, 9], 1234)), ..identity(8) };
    let now = cluster.time();
    let node = cluster.nodes[0].as_mut().unwrap();
    let me = node.identity().clone();
    let mut packet = swim_packet(identity(1), me, foca::Message::Gossip);
    packet.extend_from_slice(&1u16.to_be_bytes());
    foca::PostcardCodec.encode_member(&foca::Member::new(named, 0, foca::State::Down), &mut packet).unwrap();
    node.handle_datagram(addr(1), &packet, now);
    cluster.collect(0);
    cluster.run_for(Duration::from_secs(30));
    assert_eq!(cluster.strays, [], "packets to an address only a message named");
    assert!(cluster.nodes[0].as_ref().unwrap().membership_stats().swim_announces_refused > 0);
    // Announces to a member we saw up and then down go on: a partition
    // heals through them.
    cluster.cut_off.push(2);
    cluster.run_for(Duration::from_secs(10));
    assert_eq!(cluster.states_seen_by(0).get(&addr(2)), Some(&MemberState::Down));
    cluster.cut_off.clear();
    cluster.run_for(Duration::from_secs(15));
    assert_eq!(cluster.states_seen_by(0).get(&addr(2)), Some(&MemberState::Alive), "the mesh found itself again");
    assert_eq!(cluster.strays, []);
}

/// foca answers `PingReq { target }` with an `IndirectPing` to `target`
/// and `IndirectAck { target }` with a `ForwardedAck` to it: from anyone
/// but a member about a member, that is a send to an address a message
/// names.
#[test]
fn swim_never_sends_to_an_address_a_strangers_message_names() {
    let mut cluster = Cluster::formed(3, &[]);
    let _ = sent_to(&mut cluster, 0);
    let now = cluster.time();
    let stranger = Identity { addr: SocketAddr::from(([127, 0, 0, 9], 9000)), ..identity(9) };
    let named = Identity { addr: SocketAddr::from(([10, 9, 9, 9], 1234)), ..identity(8) };
    let node = cluster.nodes[0].as_mut().unwrap();
    let me = node.identity().clone();
    let rejected = node.membership_stats().swim_redirects_refused;
    let ping_req = foca::Message::PingReq { target: named.clone(), probe_number: 1 };
    let indirect_ack = foca::Message::IndirectAck { target: named.clone(), probe_number: 1 };
    for message in [ping_req, indirect_ack] {
        node.handle_datagram(stranger.addr, &swim_packet(stranger.clone(), me.clone(), message.clone()), now);
        // A member may not point us at a stranger either.
        node.handle_datagram(addr(1), &swim_packet(identity(1), me.clone(), message), now);
    }
    let sent = sent_to(&mut cluster, 0);
    assert!(!sent.contains(&named.addr), "sent to the address a message named: {sent:?}");
    let node = cluster.nodes[0].as_mut().unwrap();
    assert_eq!(node.membership_stats().swim_redirects_refused, rejected + 4);
    // Between members, indirect probes go on: asked by one member to probe
    // another, we ping it.
    let probe = foca::Message::PingReq { target: identity(2), probe_number: 1 };
    node.handle_datagram(addr(1), &swim_packet(identity(1), me, probe), now);
    assert!(sent_to(&mut cluster, 0).contains(&addr(2)), "a member's indirect probe is carried out");
    assert_eq!(cluster.nodes[0].as_ref().unwrap().membership_stats().swim_redirects_refused, rejected + 4);
}

/// A member whose clock is broken (or who is hostile) pushes entries stamped
/// with the last timestamp there is: they are refused, and the key keeps
/// what clients wrote, SET and DEL included.
#[test]
fn a_members_entry_from_the_far_future_is_refused_and_writes_stick() {
    let mut cluster = Cluster::formed(2, &[]);
    let poison = |key: &'static str| {
        let far = super::version::Timestamp::from_packed(u64::MAX - 1);
        let entry = super::store::Entry {
            value: Some(Bytes::from_static(b"poison")),
            version: super::version::Version { timestamp: far, writer: NodeId::from_random_bytes([9; 16]) },
            expires_at_ms: None,
            deadline_set_at: far,
        };
        Message::Push { sender: addr(1), hops_left: 0, entries: vec![(Bytes::from_static(key.as_bytes()), entry)] }
            .encode()
    };
    let deliver = |cluster: &mut Cluster, key: &'static str| {
        let now = cluster.time();
        cluster.nodes[0].as_mut().unwrap().handle_datagram(addr(1), &poison(key), now);
        cluster.run_for(Duration::from_millis(50));
    };
    cluster.write(0, "k", "v1");
    deliver(&mut cluster, "k");
    assert_eq!(cluster.read(0, "k").as_deref(), Some(&b"v1"[..]), "the far-future entry took the key over");
    cluster.write(0, "k", "v2");
    deliver(&mut cluster, "k");
    assert_eq!(cluster.read(0, "k").as_deref(), Some(&b"v2"[..]), "SET was undone");
    cluster.delete(0, "k");
    deliver(&mut cluster, "k");
    assert_eq!(cluster.read(0, "k"), None, "DEL was undone");
    deliver(&mut cluster, "fresh");
    assert_eq!(cluster.read(0, "fresh"), None);
    let store = cluster.nodes[0].as_ref().unwrap().store().clone();
    assert_eq!(store.stats().future_refused.load(std::sync::atomic::Ordering::Relaxed), 4);
}

#[test]
fn a_fresh_node_counts_matches_only_from_a_caught_up_peer() {
    use super::loading::CatchUpState;
    let mut cluster = Cluster::new(2);
    let now = cluster.time();
    let node = cluster.nodes[1].as_mut().unwrap();
    assert_eq!(node.catch_up_remaining(), Some(super::horizon::SUBTREES), "fresh, with a seed: catching up");
    assert_eq!(node.store().catch_up(), CatchUpState::Refusing);
    node.restore_members(&[identity(2)], now);
    let empty = |caught_up| {
        Message::SyncDigests { sender: addr(2), level: 0, nodes: vec![0], digests: vec![0; 16], caught_up }.encode()
    };
    let from = SocketAddr::new(addr(2).ip(), 50_002);
    node.handle_frame(from, &empty(false), now);
    assert_eq!(node.gossip_stats().strangers_refused, 0);
    assert_eq!(
        node.catch_up_remaining(),
        Some(super::horizon::SUBTREES),
        "another fresh node's empty store is not the mesh's"
    );
    node.handle_frame(from, &empty(true), now);
    assert_eq!(node.catch_up_remaining(), None, "a caught-up peer matched every subtree");
    assert_eq!(node.store().catch_up(), CatchUpState::Done);
    assert_eq!(cluster.nodes[0].as_ref().unwrap().catch_up_remaining(), None, "a node alone never catches up");
}

#[test]
fn a_fresh_node_stops_loading_holding_everything_its_peer_holds() {
    let mut cluster = Cluster::new(1);
    let now = cluster.time();
    let store = cluster.nodes[0].as_ref().unwrap().store().clone();
    for i in 0..2_000 {
        let put = Write::Put { value: Bytes::from(format!("v{i}")), expires_at_ms: None };
        store.update(&Bytes::from(format!("k{i}")), now.wall_ms, |_| (Some(put), ())).unwrap();
    }
    let fresh = cluster.add_node();
    let mut steps = 0;
    while cluster.nodes[fresh].as_ref().unwrap().catch_up_remaining().is_some() {
        cluster.run_for(Duration::from_millis(1));
        steps += 1;
        assert!(steps < 10_000, "the fresh node never caught up");
    }
    assert_eq!(cluster.entries(fresh), cluster.entries(0), "caught up means holding what the peer held");
    // Its first round (opened on joining) brings the entries, the next one
    // (a sync interval later, ±25%) matches.
    assert!(cluster.now < Duration::from_millis(2_600), "caught up at {:?}", cluster.now);
}

/// A memory-only node's last write, whose push is lost, is held by its peer
/// once the node has stopped: the stop waits for a hand-off round that
/// matched every subtree. Without the hand-off the write dies with it.
#[test]
fn a_stopping_node_hands_off_a_write_whose_push_was_lost() {
    for handoff in [true, false] {
        let mut cluster = Cluster::new(2);
        cluster.run_for(Duration::from_secs(3));
        assert_eq!(cluster.states_seen_by(0).get(&addr(1)), Some(&MemberState::Alive));
        cluster.lossy_pushes.push(1);
        cluster.write(1, "last", "words");
        cluster.run_for(Duration::from_millis(50));
        assert_eq!(cluster.read(0, "last"), None, "the push was lost");
        let now = cluster.time();
        let stopping = cluster.nodes[1].as_mut().unwrap();
        if handoff {
            assert!(stopping.begin_handoff(now));
            assert!(!stopping.handoff_done());
            let mut steps = 0;
            while !cluster.nodes[1].as_ref().unwrap().handoff_done() {
                cluster.collect(1);
                cluster.run_for(Duration::from_millis(1));
                steps += 1;
                assert!(steps < 500, "the hand-off did not complete in 500 ms");
            }
        }
        let now = cluster.time();
        cluster.nodes[1].as_mut().unwrap().leave(now);
        cluster.collect(1);
        cluster.run_for(Duration::from_millis(10));
        cluster.crash(1);
        cluster.run_for(Duration::from_secs(2));
        let held = cluster.read(0, "last");
        if handoff {
            assert_eq!(held.as_deref(), Some(&b"words"[..]), "the peer holds the last write");
        } else {
            assert_eq!(held, None, "without a hand-off the write is lost (the test shows the loss it guards)");
        }
    }
}

#[test]
fn a_node_with_no_live_peer_has_nobody_to_hand_off_to() {
    let mut cluster = Cluster::new(1);
    let now = cluster.time();
    let alone = cluster.nodes[0].as_mut().unwrap();
    assert!(!alone.begin_handoff(now));
    assert!(alone.handoff_done());
}

/// A new mesh whose nodes all seed each other has no caught-up node: each
/// serves once every seed is live and every member matched it everywhere,
/// within a few sync rounds rather than after `loading_wait`.
#[test]
fn a_new_mesh_of_fresh_nodes_serves_without_waiting() {
    let mut cluster = Cluster::new(0);
    cluster.seeds = Some((0..3).map(addr).collect());
    for _ in 0..3 {
        cluster.add_node();
    }
    assert!(cluster.nodes.iter().flatten().all(|n| n.catch_up_remaining().is_some()));
    let mut steps = 0;
    while cluster.nodes.iter().flatten().any(|n| n.catch_up_remaining().is_some()) {
        cluster.run_for(Duration::from_millis(10));
        steps += 1;
        assert!(steps < 500, "still catching up after 5 s: every node would wait loading_wait");
    }
    assert!(cluster.now < Duration::from_millis(3_000), "served at {:?}", cluster.now);
}

#[test]
fn time_in_the_mesh_is_noted_each_second_except_while_cut_off() {
    let mut cluster = Cluster::new(3);
    cluster.run_for(Duration::from_secs(10));
    let notes = |cluster: &Cluster, i: usize, from_ms: u64, to_ms: u64| -> Vec<u64> {
        let notes = cluster.in_mesh_notes.get(&i).cloned().unwrap_or_default();
        notes.into_iter().filter(|&ms| (EPOCH_MS + from_ms..EPOCH_MS + to_ms).contains(&ms)).collect()
    };
    for i in 0..3 {
        let joined = notes(&cluster, i, 2_000, 10_000);
        assert!((7..=9).contains(&joined.len()), "node {i} noted {joined:?}");
        assert!(joined.windows(2).all(|w| w[1] - w[0] >= 1000), "node {i} noted more than once a second");
    }
    // Node 2 is cut off: once it has declared the others down it notes
    // nothing; the two others are still a mesh.
    cluster.cut_off.push(2);
    cluster.run_for(Duration::from_secs(10));
    assert!(cluster.nodes[2].as_ref().unwrap().is_cut_off());
    assert_eq!(notes(&cluster, 2, 15_000, 20_000), Vec::<u64>::new(), "noted while cut off");
    for i in 0..2 {
        assert!(notes(&cluster, i, 15_000, 20_000).len() >= 4, "node {i} of the mesh stopped noting");
    }
    cluster.cut_off.clear();
    cluster.run_for(Duration::from_secs(10));
    assert!(notes(&cluster, 2, 25_000, 30_000).len() >= 4, "node 2 back in the mesh notes again");
    // Leaving notes the time of the leave.
    let at = cluster.time();
    let node = cluster.nodes[1].as_mut().unwrap();
    while node.poll_in_mesh().is_some() {}
    node.leave(at);
    assert_eq!(node.poll_in_mesh(), Some(at.wall_ms));
}

impl Cluster {
    /// A client's FLUSHALL on node `i`.
    fn flush(&mut self, i: usize) {
        let now = self.time();
        let node = self.nodes[i].as_mut().unwrap();
        let upto = node.store().flush_local(now.wall_ms).unwrap();
        node.handle_local_flush(upto, now);
        self.collect(i);
    }
}

/// 200 keys on 5 nodes; node 4 cut off; FLUSHALL on node 0 and a write
/// after it; then node 4 heals, and node 5 joins later.
fn flush_scenario(sabotage: Sabotage) -> Cluster {
    let mut cluster = Cluster::build(5, 16, sabotage);
    cluster.run_for(Duration::from_secs(3));
    for i in 0..200 {
        cluster.write(i % 5, leak(format!("k{i}")), "before");
    }
    cluster.delete(1, "k1");
    cluster.run_for(Duration::from_secs(1));
    cluster.cut_off = vec![4];
    cluster.flush(0);
    cluster.run_for(Duration::from_millis(100));
    cluster.write(2, "after", "stays");
    cluster.run_for(Duration::from_secs(2));
    cluster.cut_off.clear();
    cluster.add_node();
    cluster.run_for(Duration::from_secs(15));
    cluster
}

#[test]
fn a_flush_reaches_a_node_that_missed_it_and_one_that_joins_later() {
    let cluster = flush_scenario(Sabotage::default());
    for i in 0..6 {
        let entries = cluster.entries(i);
        let keys: Vec<&[u8]> = entries.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, [b"after"], "node {i} holds only the write after the flush");
        assert_eq!(cluster.read(i, "after").as_deref(), Some(&b"stays"[..]));
        let flushed = cluster.nodes[i].as_ref().unwrap().store().flushed();
        assert_eq!(flushed, cluster.nodes[0].as_ref().unwrap().store().flushed(), "node {i} took the flush");
    }
}

#[test]
fn without_keeping_the_flush_the_node_that_missed_it_brings_the_keys_back() {
    let cluster = flush_scenario(Sabotage { flush_not_kept: true, ..Sabotage::default() });
    assert!(cluster.entries(0).len() > 1, "the flushed keys came back to node 0");
}

impl Cluster {
    /// Asks node `i` to have every local write so far confirmed (WAIT);
    /// returns the batches it waits for.
    fn want_confirmed(&mut self, i: usize) -> u64 {
        let now = self.time();
        let node = self.nodes[i].as_mut().unwrap();
        let upto = node.local_batches();
        node.want_confirmation(Some((upto, now.mono + Duration::from_secs(60))), now);
        self.collect(i);
        upto
    }

    fn confirmed(&self, i: usize, upto: u64) -> usize {
        self.nodes[i].as_ref().unwrap().confirmed_peers(upto)
    }
}

#[test]
fn every_live_peer_confirms_writes_its_pushes_lost_and_a_cut_off_one_does_not() {
    let mut cluster = Cluster::new(4);
    cluster.run_for(Duration::from_secs(3));
    // Node 0's pushes are lost: the confirmation itself must carry them.
    cluster.lossy_pushes = vec![0];
    for i in 0..50 {
        cluster.write(0, leak(format!("k{i}")), "v");
    }
    let upto = cluster.want_confirmed(0);
    assert_eq!(upto, 50);
    assert_eq!(cluster.confirmed(0, upto), 0, "nothing is confirmed before the peers answer");
    cluster.run_for(Duration::from_millis(100));
    assert_eq!(cluster.confirmed(0, upto), 3, "one round trip, well before anti-entropy");
    assert_eq!(cluster.read(3, "k49").as_deref(), Some(&b"v"[..]));

    cluster.cut_off = vec![3];
    cluster.write(0, "more", "v");
    let upto = cluster.want_confirmed(0);
    cluster.run_for(Duration::from_millis(1500));
    assert_eq!(cluster.confirmed(0, upto), 2, "the cut-off peer cannot confirm");
    cluster.cut_off.clear();
    cluster.run_for(Duration::from_secs(3));
    assert_eq!(cluster.confirmed(0, upto), 3, "the retried round reaches it once it is back");
}

#[test]
fn past_the_tracked_keys_a_peer_confirms_once_its_digests_match() {
    let mut cluster = Cluster::new(3);
    cluster.wait_tracked_keys = 10;
    cluster.add_node();
    cluster.run_for(Duration::from_secs(3));
    cluster.lossy_pushes = vec![3];
    for i in 0..50 {
        cluster.write(3, leak(format!("k{i}")), "v");
    }
    let upto = cluster.want_confirmed(3);
    cluster.run_for(Duration::from_millis(100));
    assert_eq!(cluster.confirmed(3, upto), 0, "the keys are no longer tracked and the stores differ");
    cluster.run_for(Duration::from_secs(8));
    assert_eq!(cluster.confirmed(3, upto), 3, "anti-entropy made the stores match, which confirms");
}
