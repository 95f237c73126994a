//! The world: every host's node in one thread, driven by one event queue
//! ordered by (simulated time, sequence), through the phases of a run —
//! warmup (the mesh forms), safety (workload and faults), liveness (all
//! healed: the mesh must converge within a bound), and a quiet tail.
//!
//! After every input a node gets, the world drains it in the order the
//! core documents: transmits (routed by the network), then events (which
//! feed the membership views and detection timings), then its next timeout.
//! Nothing here reads a clock or a random source other than the seeded
//! streams, and nothing iterates a hash map: the same options give the same
//! trace, bit for bit.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rumor::config::Settings;
use rumor::core::node::NodeConfig;
use rumor::core::store::Store;
use rumor::core::version::Timestamp;

use crate::check::Violation;
use crate::check::bounds::DisseminationTracker;
use crate::check::membership::{Detections, MemberLog, SuspicionCounts, Views};
use crate::fault::{FaultAction, FaultPlan, SEED_HOSTS};
use crate::host::{Host, HostStatus, addr_of};
use crate::net::{LinkFaults, Network};
use crate::options::SimOptions;
use crate::seed::{self, uniform};
use crate::trace::{Trace, TraceKind};
use crate::workload::{History, Workload, WorkloadConfig};
use step::{HostBatch, LocalEvent, StepView};
use worker::Mailbox;

mod inputs;
mod step;
mod verdict;
mod window;
mod worker;

/// Where a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Hosts start and the mesh forms; no faults, no clients.
    Warmup,
    /// Clients and faults.
    Safety,
    /// Everything healed; waiting for convergence.
    Liveness,
    /// Converged; a quiet stretch before the final checks.
    Tail,
    /// Over.
    Done,
}

impl Phase {
    /// Its name in progress lines.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Warmup => "warmup",
            Phase::Safety => "safety",
            Phase::Liveness => "liveness",
            Phase::Tail => "tail",
            Phase::Done => "done",
        }
    }
}

/// A progress report for long runs.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Simulated time.
    pub at: Duration,
    /// Phase.
    pub phase: Phase,
    /// Events carried out so far.
    pub events: u64,
    /// Hosts up.
    pub up_hosts: usize,
    /// Writes acknowledged so far.
    pub writes: usize,
}

#[derive(Debug)]
enum WorldEvent {
    Boot {
        host: usize,
    },
    /// Boots every host but the late joiners at once, each knowing the others.
    BootFormed,
    /// A delivery, wake-up or hand-over: run in a lookahead window.
    Local {
        host: usize,
        event: LocalEvent,
    },
    Client,
    Fault(FaultAction),
    Restart {
        host: usize,
    },
    HealPartition {
        generation: u64,
    },
    DetectionDeadline {
        record: usize,
    },
    ExpireDissemination,
    WarmupCheck,
    Heal,
    LivenessCheck,
    Finish,
    Progress,
}

impl WorldEvent {
    fn local(host: usize, event: LocalEvent) -> Self {
        WorldEvent::Local { host, event }
    }
}

