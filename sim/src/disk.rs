//! A host's data dir, simulated: the store's change log written to memory
//! that outlives the node. Changes are kept as they are reported, which is
//! what `rumor serve --data-dir` promises for a process crash (every change
//! is handed to the OS before the client hears back), so a crash keeps
//! exactly what the store held and a restart loads it back — through the
//! same change log hook and `Store::restore` that the real node uses.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use rumor::core::changes::{Change, ChangeLog};
use rumor::core::store::Entry;
use rumor::core::version::NodeId;

/// One host's data dir.
#[derive(Debug)]
pub struct SimDisk {
    /// The node id kept across lives.
    pub node_id: NodeId,
    entries: Mutex<BTreeMap<Bytes, Entry>>,
    last_in_mesh_ms: Mutex<Option<u64>>,
}

impl SimDisk {
    /// An empty data dir for a node with id `node_id`.
    pub fn new(node_id: NodeId) -> Self {
        SimDisk { node_id, entries: Mutex::new(BTreeMap::new()), last_in_mesh_ms: Mutex::new(None) }
    }

    /// What it holds, in key order.
    pub fn entries(&self) -> Vec<(Bytes, Entry)> {
        self.lock_entries().iter().map(|(k, e)| (k.clone(), e.clone())).collect()
    }

    /// Drops every entry and when it was last in a mesh (the node id
    /// stays), as `--stale-data discard` does.
    pub fn discard_entries(&self) {
        self.lock_entries().clear();
        *self.last_in_mesh_ms.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Notes that the node was in a mesh at `wall_ms`.
    pub fn note_in_mesh(&self, wall_ms: u64) {
        *self.last_in_mesh_ms.lock().unwrap_or_else(|e| e.into_inner()) = Some(wall_ms);
    }

    /// When the node was last in a mesh, if ever.
    pub fn last_in_mesh_ms(&self) -> Option<u64> {
        *self.last_in_mesh_ms.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<Bytes, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ChangeLog for SimDisk {
    fn record(&self, change: Change<'_>) {
        let mut entries = self.lock_entries();
        match change {
            Change::Put { key, entry } => {
                entries.insert(key.clone(), entry.clone());
            }
            Change::Remove { key } => {
                entries.remove(key);
            }
            Change::Clear => entries.clear(),
        }
    }
}
