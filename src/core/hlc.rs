//! The hybrid logical clock (Kulkarni et al. 2014), shared by connection
//! tasks and the core without a lock.
//!
//! Wall time always comes in as an argument. The rule for remote readings
//! follows CockroachDB's max-offset: a remote timestamp whose physical part
//! is more than `max_drift_ms` ahead of our wall clock is *not* allowed to
//! move the clock (it would drag every later local write into the future);
//! the caller counts and logs it. The entry carrying it is still merged — the
//! data is valid, only the clock refuses to follow it.
//!
//! A clock may have a [`Ceiling`]: the last timestamp it may issue. A node
//! with a data dir sets it to the clock lease kept there, and raises it only
//! once a later lease is durable, so that no version it issued can be
//! issued again after a power loss and a restart with the wall clock
//! stepped back. Without one (memory only, the simulator) it is unlimited.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::version::Timestamp;

/// A lock-free HLC: the last timestamp issued or observed, packed in one atomic.
#[derive(Debug)]
pub struct Hlc {
    last: AtomicU64,
    ceiling: Ceiling,
    max_drift_ms: u64,
}

/// The last timestamp a clock may issue, shared between the clock and
/// whoever makes its leases durable (the storage thread). It only rises.
#[derive(Clone, Debug)]
pub struct Ceiling(Arc<AtomicU64>);

/// A remote timestamp too far ahead of the local wall clock to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriftExceeded {
    /// How far ahead of our wall clock the remote reading was.
    pub ahead_ms: u64,
}

/// Why [`Hlc::tick`] issued nothing. The clock is unchanged either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoTimestamp {
    /// The clock has reached the last timestamp of the 64-bit range:
    /// nothing greater is left, ever.
    Exhausted,
    /// Every timestamp up to the ceiling is issued (or the clock followed a
    /// peer past it): nothing more until the ceiling is raised.
    AtCeiling,
}

impl Hlc {
    /// A clock that follows remote readings up to `max_drift_ms` ahead, with
    /// no ceiling.
    pub fn new(max_drift_ms: u64) -> Self {
        Hlc { last: AtomicU64::new(0), ceiling: Ceiling(Arc::new(AtomicU64::new(u64::MAX))), max_drift_ms }
    }

    /// A fresh timestamp for a local event: greater than every timestamp
    /// this clock issued or accepted, not above the ceiling, and not behind
    /// `wall_ms` unless the ceiling is. A wall clock past the ceiling reads
    /// as the ceiling's millisecond: the clock plateaus there, its logical
    /// counter advancing, until the ceiling is raised. A timestamp that is
    /// not greater, or is past the ceiling, is never issued.
    pub fn tick(&self, wall_ms: u64) -> Result<Timestamp, NoTimestamp> {
        let ceiling = self.ceiling.0.load(Ordering::Acquire);
        let ceiling_ms = Timestamp::from_packed(ceiling).physical_ms();
        let floor = Timestamp::from_physical_ms(wall_ms.min(ceiling_ms)).packed();
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = floor.max(last.checked_add(1).ok_or(NoTimestamp::Exhausted)?);
            if next > ceiling {
                return Err(NoTimestamp::AtCeiling);
            }
            match self.last.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(Timestamp::from_packed(next)),
                Err(seen) => last = seen,
            }
        }
    }

    /// Lets a remote reading move the clock forward, unless it is further
    /// ahead of `wall_ms` than the drift bound allows. It may move the clock
    /// past the ceiling (a causal reading is not refused for it): ticks then
    /// fail until the ceiling is raised past it.
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

    /// From now on issues nothing past `ceiling` until the returned handle
    /// raises it. Meant to be called once, before the clock issues anything
    /// under the limit (a data dir's first durable lease); a later call
    /// replaces the ceiling, lower or not.
    pub fn limit_to(&self, ceiling: Timestamp) -> Ceiling {
        self.ceiling.0.store(ceiling.packed(), Ordering::Release);
        self.ceiling.clone()
    }

    /// The last timestamp the clock may issue ([`Timestamp`] `u64::MAX`:
    /// no ceiling).
    pub fn ceiling(&self) -> Timestamp {
        self.ceiling.at()
    }

    /// The last timestamp issued or accepted (for INFO and tests).
    pub fn last(&self) -> Timestamp {
        Timestamp::from_packed(self.last.load(Ordering::Acquire))
    }
}