#[derive(Debug)]
struct Scheduled {
    at: Duration,
    seq: u64,
    event: WorldEvent,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The whole simulated mesh.
pub struct World {
    opts: SimOptions,
    now: Duration,
    queue: BinaryHeap<Reverse<Scheduled>>,
    next_seq: u64,
    hosts: Vec<Host>,
    up_hosts: usize,
    net: Network,
    plan: FaultPlan,
    workload: Workload,
    history: History,
    trace: Trace,
    views: Views,
    detections: Detections,
    member_log: MemberLog,
    fault_log: Vec<(Duration, usize, String)>,
    late_reported: BTreeSet<usize>,
    dissemination: Arc<RwLock<DisseminationTracker>>,
    suspicions: SuspicionCounts,
    isolations: u64,
    declared_down: u64,
    node_config: NodeConfig,
    /// Dead entries forgotten, and stale entries dropped, by lives that
    /// have ended.
    forgotten_by_past_lives: (u64, u64),
    detect_bound: Duration,
    phase: Phase,
    warmup: Option<Duration>,
    membership_complete_at: Option<Duration>,
    heal_at: Duration,
    converged_at: Option<Duration>,
    partition_generation: u64,
    violations: Vec<Violation>,
    events: u64,
    events_this_instant: u64,
    event_budget: u64,
    /// Threads that run the hosts' steps of a window (1: this one).
    threads: usize,
    /// Per-host batches of the current window, kept for reuse.
    batches: Vec<HostBatch>,
    /// Each host's batch in the current window, or [`window::NO_BATCH`].
    batch_of: Vec<usize>,
    /// Windows run, and those whose steps were shared out across threads.
    windows: u64,
    windows_shared: u64,
    /// The order a window's records are carried out in, kept for reuse:
    /// (time, sequence, batch, record).
    commit_order: BinaryHeap<Reverse<(Duration, u64, usize, usize)>>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("now", &self.now)
            .field("phase", &self.phase)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// How often warmup checks whether the mesh has formed.
const WARMUP_CHECK_EVERY: Duration = Duration::from_millis(200);
/// Warmup after which the run goes on once every node has joined, even if
/// some node does not know every member yet.
const WARMUP_SETTLE: Duration = Duration::from_secs(5);
/// Longest warmup before the run goes on without a formed mesh.
const WARMUP_MAX: Duration = Duration::from_secs(60);
/// Longest spread of the initial boots.
const BOOT_SPREAD_MAX: Duration = Duration::from_millis(500);
/// Faults remembered for excerpts.
const FAULT_LOG_MAX: usize = 100_000;
/// How often the liveness phase checks for convergence.
const LIVENESS_CHECK_EVERY: Duration = Duration::from_millis(100);
/// Quiet time after convergence before the final checks.
const TAIL: Duration = Duration::from_secs(1);
/// Delay between a client's acknowledgement and its write reaching the
/// node (the driver's channel).
const CHANNEL_DELAY: Duration = Duration::from_micros(50);
/// Local writes handed to the node per batch (the driver's
/// `write_batch_max`).
const WRITE_BATCH_MAX: usize = 512;
/// Most transmits or events one input may produce before the world calls
/// it a runaway.
const DRAIN_MAX: usize = 1_000_000;
/// Most events at one simulated instant before the world calls it a
/// livelock.
const EVENTS_PER_INSTANT_MAX: u64 = 10_000_000;
/// WorldEvent budget per host per simulated second.
const EVENTS_PER_HOST_SECOND_MAX: u64 = 1_000_000;

impl World {
    /// A world set up for `opts` (already validated), nothing run yet.
    pub fn new(opts: &SimOptions) -> Self {
        let n = opts.nodes;
        let settings = Settings::default();
        let max_clock_drift_ms = settings.node.max_clock_drift_ms;
        let mut node_config = settings.node;
        node_config.swim.cluster_size_hint =
            NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        node_config.sabotage = opts.sabotage();
        node_config.tombstone_ttl = opts.tombstone_ttl;
        node_config.member_gone_after = opts.member_gone_after;
        node_config.seeds = (0..SEED_HOSTS.min(n)).map(addr_of).collect();
        let detect_bound = opts.detect_bound.unwrap_or_else(|| default_detect_bound(&node_config, n));
        let plan = FaultPlan::generate(opts.seed, n, opts.faults, max_clock_drift_ms, opts.tombstone_ttl);
        let hosts: Vec<Host> = (0..n)
            .map(|i| {
                let mut host = Host::new(i, plan.clocks.get(i).copied().unwrap_or_default());
                host.persistent = plan.persistent.contains(&i);
                host
            })
            .collect();
        let workload =
            Workload::new(opts.seed, WorkloadConfig { rate_per_s: opts.rate_per_s, keys: opts.keys, zipf: opts.zipf });
        let sim_secs = (opts.duration + opts.liveness + TAIL).as_secs() + 2;
        let mut world = World {
            opts: opts.clone(),
            now: Duration::ZERO,
            queue: BinaryHeap::new(),
            next_seq: 0,
            hosts,
            up_hosts: 0,
            net: Network::new(opts.seed, n),
            plan,
            workload,
            history: History::default(),
            trace: Trace::default(),
            views: Views::new(n),
            detections: Detections::default(),
            member_log: MemberLog::default(),
            fault_log: Vec::new(),
            late_reported: BTreeSet::new(),
            dissemination: Arc::new(RwLock::new(DisseminationTracker::new(n))),
            suspicions: SuspicionCounts::default(),
            isolations: 0,
            declared_down: 0,
            node_config,
            forgotten_by_past_lives: (0, 0),
            detect_bound,
            phase: Phase::Warmup,
            warmup: None,
            membership_complete_at: None,
            heal_at: opts.duration,
            converged_at: None,
            partition_generation: 0,
            violations: Vec::new(),
            events: 0,
            events_this_instant: 0,
            event_budget: EVENTS_PER_HOST_SECOND_MAX.saturating_mul(n as u64).saturating_mul(sim_secs),
            threads: opts.threads.max(1),
            batches: Vec::new(),
            batch_of: vec![window::NO_BATCH; n],
            windows: 0,
            windows_shared: 0,
            commit_order: BinaryHeap::new(),
        };
        let mut boot = seed::rng(opts.seed, "boot", 0);
        let spread = BOOT_SPREAD_MAX.min(Duration::from_millis(n as u64));
        if opts.formed {
            world.schedule(Duration::ZERO, WorldEvent::BootFormed);
        }
        for host in (0..n).filter(|_| !opts.formed) {
            if !world.plan.late_joiners.contains(&host) {
                let at = spread.mul_f64(uniform(&mut boot, 0.0, 1.0));
                world.schedule(at, WorldEvent::Boot { host });
            }
        }
        world.schedule(WARMUP_CHECK_EVERY, WorldEvent::WarmupCheck);
        world.schedule(opts.duration, WorldEvent::Heal);
        world
    }

