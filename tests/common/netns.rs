//! Hosts in Linux network namespaces on one bridge, for tests that need
//! real partitions: each host is a namespace with one veth on a bridge that
//! lives in a hub namespace; the test process reaches the hosts through a
//! veth of its own on the same bridge. Faults are blackhole routes inside
//! the hosts. Every namespace is named after this process and deleted on
//! drop; leftovers of killed runs are deleted at the next start.
//!
//! Only addresses of these namespaces (10.213.K.0/24, K chosen per lab) are
//! ever targets.
//!
//! Where namespaces cannot be created the tests that need them skip with a
//! message, unless `RUMOR_REQUIRE_NETNS=1` (set by `.ci/run`, which runs as
//! root): then they fail, so a CI that lost the ability does not pass them
//! silently.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::wait_for;

static LABS: AtomicU32 = AtomicU32::new(0);
const PREFIX: &str = "rumortest-";
pub const CLIENT_PORT: u16 = 6379;
pub const GOSSIP_PORT: u16 = 7946;

/// Runs `ip` with `args`; panics with its output on failure.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Whether this process may create namespaces (root with iproute2).
pub fn available() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    root && Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success())
}

/// Deletes namespaces left by runs whose process is gone.
fn remove_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let pid = rest.split('-').next().unwrap_or("");
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// A lab of hosts, each able to run one `rumor serve`.
pub struct Lab {
    tag: String,
    subnet: u8,
    hosts: usize,
    nodes: Vec<Option<Child>>,
    extra: Vec<String>,
    /// Node logs and anything a failing test leaves for reading.
    pub dir: PathBuf,
}

