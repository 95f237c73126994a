//! Rate limits for strangers: addresses that are not current members may
//! only join (SWIM), and each source IP may do so a bounded number of times
//! a second, so the answers a node sends to addresses it cannot check — a
//! UDP source can be forged — are bounded per source and in memory.

use ::core::net::IpAddr; // an address value; the core opens no socket
use std::collections::BTreeMap;
use std::time::Duration;

/// How strangers are limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrangerLimits {
    /// Packets a second one source IP may send while not a member (also the
    /// burst it may send at once).
    pub packets_per_sec: u32,
    /// Source IPs tracked at once; when the table is full, a new source is
    /// refused until idle ones are dropped — memory stays bounded however
    /// many addresses a flood forges.
    pub sources_max: usize,
}

impl Default for StrangerLimits {
    fn default() -> Self {
        StrangerLimits { packets_per_sec: 20, sources_max: 4096 }
    }
}

/// A token bucket per source IP, refilled from the monotonic time the
/// driver hands in (the core reads no clock).
#[derive(Debug, Default)]
pub struct StrangerGate {
    limits: StrangerLimits,
    /// Tokens left and when they were last refilled, per source.
    buckets: BTreeMap<IpAddr, (f64, Duration)>,
}

impl StrangerGate {
    /// A gate with `limits`.
    pub fn new(limits: StrangerLimits) -> Self {
        StrangerGate { limits, buckets: BTreeMap::new() }
    }

    /// Whether a packet from stranger `ip` may be handled at `now`.
    pub fn admit(&mut self, ip: IpAddr, now: Duration) -> bool {
        let rate = f64::from(self.limits.packets_per_sec);
        if rate == 0.0 {
            return false;
        }
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.limits.sources_max {
            // Sources whose bucket has refilled are as good as new: forget them.
            self.buckets.retain(|_, (tokens, at)| *tokens + rate * now.saturating_sub(*at).as_secs_f64() < rate);
            if self.buckets.len() >= self.limits.sources_max {
                return false;
            }
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((rate, now));
        *tokens = (*tokens + rate * now.saturating_sub(*at).as_secs_f64()).min(rate);
        *at = now;
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        true
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate() {
        let mut gate = StrangerGate::new(StrangerLimits { packets_per_sec: 10, sources_max: 8 });
        let t = Duration::from_secs(5);
        assert_eq!((0..20).filter(|_| gate.admit(ip(1), t)).count(), 10, "the burst");
        assert!(!gate.admit(ip(1), t + Duration::from_millis(50)));
        assert!(gate.admit(ip(1), t + Duration::from_millis(100)), "one token a tenth of a second");
        assert!(gate.admit(ip(2), t), "other sources have their own bucket");
    }

    #[test]
    fn the_table_is_bounded_and_forgets_idle_sources() {
        let mut gate = StrangerGate::new(StrangerLimits { packets_per_sec: 10, sources_max: 4 });
        let t = Duration::from_secs(1);
        for last in 0..4 {
            assert!(gate.admit(ip(last), t));
        }
        assert!(!gate.admit(ip(9), t), "a full table refuses new sources");
        assert_eq!(gate.tracked(), 4);
        assert!(gate.admit(ip(9), t + Duration::from_secs(1)), "once the others are idle, they are forgotten");
        assert!(gate.tracked() <= 4);
        let mut closed = StrangerGate::new(StrangerLimits { packets_per_sec: 0, sources_max: 4 });
        assert!(!closed.admit(ip(1), t), "a rate of 0 admits no stranger");
    }
}
