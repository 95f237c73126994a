//! Progress of a node catching up through anti-entropy — a new or
//! restarted node bootstrapping from its peers, or one back from a long
//! partition — reported once a second while it lasts, so an operator sees
//! how far it is and how fast it goes rather than a silent node.

use std::time::Duration;

/// Fewer entries applied by sync in a second than this is ordinary repair,
/// not a catch-up worth a log line.
pub const CATCH_UP_MIN_ENTRIES_PER_TICK: u64 = 1_000;

/// What one tick has to say.
#[derive(Clone, Debug, PartialEq)]
pub enum CatchUpReport {
    /// Still catching up.
    Progress {
        /// Entries held now, as a percentage of what the last sending peer
        /// holds (at most 100).
        percent: u64,
        /// Entries held now.
        held: u64,
        /// Entries the last sending peer holds.
        peer_held: u64,
        /// Entries applied by sync per second since the last tick.
        per_second: u64,
    },
    /// The catch-up that was reported is over.
    Done {
        /// Entries sync applied during it.
        applied: u64,
        /// How long it lasted.
        took: Duration,
    },
}

/// Follows the sync counters from tick to tick.
#[derive(Debug, Default)]
pub struct CatchUp {
    last_applied: u64,
    /// Time and applied count when the current catch-up was first seen.
    started: Option<(Duration, u64)>,
    last_tick: Option<Duration>,
}

impl CatchUp {
    /// One tick at `now` (any monotonic origin): `applied` is the sync
    /// entries applied since start, `held` our entry count, `peer_held` the
    /// last sending peer's.
    pub fn tick(&mut self, now: Duration, applied: u64, held: u64, peer_held: u64) -> Option<CatchUpReport> {
        let delta = applied.saturating_sub(self.last_applied);
        let elapsed = self.last_tick.map_or(Duration::from_secs(1), |t| now.saturating_sub(t));
        self.last_tick = Some(now);
        let before = std::mem::replace(&mut self.last_applied, applied);
        if delta >= CATCH_UP_MIN_ENTRIES_PER_TICK {
            self.started.get_or_insert((now.saturating_sub(elapsed), before));
            let percent = held.saturating_mul(100).checked_div(peer_held).map_or(100, |p| p.min(100));
            let per_second = (delta as f64 / elapsed.as_secs_f64().max(0.001)) as u64;
            return Some(CatchUpReport::Progress { percent, held, peer_held, per_second });
        }
        let (since, applied_before) = self.started.take()?;
        Some(CatchUpReport::Done { applied: applied - applied_before, took: now.saturating_sub(since) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn ordinary_repair_says_nothing() {
        let mut c = CatchUp::default();
        assert_eq!(c.tick(secs(1), 10, 100, 100), None);
        assert_eq!(c.tick(secs(2), 900, 1_000, 1_000), None);
    }

    #[test]
    fn a_catch_up_reports_percent_and_rate_each_tick_then_its_end() {
        let mut c = CatchUp::default();
        assert_eq!(c.tick(secs(1), 0, 0, 0), None);
        assert_eq!(
            c.tick(secs(2), 250_000, 250_000, 1_000_000),
            Some(CatchUpReport::Progress { percent: 25, held: 250_000, peer_held: 1_000_000, per_second: 250_000 })
        );
        assert_eq!(
            c.tick(secs(4), 1_000_000, 1_000_000, 1_000_000),
            Some(CatchUpReport::Progress { percent: 100, held: 1_000_000, peer_held: 1_000_000, per_second: 375_000 })
        );
        assert_eq!(
            c.tick(secs(5), 1_000_000, 1_000_000, 1_000_000),
            Some(CatchUpReport::Done { applied: 1_000_000, took: secs(4) })
        );
        assert_eq!(c.tick(secs(6), 1_000_000, 1_000_000, 1_000_000), None);
    }

    #[test]
    fn a_peer_holding_less_than_us_reads_as_complete() {
        let mut c = CatchUp::default();
        let report = c.tick(secs(1), 5_000, 9_000, 6_000);
        assert!(matches!(report, Some(CatchUpReport::Progress { percent: 100, .. })), "{report:?}");
    }
}
