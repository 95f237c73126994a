//! Membership converges: after healing, every live node sees every live
//! node alive (with its current identity) and every host gone for good as
//! down; and a crashed node is marked down by every node that saw it alive
//! within the detection bound.
//!
//! Also here: the world's running view of who sees whom (from the nodes'
//! `MemberUp`/`MemberDown` events), the detection timings, and the count of
//! suspicions of live nodes over links that were not cut (false
//! suspicions on healthy links).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rumor::core::membership::MemberState;

use super::{EndState, Violation, list_hosts};

/// This checker's name in reports.
pub const NAME: &str = "membership";

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Who sees whom up, from membership events: an `n × n` table.
#[derive(Clone, Debug)]
pub struct Views {
    hosts: usize,
    state: Vec<u8>,
    up_count: Vec<usize>,
}

impl Views {
    /// Nobody knows anybody.
    pub fn new(hosts: usize) -> Self {
        Views { hosts, state: vec![UNKNOWN; hosts * hosts], up_count: vec![0; hosts] }
    }

    /// `observer` saw `subject` come up.
    pub fn member_up(&mut self, observer: usize, subject: usize) {
        if let Some(cell) = self.cell(observer, subject)
            && self.state[cell] != UP
        {
            self.state[cell] = UP;
            self.up_count[observer] += 1;
        }
    }

    /// `observer` saw `subject` go down.
    pub fn member_down(&mut self, observer: usize, subject: usize) {
        if let Some(cell) = self.cell(observer, subject) {
            if self.state[cell] == UP {
                self.up_count[observer] -= 1;
            }
            self.state[cell] = DOWN;
        }
    }

    /// `observer` restarted and knows nobody.
    pub fn reset(&mut self, observer: usize) {
        if observer < self.hosts {
            let row = observer * self.hosts;
            self.state[row..row + self.hosts].fill(UNKNOWN);
            self.up_count[observer] = 0;
        }
    }

    /// Whether `observer` sees `subject` up.
    pub fn sees_up(&self, observer: usize, subject: usize) -> bool {
        self.cell(observer, subject).is_some_and(|cell| self.state[cell] == UP)
    }

    /// How many members `observer` sees up.
    pub fn up_count(&self, observer: usize) -> usize {
        self.up_count.get(observer).copied().unwrap_or(0)
    }

    fn cell(&self, observer: usize, subject: usize) -> Option<usize> {
        (observer < self.hosts && subject < self.hosts).then(|| observer * self.hosts + subject)
    }
}

/// How long it took the mesh to mark one stopped host down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    /// The host that stopped.
    pub subject: usize,
    /// When.
    pub at: Duration,
    /// Whether it left gracefully (rather than crashing).
    pub graceful: bool,
    /// Nodes that saw it up when it stopped.
    pub observers: usize,
    /// Observers that have not marked it down yet.
    pending: BTreeSet<usize>,
    /// Time until the last observer marked it down.
    pub done_after: Option<Duration>,
    /// The host came back, or a partition overlapped the detection, before
    /// it completed: not judged.
    pub abandoned: bool,
}

impl Detection {
    /// Observers still to mark the host down.
    pub fn pending(&self) -> Vec<usize> {
        self.pending.iter().copied().collect()
    }
}

/// Every detection of the run.
#[derive(Clone, Debug, Default)]
pub struct Detections {
    records: Vec<Detection>,
    open: BTreeMap<usize, usize>,
}

impl Detections {
    /// `subject` stopped at `at`, seen up by `observers`. Returns the
    /// record's index (for its deadline).
    pub fn on_stop(&mut self, subject: usize, at: Duration, graceful: bool, observers: BTreeSet<usize>) -> usize {
        let index = self.records.len();
        let done_after = observers.is_empty().then_some(Duration::ZERO);
        self.records.push(Detection {
            subject,
            at,
            graceful,
            observers: observers.len(),
            pending: observers,
            done_after,
            abandoned: false,
        });
        if done_after.is_none() {
            self.open.insert(subject, index);
        }
        index
    }

    /// `observer` marked `subject` down at `at`.
    pub fn on_down(&mut self, observer: usize, subject: usize, at: Duration) {
        if let Some(&index) = self.open.get(&subject) {
            let record = &mut self.records[index];
            record.pending.remove(&observer);
            if record.pending.is_empty() {
                record.done_after = Some(at.saturating_sub(record.at));
                self.open.remove(&subject);
            }
        }
    }

