//! No acknowledged write is lost unless a greater version replaced it.
//!
//! Two views of it. Per node: a node's store never goes back — once a
//! node has acknowledged or shown a value, no later operation on that node
//! (in the same life) finds an older version or nothing in its place.
//! Globally: at the end, for each key some live node holds the greatest
//! acknowledged write or something newer, unless that write is excused
//! (held only by hosts that crashed and lost their state; counted and
//! reported separately by the run). A dead write (a delete, or a value
//! past its expiry) may be forgotten: a slot emptied after it died is no
//! loss.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{EndState, Violation, dead_by, describe_entry, short_version, show_key};
use crate::workload::{Held, History, HostRecord};

/// This checker's name in reports.
pub const NAME: &str = "lost_writes";

/// Checks the per-node history and the final snapshot.
pub fn check(snapshot: &EndState, history: &History) -> Vec<Violation> {
    let mut violations = per_node(history);
    violations.extend(globally(snapshot, history));
    violations
}

fn per_node(history: &History) -> Vec<Violation> {
    let mut violations = Vec::new();
    for ((host, _life), records) in history.per_host_log() {
        // The newest value this node is known to have held, per key, and when.
        let mut known: BTreeMap<&Bytes, (Held, std::time::Duration)> = BTreeMap::new();
        let mut reported: BTreeMap<&Bytes, ()> = BTreeMap::new();
        for record in records {
            match record {
                HostRecord::Wrote(w) => {
                    let held = Held::of(&w.entry);
                    raise(&mut known, &w.key, held, w.at);
                }
                HostRecord::Saw(o) => {
                    if let Some((k, since)) = known.get(&o.key).copied()
                        && !k.tombstone
                        && o.held.map(|h| h.version) < Some(k.version)
                        && !(o.held.is_none()
                            && (deleted_since(history, o, k)
                                || expired_by(history, o, k)
                                || history.flushed_before(o.seq, k.version)))
                        && reported.insert(&o.key, ()).is_none()
                    {
                        violations.push(Violation {
                            checker: NAME,
                            invariant: "no acknowledged write is lost unless a greater version replaced it",
                            detail: format!(
                                "key {:?} on n{host}: held a value at {} (since {:.3}s) but at {:.3}s holds {}",
                                show_key(&o.key),
                                short_version(k.version),
                                since.as_secs_f64(),
                                o.at.as_secs_f64(),
                                o.held.map_or("nothing".to_owned(), |h| short_version(h.version))
                            ),
                            key: Some(o.key.clone()),
                            hosts: vec![host],
                            at: o.at,
                        });
                    }
                    if let Some(held) = o.held {
                        raise(&mut known, &o.key, held, o.at);
                    }
                }
            }
        }
    }
    violations
}

/// Whether a delete newer than `known` was acknowledged (anywhere) before
/// `o`: then an empty slot is a forgotten tombstone, not a lost write.
fn deleted_since(history: &History, o: &crate::workload::Observation, known: Held) -> bool {
    history.writes_for(&o.key).any(|w| w.entry.value.is_none() && w.entry.version > known.version && w.seq < o.seq)
}

/// Whether the write `known` names had expired by `o`: then an empty slot
/// is its forgotten tombstone.
fn expired_by(history: &History, o: &crate::workload::Observation, known: Held) -> bool {
    history.write_with(&o.key, known.version).is_some_and(|w| dead_by(&w.entry, w.at, o.at))
}

fn raise<'a>(
    known: &mut BTreeMap<&'a Bytes, (Held, std::time::Duration)>,
    key: &'a Bytes,
    held: Held,
    at: std::time::Duration,
) {
    match known.get(key) {
        Some((k, _)) if k.version >= held.version => {}
        _ => {
            known.insert(key, (held, at));
        }
    }
}

fn globally(snapshot: &EndState, history: &History) -> Vec<Violation> {
    let mut violations = Vec::new();
    if snapshot.nodes.is_empty() {
        return violations;
    }
    for key in history.by_key.keys() {
        // A delete nobody holds reads as what it wrote; an older value
        // showing instead is the resurrection checker's business.
        let Some(required) = history.newest_required(key).filter(|w| !dead_by(&w.entry, w.at, snapshot.at)) else {
            continue;
        };
        let kept =
            snapshot.nodes.iter().any(|n| n.entries.get(key).is_some_and(|e| e.version >= required.entry.version));
        // An excused flush (its host lost its state) may still have
        // reached the mesh, from a packet in flight.
        let maybe_flushed = required.entry.version.timestamp <= history.maybe_flushed_upto();
        if !kept && !maybe_flushed {
            violations.push(Violation {
                checker: NAME,
                invariant: "no acknowledged write is lost unless a greater version replaced it",
                detail: format!(
                    "key {:?}: write {} acked by n{} at {:.3}s is held by no live node, and nothing newer is",
                    show_key(key),
                    describe_entry(Some(&required.entry)),
                    required.host,
                    required.at.as_secs_f64()
                ),
                key: Some(key.clone()),
                hosts: vec![required.host],
                at: snapshot.at,
            });
        }
    }
    violations
}