    /// Runs to the end, calling `progress` every `progress_every` of
    /// simulated time, and judges the result.
    pub fn run(self, progress_every: Option<Duration>, progress: &mut dyn FnMut(&Progress)) -> crate::Outcome {
        let helpers: Vec<Mailbox> = (1..self.threads).map(|_| Mailbox::default()).collect();
        if helpers.is_empty() {
            return self.run_here(progress_every, progress, &[]);
        }
        std::thread::scope(|scope| {
            for mailbox in &helpers {
                scope.spawn(|| mailbox.serve());
            }
            let outcome = self.run_here(progress_every, progress, &helpers);
            for mailbox in &helpers {
                mailbox.quit();
            }
            outcome
        })
    }

    fn run_here(
        mut self,
        progress_every: Option<Duration>,
        progress: &mut dyn FnMut(&Progress),
        helpers: &[Mailbox],
    ) -> crate::Outcome {
        let progress_every = progress_every.filter(|d| !d.is_zero());
        if let Some(every) = progress_every {
            self.schedule(every, WorldEvent::Progress);
        }
        while self.phase != Phase::Done {
            match self.queue.peek() {
                None => break,
                Some(Reverse(next)) if matches!(next.event, WorldEvent::Local { .. }) => {
                    self.run_window(helpers);
                    continue;
                }
                Some(_) => {}
            }
            let Some(Reverse(next)) = self.queue.pop() else {
                break;
            };
            if !self.count_event(next.at) {
                break;
            }
            match next.event {
                WorldEvent::Progress => {
                    progress(&Progress {
                        at: self.now,
                        phase: self.phase,
                        events: self.events,
                        up_hosts: self.up_hosts,
                        writes: self.history.writes.len(),
                    });
                    if let Some(every) = progress_every {
                        self.schedule(self.now + every, WorldEvent::Progress);
                    }
                }
                event => self.handle(event),
            }
        }
        self.finish()
    }

    /// What steps may read, for a window ending at `window_end`.
    fn shared(&self, window_end: Duration) -> StepView {
        StepView { cut: self.net.cut(), dissemination: Arc::clone(&self.dissemination), window_end }
    }

    /// Moves the clock to `at` for the next event and counts it; false
    /// (and a runaway violation) when the run is over its event budget.
    fn count_event(&mut self, at: Duration) -> bool {
        if at == self.now {
            self.events_this_instant += 1;
        } else {
            self.events_this_instant = 0;
        }
        self.now = at;
        self.events += 1;
        if self.events > self.event_budget || self.events_this_instant > EVENTS_PER_INSTANT_MAX {
            self.runaway(format!(
                "{} events in all, {} at this instant (budget {}, {} per instant)",
                self.events, self.events_this_instant, self.event_budget, EVENTS_PER_INSTANT_MAX
            ));
            return false;
        }
        true
    }