    /// `observer` itself stopped: it will never mark anyone down.
    pub fn on_observer_stop(&mut self, observer: usize, at: Duration) {
        let subjects: Vec<usize> = self.open.keys().copied().collect();
        for subject in subjects {
            if let Some(&index) = self.open.get(&subject)
                && self.records[index].pending.contains(&observer)
            {
                self.on_down(observer, subject, at);
            }
        }
    }

    /// Stops judging `subject`'s open detection: it came back, or a
    /// partition makes "everyone marks it down in time" moot.
    pub fn abandon(&mut self, subject: usize) {
        if let Some(index) = self.open.remove(&subject) {
            self.records[index].abandoned = true;
        }
    }

    /// Stops judging every open detection (a partition began).
    pub fn abandon_all(&mut self) {
        for (_, index) in std::mem::take(&mut self.open) {
            self.records[index].abandoned = true;
        }
    }

    /// A record, if `index` names one.
    pub fn record(&self, index: usize) -> Option<&Detection> {
        self.records.get(index)
    }

    /// Every record.
    pub fn records(&self) -> &[Detection] {
        &self.records
    }
}

/// What one node noticed about one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberNote {
    /// It came up (joined, rejoined, renamed).
    Up,
    /// It turned suspect.
    Suspect,
    /// It went down.
    Down,
}

/// Every membership change every node noticed, for excerpts (bounded).
#[derive(Clone, Debug, Default)]
pub struct MemberLog {
    entries: Vec<(Duration, u32, u32, MemberNote)>,
}

/// Membership changes remembered for excerpts.
const MEMBER_LOG_MAX: usize = 4_000_000;

impl MemberLog {
    /// `observer` noticed `note` about `subject` at `at`.
    pub fn push(&mut self, at: Duration, observer: usize, subject: usize, note: MemberNote) {
        if self.entries.len() < MEMBER_LOG_MAX {
            let id = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
            self.entries.push((at, id(observer), id(subject), note));
        }
    }

    /// The latest `limit` notes about `subject` by any of `observers`,
    /// oldest first.
    pub fn about(&self, subject: usize, observers: &[usize], limit: usize) -> Vec<(Duration, usize, MemberNote)> {
        let mut picked: Vec<(Duration, usize, MemberNote)> = self
            .entries
            .iter()
            .rev()
            .filter(|(_, o, s, _)| *s as usize == subject && observers.contains(&(*o as usize)))
            .map(|(at, o, _, n)| (*at, *o as usize, *n))
            .collect();
        picked.reverse();
        // One line per change: repeated suspicions of a suspect say nothing new.
        picked.dedup_by(|b, a| a.1 == b.1 && a.2 == b.2);
        let skip = picked.len().saturating_sub(limit);
        picked.drain(..skip);
        picked
    }
}

/// Suspicions, classified.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SuspicionCounts {
    /// Every member turn to suspect, on every node.
    pub total: u64,
    /// Of those, of a live host (current identity) over a link that was not
    /// cut either way: false suspicions on healthy links.
    pub false_on_healthy_links: u64,
    /// Of those, while the network had no link faults at all.
    pub false_on_clean_network: u64,
}

/// A violation for a detection that missed its bound (`None` if it did not).
pub fn late_detection(record: &Detection, bound: Duration, now: Duration) -> Option<Violation> {
    let elapsed = now.saturating_sub(record.at);
    if record.abandoned
        || record.done_after.is_some_and(|d| d <= bound)
        || (record.done_after.is_none() && elapsed < bound)
    {
        return None;
    }
    let pending = record.pending();
    let detail = match record.done_after {
        Some(after) => format!(
            "n{} {} at {:.3}s; the last of {} observers marked it down after {:.3}s (bound {:.3}s)",
            record.subject,
            if record.graceful { "left" } else { "crashed" },
            record.at.as_secs_f64(),
            record.observers,
            after.as_secs_f64(),
            bound.as_secs_f64()
        ),
        None => format!(
            "n{} {} at {:.3}s; after {:.3}s (bound {:.3}s) {} of {} observers still had it up: {}",
            record.subject,
            if record.graceful { "left" } else { "crashed" },
            record.at.as_secs_f64(),
            elapsed.as_secs_f64(),
            bound.as_secs_f64(),
            pending.len(),
            record.observers,
            list_hosts(&pending, 8)
        ),
    };
    Some(Violation {
        checker: NAME,
        invariant: "a crashed node is marked down everywhere within the detection bound",
        detail,
        key: None,
        hosts: [record.subject].into_iter().chain(pending.into_iter().take(3)).collect(),
        at: now,
    })
}

