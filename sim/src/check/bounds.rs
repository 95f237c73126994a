//! Bounds: the mesh formed, and converged after healing within the
//! liveness bound; and the run's measurements — time to converge,
//! dissemination latency percentiles (acknowledgement to every live node
//! holding the write or something newer), detection times, suspicions,
//! bytes and packets per node per second.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use rumor::core::version::{Timestamp, Version};

use super::Violation;
use super::membership::SuspicionCounts;

/// This checker's name in reports.
pub const NAME: &str = "bounds";

/// Order statistics of a sample of durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percentiles {
    /// Sample size.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest.
    pub max: Duration,
}

impl Percentiles {
    /// The percentiles of `samples` (nearest rank); `None` if empty.
    pub fn of(mut samples: Vec<Duration>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let rank = |q: f64| {
            let i = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i]
        };
        Some(Percentiles {
            count: samples.len(),
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: samples[samples.len() - 1],
        })
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n={})",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max),
            self.count
        )
    }
}

/// A write on its way to every live node.
#[derive(Debug)]
struct Pending {
    key: Bytes,
    version: Version,
    at: Duration,
    reached: Vec<u64>,
    count: usize,
}

impl Pending {
    fn has(&self, host: usize) -> bool {
        self.reached.get(host / 64).is_some_and(|w| w & (1 << (host % 64)) != 0)
    }

    /// Marks `host`; returns whether it was new.
    fn mark(&mut self, host: usize) -> bool {
        match self.reached.get_mut(host / 64) {
            Some(word) if *word & (1 << (host % 64)) == 0 => {
                *word |= 1 << (host % 64);
                self.count += 1;
                true
            }
            _ => false,
        }
    }

    fn unmark(&mut self, host: usize) {
        if let Some(word) = self.reached.get_mut(host / 64)
            && *word & (1 << (host % 64)) != 0
        {
            *word &= !(1 << (host % 64));
            self.count -= 1;
        }
    }
}

/// Measures how long each acknowledged write takes to reach every live
/// node (holding it or something newer for its key).
#[derive(Debug, Default)]
pub struct DisseminationTracker {
    hosts: usize,
    pending: BTreeMap<usize, Pending>,
    by_key: BTreeMap<Bytes, BTreeSet<usize>>,
    latencies: Vec<Duration>,
    first_copies: Vec<Duration>,
    incomplete: u64,
}

/// How long a write may take to reach everyone before it counts as never
/// having done so (and stops being tracked).
pub const DISSEMINATION_WINDOW: Duration = Duration::from_secs(30);

impl DisseminationTracker {
    /// A tracker for `hosts` hosts.
    pub fn new(hosts: usize) -> Self {
        DisseminationTracker { hosts, ..DisseminationTracker::default() }
    }

    /// Write `id` was acknowledged by `host` at `at`.
    pub fn on_write(&mut self, id: usize, key: Bytes, version: Version, host: usize, at: Duration, up_hosts: usize) {
        let mut p = Pending { key: key.clone(), version, at, reached: vec![0; self.hosts.div_ceil(64)], count: 0 };
        p.mark(host);
        if p.count >= up_hosts {
            self.latencies.push(Duration::ZERO);
            return;
        }
        self.by_key.entry(key).or_default().insert(id);
        self.pending.insert(id, p);
    }

    /// `host` now holds `held` for `key`.
    pub fn on_held(&mut self, host: usize, key: &[u8], held: Option<Version>, now: Duration, up_hosts: usize) {
        let Some(held) = held else {
            return;
        };
        let Some(ids) = self.by_key.get(key) else {
            return;
        };
        let mut done = Vec::new();
        for id in ids {
            if let Some(p) = self.pending.get_mut(id)
                && held >= p.version
                && p.mark(host)
            {
                if p.count == 2 {
                    self.first_copies.push(now.saturating_sub(p.at));
                }
                if p.count >= up_hosts {
                    done.push(*id);
                }
            }
        }
        for id in done {
            self.complete(id, now);
        }
    }

    /// A FLUSHALL at `upto` was acknowledged: the writes at or before it
    /// are gone, not on their way, and stop being tracked.
    pub fn on_flush(&mut self, upto: Timestamp) {
        let gone: Vec<usize> =
            self.pending.iter().filter(|(_, p)| p.version.timestamp <= upto).map(|(id, _)| *id).collect();
        for id in gone {
            self.drop_pending(id);
        }
    }

    /// Keys of writes `host` has not been seen to hold yet.
    pub fn missing_at(&self, host: usize) -> Vec<Bytes> {
        let keys: BTreeSet<&Bytes> = self.pending.values().filter(|p| !p.has(host)).map(|p| &p.key).collect();
        keys.into_iter().cloned().collect()
    }