    fn schedule(&mut self, at: Duration, event: WorldEvent) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Reverse(Scheduled { at, seq, event }));
    }

    fn handle(&mut self, event: WorldEvent) {
        match event {
            WorldEvent::Boot { host } => self.start_host(host),
            WorldEvent::BootFormed => self.start_formed_mesh(),
            // Carried out by `run_window`, never here.
            WorldEvent::Local { .. } => {}
            WorldEvent::Client => self.client_op(),
            WorldEvent::Fault(action) => {
                if self.phase == Phase::Safety {
                    self.apply_fault(action);
                }
            }
            WorldEvent::Restart { host } => {
                if self.hosts[host].status == HostStatus::Down {
                    self.note_fault(host, format!("restart n{host}"));
                    if let Some(back_ms) = self.plan.restart_clock_back_ms.get(&host).copied() {
                        self.hosts[host].clock.step(-back_ms);
                        self.note_fault(host, format!("n{host} restarts with its clock {back_ms} ms back"));
                    }
                    self.start_host(host);
                }
            }
            WorldEvent::HealPartition { generation } => {
                if generation == self.partition_generation && self.net.is_partitioned() {
                    self.net.heal_partition();
                    self.note_fault(0, "partition healed".to_owned());
                }
            }
            WorldEvent::DetectionDeadline { record } => self.detection_deadline(record),
            WorldEvent::ExpireDissemination => {
                self.dissemination.write().expire(self.now);
                if self.phase == Phase::Safety {
                    self.schedule(self.now + Duration::from_secs(1), WorldEvent::ExpireDissemination);
                }
            }
            WorldEvent::WarmupCheck => self.warmup_check(),
            WorldEvent::Heal => self.heal(),
            WorldEvent::LivenessCheck => self.liveness_check(),
            WorldEvent::Finish => self.phase = Phase::Done,
            WorldEvent::Progress => {}
        }
    }

    // ----- phases -------------------------------------------------------

    fn warmup_check(&mut self) {
        if self.phase != Phase::Warmup {
            return;
        }
        let booted = self.hosts.iter().filter(|h| !self.plan.late_joiners.contains(&h.index)).all(Host::is_up);
        let complete = booted && self.membership_formed();
        if complete && self.membership_complete_at.is_none() {
            self.membership_complete_at = Some(self.now);
        }
        // A mass join can leave a node unaware of a member until that member
        // probes it (a full probe round); clients need not wait for that.
        let joined = booted && self.all_joined();
        if complete || (joined && self.now >= WARMUP_SETTLE) {
            self.warmup = Some(self.now);
            self.begin_safety();
        } else if self.now >= WARMUP_MAX {
            self.begin_safety();
        } else {
            self.schedule(self.now + WARMUP_CHECK_EVERY, WorldEvent::WarmupCheck);
        }
    }

    fn begin_safety(&mut self) {
        self.phase = Phase::Safety;
        self.net.set_faults(self.plan.link);
        let start = self.now;
        let window = self.heal_at.saturating_sub(start);
        let planned: Vec<(Duration, FaultAction)> =
            self.plan.faults.iter().map(|p| (start + window.mul_f64(p.at_fraction), p.action.clone())).collect();
        for (at, action) in planned {
            self.schedule(at, WorldEvent::Fault(action));
        }
        if let Some(gap) = self.workload.next_gap() {
            self.schedule(start + gap, WorldEvent::Client);
        }
        self.schedule(start + Duration::from_secs(1), WorldEvent::ExpireDissemination);
        self.note_fault(0, format!("safety phase: faults {}", self.opts.faults));
    }

    fn heal(&mut self) {
        if self.phase == Phase::Warmup && self.all_joined() {
            // Too short a run for a safety phase, but the mesh formed.
            self.warmup = Some(self.now);
        }
        self.phase = Phase::Liveness;
        self.heal_at = self.now;
        self.net.set_faults(LinkFaults::NONE);
        self.net.heal_partition();
        self.partition_generation += 1;
        self.note_fault(0, "heal: faults off, partitions healed, hosts restarted".to_owned());
        for host in 0..self.hosts.len() {
            match self.hosts[host].status {
                HostStatus::Down | HostStatus::NotStarted => self.start_host(host),
                HostStatus::Up | HostStatus::Gone => {}
            }
        }
        self.schedule(self.now + LIVENESS_CHECK_EVERY, WorldEvent::LivenessCheck);
    }

