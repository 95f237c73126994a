//! Strong convergence: once faults stop and the mesh is quiet, every live
//! node holds the same entries (tombstones included), and each key's entry
//! is the greatest acknowledged write — the model computed from the
//! history — written after the latest acknowledged FLUSHALL (a key whose
//! writes are all at or before it is held by no node). The one allowed
//! loss is a write excused by the history: held, with everything newer for
//! its key, only by hosts that lost their state (and a flush held only by
//! such a host may or may not have taken effect).
//!
//! A dead entry (a tombstone, or an expired value) may be forgotten: once
//! the newest required write of a key is dead, nodes that hold nothing for
//! it agree with nodes that still hold it dead (their sweeps forget at
//! their own pace), and nothing anywhere is the state the whole mesh
//! reaches once they all have.
//!
//! Entries are compared by key and version (and their deadlines, which
//! have their own version, must agree as well): a version names one write, and
//! a node's sweep may turn an expired value into a tombstone of the same
//! version, which is the same state as far as every reader can tell. Each
//! held entry's content is then checked against the write of that version.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use rumor::core::store::Entry;
use rumor::core::version::Version;

use super::{EndState, Violation, dead_by, describe_entry, list_hosts, short_version, show_key};
use crate::workload::History;

/// This checker's name in reports.
pub const NAME: &str = "convergence";

/// Checks the final snapshot against the history.
pub fn check(snapshot: &EndState, history: &History) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut keys: BTreeSet<&Bytes> = history.by_key.keys().collect();
    for node in &snapshot.nodes {
        keys.extend(node.entries.keys());
    }
    for key in keys {
        let mut groups: BTreeMap<Option<Version>, Vec<usize>> = BTreeMap::new();
        for node in &snapshot.nodes {
            let held = node.entries.get(key).map(|e| e.version);
            groups.entry(held).or_default().push(node.host);
        }
        let required = history.newest_required(key);
        if required.is_some_and(|w| dead_by(&w.entry, w.at, snapshot.at)) && groups.contains_key(&None) {
            // Forgetting under way (or done): the nodes that hold nothing
            // count as agreeing, if every other holds its entry dead.
            let all_dead =
                snapshot.nodes.iter().all(|n| n.entries.get(key).is_none_or(|e| e.live_value(n.wall_ms).is_none()));
            if all_dead {
                groups.remove(&None);
                if groups.is_empty() {
                    continue;
                }
            }
        }
        let expected = required.map(|w| w.entry.version);
        let expectation = match required {
            Some(w) => format!(
                "the greatest acknowledged write is {} (acked by n{} at {:.3}s)",
                describe_entry(Some(&w.entry)),
                w.host,
                w.at.as_secs_f64()
            ),
            None => "no acknowledged write is required".to_owned(),
        };
        if groups.len() > 1 {
            let mut hosts = Vec::new();
            let parts: Vec<String> = groups
                .iter()
                .map(|(version, group)| {
                    hosts.extend(group.iter().take(4));
                    format!(
                        "{} on {} node(s) [{}]",
                        version.map_or("missing".to_owned(), short_version),
                        group.len(),
                        list_hosts(group, 6)
                    )
                })
                .collect();
            violations.push(Violation {
                checker: NAME,
                invariant: "every live node holds identical entries once the mesh is quiet",
                detail: format!("key {:?}: live nodes disagree: {}; {expectation}", show_key(key), parts.join(" / ")),
                key: Some(key.clone()),
                hosts,
                at: snapshot.at,
            });
            continue;
        }
        // One value version everywhere: the deadline, versioned apart from
        // the value, must agree too.
        let deadlines: BTreeSet<_> =
            snapshot.nodes.iter().filter_map(|n| n.entries.get(key)).map(Entry::deadline_stamp).collect();
        if deadlines.len() > 1 {
            violations.push(Violation {
                checker: NAME,
                invariant: "every live node holds identical entries once the mesh is quiet",
                detail: format!(
                    "key {:?}: live nodes agree on the value but hold {} deadlines",
                    show_key(key),
                    deadlines.len()
                ),
                key: Some(key.clone()),
                hosts: snapshot.nodes.iter().take(4).map(|n| n.host).collect(),
                at: snapshot.at,
            });
            continue;
        }
        let Some((held, holders)) = groups.into_iter().next() else {
            continue;
        };
        if held == expected
            || allowed_survivor(history, key, held, expected)
            || allowed_flushed(history, held, expected)
        {
            continue;
        }
        let detail = match held.map(|v| history.write_with(key, v)) {
            None => format!("key {:?}: no live node holds any entry, but {expectation}", show_key(key)),
            Some(Some(_)) => format!(
                "key {:?}: every live node holds {}, but {expectation}",
                show_key(key),
                held.map_or("missing".to_owned(), short_version)
            ),
            Some(None) => format!(
                "key {:?}: every live node holds {}, which no client wrote; {expectation}",
                show_key(key),
                held.map_or("missing".to_owned(), short_version)
            ),
        };
        violations.push(Violation {
            checker: NAME,
            invariant: "each key's entry is the greatest acknowledged version",
            detail,
            key: Some(key.clone()),
            hosts: holders.into_iter().take(4).collect(),
            at: snapshot.at,
        });
    }
    violations.extend(check_contents(snapshot, history));
    violations
}

/// A write newer than the required one is allowed to win if it is an
/// excused write that happened to survive (a packet was in flight when its
/// last holder crashed).
fn allowed_survivor(history: &History, key: &[u8], held: Option<Version>, expected: Option<Version>) -> bool {
    let Some(held) = held else {
        return false;
    };
    expected.is_none_or(|e| held > e) && history.write_with(key, held).is_some_and(|w| w.excused.is_some())
}

/// A key nobody holds is allowed where the required write is older than
/// an excused flush: its host lost its state, but a packet in flight may
/// have carried the flush on.
fn allowed_flushed(history: &History, held: Option<Version>, expected: Option<Version>) -> bool {
    held.is_none() && expected.is_some_and(|e| e.timestamp <= history.maybe_flushed_upto())
}

/// Every held entry must be the write its version names: same value and
/// expiry, or a tombstone if that write was a delete or has expired.
fn check_contents(snapshot: &EndState, history: &History) -> Vec<Violation> {
    let mut violations = Vec::new();
    for node in &snapshot.nodes {
        for (key, entry) in &node.entries {
            let Some(write) = history.write_with(key, entry.version) else {
                // Reported above as a version no client wrote.
                continue;
            };
            if !same_write(entry, &write.entry, node.wall_ms) {
                violations.push(Violation {
                    checker: NAME,
                    invariant: "an entry is exactly the write its version names",
                    detail: format!(
                        "key {:?} on n{}: holds {} but that version was written as {}",
                        show_key(key),
                        node.host,
                        describe_entry(Some(entry)),
                        describe_entry(Some(&write.entry))
                    ),
                    key: Some(key.clone()),
                    hosts: vec![node.host, write.host],
                    at: snapshot.at,
                });
            }
        }
    }
    violations
}

fn same_write(held: &Entry, written: &Entry, wall_ms: u64) -> bool {
    if held == written {
        return true;
    }
    // A swept expired value: a tombstone of the same version (keeping its
    // deadline or not).
    held.value.is_none()
        && held.version == written.version
        && (held.expires_at_ms.is_none() || held.expires_at_ms == written.expires_at_ms)
        && written.value.is_some()
        && written.expires_at_ms.is_some_and(|deadline| deadline <= wall_ms)
}
