//! Long commands never stall membership: KEYS and SCAN with a rare MATCH
//! over at least 200,000 keys, more on a machine fast enough to need them
//! for a command to last over half a second (as a plain MATCH over a few
//! million keys would in a release build), run back to back from as many
//! clients as the node has cores, and a third runs the same KEYS inside
//! MULTI/EXEC, which holds every other command of the node back while it
//! runs — two more clients' GETs wait for it, one per core, and a crowd of
//! 600 connections sends a GET each on every round (more waiters than
//! tokio's blocking pool has threads). The node's
//! SWIM must still answer every probe in time (150 ms by default), so its
//! peers never suspect it.
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Node, report, wait_for};

/// Keys loaded into the busy node. `RUMOR_LONG_KEYS` overrides it, and
/// then no keys are added: `RUMOR_LONG_KEYS=3000000 cargo test --release
/// --test long_commands` runs it over millions of keys in release builds.
const DEFAULT_KEYS: usize = 200_000;
/// Pairs per MSET in the load.
const MSET_PAIRS: usize = 1_000;
/// How long the long commands run: several suspicion timeouts (1 s by default).
const BUSY_FOR: Duration = Duration::from_secs(6);
/// Clients running long commands at once, by what they run: KEYS and SCAN
/// (one per core keeps every client-side worker busy), KEYS inside EXEC,
/// and GETs that wait for the EXECs (one per core).
const BUSY_CLIENTS: [Busy; 5] = [Busy::Keys, Busy::Scan, Busy::KeysInExec, Busy::Get, Busy::Get];

#[derive(Clone, Copy, PartialEq)]
enum Busy {
    Keys,
    Scan,
    KeysInExec,
    Get,
}
/// A MATCH that finds nothing: the keys end in a digit.
const RARE_MATCH: &str = "*[a-z]*[0-9]*[a-z]*[0-9]*[a-z]*[0-9]*[a-z]*[0-9]*[a-z]*[0-9]*x";
/// Connections in the crowd that waits for the EXECs.
const CROWD: usize = 600;

/// The others' suspicion counters must hold still this long before the
/// long commands start: replicating the load can itself stir suspicion.
const SETTLED_FOR: Duration = Duration::from_secs(2);
/// A long command lasts at least this long: several probe timeouts (150 ms
/// by default). Keys are added until one KEYS takes this long.
const LONG_COMMAND: Duration = Duration::from_millis(600);
/// However fast the machine, the load stops at this many times the first.
const MAX_GROWTH: usize = 4;

/// The keys to load, and whether to add more on a fast machine: not when
/// the count was asked for.
fn key_count() -> (usize, bool) {
    match std::env::var("RUMOR_LONG_KEYS").ok().and_then(|v| v.parse().ok()) {
        Some(asked) => (asked, false),
        None => (DEFAULT_KEYS, true),
    }
}

fn dbsize(con: &mut redis::Connection) -> usize {
    redis::cmd("DBSIZE").query(con).unwrap_or(0)
}

fn suspicions(node: &Node) -> u64 {
    node.info_field("membership", "suspicions").parse().expect("suspicions is a number")
}

/// How many times `observer` logged a suspicion of `member`: the counters
/// count suspicions of anyone, and on two loaded cores the idle peers may
/// miss each other's probe, which is not what this test is about.
fn suspicions_of(observer: &Node, member: &Node) -> usize {
    let addr = member.gossip.to_string();
    let log = observer.log_text();
    assert!(log.contains("node starting"), "{} logs at info (RUST_LOG), or suspicions go unseen", observer.name);
    log.lines().filter(|l| l.contains("member suspected") && l.contains(&addr)).count()
}

