//! One simulated machine: its address, its wall clock, its data dir if it
//! has one, and the node that runs on it in its current life. A crash ends
//! a life; a restart begins a new one on the same address with a higher
//! life, as a restarted `rumor serve` process would. Without a data
//! dir the crash loses the node's state and the restart has a fresh id;
//! with one, the restart keeps the id and loads what the store held.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use rumor::core::io::Now;
use rumor::core::membership::Identity;
use rumor::core::node::{Node, NodeConfig};
use rumor::core::start::{StaleData, StartError, Started};
use rumor::core::store::{Entry, Store};
use rumor::core::version::{NodeId, Timestamp};
use rumor::resp::exec::Executor;
use rumor::resp::shared::ClientLimits;

use crate::clock::NodeClock;
use crate::disk::{Opening, SimDisk};
use crate::seed;

/// Where a host is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostStatus {
    /// A late joiner that has not started yet.
    NotStarted,
    /// Running.
    Up,
    /// Crashed or stopped; it will restart.
    Down,
    /// Crashed or left for good.
    Gone,
}

/// One host.
pub struct Host {
    /// Its index (also encoded in its address).
    pub index: usize,
    /// Its gossip address.
    pub addr: SocketAddr,
    /// Its node name.
    pub name: String,
    /// Its wall clock.
    pub clock: NodeClock,
    /// Lifecycle.
    pub status: HostStatus,
    /// Lives started so far (the first start is life 1).
    pub life: u32,
    /// The node, while up. Boxed: a host moves to a helper thread and
    /// back for each window it has events in, and a node is 1.5 KB.
    pub node: Option<Box<Node>>,
    /// The clients' session on the node, while up: the server's command
    /// executor over the node's store. Boxed, as the node is.
    pub client: Option<Box<Executor>>,
    /// The earliest wake-up the world has queued for this node.
    pub wake_at: Option<Duration>,
    /// Local writes acknowledged but not yet handed to the node: the
    /// driver's bounded channel. A crash loses them.
    pub pending_writes: Vec<(Bytes, Entry)>,
    /// Whether a hand-over of `pending_writes` to the node is queued.
    pub hand_over_queued: bool,
    /// A FLUSHALL its client made, not yet handed to the node.
    pub pending_flush: Option<Timestamp>,
    /// The membership suspicion counter when last looked at.
    pub suspicions_seen: u64,
    /// Runs with a data dir (`--data-dir`): its state outlives crashes.
    pub persistent: bool,
    /// The data dir, once a persistent host has started.
    pub disk: Option<Arc<SimDisk>>,
    /// The life its last identity carried (start-up wall time, renewals).
    identity_life: u64,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("name", &self.name)
            .field("status", &self.status)
            .field("life", &self.life)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// A host that has not started.
    pub fn new(index: usize, clock: NodeClock) -> Self {
        Host { name: format!("n{index}"), ..Host::new_unnamed(index, clock) }
    }

    fn new_unnamed(index: usize, clock: NodeClock) -> Self {
        Host {
            index,
            addr: addr_of(index),
            name: String::new(),
            clock,
            status: HostStatus::NotStarted,
            life: 0,
            node: None,
            client: None,
            wake_at: None,
            pending_writes: Vec::new(),
            hand_over_queued: false,
            pending_flush: None,
            suspicions_seen: 0,
            persistent: false,
            disk: None,
            identity_life: 0,
        }
    }

    /// What stands in `index`'s place while its host is on a helper
    /// thread for a window: nothing reads it, and it costs no allocation.
    pub fn vacant(index: usize) -> Self {
        Host { name: String::new(), ..Host::new_unnamed(index, NodeClock::default()) }
    }

