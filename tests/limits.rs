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

/// A raw connection that has had its PING answered, and so waits for input.
fn answered_ping(node: &Node) -> TcpStream {
    let mut stream = TcpStream::connect(node.client).unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut reply = [0u8; 7];
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
    stream
}

/// `CONFIG SET timeout` reaches connections already idle, as Redis's does:
/// one idle for longer than the new timeout is closed at once, one idle
/// for less once it has been idle that long, without sending anything.
#[test]
fn a_timeout_set_at_run_time_closes_clients_already_idle() {
    let node = Node::start("late-timeout", &[]);
    let mut long_idle = answered_ping(&node);
    // The idleness is the setup: 3 s under no timeout.
    std::thread::sleep(Duration::from_secs(3));
    let mut short_idle = answered_ping(&node);
    let mut admin = node.connect();
    let set: String = redis::cmd("CONFIG").arg("SET").arg("timeout").arg(2).query(&mut admin).unwrap();
    assert_eq!(set, "OK");
    let changed = Instant::now();
    wait_for("the client idle for 3 s to be closed", Duration::from_secs(5), || {
        closed_by_peer(&mut long_idle).then_some(())
    });
    let long_closed = changed.elapsed();
    assert!(!closed_by_peer(&mut short_idle), "idle for less than the new timeout");
    wait_for("the client idle since the change to be closed", Duration::from_secs(5), || {
        closed_by_peer(&mut short_idle).then_some(())
    });
    let short_closed = changed.elapsed();
    report(&format!(
        "after CONFIG SET timeout 2: idle 3 s closed after {long_closed:?}, idle 0 s after {short_closed:?}"
    ));
    // A fresh 2 s wait would close it after 2 s.
    assert!(long_closed < Duration::from_secs(1), "closed {long_closed:?} after the change");
    assert!(short_closed >= Duration::from_millis(1_500), "closed {short_closed:?} after the change");
    let mut fresh = node.connect();
    let pong: String = redis::cmd("PING").query(&mut fresh).unwrap();
    assert_eq!(pong, "PONG", "the node goes on");
}

/// CLIENT KILL closes a client the node is stuck writing to (it reads
/// none of its replies), with no `timeout` to give up on it.
#[test]
fn client_kill_closes_a_client_that_reads_nothing() {
    let node = Node::start("kill-writer", &[]);
    let mut admin = node.connect();
    let big = vec![b'x'; 1 << 20];
    let () = redis::cmd("SET").arg("big").arg(&big).query(&mut admin).unwrap();
    let mut greedy = TcpStream::connect(node.client).unwrap();
    greedy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    greedy.write_all(b"CLIENT ID\r\n").unwrap();
    let mut line = [0u8; 64];
    let n = greedy.read(&mut line).unwrap();
    let id: u64 = String::from_utf8_lossy(&line[1..n]).trim().parse().expect("an id");
    // 32 MiB of replies it never reads: more than the socket buffers hold.
    greedy.write_all(&b"GET big\r\n".repeat(32)).unwrap();
    wait_for("the first reply to arrive", Duration::from_secs(5), || {
        (greedy.peek(&mut line).unwrap_or(0) > 0).then_some(())
    });
    let listed = |admin: &mut redis::Connection| -> bool {
        let list: String = redis::cmd("CLIENT").arg("LIST").query(admin).unwrap();
        list.lines().any(|l| l.starts_with(&format!("id={id} ")))
    };
    assert!(listed(&mut admin));
    let killed: u64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query(&mut admin).unwrap();
    assert_eq!(killed, 1);
    wait_for("the killed client to be gone", Duration::from_secs(5), || (!listed(&mut admin)).then_some(()));
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
    wait_for("the idle client, idle for over 2 s with timeout 1 s, to be closed", Duration::from_secs(5), || {
        closed_by_peer(&mut idle).then_some(())
    });
    assert!(started.elapsed() >= Duration::from_secs(1));
    busy.write_all(b"PING\r\n").unwrap();
    let mut reply = [0u8; 7];
    busy.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+PONG\r\n", "an active client is kept");
}

/// A `rumor serve` under `prlimit --nofile=N`, killed when dropped.
struct Limited {
    child: std::process::Child,
    client: std::net::SocketAddr,
    log: std::path::PathBuf,
}