/// Loads keys `session:<i>:user:<j>` for `i` in `keys`, with 8-byte
/// values: MSETs of `MSET_PAIRS` pairs piped through `redis-cli --pipe`.
fn load(node: &Node, keys: std::ops::Range<usize>) {
    let started = Instant::now();
    let n = keys.end;
    let mut resp = Vec::with_capacity(keys.len() * 64);
    for batch in keys.clone().step_by(MSET_PAIRS) {
        let end = (batch + MSET_PAIRS).min(n);
        resp.extend_from_slice(format!("*{}\r\n$4\r\nMSET\r\n", 1 + 2 * (end - batch)).as_bytes());
        for i in batch..end {
            let key = format!("session:{i:08}:user:{:06}", i % 100_000);
            resp.extend_from_slice(format!("${}\r\n{key}\r\n$8\r\nvvvvvvvv\r\n", key.len()).as_bytes());
        }
    }
    let mut pipe = Command::new("redis-cli")
        .args(["-h", &node.client.ip().to_string(), "-p", &node.client.port().to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    pipe.stdin.take().expect("stdin").write_all(&resp).expect("write to redis-cli");
    let out = pipe.wait_with_output().expect("redis-cli --pipe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("errors: 0"), "redis-cli --pipe: {text}");
    report(&format!("loaded {} keys in {:.1?}", keys.len(), started.elapsed()));
}

/// Waits until every node holds all `n` keys.
fn wait_replicated(nodes: &[Node], n: usize) {
    for node in nodes {
        let mut con = node.connect();
        wait_for(&format!("{} to hold all {n} keys", node.name), Duration::from_secs(60), || {
            (dbsize(&mut con) == n).then_some(())
        });
    }
}

/// How long one KEYS with `RARE_MATCH` takes on `node`.
fn time_keys(node: &Node) -> Duration {
    let mut con = node.connect();
    let _ = con.set_read_timeout(Some(Duration::from_secs(60)));
    let started = Instant::now();
    let found: Vec<String> = redis::cmd("KEYS").arg(RARE_MATCH).query(&mut con).expect("KEYS");
    assert!(found.is_empty());
    started.elapsed()
}

#[test]
fn long_keys_and_scans_raise_no_suspicion() {
    let (mut n, may_grow) = key_count();
    let nodes = common::mesh(3);
    let busy = &nodes[0];
    load(busy, 0..n);
    // Replication of the load settles first: its own work is not what is measured.
    wait_replicated(&nodes, n);
    // A fast machine gets more keys, in proportion to how short KEYS was.
    let took = time_keys(busy);
    if may_grow && took < LONG_COMMAND {
        let wanted = (n as f64 * LONG_COMMAND.as_secs_f64() / took.as_secs_f64().max(0.001)) as usize;
        let more = wanted.min(n * MAX_GROWTH).next_multiple_of(MSET_PAIRS);
        report(&format!("KEYS over {n} keys took {took:.1?}: loading up to {more}"));
        load(busy, n..more);
        n = more;
        wait_replicated(&nodes, n);
    }
    common::wait_all_alive(&nodes, Duration::from_secs(20));
    let before = wait_for("the others' suspicion counters to settle", Duration::from_secs(20), || {
        let first: Vec<u64> = nodes[1..].iter().map(suspicions).collect();
        std::thread::sleep(SETTLED_FOR);
        let second: Vec<u64> = nodes[1..].iter().map(suspicions).collect();
        (first == second).then_some(second)
    });

    let busy_before: Vec<usize> = nodes[1..].iter().map(|n| suspicions_of(n, busy)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let longest_ms = Arc::new(AtomicU64::new(0));
    let commands = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = BUSY_CLIENTS
        .into_iter()
        .map(|busy_with| {
            let (stop, longest_ms, commands) = (stop.clone(), longest_ms.clone(), commands.clone());
            let mut con = busy.connect();
            let _ = con.set_read_timeout(Some(Duration::from_secs(60)));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    if busy_with == Busy::Keys {
                        let found: Vec<String> = redis::cmd("KEYS").arg(RARE_MATCH).query(&mut con).expect("KEYS");
                        assert!(found.is_empty());
                    } else if busy_with == Busy::KeysInExec {
                        let (found,): (Vec<String>,) =
                            redis::pipe().atomic().cmd("KEYS").arg(RARE_MATCH).query(&mut con).expect("EXEC");
                        assert!(found.is_empty());
                    } else if busy_with == Busy::Get {
                        let _: Option<String> =
                            redis::cmd("GET").arg("session:00000000:user:000000").query(&mut con).expect("GET");
                        continue;
                    } else {
                        // One SCAN call over every shard with a MATCH that finds nothing.
                        let (_, found): (u64, Vec<String>) = redis::cmd("SCAN")
                            .arg(0)
                            .arg("MATCH")
                            .arg(RARE_MATCH)
                            .arg("COUNT")
                            .arg(u32::MAX)
                            .query(&mut con)
                            .expect("SCAN");
                        assert!(found.is_empty());
                    }
                    longest_ms.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                    commands.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let crowd = {
        let stop = stop.clone();
        let mut streams: Vec<std::net::TcpStream> = (0..CROWD)
            .map(|_| {
                let stream = std::net::TcpStream::connect(busy.client).expect("crowd connection");
                stream.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
                stream
            })
            .collect();
        std::thread::spawn(move || {
            let mut rounds = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for stream in &mut streams {
                    stream.write_all(b"GET session:00000000:user:000000\r\n").expect("crowd GET");
                }
                for stream in &mut streams {
                    let mut reply = [0u8; 14];
                    std::io::Read::read_exact(stream, &mut reply).expect("crowd reply");
                    assert_eq!(&reply, b"$8\r\nvvvvvvvv\r\n", "a GET's reply");
                }
                rounds += 1;
            }
            rounds
        })
    };
    // Watch the others' view of the busy node the whole time.
    let started = Instant::now();
    let mut seen_suspect = None;
    let mut observers: Vec<_> = nodes[1..].iter().map(|n| (n.name.clone(), n.connect())).collect();
    while started.elapsed() < BUSY_FOR {
        for (name, con) in &mut observers {
            let seen = common::members(con);
            let state = seen.into_iter().find(|(_, addr, _)| *addr == busy.gossip.to_string()).map(|(_, _, s)| s);
            if state.as_deref() != Some("alive") {
                seen_suspect.get_or_insert((name.clone(), state, started.elapsed()));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("busy client");
    }
    let crowd_rounds = crowd.join().expect("crowd");
    let after: Vec<u64> = nodes[1..].iter().map(suspicions).collect();
    let busy_after: Vec<usize> = nodes[1..].iter().map(|n| suspicions_of(n, busy)).collect();
    let longest = longest_ms.load(Ordering::Relaxed);
    let ran = commands.load(Ordering::Relaxed);
    report(&format!(
        "{ran} long commands over {n} keys in {BUSY_FOR:?}, the longest {longest} ms; \
         suspicions of the others before {before:?}, after {after:?} (of the busy node {busy_before:?}, \
         {busy_after:?}); {crowd_rounds} rounds of {CROWD} GETs"
    ));
    // The test only means something if the commands were long.
    assert!(longest >= LONG_COMMAND.as_millis() as u64 / 2, "the long commands took only {longest} ms: load more keys");
    assert_eq!(seen_suspect, None, "a peer saw the busy node as not alive");
    assert_eq!(busy_before, busy_after, "the busy node's peers suspected it");
}