    /// `host` went down: it no longer counts, which may complete writes.
    pub fn on_host_down(&mut self, host: usize, now: Duration, up_hosts: usize) {
        let mut done = Vec::new();
        for (id, p) in self.pending.iter_mut() {
            p.unmark(host);
            if p.count >= up_hosts {
                done.push(*id);
            }
        }
        for id in done {
            self.complete(id, now);
        }
    }

    /// Stops tracking writes older than [`DISSEMINATION_WINDOW`].
    pub fn expire(&mut self, now: Duration) {
        let old: Vec<usize> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.at) > DISSEMINATION_WINDOW)
            .map(|(id, _)| *id)
            .collect();
        for id in old {
            self.drop_pending(id);
            self.incomplete += 1;
        }
    }

    /// Latency percentiles of completed writes, and how many never
    /// completed (still pending counts as never).
    pub fn summary(&self) -> (Option<Percentiles>, u64) {
        (Percentiles::of(self.latencies.clone()), self.incomplete + self.pending.len() as u64)
    }

    /// Percentiles of the time until a second node held each write.
    pub fn first_copy(&self) -> Option<Percentiles> {
        Percentiles::of(self.first_copies.clone())
    }

    /// The raw samples: (ack to every live node, ack to a second node).
    pub fn samples(&self) -> (Vec<Duration>, Vec<Duration>) {
        (self.latencies.clone(), self.first_copies.clone())
    }

    fn complete(&mut self, id: usize, now: Duration) {
        if let Some(p) = self.drop_pending(id) {
            self.latencies.push(now.saturating_sub(p.at));
        }
    }

    fn drop_pending(&mut self, id: usize) -> Option<Pending> {
        let p = self.pending.remove(&id)?;
        if let Some(ids) = self.by_key.get_mut(&p.key) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_key.remove(&p.key);
            }
        }
        Some(p)
    }
}

/// Traffic per node per simulated second, over the whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Traffic {
    /// Packets (datagrams and frames) sent, mean per host.
    pub packets_per_node_s: f64,
    /// Bytes sent, mean per host.
    pub bytes_per_node_s: f64,
    /// Of those, SWIM packets.
    pub swim_packets_per_node_s: f64,
    /// Of those, SWIM bytes.
    pub swim_bytes_per_node_s: f64,
    /// The busiest host's bytes sent per second.
    pub max_bytes_per_node_s: f64,
    /// Stream frames sent in total.
    pub frames: u64,
}

/// Raw samples, so a sweep can aggregate percentiles over many runs.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    /// Ack to every live node holding the write.
    pub dissemination: Vec<Duration>,
    /// Ack to a second node holding it.
    pub first_copy: Vec<Duration>,
    /// Stop to every observer marking the host down.
    pub detection: Vec<Duration>,
    /// Healing to convergence (one per converged run).
    pub converge: Vec<Duration>,
}

impl Samples {
    /// Adds another run's samples.
    pub fn extend(&mut self, other: &Samples) {
        self.dissemination.extend_from_slice(&other.dissemination);
        self.first_copy.extend_from_slice(&other.first_copy);
        self.detection.extend_from_slice(&other.detection);
        self.converge.extend_from_slice(&other.converge);
    }
}

/// Everything the run measured.
#[derive(Clone, Debug, Default)]
pub struct Measurements {
    /// The raw samples behind the percentiles.
    pub samples: Samples,
    /// Time for every initial node to join (`None`: they did not).
    pub warmup: Option<Duration>,
    /// First warmup check at which every node saw every other alive
    /// (`None`: not during warmup).
    pub membership_complete_at: Option<Duration>,
    /// When the liveness phase began.
    pub heal_at: Duration,
    /// When the run ended.
    pub end: Duration,
    /// Time from healing to convergence (`None`: not within the bound).
    pub converge: Option<Duration>,
    /// The liveness bound.
    pub liveness_bound: Duration,
    /// Dissemination latencies.
    pub dissemination: Option<Percentiles>,
    /// Writes that never reached every live node within the window.
    pub dissemination_incomplete: u64,
    /// Time until a second node held a write (eager push's first hop).
    pub first_copy: Option<Percentiles>,
    /// Times until every observer marked a stopped host down.
    pub detection: Option<Percentiles>,
    /// The detection bound.
    pub detection_bound: Duration,
    /// Detections cut short by a restart or the healing.
    pub detections_abandoned: usize,
    /// Suspicions.
    pub suspicions: SuspicionCounts,
    /// Isolated events (a node lost every other member).
    pub isolations: u64,
    /// Times the mesh declared a live node down (it renews and rejoins).
    pub declared_down: u64,
    /// Traffic.
    pub traffic: Traffic,
    /// Acknowledged writes.
    pub writes: usize,
    /// Writes excused (held only by hosts that lost their state).
    pub excused: usize,
    /// Reads answered.
    pub reads: u64,
    /// The executor's replies, counted by command and kind (`MSET +OK`,
    /// `GET $<bulk>`, `DEL :0`, …).
    pub replies: BTreeMap<String, u64>,
    /// Acknowledged writes, by the command that made them.
    pub writes_by_command: BTreeMap<&'static str, usize>,
    /// Operations refused by a down host.
    pub refused: u64,
    /// Remote versions too far ahead to move a clock (live nodes at the end).
    pub drift_rejections: u64,
    /// Dead entries forgotten by the sweeps (every life of every host).
    pub tombstones_forgotten: u64,
    /// Entries dropped by nodes back after `member_gone_after`.
    pub stale_entries_dropped: u64,
    /// Largest such lead, ms.
    pub max_drift_seen_ms: u64,
    /// Datagrams lost.
    pub lost: u64,
    /// Datagrams duplicated.
    pub duplicated: u64,
    /// Transmissions cut by partitions.
    pub partitioned: u64,
    /// Arrivals at down hosts.
    pub to_down_host: u64,
    /// Events carried out.
    pub events: u64,
}

