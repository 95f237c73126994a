//! Fault schedules drawn from the seed: which faults a run injects, how
//! hard, and when (swarm testing: the seed picks the intensities too).
//!
//! A plan is made once at the start of a run. Its times are fractions of
//! the safety phase (which begins once the mesh has formed) and its lengths
//! are absolute, so the same plan fits any run length. Each fault kind draws
//! from its own generator, so enabling one kind leaves the others' schedules
//! unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::clock::NodeClock;
use crate::net::{LinkFaults, Partition};
use crate::options::OptionError;
use crate::seed::{self, SimRng, between, chance, uniform};

/// One kind of fault `--faults` can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// Datagram loss.
    Loss,
    /// Latency spikes and slow links.
    Delay,
    /// Duplicated datagrams.
    Dup,
    /// Reordered datagrams (latency jitter).
    Reorder,
    /// Network partitions, symmetric and one-way.
    Partition,
    /// Crashes with state lost, restarts, graceful leaves, late joins.
    Crash,
    /// Clock skew, drift and steps.
    Skew,
}

impl FaultKind {
    /// Every kind, in canonical order.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Loss,
        FaultKind::Delay,
        FaultKind::Dup,
        FaultKind::Reorder,
        FaultKind::Partition,
        FaultKind::Crash,
        FaultKind::Skew,
    ];

    /// The name `--faults` takes.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Loss => "loss",
            FaultKind::Delay => "delay",
            FaultKind::Dup => "dup",
            FaultKind::Reorder => "reorder",
            FaultKind::Partition => "partition",
            FaultKind::Crash => "crash",
            FaultKind::Skew => "skew",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of fault kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultSet(u8);

impl FaultSet {
    /// No faults.
    pub const NONE: FaultSet = FaultSet(0);

    /// Every fault.
    pub fn all() -> Self {
        FaultKind::ALL.iter().fold(FaultSet::NONE, |set, k| set.with(*k))
    }

    /// Parses a comma list of kinds, `all` or `none`.
    pub fn parse(text: &str) -> Result<FaultSet, OptionError> {
        let mut set = FaultSet::NONE;
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "all" => set = FaultSet::all(),
                "none" => {}
                _ => {
                    let kind = FaultKind::ALL.iter().find(|k| k.name() == word).ok_or_else(|| {
                        OptionError(format!(
                            "--faults: unknown fault {word:?}; use a comma list of {} or all",
                            FaultKind::ALL.map(FaultKind::name).join(", ")
                        ))
                    })?;
                    set = set.with(*kind);
                }
            }
        }
        Ok(set)
    }

    /// This set plus `kind`.
    pub fn with(self, kind: FaultKind) -> Self {
        FaultSet(self.0 | kind.bit())
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: FaultKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == FaultSet::all() {
            return f.write_str("all");
        }
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = FaultKind::ALL.iter().filter(|k| self.contains(**k)).map(|k| k.name()).collect();
        f.write_str(&names.join(","))
    }
}

/// Something the plan does to the world.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultAction {
    /// The host crashes and loses its state (nodes are memory-only); it
    /// restarts on the same address after `restart_after`, or never.
    Crash {
        /// The host.
        host: usize,
        /// Downtime before the restart.
        restart_after: Option<Duration>,
    },
    /// The host leaves the mesh gracefully and stops, then restarts after
    /// `restart_after`, or never.
    Leave {
        /// The host.
        host: usize,
        /// Downtime before the restart.
        restart_after: Option<Duration>,
    },
    /// A host that was not started at the beginning joins.
    Join {
        /// The host.
        host: usize,
    },
    /// The network is cut for `length`.
    Partition {
        /// Who is on which side.
        partition: Partition,
        /// How long until it heals.
        length: Duration,
        /// For a host cut off alone: it crashes this long into the cut and
        /// restarts after the second duration, before the heal — so writes
        /// only it took while alone must come back from its data dir.
        crash_isolated: Option<(Duration, Duration)>,
    },
    /// A host's wall clock steps (as NTP may step it).
    ClockStep {
        /// The host.
        host: usize,
        /// The step, ms; negative goes back.
        delta_ms: i64,
    },
}

