//! Durable storage in the data dir (`--data-dir`), through fjall: a log-
//! structured store with a journal, so each batch of changes is one
//! sequential append, as Redis's AOF is.
//!
//! The store in memory stays what clients read; the data dir is its copy on
//! disk, kept in step by the store's change log (see [`writer`]) and read
//! back at start-up. Two keyspaces: `entries` (key → entry, tombstones
//! included, as [`codec`] lays it out) and `meta` (this node's id, and when
//! it was last in a mesh).

pub mod codec;
pub mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions};
use serde::Deserialize;

use crate::core::hlc::Hlc;
use crate::core::horizon::{KeptMember, decode_kept};
use crate::core::store::Store;
use crate::core::version::{NodeId, Timestamp};
use crate::server::clock::Clock;
pub use writer::{CLOCK_LEASE, CLOCK_LEASE_RENEW_MARGIN, ChangeQueue, StorageFailed, StorageStats, Writer};

/// `meta` key of the node id (16 bytes).
const META_NODE_ID: &[u8] = b"node_id";
/// `meta` key of the last time this node was in a mesh (wall ms, 8 bytes
/// big-endian).
pub(crate) const META_LAST_IN_MESH: &[u8] = b"last_in_mesh_ms";
/// Meta key: the clock lease, a timestamp at or above every version this
/// node has issued (see [`writer::ChangeQueue::renew_clock_lease`]).
pub(crate) const META_HLC_LEASE: &[u8] = b"hlc_lease";

/// Meta key: the members that may come back (see
/// [`crate::core::horizon::KeptMember`]), as `encode_kept` wrote them.
pub(crate) const META_KEPT_MEMBERS: &[u8] = b"kept_members";

/// Meta key: the latest FLUSHALL taken (a packed timestamp, 8 bytes
/// big-endian); entries written at or before it are not loaded.
pub(crate) const META_FLUSHED: &[u8] = b"flushed";

/// How often loading a data dir logs its progress.
pub const LOAD_REPORT_EVERY: Duration = Duration::from_secs(1);

/// When the journal is synced to disk (Redis's `appendfsync`). In every
/// mode a client's write is in the OS before its reply is sent, so a killed
/// process loses nothing acknowledged; the modes differ on power loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Synced before each reply (group commit: one sync per batch of
    /// waiting writes). Nothing acknowledged is lost on power loss.
    Always,
    /// Synced once a second: at most about a second of writes is lost on
    /// power loss.
    #[default]
    Everysec,
    /// Never synced by rumor: the OS writes back when it likes.
    No,
}

impl std::fmt::Display for Fsync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
            Fsync::No => "no",
        })
    }
}

/// Why the data dir could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// fjall refused to open or read it (locked by another process,
    /// unreadable, corrupt journal).
    #[error("data dir {dir}: {source}")]
    Fjall {
        /// The data dir.
        dir: PathBuf,
        /// fjall's error.
        source: fjall::Error,
    },
    /// A stored entry could not be read back.
    #[error("data dir {dir}: the entry of key {key:?} is unreadable: {source}")]
    Entry {
        /// The data dir.
        dir: PathBuf,
        /// The key, lossily printed.
        key: String,
        /// Why.
        source: codec::DecodeError,
    },
    /// A `meta` record is not what this version writes.
    #[error("data dir {dir}: meta record {what} is malformed")]
    Meta {
        /// The data dir.
        dir: PathBuf,
        /// Which record.
        what: &'static str,
    },
    /// The storage thread could not be started.
    #[error("cannot start the storage thread: {0}")]
    Thread(std::io::Error),
    /// The data dir is stale and `--stale-data refuse` is in force.
    #[error(
        "data dir {dir} was last in a mesh {away_h:.1} h ago, longer than member_gone_after ({ttl_h:.1} h): \
         the mesh may have treated this node as gone and forgotten deletes of keys it holds. Start with --stale-data discard to drop \
         them and bootstrap from the peers, or --stale-data keep if the whole mesh was down as long"
    )]
    Stale {
        /// The data dir.
        dir: PathBuf,
        /// Hours since it was last in a mesh.
        away_h: f64,
        /// `member_gone_after`, hours.
        ttl_h: f64,
    },
}

/// An open data dir.
pub struct Storage {
    dir: PathBuf,
    db: Database,
    entries: Keyspace,
    meta: Keyspace,
}

