//! Slows password guessing: after a few failed AUTHs from one address,
//! every further AUTH from it waits before its answer, twice as long after
//! each new failure up to a cap. The wait is the connection's own (an
//! async sleep in its task): other clients and the node go on. Addresses
//! are forgotten after a quiet while, and at most a bounded number are
//! remembered.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::Mutex;

/// How AUTH failures are slowed down (`[auth]` in the config file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthThrottleLimits {
    /// Failures from one address answered without delay.
    pub failures_before_delay: u32,
    /// The first delay, doubled after each further failure.
    pub delay: Duration,
    /// The longest delay.
    pub delay_max: Duration,
    /// An address with no failure for this long starts over.
    pub forget_after: Duration,
    /// Addresses remembered at once; past it the quietest is forgotten.
    pub addresses_max: usize,
}

impl Default for AuthThrottleLimits {
    fn default() -> Self {
        AuthThrottleLimits {
            failures_before_delay: 5,
            delay: Duration::from_millis(100),
            delay_max: Duration::from_secs(2),
            forget_after: Duration::from_secs(60),
            addresses_max: 10_000,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    last_failure_ms: u64,
}

/// Failed AUTHs per client address.
#[derive(Debug)]
pub(crate) struct AuthThrottle {
    limits: AuthThrottleLimits,
    by_address: Mutex<HashMap<IpAddr, Record>>,
}

impl AuthThrottle {
    /// A throttle with `limits`.
    pub(crate) fn new(limits: AuthThrottleLimits) -> Self {
        AuthThrottle { limits, by_address: Mutex::new(HashMap::new()) }
    }

    /// How long an AUTH from `address` waits before it is answered.
    pub(crate) fn delay(&self, address: IpAddr, now_ms: u64) -> Duration {
        let by_address = self.by_address.lock();
        let Some(record) = by_address.get(&address) else { return Duration::ZERO };
        if self.forgotten(record, now_ms) {
            return Duration::ZERO;
        }
        let Some(excess) = record.failures.checked_sub(self.limits.failures_before_delay) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(excess.min(31)).unwrap_or(u32::MAX);
        self.limits.delay.saturating_mul(factor).min(self.limits.delay_max)
    }

    /// Counts a failed AUTH from `address`.
    pub(crate) fn failed(&self, address: IpAddr, now_ms: u64) {
        let mut by_address = self.by_address.lock();
        if !by_address.contains_key(&address) && by_address.len() >= self.limits.addresses_max {
            by_address.retain(|_, record| !self.forgotten(record, now_ms));
            if by_address.len() >= self.limits.addresses_max
                && let Some(quietest) = by_address.iter().min_by_key(|(_, r)| r.last_failure_ms).map(|(a, _)| *a)
            {
                by_address.remove(&quietest);
            }
        }
        let record = by_address.entry(address).or_insert(Record { failures: 0, last_failure_ms: now_ms });
        if self.forgotten(record, now_ms) {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure_ms = now_ms;
    }

    fn forgotten(&self, record: &Record, now_ms: u64) -> bool {
        now_ms.saturating_sub(record.last_failure_ms) > self.limits.forget_after.as_millis() as u64
    }

    /// Addresses remembered now.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.by_address.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> AuthThrottleLimits {
        AuthThrottleLimits {
            failures_before_delay: 2,
            delay: Duration::from_millis(100),
            delay_max: Duration::from_millis(350),
            forget_after: Duration::from_secs(10),
            addresses_max: 3,
        }
    }

    #[test]
    fn delays_grow_after_the_free_failures_up_to_the_cap() {
        let throttle = AuthThrottle::new(limits());
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(throttle.delay(a, 1000).as_millis());
            throttle.failed(a, 1000);
        }
        seen.push(throttle.delay(a, 1000).as_millis());
        assert_eq!(seen, [0, 0, 100, 200, 350, 350]);
        assert_eq!(throttle.delay(b, 1000), Duration::ZERO, "other addresses are not slowed");
        // A quiet while later the address starts over.
        assert_eq!(throttle.delay(a, 1000 + 10_001), Duration::ZERO);
        throttle.failed(a, 1000 + 10_001);
        throttle.failed(a, 1000 + 10_001);
        assert_eq!(throttle.delay(a, 1000 + 10_001), Duration::from_millis(100));
    }

    #[test]
    fn remembered_addresses_are_bounded() {
        let throttle = AuthThrottle::new(limits());
        for i in 0..10u8 {
            throttle.failed([10, 0, 0, i].into(), u64::from(i));
            assert!(throttle.remembered() <= 3);
        }
        // The most recent ones are kept: 10.0.0.9's first failure counts.
        throttle.failed([10, 0, 0, 9].into(), 20);
        throttle.failed([10, 0, 0, 9].into(), 20);
        assert_eq!(throttle.delay([10, 0, 0, 9].into(), 20), Duration::from_millis(200));
        assert_eq!(throttle.delay([10, 0, 0, 0].into(), 20), Duration::ZERO, "the quietest was forgotten");
    }
}
