//! A memory-only node stopped with SIGTERM waits until a live peer holds
//! its last writes (a final sync round that matched every part of its
//! store), so they do not hang on one UDP datagram; alone, it says they are
//! lost with it.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::time::Duration;

use common::{Node, wait_all_alive};

const ROUNDS: usize = 8;

/// A write acknowledged right before SIGTERM is on the peer once the
/// writer has exited, every time; and the writer's log says a live peer
/// held everything before it stopped.
#[test]
fn a_write_just_before_sigterm_is_held_by_the_peer() {
    let keeper = Node::start("keeper", &[]);
    let mut keeper_con = keeper.connect();
    let writer = Node::start("writer", &[keeper.gossip]);
    let mut nodes = vec![keeper, writer];
    for round in 0..ROUNDS {
        wait_all_alive(&nodes, Duration::from_secs(20));
        let writer = &mut nodes[1];
        let mut con = writer.connect();
        let mut pipe = redis::pipe();
        for i in 0..50 {
            pipe.set(format!("r{round}:k{i}"), format!("v{round}:{i}")).ignore();
        }
        let () = pipe.query(&mut con).unwrap();
        drop(con);
        let status = writer.terminate();
        assert!(status.success(), "round {round}: {status:?}");
        // The writer is gone: only the keeper can have them now.
        for i in 0..50 {
            let value: Option<String> = redis::cmd("GET").arg(format!("r{round}:k{i}")).query(&mut keeper_con).unwrap();
            assert_eq!(value, Some(format!("v{round}:{i}")), "round {round}, key {i}");
        }
        let log = writer.log_text();
        let handed = log.matches("a live peer holds every entry of this node: stopping").count();
        assert_eq!(handed, round + 1, "every stop handed off:\n{log}");
        writer.spawn();
    }
}

/// Alone, a memory-only node has nobody to hand off to: it says so and
/// exits at once.
#[test]
fn a_lone_memory_only_node_says_its_writes_die_with_it() {
    let mut alone = Node::start("alone", &[]);
    let () = redis::cmd("SET").arg("k").arg("v").query(&mut alone.connect()).unwrap();
    let started = std::time::Instant::now();
    assert!(alone.terminate().success());
    assert!(started.elapsed() < Duration::from_secs(3), "no wait without a peer: {:?}", started.elapsed());
    assert!(alone.log_text().contains("no live peer: the writes only this memory-only node holds are lost with it"));
}

/// `SHUTDOWN` from a client stops the node as SIGTERM does: the client's
/// connection closes without a reply (as Redis's), the process exits
/// cleanly after handing its writes to its peer, and the peer lists it as
/// left, not failed. Inside MULTI, and with options that conflict, it is
/// refused and the node goes on.
#[test]
fn shutdown_from_a_client_leaves_the_mesh_and_exits() {
    use std::io::{Read, Write};

    let keeper = Node::start("keeper", &[]);
    let leaver = Node::start("leaver", &[keeper.gossip]);
    let mut nodes = vec![keeper, leaver];
    wait_all_alive(&nodes, Duration::from_secs(20));
    let mut con = nodes[1].connect();
    let refusal = |con: &mut redis::Connection, args: &[&str]| -> String {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query::<String>(con).expect_err("refused").to_string()
    };
    assert!(refusal(&mut con, &["SHUTDOWN", "ABORT"]).contains("No shutdown in progress."));
    assert!(refusal(&mut con, &["SHUTDOWN", "SAVE", "NOSAVE"]).contains("syntax error"));
    let () = redis::cmd("MULTI").query(&mut con).unwrap();
    let queued = refusal(&mut con, &["SHUTDOWN"]);
    assert!(queued.contains("Command not allowed inside a transaction"), "{queued}");
    let exec = refusal(&mut con, &["EXEC"]);
    assert!(exec.contains("Transaction discarded"), "{exec}");
    let () = redis::cmd("SET").arg("last").arg("write").query(&mut con).unwrap();

    let mut raw = std::net::TcpStream::connect(nodes[1].client).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    raw.write_all(b"SHUTDOWN NOSAVE\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = raw.read_to_end(&mut reply);
    assert!(reply.is_empty(), "no reply, the connection closes: {:?}", String::from_utf8_lossy(&reply));
    let status = nodes[1].wait_exit();
    assert!(status.success(), "{status:?}");
    let log = nodes[1].log_text();
    assert!(log.contains("stopping: SHUTDOWN from a client") && log.contains("left the mesh"), "{log}");
    let gone = nodes[1].gossip;
    common::wait_for("the keeper to list the leaver as left", Duration::from_secs(10), || {
        (common::state_of(&nodes[0], gone).as_deref() == Some("left")).then_some(())
    });
    let last: Option<String> = redis::cmd("GET").arg("last").query(&mut nodes[0].connect()).unwrap();
    assert_eq!(last.as_deref(), Some("write"), "handed to the peer before it stopped");
}