/// How far loading a data dir has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadProgress {
    /// Of the expected entries, below 100 until the load is done.
    pub percent: u64,
    /// Entries read so far.
    pub loaded: u64,
    /// Entries fjall estimates the dir holds.
    pub expected: u64,
    /// Entries read per second since the last report.
    pub per_second: u64,
}

/// Table and blob files fjall keeps open by default.
pub const DEFAULT_OPEN_FILES: usize = 256;

/// fjall refuses a smaller file cache.
pub const MIN_OPEN_FILES: usize = 10;

/// Descriptors the data dir uses beyond its file cache: journals, the
/// manifest, the directory handles and lock, files being written by a
/// flush or a compaction.
pub const OTHER_FILES: usize = 32;

/// What loading a data dir found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Entries read (tombstones included).
    pub entries: u64,
    /// How long it took.
    pub took: Duration,
}

impl Storage {
    /// Opens (or creates) the data dir at `dir`. fjall locks it: a second
    /// process on the same dir is refused.
    pub fn open(dir: &Path) -> Result<Storage, StorageError> {
        Storage::open_with_files(dir, DEFAULT_OPEN_FILES)
    }

    /// [`Storage::open`], with fjall keeping at most `open_files` table and
    /// blob files open (at least [`MIN_OPEN_FILES`]; fewer is raised to
    /// it). The node reserves that many descriptors, plus
    /// [`OTHER_FILES`] for journals and the rest, out of its limit.
    pub fn open_with_files(dir: &Path, open_files: usize) -> Result<Storage, StorageError> {
        let fjall = |source| StorageError::Fjall { dir: dir.to_owned(), source };
        let db = Database::builder(dir).max_cached_files(Some(open_files.max(MIN_OPEN_FILES))).open().map_err(fjall)?;
        // Values over fjall's threshold (1 KiB) live in blob files, so that
        // compaction does not rewrite them with the keys.
        let entries = db
            .keyspace("entries", || {
                KeyspaceCreateOptions::default().with_kv_separation(Some(KvSeparationOptions::default()))
            })
            .map_err(fjall)?;
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default).map_err(fjall)?;
        Ok(Storage { dir: dir.to_owned(), db, entries, meta })
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The node id kept in the data dir; a new one (from `fresh`) is kept
    /// there first if it holds none, so a node keeps its id across restarts.
    pub fn node_id(&self, fresh: NodeId) -> Result<NodeId, StorageError> {
        match self.meta.get(META_NODE_ID).map_err(|e| self.fjall(e))? {
            Some(bytes) => {
                let bytes: [u8; 16] = bytes.as_ref().try_into().map_err(|_| self.meta_error("node_id"))?;
                Ok(NodeId::from_bytes(bytes))
            }
            None => {
                self.meta.insert(META_NODE_ID, fresh.to_bytes()).map_err(|e| self.fjall(e))?;
                self.db.persist(fjall::PersistMode::SyncAll).map_err(|e| self.fjall(e))?;
                Ok(fresh)
            }
        }
    }

    /// When this node was last in a mesh (wall ms), if ever.
    pub fn last_in_mesh_ms(&self) -> Result<Option<u64>, StorageError> {
        match self.meta.get(META_LAST_IN_MESH).map_err(|e| self.fjall(e))? {
            Some(bytes) => {
                let bytes: [u8; 8] = bytes.as_ref().try_into().map_err(|_| self.meta_error("last_in_mesh_ms"))?;
                Ok(Some(u64::from_be_bytes(bytes)))
            }
            None => Ok(None),
        }
    }

    /// The members that may come back, as the node last kept them.
    pub fn kept_members(&self) -> Result<Vec<KeptMember>, StorageError> {
        match self.meta.get(META_KEPT_MEMBERS).map_err(|e| self.fjall(e))? {
            Some(bytes) => decode_kept(&bytes).ok_or_else(|| self.meta_error("kept_members")),
            None => Ok(Vec::new()),
        }
    }

    /// Drops every stored entry, when it was last in a mesh and the members
    /// it kept (the node id stays): what is written from now on is fresh.
    pub fn discard_entries(&self) -> Result<(), StorageError> {
        self.entries.clear().map_err(|e| self.fjall(e))?;
        self.meta.remove(META_LAST_IN_MESH).map_err(|e| self.fjall(e))?;
        self.meta.remove(META_KEPT_MEMBERS).map_err(|e| self.fjall(e))?;
        self.db.persist(fjall::PersistMode::SyncAll).map_err(|e| self.fjall(e))
    }

