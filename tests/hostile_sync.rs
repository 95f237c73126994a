//! Crafted anti-entropy input on real processes: datagrams that name leaves
//! or tree positions past the end, sent to a node holding no keys. The node
//! refuses each, keeps answering clients and SWIM, and its memory stays
//! flat. Every wait has a deadline and every client call a read timeout,
//! so a node that hangs fails the test instead of hanging it.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{Node, free_port, mesh, wait_for};
use rumor::core::wire::Message;

/// The datagram from the report: SyncVersions naming leaf 65,536, no versions.
const REPORTED: &str = "0202007f000001a6c0020180800400";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap()).collect()
}

/// One crafted datagram per variant.
fn datagrams() -> Vec<Vec<u8>> {
    let sender: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let crafted = [
        // Past the last leaf, asking for one key hash.
        Message::SyncWant { sender, leaves: vec![70_000], key_hashes: vec![5] },
        // At level 3, a node past the 4,096 there are.
        Message::SyncDigests { sender, level: 3, nodes: vec![4096], digests: vec![1; 16], caught_up: true },
        // A node whose children's index wraps (0x1000_0000 × 16 in u32).
        Message::SyncDigests { sender, level: 2, nodes: vec![0x1000_0000], digests: vec![1; 16], caught_up: true },
    ];
    std::iter::once(hex(REPORTED)).chain(crafted.iter().map(Message::encode)).collect()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// INFO gossip, with a read timeout: `None` if the node does not answer.
fn info_gossip(node: &Node) -> Option<String> {
    let mut con = node.connect();
    con.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    redis::cmd("INFO").arg("gossip").query(&mut con).ok()
}

fn field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).and_then(|v| v.trim().parse().ok())
}

#[test]
fn crafted_sync_datagrams_are_refused_and_the_node_keeps_serving() {
    let nodes = mesh(2);
    let (target, peer) = (&nodes[0], &nodes[1]);
    let pid = target.pid();
    let socket = UdpSocket::bind(("127.0.0.1", free_port())).unwrap();
    let before = rss_kib(pid);
    let datagrams = datagrams();
    for datagram in &datagrams {
        socket.send_to(datagram, target.gossip).unwrap();
    }
    let sent = datagrams.len() as u64;

    // A few seconds on: it still answers, SWIM still finds it alive (a
    // stuck driver is declared down within about two seconds), and its
    // memory did not grow (a looping continuation grew it ~150 MB/s).
    let start = Instant::now();
    let mut peak = before;
    while start.elapsed() < Duration::from_secs(4) {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut con = target.connect();
    con.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    assert!(info_gossip(target).is_some(), "INFO gossip did not answer");
    common::wait_alive(peer, target.gossip, Duration::from_secs(10));
    let grown = peak.saturating_sub(before);
    common::report(&format!("RSS {before} KiB before, peak {peak} KiB over 4 s after {sent} crafted datagrams"));
    assert!(grown < 20 * 1024, "RSS grew {grown} KiB");
    let refused = wait_for("INFO gossip to count every crafted datagram refused", Duration::from_secs(5), || {
        let text = info_gossip(target)?;
        field(&text, "sync_refused").filter(|n| *n >= sent)
    });
    assert_eq!(refused, sent);
}
