//! Garbage collection on real processes: tombstones are kept until every
//! member that may come back holds them, so a peer frozen or a lone node
//! restarted for longer than the tombstone TTL loses nothing it
//! acknowledged and brings back no delete.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::time::Duration;

use common::{Node, state_of, wait_for};

fn config_file(dir: &std::path::Path, body: &str) -> String {
    let path = dir.join("gc.toml");
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

/// Two nodes; one is frozen (SIGSTOP) for longer than the tombstone TTL and
/// a whole sweep while the other writes and deletes; after SIGCONT both
/// hold the write and neither the deleted key. The rule this replaces had
/// the writer discard its whole store when the frozen peer came back.
#[test]
fn a_write_survives_a_peer_frozen_past_the_tombstone_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "[anti_entropy]\ntombstone_ttl_ms = 2000\n");
    let a = Node::start_with("a", &[], &["--config", &config]);
    let b = Node::start_with("b", &[a.gossip], &["--config", &config]);
    let (mut a_con, mut b_con) = (a.connect(), b.connect());
    let () = redis::cmd("SET").arg("doomed").arg("old").query(&mut a_con).unwrap();
    wait_for("b to hold the key", Duration::from_secs(10), || {
        redis::cmd("GET").arg("doomed").query::<Option<String>>(&mut b_con).unwrap()
    });

    b.signal("STOP");
    wait_for("a to see b down", Duration::from_secs(15), || {
        (state_of(&a, b.gossip).as_deref() == Some("down")).then_some(())
    });
    let () = redis::cmd("SET").arg("during").arg("new").query(&mut a_con).unwrap();
    let () = redis::cmd("DEL").arg("doomed").query(&mut a_con).unwrap();
    // Past the TTL and a whole sweep pass (16 s), which the TTL alone
    // would have let forget the tombstone.
    let swept = a.info_field("gossip", "expired_swept");
    std::thread::sleep(Duration::from_secs(19));
    assert_eq!(a.info_field("gossip", "expired_swept"), swept, "a sweeps nothing here");
    assert_eq!(a.info_field("gossip", "tombstones_forgotten"), "0", "a kept the tombstone b lacks");

    b.signal("CONT");
    wait_for("a and b to see each other alive", Duration::from_secs(20), || {
        (state_of(&a, b.gossip).as_deref() == Some("alive") && state_of(&b, a.gossip).as_deref() == Some("alive"))
            .then_some(())
    });
    let mut b_con = b.connect();
    wait_for("b to get the write and the delete", Duration::from_secs(15), || {
        let during: Option<String> = redis::cmd("GET").arg("during").query(&mut b_con).unwrap();
        let doomed: Option<String> = redis::cmd("GET").arg("doomed").query(&mut b_con).unwrap();
        (during.is_some() && doomed.is_none()).then_some(())
    });
    // Two more sync rounds each: a discarded store or a forgotten delete
    // would show by now.
    let rounds = |node: &Node| node.info_field("gossip", "sync_rounds").parse::<u64>().unwrap();
    let before = [rounds(&a), rounds(&b)];
    wait_for("two more sync rounds on each node", Duration::from_secs(10), || {
        (rounds(&a) >= before[0] + 2 && rounds(&b) >= before[1] + 2).then_some(())
    });
    for node in [&a, &b] {
        let mut con = node.connect();
        let during: Option<String> = redis::cmd("GET").arg("during").query(&mut con).unwrap();
        let doomed: Option<String> = redis::cmd("GET").arg("doomed").query(&mut con).unwrap();
        assert_eq!(during.as_deref(), Some("new"), "{} lost an acknowledged write", node.name);
        assert_eq!(doomed, None, "{} brought a deleted key back", node.name);
        assert_eq!(node.info_field("gossip", "stale_state_discarded"), "0", "{}", node.name);
    }
}

/// A node alone by design (no seeds) restarted from its data dir three
/// times, each more than the TTL and `member_gone_after` after the last:
/// it is its own mesh, so it starts every time with all its data.
#[test]
fn a_lone_node_restarts_again_and_again_after_the_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "[anti_entropy]\ntombstone_ttl_ms = 1000\nmember_gone_after_ms = 1000\n");
    let data = dir.path().join("data");
    let data = data.display().to_string();
    let mut node = Node::start_with("lone", &[], &["--config", &config, "--data-dir", &data]);
    let () = redis::cmd("SET").arg("k").arg("v").query(&mut node.connect()).unwrap();
    for restart in 1..=3 {
        assert!(node.terminate().success());
        // The scenario is time passing while the node is down.
        std::thread::sleep(Duration::from_millis(1500));
        node.spawn();
        let value: Option<String> = redis::cmd("GET").arg("k").query(&mut node.connect()).unwrap();
        assert_eq!(value.as_deref(), Some("v"), "restart {restart}: {}", node.log_text());
    }
}
