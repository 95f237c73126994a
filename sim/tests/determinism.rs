//! Determinism: one seed gives one trace, bit for bit — in process, and
//! across two processes of the binary; different seeds give different
//! traces.

use std::process::Command;
use std::time::Duration;

use rumor_sim::{FaultSet, SimOptions};

fn options(seed: u64) -> SimOptions {
    SimOptions {
        seed,
        nodes: 12,
        duration: Duration::from_secs(10),
        faults: FaultSet::parse("loss,delay,dup,reorder,skew").expect("valid fault list"),
        ..SimOptions::default()
    }
}

#[test]
fn the_same_seed_gives_the_same_summary_trace_and_report() {
    let a = rumor_sim::run(&options(7)).expect("valid options");
    let b = rumor_sim::run(&options(7)).expect("valid options");
    assert_eq!(a.summary_line(), b.summary_line());
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.report, b.report);
    assert!(a.measurements.events > 1_000, "the run did something");
}

#[test]
fn the_thread_count_changes_nothing_in_the_run() {
    // Crashes, partitions and a cold join: windows cut short by faults and
    // client operations, and windows with many hosts' steps to share out.
    let opts = |threads| SimOptions {
        seed: 5,
        nodes: 96,
        duration: Duration::from_secs(8),
        faults: FaultSet::all(),
        threads,
        ..SimOptions::default()
    };
    let one = rumor_sim::run(&opts(1)).expect("valid options");
    assert_eq!(one.windows_shared, 0);
    for threads in [2, 3] {
        let many = rumor_sim::run(&opts(threads)).expect("valid options");
        assert!(many.windows_shared > 100, "{threads} threads shared only {} windows", many.windows_shared);
        assert_eq!(many.summary_line(), one.summary_line(), "{threads} threads");
        assert_eq!(many.trace, one.trace);
        assert_eq!(many.report, one.report);
    }
}

#[test]
fn different_seeds_give_different_traces() {
    let a = rumor_sim::run(&options(1)).expect("valid options");
    let b = rumor_sim::run(&options(2)).expect("valid options");
    assert_ne!(a.trace, b.trace);
}

#[test]
fn two_processes_print_the_same_last_line() {
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_rumor-sim"))
            .args([
                "--seed",
                "11",
                "--nodes",
                "12",
                "--duration",
                "10s",
                "--faults",
                "loss,delay,dup,reorder,skew",
                "--quiet",
            ])
            .output()
            .expect("rumor-sim runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
        stdout.lines().last().expect("a summary line").to_owned()
    };
    let first = run();
    let second = run();
    assert_eq!(first, second);
    assert!(first.starts_with("seed=11 nodes=12 sim=10s violations=0 "), "{first}");
    let trace = first.rsplit_once("trace=").expect("trace field").1;
    assert_eq!(trace.len(), 16);
    assert!(trace.chars().all(|c| c.is_ascii_hexdigit()));
    // The binary and the library agree too.
    let in_process = rumor_sim::run(&options(11)).expect("valid options");
    assert_eq!(in_process.summary_line(), first);
}
