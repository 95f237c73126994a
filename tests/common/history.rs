//! A Jepsen-style history of client operations and its checker.
//!
//! Each key is written by one client through one node, so the node's
//! clock orders that key's writes as the client issued them: the key's
//! final value must be its last acknowledged write, a later write the node
//! did not refuse, or an earlier write whose outcome the client never
//! learned, if it may have run late. The one allowed exception is a write
//! acknowledged by a memory-only node that was `kill -9`ed shortly after,
//! before it could pass the write on: those are counted and named apart.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a client did to a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `SET key value`.
    Set(String),
    /// `DEL key`.
    Del,
}

/// One client operation.
#[derive(Clone, Debug)]
pub struct Record {
    pub client: usize,
    pub node: usize,
    pub key: String,
    pub op: Op,
    pub start: Duration,
    pub end: Duration,
    pub outcome: Outcome,
}

/// What the client learned of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The node acknowledged it.
    Acked,
    /// The node answered with an error (`-LOADING`, `-OOM`, …): it did not run.
    Refused,
    /// A timeout or a dropped connection: it may have run, even later.
    Unknown,
}

impl Outcome {
    /// The outcome of a client call: a server's error reply is a refusal,
    /// anything else that failed is unknown.
    pub fn of<T>(result: &redis::RedisResult<T>) -> Outcome {
        match result {
            Ok(_) => Outcome::Acked,
            Err(e) if e.code().is_some() => Outcome::Refused,
            Err(_) => Outcome::Unknown,
        }
    }
}

/// Operations and faults, timed from one start.
pub struct History {
    start: Instant,
    records: Mutex<Vec<Record>>,
    kills: Mutex<Vec<(usize, Duration)>>,
}

impl Default for History {
    fn default() -> Self {
        History { start: Instant::now(), records: Mutex::new(Vec::new()), kills: Mutex::new(Vec::new()) }
    }
}

impl History {
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn record(&self, record: Record) {
        self.records.lock().unwrap().push(record);
    }

    /// Notes that `node` was killed (state lost) now.
    pub fn killed(&self, node: usize) {
        self.killed_at(node, self.now());
    }

    /// Notes that `node` was killed at `at`.
    pub fn killed_at(&self, node: usize, at: Duration) {
        self.kills.lock().unwrap().push((node, at));
    }

    /// Writes the history as text lines, for reading after a failure.
    pub fn save(&self, path: &Path) {
        let mut text = String::new();
        for (node, at) in self.kills.lock().unwrap().iter() {
            let _ = writeln!(text, "{:>10.3}s kill node {node}", at.as_secs_f64());
        }
        for r in self.records.lock().unwrap().iter() {
            let _ = writeln!(
                text,
                "{:>10.3}s..{:.3}s client {} node {} {} {:?} {}",
                r.start.as_secs_f64(),
                r.end.as_secs_f64(),
                r.client,
                r.node,
                r.key,
                r.op,
                match r.outcome {
                    Outcome::Acked => "ok",
                    Outcome::Refused => "refused",
                    Outcome::Unknown => "unknown",
                }
            );
        }
        let _ = std::fs::write(path, text);
    }

    /// Checks the final contents of every live node against the history.
    pub fn check(&self, finals: &[BTreeMap<String, String>], kill_window: Duration) -> Verdict {
        let records = self.records.lock().unwrap().clone();
        let kills = self.kills.lock().unwrap().clone();
        let mut verdict = Verdict::default();
        if let Some(first) = finals.first() {
            for (i, other) in finals.iter().enumerate().skip(1) {
                if other != first {
                    let differing = first
                        .keys()
                        .chain(other.keys())
                        .find(|k| first.get(*k) != other.get(*k))
                        .cloned()
                        .unwrap_or_default();
                    verdict.violations.push(format!("live nodes 0 and {i} differ (first at key {differing:?})"));
                }
            }
        }
        let Some(final_state) = finals.first() else { return verdict };
        let mut by_key: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
        for r in &records {
            by_key.entry(&r.key).or_default().push(r);
        }
        verdict.keys = by_key.len();
        verdict.acked = records.iter().filter(|r| r.outcome == Outcome::Acked).count();
        for (key, mut ops) in by_key {
            ops.sort_by_key(|r| r.start);
            let last_acked = ops.iter().rposition(|r| r.outcome == Outcome::Acked);
            let outcome = |op: &Op| match op {
                Op::Set(v) => Some(v.clone()),
                Op::Del => None,
            };
            let actual = final_state.get(key).cloned();
            // Acceptable: the last acknowledged write, or any later one the
            // node did not refuse, or an earlier one whose outcome the client
            // never learned: a client that timed out reconnects, and a
            // request left on the old connection may run after the new
            // connection's, and be stamped later — unless its node was
            // killed in between, and the request with it.
            let from = last_acked.unwrap_or(0);
            let may_run_late = |r: &&&Record| {
                let next_start = last_acked.map_or(Duration::MAX, |i| ops[i].start);
                r.outcome == Outcome::Unknown
                    && !kills.iter().any(|(node, at)| *node == r.node && *at >= r.start && *at <= next_start)
            };
            let later = ops[from..].iter().filter(|r| r.outcome != Outcome::Refused);
            let mut acceptable: Vec<Option<String>> =
                later.chain(ops[..from].iter().filter(may_run_late)).map(|r| outcome(&r.op)).collect();
            if last_acked.is_none() {
                acceptable.push(None);
            }
            if acceptable.contains(&actual) {
                continue;
            }
            let Some(index) = last_acked else { continue };
            let acked = ops[index];
            // From the write's start: the client notes its end after reading
            // the reply, which may be after a kill that came just after the ack.
            let lost_with_node = kills
                .iter()
                .any(|(node, at)| *node == acked.node && *at >= acked.start && *at <= acked.end + kill_window);
            let line = format!("key {key}: final {actual:?}, last acknowledged {:?} on node {}", acked.op, acked.node);
            if lost_with_node {
                verdict.lost_with_node.push(line);
            } else {
                verdict.violations.push(line);
            }
        }
        verdict
    }
}

/// The checker's findings.
#[derive(Debug, Default)]
pub struct Verdict {
    pub keys: usize,
    pub acked: usize,
    /// Writes lost only because their node was killed right after the ack.
    pub lost_with_node: Vec<String>,
    /// Everything else that went wrong.
    pub violations: Vec<String>,
}
