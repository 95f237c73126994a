//! Deliberate bugs, for showing that the simulator's checkers can fail.
//!
//! Each flag breaks one rule the invariants depend on. Production code
//! never sets them: they are not reachable from the config file or the
//! command line, only from `rumor-sim --bug NAME` and tests.

/// Which rules to break. `Default` breaks none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sabotage {
    /// Merge keeps the *smaller* version: breaks convergence to the
    /// greatest acknowledged write.
    pub merge_keeps_smaller: bool,
    /// Local writes are not pushed and received ones are not forwarded:
    /// only repair (if any) spreads data.
    pub no_push: bool,
    /// Anti-entropy never runs: nodes that missed a push never catch up.
    pub no_anti_entropy: bool,
    /// Tombstones are dropped as soon as they are written or merged: a
    /// deleted key can come back from a node that missed the delete.
    pub drop_tombstones_early: bool,
    /// The store reports no change to its change log: a node with a data
    /// dir comes back from a crash with nothing it acknowledged.
    pub no_change_log: bool,
    /// The rule before the horizon: dead entries are forgotten after the
    /// tombstone TTL whoever lacks them, and a node back after an isolation
    /// longer than the TTL discards its whole store — acknowledged writes
    /// lost, deletes brought back by long partitions.
    pub ttl_only_gc: bool,
    /// A flush drops what the node holds but does not keep peers' older
    /// entries out afterwards: a node that missed the flush brings the
    /// flushed keys back through anti-entropy.
    pub flush_not_kept: bool,
}

impl Sabotage {
    /// The sabotage named `name` (as `rumor-sim --bug` takes it).
    pub fn named(name: &str) -> Option<Sabotage> {
        let mut s = Sabotage::default();
        match name {
            "merge-keeps-smaller" => s.merge_keeps_smaller = true,
            "no-push" => s.no_push = true,
            "no-anti-entropy" => s.no_anti_entropy = true,
            "drop-tombstones-early" => s.drop_tombstones_early = true,
            "no-change-log" => s.no_change_log = true,
            "ttl-only-gc" => s.ttl_only_gc = true,
            "flush-not-kept" => s.flush_not_kept = true,
            _ => return None,
        }
        Some(s)
    }

    /// Every name [`Sabotage::named`] accepts.
    pub const NAMES: [&'static str; 7] = [
        "merge-keeps-smaller",
        "no-push",
        "no-anti-entropy",
        "drop-tombstones-early",
        "no-change-log",
        "ttl-only-gc",
        "flush-not-kept",
    ];
}
