//! Fault scenarios on real hosts (network namespaces), checked like Jepsen:
//! clients record every operation, and after the faults end the final state
//! of every live node is checked against the history. Needs root (CI runs
//! as root) and nftables for the loss scenario; skips with a message
//! otherwise. A failing run keeps its history and node logs in the lab
//! folder it names.
//!
//! `RUMOR_LOSS_SECS` sets the loss scenario's length (default 15; the
//! BENCHMARKS.md figure used 60).
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::history::{History, Op, Outcome, Record};
use common::netns::Lab;
use common::{members, wait_for};
use redis::Commands;

const HOSTS: usize = 5;
const CLIENTS: usize = 5;
const KEYS_PER_CLIENT: u64 = 40;
/// An acknowledged write may be lost with its node if the node was killed
/// this soon after acknowledging it.
const KILL_WINDOW: Duration = Duration::from_secs(2);

struct Scenario {
    name: &'static str,
    lab: Lab,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
    writers: Vec<JoinHandle<u64>>,
    down: Vec<usize>,
    hosts: usize,
    /// Nodes keep their data in a data dir: a kill excuses no lost write.
    durable: bool,
}

impl Scenario {
    fn start(name: &'static str) -> Option<Scenario> {
        Scenario::start_with(name, false)
    }

    fn start_with(name: &'static str, durable: bool) -> Option<Scenario> {
        Scenario::start_on(name, HOSTS, durable, None)
    }

    /// `hosts` nodes, with a data dir each if `durable`, and `config`
    /// (TOML) as their config file if given.
    fn start_on(name: &'static str, hosts: usize, durable: bool, config: Option<&str>) -> Option<Scenario> {
        let mut lab = Lab::new(hosts)?;
        let mut args = Vec::new();
        if durable {
            args.extend(["--data-dir".to_owned(), format!("{}/data-{{host}}", lab.dir.display())]);
        }
        if let Some(config) = config {
            let path = lab.dir.join("config.toml");
            std::fs::write(&path, config).expect("config file");
            args.extend(["--config".to_owned(), path.display().to_string()]);
        }
        lab.node_args(&args.iter().map(String::as_str).collect::<Vec<_>>());
        for i in 0..hosts {
            lab.start(i, &[0, hosts - 1]);
        }
        wait_mesh(&lab, hosts, &[]);
        for i in 0..hosts {
            lab.wait_serving(i);
        }
        let history = Arc::new(History::default());
        let stop = Arc::new(AtomicBool::new(false));
        let writers = (0..CLIENTS).map(|c| spawn_writer(&lab, hosts, c, history.clone(), stop.clone())).collect();
        Some(Scenario { name, lab, history, stop, writers, down: Vec::new(), hosts, durable })
    }

    fn kill(&mut self, i: usize) {
        self.lab.kill(i);
        if !self.durable {
            self.history.killed(i);
        }
        self.down.push(i);
    }

    fn restart(&mut self, i: usize) {
        self.lab.start(i, &[0, self.hosts - 1]);
        self.down.retain(|d| *d != i);
    }

    /// Heals, stops the clients, waits for convergence and checks.
    fn finish(mut self) {
        self.lab.heal();
        let healed = Instant::now();
        self.stop.store(true, Ordering::Relaxed);
        let ops: u64 = self.writers.drain(..).map(|w| w.join().unwrap_or(0)).sum();
        let live: Vec<usize> = (0..self.hosts).filter(|i| !self.down.contains(i)).collect();
        wait_mesh(&self.lab, self.hosts, &self.down);
        let reformed = healed.elapsed();
        let mut finals = Vec::new();
        let converged = wait_for("live nodes to converge", Duration::from_secs(60), || {
            finals = live.iter().map(|i| contents(&self.lab, *i)).collect::<Vec<_>>();
            finals.windows(2).all(|w| w[0] == w[1]).then(|| healed.elapsed())
        });
        let suspicions: u64 = live.iter().map(|i| info_field(&self.lab, *i, "suspicions")).sum();
        self.history.save(&self.lab.dir.join("history.txt"));
        let verdict = self.history.check(&finals, KILL_WINDOW);
        common::report(&format!(
            "{}: {ops} ops ({} acknowledged) on {} keys; re-formed {reformed:?}, converged {converged:?} after heal; \
             suspicions raised {suspicions}; lost with a killed node {}; violations {}",
            self.name,
            verdict.acked,
            verdict.keys,
            verdict.lost_with_node.len(),
            verdict.violations.len()
        ));
        for line in &verdict.lost_with_node {
            common::report(&format!("  lost with its node: {line}"));
        }
        assert!(
            verdict.violations.is_empty(),
            "{}: {:#?}",
            self.name,
            &verdict.violations[..verdict.violations.len().min(10)]
        );
    }
}

