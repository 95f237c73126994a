//! The storage thread: every change the store reports is queued here and
//! written to the data dir in batches, one batch per turn of the thread —
//! group commit: whatever arrived while the last batch was being written
//! goes out together in the next.
//!
//! The thread owns all writes to fjall, off the async workers (a commit can
//! stall for tens of milliseconds on journal rotation). Clients wait, before
//! their replies are written, until the batch holding their writes is
//! committed: flushed to the OS in every mode, so that a killed process
//! loses nothing acknowledged, and `fdatasync`ed as well with `fsync always`,
//! so that a power cut loses nothing either.
//!
//! The thread also keeps the clock's lease: a batch carrying one is synced
//! in every mode before the clock's [`Ceiling`] is raised to it, so that the
//! clock never issues a timestamp a power cut could take the lease back
//! from (see [`ChangeQueue::renew_clock_lease`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fjall::{Database, Keyspace, PersistMode};
use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::codec;
use super::{Fsync, META_FLUSHED, META_HLC_LEASE, META_KEPT_MEMBERS, META_LAST_IN_MESH};
use crate::core::changes::{Change, ChangeLog};
use crate::core::hlc::Ceiling;
use crate::core::horizon::{KeptMember, encode_kept};
use crate::core::store::Entry;
use crate::core::version::Timestamp;
use crate::server::clock::Clock;

/// How often `fsync everysec` syncs the journal, when anything was written.
const EVERYSEC: Duration = Duration::from_secs(1);

/// How far above the clock's reading (or the wall clock, if that is ahead)
/// a noted lease is.
pub const CLOCK_LEASE: Duration = Duration::from_secs(5);

/// A lease is renewed once the reading is within this much of the last one
/// noted: about every 2 s while the wall clock runs normally, which leaves
/// 3 s for the note to be synced (a journal sync takes milliseconds, tens
/// on a busy disk) before the clock would plateau at the lease.
pub const CLOCK_LEASE_RENEW_MARGIN: Duration = Duration::from_secs(3);

/// One queued change.
#[derive(Debug)]
enum Record {
    Put(Bytes, Entry),
    Remove(Bytes),
    Clear,
    /// FLUSHALL at this timestamp: kept in `meta`, and the entries it
    /// removes are deleted.
    Flush(Timestamp),
    /// The last time (wall ms) this node was seen in a mesh.
    InMesh(u64),
    /// A packed timestamp the clock may issue up to once it is synced.
    ClockLease(u64),
    /// The members that may come back, encoded.
    KeptMembers(Vec<u8>),
}

#[derive(Debug, Default)]
struct Queue {
    records: Vec<Record>,
    /// Changes recorded since start; the last one's sequence number.
    recorded: u64,
    stopping: bool,
    /// The thread has stopped on an error: nothing more is written.
    failed: bool,
}

/// How far the storage thread has come.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    /// Sequence number up to which every change is written (and synced,
    /// with `fsync always`).
    written: u64,
    /// The thread stopped on an error.
    failed: bool,
}

/// Counters for INFO and metrics.
#[derive(Debug, Default)]
pub struct StorageStats {
    /// Changes written to the data dir.
    pub changes_written: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Journal syncs (`fdatasync`).
    pub syncs: AtomicU64,
    /// Entries loaded from the data dir at start-up.
    pub loaded: AtomicU64,
}

/// The store's change log: a queue in front of the storage thread.
#[derive(Debug)]
pub struct ChangeQueue {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// How far the storage thread has come.
    progress: watch::Sender<Progress>,
    stats: StorageStats,
    fsync: Fsync,
    dir: PathBuf,
    /// The greatest clock lease queued (packed); the clock's ceiling
    /// follows it once the storage thread has synced it.
    lease_noted: AtomicU64,
}

impl ChangeLog for ChangeQueue {
    fn record(&self, change: Change<'_>) {
        let record = match change {
            Change::Put { key, entry } => Record::Put(key.clone(), entry.clone()),
            Change::Remove { key } => Record::Remove(Bytes::copy_from_slice(key)),
            Change::Clear => Record::Clear,
            Change::Flush { upto } => Record::Flush(upto),
        };
        self.push(record);
    }
}