    /// Reads every stored entry into `store`, telling `on_progress` how far
    /// it has come every `report_every` (checked each 4,096 entries).
    pub fn load_into(
        &self,
        store: &Store,
        clock: &Clock,
        report_every: Duration,
        mut on_progress: impl FnMut(LoadProgress),
    ) -> Result<Loaded, StorageError> {
        let started = clock.mono();
        let now_ms = clock.wall_ms();
        let expected = self.entries.approximate_len() as u64;
        let mut loaded = 0u64;
        let mut last_report = (started, 0u64);
        if let Some(bytes) = self.meta.get(META_FLUSHED).map_err(|e| self.fjall(e))? {
            let bytes: [u8; 8] = bytes.as_ref().try_into().map_err(|_| self.meta_error("flushed"))?;
            store.restore_flushed(Timestamp::from_packed(u64::from_be_bytes(bytes)));
        }
        for item in self.entries.iter() {
            let (stored, value) = item.into_inner().map_err(|e| self.fjall(e))?;
            let unreadable = |source| StorageError::Entry {
                dir: self.dir.clone(),
                key: String::from_utf8_lossy(codec::client_key(&stored).unwrap_or(&stored)).into_owned(),
                source,
            };
            let key = codec::client_key(&stored).map_err(unreadable)?;
            let entry = codec::decode(&value).map_err(unreadable)?;
            store.restore(Bytes::copy_from_slice(key), entry, now_ms);
            loaded += 1;
            if loaded.is_multiple_of(4096) && clock.mono() >= last_report.0 + report_every {
                let now = clock.mono();
                let elapsed = (now - last_report.0).as_secs_f64().max(1e-6);
                let per_second = ((loaded - last_report.1) as f64 / elapsed) as u64;
                // The count is fjall's estimate: never claim 100% early.
                let percent = (loaded * 100).checked_div(expected).map_or(99, |p| p.min(99));
                on_progress(LoadProgress { percent, loaded, expected, per_second });
                last_report = (now, loaded);
            }
        }
        // Versions issued before a power loss may be on peers but not on
        // this disk; after a clock step back the clock would issue them
        // again for other content, and digests (key and version only)
        // would never tell. The lease is at or above all of them: the
        // clock issued nothing past the last lease synced.
        if let Some(bytes) = self.meta.get(META_HLC_LEASE).map_err(|e| self.fjall(e))? {
            let bytes: [u8; 8] = bytes.as_ref().try_into().map_err(|_| self.meta_error("hlc_lease"))?;
            store.hlc().raise_to(Timestamp::from_packed(u64::from_be_bytes(bytes)));
        }
        Ok(Loaded { entries: loaded, took: clock.mono() - started })
    }

    /// Starts the storage thread, which from now on writes every change
    /// the store reports to its change log, and puts `hlc` (the store's
    /// clock, loaded) under a ceiling: a first lease, [`CLOCK_LEASE`] past
    /// the clock or the wall clock, is synced here, and the clock issues
    /// nothing past the last lease synced from now on.
    pub fn start_writer(self, fsync: Fsync, clock: Clock, hlc: &Hlc) -> Result<Writer, StorageError> {
        let reading_ms = clock.wall_ms().max(hlc.last().physical_ms());
        let lease = Timestamp::end_of_ms(reading_ms.saturating_add(CLOCK_LEASE.as_millis() as u64));
        self.meta.insert(META_HLC_LEASE, lease.packed().to_be_bytes()).map_err(|e| self.fjall(e))?;
        self.db.persist(fjall::PersistMode::SyncAll).map_err(|e| self.fjall(e))?;
        let ceiling = hlc.limit_to(lease);
        let Storage { dir, db, entries, meta } = self;
        writer::start(writer::Start { dir, db, entries, meta, fsync, clock, lease, ceiling })
            .map_err(StorageError::Thread)
    }

    fn fjall(&self, source: fjall::Error) -> StorageError {
        StorageError::Fjall { dir: self.dir.clone(), source }
    }