impl Limited {
    fn start(nofile: u32, args: &[&str], log: &Path) -> Limited {
        let client = std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port()));
        let gossip = std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port()));
        let stderr = std::fs::File::create(log).unwrap();
        let child = std::process::Command::new("prlimit")
            .arg(format!("--nofile={nofile}:{nofile}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_rumor"))
            .args(["serve", "--listen", &client.to_string(), "--gossip", &gossip.to_string()])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("prlimit rumor");
        wait_for("the limited node to accept clients", Duration::from_secs(20), || {
            let mut probe = TcpStream::connect(client).ok()?;
            probe.write_all(b"PING\r\n").ok()?;
            let mut reply = [0u8; 7];
            probe.read_exact(&mut reply).ok().filter(|()| &reply == b"+PONG\r\n")
        });
        Limited { child, client, log: log.to_owned() }
    }

    fn connect(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://{}/", self.client)).unwrap();
        client.get_connection_with_timeout(Duration::from_secs(5)).unwrap()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        wait_for("the limited node to exit", Duration::from_secs(20), || self.child.try_wait().unwrap())
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends PING on a new connection: `Some(true)` for PONG, `Some(false)`
/// for the max-clients error or a closed connection.
fn ping_new(addr: std::net::SocketAddr) -> (TcpStream, bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = stream.write_all(b"PING\r\n");
    let mut reply = [0u8; 64];
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n") {
        match stream.read(&mut reply) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&reply[..n]),
        }
    }
    match &got[..] {
        b"+PONG\r\n" => (stream, true),
        b"-ERR max number of clients reached\r\n" | b"" => (stream, false),
        other => panic!("unexpected reply {:?}", String::from_utf8_lossy(other)),
    }
}

#[test]
fn idle_clients_at_the_descriptor_limit_leave_a_data_dir_node_running() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config_file(dir.path(), "[limits]\nstorage_open_files = 32\n[gossip_streams]\nmax_inbound = 16\n");
    let args = ["--config", config.as_str(), "--data-dir", data.to_str().unwrap()];
    let mut node = Limited::start(256, &args, &dir.path().join("node.log"));
    let mut con = node.connect();
    let maxclients: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxclients").query(&mut con).unwrap();
    let fitted: usize = maxclients[1].parse().unwrap();
    report(&format!("nofile 256: maxclients fitted to {fitted}"));
    assert!(fitted > 16 && fitted < 256 - 128, "fitted to {fitted}");
    assert!(node.log_text().contains("max_clients lowered"), "{}", node.log_text());

    wait_for("the start-up probe's slot to free", Duration::from_secs(5), || {
        let info: String = redis::cmd("INFO").arg("clients").query(&mut con).ok()?;
        info.contains("connected_clients:1\r\n").then_some(())
    });

    // More idle clients than descriptors: the ones past maxclients are
    // refused with Redis's error; the rest stay connected.
    let mut idle = Vec::new();
    let mut refused = 0;
    for _ in 0..300 {
        let (stream, served) = ping_new(node.client);
        if served {
            idle.push(stream);
        } else {
            refused += 1;
        }
    }
    report(&format!("300 idle clients: {} served, {refused} refused", idle.len()));
    assert_eq!(idle.len(), fitted - 1, "every slot but the writer's is taken");
    assert_eq!(refused, 300 - idle.len());

    // Writes go on into the data dir, big enough for its blob files.
    let value = vec![b'x'; 4096];
    for i in 0..2000 {
        let _: () = redis::cmd("SET").arg(format!("key:{i}")).arg(&value).query(&mut con).unwrap();
    }
    let _: () = redis::cmd("SET").arg("last").arg("written").query(&mut con).unwrap();
    assert!(node.running(), "the node is still running:\n{}", node.log_text());
    let status: String = redis::cmd("INFO").arg("persistence").query(&mut con).unwrap();
    assert!(status.contains("last_write_status:ok"), "{status}");
    drop(idle);
    drop(con);
    assert!(node.terminate().success(), "{}", node.log_text());
    assert!(!node.log_text().contains("Too many open files"), "{}", node.log_text());

    // Everything written is there after a restart.
    let again = Node::start_with("again", &[], &["--data-dir", data.to_str().unwrap()]);
    let mut con = again.connect();
    let last: String = redis::cmd("GET").arg("last").query(&mut con).unwrap();
    assert_eq!(last, "written");
    let dbsize: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 2001);
}
