//! Each host's simulated wall clock: the simulation's time plus an offset
//! (skew), a rate error (drift, in parts per million) and occasional steps
//! (as NTP makes). Monotonic time is the simulation's time itself.
//!
//! rumor's versions are hybrid logical clock readings, so wall clocks that
//! disagree are part of the fault model: most skews stay within the
//! `max_clock_drift_ms` rule, some go beyond it to exercise that rule.

use std::time::Duration;

use rumor::core::io::Now;

use crate::seed::{SimRng, between, chance, uniform};

/// Wall-clock milliseconds at simulated time zero (November 2023).
pub const EPOCH_MS: u64 = 1_700_000_000_000;

/// Largest skew of a well-behaved clock, ms.
pub const SKEW_MS_MAX: i64 = 300;

/// Largest drift of a clock, ppm (a poor crystal).
pub const DRIFT_PPM_MAX: i64 = 200;

/// One host's wall clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeClock {
    offset_ms: i64,
    drift_ppm: i64,
}

impl NodeClock {
    /// A clock that agrees exactly with simulated time.
    pub fn exact() -> Self {
        NodeClock::default()
    }

    /// A skewed clock: usually within ±[`SKEW_MS_MAX`], one in eight beyond
    /// `max_clock_drift_ms` (up to four times it), with some drift.
    pub fn skewed(rng: &mut SimRng, max_clock_drift_ms: u64) -> Self {
        let drift_ms = i64::try_from(max_clock_drift_ms).unwrap_or(i64::MAX / 8);
        let magnitude = if chance(rng, 0.125) {
            let lo = drift_ms.saturating_add(50);
            let hi = drift_ms.saturating_mul(4).max(lo);
            uniform(rng, lo as f64, hi as f64) as i64
        } else {
            uniform(rng, 0.0, SKEW_MS_MAX as f64) as i64
        };
        let sign = if chance(rng, 0.5) { 1 } else { -1 };
        let drift_ppm = between(rng, 0, 2 * DRIFT_PPM_MAX as u64) as i64 - DRIFT_PPM_MAX;
        NodeClock { offset_ms: sign * magnitude, drift_ppm }
    }

    /// Wall-clock ms (Unix epoch) at simulated time `at`.
    pub fn wall_ms(&self, at: Duration) -> u64 {
        let elapsed_ms = i128::from(u64::try_from(at.as_millis()).unwrap_or(u64::MAX));
        let drift = elapsed_ms * i128::from(self.drift_ppm) / 1_000_000;
        let wall = i128::from(EPOCH_MS) + elapsed_ms + i128::from(self.offset_ms) + drift;
        u64::try_from(wall.max(0)).unwrap_or(u64::MAX)
    }

    /// Both readings, as the core takes them.
    pub fn now(&self, at: Duration) -> Now {
        Now { mono: at, wall_ms: self.wall_ms(at) }
    }

    /// Steps the clock by `delta_ms` (negative steps go back in time).
    pub fn step(&mut self, delta_ms: i64) {
        self.offset_ms = self.offset_ms.saturating_add(delta_ms);
    }

    /// The clock's current offset from simulated time, ms (drift excluded).
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::rng;

    #[test]
    fn exact_clock_follows_simulated_time() {
        let clock = NodeClock::exact();
        assert_eq!(clock.wall_ms(Duration::ZERO), EPOCH_MS);
        assert_eq!(clock.wall_ms(Duration::from_millis(1234)), EPOCH_MS + 1234);
    }

    #[test]
    fn skew_drift_and_steps_move_the_reading() {
        let mut clock = NodeClock { offset_ms: -100, drift_ppm: 100 };
        // 1000 s at +100 ppm gains 100 ms, cancelling the offset.
        assert_eq!(clock.wall_ms(Duration::from_secs(1000)), EPOCH_MS + 1_000_000);
        clock.step(-50);
        assert_eq!(clock.wall_ms(Duration::from_secs(1000)), EPOCH_MS + 999_950);
    }

    #[test]
    fn some_skews_exceed_the_drift_bound() {
        let mut r = rng(1, "clock", 0);
        let clocks: Vec<NodeClock> = (0..400).map(|_| NodeClock::skewed(&mut r, 500)).collect();
        assert!(clocks.iter().any(|c| c.offset_ms().abs() > 500));
        assert!(clocks.iter().all(|c| c.offset_ms().abs() <= 2000));
        assert!(clocks.iter().filter(|c| c.offset_ms().abs() <= 300).count() > 300);
    }
}