impl Lab {
    /// `hosts` namespaces on a bridge, or `None` (with a message) when this
    /// process cannot create namespaces; panics instead with
    /// `RUMOR_REQUIRE_NETNS=1`.
    pub fn new(hosts: usize) -> Option<Lab> {
        if !available() {
            let required = std::env::var("RUMOR_REQUIRE_NETNS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "network namespaces are required (RUMOR_REQUIRE_NETNS=1) but this process cannot create them: needs \
                 root and iproute2"
            );
            eprintln!("SKIPPED: needs root and iproute2 to create network namespaces");
            return None;
        }
        remove_leftovers();
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let subnet = ((pid.wrapping_mul(7) + n) % 250) as u8;
        let tag = format!("{PREFIX}{pid}-{n}");
        let dir = std::env::temp_dir().join(&tag);
        std::fs::create_dir_all(&dir).expect("lab dir");
        let lab = Lab { tag, subnet, hosts, nodes: (0..hosts).map(|_| None).collect(), extra: Vec::new(), dir };
        let hub = lab.hub();
        ip(&["netns", "add", &hub]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        let (root_if, root_peer) = (format!("rt{subnet}r{n}"), format!("rt{subnet}R{n}"));
        ip(&["link", "add", &root_if, "type", "veth", "peer", "name", &root_peer, "netns", &hub]);
        ip(&["-n", &hub, "link", "set", &root_peer, "master", "br0", "up"]);
        ip(&["addr", "add", &format!("10.213.{subnet}.254/24"), "dev", &root_if]);
        ip(&["link", "set", &root_if, "up"]);
        for i in 0..hosts {
            let ns = lab.ns(i);
            let (inner, outer) = (format!("h{i}"), format!("rt{subnet}h{i}n{n}"));
            ip(&["netns", "add", &ns]);
            ip(&["link", "add", &outer, "netns", &hub, "type", "veth", "peer", "name", &inner, "netns", &ns]);
            ip(&["-n", &hub, "link", "set", &outer, "master", "br0", "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", lab.addr(i)), "dev", &inner]);
            ip(&["-n", &ns, "link", "set", &inner, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        Some(lab)
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.tag)
    }

    fn ns(&self, i: usize) -> String {
        format!("{}-h{i}", self.tag)
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet, i as u8 + 1)
    }

    /// Host `i`'s client address.
    pub fn client(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.addr(i), CLIENT_PORT))
    }

    /// Host `i`'s gossip address.
    pub fn gossip(&self, i: usize) -> SocketAddr {
        SocketAddr::from((self.addr(i), GOSSIP_PORT))
    }

    /// Extra arguments for every node started after this call; `{host}`
    /// in an argument becomes the host's name (`h0`, `h1`, …).
    pub fn node_args(&mut self, args: &[&str]) {
        self.extra = args.iter().map(|s| s.to_string()).collect();
    }

    /// Starts `rumor serve` on host `i`, seeded with `seeds`' gossip addresses.
    pub fn start(&mut self, i: usize, seeds: &[usize]) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("h{i}.log")));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(i), env!("CARGO_BIN_EXE_rumor"), "serve"])
            .args(["--name", &format!("h{i}")])
            .args(["--listen", &self.client(i).to_string()])
            .args(["--gossip", &self.gossip(i).to_string()])
            // A lab bridge of namespaces nobody else reaches: no key needed.
            .arg("--insecure-gossip");
        // The test process is not loopback to the node: without a password
        // protected mode would refuse it, unless a test asks for it.
        if !self.extra.iter().any(|a| a == "--protected-mode") {
            cmd.args(["--protected-mode", "no"]);
        }
        for s in seeds {
            cmd.args(["--seed", &self.gossip(*s).to_string()]);
        }
        let host = format!("h{i}");
        cmd.args(self.extra.iter().map(|a| a.replace("{host}", &host)));
        cmd.env("RUST_LOG", "info").stdin(Stdio::null()).stdout(Stdio::null());
        cmd.stderr(log.map(Stdio::from).unwrap_or(Stdio::null()));
        self.nodes[i] = Some(cmd.spawn().expect("start rumor in a namespace"));
        let client = self.client(i);
        wait_for("a node in its namespace to accept clients", Duration::from_secs(20), || {
            std::net::TcpStream::connect_timeout(&client, Duration::from_millis(200)).ok()
        });
    }

    /// Waits until host `i`'s node has caught up and serves keys
    /// (`loading:0`): a node that starts empty with seeds answers
    /// `-LOADING` until then.
    pub fn wait_serving(&self, i: usize) {
        let client = self.client(i);
        wait_for("a node in its namespace to serve keys", Duration::from_secs(30), || {
            let mut con = redis::Client::open(format!("redis://{client}")).ok()?.get_connection().ok()?;
            let text: String = redis::cmd("INFO").arg("persistence").query(&mut con).ok()?;
            text.lines().any(|l| l.trim() == "loading:0").then_some(())
        });
    }

    /// `kill -9` of host `i`'s node.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A client connection to host `i`.
    pub fn connect(&self, i: usize) -> redis::Connection {
        let client = redis::Client::open(format!("redis://{}/", self.client(i))).expect("client");
        client.get_connection_with_timeout(Duration::from_secs(5)).expect("connect")
    }

    /// Drops everything host `from` sends to host `to` (a blackhole route).
    pub fn cut_one_way(&self, from: usize, to: usize) {
        ip(&["-n", &self.ns(from), "route", "add", "blackhole", &format!("{}/32", self.addr(to))]);
    }

    /// Cuts `a` and `b` off from each other, both ways.
    pub fn cut(&self, a: usize, b: usize) {
        self.cut_one_way(a, b);
        self.cut_one_way(b, a);
    }

    /// Splits the hosts into `left` and the rest.
    pub fn partition(&self, left: &[usize]) {
        for a in left {
            for b in (0..self.hosts).filter(|b| !left.contains(b)) {
                self.cut(*a, b);
            }
        }
    }

    /// Drops `percent`% of what host `from` sends (to `to` only, if given),
    /// with an nftables `numgen random` rule in the host's namespace.
    pub fn loss(&self, from: usize, percent: u8, to: Option<usize>) {
        let ns = self.ns(from);
        let nft = |rule: &str| {
            let out = Command::new("ip").args(["netns", "exec", &ns, "nft", rule]).output().expect("run nft");
            assert!(out.status.success(), "nft {rule}: {}", String::from_utf8_lossy(&out.stderr));
        };
        nft("add table inet rumorfault");
        nft("add chain inet rumorfault out { type filter hook output priority 0; }");
        let target =
            to.map(|t| format!("ip daddr {} ", self.addr(t))).unwrap_or_else(|| "ip daddr 10.213.0.0/16 ".into());
        nft(&format!("add rule inet rumorfault out {target}numgen random mod 100 < {percent} drop"));
    }

    /// Whether `nft` is installed (packet-loss scenarios need it).
    pub fn has_nft() -> bool {
        Command::new("nft").arg("--version").output().is_ok_and(|o| o.status.success())
    }

    /// Removes every fault.
    pub fn heal(&self) {
        for i in 0..self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "exec", &self.ns(i), "nft", "delete table inet rumorfault"])
                .stderr(Stdio::null())
                .status();
        }
        for i in 0..self.hosts {
            for j in (0..self.hosts).filter(|j| *j != i) {
                let _ = Command::new("ip")
                    .args(["-n", &self.ns(i), "route", "del", "blackhole", &format!("{}/32", self.addr(j))])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.hosts {
            self.kill(i);
        }
        for i in 0..self.hosts {
            let _ = Command::new("ip").args(["netns", "del", &self.ns(i)]).status();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.hub()]).status();
        if std::thread::panicking() || std::env::var_os("RUMOR_KEEP_LAB").is_some() {
            eprintln!("lab {} failed: node logs kept in {}", self.tag, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
