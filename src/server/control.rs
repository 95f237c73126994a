//! What client connections send the driver task, which owns the core:
//! their writes to disseminate and their questions about the node.

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::core::store::Entry;
use crate::core::version::Timestamp;
use crate::server::metrics::NodeSnapshot;

/// Local writes on their way to the dissemination side: everything one
/// client batch (one read's worth of pipelined commands) wrote, so the
/// channel costs one send per batch rather than per command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replicate {
    /// Entries written, in order.
    pub writes: Vec<(Bytes, Entry)>,
    /// The latest FLUSHALL among them, if any (every write of the batch
    /// before it is already gone; the ones after it stay).
    pub flushed: Option<Timestamp>,
    /// Bytes of the keys and values in `writes`: what the batch holds
    /// until gossip has sent it, bounded on the way there.
    pub bytes: usize,
}

impl Replicate {
    /// Whether there is nothing to disseminate.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.flushed.is_none()
    }
}

/// A question a connection asks the driver task, which owns the core.
#[derive(Debug)]
pub enum Control {
    /// `MEMBERS`: one line per known member, self included,
    /// `<name> <gossip-addr> <alive|suspect|down|left>`.
    Members(oneshot::Sender<Vec<String>>),
    /// The node-side numbers, read from their owners: for INFO's node
    /// sections, a metrics scrape and `rumor dev`'s status line.
    Snapshot(oneshot::Sender<NodeSnapshot>),
    /// `WAIT`: answer how many live peers hold the connection's writes —
    /// every local write so far if it `wrote`, else none are waited for —
    /// once `numpeers` do or after `timeout` (`None`: no limit).
    Wait {
        /// Live peers wanted.
        numpeers: usize,
        /// Longest wait.
        timeout: Option<std::time::Duration>,
        /// Whether the connection has written at all.
        wrote: bool,
        /// Where the count goes.
        answer: oneshot::Sender<usize>,
    },
}