    /// Starts a new life at `at`: a fresh node, with an empty store or
    /// the one its data dir kept. Returns whether a data dir too old to
    /// load (see [`NodeConfig::data_dir_age`]) was discarded.
    pub fn start(&mut self, run_seed: u64, config: NodeConfig, at: Duration) -> bool {
        self.life += 1;
        let life_key = ((self.index as u64) << 24) | u64::from(self.life);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&seed::derive(run_seed, "node.id.hi", life_key).to_le_bytes());
        id[8..].copy_from_slice(&seed::derive(run_seed, "node.id.lo", life_key).to_le_bytes());
        let fresh_id = NodeId::from_random_bytes(id);
        let now = self.now(at);
        if self.disk.is_none() && self.persistent {
            self.disk = Some(Arc::new(SimDisk::new(fresh_id)));
        }
        // As `--stale-data discard`: a stale dir is dropped and the node starts afresh.
        let disk = self.disk.clone().map(Opening);
        let started = match config.start_store(self.addr, fresh_id, disk, StaleData::Discard, now.wall_ms) {
            Ok(started) => started,
            Err(StartError::Stale { .. }) => unreachable!("a stale dir is discarded, not refused"),
            Err(StartError::DataDir(never)) => match never {},
        };
        // The id is kept in the data dir, as `rumor serve` keeps it.
        let id = started.store.writer();
        // Start-up wall time, as `rumor serve` uses; forced upward so a clock
        // stepped back cannot lose the address conflict to our old self.
        self.identity_life = now.wall_ms.max(self.identity_life + 1);
        let identity = Identity { id, addr: self.addr, life: self.identity_life, name: self.name.as_str().into() };
        let Started { store, memory, stale, .. } = started;
        let node_seed = seed::derive(run_seed, "node.core", life_key);
        let store = Arc::new(store);
        let client = Executor::new(1, &self.name, store.clone(), ClientLimits::default(), None);
        self.client = Some(Box::new(client));
        self.node = Some(Box::new(Node::new(identity, config, store, node_seed, now, memory)));
        self.status = HostStatus::Up;
        self.wake_at = None;
        self.pending_writes.clear();
        self.hand_over_queued = false;
        self.pending_flush = None;
        self.suspicions_seen = 0;
        stale.is_some()
    }

    /// Ends the current life; `gone` if it never comes back.
    pub fn stop(&mut self, gone: bool) {
        self.node = None;
        self.client = None;
        self.status = if gone { HostStatus::Gone } else { HostStatus::Down };
        self.wake_at = None;
        self.pending_writes.clear();
        self.hand_over_queued = false;
        self.pending_flush = None;
    }

    /// Whether the node is running.
    pub fn is_up(&self) -> bool {
        self.node.is_some()
    }

    /// The store of the running node.
    pub fn store(&self) -> Option<&Arc<Store>> {
        self.node.as_ref().map(|node| node.store())
    }

    /// The host's time readings at simulated time `at`.
    pub fn now(&self, at: Duration) -> Now {
        self.clock.now(at)
    }
}

/// Port every host gossips on.
pub const GOSSIP_PORT: u16 = 7946;

/// Host `index`'s gossip address: 10.a.b.c, the index in the low 24 bits.
pub fn addr_of(index: usize) -> SocketAddr {
    let [_, a, b, c] = u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes();
    SocketAddr::from((Ipv4Addr::new(10, a, b, c), GOSSIP_PORT))
}

/// The host index behind a gossip address, if it is one of ours.
pub fn index_of(addr: SocketAddr) -> Option<usize> {
    match addr {
        SocketAddr::V4(v4) if v4.port() == GOSSIP_PORT => {
            let [ten, a, b, c] = v4.ip().octets();
            (ten == 10).then(|| u32::from_be_bytes([0, a, b, c]) as usize)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts a persistent host that was last in a mesh at 0 s, `away`
    /// later, with or without seeds; returns whether its dir was discarded.
    fn restart_after(away: Duration, seeds: bool) -> bool {
        let mut config = rumor::config::Settings::default().node;
        config.member_gone_after = Duration::from_secs(60);
        config.tombstone_ttl = Duration::from_secs(5);
        config.seeds = if seeds { vec![addr_of(1)] } else { Vec::new() };
        let mut host = Host::new(0, NodeClock::exact());
        host.persistent = true;
        assert!(!host.start(1, config.clone(), Duration::ZERO));
        let wall_ms = host.now(Duration::ZERO).wall_ms;
        host.disk.as_ref().expect("a data dir").note_in_mesh(wall_ms);
        host.stop(false);
        host.start(1, config, away)
    }

    #[test]
    fn a_data_dir_is_stale_after_member_gone_after_and_only_with_seeds() {
        // Away longer than the TTL but within member_gone_after: kept.
        assert!(!restart_after(Duration::from_secs(30), true));
        assert!(restart_after(Duration::from_secs(61), true));
        // No seeds: a mesh of its own, never stale.
        assert!(!restart_after(Duration::from_secs(3600), false));
    }

    #[test]
    fn addresses_round_trip() {
        for i in [0, 1, 255, 256, 999, 65_536, 99_999] {
            assert_eq!(index_of(addr_of(i)), Some(i));
        }
        assert_eq!(index_of("127.0.0.1:7946".parse().unwrap()), None);
        assert_eq!(index_of("10.0.0.1:1".parse().unwrap()), None);
    }
}
