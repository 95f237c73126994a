//! MULTI/EXEC on real nodes: atomic against the node's other clients, and
//! WATCH aborted by a write that arrived from a peer.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{mesh, wait_for};

/// Transactions the writer runs while the reader watches.
const TRANSACTIONS: u32 = 2_000;

#[test]
fn exec_is_atomic_against_other_clients_of_the_node() {
    let nodes = mesh(1);
    let mut writer = nodes[0].connect();
    let mut reader = nodes[0].connect();
    let done = Arc::new(AtomicBool::new(false));
    let writing = {
        let done = done.clone();
        std::thread::spawn(move || {
            for i in 0..TRANSACTIONS {
                let () = redis::pipe().atomic().set("left", i).set("right", i).query(&mut writer).expect("EXEC");
            }
            done.store(true, Ordering::Relaxed);
        })
    };
    let (mut reads, mut apart) = (0u64, 0u64);
    while !done.load(Ordering::Relaxed) {
        let (left, right): (Option<u32>, Option<u32>) =
            redis::cmd("MGET").arg("left").arg("right").query(&mut reader).expect("MGET");
        reads += 1;
        apart += u64::from(left != right);
    }
    writing.join().expect("writer");
    common::report(&format!("{reads} MGETs beside {TRANSACTIONS} transactions, {apart} saw the keys apart"));
    assert!(reads > 100, "the reader ran beside the writer ({reads} reads)");
    assert_eq!(apart, 0, "a reader saw one SET of a transaction without the other");
}

#[test]
fn watch_aborts_exec_when_a_peer_changed_the_key() {
    let nodes = mesh(2);
    let mut watcher = nodes[0].connect();
    let mut other = nodes[1].connect();
    let () = redis::cmd("SET").arg("k").arg("before").query(&mut watcher).unwrap();
    // The peer's write must come after "before" in the mesh's order, not
    // race it: a write the peer makes without having seen "before" is
    // concurrent, and last-write-wins may keep either.
    wait_for("the first write to reach the peer", Duration::from_secs(10), || {
        let got: Option<String> = redis::cmd("GET").arg("k").query(&mut other).unwrap();
        (got.as_deref() == Some("before")).then_some(())
    });
    let () = redis::cmd("WATCH").arg("k").query(&mut watcher).unwrap();
    let () = redis::cmd("SET").arg("k").arg("from the peer").query(&mut other).unwrap();
    wait_for("the peer's write to arrive", Duration::from_secs(10), || {
        let got: Option<String> = redis::cmd("GET").arg("k").query(&mut watcher).unwrap();
        (got.as_deref() == Some("from the peer")).then_some(())
    });
    let outcome: Option<()> = redis::pipe().atomic().set("k", "mine").query(&mut watcher).unwrap();
    assert_eq!(outcome, None, "EXEC was not aborted");
    let got: String = redis::cmd("GET").arg("k").query(&mut watcher).unwrap();
    assert_eq!(got, "from the peer");
    // Without a change in between, the same transaction runs.
    let () = redis::cmd("WATCH").arg("k").query(&mut watcher).unwrap();
    let outcome: Option<()> = redis::pipe().atomic().set("k", "mine").query(&mut watcher).unwrap();
    assert_eq!(outcome, Some(()));
}
