//! The simulated network between hosts: per-link latency, loss,
//! duplication, reordering (latency jitter), delay spikes, and partitions
//! (symmetric and one-way), with the traffic counters the bounds report.
//!
//! Datagrams may be lost, duplicated and reordered. Stream frames model a
//! TCP connection: reliable and in order per link while the link is up, and
//! dropped while it is cut (the connection would fail). The network only
//! decides *when* (and whether) bytes arrive; the world re-delivers the
//! exact bytes the sending node produced, so the real wire format is what
//! crosses it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rumor::core::io::Transport;
use rumor::core::tag::is_swim;

use crate::seed::{self, SimRng, chance, uniform};

/// How bad links are while faults are on. [`LinkFaults::NONE`] is a clean
/// LAN: only each link's base latency.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkFaults {
    /// Mean probability that a datagram is lost (per link it varies ±50%).
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub dup: f64,
    /// Extra latency drawn uniformly per datagram from `[0, jitter_max)`;
    /// larger than the gap between packets, it reorders them.
    pub jitter_max: Duration,
    /// Probability that a packet or frame meets a latency spike.
    pub spike_prob: f64,
    /// Mean of a spike's (exponential) extra latency.
    pub spike_mean: Duration,
    /// Fraction of links that are persistently slow.
    pub slow_fraction: f64,
    /// Largest extra latency of a slow link.
    pub slow_extra_max: Duration,
}

impl LinkFaults {
    /// No faults.
    pub const NONE: LinkFaults = LinkFaults {
        loss: 0.0,
        dup: 0.0,
        jitter_max: Duration::ZERO,
        spike_prob: 0.0,
        spike_mean: Duration::ZERO,
        slow_fraction: 0.0,
        slow_extra_max: Duration::ZERO,
    };
}

/// A cut of the network into groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Each host's group.
    groups: Vec<u8>,
    /// When set, only traffic from group 0 to other groups is cut: the
    /// other direction still flows (a one-way partition).
    one_way: bool,
}

impl Partition {
    /// A partition that puts host `i` in group `groups[i]`.
    pub fn new(groups: Vec<u8>, one_way: bool) -> Self {
        Partition { groups, one_way }
    }

    /// Whether traffic from `from` to `to` is cut.
    pub fn blocks(&self, from: usize, to: usize) -> bool {
        let group = |i: usize| self.groups.get(i).copied().unwrap_or(0);
        let (a, b) = (group(from), group(to));
        a != b && (!self.one_way || a == 0)
    }

    /// Hosts per group, for the report.
    pub fn sizes(&self) -> BTreeMap<u8, usize> {
        let mut sizes = BTreeMap::new();
        for g in &self.groups {
            *sizes.entry(*g).or_insert(0) += 1;
        }
        sizes
    }

    /// The host on a side of its own, if exactly one side holds one host.
    pub fn alone(&self) -> Option<usize> {
        let sizes = self.sizes();
        let group = sizes.iter().find(|(_, n)| **n == 1).map(|(g, _)| *g)?;
        (sizes.values().filter(|n| **n == 1).count() == 1).then(|| self.groups.iter().position(|g| *g == group))?
    }

    /// Whether only one direction is cut.
    pub fn is_one_way(&self) -> bool {
        self.one_way
    }
}

/// What becomes of one transmission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Delivered at `at`, and a duplicate at `duplicate` if set.
    Deliver {
        /// Arrival time.
        at: Duration,
        /// Arrival time of a duplicate.
        duplicate: Option<Duration>,
    },
    /// Lost on the way (datagrams only).
    Lost,
    /// The link is cut.
    Partitioned,
}

/// One host's traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostTraffic {
    /// Datagrams and frames sent.
    pub packets_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Of those, SWIM datagrams.
    pub swim_packets_out: u64,
    /// Of those, SWIM bytes.
    pub swim_bytes_out: u64,
    /// Of those, stream frames.
    pub frames_out: u64,
    /// Datagrams and frames delivered to this host.
    pub packets_in: u64,
    /// Bytes delivered to this host.
    pub bytes_in: u64,
}

/// Counters over the whole network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Per host, by index.
    pub hosts: Vec<HostTraffic>,
    /// Datagrams lost to link loss.
    pub lost: u64,
    /// Transmissions dropped by a partition.
    pub partitioned: u64,
    /// Datagrams delivered twice.
    pub duplicated: u64,
    /// Arrivals at a host that was down.
    pub to_down_host: u64,
    /// Transmissions to an address no host has.
    pub unroutable: u64,
}

