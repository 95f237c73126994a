//! Anti-entropy on real processes: nodes that missed writes catch up, and
//! nothing deleted comes back.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::time::{Duration, Instant};

use common::{Node, mesh, wait_all_alive, wait_for};
use redis::Commands;

/// Every key and value on `node` (KEYS then MGET), sorted.
fn contents(node: &Node) -> Vec<(String, String)> {
    let mut con = node.connect();
    let mut keys: Vec<String> = con.keys("*").unwrap();
    keys.sort();
    if keys.is_empty() {
        return Vec::new();
    }
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut con).unwrap();
    keys.into_iter().zip(values).filter_map(|(k, v)| Some((k, v?))).collect()
}

fn write_batch(con: &mut redis::Connection, range: std::ops::Range<u32>, tag: &str) {
    let mut pipe = redis::pipe();
    for i in range {
        pipe.set(format!("key:{i}"), format!("{tag}:{i}")).ignore();
    }
    let () = pipe.query(con).unwrap();
}

fn delete_batch(con: &mut redis::Connection, range: std::ops::Range<u32>) {
    let mut pipe = redis::pipe();
    for i in range {
        pipe.del(format!("key:{i}")).ignore();
    }
    let () = pipe.query(con).unwrap();
}

#[test]
fn a_node_restarted_empty_serves_every_write_and_no_deleted_key() {
    let mut nodes = mesh(3);
    let mut writer = nodes[0].connect();
    write_batch(&mut writer, 0..3_000, "a");
    delete_batch(&mut writer, 0..500);
    nodes[2].kill();
    // While it is down: overwrite, delete, and write new keys.
    write_batch(&mut writer, 2_000..5_000, "b");
    delete_batch(&mut writer, 500..1_000);
    delete_batch(&mut writer, 4_500..4_600);
    let expected = contents(&nodes[0]);
    assert_eq!(expected.len(), 5_000 - 1_000 - 100);

    nodes[2].spawn();
    let restarted = Instant::now();
    wait_all_alive(&nodes, Duration::from_secs(15));
    wait_for("the restarted node to hold exactly what the writer holds", Duration::from_secs(20), || {
        (contents(&nodes[2]) == expected).then_some(())
    });
    common::report(&format!("restarted empty node caught up on {} keys in {:?}", expected.len(), restarted.elapsed()));
    // And it stays that way: no deleted key is resurrected by later rounds.
    let mut con = nodes[2].connect();
    let dbsize: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, expected.len());
    let resurrected: Option<String> = con.get("key:10").unwrap();
    assert_eq!(resurrected, None);
    assert_eq!(contents(&nodes[1]), expected);
}

#[test]
fn a_late_joiner_gets_the_whole_store() {
    let nodes = mesh(2);
    let mut writer = nodes[1].connect();
    for chunk in 0..10 {
        write_batch(&mut writer, chunk * 2_000..(chunk + 1) * 2_000, "v");
    }
    let expected = contents(&nodes[1]);
    assert_eq!(expected.len(), 20_000);
    let joined = Instant::now();
    let late = Node::start("late", &[nodes[0].gossip]);
    wait_for("the late joiner to hold the whole store", Duration::from_secs(30), || {
        (contents(&late) == expected).then_some(())
    });
    common::report(&format!("late joiner received {} keys in {:?}", expected.len(), joined.elapsed()));
    // The catch-up told the operator how far it was and how fast it went.
    let line = wait_for("a catch-up progress line", Duration::from_secs(5), || {
        late.log_text().lines().find(|l| l.contains("catching up from peers")).map(str::to_owned)
    });
    assert!(line.contains("% (") && line.contains("entries/s"), "{line}");
    wait_for("the catch-up's end", Duration::from_secs(5), || late.log_text().contains("caught up: ").then_some(()));
}
