//! The clients: SET, SET with expiry (PX), MSET, DEL, RENAME, FLUSHALL,
//! GET and EXISTS at chosen hosts, with zipf-skewed key popularity, each sent as the RESP command a
//! client would send and run by the server's own command executor
//! (`rumor::resp::exec`); and the history they leave, which the checkers
//! judge: every write (and flush) the executor reported acknowledged, with
//! its version, where and when, what each operation saw in its host's store beforehand,
//! and what the replies were.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use rumor::core::store::Entry;
use rumor::core::version::{Timestamp, Version};
use rumor::resp::exec::frame;

use crate::seed::{self, SimRng, between, chance, uniform};

/// The workload's shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorkloadConfig {
    /// Operations per simulated second over the whole mesh.
    pub rate_per_s: f64,
    /// Distinct keys.
    pub keys: usize,
    /// Zipf exponent of key popularity (0: uniform).
    pub zipf: f64,
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `SET key value [PX ms]`.
    Set {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// Time to live, ms.
        px_ms: Option<u64>,
    },
    /// `MSET key value key value`: a command the simulator has no code
    /// of its own for — only the executor knows what it writes.
    Mset {
        /// The keys and their values, in order.
        pairs: [(Bytes, Bytes); 2],
    },
    /// `DEL key`.
    Del {
        /// The key.
        key: Bytes,
    },
    /// `RENAME from to`: two keys changed as one batch, by the executor.
    Rename {
        /// The key renamed.
        from: Bytes,
        /// Its new name.
        to: Bytes,
    },
    /// `FLUSHALL`: every key on every node, as one versioned flush.
    Flushall,
    /// `GET key`.
    Get {
        /// The key.
        key: Bytes,
    },
    /// `EXISTS key key`: a read the simulator has no code of its own for.
    Exists {
        /// The keys.
        keys: [Bytes; 2],
    },
}

impl Op {
    /// The keys the operation touches, in order.
    pub fn keys(&self) -> Vec<&Bytes> {
        match self {
            Op::Set { key, .. } | Op::Del { key } | Op::Get { key } => vec![key],
            Op::Mset { pairs } => pairs.iter().map(|(key, _)| key).collect(),
            Op::Exists { keys } => keys.iter().collect(),
            Op::Rename { from, to } => vec![from, to],
            Op::Flushall => Vec::new(),
        }
    }

    /// The command's name, as the report counts replies.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Set { px_ms: None, .. } => "SET",
            Op::Set { px_ms: Some(_), .. } => "SET PX",
            Op::Mset { .. } => "MSET",
            Op::Del { .. } => "DEL",
            Op::Rename { .. } => "RENAME",
            Op::Flushall => "FLUSHALL",
            Op::Get { .. } => "GET",
            Op::Exists { .. } => "EXISTS",
        }
    }

    /// The command as a client sends it: one RESP array.
    pub fn frame(&self) -> Vec<u8> {
        match self {
            Op::Set { key, value, px_ms: None } => frame(&[b"SET", key, value]),
            Op::Set { key, value, px_ms: Some(px) } => frame(&[b"SET", key, value, b"PX", px.to_string().as_bytes()]),
            Op::Mset { pairs: [(k1, v1), (k2, v2)] } => frame(&[b"MSET", k1, v1, k2, v2]),
            Op::Del { key } => frame(&[b"DEL", key]),
            Op::Rename { from, to } => frame(&[b"RENAME", from, to]),
            Op::Flushall => frame(&[b"FLUSHALL"]),
            Op::Get { key } => frame(&[b"GET", key]),
            Op::Exists { keys: [k1, k2] } => frame(&[b"EXISTS", k1, k2]),
        }
    }
}

/// Draws operations.
#[derive(Debug)]
pub struct Workload {
    config: WorkloadConfig,
    rng: SimRng,
    keys: Vec<Bytes>,
    /// Cumulative popularity of keys, for inverse-CDF sampling.
    cdf: Vec<f64>,
    next_value: u64,
}

/// Share of operations that are plain SETs (the rest below are cumulative).
const SET_SHARE: f64 = 0.40;
/// Cumulative share up to SET with PX.
const SET_PX_SHARE: f64 = 0.50;
/// Cumulative share up to MSET.
const MSET_SHARE: f64 = 0.55;
/// Cumulative share up to DEL.
const DEL_SHARE: f64 = 0.67;
/// Cumulative share up to RENAME.
const RENAME_SHARE: f64 = 0.6995;
/// Cumulative share up to FLUSHALL: one every 20 s or so at the default
/// rate, each emptying the mesh (more would leave few tombstones old enough
/// to be forgotten).
const FLUSHALL_SHARE: f64 = 0.70;
/// Cumulative share up to EXISTS (the rest are GETs).
const EXISTS_SHARE: f64 = 0.78;
/// Share of values too big for a datagram (they travel by stream).
const BIG_VALUE_SHARE: f64 = 0.01;

