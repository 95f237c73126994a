//! What every client connection shares with the node: the store, the clock,
//! the dissemination channel, a way to ask the driver about membership, and
//! the client limits and metrics.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::core::store::{Entry, Store};
use crate::server::clock::Clock;
use crate::server::metrics::{CommandMetrics, NodeSnapshot};
use crate::server::storage::ChangeQueue;

/// Local writes on their way to the dissemination side: everything one
/// client batch (one read's worth of pipelined commands) wrote, so the
/// channel costs one send per batch rather than per command.
pub type Replicate = Vec<(Bytes, Entry)>;

/// A question a connection asks the driver task, which owns the core.
#[derive(Debug)]
pub enum Control {
    /// `MEMBERS`: one line per known member, self included,
    /// `<name> <gossip-addr> <alive|suspect|down|left>`.
    Members(oneshot::Sender<Vec<String>>),
    /// INFO's node-side sections (`Membership`, `Gossip`), each a list of
    /// `field:value` pairs in display order.
    Info(oneshot::Sender<Vec<InfoSection>>),
    /// The node-side numbers, read from their owners: for a metrics
    /// scrape and for `rumor dev`'s status line.
    Metrics(oneshot::Sender<NodeSnapshot>),
}

/// One INFO section: its title and its `field:value` lines.
#[derive(Clone, Debug, Default)]
pub struct InfoSection {
    /// Title without the `# ` prefix, e.g. `Membership`.
    pub title: String,
    /// Fields in display order.
    pub fields: Vec<(String, String)>,
}

/// Limits on what one client may send, each answered with an error rather
/// than a crash or unbounded buffering.
#[derive(Clone, Debug)]
pub struct ClientLimits {
    /// Most simultaneous client connections; more are refused with
    /// `-ERR max number of clients reached`.
    pub max_clients: usize,
    /// Longest inline command line (and length line inside a frame), bytes.
    pub max_inline_bytes: usize,
    /// Longest bulk string (`proto-max-bulk-len`), bytes.
    pub max_bulk_bytes: usize,
    /// Most arguments in one command.
    pub max_args: usize,
    /// Longest key, bytes.
    pub max_key_bytes: usize,
    /// `maxmemory`, bytes (0: no limit): above it, commands that add data
    /// are refused with `-OOM`, while reads, deletes and merges from peers
    /// go on. Compared against [`Store::used_bytes`].
    pub maxmemory: u64,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_clients: 10_000,
            max_inline_bytes: 64 * 1024,
            max_bulk_bytes: 64 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_key_bytes: 64 * 1024,
            maxmemory: 0,
        }
    }
}

/// Counters the client side keeps for INFO.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Connections open now.
    pub connected_clients: AtomicU64,
    /// Connections accepted since start.
    pub total_connections_received: AtomicU64,
    /// Connections refused at `max_clients`.
    pub rejected_connections: AtomicU64,
    /// Commands executed since start.
    pub total_commands_processed: AtomicU64,
    /// Connections closed for a protocol error.
    pub protocol_errors: AtomicU64,
}

impl Shared {
    /// Whether the store is over `maxmemory`: one atomic read.
    pub fn over_maxmemory(&self) -> bool {
        let max = self.limits.maxmemory;
        max != 0 && self.store.used_bytes() as u64 > max
    }
}

/// State shared by all connection tasks of one node.
#[derive(Debug)]
pub struct Shared {
    /// This node's name, as `MEMBERS` and INFO show it.
    pub name: String,
    /// The replicated store.
    pub store: Arc<Store>,
    /// The real clock.
    pub clock: Clock,
    /// Local writes to disseminate. Bounded: a full channel makes writers
    /// wait, which is the backpressure that keeps memory bounded.
    pub writes: mpsc::Sender<Replicate>,
    /// Questions for the driver task.
    pub control: mpsc::Sender<Control>,
    /// Client limits.
    pub limits: ClientLimits,
    /// `requirepass`: when set, clients must `AUTH` first.
    pub password: Option<String>,
    /// Client counters.
    pub stats: ClientStats,
    /// Per-command metrics, when the node serves `/metrics`; without it the
    /// client path skips the clock reads that time each batch.
    pub metrics: Option<CommandMetrics>,
    /// The data dir's change queue, with `--data-dir`: a batch that wrote
    /// waits on it before its replies are sent.
    pub storage: Option<Arc<ChangeQueue>>,
}