    fn liveness_check(&mut self) {
        if self.phase != Phase::Liveness {
            return;
        }
        if self.mesh_converged() {
            self.converged_at = Some(self.now);
            self.phase = Phase::Tail;
            self.schedule(self.now + TAIL, WorldEvent::Finish);
        } else if self.now.saturating_sub(self.heal_at) >= self.opts.liveness {
            self.phase = Phase::Done;
        } else {
            self.schedule(self.now + LIVENESS_CHECK_EVERY, WorldEvent::LivenessCheck);
        }
    }

    // ----- hosts --------------------------------------------------------

    fn start_host(&mut self, host: usize) {
        if self.hosts[host].is_up() {
            return;
        }
        let mut config = self.node_config.clone();
        let me = self.hosts[host].addr;
        config.seeds.retain(|s| *s != me);
        let discarded = self.hosts[host].start(self.opts.seed, config, self.now);
        if discarded {
            // Its data dir was too old to load: what only it held is lost.
            self.excuse_lost_with(host);
        }
        self.up_hosts += 1;
        if let Some(store) = self.hosts[host].store().cloned().filter(|_| self.hosts[host].disk.is_some()) {
            // What its data dir brought back it holds again (a crash took it
            // off every write it had reached).
            let mut tracker = self.dissemination.write();
            for key in tracker.missing_at(host) {
                tracker.on_held(host, &key, store.version(&key), self.now, self.up_hosts);
            }
        }
        self.views.reset(host);
        self.detections.abandon(host);
        let life = self.hosts[host].life;
        self.trace.record(
            self.now,
            TraceKind::Fault,
            host,
            host,
            &life.to_le_bytes(),
            Some(format!("n{host} starts (life {life})")),
        );
        self.after_input(host);
    }

    /// Starts every host but the late joiners, then gives each the others'
    /// identities, as a mesh restarted with its member lists would have.
    fn start_formed_mesh(&mut self) {
        let hosts: Vec<usize> = (0..self.hosts.len()).filter(|h| !self.plan.late_joiners.contains(h)).collect();
        for &host in &hosts {
            self.start_host(host);
        }
        let members: Vec<_> =
            hosts.iter().filter_map(|&h| self.hosts[h].node.as_ref().map(|n| n.identity().clone())).collect();
        // Each node's restore touches only that node (a search of its
        // member list per member: a thousand hosts make it N² work), so
        // they may run on any thread; the drains that follow route packets
        // and go in host order.
        let at = self.now;
        let restore = |hosts: &mut [Host]| {
            for h in hosts {
                let now = h.now(at);
                if let Some(node) = h.node.as_mut() {
                    node.restore_members(&members, now);
                }
            }
        };
        let chunk = self.hosts.len().div_ceil(self.threads).max(1);
        std::thread::scope(|scope| {
            let mut chunks = self.hosts.chunks_mut(chunk);
            let mine = chunks.next();
            for other in chunks {
                scope.spawn(|| restore(other));
            }
            if let Some(mine) = mine {
                restore(mine);
            }
        });
        for &host in &hosts {
            self.after_input(host);
        }
    }