/// Median time for a write to reach a second node. Eager push does it in
/// a link latency or two; anti-entropy alone takes a fraction of a sync
/// interval. Loss, jitter and partitions move the tail, not the median.
pub const FIRST_COPY_P50_BOUND: Duration = Duration::from_millis(50);

/// Fewest samples for the first-copy bound to be judged.
const FIRST_COPY_SAMPLES_MIN: usize = 20;

/// Checks the liveness bounds.
pub fn check(m: &Measurements) -> Vec<Violation> {
    let mut violations = Vec::new();
    if let Some(p) = m.first_copy
        && p.count >= FIRST_COPY_SAMPLES_MIN
        && p.p50 > FIRST_COPY_P50_BOUND
    {
        violations.push(Violation {
            checker: NAME,
            invariant: "a write is pushed at once: the median write reaches a second node within the first-copy bound",
            detail: format!(
                "time to a second node: {p}; bound on the median {:.0} ms",
                FIRST_COPY_P50_BOUND.as_secs_f64() * 1000.0
            ),
            key: None,
            hosts: Vec::new(),
            at: m.end,
        });
    }
    if m.warmup.is_none() {
        violations.push(Violation {
            checker: NAME,
            invariant: "every initial node joins the mesh",
            detail: "some initial node had no other active member when warmup gave up".to_owned(),
            key: None,
            hosts: Vec::new(),
            at: m.heal_at,
        });
    }
    if m.converge.is_none() {
        violations.push(Violation {
            checker: NAME,
            invariant: "after healing, the mesh converges within the liveness bound",
            detail: format!(
                "healed at {:.3}s; not converged (stores and membership) by {:.3}s (bound {:.3}s)",
                m.heal_at.as_secs_f64(),
                m.end.as_secs_f64(),
                m.liveness_bound.as_secs_f64()
            ),
            key: None,
            hosts: Vec::new(),
            at: m.end,
        });
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumor::core::version::{NodeId, Timestamp};

    fn version(ts: u64) -> Version {
        Version { timestamp: Timestamp::from_packed(ts), writer: NodeId::from_random_bytes([1; 16]) }
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(samples).unwrap();
        assert_eq!(p.p50, Duration::from_millis(50));
        assert_eq!(p.p99, Duration::from_millis(99));
        assert_eq!(p.max, Duration::from_millis(100));
        assert!(Percentiles::of(Vec::new()).is_none());
    }

    #[test]
    fn a_write_completes_when_every_live_host_holds_it_or_newer() {
        let mut t = DisseminationTracker::new(3);
        let k = Bytes::from_static(b"k");
        t.on_write(0, k.clone(), version(5), 0, Duration::ZERO, 3);
        t.on_held(1, b"k", Some(version(5)), Duration::from_millis(2), 3);
        t.on_held(2, b"k", Some(version(4)), Duration::from_millis(3), 3);
        assert_eq!(t.missing_at(2), vec![k.clone()]);
        t.on_held(2, b"k", Some(version(9)), Duration::from_millis(7), 3);
        let (p, incomplete) = t.summary();
        assert_eq!(p.unwrap().max, Duration::from_millis(7));
        assert_eq!(incomplete, 0);
    }

    #[test]
    fn a_host_going_down_can_complete_a_write() {
        let mut t = DisseminationTracker::new(3);
        t.on_write(0, Bytes::from_static(b"k"), version(5), 0, Duration::ZERO, 3);
        t.on_held(1, b"k", Some(version(5)), Duration::from_millis(1), 3);
        t.on_host_down(2, Duration::from_millis(4), 2);
        assert_eq!(t.summary().0.unwrap().count, 1);
    }
}