impl ChangeQueue {
    fn push(&self, record: Record) {
        let mut queue = self.queue.lock();
        if queue.failed {
            return;
        }
        queue.records.push(record);
        queue.recorded += 1;
        if queue.records.len() == 1 {
            self.wake.notify_one();
        }
    }

    /// Notes that this node is in a mesh at `wall_ms`; written with the
    /// changes, read back at the next start (see `Storage::last_in_mesh_ms`).
    pub fn note_in_mesh(&self, wall_ms: u64) {
        self.push(Record::InMesh(wall_ms));
    }

    /// Notes the members that may come back (see
    /// [`crate::core::node::Node::poll_kept_members`]), read back at the next start.
    pub fn note_kept_members(&self, members: &[KeptMember]) {
        self.push(Record::KeptMembers(encode_kept(members)));
    }

    /// Notes a new lease on the node's clock when the clock is near the
    /// last one noted: the end of the millisecond [`CLOCK_LEASE`] past the
    /// greater of the clock's `reading` and `wall_ms`. Returns whether it
    /// noted one. Cheap when it does not: call it after every input.
    ///
    /// The lease is what the next start raises the clock to, whatever the
    /// wall clock says then, and the clock issues nothing past the last
    /// lease synced (its [`Ceiling`]): so every version issued before a
    /// power cut is below the lease the restart reads. A wall clock that
    /// jumps forward makes the clock plateau at the ceiling (its logical
    /// counter advancing) until the lease noted here is synced.
    pub fn renew_clock_lease(&self, reading: Timestamp, wall_ms: u64) -> bool {
        let reading_ms = wall_ms.max(reading.physical_ms());
        let noted = Timestamp::from_packed(self.lease_noted.load(Ordering::Acquire));
        if reading_ms.saturating_add(CLOCK_LEASE_RENEW_MARGIN.as_millis() as u64) <= noted.physical_ms() {
            return false;
        }
        let lease = Timestamp::end_of_ms(reading_ms.saturating_add(CLOCK_LEASE.as_millis() as u64));
        self.lease_noted.fetch_max(lease.packed(), Ordering::AcqRel);
        self.push(Record::ClockLease(lease.packed()));
        true
    }

    /// Changes queued and not yet taken by the storage thread.
    pub fn backlog(&self) -> usize {
        self.queue.lock().records.len()
    }

    /// Counters.
    pub fn stats(&self) -> &StorageStats {
        &self.stats
    }

