//! Versions and expiry against real `rumor serve` processes: EXPIRE racing
//! SET on two nodes never brings back the overwritten value, and a command
//! of a stalled pipeline reads the clock when it runs. (An entry from the far
//! future, which only a member can now push, is refused in
//! `src/core/cluster_tests.rs`.)
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Node, mesh, wait_all_alive, wait_for};

fn get(con: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(con).unwrap()
}

#[test]
fn expire_racing_set_on_another_node_never_ends_on_the_overwritten_value() {
    let nodes = mesh(2);
    wait_all_alive(&nodes, Duration::from_secs(20));
    let (mut a, mut b) = (nodes[0].connect(), nodes[1].connect());
    // Enough keys that a KEYS walk keeps A's batch busy for a while: A
    // applies its SET at once but pushes it only when the batch ends, so
    // the EXPIRE on B lands, later by the clock, on the value B still holds.
    let mut fill = redis::pipe();
    for i in 0..200_000 {
        fill.cmd("SET").arg(format!("fill:{i}")).arg("x").ignore();
    }
    let () = fill.query(&mut a).unwrap();
    let (mut overwritten, mut with_deadline) = (0, 0);
    for trial in 0..30 {
        let key = format!("race:{trial}");
        let _: () = redis::cmd("SET").arg(&key).arg("v1").query(&mut a).unwrap();
        wait_for("v1 to reach the other node", Duration::from_secs(10), || {
            (get(&mut b, &key).as_deref() == Some("v1")).then_some(())
        });
        let mut raw = TcpStream::connect(nodes[0].client).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let set = format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$2\r\nv2\r\n", key.len());
        raw.write_all(format!("{set}*2\r\n$4\r\nKEYS\r\n$8\r\nnomatch*\r\n").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(3)); // the SET has run on A, its push not yet
        let expired: i64 = redis::cmd("EXPIRE").arg(&key).arg(1000).query(&mut b).unwrap();
        assert_eq!(expired, 1, "the key is live on the second node");
        let mut acks = [0u8; b"+OK\r\n*0\r\n".len()];
        raw.read_exact(&mut acks).unwrap();
        assert_eq!(&acks, b"+OK\r\n*0\r\n", "the SET was acknowledged");

        let settled = wait_for("the two nodes to agree", Duration::from_secs(10), || {
            let (on_a, on_b) = (get(&mut a, &key), get(&mut b, &key));
            let ttl = |con: &mut redis::Connection| redis::cmd("TTL").arg(&key).query::<i64>(con).unwrap() > 0;
            (on_a == on_b && ttl(&mut a) == ttl(&mut b)).then_some((on_a, ttl(&mut a)))
        });
        with_deadline += usize::from(settled.1);
        if settled.0.as_deref() != Some("v2") {
            overwritten += 1;
        }
    }
    common::report(&format!(
        "EXPIRE/SET races: 30, the EXPIRE's deadline kept in {with_deadline}, overwritten {overwritten}"
    ));
    assert_eq!(overwritten, 0, "of 30 races, {overwritten} ended without the acknowledged SET's value");
}

#[test]
fn a_command_of_a_stalled_pipeline_counts_its_deadline_from_when_it_ran() {
    let node = Node::start("stall", &[]);
    let mut con = node.connect();
    let value = vec![b'x'; 2 << 20];
    let _: () = redis::cmd("SET").arg("big").arg(&value[..]).query(&mut con).unwrap();

    // 80 MiB of replies (far more than the sockets buffer), then a SET with
    // a 2 s deadline: the node stalls on the replies until the client reads.
    const GETS: usize = 40;
    let mut pipeline = Vec::new();
    for _ in 0..GETS {
        pipeline.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
    }
    pipeline.extend_from_slice(b"*5\r\n$3\r\nSET\r\n$2\r\npx\r\n$1\r\nv\r\n$2\r\nPX\r\n$4\r\n2000\r\n");
    let mut slow = TcpStream::connect(node.client).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    slow.write_all(&pipeline).unwrap();
    std::thread::sleep(Duration::from_secs(3)); // the client is slow: longer than the PX

    let reply_bytes = GETS * (format!("${}\r\n", value.len()).len() + value.len() + 2) + b"+OK\r\n".len();
    let mut replies = vec![0u8; reply_bytes];
    let started = Instant::now();
    slow.read_exact(&mut replies).unwrap();
    let read_ms = started.elapsed().as_millis();
    assert!(replies.ends_with(b"+OK\r\n"), "the SET was acknowledged");
    let pttl: i64 = redis::cmd("PTTL").arg("px").query(&mut con).unwrap();
    assert!(
        pttl > 0,
        "acknowledged already expired: PTTL {pttl} right after the client read its replies ({read_ms} ms)"
    );
    assert!(pttl <= 2000);
}
