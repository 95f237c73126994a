//! The gossip port facing strangers, on real processes: a stranger's push
//! is not applied, a sync naming another address sends nothing there,
//! hundreds of idle connections and half-sent huge frames leave the node
//! serving with bounded memory, and a node gossiping on a non-loopback
//! address without a cluster key refuses to start unless told it is fine.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Node, free_port, report, wait_all_alive, wait_for};
use rumor::core::store::Entry;
use rumor::core::version::{NodeId, Timestamp, Version};
use rumor::core::wire::Message;

fn info_field(node: &Node, section: &str, field: &str) -> u64 {
    let text: String = redis::cmd("INFO").arg(section).query(&mut node.connect()).unwrap();
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("{field} in INFO"))
        .trim()
        .parse()
        .unwrap()
}

fn packets_in(node: &Node) -> u64 {
    info_field(node, "gossip", "packets_in")
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn entry(value: &str) -> Entry {
    let timestamp = Timestamp::from_physical_ms(wall_ms());
    Entry {
        value: Some(Bytes::from(value.to_owned())),
        version: Version { timestamp, writer: NodeId::from_random_bytes([7; 16]) },
        expires_at_ms: None,
        deadline_set_at: timestamp,
    }
}

fn frame(message: &Message) -> Vec<u8> {
    let payload = message.encode();
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&payload);
    out
}

#[test]
fn a_strangers_push_is_not_applied() {
    let node = Node::start("lonely", &[]);
    let stranger = UdpSocket::bind(("127.0.0.1", free_port())).unwrap();
    let sender = stranger.local_addr().unwrap();
    let push = Message::Push { sender, hops_left: 0, entries: vec![(Bytes::from_static(b"planted"), entry("evil"))] };
    let before = packets_in(&node);
    stranger.send_to(&push.encode(), node.gossip).unwrap();
    wait_for("the node to read the push", Duration::from_secs(10), || (packets_in(&node) > before).then_some(()));
    let got: Option<String> = redis::cmd("GET").arg("planted").query(&mut node.connect()).unwrap();
    assert_eq!(got, None, "a push from an address that is not a member must not write");
    assert!(info_field(&node, "gossip", "strangers_refused") >= 1, "the refusal is counted");
}

#[test]
fn a_sync_naming_another_address_sends_nothing_there() {
    let node = Node::start("target", &[]);
    let mut con = node.connect();
    for i in 0..50 {
        let _: () = redis::cmd("SET").arg(format!("secret:{i}")).arg("value").query(&mut con).unwrap();
    }
    // The address the attacker wants the node's data (or bytes) sent to.
    let victim = TcpListener::bind(("127.0.0.2", 0)).expect("bind 127.0.0.2");
    victim.set_nonblocking(true).unwrap();
    let named = victim.local_addr().unwrap();
    let attacks = [
        Message::SyncDigests { sender: named, level: 0, nodes: vec![0], digests: vec![0; 16], caught_up: true },
        Message::SyncVersions { sender: named, leaves: (0..65_536).collect(), versions: Vec::new() },
        Message::MembersDigest { sender: named, digest: 0 },
        Message::SyncWant { sender: named, leaves: (0..65_536).collect(), key_hashes: vec![1, 2, 3] },
    ];
    let before = packets_in(&node);
    let mut attacker = TcpStream::connect(node.gossip).unwrap();
    for attack in &attacks {
        attacker.write_all(&frame(attack)).unwrap();
    }
    wait_for("the node to read the frames", Duration::from_secs(10), || {
        (packets_in(&node) >= before + attacks.len() as u64).then_some(())
    });
    // Answers leave at once on loopback: a second is long for one to come.
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if let Ok((mut stream, from)) = victim.accept() {
            let mut got = Vec::new();
            stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
            let _ = stream.read_to_end(&mut got);
            panic!("the node connected to the named address {named} from {from} and sent {} bytes", got.len());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(info_field(&node, "gossip", "strangers_refused") >= attacks.len() as u64);
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap()
}

fn keygen() -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rumor")).arg("keygen").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn idle_connections_and_half_sent_frames_leave_the_node_serving_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("mesh.key");
    std::fs::write(&key, keygen() + "\n").unwrap();
    let key = key.display().to_string();
    let first = Node::start_with("sieged", &[], &["--cluster-key-file", &key]);
    let second = Node::start_with("friend", &[first.gossip], &["--cluster-key-file", &key]);
    let nodes = [first, second];
    wait_all_alive(&nodes, Duration::from_secs(20));
    let [first, second] = nodes;
    // A descriptor limit as a small server has: what used to run out.
    let pid = first.pid();
    let limited = std::process::Command::new("prlimit").args(["--nofile=512", "--pid", &pid.to_string()]).status();
    assert!(limited.is_ok_and(|s| s.success()), "prlimit");
    let rss_before = rss_kb(pid);

    // Four frames announced as 64 MiB, each sent 24 MiB of, by threads that
    // give up writing when the node stops reading.
    const ANNOUNCED: u32 = 64 << 20;
    const SENT: usize = 24 << 20;
    let gossip = first.gossip;
    let half_sent: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(gossip).unwrap();
                stream.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
                let chunk = vec![0xE1u8; 1 << 20];
                let _ = stream.write_all(&ANNOUNCED.to_be_bytes());
                for _ in 0..SENT / chunk.len() {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                }
                stream
            })
        })
        .collect();
    let idle: Vec<TcpStream> = (0..600).filter_map(|_| TcpStream::connect(gossip).ok()).collect();
    let half_sent: Vec<TcpStream> = half_sent.into_iter().map(|t| t.join().unwrap()).collect();
    report(&format!("exposure: {} idle connections and {} half-sent frames open", idle.len(), half_sent.len()));

    let mut con = wait_for("PING under siege", Duration::from_secs(10), || {
        let client = redis::Client::open(format!("redis://{}/", first.client)).ok()?;
        let mut con = client.get_connection_with_timeout(Duration::from_secs(2)).ok()?;
        let pong: String = redis::cmd("PING").query(&mut con).ok()?;
        (pong == "PONG").then_some(con)
    });
    let _: () = redis::cmd("SET").arg("still").arg("here").query(&mut con).unwrap();
    let got: String = redis::cmd("GET").arg("still").query(&mut con).unwrap();
    assert_eq!(got, "here");
    let rss_after = rss_kb(pid);
    report(&format!("exposure: RSS {} MB before, {} MB under siege", rss_before / 1024, rss_after / 1024));
    assert!(rss_after < rss_before + 64 * 1024, "RSS grew from {rss_before} kB to {rss_after} kB");
    // The mesh still works: the friend sees the node alive and gets its writes.
    common::wait_alive(&second, first.gossip, Duration::from_secs(10));
    let mut friend = second.connect();
    wait_for("the write to reach the friend", Duration::from_secs(10), || {
        let got: Option<String> = redis::cmd("GET").arg("still").query(&mut friend).ok()?;
        got.filter(|v| v == "here")
    });
    assert!(info_field(&first, "gossip", "stream_connections_refused") > 0, "connections over the cap are counted");
    drop((idle, half_sent));
}