    fn meta_error(&self, what: &'static str) -> StorageError {
        StorageError::Meta { dir: self.dir.clone(), what }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::store::Write;

    fn put(value: &'static [u8], expires_at_ms: Option<u64>) -> Option<Write> {
        Some(Write::Put { value: Bytes::from_static(value), expires_at_ms })
    }

    fn entries(store: &Store) -> Vec<(Bytes, crate::core::store::Entry)> {
        let mut all = Vec::new();
        store.for_each_entry(|k, e| all.push((k.clone(), e.clone())));
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Opens `dir`, loads it into a fresh store with the change log on, and
    /// returns both.
    fn open(dir: &Path, fsync: Fsync) -> (Store, Writer, NodeId, Option<u64>) {
        let clock = Clock::start();
        let storage = Storage::open(dir).unwrap();
        let id = storage.node_id(NodeId::from_bytes([9; 16])).unwrap();
        let last_in_mesh = storage.last_in_mesh_ms().unwrap();
        let store = Store::new(id, 500);
        storage.load_into(&store, &clock, LOAD_REPORT_EVERY, |_| {}).unwrap();
        let writer = storage.start_writer(fsync, clock, store.hlc()).unwrap();
        (store.with_change_log(writer.queue.clone()), writer, id, last_in_mesh)
    }

    fn stop(writer: Writer) {
        writer.queue.stop();
        writer.thread.join().unwrap();
        assert!(!writer.queue.has_failed());
    }

    /// A version this node issued and gossiped, whose write never reached
    /// the disk (power loss): after a restart with the wall clock stepped
    /// back, the clock still issues only greater versions.
    #[tokio::test]
    async fn the_clock_never_issues_a_version_again_after_a_restart_and_a_step_back() {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer, _, _) = open(dir.path(), Fsync::Everysec);
        let before_crash = Clock::start().wall_ms();
        let issued = store.hlc().tick(before_crash).unwrap();
        writer.queue.renew_clock_lease(store.clock_reading(), before_crash);
        writer.queue.wait_written().await.unwrap();
        stop(writer);

        let (reloaded, writer, _, _) = open(dir.path(), Fsync::Everysec);
        assert!(reloaded.entry_count() == 0, "the write itself was lost");
        let stepped_back = before_crash - 60_000;
        assert!(reloaded.hlc().tick(stepped_back).unwrap() > issued);
        stop(writer);
    }

    /// The wall clock jumps an hour forward while the node writes, the node
    /// loses power before a lease covering those writes is durable, and it
    /// restarts with the wall clock back where it was: every version it
    /// issues then is still greater than every version it issued before.
    #[tokio::test]
    async fn a_forward_clock_jump_before_a_crash_is_never_issued_again_after_a_step_back() {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer, _, _) = open(dir.path(), Fsync::Always);
        let start = Clock::start().wall_ms();
        let jumped = start + 3_600_000;
        store.update(&Bytes::from_static(b"before"), start, |_| (put(b"v", None), ())).unwrap();
        writer.queue.renew_clock_lease(store.clock_reading(), start);
        writer.queue.wait_written().await.unwrap();
        let mut issued = Vec::new();
        for i in 0..1_000u32 {
            let key = Bytes::from(format!("jumped{i}"));
            if store.update(&key, jumped, |_| (put(b"v", None), ())).is_ok() {
                issued.push(store.version(&key).unwrap().timestamp);
            }
        }
        assert!(!issued.is_empty(), "writes go on while the clock is ahead of its lease");
        // Power lost here: the writes stamped after the jump reached peers,
        // not this disk, and no lease later than the last durable one was.
        stop(writer);

        let (reloaded, writer, _, _) = open(dir.path(), Fsync::Always);
        let before_crash = issued.iter().max().copied().unwrap();
        for i in 0..1_000u32 {
            let key = Bytes::from(format!("after{i}"));
            reloaded.update(&key, start, |_| (put(b"w", None), ())).unwrap();
            let after = reloaded.version(&key).unwrap().timestamp;
            assert!(after > before_crash, "{after} issued again after the restart, at or below {before_crash}");
        }
        stop(writer);
    }

