//! Each checker can fail: a deliberately broken core (`--bug NAME`) makes
//! the matching checker report a violation, where the healthy core passes
//! the same run.

use std::time::Duration;

use rumor_sim::check::{bounds, convergence, lost_writes, resurrection};
use rumor_sim::{FaultSet, Outcome, SimOptions};

fn run(bug: Option<&str>, nodes: usize, faults: &str) -> Outcome {
    run_seed(3, Duration::from_secs(15), bug, nodes, faults)
}

fn run_seed(seed: u64, duration: Duration, bug: Option<&str>, nodes: usize, faults: &str) -> Outcome {
    let opts = SimOptions {
        seed,
        nodes,
        duration,
        faults: FaultSet::parse(faults).expect("valid fault list"),
        bug: bug.map(str::to_owned),
        ..SimOptions::default()
    };
    rumor_sim::run(&opts).expect("valid options")
}

fn assert_caught(bug: &str, nodes: usize, faults: &str, checker: &str) {
    let healthy = run(None, nodes, faults);
    assert!(healthy.passed(), "the healthy core must pass first:\n{}", healthy.report);
    let broken = run(Some(bug), nodes, faults);
    assert!(broken.violated(checker), "--bug {bug}: expected a {checker} violation, got:\n{}", broken.report);
    assert!(broken.report.contains("replay: rumor-sim --seed 3"), "{}", broken.report);
}

#[test]
fn merge_keeping_the_smaller_version_breaks_convergence() {
    assert_caught("merge-keeps-smaller", 16, "none", convergence::NAME);
}

#[test]
fn no_push_breaks_the_first_copy_bound() {
    assert_caught("no-push", 16, "none", bounds::NAME);
}

#[test]
fn no_anti_entropy_breaks_convergence_under_loss() {
    assert_caught("no-anti-entropy", 16, "loss", convergence::NAME);
}

#[test]
fn dropping_tombstones_early_resurrects_deleted_keys() {
    assert_caught("drop-tombstones-early", 16, "loss", resurrection::NAME);
}

/// A flush that drops what a node holds but does not keep older entries
/// out: across a partition, a side that missed the FLUSHALL brings the
/// flushed values back, over newer writes a node had shown.
#[test]
fn a_flush_that_is_not_kept_brings_flushed_writes_back() {
    let (seed, duration, faults) = (3, Duration::from_secs(15), "partition");
    let healthy = run_seed(seed, duration, None, 16, faults);
    assert!(healthy.passed(), "the healthy core must pass first:\n{}", healthy.report);
    assert!(healthy.report.contains("FLUSHALL +OK"), "the workload flushed:\n{}", healthy.report);
    let broken = run_seed(seed, duration, Some("flush-not-kept"), 16, faults);
    assert!(
        broken.violated(lost_writes::NAME) || broken.violated(convergence::NAME),
        "expected a lost write or a divergence, got:\n{}",
        broken.report
    );
}

/// A data dir that is never written: a host cut off alone takes writes,
/// crashes and restarts before the heal, and comes back without them. The
/// seed is one whose plan has that (and data dirs on every host).
#[test]
fn a_data_dir_that_is_not_written_loses_acknowledged_writes() {
    let (seed, duration, faults) = (6, Duration::from_secs(30), "crash,partition");
    let healthy = run_seed(seed, duration, None, 16, faults);
    assert!(healthy.passed(), "the healthy core must pass first:\n{}", healthy.report);
    assert!(healthy.report.contains("16 of 16 hosts keep their state across crashes"), "{}", healthy.report);
    let broken = run_seed(seed, duration, Some("no-change-log"), 16, faults);
    assert!(broken.violated(lost_writes::NAME), "expected a lost write, got:\n{}", broken.report);
}

/// The old garbage-collection rule: tombstones forgotten after the TTL
/// alone, and a node isolated longer than the TTL discards its whole store
/// when it rejoins. The seed is one whose plan holds a partition for more
/// than twice the (5 s) tombstone TTL and whose workload makes the broken
/// rule show as a resurrection (which seeds do depends on the workload's
/// mix of commands).
#[test]
fn ttl_only_garbage_collection_loses_writes_across_a_long_partition() {
    let (seed, duration, faults) = (35, Duration::from_secs(30), "crash,partition");
    let healthy = run_seed(seed, duration, None, 16, faults);
    assert!(healthy.passed(), "the healthy core must pass first:\n{}", healthy.report);
    assert!(healthy.report.contains("1 held for 2 to 4 tombstone TTLs"), "{}", healthy.report);
    let broken = run_seed(seed, duration, Some("ttl-only-gc"), 16, faults);
    assert!(
        broken.violated(lost_writes::NAME) || broken.violated(resurrection::NAME),
        "expected a lost write or a resurrection, got:\n{}",
        broken.report
    );
}
