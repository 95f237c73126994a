//! A node's settings with their defaults, and the one way both drivers
//! start a node ([`NodeConfig::start_store`]): the store built from the
//! settings, a data dir's age judged by one rule, what is kept loaded back,
//! and what the node remembers of its last life handed on to it.
//!
//! `rumor serve` reads a data dir from fjall and the simulator from its
//! simulated disk, each behind [`DataDir`]; everything decided about what
//! they read is decided here, so the simulator starts nodes exactly as the
//! server does.

use ::core::net::SocketAddr; // an address value; the core opens no socket
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::changes::ChangeLog;

use super::horizon::KeptMember;
use super::loading::LoadingPolicy;
use super::membership::SwimConfig;
use super::sabotage::Sabotage;
use super::store::{DEFAULT_MAX_VERSION_AHEAD_MS, Store};
use super::strangers::StrangerLimits;
use super::version::NodeId;

/// How the node gossips and joins.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// SWIM timings.
    pub swim: SwimConfig,
    /// Gossip addresses to announce to until joined, and after a split.
    pub seeds: Vec<SocketAddr>,
    /// Peers each fresh entry is pushed to.
    pub fanout: usize,
    /// Forwarding steps a local write may take.
    pub max_hops: u8,
    /// Meshes with at most this many other live members get each local
    /// write pushed to every member directly, with no forwarding: rumor
    /// mongering with one forward per node leaves about e^-fanout of the
    /// nodes uninformed (Demers et al.), which in a small mesh is a node
    /// in every few writes, while a direct push costs fewer datagrams there.
    pub direct_push_max: usize,
    /// Keys of the most recent local writes kept for WAIT, which sends a
    /// peer the current entries of the keys it has not confirmed; a peer
    /// that has to confirm further back than this is confirmed by
    /// comparing digests instead (see `core::node::confirm`).
    pub wait_tracked_keys: usize,
    /// Largest datagram payload, bytes.
    pub max_datagram_bytes: usize,
    /// Largest stream frame, bytes.
    pub max_stream_bytes: usize,
    /// Longest wait between announces while not joined (backoff cap).
    pub join_retry_max: Duration,
    /// While joined, how often to re-announce to seeds we do not see alive,
    /// which is what re-forms a mesh after a partition heals.
    pub rejoin_interval: Duration,
    /// How often a node compares digests with one random live peer.
    pub sync_interval: Duration,
    /// Entries one sync message may carry, about (bytes); a round that hits
    /// it goes on at once with another round, so memory stays bounded
    /// however far apart two stores are.
    /// Never more than `max_stream_bytes` less a message's fixed part: the
    /// frame limit caps every sync message whatever the budget.
    pub sync_budget_bytes: usize,
    /// Dead entries (tombstones, expired values) are kept at least this
    /// long after they died, and then until every member that may come
    /// back holds them (see [`Horizon`]).
    pub tombstone_ttl: Duration,
    /// A member down or left for longer than this is treated as gone for
    /// good: dead entries are forgotten without it, and if it does come
    /// back it drops what it held from before the tombstone TTL.
    pub member_gone_after: Duration,
    /// How often addresses that are not members may talk to us (SWIM, to
    /// join); everything else from them is refused.
    pub strangers: StrangerLimits,
    /// What clients of a node that started empty get until it has caught
    /// up with a peer once (see [`Loading`]).
    pub loading: LoadingPolicy,
    /// A node catching up gives up, and serves, after this long without
    /// digests from a peer that has caught up itself.
    pub loading_wait: Duration,
    /// How far a remote version's clock may run ahead of ours before the
    /// version counts as drift (INFO and metrics show the largest lead).
    pub max_clock_drift_ms: u64,
    /// Remote versions stamped further ahead of our wall clock than this
    /// are refused and counted: one far in the future would win every merge.
    pub max_version_ahead_ms: u64,
    /// Deliberate bugs (simulator only; always default in production).
    pub sabotage: Sabotage,
}

/// The largest stream frame by default: the largest value (64 MiB) and key
/// (64 KiB) a client may write by default, and room for the message around
/// them.
pub const DEFAULT_MAX_STREAM_BYTES: usize = 64 * 1024 * 1024 + 64 * 1024 + 4096;

