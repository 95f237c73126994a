//! The world's verdicts: whether the mesh has formed or converged (checked
//! while running), and at the end the snapshot, the measurements, and the
//! checkers' judgement.

use std::sync::Arc;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::Duration;

use rumor::core::membership::MemberState;
use rumor::core::store::Store;
use xxhash_rust::xxh3::xxh3_128;

use super::World;
use crate::check::bounds::{Measurements, Percentiles, Samples, Traffic};
use crate::check::{EndState, NodeState, SeenMember};
use crate::host::{Host, HostStatus, index_of};

impl World {
    // ----- convergence ----------------------------------------------------

    /// The nodes running now.
    fn up_nodes(&self) -> impl Iterator<Item = &rumor::core::node::Node> {
        self.hosts.iter().filter_map(|h| h.node.as_deref())
    }

    pub(super) fn up_indexes(&self) -> Vec<usize> {
        self.hosts.iter().filter(|h| h.is_up()).map(|h| h.index).collect()
    }

    /// Whether every running node has another active member.
    pub(super) fn all_joined(&self) -> bool {
        self.up_hosts <= 1 || self.hosts.iter().filter_map(|h| h.node.as_ref()).all(|n| n.is_joined())
    }

    /// Cheap check from events: every up host sees every other up host up
    /// and nobody else.
    pub(super) fn membership_formed(&self) -> bool {
        let up = self.up_indexes();
        let others = up.len().saturating_sub(1);
        up.iter().all(|&i| self.views.up_count(i) == others && up.iter().all(|&j| j == i || self.views.sees_up(i, j)))
    }

    pub(super) fn mesh_converged(&self) -> bool {
        let up = self.up_indexes();
        if up.is_empty() || !self.membership_formed() {
            return false;
        }
        let digests = up.iter().map(|&i| self.store_digest(i));
        let mut first = None;
        for d in digests {
            match first {
                None => first = Some(d),
                Some(f) if f != d => return false,
                Some(_) => {}
            }
        }
        up.iter().all(|&i| self.members_agree(i, &up))
    }

    /// An order-independent digest of a host's entries by key and version.
    pub(super) fn store_digest(&self, host: usize) -> u128 {
        let Some(store) = self.hosts[host].store() else {
            return 0;
        };
        let mut sum = 0u128;
        let mut buf = Vec::with_capacity(64);
        store.for_each_entry(|key, entry| {
            buf.clear();
            buf.extend_from_slice(&(key.len() as u64).to_le_bytes());
            buf.extend_from_slice(key);
            buf.extend_from_slice(&entry.version.timestamp.packed().to_le_bytes());
            buf.extend_from_slice(entry.version.writer.uuid().as_bytes());
            sum = sum.wrapping_add(xxh3_128(&buf));
        });
        sum
    }

    /// The authoritative check: `host`'s member list has every up host
    /// alive with its current id, and no other host alive or suspect.
    pub(super) fn members_agree(&self, host: usize, up: &[usize]) -> bool {
        let Some(node) = self.hosts[host].node.as_ref() else {
            return false;
        };
        let mut alive_ok = 0;
        for m in node.members() {
            let Some(j) = index_of(m.identity.addr) else {
                continue;
            };
            if j == host {
                continue;
            }
            let current = self.hosts.get(j).and_then(|h| h.node.as_ref());
            match (m.state, current) {
                (MemberState::Alive, Some(n)) if n.identity().id == m.identity.id => alive_ok += 1,
                (MemberState::Down | MemberState::Left, _) => {}
                (MemberState::Alive | MemberState::Suspect, _) => return false,
            }
        }
        alive_ok == up.len() - 1
    }

    // ----- the end ----------------------------------------------------------

    pub(super) fn snapshot(&self) -> EndState {
        let mut nodes = Vec::new();
        for h in &self.hosts {
            let Some(node) = h.node.as_ref() else {
                continue;
            };
            let mut entries = std::collections::BTreeMap::new();
            node.store().for_each_entry(|k, e| {
                entries.insert(k.clone(), e.clone());
            });
            let members = node
                .members()
                .into_iter()
                .filter(|m| m.identity.addr != h.addr)
                .map(|m| SeenMember {
                    host: index_of(m.identity.addr),
                    id: m.identity.id,
                    life: m.identity.life,
                    state: m.state,
                })
                .collect();
            nodes.push(NodeState {
                host: h.index,
                identity: node.identity().clone(),
                wall_ms: h.now(self.now).wall_ms,
                entries,
                members,
            });
        }
        let gone = self.hosts.iter().filter(|h| h.status == HostStatus::Gone).map(|h| h.index).collect();
        EndState { at: self.now, nodes, gone }
    }