/// Sends `count` frames announced as 64 MiB and `sent` bytes of each, from
/// threads that give up writing when the node stops reading.
fn half_send(to: std::net::SocketAddr, count: usize, sent: usize) -> Vec<TcpStream> {
    let threads: Vec<_> = (0..count)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(to).unwrap();
                stream.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
                let chunk = vec![0x02u8; 1 << 20];
                let _ = stream.write_all(&(64u32 << 20).to_be_bytes());
                for _ in 0..sent / chunk.len() {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                }
                stream
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn without_a_key_half_sent_frames_hold_no_more_than_the_stream_budget() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    // The smallest budget the default limits allow: one largest frame.
    std::fs::write(&config, "[gossip_streams]\nbuffer_bytes = 70000000\n").unwrap();
    let node = Node::start_with("open", &[], &["--config", &config.display().to_string()]);
    let pid = node.pid();
    let rss_before = rss_kb(pid);
    // 8 frames of 24 MiB each: 192 MiB if each were held.
    let half_sent = half_send(node.gossip, 8, 24 << 20);
    let mut con = node.connect();
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    let rss_after = rss_kb(pid);
    report(&format!(
        "exposure (no key): RSS {} MB before, {} MB with 8 half-sent frames",
        rss_before / 1024,
        rss_after / 1024
    ));
    assert!(rss_after < rss_before + 100 * 1024, "RSS grew from {rss_before} kB to {rss_after} kB");
    drop(half_sent);
}

fn serve_on_any(extra: &[&str]) -> std::process::Child {
    let gossip = format!("0.0.0.0:{}", free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    std::process::Command::new(env!("CARGO_BIN_EXE_rumor"))
        .args(["serve", "--name", "open", "--listen", &listen, "--gossip", &gossip])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn gossip_on_a_public_address_without_a_key_needs_insecure_gossip() {
    let mut refused = serve_on_any(&[]);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = refused.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = refused.kill();
            let _ = refused.wait();
            panic!("a node gossiping on 0.0.0.0 without a key started");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut message = String::new();
    refused.stderr.take().unwrap().read_to_string(&mut message).unwrap();
    assert_eq!(status.code(), Some(2), "{message}");
    assert!(
        message.contains("not loopback") && message.contains("--insecure-gossip") && message.lines().count() == 1,
        "{message}"
    );

    let mut started = serve_on_any(&["--insecure-gossip"]);
    let stderr = started.stderr.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let started_ok = wait_for("the node to start", Duration::from_secs(10), || {
        while let Ok(line) = lines.try_recv() {
            seen += &line;
            seen.push('\n');
        }
        if seen.contains("node starting") {
            return Some(true);
        }
        started.try_wait().unwrap().map(|_| false)
    });
    let still_running = started.try_wait().unwrap().is_none();
    let _ = started.kill();
    let _ = started.wait();
    assert!(started_ok && still_running, "{seen}");
    assert!(seen.contains("insecure"), "the node warns that gossip is open: {seen}");
}
