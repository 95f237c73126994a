//! FLUSHALL on a mesh of real processes: one command on one node empties
//! every node — one that was down during it (and comes back with its data
//! dir) and one that joins later included — while a write made after it
//! stays everywhere.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::time::Duration;

use common::{Node, wait_all_alive, wait_for};

/// Keys written before the flush.
const KEYS: usize = 300;

fn keys_of(node: &Node) -> Vec<String> {
    let mut con = node.connect();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).expect("KEYS");
    keys.sort();
    keys
}

#[test]
fn flushall_empties_every_node_including_one_that_was_down_and_one_that_joins_later() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = ["--data-dir", dir.path().to_str().unwrap()];
    let first = Node::start("flush1", &[]);
    let seed = first.gossip;
    let second = Node::start("flush2", &[seed]);
    let away = Node::start_with("flush3", &[seed], &data_dir);
    let mut nodes = vec![first, second, away];
    wait_all_alive(&nodes, Duration::from_secs(20));

    let mut con = nodes[0].connect();
    let mut pipe = redis::pipe();
    for i in 0..KEYS {
        pipe.set(format!("k{i}"), i).ignore();
    }
    pipe.query::<()>(&mut con).unwrap();
    wait_for("the keys to reach the node that goes away", Duration::from_secs(20), || {
        (keys_of(&nodes[2]).len() == KEYS).then_some(())
    });
    nodes[2].terminate();

    let () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let dbsize: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 0, "the node that took FLUSHALL is empty at once");
    let () = redis::cmd("SET").arg("after").arg("stays").query(&mut nodes[1].connect()).unwrap();

    nodes[2].spawn();
    nodes.push(Node::start("flush4", &[seed]));
    for node in &nodes {
        wait_for(&format!("{} to hold only the write after the flush", node.name), Duration::from_secs(30), || {
            (keys_of(node) == ["after"]).then_some(())
        });
        let got: Option<String> = redis::cmd("GET").arg("after").query(&mut node.connect()).unwrap();
        assert_eq!(got.as_deref(), Some("stays"), "{}", node.name);
    }
    // Three anti-entropy rounds of every node later, nothing has come back.
    let rounds = |node: &Node| node.info_field("gossip", "sync_rounds").parse::<u64>().unwrap();
    let started: Vec<u64> = nodes.iter().map(rounds).collect();
    for (node, started) in nodes.iter().zip(started) {
        wait_for(&format!("{} to run three sync rounds", node.name), Duration::from_secs(20), || {
            (rounds(node) >= started + 3).then_some(())
        });
    }
    for node in &nodes {
        assert_eq!(keys_of(node), ["after"], "{} after more sync rounds", node.name);
    }
}