/// One planned fault: an action at a point of the safety phase.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedFault {
    /// Where in the safety phase, from 0 (its start) to 1 (its end).
    pub at_fraction: f64,
    /// What happens.
    pub action: FaultAction,
}

/// A whole run's faults.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    /// Link quality during the safety phase.
    pub link: LinkFaults,
    /// Each host's wall clock at the start.
    pub clocks: Vec<NodeClock>,
    /// Hosts that start late (by a planned [`FaultAction::Join`]).
    pub late_joiners: BTreeSet<usize>,
    /// Hosts that crash or leave and never come back.
    pub gone_for_good: BTreeSet<usize>,
    /// Hosts with a data dir: their state outlives a crash.
    pub persistent: BTreeSet<usize>,
    /// Hosts with a data dir whose wall clock steps back (ms) each time
    /// they restart, as a machine that reboots with a wrong clock.
    pub restart_clock_back_ms: BTreeMap<usize, i64>,
    /// Planned partitions held for 2 to 4 tombstone TTLs.
    pub long_partitions: usize,
    /// Timed actions, in order.
    pub faults: Vec<PlannedFault>,
}

/// Chance that a planned partition is a long one (2 to 4 tombstone TTLs).
pub const LONG_PARTITION_CHANCE: f64 = 0.35;

/// Hosts every other host announces to.
pub const SEED_HOSTS: usize = 3;

impl FaultPlan {
    /// The plan for run `seed` over `hosts` hosts injecting `kinds`, for
    /// nodes whose tombstones live `tombstone_ttl`.
    pub fn generate(
        seed: u64,
        hosts: usize,
        kinds: FaultSet,
        max_clock_drift_ms: u64,
        tombstone_ttl: Duration,
    ) -> Self {
        let mut plan = FaultPlan {
            link: LinkFaults::NONE,
            clocks: vec![NodeClock::exact(); hosts],
            late_joiners: BTreeSet::new(),
            gone_for_good: BTreeSet::new(),
            persistent: BTreeSet::new(),
            restart_clock_back_ms: BTreeMap::new(),
            long_partitions: 0,
            faults: Vec::new(),
        };
        let rng = |name: &str| seed::rng(seed, name, 0);
        if kinds.contains(FaultKind::Loss) {
            let mut r = rng("fault.loss");
            plan.link.loss = uniform(&mut r, 0.01, 0.12);
        }
        if kinds.contains(FaultKind::Dup) {
            let mut r = rng("fault.dup");
            plan.link.dup = uniform(&mut r, 0.01, 0.08);
        }
        if kinds.contains(FaultKind::Reorder) {
            let mut r = rng("fault.reorder");
            plan.link.jitter_max = Duration::from_secs_f64(uniform(&mut r, 0.001, 0.015));
        }
        if kinds.contains(FaultKind::Delay) {
            let mut r = rng("fault.delay");
            plan.link.spike_prob = uniform(&mut r, 0.002, 0.02);
            plan.link.spike_mean = Duration::from_secs_f64(uniform(&mut r, 0.010, 0.080));
            plan.link.slow_fraction = uniform(&mut r, 0.0, 0.1);
            plan.link.slow_extra_max = Duration::from_secs_f64(uniform(&mut r, 0.002, 0.030));
        }
        if kinds.contains(FaultKind::Skew) {
            plan.plan_skew(&mut rng("fault.skew"), hosts, max_clock_drift_ms);
        }
        if kinds.contains(FaultKind::Crash) {
            plan.plan_churn(&mut rng("fault.crash"), hosts);
            // Its own stream, so the churn above stays what it was. Some runs
            // have no data dirs, some have them everywhere (swarm testing).
            let mut disks = rng("fault.disk");
            let share = [0.0, 0.5, 1.0][between(&mut disks, 0, 2) as usize];
            plan.persistent = (0..hosts).filter(|_| chance(&mut disks, share)).collect();
            if kinds.contains(FaultKind::Skew) {
                let mut back = rng("fault.crash.skew");
                for host in plan.persistent.clone() {
                    if chance(&mut back, 0.5) {
                        plan.restart_clock_back_ms.insert(host, between(&mut back, 50, 1500) as i64);
                    }
                }
            }
        }
        if kinds.contains(FaultKind::Partition) {
            let crash_isolated = kinds.contains(FaultKind::Crash).then(|| rng("fault.partition.crash"));
            let long = (rng("fault.partition.long"), tombstone_ttl);
            plan.plan_partitions(&mut rng("fault.partition"), crash_isolated, long, hosts);
        }
        plan.faults.sort_by(|a, b| a.at_fraction.total_cmp(&b.at_fraction));
        plan
    }

