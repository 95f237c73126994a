//! Client resource limits on real processes: a tiny request for a huge
//! reply from a client that never reads keeps the node's memory flat and
//! gets the client cut off at `client_output_buffer_limit`; a pipelining
//! client that never reads stalls only itself; idle clients are closed
//! after `timeout`; and `max_clients` is fitted to the descriptor limit, so
//! idle clients cannot starve a data dir of descriptors.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Node, report, wait_for};

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib / 1024
}

fn stat(node: &Node, field: &str) -> u64 {
    node.info_field("stats", field).parse().unwrap()
}

fn config_file(dir: &Path, text: &str) -> String {
    let path = dir.join("node.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `MGET key` naming `key` `times` times, as one RESP array.
fn mget_repeated(key: &str, times: usize) -> Vec<u8> {
    let mut out = format!("*{}\r\n$4\r\nMGET\r\n", times + 1).into_bytes();
    for _ in 0..times {
        out.extend_from_slice(format!("${}\r\n{key}\r\n", key.len()).as_bytes());
    }
    out
}

/// Whether the peer has closed `stream` (reads what is there first).
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut sink = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn an_unread_mget_of_large_values_keeps_memory_bounded() {
    let node = Node::start("mget", &[]);
    let mut con = node.connect();
    let value = vec![b'v'; 4 << 20];
    let _: () = redis::cmd("SET").arg("big").arg(&value).query(&mut con).unwrap();
    let before = rss_mib(node.pid());

    // 1.2 KB asking for 128 × 4 MiB = 512 MiB of replies, never read.
    let request = mget_repeated("big", 128);
    assert!(request.len() < 1300, "{}", request.len());
    let mut greedy = TcpStream::connect(node.client).unwrap();
    greedy.write_all(&request).unwrap();

    let mut peak = before;
    let deadline = Duration::from_secs(20);
    wait_for("the greedy client to be cut off at the output limit", deadline, || {
        peak = peak.max(rss_mib(node.pid()));
        (stat(&node, "client_output_buffer_limit_disconnections") == 1).then_some(())
    });
    assert!(closed_by_peer(&mut greedy), "the client over the limit is disconnected");
    peak = peak.max(rss_mib(node.pid()));
    report(&format!("unread 128-key MGET of 4 MiB values: RSS {before} MiB before, peak {peak} MiB"));
    assert!(peak < before + 64, "RSS grew from {before} to {peak} MiB");

    // The node goes on serving everyone else, the same value included.
    let got: Vec<u8> = redis::cmd("GET").arg("big").query(&mut con).unwrap();
    assert_eq!(got.len(), value.len());
    let pong: String = redis::cmd("PING").query(&mut node.connect()).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn without_a_limit_a_stalled_reply_shares_the_stored_value() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "[limits]\nclient_output_buffer_limit_bytes = 0\n");
    let node = Node::start_with("shared", &[], &["--config", &config]);
    let mut con = node.connect();
    let _: () = redis::cmd("SET").arg("big").arg(vec![b'v'; 4 << 20]).query(&mut con).unwrap();
    let before = rss_mib(node.pid());
    let mut greedy = TcpStream::connect(node.client).unwrap();
    greedy.write_all(&mget_repeated("big", 128)).unwrap();
    // The node has answered as much as the socket takes, and waits.
    wait_for("the reply to fill the socket", Duration::from_secs(10), || {
        let mut probe = [0u8; 1];
        greedy.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        greedy.peek(&mut probe).ok().filter(|&n| n == 1)
    });
    let mut peak = before;
    for _ in 0..20 {
        peak = peak.max(rss_mib(node.pid()));
        std::thread::sleep(Duration::from_millis(50));
    }
    report(&format!("stalled 512 MiB reply, no limit: RSS {before} MiB before, peak {peak} MiB"));
    assert!(peak < before + 64, "RSS grew from {before} to {peak} MiB");
    assert_eq!(stat(&node, "client_output_buffer_limit_disconnections"), 0);
    let connected: u64 = node.info_field("clients", "connected_clients").parse().unwrap();
    assert!(connected >= 2, "no limit: the stalled client stays ({connected} connected)");
    drop(greedy);
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn a_pipelining_client_that_never_reads_stalls_only_itself() {
    let node = Node::start("pipeline", &[]);
    let mut con = node.connect();
    // Below the size that is shared: every reply is a copy.
    let _: () = redis::cmd("SET").arg("v").arg(vec![b'x'; 8 * 1024]).query(&mut con).unwrap();
    let before = rss_mib(node.pid());
    let mut greedy = TcpStream::connect(node.client).unwrap();
    greedy.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
    let batch: Vec<u8> = b"*2\r\n$3\r\nGET\r\n$1\r\nv\r\n".repeat(1000);
    // 2,000,000 GETs (40 MB) would be 16 GiB of replies; the node must stop
    // reading long before (the kernel's socket buffers take a few MB).
    let mut sent_batches = 0;
    let started = Instant::now();
    while sent_batches < 2000 && started.elapsed() < Duration::from_secs(20) {
        match greedy.write_all(&batch) {
            Ok(()) => sent_batches += 1,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("write: {e}"),
        }
    }
    let peak = rss_mib(node.pid());
    report(&format!("pipelined GETs never read: {sent_batches} of 2000 batches taken, RSS {before} -> {peak} MiB"));
    assert!(sent_batches < 2000, "the node kept reading a client that does not read");
    assert!(peak < before + 64, "RSS grew from {before} to {peak} MiB");
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn idle_clients_are_closed_after_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "[limits]\ntimeout_s = 1\n");
    let node = Node::start_with("idle", &[], &["--config", &config]);
    let mut con = node.connect();
    let timeout: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("timeout").query(&mut con).unwrap();
    assert_eq!(timeout, ["timeout", "1"]);

    let mut idle = TcpStream::connect(node.client).unwrap();
    let mut busy = TcpStream::connect(node.client).unwrap();
    busy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    // The busy client sends a command every 300 ms for 2.4 s: never idle.
    for _ in 0..8 {
        busy.write_all(b"PING\r\n").unwrap();
        let mut reply = [0u8; 7];
        busy.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"+PONG\r\n");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(closed_by_peer(&mut idle), "idle for over 2 s with timeout 1 s");
    assert!(started.elapsed() >= Duration::from_secs(1));
    busy.write_all(b"PING\r\n").unwrap();
    let mut reply = [0u8; 7];
    busy.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+PONG\r\n", "an active client is kept");
}