/// The network.
#[derive(Debug)]
pub struct Network {
    link_seed: u64,
    faults: LinkFaults,
    partition: Option<Arc<Partition>>,
    loss_rng: SimRng,
    dup_rng: SimRng,
    jitter_rng: SimRng,
    spike_rng: SimRng,
    /// Last arrival per (from, to) stream, to keep frames in order.
    stream_tail: BTreeMap<(u32, u32), Duration>,
    /// The counters.
    pub stats: NetStats,
}

/// Shortest base latency of a link, and so the shortest time any packet
/// takes: every other part of a latency only adds to it. The world's
/// lookahead rests on this.
pub const BASE_LATENCY_MIN: Duration = Duration::from_micros(100);
/// Spread of base latencies above the minimum, µs (a datacenter LAN).
const BASE_LATENCY_SPREAD_US: u64 = 900;
/// Serialization delay per byte (1 Gbit/s).
const NANOS_PER_BYTE: u64 = 8;
/// Longest latency spike.
const SPIKE_MAX: Duration = Duration::from_secs(2);
/// Most a datagram loss probability is allowed to reach on one link.
const LOSS_MAX: f64 = 0.9;

impl Network {
    /// A clean network among `hosts` hosts.
    pub fn new(seed: u64, hosts: usize) -> Self {
        Network {
            link_seed: seed::derive(seed, "net.links", 0),
            faults: LinkFaults::NONE,
            partition: None,
            loss_rng: seed::rng(seed, "net.loss", 0),
            dup_rng: seed::rng(seed, "net.dup", 0),
            jitter_rng: seed::rng(seed, "net.jitter", 0),
            spike_rng: seed::rng(seed, "net.spike", 0),
            stream_tail: BTreeMap::new(),
            stats: NetStats { hosts: vec![HostTraffic::default(); hosts], ..NetStats::default() },
        }
    }

    /// Sets how bad links are from now on.
    pub fn set_faults(&mut self, faults: LinkFaults) {
        self.faults = faults;
    }

    /// The current link faults.
    pub fn faults(&self) -> LinkFaults {
        self.faults
    }

    /// Cuts the network (replacing any earlier cut).
    pub fn set_partition(&mut self, partition: Partition) {
        self.partition = Some(Arc::new(partition));
    }

    /// Heals any cut.
    pub fn heal_partition(&mut self) {
        self.partition = None;
    }

    /// The current cut, to read while the network itself is busy (steps
    /// on other threads).
    pub fn cut(&self) -> Option<Arc<Partition>> {
        self.partition.clone()
    }

    /// Whether the network is cut now.
    pub fn is_partitioned(&self) -> bool {
        self.partition.is_some()
    }

    /// Whether traffic from `from` to `to` is cut now.
    pub fn blocks(&self, from: usize, to: usize) -> bool {
        self.partition.as_ref().is_some_and(|p| p.blocks(from, to))
    }

    /// Decides the fate of `len` bytes sent from `from` to `to` at `now`,
    /// and counts them as sent.
    pub fn route(&mut self, now: Duration, from: usize, to: usize, transport: Transport, payload: &[u8]) -> Fate {
        self.count_sent(from, transport, payload);
        if self.blocks(from, to) {
            self.stats.partitioned += 1;
            return Fate::Partitioned;
        }
        let len = payload.len();
        match transport {
            Transport::Datagram => {
                if self.faults.loss > 0.0 {
                    let p = (self.faults.loss * self.link_factor(from, to, "loss")).min(LOSS_MAX);
                    if chance(&mut self.loss_rng, p) {
                        self.stats.lost += 1;
                        return Fate::Lost;
                    }
                }
                let at = now + self.latency(from, to, len, true);
                let duplicate = if self.faults.dup > 0.0 && chance(&mut self.dup_rng, self.faults.dup) {
                    self.stats.duplicated += 1;
                    Some(now + self.latency(from, to, len, true))
                } else {
                    None
                };
                Fate::Deliver { at, duplicate }
            }
            Transport::Stream => {
                let earliest = now + self.latency(from, to, len, false);
                let key = (index_u32(from), index_u32(to));
                let at = match self.stream_tail.get(&key) {
                    Some(tail) if *tail >= earliest => *tail + Duration::from_nanos(1),
                    _ => earliest,
                };
                self.stream_tail.insert(key, at);
                Fate::Deliver { at, duplicate: None }
            }
        }
    }

    /// Counts an arrival at `to`.
    pub fn count_delivered(&mut self, to: usize, len: usize) {
        if let Some(host) = self.stats.hosts.get_mut(to) {
            host.packets_in += 1;
            host.bytes_in += len as u64;
        }
    }