impl Default for SwimConfig {
    fn default() -> Self {
        SwimConfig {
            probe_interval: Duration::from_millis(300),
            probe_timeout: Duration::from_millis(150),
            suspect_timeout: Duration::from_millis(1000),
            gossip_interval: Duration::from_millis(100),
            // One byte of each 1,400-byte datagram is the tag.
            max_packet_bytes: NonZeroUsize::new(1399).unwrap_or(NonZeroUsize::MIN),
            cluster_size_hint: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
            forget_down_after: Duration::from_secs(3600),
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            swim: SwimConfig::default(),
            seeds: Vec::new(),
            fanout: 3,
            max_hops: 6,
            direct_push_max: 16,
            wait_tracked_keys: 100_000,
            max_datagram_bytes: 1400,
            max_stream_bytes: DEFAULT_MAX_STREAM_BYTES,
            join_retry_max: Duration::from_secs(2),
            rejoin_interval: Duration::from_secs(5),
            sync_interval: Duration::from_secs(1),
            sync_budget_bytes: 4 * 1024 * 1024,
            tombstone_ttl: Duration::from_secs(24 * 60 * 60),
            member_gone_after: Duration::from_secs(7 * 24 * 60 * 60),
            strangers: StrangerLimits::default(),
            loading: LoadingPolicy::Refuse,
            loading_wait: Duration::from_secs(10),
            max_clock_drift_ms: 500,
            max_version_ahead_ms: DEFAULT_MAX_VERSION_AHEAD_MS,
            sabotage: Sabotage::default(),
        }
    }
}

/// How old a data dir is, judged when a node starts from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirAge {
    /// Safe to load: its node was in a mesh recently enough, or never had
    /// seeds (a mesh of its own, where nobody deleted behind its back).
    Current,
    /// Its node was last in a mesh `away_ms` ago, longer than
    /// `member_gone_after`: the mesh has treated it as gone for good and may
    /// have forgotten deletes of keys it holds, which loading would bring
    /// back. The operator chooses (`--stale-data`).
    Stale {
        /// How long ago the node was last in a mesh.
        away_ms: u64,
        /// The `member_gone_after` it was judged by.
        gone_after_ms: u64,
    },
}

impl NodeConfig {
    /// The store a node with these settings keeps, empty, written as `id`.
    pub fn new_store(&self, id: NodeId) -> Store {
        Store::new(id, self.max_clock_drift_ms)
            .with_tombstone_ttl(self.tombstone_ttl.as_millis() as u64)
            .with_max_version_ahead(self.max_version_ahead_ms)
            .with_sabotage(self.sabotage)
    }

    /// Whether a node at gossip address `me` is a mesh of its own: it has
    /// no seed but itself.
    pub fn is_alone(&self, me: SocketAddr) -> bool {
        self.seeds.iter().all(|seed| *seed == me)
    }

    /// `member_gone_after`, ms.
    pub fn gone_after_ms(&self) -> u64 {
        self.member_gone_after.as_millis() as u64
    }

    /// The age of a data dir whose node, at `me`, was last in a mesh at
    /// `last_in_mesh_ms` (None: never, or a fresh dir), judged at `now_ms`.
    pub fn data_dir_age(&self, me: SocketAddr, last_in_mesh_ms: Option<u64>, now_ms: u64) -> DataDirAge {
        let gone_after_ms = self.gone_after_ms();
        match last_in_mesh_ms {
            Some(last) if !self.is_alone(me) && is_stale(last, now_ms, gone_after_ms) => {
                DataDirAge::Stale { away_ms: now_ms.saturating_sub(last), gone_after_ms }
            }
            _ => DataDirAge::Current,
        }
    }
}

/// What to do with a data dir judged [`DataDirAge::Stale`]: it may hold
/// keys the mesh deleted and has since forgotten, and loading it would
/// bring them back — or the whole mesh was down as long, and nothing was
/// deleted meanwhile. Only the operator knows which (`--stale-data`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StaleData {
    /// Do not start; say what to do.
    #[default]
    Refuse,
    /// Drop its entries and bootstrap from the peers.
    Discard,
    /// Load it as it is (the whole mesh was down).
    Keep,
}

/// What a node remembers of its last life beside its entries, kept in its
/// data dir and handed to [`super::node::Node::new`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeMemory {
    /// When it was last in a mesh (None: never, a fresh dir, or a dir it
    /// starts afresh from).
    pub last_in_mesh_ms: Option<u64>,
    /// The members that might come back, as [`super::node::Node::poll_kept_members`]
    /// last reported them.
    pub members: Vec<KeptMember>,
}

