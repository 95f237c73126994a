//! WAIT on a mesh of real processes: it answers the number of live peers
//! holding the connection's writes — all of them after a write, fewer
//! after its timeout when a peer is frozen.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::time::{Duration, Instant};

use common::{mesh, wait_for};

fn wait(con: &mut redis::Connection, numpeers: i64, timeout_ms: i64) -> redis::RedisResult<i64> {
    redis::cmd("WAIT").arg(numpeers).arg(timeout_ms).query(con)
}

#[test]
fn wait_counts_the_peers_that_hold_the_writes_and_fewer_when_one_is_frozen() {
    let nodes = mesh(3);
    let mut con = nodes[0].connect();
    // No write yet: nothing to wait for, every live peer counts.
    assert_eq!(wait(&mut con, 2, 1000).unwrap(), 2);
    let mut pipe = redis::pipe();
    for i in 0..500 {
        pipe.set(format!("k{i}"), i).ignore();
    }
    pipe.query::<()>(&mut con).unwrap();
    assert_eq!(wait(&mut con, 2, 5000).unwrap(), 2, "both peers confirm");
    let held: Option<String> = redis::cmd("GET").arg("k499").query(&mut nodes[2].connect()).unwrap();
    assert_eq!(held.as_deref(), Some("499"), "what a peer confirmed it holds");
    assert_eq!(wait(&mut con, 0, 0).unwrap(), 2, "WAIT 0 answers at once");

    nodes[2].signal("STOP");
    let () = redis::cmd("SET").arg("after").arg("the freeze").query(&mut con).unwrap();
    let started = Instant::now();
    assert_eq!(wait(&mut con, 2, 700).unwrap(), 1, "the frozen peer cannot confirm");
    assert!(started.elapsed() >= Duration::from_millis(700), "answered at the timeout: {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5), "not long after it: {:?}", started.elapsed());
    nodes[2].signal("CONT");
    // Once it runs again, the retried confirmation reaches it.
    wait_for("the thawed peer to confirm", Duration::from_secs(20), || {
        (wait(&mut con, 2, 1000).unwrap() == 2).then_some(())
    });

    let negative = wait(&mut con, 1, -1).unwrap_err();
    assert!(negative.to_string().contains("timeout is negative"), "{negative}");
    let not_integer = redis::cmd("WAIT").arg("x").arg(0).query::<i64>(&mut con).unwrap_err();
    assert!(not_integer.to_string().contains("value is not an integer or out of range"), "{not_integer}");
    let bad_timeout = redis::cmd("WAIT").arg(1).arg("soon").query::<i64>(&mut con).unwrap_err();
    assert!(bad_timeout.to_string().contains("timeout is not an integer or out of range"), "{bad_timeout}");
}