    fn count_sent(&mut self, from: usize, transport: Transport, payload: &[u8]) {
        let Some(host) = self.stats.hosts.get_mut(from) else {
            return;
        };
        let len = payload.len() as u64;
        host.packets_out += 1;
        host.bytes_out += len;
        match transport {
            Transport::Stream => host.frames_out += 1,
            Transport::Datagram if is_swim(payload) => {
                host.swim_packets_out += 1;
                host.swim_bytes_out += len;
            }
            Transport::Datagram => {}
        }
    }

    /// Base latency, plus a slow link's extra, jitter (datagrams only) and
    /// spikes, plus serialization.
    fn latency(&mut self, from: usize, to: usize, len: usize, datagram: bool) -> Duration {
        let pair = link_key(from, to);
        let spread = seed::derive(self.link_seed, "base", pair) % (BASE_LATENCY_SPREAD_US + 1);
        let mut latency = BASE_LATENCY_MIN + Duration::from_micros(spread);
        latency += Duration::from_nanos(NANOS_PER_BYTE * len as u64);
        let f = self.faults;
        if f.slow_fraction > 0.0 {
            let draw = unit_from_hash(seed::derive(self.link_seed, "slow", pair));
            if draw < f.slow_fraction {
                // Where in the slow range this link sits, from a second hash.
                let where_ = unit_from_hash(seed::derive(self.link_seed, "slow-extra", pair));
                latency += f.slow_extra_max.mul_f64(where_);
            }
        }
        if datagram && !f.jitter_max.is_zero() {
            latency += f.jitter_max.mul_f64(uniform(&mut self.jitter_rng, 0.0, 1.0));
        }
        if f.spike_prob > 0.0 && chance(&mut self.spike_rng, f.spike_prob) {
            let u = uniform(&mut self.spike_rng, 0.0, 1.0);
            let extra = f.spike_mean.mul_f64(-(1.0 - u).ln());
            latency += extra.min(SPIKE_MAX);
        }
        latency
    }

    /// A per-link factor in `[0.5, 1.5)` so links differ in quality.
    fn link_factor(&self, from: usize, to: usize, what: &str) -> f64 {
        0.5 + unit_from_hash(seed::derive(self.link_seed, what, link_key(from, to)))
    }
}

/// The same key for both directions of a link: links are symmetric in
/// latency and quality (partitions are what may be one-way).
fn link_key(a: usize, b: usize) -> u64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    ((lo as u64) << 32) | hi as u64
}

fn unit_from_hash(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::from_secs(1);

    fn deliver_at(fate: Fate) -> Duration {
        match fate {
            Fate::Deliver { at, .. } => at,
            other => panic!("expected delivery, got {other:?}"),
        }
    }

    #[test]
    fn clean_links_deliver_within_the_base_latency() {
        let mut net = Network::new(1, 4);
        for _ in 0..100 {
            let at = deliver_at(net.route(T0, 0, 1, Transport::Datagram, b"\x01ping"));
            assert!(at > T0 && at < T0 + Duration::from_millis(2));
        }
        assert_eq!(net.stats.hosts[0].packets_out, 100);
        assert_eq!(net.stats.hosts[0].swim_packets_out, 100);
    }

    #[test]
    fn loss_drops_about_the_configured_share() {
        let mut net = Network::new(1, 4);
        net.set_faults(LinkFaults { loss: 0.2, ..LinkFaults::NONE });
        let lost = (0..10_000).filter(|_| net.route(T0, 2, 3, Transport::Datagram, b"x") == Fate::Lost).count();
        assert!((500..3500).contains(&lost), "lost {lost}");
    }

    #[test]
    fn stream_frames_arrive_in_order_and_are_never_lost() {
        let mut net = Network::new(3, 2);
        net.set_faults(LinkFaults {
            loss: 0.5,
            spike_prob: 0.3,
            spike_mean: Duration::from_millis(50),
            ..LinkFaults::NONE
        });
        let mut last = Duration::ZERO;
        for i in 0..1000u64 {
            let at = deliver_at(net.route(T0 + Duration::from_micros(i), 0, 1, Transport::Stream, b"\x02frame"));
            assert!(at > last);
            last = at;
        }
    }

    #[test]
    fn one_way_partitions_cut_one_direction() {
        let mut net = Network::new(1, 3);
        net.set_partition(Partition::new(vec![0, 1, 1], true));
        assert!(net.blocks(0, 1));
        assert!(!net.blocks(1, 0));
        assert!(!net.blocks(1, 2));
        assert_eq!(net.route(T0, 0, 2, Transport::Stream, b"x"), Fate::Partitioned);
        net.set_partition(Partition::new(vec![0, 1, 1], false));
        assert!(net.blocks(1, 0));
        net.heal_partition();
        assert!(!net.blocks(0, 1));
    }
}
