//! Short seed sweeps, as CI runs them. The long sweep for developers:
//!
//! ```text
//! cargo run --release -p rumor-sim -- --seeds 1..500 --nodes 64 --duration 60s --faults all
//! ```

use std::time::Duration;

use rumor_sim::{FaultSet, Outcome, SimOptions};

fn sweep(base: &SimOptions, seeds: std::ops::Range<u64>) -> Vec<Outcome> {
    seeds.map(|seed| rumor_sim::run(&SimOptions { seed, ..base.clone() }).expect("valid options")).collect()
}

fn assert_all_pass(outcomes: &[Outcome]) {
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| format!("{}\n{}\nreplay: {}", o.summary_line(), o.report, o.options.replay_command()))
        .collect();
    assert!(failed.is_empty(), "{} failing seed(s):\n{}", failed.len(), failed.join("\n"));
}

#[test]
fn network_faults_and_skew_pass_on_a_sweep_of_seeds() {
    let base = SimOptions {
        nodes: 16,
        duration: Duration::from_secs(20),
        faults: FaultSet::parse("loss,delay,dup,reorder,skew").expect("valid fault list"),
        ..SimOptions::default()
    };
    assert_all_pass(&sweep(&base, 1..21));
}

#[test]
fn a_mesh_big_enough_for_rumor_mongering_converges_by_anti_entropy() {
    // Above `direct_push_max`, pushes are forwarded and miss about e^-3 of
    // the nodes; anti-entropy must repair every one of them.
    let base = SimOptions {
        nodes: 40,
        duration: Duration::from_secs(15),
        faults: FaultSet::parse("loss,dup,reorder").expect("valid fault list"),
        ..SimOptions::default()
    };
    assert_all_pass(&sweep(&base, 1..4));
}

#[test]
fn all_faults_pass_on_a_short_sweep() {
    // Partitions, crashes and restarts, skew, loss, duplication, reordering.
    let base =
        SimOptions { nodes: 16, duration: Duration::from_secs(20), faults: FaultSet::all(), ..SimOptions::default() };
    assert_all_pass(&sweep(&base, 1..11));
}

/// About 4 minutes in release: `cargo test --release -p rumor-sim -- --ignored`.
#[test]
#[ignore = "long: the 64-node sweep, run with --release -- --ignored"]
fn all_faults_pass_on_64_nodes() {
    let base =
        SimOptions { nodes: 64, duration: Duration::from_secs(30), faults: FaultSet::all(), ..SimOptions::default() };
    assert_all_pass(&sweep(&base, 1..21));
}

#[test]
fn a_formed_start_passes_all_faults_too() {
    // Every host boots at once knowing the others (the start large runs
    // use); late joiners and restarts still join through the seeds.
    let base = SimOptions {
        nodes: 32,
        duration: Duration::from_secs(15),
        faults: FaultSet::all(),
        formed: true,
        ..SimOptions::default()
    };
    let outcomes = sweep(&base, 1..4);
    assert_all_pass(&outcomes);
    assert!(outcomes.iter().all(|o| o.report.contains("start=formed")));
}