    /// One line per fault family, for the report.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let l = self.link;
        if l != LinkFaults::NONE {
            lines.push(format!(
                "links: loss {:.1}%, dup {:.1}%, jitter <{} ms, spikes {:.1}% (mean {} ms), slow links {:.0}% (+<{} ms)",
                l.loss * 100.0,
                l.dup * 100.0,
                l.jitter_max.as_millis(),
                l.spike_prob * 100.0,
                l.spike_mean.as_millis(),
                l.slow_fraction * 100.0,
                l.slow_extra_max.as_millis()
            ));
        }
        let skewed = self.clocks.iter().filter(|c| c.offset_ms() != 0).count();
        if skewed > 0 {
            let max = self.clocks.iter().map(|c| c.offset_ms().abs()).max().unwrap_or(0);
            lines.push(format!("clocks: {skewed} skewed, largest offset {max} ms"));
        }
        let count = |f: fn(&FaultAction) -> bool| self.faults.iter().filter(|p| f(&p.action)).count();
        let crashes = count(|a| matches!(a, FaultAction::Crash { .. }));
        let leaves = count(|a| matches!(a, FaultAction::Leave { .. }));
        let joins = count(|a| matches!(a, FaultAction::Join { .. }));
        let partitions = count(|a| matches!(a, FaultAction::Partition { .. }));
        let steps = count(|a| matches!(a, FaultAction::ClockStep { .. }));
        if crashes + leaves + joins > 0 {
            lines.push(format!(
                "churn: {crashes} crashes, {leaves} graceful leaves, {joins} late joins, {} never back; \
                 {} of {} hosts keep their state across crashes (data dir)",
                self.gone_for_good.len(),
                self.persistent.len(),
                self.clocks.len()
            ));
        }
        if partitions > 0 {
            lines.push(format!("partitions: {partitions}, {} held for 2 to 4 tombstone TTLs", self.long_partitions));
        }
        if !self.restart_clock_back_ms.is_empty() {
            lines.push(format!(
                "restart skew: {} hosts with a data dir restart with their clock stepped back",
                self.restart_clock_back_ms.len()
            ));
        }
        if steps > 0 {
            lines.push(format!("clock steps: {steps}"));
        }
        lines
    }

    fn push(&mut self, at_fraction: f64, action: FaultAction) {
        self.faults.push(PlannedFault { at_fraction, action });
    }

    fn plan_skew(&mut self, rng: &mut SimRng, hosts: usize, max_clock_drift_ms: u64) {
        for clock in &mut self.clocks {
            *clock = NodeClock::skewed(rng, max_clock_drift_ms);
        }
        if hosts == 0 {
            return;
        }
        for _ in 0..between(rng, 0, 3) {
            let host = between(rng, 0, hosts as u64 - 1) as usize;
            let magnitude = between(rng, 50, 1500) as i64;
            let delta_ms = if chance(rng, 0.5) { magnitude } else { -magnitude };
            let at = uniform(rng, 0.0, 0.9);
            self.push(at, FaultAction::ClockStep { host, delta_ms });
        }
    }

    /// Late joins, one host gone for good, and transient crashes/leaves.
    fn plan_churn(&mut self, rng: &mut SimRng, hosts: usize) {
        let mut free: Vec<usize> = (SEED_HOSTS.min(hosts)..hosts).collect();
        let take = |rng: &mut SimRng, pool: &mut Vec<usize>| -> Option<usize> {
            if pool.is_empty() {
                return None;
            }
            let i = between(rng, 0, pool.len() as u64 - 1) as usize;
            Some(pool.swap_remove(i))
        };
        if hosts >= 4 {
            for _ in 0..(hosts / 10).max(1) {
                if let Some(host) = take(rng, &mut free) {
                    self.late_joiners.insert(host);
                    let at = uniform(rng, 0.0, 0.7);
                    self.push(at, FaultAction::Join { host });
                }
            }
            if let Some(host) = take(rng, &mut free) {
                self.gone_for_good.insert(host);
                let at = uniform(rng, 0.1, 0.6);
                let action = if chance(rng, 0.3) {
                    FaultAction::Leave { host, restart_after: None }
                } else {
                    FaultAction::Crash { host, restart_after: None }
                };
                self.push(at, action);
            }
        }
        // Seeds may crash too (and come back): joining must survive it.
        let mut pool: Vec<usize> =
            (0..hosts).filter(|h| !self.late_joiners.contains(h) && !self.gone_for_good.contains(h)).collect();
        let crashes = between(rng, 1, (1 + hosts as u64 / 8).min(12));
        for _ in 0..crashes {
            let Some(host) = take(rng, &mut pool) else {
                break;
            };
            let at = uniform(rng, 0.0, 0.9);
            let restart_after = Some(Duration::from_secs_f64(uniform(rng, 0.3, 8.0)));
            let action = if chance(rng, 0.2) {
                FaultAction::Leave { host, restart_after }
            } else {
                FaultAction::Crash { host, restart_after }
            };
            self.push(at, action);
        }
    }

    /// One to three partitions, each in its own slot of the safety phase:
    /// a random split, an isolated host, or a one-way split. Some (drawn
    /// from `long`'s own stream, so the others stay as they were) are
    /// instead 1|rest or half|half splits held for 2 to 4 tombstone TTLs:
    /// long enough that a TTL-only rule would forget tombstones a side
    /// lacks, or discard what an isolated host took alone.
    fn plan_partitions(
        &mut self,
        rng: &mut SimRng,
        mut crash_rng: Option<SimRng>,
        long: (SimRng, Duration),
        hosts: usize,
    ) {
        let (mut long_rng, tombstone_ttl) = long;
        if hosts < 2 {
            return;
        }
        let count = between(rng, 1, 3);
        for slot in 0..count {
            let at = (slot as f64 + uniform(rng, 0.0, 0.6)) / count as f64;
            let mut length = Duration::from_secs_f64(uniform(rng, 0.5, 8.0));
            let mut kind = between(rng, 0, 2);
            let mut halves = false;
            if chance(&mut long_rng, LONG_PARTITION_CHANCE) {
                length = tombstone_ttl.mul_f64(uniform(&mut long_rng, 2.0, 4.0));
                halves = chance(&mut long_rng, 0.5);
                kind = if halves { 0 } else { 1 };
                self.long_partitions += 1;
            }
            let mut groups = vec![0u8; hosts];
            let mut crash_isolated = None;
            if kind == 1 {
                let alone = between(rng, 0, hosts as u64 - 1) as usize;
                groups[alone] = 1;
                if let Some(r) = crash_rng.as_mut()
                    && chance(r, 0.5)
                    && !self.gone_for_good.contains(&alone)
                {
                    let after = length.mul_f64(uniform(r, 0.3, 0.6));
                    let down = (length - after).mul_f64(uniform(r, 0.1, 0.8));
                    crash_isolated = Some((after, down));
                }
            } else if halves {
                let first = between(&mut long_rng, 0, hosts as u64 - 1) as usize;
                for (i, g) in groups.iter_mut().enumerate() {
                    *g = u8::from((i + hosts - first) % hosts < hosts / 2);
                }
            } else {
                let minority = uniform(rng, 0.1, 0.5);
                for g in &mut groups {
                    *g = u8::from(chance(rng, minority));
                }
                // Never a "partition" with everyone on one side.
                if groups.iter().all(|g| *g == groups[0]) {
                    groups[0] ^= 1;
                }
            }
            let partition = Partition::new(groups, kind == 2);
            self.push(at, FaultAction::Partition { partition, length, crash_isolated });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(5);

    #[test]
    fn fault_sets_parse_and_print() {
        let set = FaultSet::parse("loss, crash").unwrap();
        assert!(set.contains(FaultKind::Loss) && set.contains(FaultKind::Crash));
        assert!(!set.contains(FaultKind::Skew));
        assert_eq!(set.to_string(), "loss,crash");
        assert_eq!(FaultSet::parse("all").unwrap(), FaultSet::all());
        assert_eq!(FaultSet::all().to_string(), "all");
        assert_eq!(FaultSet::parse("").unwrap(), FaultSet::NONE);
        assert!(FaultSet::parse("loss,meteor").is_err());
    }

    #[test]
    fn plans_are_reproducible_and_independent_per_kind() {
        let a = FaultPlan::generate(7, 64, FaultSet::parse("partition").unwrap(), 500, TTL);
        let b = FaultPlan::generate(7, 64, FaultSet::parse("partition").unwrap(), 500, TTL);
        assert_eq!(a, b);
        let with_loss = FaultPlan::generate(7, 64, FaultSet::parse("partition,loss").unwrap(), 500, TTL);
        assert_eq!(a.faults, with_loss.faults);
        assert!(with_loss.link.loss > 0.0);
    }

    #[test]
    fn some_partitions_outlast_the_tombstone_ttl() {
        let (mut long, mut all) = (0, 0);
        for seed in 0..100 {
            let plan = FaultPlan::generate(seed, 16, FaultSet::all(), 500, TTL);
            for p in &plan.faults {
                if let FaultAction::Partition { partition, length, .. } = &p.action {
                    all += 1;
                    // Ordinary partitions last at most 8 s, under 2 TTLs.
                    if *length >= TTL * 2 {
                        long += 1;
                        assert!(*length >= TTL * 2 && *length <= TTL * 4, "seed {seed}: {length:?}");
                        let sides: Vec<usize> = partition.sizes().into_values().collect();
                        assert!(sides.contains(&1) || sides == [8, 8], "seed {seed}: {sides:?}");
                    }
                }
            }
            assert_eq!(
                plan.long_partitions,
                plan.faults
                    .iter()
                    .filter(|p| matches!(&p.action, FaultAction::Partition { length, .. } if *length >= TTL * 2))
                    .count()
            );
            assert!(plan.restart_clock_back_ms.keys().all(|h| plan.persistent.contains(h)));
        }
        assert!(long * 5 > all && long * 2 < all, "{long} long partitions of {all}");
    }

    #[test]
    fn churn_keeps_seeds_and_never_reuses_a_host() {
        for seed in 0..50 {
            let plan = FaultPlan::generate(seed, 32, FaultSet::all(), 500, TTL);
            assert!(plan.late_joiners.iter().all(|h| *h >= SEED_HOSTS));
            assert!(plan.gone_for_good.iter().all(|h| *h >= SEED_HOSTS));
            let mut touched = BTreeSet::new();
            for p in &plan.faults {
                if let FaultAction::Crash { host, .. } | FaultAction::Leave { host, .. } | FaultAction::Join { host } =
                    p.action
                {
                    assert!(touched.insert(host), "seed {seed}: host {host} twice");
                }
            }
        }
    }
}