/// A data dir as starting a node needs it. `rumor serve` implements it over
/// fjall, the simulator over its simulated disk; [`NodeConfig::start_store`]
/// is the one caller.
pub trait DataDir: Sized {
    /// Why the data dir could not be read.
    type Error;
    /// What the driver keeps of the data dir while the node runs (the
    /// storage thread, for `rumor serve`).
    type Running;
    /// The node id kept in the dir, or `fresh`, kept from now on, for a new one.
    fn node_id(&mut self, fresh: NodeId) -> Result<NodeId, Self::Error>;
    /// What the node remembered when it stopped.
    fn memory(&self) -> Result<NodeMemory, Self::Error>;
    /// Drops every entry and what the node remembered (its id stays).
    fn discard_entries(&mut self) -> Result<(), Self::Error>;
    /// Restores everything kept — the last flush, the entries, the clock's
    /// lease — into `store`, at wall time `now_ms`.
    fn load_into(&mut self, store: &Store, now_ms: u64) -> Result<(), Self::Error>;
    /// Starts recording `store`'s changes (and, for `rumor serve`, leasing
    /// its clock); the log is attached to the store before any client or
    /// peer can change it.
    fn start_change_log(self, store: &Store) -> Result<Recording<Self::Running>, Self::Error>;
}

/// The change log a store reports to, and what the driver keeps running
/// to write it.
pub type Recording<R> = (Arc<dyn ChangeLog>, R);

/// A store ready for [`super::node::Node::new`], and what went with it.
#[derive(Debug)]
pub struct Started<R> {
    /// The store, with what the data dir kept and its change log attached.
    pub store: Store,
    /// What the node remembers of its last life.
    pub memory: NodeMemory,
    /// The running data dir, if the node has one.
    pub data_dir: Option<R>,
    /// The data dir was judged stale and, as asked, discarded or kept.
    pub stale: Option<DataDirAge>,
}

/// Why a node could not start.
#[derive(Debug, PartialEq, Eq)]
pub enum StartError<E> {
    /// The data dir is stale and [`StaleData::Refuse`] is in force.
    Stale {
        /// How long ago the node was last in a mesh.
        away_ms: u64,
        /// The `member_gone_after` it was judged by.
        gone_after_ms: u64,
    },
    /// The data dir could not be read.
    DataDir(E),
}

impl<E> From<E> for StartError<E> {
    fn from(error: E) -> Self {
        StartError::DataDir(error)
    }
}

impl NodeConfig {
    /// Builds the store of a node at gossip address `me` at wall time
    /// `now_ms`, from its data dir if it has one (`fresh_id` is its id
    /// otherwise, or for a new dir): the dir's age judged by
    /// [`NodeConfig::data_dir_age`], a stale one refused, discarded or
    /// kept as `stale_data` says, what it kept loaded, its change log
    /// attached. A node that starts afresh from a stale dir remembers
    /// nothing of its last life: nothing it holds now may be discarded again
    /// when it joins.
    pub fn start_store<D: DataDir>(
        &self,
        me: SocketAddr,
        fresh_id: NodeId,
        data_dir: Option<D>,
        stale_data: StaleData,
        now_ms: u64,
    ) -> Result<Started<D::Running>, StartError<D::Error>> {
        let Some(mut dir) = data_dir else {
            return Ok(Started {
                store: self.new_store(fresh_id),
                memory: NodeMemory::default(),
                data_dir: None,
                stale: None,
            });
        };
        let id = dir.node_id(fresh_id)?;
        let mut memory = dir.memory()?;
        let age = self.data_dir_age(me, memory.last_in_mesh_ms, now_ms);
        let stale = match age {
            DataDirAge::Current => None,
            DataDirAge::Stale { away_ms, gone_after_ms } => {
                match stale_data {
                    StaleData::Refuse => return Err(StartError::Stale { away_ms, gone_after_ms }),
                    StaleData::Discard => {
                        tracing::warn!(away_ms, gone_after_ms, "the data dir is stale: discarding its entries");
                        dir.discard_entries()?;
                    }
                    StaleData::Keep => {
                        tracing::warn!(away_ms, gone_after_ms, "the data dir is stale: keeping it, as asked");
                    }
                }
                memory = NodeMemory::default();
                Some(age)
            }
        };
        let store = self.new_store(id);
        dir.load_into(&store, now_ms)?;
        let (log, running) = dir.start_change_log(&store)?;
        Ok(Started { store: store.with_change_log(log), memory, data_dir: Some(running), stale })
    }
}

