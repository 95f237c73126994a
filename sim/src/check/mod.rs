//! The invariant checkers, one per file, and what they judge: the final
//! state of every live node ([`EndState`]), the clients' [`History`], and
//! the measurements the world took on the way.
//!
//! [`History`]: crate::workload::History

pub mod bounds;
pub mod convergence;
pub mod lost_writes;
pub mod membership;
pub mod replies;
pub mod resurrection;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use rumor::core::membership::{Identity, MemberState};
use rumor::core::store::Entry;
use rumor::core::version::{NodeId, Version};

/// Whether a write acknowledged at simulated time `written_at` is dead by
/// `at`: a delete, or a value whose expiry has passed. A dead entry is one
/// a node may forget (after its tombstone TTL, once the garbage-collection
/// horizon passes it), so an empty slot where it stood is no loss. The
/// expiry is measured from the write's own clock reading (its version), so
/// skew between hosts does not make a live value look dead.
pub fn dead_by(entry: &Entry, written_at: Duration, at: Duration) -> bool {
    match (&entry.value, entry.expires_at_ms) {
        (None, _) => true,
        (Some(_), Some(deadline)) => {
            let px_ms = deadline.saturating_sub(entry.version.timestamp.physical_ms());
            written_at.saturating_add(Duration::from_millis(px_ms)) <= at
        }
        (Some(_), None) => false,
    }
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The checker that found it (its module name).
    pub checker: &'static str,
    /// The invariant, in a line.
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
    /// The key involved, if any.
    pub key: Option<Bytes>,
    /// Hosts involved, for the event excerpt.
    pub hosts: Vec<usize>,
    /// Simulated time it was found.
    pub at: Duration,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {} — {} (at {:.3}s)", self.checker, self.invariant, self.detail, self.at.as_secs_f64())
    }
}

/// How one node saw one member at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeenMember {
    /// The member's host, if the address is one of ours.
    pub host: Option<usize>,
    /// The member's id.
    pub id: NodeId,
    /// Its life (start-up time, renewals).
    pub life: u64,
    /// Alive, suspect or down.
    pub state: MemberState,
}

/// One live node at the end of a run.
#[derive(Clone, Debug)]
pub struct NodeState {
    /// Its host.
    pub host: usize,
    /// Its node's identity.
    pub identity: Identity,
    /// Its wall clock, ms.
    pub wall_ms: u64,
    /// Every raw entry, tombstones and expired values included.
    pub entries: BTreeMap<Bytes, Entry>,
    /// Its member list, self excluded.
    pub members: Vec<SeenMember>,
}

/// The final state of the mesh.
#[derive(Clone, Debug, Default)]
pub struct EndState {
    /// When it was taken.
    pub at: Duration,
    /// Every live node, by host index.
    pub nodes: Vec<NodeState>,
    /// Hosts that crashed or left for good.
    pub gone: Vec<usize>,
}

/// A short form of an entry for reports: `value(12B)@ts.logical@writer`.
pub fn describe_entry(entry: Option<&Entry>) -> String {
    match entry {
        None => "missing".to_owned(),
        Some(e) => {
            let what = match (&e.value, e.expires_at_ms) {
                (None, None) => "tombstone".to_owned(),
                (None, Some(at)) => format!("tombstone(expired {at})"),
                (Some(v), None) => format!("value({}B)", v.len()),
                (Some(v), Some(at)) => format!("value({}B, expires {at})", v.len()),
            };
            format!("{what}@{}", short_version(e.version))
        }
    }
}

/// A version with a shortened writer id.
pub fn short_version(v: Version) -> String {
    let writer = v.writer.to_string();
    format!("{}/{}", v.timestamp, &writer[..8.min(writer.len())])
}

/// Shows a key as text when it is printable.
pub fn show_key(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// Up to `limit` host names, then a count of the rest.
pub fn list_hosts(hosts: &[usize], limit: usize) -> String {
    let mut names: Vec<String> = hosts.iter().take(limit).map(|h| format!("n{h}")).collect();
    if hosts.len() > limit {
        names.push(format!("… {} more", hosts.len() - limit));
    }
    names.join(", ")
}
