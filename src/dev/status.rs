//! What one reading of every node of a `rumor dev` mesh says, in one line:
//! how many nodes answer, whether each sees every member alive, which are
//! still catching up from their peers, whether their key counts agree (convergence at a glance), and the commands and
//! gossip bytes per second since the last reading.

use std::fmt;
use std::time::Duration;

use crate::core::membership::MemberState;
use crate::run::handle::NodeReport;

/// Nodes named in full when a field lists exceptions; the rest are counted.
const NAMED_MAX: usize = 3;

/// What one node showed at one reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// Members this node sees alive, itself included.
    pub alive: u64,
    /// Keys holding a value on this node (DBSIZE).
    pub keys: u64,
    /// Still catching up from its peers (clients get `-LOADING`).
    pub catching_up: bool,
}

/// The mesh at one reading, rates aside: what a plain output compares to
/// decide whether there is anything new to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshState {
    /// Every node of the mesh by name, with what it showed, or `None` if it
    /// did not answer.
    pub nodes: Vec<(String, Option<NodeView>)>,
}

/// Mesh-wide rates between two readings, summed over the nodes that
/// answered both.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// Client commands executed per second.
    pub commands_per_s: f64,
    /// Bytes sent per second on the gossip port: SWIM, pushes and
    /// anti-entropy (INFO's `bytes_out`).
    pub gossip_out_bytes_per_s: f64,
}

/// One status line: `Display` renders it.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    /// The mesh.
    pub state: MeshState,
    /// Its rates.
    pub rates: Rates,
}

/// Turns successive readings into [`Status`]es, remembering each node's
/// counters so that rates are deltas between readings.
#[derive(Debug)]
pub struct Sampler {
    names: Vec<String>,
    last: Vec<Option<Counters>>,
    last_at: Duration,
}

/// The counters a rate is computed from.
#[derive(Clone, Copy, Debug)]
struct Counters {
    commands: u64,
    gossip_bytes_out: u64,
}

impl Sampler {
    /// A sampler for the nodes `names`, with `baseline` (one report per
    /// name, in order) read at `at` on a monotonic clock.
    pub fn new(names: Vec<String>, baseline: &[Option<NodeReport>], at: Duration) -> Self {
        let last = counters(baseline, names.len());
        Sampler { names, last, last_at: at }
    }

    /// The status from `reports` (one per name, in order), read at `at`.
    pub fn sample(&mut self, reports: &[Option<NodeReport>], at: Duration) -> Status {
        let now = counters(reports, self.names.len());
        let elapsed_s = at.saturating_sub(self.last_at).as_secs_f64();
        let (mut commands, mut bytes) = (0, 0);
        for (before, after) in self.last.iter().zip(&now) {
            // A node missing from either reading adds nothing: better a dip
            // than a spike of everything it counted since it started.
            if let (Some(before), Some(after)) = (before, after) {
                commands += after.commands.saturating_sub(before.commands);
                bytes += after.gossip_bytes_out.saturating_sub(before.gossip_bytes_out);
            }
        }
        let per_s = |n: u64| if elapsed_s > 0.0 { n as f64 / elapsed_s } else { 0.0 };
        let rates = Rates { commands_per_s: per_s(commands), gossip_out_bytes_per_s: per_s(bytes) };
        self.last = now;
        self.last_at = at;
        let alive = MemberState::Alive.to_string();
        let nodes = self
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let view = reports.get(i).and_then(Option::as_ref).map(|r| NodeView {
                    alive: r.node.members.get(&alive).copied().unwrap_or(0),
                    keys: r.node.keys,
                    catching_up: r.node.catching_up,
                });
                (name.clone(), view)
            })
            .collect();
        Status { state: MeshState { nodes }, rates }
    }
}

fn counters(reports: &[Option<NodeReport>], len: usize) -> Vec<Option<Counters>> {
    (0..len)
        .map(|i| {
            let report = reports.get(i)?.as_ref()?;
            Some(Counters { commands: report.commands_processed, gossip_bytes_out: report.node.gossip.bytes_out })
        })
        .collect()
}

/// `mesh: 3/3 nodes up · members alive everywhere · keys 1,204 everywhere ·
/// 312 cmd/s · gossip 14 KB/s out`; fields that disagree name the nodes
/// that differ (a few of them, then a count), and nodes still catching up
/// (answering `-LOADING`) are named, so that a whole line means every node
/// serves.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.state.nodes.len();
        let up: Vec<(&str, &NodeView)> =
            self.state.nodes.iter().filter_map(|(name, view)| Some((name.as_str(), view.as_ref()?))).collect();
        write!(f, "mesh: {}/{total} nodes up", up.len())?;
        if up.len() < total {
            let silent = self.state.nodes.iter().filter(|(_, v)| v.is_none()).map(|(name, _)| name.clone());
            write!(f, " (no answer: {})", some_of(silent))?;
        }
        if up.is_empty() {
            return Ok(());
        }

        let partial = up.iter().filter(|(_, v)| v.alive != total as u64);
        if partial.clone().next().is_none() {
            f.write_str(" · members alive everywhere")?;
        } else {
            let seen = partial.map(|(name, v)| format!("{name} sees {}/{total} alive", v.alive));
            write!(f, " · members: {}", some_of(seen))?;
        }

        let mut catching_up = up.iter().filter(|(_, v)| v.catching_up).map(|(name, _)| name.to_string()).peekable();
        if catching_up.peek().is_some() {
            write!(f, " · catching up: {}", some_of(catching_up))?;
        }

        let most = up.iter().map(|(_, v)| v.keys).max().unwrap_or(0);
        let at_most = up.iter().filter(|(_, v)| v.keys == most).count();
        if at_most == up.len() {
            write!(f, " · keys {} everywhere", grouped(most))?;
        } else {
            let others =
                up.iter().filter(|(_, v)| v.keys != most).map(|(name, v)| format!("{name} {}", grouped(v.keys)));
            write!(f, " · keys {} on {at_most}/{} ({})", grouped(most), up.len(), some_of(others))?;
        }

        let commands = self.rates.commands_per_s.round() as u64;
        write!(f, " · {} cmd/s · gossip {} out", grouped(commands), bytes_per_s(self.rates.gossip_out_bytes_per_s))
    }
}

