//! No resurrection: a deleted key never comes back with an older value.
//!
//! Per node: once a node has acknowledged a delete or shown a tombstone,
//! no later operation on it (in the same life) finds a value older than
//! that tombstone. At the end: no live node shows a live value for a key
//! whose (non-excused) acknowledged delete is newer than that value.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use rumor::core::version::Version;

use super::{EndState, Violation, list_hosts, short_version, show_key};
use crate::workload::{History, HostRecord};

/// This checker's name in reports.
pub const NAME: &str = "resurrection";

const INVARIANT: &str = "a deleted key never comes back with an older value";

/// Checks the per-node history and the final snapshot.
pub fn check(snapshot: &EndState, history: &History) -> Vec<Violation> {
    let mut violations = per_node(history);
    violations.extend(at_the_end(snapshot, history));
    violations
}

fn per_node(history: &History) -> Vec<Violation> {
    let mut violations = Vec::new();
    for ((host, _life), records) in history.per_host_log() {
        let mut tombstone: BTreeMap<&Bytes, (Version, Duration)> = BTreeMap::new();
        let mut reported: BTreeSet<&Bytes> = BTreeSet::new();
        for record in records {
            let (key, held, at) = match record {
                HostRecord::Wrote(w) => (&w.key, Some(crate::workload::Held::of(&w.entry)), w.at),
                HostRecord::Saw(o) => (&o.key, o.held, o.at),
            };
            let Some(held) = held else {
                continue;
            };
            if held.tombstone {
                if tombstone.get(key).is_none_or(|(v, _)| held.version > *v) {
                    tombstone.insert(key, (held.version, at));
                }
                continue;
            }
            if let Some((deleted, since)) = tombstone.get(key).copied()
                && held.version < deleted
                && reported.insert(key)
            {
                violations.push(Violation {
                    checker: NAME,
                    invariant: INVARIANT,
                    detail: format!(
                        "key {:?} on n{host}: deleted at {} (seen {:.3}s) but at {:.3}s holds the older value {}",
                        show_key(key),
                        short_version(deleted),
                        since.as_secs_f64(),
                        at.as_secs_f64(),
                        short_version(held.version)
                    ),
                    key: Some(key.clone()),
                    hosts: vec![host],
                    at,
                });
            }
        }
    }
    violations
}

fn at_the_end(snapshot: &EndState, history: &History) -> Vec<Violation> {
    let mut violations = Vec::new();
    for key in history.by_key.keys() {
        let newest_delete = history
            .writes_for(key)
            .filter(|w| w.excused.is_none() && w.entry.value.is_none())
            .max_by_key(|w| w.entry.version);
        let Some(delete) = newest_delete else {
            continue;
        };
        let back: Vec<(usize, Version)> = snapshot
            .nodes
            .iter()
            .filter_map(|n| {
                let e = n.entries.get(key)?;
                (e.live_value(n.wall_ms).is_some() && e.version < delete.entry.version).then_some((n.host, e.version))
            })
            .collect();
        if let Some((_, version)) = back.first() {
            let hosts: Vec<usize> = back.iter().map(|(h, _)| *h).collect();
            violations.push(Violation {
                checker: NAME,
                invariant: INVARIANT,
                detail: format!(
                    "key {:?}: deleted by n{} at {:.3}s ({}), but {} node(s) [{}] show the older value {}",
                    show_key(key),
                    delete.host,
                    delete.at.as_secs_f64(),
                    short_version(delete.entry.version),
                    hosts.len(),
                    list_hosts(&hosts, 6),
                    short_version(*version)
                ),
                key: Some(key.clone()),
                hosts: hosts.into_iter().take(4).chain([delete.host]).collect(),
                at: snapshot.at,
            });
        }
    }
    violations
}
