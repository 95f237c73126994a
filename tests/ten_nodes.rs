//! Ten real nodes on loopback: how fast a write spreads, how fast a killed
//! node is marked down, and that a healthy mesh under load declares no
//! member down and raises next to no false suspicion. The figures are printed; BENCHMARKS.md quotes them.
//!
//! `RUMOR_LOAD_SECS` sets the length of the load phase (default 10; the
//! figure in BENCHMARKS.md used 60).
#![allow(clippy::disallowed_methods, reason = "black-box tests time real processes")]

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Node, members, mesh, wait_for};
use redis::Commands;

fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> u64 {
    let text: String = redis::cmd("INFO").arg(section).query(con).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1).min(sorted.len() - 1);
    sorted[index]
}

#[test]
fn ten_nodes_spread_fast_detect_failure_and_stay_calm_under_load() {
    let mut nodes = mesh(10);

    // Load phase: writers on every node; no member may even be suspected.
    let load_secs: u64 = std::env::var("RUMOR_LOAD_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let stop_at = Instant::now() + Duration::from_secs(load_secs);
    let writers: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let mut con = node.connect();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < stop_at && n < 1_000_000 {
                    let () = con.set(format!("load:{i}:{}", n % 1000), n).unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let writes: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    let sum = |field: &str| -> u64 { nodes.iter().map(|n| info_field(&mut n.connect(), "membership", field)).sum() };
    let (suspicions, declared_down) = (sum("suspicions"), sum("members_declared_down"));
    common::report(&format!(
        "load: {writes} writes over {load_secs} s on 10 nodes, suspicions raised: {suspicions}, \
         members declared down: {declared_down}"
    ));
    // No member is ever declared down. A suspicion refuted in time is SWIM at
    // work, and a debug build of 10 nodes and 10 writers on 2 shared cores can
    // miss a 150 ms probe timeout now and then; a systemic fault (like the
    // overflowing socket buffers of BENCHMARKS.md, 93 suspicions) cannot hide
    // under one per node.
    assert_eq!(declared_down, 0, "a member declared down in a healthy mesh under load");
    assert!(suspicions < 10, "{suspicions} false suspicions in a healthy mesh under load");

    // Dissemination: one watcher thread per other node polls for each key.
    let mut latencies = Vec::new();
    let mut writer = nodes[0].connect();
    let (report_tx, report_rx) = mpsc::channel();
    let mut starts = Vec::new();
    for node in &nodes[1..] {
        let (tx, rx) = mpsc::channel::<(String, Instant)>();
        starts.push(tx);
        let mut con = node.connect();
        let report = report_tx.clone();
        std::thread::spawn(move || {
            while let Ok((key, start)) = rx.recv() {
                let deadline = start + Duration::from_secs(2);
                loop {
                    let got: Option<String> = con.get(&key).unwrap();
                    if got.is_some() || Instant::now() > deadline {
                        let _ = report.send(got.map(|_| start.elapsed()));
                        break;
                    }
                    // Nine watchers spinning on two cores would slow the
                    // nodes they time.
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
    }
    for i in 0..100 {
        let key = format!("spread:{i}");
        let () = writer.set(&key, "v").unwrap();
        let acked = Instant::now();
        for tx in &starts {
            tx.send((key.clone(), acked)).unwrap();
        }
        for _ in &starts {
            latencies.push(report_rx.recv().unwrap().expect("write never arrived"));
        }
    }
    drop(starts);
    latencies.sort();
    let (p50, p99, max) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99), latencies[latencies.len() - 1]);
    common::report(&format!(
        "write visible on other nodes: p50 {p50:?} p99 {p99:?} max {max:?} ({} samples)",
        latencies.len()
    ));
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");

    // Failure detection: kill -9 one node; every other must mark it down.
    // Each observer is watched by its own thread, so the figure is not
    // inflated by polling them one after another.
    let victim = nodes[9].gossip.to_string();
    let mut cons: Vec<_> = nodes[..9].iter().map(Node::connect).collect();
    nodes[9].kill();
    let killed = Instant::now();
    let detections: Vec<Duration> = std::thread::scope(|scope| {
        let watchers: Vec<_> = cons
            .iter_mut()
            .map(|con| {
                let victim = &victim;
                scope.spawn(move || {
                    wait_for("the killed node to be marked down", Duration::from_secs(10), || {
                        let down = members(con).iter().any(|(_, addr, state)| addr == victim && state == "down");
                        down.then(|| killed.elapsed())
                    })
                })
            })
            .collect();
        watchers.into_iter().map(|w| w.join().expect("watcher")).collect()
    });
    let slowest = detections.iter().max().copied().unwrap_or_default();
    common::report(&format!("killed node marked down on all 9 others after {slowest:?}"));
    // Detection waits for some node's probe to reach the dead one: a few
    // probe periods in the tail (see BENCHMARKS.md for measured figures).
    // CI asserts a margin over the 3 s target so that a tail run is not a
    // red build; the figure itself is printed above.
    assert!(slowest < Duration::from_secs(4), "detection took {slowest:?}");
}