    /// Ends `host`'s life: a crash loses its state, a graceful leave first
    /// pushes its queued writes and tells the mesh.
    fn stop_host(&mut self, host: usize, graceful: bool, restart_after: Option<Duration>) {
        if !self.hosts[host].is_up() {
            return;
        }
        if graceful {
            self.hand_over_now(host, self.hosts[host].life);
            let now = self.hosts[host].now(self.now);
            if let Some(node) = self.hosts[host].node.as_mut() {
                node.leave(now);
            }
            self.after_input(host);
        }
        if let Some(node) = self.hosts[host].node.as_ref() {
            let stats = node.gossip_stats();
            self.forgotten_by_past_lives.0 += stats.tombstones_forgotten;
            self.forgotten_by_past_lives.1 += stats.stale_entries_dropped;
        }
        // The one allowed loss: what only this host held is gone now —
        // unless its data dir keeps it for the restart.
        if !(self.hosts[host].persistent && restart_after.is_some()) {
            self.excuse_lost_with(host);
        }
        let observers: BTreeSet<usize> = self
            .hosts
            .iter()
            .filter(|h| h.index != host && h.is_up() && self.views.sees_up(h.index, host))
            .map(|h| h.index)
            .collect();
        self.detections.on_observer_stop(host, self.now);
        let record = self.detections.on_stop(host, self.now, graceful, observers);
        if self.net.is_partitioned() {
            self.detections.abandon(host);
        }
        self.schedule(self.now + self.detect_bound, WorldEvent::DetectionDeadline { record });
        self.up_hosts -= 1;
        self.dissemination.write().on_host_down(host, self.now, self.up_hosts);
        self.views.reset(host);
        self.hosts[host].stop(restart_after.is_none());
        let what = if graceful { "leaves" } else { "crashes" };
        let note = match restart_after {
            Some(d) => format!("n{host} {what}; back in {:.3}s", d.as_secs_f64()),
            None => format!("n{host} {what} for good"),
        };
        self.note_fault(host, note);
        if let Some(d) = restart_after {
            self.schedule(self.now + d, WorldEvent::Restart { host });
        }
    }

    /// Excuses the acknowledged writes that only `host` held.
    fn excuse_lost_with(&mut self, host: usize) {
        let others: Vec<Arc<Store>> =
            self.hosts.iter().filter(|h| h.index != host).filter_map(|h| h.store().cloned()).collect();
        let flushed_elsewhere = others.iter().map(|s| s.flushed()).max().unwrap_or(Timestamp::ZERO);
        self.history.excuse_lost_flushes(self.now, host, flushed_elsewhere);
        self.history.excuse_lost(self.now, host, |key| others.iter().filter_map(|s| s.version(key)).max());
    }

    fn apply_fault(&mut self, action: FaultAction) {
        match action {
            FaultAction::Crash { host, restart_after } => self.stop_host(host, false, restart_after),
            FaultAction::Leave { host, restart_after } => self.stop_host(host, true, restart_after),
            FaultAction::Join { host } => {
                if self.hosts[host].status == HostStatus::NotStarted {
                    self.note_fault(host, format!("n{host} joins late"));
                    self.start_host(host);
                }
            }
            FaultAction::Partition { partition, length, crash_isolated } => {
                self.partition_generation += 1;
                let sizes = partition.sizes();
                if let Some((after, down)) = crash_isolated
                    && let Some(host) = partition.alone()
                {
                    let crash = FaultAction::Crash { host, restart_after: Some(down) };
                    self.schedule(self.now + after, WorldEvent::Fault(crash));
                }
                let kind = if partition.is_one_way() { "one-way partition" } else { "partition" };
                self.net.set_partition(partition);
                self.detections.abandon_all();
                self.note_fault(0, format!("{kind} {sizes:?} for {:.3}s", length.as_secs_f64()));
                self.schedule(self.now + length, WorldEvent::HealPartition { generation: self.partition_generation });
            }
            FaultAction::ClockStep { host, delta_ms } => {
                self.hosts[host].clock.step(delta_ms);
                self.note_fault(host, format!("n{host} clock steps {delta_ms:+} ms"));
            }
        }
    }

    fn note_fault(&mut self, host: usize, note: String) {
        if self.fault_log.len() < FAULT_LOG_MAX {
            self.fault_log.push((self.now, host, note.clone()));
        }
        self.trace.record(self.now, TraceKind::Fault, host, host, note.as_bytes(), Some(note.clone()));
    }
}

/// The detection bound the SWIM timings promise, with room for bad luck:
/// someone probes the failed member within a few periods (members are
/// probed round-robin), the probe and its indirect probes time out, the
/// suspicion expires, and the Down update spreads by periodic gossip in
/// O(log n) rounds.
pub fn default_detect_bound(config: &NodeConfig, hosts: usize) -> Duration {
    let swim = &config.swim;
    let rounds = (usize::BITS - hosts.max(1).leading_zeros()) + 5;
    swim.probe_interval * 8 + swim.probe_timeout + swim.suspect_timeout + swim.gossip_interval * (3 * rounds)
}
