//! The hybrid logical clock (Kulkarni et al. 2014), shared by connection
//! tasks and the core without a lock.
//!
//! Wall time always comes in as an argument. The rule for remote readings
//! follows CockroachDB's max-offset: a remote timestamp whose physical part
//! is more than `max_drift_ms` ahead of our wall clock is *not* allowed to
//! move the clock (it would drag every later local write into the future);
//! the caller counts and logs it. The entry carrying it is still merged — the
//! data is valid, only the clock refuses to follow it.

use std::sync::atomic::{AtomicU64, Ordering};

use super::version::Timestamp;

/// A lock-free HLC: the last timestamp issued or observed, packed in one atomic.
#[derive(Debug)]
pub struct Hlc {
    last: AtomicU64,
    max_drift_ms: u64,
}

/// A remote timestamp too far ahead of the local wall clock to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriftExceeded {
    /// How far ahead of our wall clock the remote reading was.
    pub ahead_ms: u64,
}

impl Hlc {
    /// A clock that follows remote readings up to `max_drift_ms` ahead.
    pub fn new(max_drift_ms: u64) -> Self {
        Hlc { last: AtomicU64::new(0), max_drift_ms }
    }

    /// A fresh timestamp for a local event: greater than every timestamp
    /// this clock issued or accepted, and not behind `wall_ms`; `None` once
    /// the clock has reached the last timestamp (nothing greater is left,
    /// and a timestamp that is not greater must never be issued).
    pub fn tick(&self, wall_ms: u64) -> Option<Timestamp> {
        let floor = Timestamp::from_physical_ms(wall_ms).packed();
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = floor.max(last.checked_add(1)?);
            match self.last.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(Timestamp::from_packed(next)),
                Err(seen) => last = seen,
            }
        }
    }

    /// Lets a remote reading move the clock forward, unless it is further
    /// ahead of `wall_ms` than the drift bound allows.
    pub fn observe(&self, remote: Timestamp, wall_ms: u64) -> Result<(), DriftExceeded> {
        let ahead_ms = remote.physical_ms().saturating_sub(wall_ms);
        if ahead_ms > self.max_drift_ms {
            return Err(DriftExceeded { ahead_ms });
        }
        self.last.fetch_max(remote.packed(), Ordering::AcqRel);
        Ok(())
    }

    /// Moves the clock to at least `floor`, with no drift check: for a
    /// reading this node itself made durable before a restart.
    pub fn raise_to(&self, floor: Timestamp) {
        self.last.fetch_max(floor.packed(), Ordering::AcqRel);
    }

    /// The last timestamp issued or accepted (for INFO and tests).
    pub fn last(&self) -> Timestamp {
        Timestamp::from_packed(self.last.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_strictly_increasing_when_wall_clock_stalls_or_steps_back() {
        let hlc = Hlc::new(500);
        let a = hlc.tick(1_000).unwrap();
        let b = hlc.tick(1_000).unwrap();
        let c = hlc.tick(900).unwrap();
        assert!(a < b && b < c);
        assert_eq!(a.physical_ms(), 1_000);
    }

    #[test]
    fn tick_follows_wall_clock_forward() {
        let hlc = Hlc::new(500);
        hlc.tick(1_000);
        assert_eq!(hlc.tick(2_000), Some(Timestamp::from_physical_ms(2_000)));
    }

    #[test]
    fn observed_remote_within_drift_pushes_later_ticks_past_it() {
        let hlc = Hlc::new(500);
        let remote = Timestamp::from_physical_ms(1_400);
        assert_eq!(hlc.observe(remote, 1_000), Ok(()));
        assert!(hlc.tick(1_000).unwrap() > remote);
    }

    #[test]
    fn remote_beyond_drift_is_rejected_and_leaves_clock_unchanged() {
        let hlc = Hlc::new(500);
        hlc.tick(1_000);
        let before = hlc.last();
        let remote = Timestamp::from_physical_ms(10_000);
        assert_eq!(hlc.observe(remote, 1_000), Err(DriftExceeded { ahead_ms: 9_000 }));
        assert_eq!(hlc.last(), before);
        assert!(hlc.tick(1_000).unwrap() < remote);
    }

    #[test]
    fn an_exhausted_clock_issues_nothing_rather_than_a_repeat() {
        let hlc = Hlc::new(u64::MAX);
        assert_eq!(hlc.observe(Timestamp::from_packed(u64::MAX), u64::MAX >> 16), Ok(()));
        assert_eq!(hlc.tick(1_000), None);
        assert_eq!(hlc.last(), Timestamp::from_packed(u64::MAX));
    }
}
