//! Anti-entropy under a smaller stream frame limit, on real processes: the
//! sync chunks both sides build fit the limit both derive from the same
//! client limits, so a peer that joins late catches up; a budget that
//! cannot fit is refused at start.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Node, wait_for};

/// 1 MiB values: a frame limit of about 1.07 MiB, under the default 4 MiB
/// sync budget.
const SMALL_FRAMES: &str = "[limits]\nmax_bulk_bytes = 1048576\n";

#[test]
fn a_fresh_peer_catches_up_on_3000_values_under_a_1_mib_bulk_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(&config, SMALL_FRAMES).unwrap();
    let config = config.to_str().unwrap();
    let first = Node::start_with("node1", &[], &["--config", config]);
    let mut con = first.connect();
    let value = "v".repeat(1000);
    let mut pipe = redis::pipe();
    for i in 0..3_000 {
        pipe.cmd("SET").arg(format!("key:{i}")).arg(&value).ignore();
    }
    let () = pipe.query(&mut con).unwrap();

    let joined = Instant::now();
    let late = Node::start_with("node2", &[first.gossip], &["--config", config]);
    let mut late_con = late.connect();
    wait_for("the late peer to hold all 3,000 values", Duration::from_secs(30), || {
        let n: u64 = redis::cmd("DBSIZE").query(&mut late_con).ok()?;
        (n == 3_000).then_some(())
    });
    let sample: String = redis::cmd("GET").arg("key:2999").query(&mut late_con).unwrap();
    assert_eq!(sample, value);
    common::report(&format!("late peer caught up on 3,000 1 KB values in {:?}", joined.elapsed()));
}

#[test]
fn a_sync_budget_over_the_frame_limit_is_a_one_line_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(&config, format!("{SMALL_FRAMES}[anti_entropy]\nsync_budget_bytes = 4194304\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rumor"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("anti_entropy.sync_budget_bytes"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}
