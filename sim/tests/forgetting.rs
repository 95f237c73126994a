//! Forgetting dead entries under the garbage-collection horizon, as the
//! checkers judge it: a tombstone forgotten everywhere is neither a lost
//! write nor a disagreement, and a quiet mesh ends up holding the same
//! dead entries everywhere (or none).

use std::time::Duration;

use rumor_sim::{FaultSet, Outcome, SimOptions};

fn run(seed: u64, nodes: usize, faults: &str) -> Outcome {
    let opts = SimOptions {
        seed,
        nodes,
        duration: Duration::from_secs(60),
        faults: FaultSet::parse(faults).expect("valid fault list"),
        ..SimOptions::default()
    };
    rumor_sim::run(&opts).expect("valid options")
}

/// A small mesh matches every peer often enough that the horizon passes
/// its tombstones within the run; this seed also holds one partition for
/// more than twice the TTL.
#[test]
fn tombstones_forgotten_after_a_long_partition_are_no_violation() {
    let outcome = run(4, 4, "partition");
    assert!(outcome.passed(), "{}", outcome.report);
    assert!(outcome.report.contains("1 held for 2 to 4 tombstone TTLs"), "{}", outcome.report);
    assert!(outcome.measurements.tombstones_forgotten > 0, "{}", outcome.report);
}

/// Once one member has forgotten a tombstone, a member that still holds it
/// may not have matched that one since it came to hold it; if nothing
/// brought the tombstone back, it would never match it there again, its
/// horizon would stay put and the stores would never converge, even with no
/// faults at all (as before a forgotten tombstone offered again was taken
/// back).
#[test]
fn a_quiet_mesh_forgets_the_same_tombstones_everywhere() {
    for seed in [1, 2, 5] {
        let outcome = run(seed, 4, "none");
        assert!(outcome.measurements.tombstones_forgotten > 0, "{}", outcome.report);
        assert!(outcome.passed(), "seed {seed}:\n{}", outcome.report);
    }
}