impl Workload {
    /// The workload of run `seed`.
    pub fn new(seed: u64, config: WorkloadConfig) -> Self {
        let keys: Vec<Bytes> = (0..config.keys).map(|i| Bytes::from(format!("key:{i:05}"))).collect();
        let weights: Vec<f64> = (1..=config.keys).map(|rank| 1.0 / (rank as f64).powf(config.zipf)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let cdf = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        Workload { config, rng: seed::rng(seed, "workload", 0), keys, cdf, next_value: 0 }
    }

    /// Time until the next operation (Poisson arrivals); `None` when the
    /// rate is zero.
    pub fn next_gap(&mut self) -> Option<Duration> {
        if self.config.rate_per_s <= 0.0 {
            return None;
        }
        let u = uniform(&mut self.rng, 0.0, 1.0);
        let secs = -(1.0 - u).ln() / self.config.rate_per_s;
        Some(Duration::from_secs_f64(secs.min(3600.0)).max(Duration::from_nanos(1)))
    }

    /// The next operation and the host (of `hosts`) its client talks to.
    pub fn next_op(&mut self, hosts: usize) -> (usize, Op) {
        let host = between(&mut self.rng, 0, hosts.saturating_sub(1) as u64) as usize;
        let key = self.pick_key();
        let kind = uniform(&mut self.rng, 0.0, 1.0);
        let op = if kind < SET_PX_SHARE {
            let value = self.value(host);
            let px_ms = (kind >= SET_SHARE).then(|| between(&mut self.rng, 100, 20_000));
            Op::Set { key, value, px_ms }
        } else if kind < MSET_SHARE {
            let first = (key, self.value(host));
            let second = (self.pick_key(), self.value(host));
            Op::Mset { pairs: [first, second] }
        } else if kind < DEL_SHARE {
            Op::Del { key }
        } else if kind < RENAME_SHARE {
            Op::Rename { from: key, to: self.pick_key() }
        } else if kind < FLUSHALL_SHARE {
            Op::Flushall
        } else if kind < EXISTS_SHARE {
            Op::Exists { keys: [key, self.pick_key()] }
        } else {
            Op::Get { key }
        };
        (host, op)
    }

    fn pick_key(&mut self) -> Bytes {
        let u = uniform(&mut self.rng, 0.0, 1.0);
        let i = self.cdf.partition_point(|c| *c < u).min(self.keys.len() - 1);
        self.keys[i].clone()
    }

    /// A value naming its writer and sequence, padded to a random length;
    /// a few are too big for a datagram.
    fn value(&mut self, host: usize) -> Bytes {
        self.next_value += 1;
        let mut v = format!("n{host}#{}:", self.next_value).into_bytes();
        let len = if chance(&mut self.rng, BIG_VALUE_SHARE) {
            between(&mut self.rng, 2_000, 6_000)
        } else {
            between(&mut self.rng, 8, 64)
        } as usize;
        v.resize(len.max(v.len()), b'.');
        Bytes::from(v)
    }
}

/// A reply's kind, for counting: its first line, with a bulk's length
/// left out (`$-1`, the nil, stays).
pub fn reply_kind(reply: &[u8]) -> String {
    let line = reply.split(|b| *b == b'\r').next().unwrap_or_default();
    match line {
        [b'$', rest @ ..] if rest != b"-1" => "$<bulk>".to_owned(),
        line => String::from_utf8_lossy(line).into_owned(),
    }
}

/// The part of an entry the checkers compare: its version and whether it
/// is a tombstone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// The version held.
    pub version: Version,
    /// Whether it is a delete.
    pub tombstone: bool,
}

impl Held {
    /// The summary of `entry`.
    pub fn of(entry: &Entry) -> Self {
        Held { version: entry.version, tombstone: entry.value.is_none() }
    }
}

/// Why a write may be missing at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Excuse {
    /// When the last host holding it (or something newer) went down.
    pub at: Duration,
    /// That host.
    pub host: usize,
}

/// An acknowledged write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckedWrite {
    /// Order of acknowledgement.
    pub id: usize,
    /// Position among all history records (writes and observations).
    pub seq: u64,
    /// The key.
    pub key: Bytes,
    /// The host that acknowledged it.
    pub host: usize,
    /// Which life of that host (restarts count up).
    pub life: u32,
    /// When.
    pub at: Duration,
    /// What was written, version included.
    pub entry: Entry,
    /// Set when the write (and everything newer for its key) was held only
    /// by hosts that then lost their state: the one allowed loss.
    pub excused: Option<Excuse>,
}