    /// The sync policy.
    pub fn fsync(&self) -> Fsync {
        self.fsync
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits until every change recorded so far is written (see the module
    /// docs for what "written" means in each mode). Errors when the storage
    /// thread has stopped on a failure: those changes may never be durable.
    pub async fn wait_written(&self) -> Result<(), StorageFailed> {
        let target = self.queue.lock().recorded;
        self.wait_until(target).await
    }

    /// Waits until at most `limit` changes are queued: backpressure for
    /// gossip, which does not wait on each write as clients do.
    pub async fn wait_backlog_below(&self, limit: usize) -> Result<(), StorageFailed> {
        let target = {
            let queue = self.queue.lock();
            if queue.records.len() <= limit {
                return Ok(());
            }
            queue.recorded - limit as u64
        };
        self.wait_until(target).await
    }

    async fn wait_until(&self, target: u64) -> Result<(), StorageFailed> {
        let mut progress = self.progress.subscribe();
        let done = |p: &Progress| p.failed || p.written >= target;
        let failed = match progress.wait_for(done).await {
            Ok(p) => p.failed,
            Err(_) => true,
        };
        if failed { Err(StorageFailed) } else { Ok(()) }
    }

    /// Completes if the storage thread stops on an error: the node should
    /// stop too, as it can no longer keep its promise to clients.
    pub async fn failure(&self) {
        let _ = self.progress.subscribe().wait_for(|p| p.failed).await;
    }

    /// Whether the storage thread stopped on an error.
    pub fn has_failed(&self) -> bool {
        self.progress.borrow().failed
    }

    /// Asks the storage thread to write what is queued, sync, and stop.
    pub fn stop(&self) {
        self.queue.lock().stopping = true;
        self.wake.notify_one();
    }
}

/// The storage thread stopped on an error; what was queued may be lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the data dir can no longer be written")]
pub struct StorageFailed;

/// A running storage thread.
#[derive(Debug)]
pub struct Writer {
    /// The queue the store reports to and clients wait on.
    pub queue: Arc<ChangeQueue>,
    /// The thread; joins once [`ChangeQueue::stop`] was called and the
    /// queue is written and synced, or once it failed.
    pub thread: std::thread::JoinHandle<()>,
}

/// Where the storage thread starts: the dir, and the clock lease already
/// synced there with the ceiling that follows the leases it syncs.
pub(super) struct Start {
    pub(super) dir: PathBuf,
    pub(super) db: Database,
    pub(super) entries: Keyspace,
    pub(super) meta: Keyspace,
    pub(super) fsync: Fsync,
    pub(super) clock: Clock,
    pub(super) lease: Timestamp,
    pub(super) ceiling: Ceiling,
}

/// Starts the storage thread for `db`.
pub(super) fn start(start: Start) -> std::io::Result<Writer> {
    let Start { dir, db, entries, meta, fsync, clock, lease, ceiling } = start;
    debug_assert!(ceiling.at() >= lease, "the first lease is synced before the thread starts");
    let queue = Arc::new(ChangeQueue {
        queue: Mutex::new(Queue::default()),
        wake: Condvar::new(),
        progress: watch::Sender::new(Progress::default()),
        stats: StorageStats::default(),
        fsync,
        dir,
        lease_noted: AtomicU64::new(lease.packed()),
    });
    let thread_queue = queue.clone();
    let thread = std::thread::Builder::new().name("rumor-storage".into()).spawn(move || {
        let mut thread = WriterThread { db, entries, meta, queue: thread_queue, clock, ceiling, lease_written: lease };
        // Marks the queue failed however the thread ends early — an error
        // or a panic — so that waiting clients and the node stop rather
        // than wait forever.
        let mut guard = FailOnExit { queue: thread.queue.clone(), armed: true };
        match thread.run() {
            Ok(()) => guard.armed = false,
            Err(error) => tracing::error!(%error, "writing the data dir failed; this node stops"),
        }
    })?;
    Ok(Writer { queue, thread })
}

/// Marks the queue failed when dropped armed (see [`start`]).
struct FailOnExit {
    queue: Arc<ChangeQueue>,
    armed: bool,
}

impl Drop for FailOnExit {
    fn drop(&mut self) {
        if self.armed {
            self.queue.queue.lock().failed = true;
            self.queue.progress.send_modify(|p| p.failed = true);
        }
    }
}

/// A peer may gossip a key longer than the data dir can hold (its own key
/// limit may be larger): it is kept in memory and not written, and comes
/// back from the peers after a restart.
fn too_long(key: &[u8]) {
    tracing::warn!(key_bytes = key.len(), "key too long for the data dir; kept in memory only");
}

struct WriterThread {
    db: Database,
    entries: Keyspace,
    meta: Keyspace,
    queue: Arc<ChangeQueue>,
    clock: Clock,
    /// The clock's ceiling, raised to each lease once it is synced.
    ceiling: Ceiling,
    /// The greatest lease written: the one kept never goes down, whatever
    /// order two racing notes arrive in.
    lease_written: Timestamp,
}

impl WriterThread {
    fn run(&mut self) -> Result<(), fjall::Error> {
        let fsync = self.queue.fsync;
        let mut last_sync = self.clock.mono();
        let mut unsynced = false;
        loop {
            let (records, upto, stopping) = {
                let mut queue = self.queue.queue.lock();
                while queue.records.is_empty() && !queue.stopping {
                    if fsync == Fsync::Everysec && unsynced {
                        let due = (last_sync + EVERYSEC).saturating_sub(self.clock.mono());
                        if due.is_zero() || self.queue.wake.wait_for(&mut queue, due).timed_out() {
                            break;
                        }
                    } else {
                        self.queue.wake.wait(&mut queue);
                    }
                }
                (std::mem::take(&mut queue.records), queue.recorded, queue.stopping)
            };
            if !records.is_empty() {
                let lease = self.write(records)?;
                unsynced = fsync != Fsync::Always;
                if let Some(lease) = lease {
                    // Synced in every mode before the clock may use it: a
                    // lease lost to a power cut would let the restarted
                    // node issue again what it issued under it. With
                    // `always` the batch is synced already.
                    if unsynced {
                        self.db.persist(PersistMode::SyncData)?;
                        self.queue.stats.syncs.fetch_add(1, Ordering::Relaxed);
                        last_sync = self.clock.mono();
                        unsynced = false;
                    }
                    self.ceiling.raise_to(lease);
                }
                // After the ceiling: a wait for these changes ends with the
                // lease among them in force.
                self.queue.progress.send_modify(|p| p.written = upto);
            }
            let sync_due = self.clock.mono() >= last_sync + EVERYSEC;
            if fsync == Fsync::Everysec && unsynced && (sync_due || stopping) {
                self.db.persist(PersistMode::SyncData)?;
                self.queue.stats.syncs.fetch_add(1, Ordering::Relaxed);
                last_sync = self.clock.mono();
                unsynced = false;
            }
            if stopping && self.queue.queue.lock().records.is_empty() {
                // Whatever the mode: a clean stop leaves everything on disk.
                self.db.persist(PersistMode::SyncAll)?;
                return Ok(());
            }
        }
    }

    /// Deletes the stored entries a flush at `upto` removes, in batches.
    /// Later changes are queued behind this walk: none is lost, nor
    /// deleted by it, since every one of them comes after the flush.
    fn delete_flushed(&mut self, upto: Timestamp) -> Result<(), fjall::Error> {
        const BATCH: usize = 4096;
        let mut doomed = Vec::new();
        for item in self.entries.iter() {
            let (stored, value) = item.into_inner()?;
            // An unreadable entry is left for the next load to report.
            if codec::decode(&value).is_ok_and(|entry| entry.flushed_by(upto)) {
                doomed.push(stored);
            }
            if doomed.len() == BATCH {
                self.remove_stored(std::mem::take(&mut doomed))?;
            }
        }
        self.remove_stored(doomed)
    }

    fn remove_stored(&mut self, stored: Vec<fjall::Slice>) -> Result<(), fjall::Error> {
        let mut batch = self.db.batch().durability(Some(PersistMode::Buffer));
        for key in stored {
            batch.remove(&self.entries, key);
        }
        batch.commit()
    }

    /// Writes `records` in order, as one batch between clears. Returns the
    /// greatest clock lease among them, if any.
    fn write(&mut self, records: Vec<Record>) -> Result<Option<Timestamp>, fjall::Error> {
        let fsync = self.queue.fsync;
        let count = records.len() as u64;
        let durability = Some(if fsync == Fsync::Always { PersistMode::SyncData } else { PersistMode::Buffer });
        let mut batch = self.db.batch().durability(durability);
        let mut lease = None;
        for record in records {
            match record {
                Record::Put(key, entry) => match codec::stored_key(&key) {
                    Some(stored) => batch.insert(&self.entries, stored, codec::encode(&entry)),
                    None => too_long(&key),
                },
                Record::Remove(key) => match codec::stored_key(&key) {
                    Some(stored) => batch.remove(&self.entries, stored),
                    None => too_long(&key),
                },
                Record::InMesh(wall_ms) => batch.insert(&self.meta, META_LAST_IN_MESH, wall_ms.to_be_bytes()),
                Record::ClockLease(packed) => {
                    self.lease_written = self.lease_written.max(Timestamp::from_packed(packed));
                    lease = Some(self.lease_written);
                    batch.insert(&self.meta, META_HLC_LEASE, self.lease_written.packed().to_be_bytes());
                }
                Record::KeptMembers(bytes) => batch.insert(&self.meta, META_KEPT_MEMBERS, bytes),
                Record::Clear => {
                    // A clear is not a batch item: write what came before
                    // it, clear, and go on with a fresh batch.
                    std::mem::replace(&mut batch, self.db.batch().durability(durability)).commit()?;
                    self.entries.clear()?;
                }
                Record::Flush(upto) => {
                    // The flush is kept first: a crash part-way through
                    // the deletes leaves entries that a restart refuses.
                    batch.insert(&self.meta, META_FLUSHED, upto.packed().to_be_bytes());
                    std::mem::replace(&mut batch, self.db.batch().durability(durability)).commit()?;
                    self.delete_flushed(upto)?;
                }
            }
        }
        batch.commit()?;
        let stats = &self.queue.stats;
        stats.changes_written.fetch_add(count, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        if fsync == Fsync::Always {
            stats.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(lease)
    }
}
