//! The clients' context: what every client connection of a node shares —
//! the store, the clock, the dissemination channel, a way to ask the
//! driver (see [`crate::server::control`]), the users, and the client
//! limits and counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use super::acl::Users;
use super::acl::throttle::AuthThrottle;
use super::limits::LiveLimits;
use crate::core::store::Store;
use crate::server::clock::Clock;
use crate::server::control::Control;
use crate::server::handover;
use crate::server::metrics::{ClientSnapshot, CommandMetrics, StorageSnapshot};
use crate::server::storage::ChangeQueue;

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
    /// Redis's `timeout`: a client with nothing read from it and nothing
    /// written to it for this long is closed; `None`: never.
    pub timeout: Option<Duration>,
    /// Redis's `client-output-buffer-limit normal` hard limit: a client
    /// whose unsent replies pass this many bytes is disconnected; 0: no
    /// limit.
    pub output_buffer_limit_bytes: usize,
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
            timeout: None,
            output_buffer_limit_bytes: DEFAULT_OUTPUT_BUFFER_LIMIT_BYTES,
            maxmemory: 0,
        }
    }
}

/// The default output-buffer limit: a few of the largest values a client
/// may write (`max_bulk_bytes`' default is 64 MiB).
pub const DEFAULT_OUTPUT_BUFFER_LIMIT_BYTES: usize = 256 * 1024 * 1024;

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
    /// Connections closed over `client_output_buffer_limit`.
    pub output_limit_disconnections: AtomicU64,
    /// TLS connections that failed or timed out in the handshake.
    pub tls_handshake_failures: AtomicU64,
    /// AUTHs refused (`acl_access_denied_auth`).
    pub acl_denied_auth: AtomicU64,
    /// Commands refused by a user's command rules (`acl_access_denied_cmd`).
    pub acl_denied_cmd: AtomicU64,
    /// Commands refused by a user's key patterns (`acl_access_denied_key`).
    pub acl_denied_key: AtomicU64,
    /// Connections refused by protected mode.
    pub protected_mode_refusals: AtomicU64,
}

impl ClientStats {
    /// `CONFIG RESETSTAT`: every counter back to zero except the
    /// connections open now, which is a gauge.
    pub fn reset(&self) {
        let ClientStats {
            connected_clients: _,
            total_connections_received,
            rejected_connections,
            total_commands_processed,
            protocol_errors,
            output_limit_disconnections,
            tls_handshake_failures,
            acl_denied_auth,
            acl_denied_cmd,
            acl_denied_key,
            protected_mode_refusals,
        } = self;
        for counter in [
            total_connections_received,
            rejected_connections,
            total_commands_processed,
            protocol_errors,
            output_limit_disconnections,
            tls_handshake_failures,
            acl_denied_auth,
            acl_denied_cmd,
            acl_denied_key,
            protected_mode_refusals,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

impl Shared {
    /// Whether the store is over `maxmemory`: one atomic read.
    pub fn over_maxmemory(&self) -> bool {
        let max = self.limits.maxmemory();
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
    /// Local writes to disseminate. Bounded: a full queue makes writers
    /// wait, which is the backpressure that keeps memory bounded.
    pub writes: handover::Sender,
    /// Questions for the driver task.
    pub control: mpsc::Sender<Control>,
    /// Client limits, some of which CONFIG SET changes.
    pub limits: LiveLimits,
    /// The settings fixed while the node runs, by name, for CONFIG GET
    /// (see [`crate::config::fixed_parameters`]).
    pub fixed_settings: Vec<(&'static str, String)>,
    /// The users clients authenticate as (from `requirepass` or the ACL file).
    pub users: Users,
    /// Slows AUTH down after failures from one address.
    pub(crate) auth_throttle: AuthThrottle,
    /// Refuse clients from beyond loopback while the default user needs no
    /// password (Redis's protected mode).
    pub protected_mode: bool,
    /// Client counters.
    pub stats: ClientStats,
    /// Per-command metrics, when the node serves `/metrics`; without it the
    /// client path skips the clock reads that time each batch.
    pub metrics: Option<CommandMetrics>,
    /// The data dir's change queue, with `--data-dir`: a batch that wrote
    /// waits on it before its replies are sent.
    pub storage: Option<Arc<ChangeQueue>>,
    /// Held shared by every command while it runs and exclusively by
    /// EXEC, so a transaction runs with no other command of this node
    /// between its own.
    pub transaction_gate: crate::resp::gate::TransactionGate,
    /// The client connections, for CLIENT LIST and CLIENT KILL.
    pub clients: crate::resp::clients::Clients,
    /// Notified by `SHUTDOWN`: the node stops as on SIGTERM.
    pub shutdown_requested: Arc<tokio::sync::Notify>,
}

impl Shared {
    /// Reads the client-side counters (and the data dir's, which the
    /// client side shares).
    pub fn client_snapshot(&self) -> ClientSnapshot {
        let stats = &self.stats;
        ClientSnapshot {
            connected: stats.connected_clients.load(Ordering::Relaxed),
            received: stats.total_connections_received.load(Ordering::Relaxed),
            rejected: stats.rejected_connections.load(Ordering::Relaxed),
            protocol_errors: stats.protocol_errors.load(Ordering::Relaxed),
            output_limit_disconnections: stats.output_limit_disconnections.load(Ordering::Relaxed),
            tls_handshake_failures: stats.tls_handshake_failures.load(Ordering::Relaxed),
            acl_denied_auth: stats.acl_denied_auth.load(Ordering::Relaxed),
            acl_denied_cmd: stats.acl_denied_cmd.load(Ordering::Relaxed),
            acl_denied_key: stats.acl_denied_key.load(Ordering::Relaxed),
            protected_mode_refusals: stats.protected_mode_refusals.load(Ordering::Relaxed),
            used_memory: self.store.used_bytes() as u64,
            maxmemory: self.limits.maxmemory(),
            storage: self.storage.as_deref().map(|queue| {
                let s = queue.stats();
                StorageSnapshot {
                    loaded: s.loaded.load(Ordering::Relaxed),
                    written: s.changes_written.load(Ordering::Relaxed),
                    pending: queue.backlog() as u64,
                    batches: s.batches.load(Ordering::Relaxed),
                    syncs: s.syncs.load(Ordering::Relaxed),
                }
            }),
        }
    }
}