/// The first few of `items`, comma-separated, then how many more.
fn some_of(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    let mut text = items.iter().take(NAMED_MAX).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > NAMED_MAX {
        text.push_str(&format!(", +{} more", items.len() - NAMED_MAX));
    }
    text
}

/// `1204` as `1,204`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// A byte rate in decimal units (as network rates are usually given), with
/// two or three significant figures: `640 B/s`, `1.5 KB/s`, `14 KB/s`.
fn bytes_per_s(rate: f64) -> String {
    const UNITS: [(&str, f64); 3] = [("GB", 1e9), ("MB", 1e6), ("KB", 1e3)];
    for (unit, size) in UNITS {
        if rate >= size {
            let scaled = rate / size;
            return if scaled < 10.0 { format!("{scaled:.1} {unit}/s") } else { format!("{scaled:.0} {unit}/s") };
        }
    }
    format!("{rate:.0} B/s")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::metrics::NodeSnapshot;

    fn report(alive: u64, keys: u64, commands: u64, gossip_bytes_out: u64) -> Option<NodeReport> {
        let mut node = NodeSnapshot { keys, ..NodeSnapshot::default() };
        node.members.insert("alive".to_owned(), alive);
        node.gossip.bytes_out = gossip_bytes_out;
        Some(NodeReport { node, commands_processed: commands })
    }

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("node{i}")).collect()
    }

    #[test]
    fn a_converged_mesh_is_one_short_line() {
        let baseline = [report(3, 0, 0, 0), report(3, 0, 0, 0), report(3, 0, 0, 0)];
        let mut sampler = Sampler::new(names(3), &baseline, Duration::from_secs(1));
        let now = [report(3, 1204, 200, 7_000), report(3, 1204, 100, 7_000), report(3, 1204, 12, 0)];
        let status = sampler.sample(&now, Duration::from_secs(2));
        assert_eq!(
            status.to_string(),
            "mesh: 3/3 nodes up · members alive everywhere · keys 1,204 everywhere · 312 cmd/s · gossip 14 KB/s out"
        );
        // Rates are deltas since the last reading, per second.
        let later = [report(3, 1204, 400, 7_000), report(3, 1204, 100, 7_000), report(3, 1204, 12, 0)];
        let status = sampler.sample(&later, Duration::from_secs(4));
        assert!(status.to_string().ends_with(" · 100 cmd/s · gossip 0 B/s out"), "{status}");
    }

    #[test]
    fn disagreements_name_the_nodes_that_differ() {
        let mut sampler = Sampler::new(names(3), &[], Duration::ZERO);
        let now = [report(2, 1204, 0, 0), None, report(3, 1198, 0, 0)];
        assert_eq!(
            sampler.sample(&now, Duration::from_secs(1)).to_string(),
            "mesh: 2/3 nodes up (no answer: node2) · members: node1 sees 2/3 alive · \
             keys 1,204 on 1/2 (node3 1,198) · 0 cmd/s · gossip 0 B/s out"
        );
        assert_eq!(sampler.sample(&[None, None, None], Duration::from_secs(2)).to_string(), {
            "mesh: 0/3 nodes up (no answer: node1, node2, node3)"
        });
    }

    #[test]
    fn nodes_catching_up_are_named() {
        let mut sampler = Sampler::new(names(3), &[], Duration::ZERO);
        let mut now = [report(3, 0, 0, 0), report(3, 0, 0, 0), report(3, 0, 0, 0)];
        for i in [0, 2] {
            now[i].as_mut().unwrap().node.catching_up = true;
        }
        assert_eq!(
            sampler.sample(&now, Duration::from_secs(1)).to_string(),
            "mesh: 3/3 nodes up · members alive everywhere · catching up: node1, node3 · \
             keys 0 everywhere · 0 cmd/s · gossip 0 B/s out"
        );
    }

    #[test]
    fn long_lists_are_cut_short() {
        let mut sampler = Sampler::new(names(6), &[], Duration::ZERO);
        let now: Vec<_> = (0..6).map(|i| report(1, i, 0, 0)).collect();
        let line = sampler.sample(&now, Duration::from_secs(1)).to_string();
        assert!(line.contains(" · members: node1 sees 1/6 alive, node2 sees 1/6 alive, node3 sees 1/6 alive, +3 more"));
        assert!(line.contains(" · keys 5 on 1/6 (node1 0, node2 1, node3 2, +2 more)"), "{line}");
    }

    #[test]
    fn a_node_missing_from_the_last_reading_adds_no_spike() {
        let mut sampler = Sampler::new(names(2), &[report(2, 0, 10, 0), None], Duration::ZERO);
        let status = sampler.sample(&[report(2, 0, 20, 0), report(2, 0, 1_000_000, 0)], Duration::from_secs(1));
        assert_eq!(status.rates.commands_per_s, 10.0);
    }

    #[test]
    fn numbers_read_at_a_glance() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(bytes_per_s(640.0), "640 B/s");
        assert_eq!(bytes_per_s(1_500.0), "1.5 KB/s");
        assert_eq!(bytes_per_s(14_000.0), "14 KB/s");
        assert_eq!(bytes_per_s(2_345_678.0), "2.3 MB/s");
    }
}
