//! A host's data dir, simulated: the store's change log replayed into
//! memory that outlives the node. Changes are kept as they are reported,
//! which is what `rumor serve --data-dir` promises for a process crash
//! (every change is handed to the OS before the client hears back), so a
//! crash keeps exactly what the store held and a restart loads it back —
//! through the same change-log hook and `Store::restore` the real node uses.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rumor::core::changes::ReplayedLog;
use rumor::core::horizon::{KeptMember, decode_kept, encode_kept};
use rumor::core::start::{DataDir, NodeMemory, Recording};
use rumor::core::store::{Entry, Store};
use rumor::core::version::NodeId;

/// One host's data dir.
#[derive(Debug)]
pub struct SimDisk {
    /// The node id kept across lives.
    pub node_id: NodeId,
    /// What the store's change log wrote.
    pub log: Arc<ReplayedLog>,
    last_in_mesh_ms: Mutex<Option<u64>>,
    /// The members that may come back, encoded as `rumor serve` keeps them.
    kept_members: Mutex<Vec<u8>>,
}

impl SimDisk {
    /// An empty data dir for a node with id `node_id`.
    pub fn new(node_id: NodeId) -> Self {
        SimDisk { node_id, log: Arc::default(), last_in_mesh_ms: Mutex::new(None), kept_members: Mutex::default() }
    }

    /// What it holds, in key order.
    pub fn entries(&self) -> Vec<(Bytes, Entry)> {
        self.log.entries()
    }

    /// Drops every entry, when it was last in a mesh and the members it
    /// kept (the node id stays), as `--stale-data discard` does.
    pub fn discard_entries(&self) {
        self.log.clear();
        *self.lock_last_in_mesh() = None;
        lock(&self.kept_members).clear();
    }

    /// Keeps the members that may come back.
    pub fn note_kept_members(&self, members: &[KeptMember]) {
        *lock(&self.kept_members) = encode_kept(members);
    }

    /// The members kept, read back as a starting node reads them.
    pub fn kept_members(&self) -> Vec<KeptMember> {
        let bytes = lock(&self.kept_members);
        if bytes.is_empty() {
            return Vec::new();
        }
        decode_kept(&bytes).expect("the simulated disk holds what encode_kept wrote")
    }

    /// Notes that the node was in a mesh at `wall_ms`.
    pub fn note_in_mesh(&self, wall_ms: u64) {
        *self.lock_last_in_mesh() = Some(wall_ms);
    }

    /// When the node was last in a mesh, if ever.
    pub fn last_in_mesh_ms(&self) -> Option<u64> {
        *self.lock_last_in_mesh()
    }

    fn lock_last_in_mesh(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        lock(&self.last_in_mesh_ms)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A host's data dir as a starting node reads it, through the same
/// [`DataDir`] steps `rumor serve` takes over fjall.
#[derive(Debug)]
pub struct Opening(pub Arc<SimDisk>);

impl DataDir for Opening {
    type Error = std::convert::Infallible;
    type Running = ();

    fn node_id(&mut self, _fresh: NodeId) -> Result<NodeId, Self::Error> {
        Ok(self.0.node_id)
    }

    fn memory(&self) -> Result<NodeMemory, Self::Error> {
        Ok(NodeMemory { last_in_mesh_ms: self.0.last_in_mesh_ms(), members: self.0.kept_members() })
    }

    fn discard_entries(&mut self) -> Result<(), Self::Error> {
        self.0.discard_entries();
        Ok(())
    }

    fn load_into(&mut self, store: &Store, now_ms: u64) -> Result<(), Self::Error> {
        store.restore_replayed(&self.0.log, now_ms);
        Ok(())
    }

    fn start_change_log(self, _store: &Store) -> Result<Recording<()>, Self::Error> {
        Ok((self.0.log.clone(), ()))
    }
}