fn spawn_writer(
    lab: &Lab,
    hosts: usize,
    client: usize,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<u64> {
    let node = client % hosts;
    let url = format!("redis://{}/", lab.client(node));
    std::thread::spawn(move || {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ client as u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut con: Option<redis::Connection> = None;
        let mut ops = 0u64;
        while !stop.load(Ordering::Relaxed) && ops < 200_000 {
            if con.is_none() {
                con = redis::Client::open(url.as_str())
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
                    .ok();
                if let Some(c) = con.as_mut() {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
                    let _ = c.set_write_timeout(Some(Duration::from_secs(1)));
                } else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
            let Some(c) = con.as_mut() else { continue };
            let key = format!("c{client}:k{}", next() % KEYS_PER_CLIENT);
            let op = if next() % 5 == 0 { Op::Del } else { Op::Set(format!("c{client}-{ops}")) };
            let start = history.now();
            let result: redis::RedisResult<()> = match &op {
                Op::Set(v) => c.set(&key, v),
                Op::Del => c.del::<_, i64>(&key).map(|_| ()),
            };
            let end = history.now();
            if result.is_err() {
                con = None;
            }
            history.record(Record { client, node, key, op, start, end, outcome: Outcome::of(&result) });
            ops += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
        ops
    })
}

fn contents(lab: &Lab, i: usize) -> BTreeMap<String, String> {
    let mut con = lab.connect(i);
    let keys: Vec<String> = con.keys("*").unwrap();
    if keys.is_empty() {
        return BTreeMap::new();
    }
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut con).unwrap();
    keys.into_iter().zip(values).filter_map(|(k, v)| Some((k, v?))).collect()
}

fn info_field(lab: &Lab, i: usize, field: &str) -> u64 {
    let text: String = redis::cmd("INFO").arg("membership").query(&mut lab.connect(i)).unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Waits until every live node lists every live node alive.
fn wait_mesh(lab: &Lab, hosts: usize, down: &[usize]) {
    let live: Vec<usize> = (0..hosts).filter(|i| !down.contains(i)).collect();
    for &i in &live {
        wait_for("the mesh to form", Duration::from_secs(30), || {
            let seen = members(&mut lab.connect(i));
            live.iter()
                .all(|j| seen.iter().any(|(_, a, s)| *a == lab.gossip(*j).to_string() && s == "alive"))
                .then_some(())
        });
    }
}

fn pause(d: Duration) {
    std::thread::sleep(d);
}

#[test]
fn a_node_isolated_then_returned() {
    let Some(s) = Scenario::start("isolated node") else { return };
    pause(Duration::from_secs(2));
    for other in 0..HOSTS - 1 {
        s.lab.cut(HOSTS - 1, other);
    }
    pause(Duration::from_secs(6));
    s.finish();
}

#[test]
fn kill_and_restart_nodes_during_writes() {
    let Some(s) = Scenario::start("kill -9 and restart") else { return };
    kill_three_in_turn(s);
}

/// The same kills with a data dir on every node: nothing a killed node
/// acknowledged may be lost (no write is excused), and it comes back with
/// what it held.
#[test]
fn kill_and_restart_nodes_with_data_dirs_loses_nothing() {
    let Some(s) = Scenario::start_with("kill -9 and restart, data dirs", true) else { return };
    kill_three_in_turn(s);
}

/// Kills three random nodes in turn, each restarted a second later.
fn kill_three_in_turn(mut s: Scenario) {
    // Random victims, reproducible: RUMOR_FAULT_SEED replays a run's choice.
    let seed: u64 = std::env::var("RUMOR_FAULT_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    let victims: Vec<usize> = (0..3u64)
        .map(|i| (seed.wrapping_mul(6364136223846793005).wrapping_add(i * 1442695040888963407) >> 33) as usize % HOSTS)
        .collect();
    common::report(&format!("kill -9 victims {victims:?} (RUMOR_FAULT_SEED={seed})"));
    for victim in victims {
        pause(Duration::from_secs(2));
        s.kill(victim);
        pause(Duration::from_secs(1));
        s.restart(victim);
    }
    pause(Duration::from_secs(2));
    s.finish();
}

/// Partitions held for longer than the tombstone TTL and a whole sweep
/// pass, with clients writing and deleting on both sides: tombstones are
/// kept until every member holds them, so after the heal no acknowledged
/// write is lost and no deleted key is back.
#[test]
fn one_one_and_two_two_partitions_longer_than_the_tombstone_ttl() {
    for (name, hosts, left) in
        [("1|1 partition past the TTL", 2, &[0][..]), ("2|2 partition past the TTL", 4, &[0, 1][..])]
    {
        let config = "[anti_entropy]\ntombstone_ttl_ms = 2000\n";
        let Some(s) = Scenario::start_on(name, hosts, false, Some(config)) else { return };
        pause(Duration::from_secs(2));
        s.lab.partition(left);
        // Past the TTL and a whole sweep pass (16 s).
        pause(Duration::from_secs(20));
        s.finish();
    }
}

#[test]
fn a_one_way_partition() {
    let Some(s) = Scenario::start("one-way partition") else { return };
    pause(Duration::from_secs(2));
    // Host 1 hears host 0; host 0 does not hear host 1.
    s.lab.cut_one_way(1, 0);
    pause(Duration::from_secs(6));
    s.finish();
}

#[test]
fn a_flapping_link() {
    let Some(s) = Scenario::start("flapping link") else { return };
    for _ in 0..10 {
        s.lab.cut(1, 2);
        pause(Duration::from_millis(300));
        s.lab.heal();
        pause(Duration::from_millis(300));
    }
    s.finish();
}

#[test]
fn packet_loss_on_every_link() {
    if !Lab::has_nft() {
        eprintln!("SKIPPED: nftables is not installed");
        return;
    }
    let Some(s) = Scenario::start("10% loss everywhere, 30% on 0->1") else { return };
    for i in 0..HOSTS {
        s.lab.loss(i, 10, None);
    }
    s.lab.loss(0, 30, Some(1));
    let secs: u64 = std::env::var("RUMOR_LOSS_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
    pause(Duration::from_secs(secs));
    s.finish();
}

/// The checker itself: a lost acknowledged write, a resurrected delete and
/// diverging nodes are violations; a write lost with its killed node is
/// counted apart; a write of unknown outcome may land last.
#[test]
fn the_history_checker_can_fail() {
    let history = History::default();
    let at = |ms: u64| Duration::from_millis(ms);
    let record = |key: &str, op: Op, start: u64, node: usize| Record {
        client: 0,
        node,
        key: key.into(),
        op,
        start: at(start),
        end: at(start + 1),
        outcome: Outcome::Acked,
    };
    history.record(record("lost", Op::Set("a".into()), 0, 0));
    history.record(record("lost", Op::Set("b".into()), 10, 0));
    history.record(record("deleted", Op::Set("x".into()), 0, 1));
    history.record(record("deleted", Op::Del, 10, 1));
    history.record(record("fine", Op::Set("v".into()), 0, 1));
    // A write whose client timed out may still run after the client's next,
    // acknowledged one: not a violation.
    history.record(Record { outcome: Outcome::Unknown, ..record("late", Op::Set("u".into()), 0, 1) });
    history.record(record("late", Op::Set("w".into()), 10, 1));
    // A refused DEL never ran: the acknowledged SET after it is lost.
    history.record(Record { outcome: Outcome::Refused, ..record("refused", Op::Del, 0, 1) });
    history.record(record("refused", Op::Set("s".into()), 10, 1));
    // Nor does one after the last acknowledged write hide its loss.
    history.record(record("refused-after", Op::Set("t".into()), 0, 1));
    history.record(Record { outcome: Outcome::Refused, ..record("refused-after", Op::Del, 10, 1) });
    let node_view: BTreeMap<String, String> = [("lost", "a"), ("deleted", "x"), ("fine", "v"), ("late", "u")]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let verdict = history.check(std::slice::from_ref(&node_view), KILL_WINDOW);
    assert_eq!(verdict.violations.len(), 4, "{verdict:?}");
    assert!(verdict.lost_with_node.is_empty());

    history.killed_at(0, at(20));
    let verdict = history.check(std::slice::from_ref(&node_view), KILL_WINDOW);
    assert_eq!((verdict.violations.len(), verdict.lost_with_node.len()), (3, 1), "{verdict:?}");

    // A write of unknown outcome on a node killed before the next one ran
    // died with the node: it cannot be the last.
    history.killed_at(1, at(5));
    let verdict = history.check(std::slice::from_ref(&node_view), KILL_WINDOW);
    assert!(verdict.violations.iter().any(|v| v.starts_with("key late:")), "{verdict:?}");

    let mut other = node_view.clone();
    other.insert("fine".into(), "w".into());
    let verdict = history.check(&[node_view, other], KILL_WINDOW);
    assert!(verdict.violations.iter().any(|v| v.contains("differ")), "{verdict:?}");
}