    /// After a forward jump, a renewed lease lets the clock follow the wall
    /// clock again once it is synced — in every mode, `no` included, so a
    /// sync is counted even there.
    #[tokio::test]
    async fn a_renewed_lease_once_synced_lets_the_clock_follow_a_jumped_wall_clock() {
        for fsync in [Fsync::Always, Fsync::Everysec, Fsync::No] {
            let dir = tempfile::tempdir().unwrap();
            let start = Clock::start().wall_ms();
            let (store, writer, _, _) = open(dir.path(), fsync);
            let first_lease = store.hlc().ceiling();
            assert!(first_lease.physical_ms() >= start + CLOCK_LEASE.as_millis() as u64, "{fsync}: {first_lease}");
            assert!(!writer.queue.renew_clock_lease(store.clock_reading(), start), "{fsync}: not due yet");
            let jumped = start + 3_600_000;
            let plateau = store.hlc().tick(jumped).unwrap();
            assert_eq!(plateau.physical_ms(), first_lease.physical_ms(), "{fsync}");
            let syncs = writer.queue.stats().syncs.load(std::sync::atomic::Ordering::Relaxed);
            assert!(writer.queue.renew_clock_lease(store.clock_reading(), jumped), "{fsync}");
            writer.queue.wait_written().await.unwrap();
            assert!(writer.queue.stats().syncs.load(std::sync::atomic::Ordering::Relaxed) > syncs, "{fsync}");
            let lease = store.hlc().ceiling();
            assert_eq!(lease, Timestamp::end_of_ms(jumped + CLOCK_LEASE.as_millis() as u64), "{fsync}");
            assert_eq!(store.hlc().tick(jumped), Ok(Timestamp::from_physical_ms(jumped)), "{fsync}");
            stop(writer);
            let storage = Storage::open(dir.path()).unwrap();
            let kept = storage.meta.get(META_HLC_LEASE).unwrap().unwrap();
            assert_eq!(kept.as_ref(), lease.packed().to_be_bytes(), "{fsync}: the lease in force is the one kept");
        }
    }

    #[tokio::test]
    async fn what_the_store_held_comes_back_after_a_restart() {
        for fsync in [Fsync::Always, Fsync::Everysec, Fsync::No] {
            let dir = tempfile::tempdir().unwrap();
            let (store, writer, id, last_in_mesh) = open(dir.path(), fsync);
            assert_eq!(last_in_mesh, None);
            let now = 1_700_000_000_000;
            for i in 0..1_000u32 {
                let key = Bytes::from(format!("key{i}"));
                store.update(&key, now, |_| (put(b"value", (i % 3 == 0).then_some(now + 60_000)), ())).unwrap();
            }
            // A delete leaves a tombstone, a merge from a peer is kept too, a
            // large value goes to fjall's blob files.
            store.update(&Bytes::from_static(b"key7"), now, |_| (Some(Write::Delete), ())).unwrap();
            let big = Bytes::from(vec![b'x'; 100_000]);
            store
                .update(&Bytes::from_static(b"big"), now, |_| {
                    (Some(Write::Put { value: big.clone(), expires_at_ms: None }), ())
                })
                .unwrap();
            writer.queue.note_in_mesh(now);
            writer.queue.wait_written().await.unwrap();
            let before = entries(&store);
            stop(writer);

            let (reloaded, writer, same_id, last_in_mesh) = open(dir.path(), fsync);
            assert_eq!(same_id, id, "the node keeps its id");
            assert_eq!(last_in_mesh, Some(now));
            assert_eq!(entries(&reloaded), before, "{fsync}");
            assert_eq!(reloaded.get(b"key7", now), None);
            assert_eq!(reloaded.get(b"big", now), Some(big));
            assert_eq!(writer.queue.stats().changes_written.load(std::sync::atomic::Ordering::Relaxed), 0);
            stop(writer);
        }
    }

    #[tokio::test]
    async fn the_members_that_may_come_back_outlive_a_restart_and_a_discard_drops_them() {
        use crate::core::horizon::KeptMember;
        let dir = tempfile::tempdir().unwrap();
        let (_, writer, _, _) = open(dir.path(), Fsync::Everysec);
        let member = |n: u8, away_since_ms| KeptMember {
            id: NodeId::from_bytes([n; 16]),
            addr: std::net::SocketAddr::from(([127, 0, 0, n], 7000)),
            away_since_ms,
        };
        writer.queue.note_kept_members(&[member(1, None)]);
        let kept = vec![member(1, None), member(2, Some(1_700_000_000_000))];
        writer.queue.note_kept_members(&kept);
        writer.queue.wait_written().await.unwrap();
        stop(writer);
        let storage = Storage::open(dir.path()).unwrap();
        assert_eq!(storage.kept_members().unwrap(), kept, "the last list noted");
        storage.discard_entries().unwrap();
        assert_eq!(storage.kept_members().unwrap(), Vec::new());
    }