impl Ceiling {
    /// Lets the clock issue timestamps up to `lease` (never lowers it).
    /// Call only once nothing can lose `lease` any more: it is durable.
    pub fn raise_to(&self, lease: Timestamp) {
        self.0.fetch_max(lease.packed(), Ordering::AcqRel);
    }

    /// The last timestamp the clock may issue.
    pub fn at(&self) -> Timestamp {
        Timestamp::from_packed(self.0.load(Ordering::Acquire))
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
        hlc.tick(1_000).unwrap();
        assert_eq!(hlc.tick(2_000), Ok(Timestamp::from_physical_ms(2_000)));
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
        hlc.tick(1_000).unwrap();
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
        assert_eq!(hlc.tick(1_000), Err(NoTimestamp::Exhausted));
        assert_eq!(hlc.last(), Timestamp::from_packed(u64::MAX));
    }

    #[test]
    fn a_clock_without_a_ceiling_is_unlimited() {
        let hlc = Hlc::new(500);
        assert_eq!(hlc.ceiling(), Timestamp::from_packed(u64::MAX));
        assert_eq!(hlc.tick(u64::MAX >> 16), Ok(Timestamp::from_physical_ms(u64::MAX >> 16)));
    }

    #[test]
    fn past_the_ceiling_the_clock_plateaus_on_its_millisecond_strictly_increasing() {
        let hlc = Hlc::new(500);
        hlc.limit_to(Timestamp::end_of_ms(5_000));
        assert_eq!(hlc.tick(1_000), Ok(Timestamp::from_physical_ms(1_000)), "below it, the wall clock rules");
        let mut previous = hlc.tick(3_600_000).unwrap();
        assert_eq!(previous, Timestamp::from_physical_ms(5_000), "a jump forward stops at the ceiling's ms");
        for _ in 1..=u16::MAX {
            let next = hlc.tick(3_600_000).unwrap();
            assert!(next > previous && next.physical_ms() == 5_000, "{next} after {previous}");
            previous = next;
        }
        assert_eq!(previous, Timestamp::end_of_ms(5_000), "every timestamp up to the ceiling is used");
    }

    #[test]
    fn a_clock_at_its_ceiling_issues_nothing_and_stays_there() {
        let hlc = Hlc::new(500);
        hlc.limit_to(Timestamp::end_of_ms(5_000));
        hlc.raise_to(Timestamp::end_of_ms(5_000));
        assert_eq!(hlc.tick(3_600_000), Err(NoTimestamp::AtCeiling));
        assert_eq!(hlc.tick(1_000), Err(NoTimestamp::AtCeiling), "nor with the wall clock behind it");
        assert_eq!(hlc.last(), Timestamp::end_of_ms(5_000));
    }

    #[test]
    fn raising_the_ceiling_lets_the_clock_follow_the_wall_clock_again() {
        let hlc = Hlc::new(500);
        let ceiling = hlc.limit_to(Timestamp::end_of_ms(5_000));
        let plateau = hlc.tick(3_600_000).unwrap();
        ceiling.raise_to(Timestamp::end_of_ms(3_605_000));
        let resumed = hlc.tick(3_600_000).unwrap();
        assert!(resumed > plateau);
        assert_eq!(resumed, Timestamp::from_physical_ms(3_600_000));
        ceiling.raise_to(Timestamp::end_of_ms(10));
        assert_eq!(hlc.ceiling(), Timestamp::end_of_ms(3_605_000), "a handle never lowers it");
    }

    #[test]
    fn a_peer_reading_past_the_ceiling_stops_ticks_until_it_is_raised() {
        let hlc = Hlc::new(500);
        let ceiling = hlc.limit_to(Timestamp::end_of_ms(1_000));
        let remote = Timestamp::from_physical_ms(1_400);
        assert_eq!(hlc.observe(remote, 1_000), Ok(()), "the clock still follows it");
        assert_eq!(hlc.tick(1_000), Err(NoTimestamp::AtCeiling));
        ceiling.raise_to(Timestamp::end_of_ms(6_400));
        assert!(hlc.tick(1_000).unwrap() > remote);
    }
}