/// Checks the final member lists.
pub fn check(snapshot: &EndState) -> Vec<Violation> {
    let mut violations = Vec::new();
    let live: BTreeMap<usize, &super::NodeState> = snapshot.nodes.iter().map(|n| (n.host, n)).collect();
    // subject -> observers with a wrong view, and what they saw.
    let mut wrong: BTreeMap<usize, Vec<(usize, &'static str)>> = BTreeMap::new();
    for node in &snapshot.nodes {
        let mut seen: BTreeMap<usize, (rumor::core::version::NodeId, MemberState)> = BTreeMap::new();
        for m in &node.members {
            if let Some(host) = m.host {
                seen.insert(host, (m.id, m.state));
            }
        }
        for (&subject, other) in &live {
            if subject == node.host {
                continue;
            }
            let verdict = match seen.get(&subject) {
                Some((id, MemberState::Alive)) if *id == other.identity.id => continue,
                Some((_, MemberState::Alive)) => "alive under an old identity",
                Some((_, MemberState::Suspect)) => "suspect",
                Some((_, MemberState::Down)) => "down",
                Some((_, MemberState::Left)) => "left",
                None => "unknown",
            };
            wrong.entry(subject).or_default().push((node.host, verdict));
        }
        for &gone in &snapshot.gone {
            if let Some((_, state @ (MemberState::Alive | MemberState::Suspect))) = seen.get(&gone) {
                let verdict = if *state == MemberState::Alive { "alive though gone" } else { "suspect though gone" };
                wrong.entry(gone).or_default().push((node.host, verdict));
            }
        }
    }
    for (subject, observers) in wrong {
        let is_gone = snapshot.gone.contains(&subject);
        let hosts: Vec<usize> = observers.iter().map(|(h, _)| *h).collect();
        let mut by_verdict: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (h, v) in &observers {
            by_verdict.entry(v).or_default().push(*h);
        }
        let parts: Vec<String> =
            by_verdict.iter().map(|(v, hs)| format!("{v} to {} [{}]", hs.len(), list_hosts(hs, 6))).collect();
        violations.push(Violation {
            checker: NAME,
            invariant: if is_gone {
                "a node gone for good is marked down everywhere"
            } else {
                "every live node sees every live node alive"
            },
            detail: format!("n{subject} is {}", parts.join("; ")),
            key: None,
            hosts: [subject].into_iter().chain(hosts.into_iter().take(3)).collect(),
            at: snapshot.at,
        });
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_count_members_up() {
        let mut v = Views::new(3);
        v.member_up(0, 1);
        v.member_up(0, 1);
        v.member_up(0, 2);
        assert_eq!(v.up_count(0), 2);
        v.member_down(0, 1);
        assert_eq!(v.up_count(0), 1);
        assert!(!v.sees_up(0, 1) && v.sees_up(0, 2));
        v.reset(0);
        assert_eq!(v.up_count(0), 0);
    }

    #[test]
    fn detection_completes_when_every_observer_marks_down() {
        let mut d = Detections::default();
        let i = d.on_stop(5, Duration::from_secs(1), false, [1, 2].into_iter().collect());
        d.on_down(1, 5, Duration::from_secs(2));
        assert_eq!(d.record(i).unwrap().done_after, None);
        d.on_observer_stop(2, Duration::from_secs(3));
        assert_eq!(d.record(i).unwrap().done_after, Some(Duration::from_secs(2)));
        let bound = Duration::from_secs(5);
        assert!(late_detection(d.record(i).unwrap(), bound, Duration::from_secs(9)).is_none());
    }

    #[test]
    fn an_unfinished_detection_past_its_bound_is_a_violation() {
        let mut d = Detections::default();
        let i = d.on_stop(5, Duration::ZERO, false, [1].into_iter().collect());
        let v = late_detection(d.record(i).unwrap(), Duration::from_secs(3), Duration::from_secs(3));
        assert!(v.is_some_and(|v| v.detail.contains("still had it up")));
        d.abandon(5);
        assert!(late_detection(d.record(i).unwrap(), Duration::from_secs(3), Duration::from_secs(3)).is_none());
    }
}
