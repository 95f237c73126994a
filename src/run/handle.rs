//! A handle on a node running in this process, for `rumor dev`'s status
//! line: it reads the same numbers a metrics scrape does, without a client
//! connection (which would show up in the very counters it reports).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::resp::shared::Shared;
use crate::server::metrics::{self, NodeSnapshot};

/// A handle on one running node. It does not keep the node alive: once the
/// node has stopped, [`NodeHandle::report`] answers `None`.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    name: String,
    shared: Weak<Shared>,
}

/// How a node is doing at one reading.
#[derive(Clone, Debug, Default)]
pub struct NodeReport {
    /// The driver's numbers (members, keys, gossip counters), exactly as a
    /// metrics scrape reads them.
    pub node: NodeSnapshot,
    /// Commands executed since start (INFO's `total_commands_processed`).
    pub commands_processed: u64,
}

impl NodeHandle {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        NodeHandle { name: shared.name.clone(), shared: Arc::downgrade(shared) }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's numbers now; `None` if it has stopped, or if its driver
    /// task did not answer within `timeout` (it is stopping, or stuck).
    pub async fn report(&self, timeout: Duration) -> Option<NodeReport> {
        let shared = self.shared.upgrade()?;
        let node = metrics::node_snapshot(&shared.control, timeout).await?;
        Some(NodeReport { node, commands_processed: shared.stats.total_commands_processed.load(Ordering::Relaxed) })
    }
}