    pub(super) fn measurements(&self) -> Measurements {
        let (dissemination, dissemination_incomplete) = self.dissemination.read().summary();
        let detection_samples: Vec<Duration> = self.detections.records().iter().filter_map(|r| r.done_after).collect();
        let secs = self.now.as_secs_f64().max(1e-9);
        let n = self.hosts.len().max(1) as f64;
        let t = &self.net.stats.hosts;
        let sum = |f: fn(&crate::net::HostTraffic) -> u64| t.iter().map(f).sum::<u64>() as f64;
        let traffic = Traffic {
            packets_per_node_s: sum(|h| h.packets_out) / n / secs,
            bytes_per_node_s: sum(|h| h.bytes_out) / n / secs,
            swim_packets_per_node_s: sum(|h| h.swim_packets_out) / n / secs,
            swim_bytes_per_node_s: sum(|h| h.swim_bytes_out) / n / secs,
            max_bytes_per_node_s: t.iter().map(|h| h.bytes_out).max().unwrap_or(0) as f64 / secs,
            frames: t.iter().map(|h| h.frames_out).sum(),
        };
        let stores: Vec<&Arc<Store>> = self.hosts.iter().filter_map(Host::store).collect();
        Measurements {
            warmup: self.warmup,
            membership_complete_at: self.membership_complete_at,
            heal_at: self.heal_at,
            end: self.now,
            converge: self.converged_at.map(|c| c.saturating_sub(self.heal_at)),
            liveness_bound: self.opts.liveness,
            dissemination,
            dissemination_incomplete,
            first_copy: self.dissemination.read().first_copy(),
            samples: {
                let (dissemination, first_copy) = self.dissemination.read().samples();
                Samples {
                    dissemination,
                    first_copy,
                    detection: detection_samples.clone(),
                    converge: self.converged_at.map(|c| c.saturating_sub(self.heal_at)).into_iter().collect(),
                }
            },
            detection: Percentiles::of(detection_samples),
            detection_bound: self.detect_bound,
            detections_abandoned: self.detections.records().iter().filter(|r| r.abandoned).count(),
            suspicions: self.suspicions,
            isolations: self.isolations,
            declared_down: self.declared_down,
            traffic,
            writes: self.history.writes.len(),
            excused: self.history.excused_count(),
            reads: self.history.reads,
            replies: self.history.replies.clone(),
            writes_by_command: self.history.writes_by_command.clone(),
            refused: self.history.refused,
            tombstones_forgotten: self.forgotten_by_past_lives.0
                + self.up_nodes().map(|n| n.gossip_stats().tombstones_forgotten).sum::<u64>(),
            stale_entries_dropped: self.forgotten_by_past_lives.1
                + self.up_nodes().map(|n| n.gossip_stats().stale_entries_dropped).sum::<u64>(),
            drift_rejections: stores.iter().map(|s| s.stats().drift_rejections.load(AtomicOrdering::Relaxed)).sum(),
            max_drift_seen_ms: stores
                .iter()
                .map(|s| s.stats().max_drift_seen_ms.load(AtomicOrdering::Relaxed))
                .max()
                .unwrap_or(0),
            lost: self.net.stats.lost,
            duplicated: self.net.stats.duplicated,
            partitioned: self.net.stats.partitioned,
            to_down_host: self.net.stats.to_down_host,
            events: self.events,
        }
    }

    pub(super) fn finish(mut self) -> crate::Outcome {
        // Detections still open at the end that are past their bound.
        for index in 0..self.detections.records().len() {
            self.detection_deadline(index);
        }
        let snapshot = self.snapshot();
        let measurements = self.measurements();
        let mut violations = std::mem::take(&mut self.violations);
        violations.extend(crate::check::convergence::check(&snapshot, &self.history));
        violations.extend(crate::check::lost_writes::check(&snapshot, &self.history));
        violations.extend(crate::check::resurrection::check(&snapshot, &self.history));
        violations.extend(crate::check::membership::check(&snapshot));
        violations.extend(crate::check::bounds::check(&measurements));
        let report = crate::report::render(&crate::report::ReportInput {
            opts: &self.opts,
            plan: &self.plan,
            measurements: &measurements,
            violations: &violations,
            history: &self.history,
            snapshot: &snapshot,
            trace: &self.trace,
            member_log: &self.member_log,
            fault_log: &self.fault_log,
        });
        crate::Outcome {
            options: self.opts,
            violations,
            measurements,
            trace: self.trace.digest(),
            report,
            windows_shared: self.windows_shared,
            windows: self.windows,
        }
    }
}