/// An acknowledged FLUSHALL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckedFlush {
    /// Position among all history records.
    pub seq: u64,
    /// The host that acknowledged it.
    pub host: usize,
    /// When.
    pub at: Duration,
    /// Its timestamp: every write at or before it is gone.
    pub upto: Timestamp,
    /// Set when the flush was held only by a host that then lost its
    /// state: it may or may not have reached anyone.
    pub excused: Option<Excuse>,
}

/// What an operation saw in its host's store just before running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Position among all history records (writes and observations).
    pub seq: u64,
    /// When.
    pub at: Duration,
    /// Where.
    pub host: usize,
    /// Which life of that host.
    pub life: u32,
    /// The key.
    pub key: Bytes,
    /// The raw entry's summary (`None`: no entry at all).
    pub held: Option<Held>,
}

/// One record of what happened at a host, for the per-node checks.
#[derive(Clone, Copy, Debug)]
pub enum HostRecord<'a> {
    /// The host acknowledged this write.
    Wrote(&'a AckedWrite),
    /// An operation at the host saw this.
    Saw(&'a Observation),
}

/// Everything the clients did and saw.
#[derive(Debug, Default)]
pub struct History {
    /// Acknowledged writes, in order.
    pub writes: Vec<AckedWrite>,
    /// What each operation saw first.
    pub observations: Vec<Observation>,
    /// Write ids by key.
    pub by_key: BTreeMap<Bytes, Vec<usize>>,
    /// Reads (GET, EXISTS) answered.
    pub reads: u64,
    /// Operations refused because their host was down.
    pub refused: u64,
    /// DELs of missing keys (nothing written).
    pub empty_deletes: u64,
    /// Replies, by command and kind (see [`reply_kind`]).
    pub replies: BTreeMap<String, u64>,
    /// Acknowledged writes, by the command that made them.
    pub writes_by_command: BTreeMap<&'static str, usize>,
    /// Acknowledged flushes, in order.
    pub flushes: Vec<AckedFlush>,
    last_seq: u64,
}

impl History {
    /// Records an acknowledged write; returns its id.
    pub fn record_write(&mut self, key: Bytes, host: usize, life: u32, at: Duration, entry: Entry) -> usize {
        let id = self.writes.len();
        let seq = self.next_seq();
        self.by_key.entry(key.clone()).or_default().push(id);
        self.writes.push(AckedWrite { id, seq, key, host, life, at, entry, excused: None });
        id
    }

    /// Records an acknowledged FLUSHALL.
    pub fn record_flush(&mut self, host: usize, at: Duration, upto: Timestamp) {
        let seq = self.next_seq();
        self.flushes.push(AckedFlush { seq, host, at, upto, excused: None });
    }

    /// The latest flush that must take effect everywhere (`ZERO`: none):
    /// every write at or before it is gone.
    pub fn flushed_upto(&self) -> Timestamp {
        self.flushes.iter().filter(|f| f.excused.is_none()).map(|f| f.upto).max().unwrap_or(Timestamp::ZERO)
    }

    /// The latest flush that may have taken effect, excused ones included.
    pub fn maybe_flushed_upto(&self) -> Timestamp {
        self.flushes.iter().map(|f| f.upto).max().unwrap_or(Timestamp::ZERO)
    }

    /// Whether a flush acknowledged before history record `seq` removes
    /// the write of `version`.
    pub fn flushed_before(&self, seq: u64, version: Version) -> bool {
        self.flushes.iter().any(|f| f.seq < seq && version.timestamp <= f.upto)
    }

    /// Host `host` lost its state at `at`: each flush no other live host
    /// has taken (`held_elsewhere` answers the latest flush any other live
    /// host holds) may be lost with it.
    pub fn excuse_lost_flushes(&mut self, at: Duration, host: usize, held_elsewhere: Timestamp) {
        for f in &mut self.flushes {
            if f.excused.is_none() && f.upto > held_elsewhere {
                f.excused = Some(Excuse { at, host });
            }
        }
    }

    /// The greatest version any acknowledged write gave `key`.
    pub fn newest_version(&self, key: &[u8]) -> Option<Version> {
        self.by_key.get(key)?.iter().filter_map(|&id| self.writes.get(id)).map(|w| w.entry.version).max()
    }

    /// Records what an operation at `host` (in its life `life`) saw for
    /// `key` just before it ran.
    pub fn observe(&mut self, at: Duration, host: usize, life: u32, key: Bytes, held: Option<Held>) {
        let seq = self.next_seq();
        self.observations.push(Observation { seq, at, host, life, key, held });
    }

    /// Counts `reply` to command `name`.
    pub fn record_reply(&mut self, name: &str, reply: &[u8]) {
        *self.replies.entry(format!("{name} {}", reply_kind(reply))).or_default() += 1;
    }

    fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    /// Every write and observation at each host life, in the order they
    /// happened, for the per-node checks.
    pub fn per_host_log(&self) -> BTreeMap<(usize, u32), Vec<HostRecord<'_>>> {
        let mut log: BTreeMap<(usize, u32), Vec<(u64, HostRecord<'_>)>> = BTreeMap::new();
        for w in &self.writes {
            log.entry((w.host, w.life)).or_default().push((w.seq, HostRecord::Wrote(w)));
        }
        for o in &self.observations {
            log.entry((o.host, o.life)).or_default().push((o.seq, HostRecord::Saw(o)));
        }
        log.into_iter()
            .map(|(k, mut v)| {
                v.sort_by_key(|(seq, _)| *seq);
                (k, v.into_iter().map(|(_, r)| r).collect())
            })
            .collect()
    }

    /// Host `host` just lost its state at `at`. Every write for which no
    /// other live host holds that version or a newer one is excused: it was
    /// acknowledged (or superseded) only where state has now been lost.
    ///
    /// `held_elsewhere(key)` answers the greatest version any other live
    /// host holds for `key`. Returns how many writes were newly excused.
    pub fn excuse_lost(
        &mut self,
        at: Duration,
        host: usize,
        mut held_elsewhere: impl FnMut(&Bytes) -> Option<Version>,
    ) -> usize {
        let mut excused = 0;
        for (key, ids) in &self.by_key {
            let newest_unexcused = ids
                .iter()
                .filter(|id| self.writes[**id].excused.is_none())
                .map(|id| self.writes[*id].entry.version)
                .max();
            let Some(newest) = newest_unexcused else {
                continue;
            };
            let held = held_elsewhere(key);
            if held.is_some_and(|v| v >= newest) {
                continue;
            }
            for id in ids {
                let w = &mut self.writes[*id];
                if w.excused.is_none() && held.is_none_or(|v| w.entry.version > v) {
                    w.excused = Some(Excuse { at, host });
                    excused += 1;
                }
            }
        }
        excused
    }

    /// The writes for `key`, oldest first.
    pub fn writes_for<'a>(&'a self, key: &[u8]) -> impl Iterator<Item = &'a AckedWrite> + 'a {
        self.by_key.get(key).into_iter().flatten().map(|id| &self.writes[*id])
    }

    /// The greatest version among writes to `key` that are not excused,
    /// nor removed by a flush that must take effect.
    pub fn newest_required(&self, key: &[u8]) -> Option<&AckedWrite> {
        let flushed = self.flushed_upto();
        self.writes_for(key)
            .filter(|w| w.excused.is_none() && w.entry.version.timestamp > flushed)
            .max_by_key(|w| w.entry.version)
    }

    /// The acknowledged write with version `version`, if any.
    pub fn write_with(&self, key: &[u8], version: Version) -> Option<&AckedWrite> {
        self.writes_for(key).find(|w| w.entry.version == version)
    }

    /// Writes excused so far.
    pub fn excused_count(&self) -> usize {
        self.writes.iter().filter(|w| w.excused.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumor::core::version::{NodeId, Timestamp};

    fn entry(ts: u64) -> Entry {
        Entry {
            value: Some(Bytes::from_static(b"v")),
            version: Version { timestamp: Timestamp::from_packed(ts), writer: NodeId::from_random_bytes([1; 16]) },
            expires_at_ms: None,
            deadline_set_at: Timestamp::from_packed(ts),
        }
    }

    #[test]
    fn zipf_favours_the_first_keys() {
        let mut w = Workload::new(1, WorkloadConfig { rate_per_s: 10.0, keys: 100, zipf: 1.0 });
        let mut first = 0;
        for _ in 0..10_000 {
            if w.next_op(4).1.keys().first() == Some(&&Bytes::from_static(b"key:00000")) {
                first += 1;
            }
        }
        // Rank 1 of 100 at s = 1 has about 19% of the mass.
        assert!((1_200..2_800).contains(&first), "{first}");
    }

    #[test]
    fn writes_held_only_by_a_lost_host_are_excused() {
        let mut h = History::default();
        let k = Bytes::from_static(b"k");
        h.record_write(k.clone(), 0, 1, Duration::ZERO, entry(5));
        h.record_write(k.clone(), 1, 1, Duration::ZERO, entry(9));
        // Another host holds 5 but not 9: only 9 is excused.
        let n = h.excuse_lost(Duration::from_secs(1), 1, |_| Some(entry(5).version));
        assert_eq!(n, 1);
        assert_eq!(h.newest_required(&k).unwrap().entry.version, entry(5).version);
        // Nobody holds anything now: 5 goes too.
        assert_eq!(h.excuse_lost(Duration::from_secs(2), 0, |_| None), 1);
        assert!(h.newest_required(&k).is_none());
    }
}