/// Whether a node last in a mesh at `last_in_mesh_ms` has, at `now_ms`,
/// been away longer than `gone_after_ms`.
pub(crate) fn is_stale(last_in_mesh_ms: u64, now_ms: u64, gone_after_ms: u64) -> bool {
    now_ms.saturating_sub(last_in_mesh_ms) > gone_after_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cluster_tests::MemoryDir;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn a_data_dir_is_stale_only_past_member_gone_after_and_with_seeds() {
        let config =
            NodeConfig { member_gone_after: Duration::from_secs(60), seeds: vec![addr(2)], ..NodeConfig::default() };
        let me = addr(1);
        assert_eq!(config.data_dir_age(me, None, 1_000_000), DataDirAge::Current, "a fresh dir");
        assert_eq!(config.data_dir_age(me, Some(1_000_000), 1_060_000), DataDirAge::Current, "exactly at the bound");
        assert_eq!(
            config.data_dir_age(me, Some(1_000_000), 1_060_001),
            DataDirAge::Stale { away_ms: 60_001, gone_after_ms: 60_000 }
        );
        // A clock stepped back since: not away at all.
        assert_eq!(config.data_dir_age(me, Some(1_000_000), 10), DataDirAge::Current);
        let alone = NodeConfig { seeds: vec![me], ..config };
        assert_eq!(alone.data_dir_age(me, Some(0), 1 << 40), DataDirAge::Current, "a mesh of its own");
    }

    #[test]
    fn a_node_starts_from_its_data_dir_as_its_age_and_the_stale_data_choice_say() {
        let (me, hour) = (addr(1), 3_600_000);
        let config =
            NodeConfig { member_gone_after: Duration::from_secs(3600), seeds: vec![addr(2)], ..Default::default() };
        let kept_id = NodeId::from_bytes([7; 16]);
        let mut dir = MemoryDir::new(kept_id);
        let fresh = NodeId::from_bytes([1; 16]);
        let key = bytes::Bytes::from_static(b"k");
        // A first life writes through the change log it was given.
        let started = config.start_store(me, fresh, Some(&mut dir), StaleData::Refuse, 10 * hour).unwrap();
        assert_eq!(started.store.writer(), kept_id, "the id kept in the dir, not the fresh one");
        let put = super::super::store::Write::Put { value: bytes::Bytes::from_static(b"v"), expires_at_ms: None };
        started.store.update(&key, 10 * hour, |_| (Some(put), ())).unwrap();
        dir.last_in_mesh_ms = Some(10 * hour);

        let current = config.start_store(me, fresh, Some(&mut dir), StaleData::Refuse, 10 * hour + 1).unwrap();
        assert!(current.store.get(&key, 10 * hour + 1).is_some(), "a current dir is loaded");
        assert_eq!((current.memory.last_in_mesh_ms, current.stale), (Some(10 * hour), None));

        let later = 12 * hour;
        let refused = config.start_store(me, fresh, Some(&mut dir), StaleData::Refuse, later).unwrap_err();
        assert_eq!(refused, StartError::Stale { away_ms: 2 * hour, gone_after_ms: hour });

        let kept = config.start_store(me, fresh, Some(&mut dir), StaleData::Keep, later).unwrap();
        assert!(kept.store.get(&key, later).is_some(), "kept as asked");
        assert_eq!(kept.memory, NodeMemory::default(), "a node kept from a stale dir starts afresh");
        assert!(kept.stale.is_some());

        let discarded = config.start_store(me, fresh, Some(&mut dir), StaleData::Discard, later).unwrap();
        assert!(discarded.store.get(&key, later).is_none(), "discarded as asked");
        assert_eq!((discarded.memory, dir.last_in_mesh_ms), (NodeMemory::default(), None));

        let memory_only = config.start_store::<&mut MemoryDir>(me, fresh, None, StaleData::Refuse, later).unwrap();
        assert_eq!((memory_only.store.writer(), memory_only.memory), (fresh, NodeMemory::default()));
    }

    #[test]
    fn the_store_is_built_from_the_settings() {
        let config =
            NodeConfig { tombstone_ttl: Duration::from_secs(5), max_version_ahead_ms: 1234, ..NodeConfig::default() };
        let store = config.new_store(NodeId::from_bytes([1; 16]));
        assert_eq!(store.tombstone_ttl_ms(), 5000);
        assert_eq!(store.max_version_ahead_ms(), 1234);
    }
}
