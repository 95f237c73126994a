//! Shared helpers for black-box tests: real `rumor serve` processes on
//! loopback, free ports, and waiting on conditions with deadlines.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port free for both TCP and UDP on 127.0.0.1 (the gossip port uses
/// both), below the kernel's ephemeral range and never handed out before in
/// this test process. A node down for a restart leaves its ports free: from
/// the ephemeral range, the kernel could give them to any socket bound to
/// port 0 or any outgoing connection meanwhile, and the node would fail to
/// bind once back; below it, only this function hands them out.
pub fn free_port() -> u16 {
    static NEXT: std::sync::Mutex<Option<u32>> = std::sync::Mutex::new(None);
    let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768);
    let span = ephemeral_low.saturating_sub(1_024).min(10_000);
    assert!(span >= 1_000, "the ephemeral port range starts at {ephemeral_low}: no room below it for test ports");
    let base = ephemeral_low - span;
    let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
    // Test binaries run one after another: each starts at its own offset,
    // away from the ports of the one before (whose process id is close),
    // whose sockets may linger.
    let count = next.get_or_insert(std::process::id().wrapping_mul(7_919) % span);
    for _ in 0..span {
        let port = u16::try_from(base + *count % span).expect("below 65536");
        *count += 1;
        let tcp = TcpListener::bind(("127.0.0.1", port));
        if tcp.is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {base} and {ephemeral_low}");
}

/// Polls `check` until it returns `Some`, or panics with `what` at the deadline.
pub fn wait_for<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One `rumor serve` process; killed when dropped.
pub struct Node {
    pub name: String,
    pub client: SocketAddr,
    pub gossip: SocketAddr,
    pub seeds: Vec<SocketAddr>,
    pub extra: Vec<String>,
    pub log: PathBuf,
    /// Whether (re)starting waits until the node serves keys, after
    /// catching up with its peers if it started empty.
    pub wait_ready: bool,
    child: Option<Child>,
}

impl Node {
    /// Starts a node on fresh ports that joins through `seeds`.
    pub fn start(name: &str, seeds: &[SocketAddr]) -> Node {
        Self::start_with(name, seeds, &[])
    }

    /// Like [`Node::start`], with extra command-line arguments.
    pub fn start_with(name: &str, seeds: &[SocketAddr], extra: &[&str]) -> Node {
        Self::start_inner(name, seeds, extra, true)
    }

    /// Like [`Node::start_with`], but returns as soon as the node accepts
    /// clients, which may still be answering `-LOADING`.
    pub fn start_loading(name: &str, seeds: &[SocketAddr], extra: &[&str]) -> Node {
        Self::start_inner(name, seeds, extra, false)
    }