    #[tokio::test]
    async fn a_clear_and_forgotten_tombstones_reach_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer, _, _) = open(dir.path(), Fsync::Everysec);
        let store = store.with_tombstone_ttl(1_000);
        let now = 1_700_000_000_000;
        store.update(&Bytes::from_static(b"before"), now, |_| (put(b"v", None), ())).unwrap();
        store.clear();
        store.update(&Bytes::from_static(b"after"), now, |_| (put(b"v", None), ())).unwrap();
        store.update(&Bytes::from_static(b"gone"), now, |_| (Some(Write::Delete), ())).unwrap();
        // The tombstone outlives its TTL and the sweep forgets it.
        store.sweep(0..crate::core::store::SHARD_COUNT, now + 5_000);
        writer.queue.wait_written().await.unwrap();
        stop(writer);
        let (reloaded, writer, _, _) = open(dir.path(), Fsync::Everysec);
        let keys: Vec<Bytes> = entries(&reloaded).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [Bytes::from_static(b"after")]);
        stop(writer);
    }

    #[tokio::test]
    async fn a_flush_reaches_the_disk_and_keeps_older_entries_out_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer, _, _) = open(dir.path(), Fsync::Everysec);
        let now = 1_700_000_000_000;
        for i in 0..5_000u32 {
            store.update(&Bytes::from(format!("key{i}")), now, |_| (put(b"v", None), ())).unwrap();
        }
        let upto = store.flush_local(now).unwrap();
        store.update(&Bytes::from_static(b"after"), now, |_| (put(b"v", None), ())).unwrap();
        writer.queue.wait_written().await.unwrap();
        stop(writer);
        let storage = Storage::open(dir.path()).unwrap();
        assert_eq!(storage.entries.iter().count(), 1, "the flushed entries are deleted from the disk");
        drop(storage);
        let (reloaded, writer, _, _) = open(dir.path(), Fsync::Everysec);
        assert_eq!(reloaded.flushed(), upto, "the flush is kept");
        let keys: Vec<Bytes> = entries(&reloaded).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [Bytes::from_static(b"after")]);
        stop(writer);
    }

    #[tokio::test]
    async fn loading_reports_its_progress_as_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer, _, _) = open(dir.path(), Fsync::No);
        for i in 0..20_000u32 {
            store.update(&Bytes::from(format!("k{i}")), 1_000, |_| (put(b"v", None), ())).unwrap();
        }
        writer.queue.wait_written().await.unwrap();
        stop(writer);
        let storage = Storage::open(dir.path()).unwrap();
        let mut reports = Vec::new();
        let fresh = Store::new(NodeId::from_bytes([1; 16]), 500);
        let loaded = storage.load_into(&fresh, &Clock::start(), Duration::ZERO, |p| reports.push(p)).unwrap();
        assert_eq!(loaded.entries, 20_000);
        assert_eq!(reports.len(), 20_000 / 4096, "{reports:?}");
        assert!(reports.windows(2).all(|w| w[0].loaded < w[1].loaded && w[0].percent <= w[1].percent));
        assert!(reports.iter().all(|p| p.percent <= 99 && p.per_second > 0 && p.expected > 0), "{reports:?}");
        assert_eq!(reports[0].loaded, 4096);
    }

    #[test]
    fn a_second_process_cannot_open_a_dir_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Storage::open(dir.path()).unwrap();
        let Err(error) = Storage::open(dir.path()) else { panic!("opened a locked data dir") };
        assert!(error.to_string().starts_with(&format!("data dir {}: ", dir.path().display())), "{error}");
    }

    #[test]
    fn an_unreadable_entry_stops_the_load_naming_its_key() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = Storage::open(dir.path()).unwrap();
            storage.entries.insert(codec::stored_key(b"broken").unwrap(), [7u8, 1, 2]).unwrap();
            storage.db.persist(fjall::PersistMode::SyncAll).unwrap();
        }
        let storage = Storage::open(dir.path()).unwrap();
        let store = Arc::new(Store::new(NodeId::from_bytes([1; 16]), 500));
        let error = storage.load_into(&store, &Clock::start(), LOAD_REPORT_EVERY, |_| {}).unwrap_err().to_string();
        assert!(error.contains("\"broken\"") && error.contains("format 7"), "{error}");
    }
}