    fn start_inner(name: &str, seeds: &[SocketAddr], extra: &[&str], wait_ready: bool) -> Node {
        let client = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let gossip = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = std::env::temp_dir().join(format!("rumor-test-{}-{name}-{}.log", std::process::id(), gossip.port()));
        let mut node = Node {
            name: name.into(),
            client,
            gossip,
            seeds: seeds.to_vec(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            log,
            wait_ready,
            child: None,
        };
        node.spawn();
        node
    }

    /// (Re)starts the process on the same addresses.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rumor"));
        cmd.arg("serve")
            .args(["--name", &self.name])
            .args(["--listen", &self.client.to_string()])
            .args(["--gossip", &self.gossip.to_string()]);
        for seed in &self.seeds {
            cmd.args(["--seed", &seed.to_string()]);
        }
        cmd.args(&self.extra);
        // `rumor::run` at info whatever the filter: its "node starting"
        // line is what says the ports are this process's.
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        cmd.env("RUST_LOG", format!("{filter},rumor::run=info"));
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let starts_before = self.log_text().matches("node starting").count();
        self.child = Some(cmd.spawn().expect("start rumor"));
        let started = Instant::now();
        // A connection alone could reach another socket on the port (a CI
        // run once connected, then was refused, before the node had bound
        // it): the node first logs that it has bound its ports.
        let bound = |node: &Node| node.log_text().matches("node starting").count() > starts_before;
        while !bound(self) || std::net::TcpStream::connect(self.client).is_err() {
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || started.elapsed() > Duration::from_secs(20) {
                let how = exited.map_or("did not accept clients in 20 s".to_owned(), |s| format!("exited with {s}"));
                panic!("{} {how}; the end of its log:\n{}", self.name, self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.wait_ready {
            let mut con = self.connect();
            wait_for(&format!("{} to catch up and serve keys", self.name), Duration::from_secs(30), || {
                let text: String = match redis::cmd("INFO").arg("persistence").query(&mut con) {
                    Ok(text) => text,
                    // A node that wants AUTH first: the test that set its
                    // password waits for what it needs itself.
                    Err(e) if e.code() == Some("NOAUTH") => return Some(()),
                    Err(_) => return None,
                };
                text.lines().any(|l| l.trim() == "loading:0").then_some(())
            });
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        self.wait_exit()
    }

    /// Waits for the process to exit by itself (20 s, then it is killed);
    /// returns its exit status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("{} did not exit within 20 s", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The running process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {}", self.name);
    }

    /// One field of `INFO section`, as text.
    pub fn info_field(&self, section: &str, field: &str) -> String {
        let text: String = redis::cmd("INFO").arg(section).query(&mut self.connect()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in INFO {section}:\n{text}"))
            .trim()
            .to_owned()
    }

    /// A fresh client connection.
    pub fn connect(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://{}/", self.client)).expect("client");
        client
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {}: {e}; the end of its log:\n{}", self.name, self.log_tail()))
    }

    /// The last few KiB of the node's log: CI keeps nothing else.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let start = text.len().saturating_sub(4096);
        let start = (start..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        text[start..].to_owned()
    }

    /// The node's log so far, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!("log of {} kept at {}", self.name, self.log.display());
        }
    }
}

/// `MEMBERS` as (name, addr, state) triples.
pub fn members(con: &mut redis::Connection) -> Vec<(String, String, String)> {
    let lines: Vec<String> = redis::cmd("MEMBERS").query(con).unwrap_or_default();
    lines
        .iter()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            Some((parts.next()?.to_owned(), parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

/// The state `observer` reports for the member at `gossip`, if listed.
pub fn state_of(observer: &Node, gossip: SocketAddr) -> Option<String> {
    let mut con = observer.connect();
    members(&mut con).into_iter().find(|(_, addr, _)| *addr == gossip.to_string()).map(|(_, _, state)| state)
}

/// Waits until `observer` lists the member at `gossip` alive: after a load
/// a missed probe may leave it suspect a moment.
pub fn wait_alive(observer: &Node, gossip: SocketAddr, deadline: Duration) {
    wait_for(&format!("{} to see {gossip} alive", observer.name), deadline, || {
        (state_of(observer, gossip).as_deref() == Some("alive")).then_some(())
    });
}

/// Starts `n` nodes that all seed through the first one, and waits until
/// every node sees every other alive.
pub fn mesh(n: usize) -> Vec<Node> {
    let first = Node::start("node1", &[]);
    let seed = first.gossip;
    let mut nodes = vec![first];
    for i in 2..=n {
        nodes.push(Node::start(&format!("node{i}"), &[seed]));
    }
    wait_all_alive(&nodes, Duration::from_secs(20));
    nodes
}

/// Waits until every node lists every node as alive.
pub fn wait_all_alive(nodes: &[Node], deadline: Duration) {
    for observer in nodes {
        let mut con = observer.connect();
        wait_for(&format!("{} to see all {} members alive", observer.name, nodes.len()), deadline, || {
            let seen = members(&mut con);
            let alive = nodes
                .iter()
                .all(|n| seen.iter().any(|(_, addr, state)| *addr == n.gossip.to_string() && state == "alive"));
            alive.then_some(())
        });
    }
}
pub mod history;
pub mod netns;

/// Prints a measured figure so that it shows in the test run's output even
/// when the test passes (libtest captures `println!`, not direct writes).
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
