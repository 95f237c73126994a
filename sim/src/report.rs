//! The human report of one run: the options and fault plan, each checker's
//! verdict, the measurements, and for each violation (the first few) the
//! key's history, the nodes' final entries, a minimal excerpt of the events
//! around it, and the command that replays the run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::check::bounds::Measurements;
use crate::check::membership::MemberLog;
use crate::check::{EndState, Violation, describe_entry, show_key};
use crate::fault::FaultPlan;
use crate::options::{SimOptions, format_duration};
use crate::trace::Trace;
use crate::workload::History;

/// What the report is made from.
#[derive(Debug)]
pub struct ReportInput<'a> {
    /// The run's options.
    pub opts: &'a SimOptions,
    /// Its fault plan.
    pub plan: &'a FaultPlan,
    /// What it measured.
    pub measurements: &'a Measurements,
    /// What the checkers found.
    pub violations: &'a [Violation],
    /// The clients' history.
    pub history: &'a History,
    /// The final state.
    pub snapshot: &'a EndState,
    /// The trace, for excerpts.
    pub trace: &'a Trace,
    /// Membership changes, for excerpts.
    pub member_log: &'a MemberLog,
    /// Faults carried out: (time, host, what).
    pub fault_log: &'a [(Duration, usize, String)],
}

/// Checkers in report order (`world` is the driver's own bounds).
pub const CHECKERS: [&str; 7] = [
    crate::check::convergence::NAME,
    crate::check::lost_writes::NAME,
    crate::check::resurrection::NAME,
    crate::check::membership::NAME,
    crate::check::replies::NAME,
    crate::check::bounds::NAME,
    "world",
];

/// Violations shown in detail; the rest are only counted.
const SHOWN_MAX: usize = 5;
/// Writes of a key shown in an excerpt (the latest).
const KEY_WRITES_MAX: usize = 12;
/// Nodes' final entries shown per key.
const KEY_NODES_MAX: usize = 8;
/// Events shown per excerpt.
const EVENTS_MAX: usize = 16;

/// Renders the report (without the summary line, which the caller prints
/// last).
pub fn render(input: &ReportInput<'_>) -> String {
    let mut out = String::new();
    let o = input.opts;
    let m = input.measurements;
    let _ = writeln!(
        out,
        "rumor-sim seed={} nodes={} duration={} faults={} bug={} rate={}/s keys={} zipf={} start={}",
        o.seed,
        o.nodes,
        format_duration(o.duration),
        o.faults,
        o.bug.as_deref().unwrap_or("none"),
        o.rate_per_s,
        o.keys,
        o.zipf,
        if o.formed { "formed" } else { "cold" }
    );
    let plan = input.plan.describe();
    if plan.is_empty() {
        let _ = writeln!(out, "fault plan: none");
    } else {
        let _ = writeln!(out, "fault plan:");
        for line in plan {
            let _ = writeln!(out, "  {line}");
        }
    }
    let _ = writeln!(
        out,
        "phases: all joined {} (full membership {}); healed at {}; {}; ended at {}",
        m.warmup.map_or("never".to_owned(), |w| format!("at {}", secs(w))),
        m.membership_complete_at.map_or("not during warmup".to_owned(), |w| format!("at {}", secs(w))),
        secs(m.heal_at),
        m.converge.map_or(format!("not converged within {}", secs(m.liveness_bound)), |c| format!(
            "converged {} after healing",
            secs(c)
        )),
        secs(m.end)
    );
    let _ = writeln!(
        out,
        "workload: {} writes acknowledged ({} excused: held only by hosts that lost their state), {} reads, {} refused by down hosts",
        m.writes, m.excused, m.reads, m.refused
    );
    let replies: Vec<String> = m.replies.iter().map(|(kind, n)| format!("{kind} ×{n}")).collect();
    let by_command: Vec<String> = m.writes_by_command.iter().map(|(name, n)| format!("{name} {n}")).collect();
    let _ = writeln!(out, "  writes by command: {}; replies: {}", by_command.join(", "), replies.join(", "));
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in input.violations {
        *counts.entry(v.checker).or_default() += 1;
    }
    let _ = writeln!(out, "checks:");
    for name in CHECKERS {
        match counts.get(name) {
            None => {
                let _ = writeln!(out, "  {name:<13} ok");
            }
            Some(n) => {
                let _ = writeln!(out, "  {name:<13} {n} violation(s)");
            }
        }
    }
    render_measurements(&mut out, m);
    if !input.violations.is_empty() {
        let _ = writeln!(
            out,
            "violations (showing {} of {}):",
            input.violations.len().min(SHOWN_MAX),
            input.violations.len()
        );
        for (i, v) in input.violations.iter().take(SHOWN_MAX).enumerate() {
            render_violation(&mut out, i + 1, v, input);
        }
        let _ = writeln!(out, "replay: {}", o.replay_command());
    }
    out
}

fn render_measurements(out: &mut String, m: &Measurements) {
    let _ = writeln!(out, "measurements:");
    let _ = writeln!(
        out,
        "  dissemination (ack -> every live node holds it): {}; not complete within 30s: {}",
        m.dissemination.map_or("no samples".to_owned(), |p| p.to_string()),
        m.dissemination_incomplete
    );
    let _ = writeln!(
        out,
        "  first copy (ack -> a second node holds it): {}",
        m.first_copy.map_or("no samples".to_owned(), |p| p.to_string())
    );
    let _ = writeln!(
        out,
        "  failure detection (stop -> down at every observer): {}; bound {}; not judged (restart or partition overlapped): {}",
        m.detection.map_or("no samples".to_owned(), |p| p.to_string()),
        secs(m.detection_bound),
        m.detections_abandoned
    );
    let s = m.suspicions;
    let _ = writeln!(
        out,
        "  suspicions: {} in all; of live nodes over uncut links (false): {} ({} with no link faults at all); isolations {}; live nodes declared down {}",
        s.total, s.false_on_healthy_links, s.false_on_clean_network, m.isolations, m.declared_down
    );
    let t = m.traffic;
    let _ = writeln!(
        out,
        "  traffic per node: {:.1} packets/s, {:.0} B/s (SWIM {:.1} packets/s, {:.0} B/s); busiest node {:.0} B/s; stream frames {}",
        t.packets_per_node_s,
        t.bytes_per_node_s,
        t.swim_packets_per_node_s,
        t.swim_bytes_per_node_s,
        t.max_bytes_per_node_s,
        t.frames
    );
    let _ = writeln!(
        out,
        "  network: lost {}, duplicated {}, cut by partitions {}, arrived at down hosts {}",
        m.lost, m.duplicated, m.partitioned, m.to_down_host
    );
    let _ = writeln!(
        out,
        "  clocks: {} remote versions beyond max drift (largest lead {} ms)",
        m.drift_rejections, m.max_drift_seen_ms
    );
    let _ = writeln!(
        out,
        "  forgetting: {} dead entries forgotten, {} dropped by nodes back after member_gone_after",
        m.tombstones_forgotten, m.stale_entries_dropped
    );
    let _ = writeln!(out, "  events: {}", m.events);
}

fn render_violation(out: &mut String, n: usize, v: &Violation, input: &ReportInput<'_>) {
    let _ = writeln!(out, "{n}. [{}] {}", v.checker, v.invariant);
    let _ = writeln!(out, "   {} (found at {})", v.detail, secs(v.at));
    if let Some(key) = &v.key {
        let writes: Vec<_> = input.history.writes_for(key).collect();
        let _ = writeln!(
            out,
            "   writes to {:?} ({} acknowledged, latest {} shown):",
            show_key(key),
            writes.len(),
            writes.len().min(KEY_WRITES_MAX)
        );
        let flushes = &input.history.flushes;
        if !flushes.is_empty() {
            let each: Vec<String> = flushes
                .iter()
                .map(|f| {
                    let excused = if f.excused.is_some() { " [excused]" } else { "" };
                    format!("{} n{} up to {}{excused}", secs(f.at), f.host, f.upto)
                })
                .collect();
            let _ = writeln!(out, "   FLUSHALLs acknowledged: {}", each.join(", "));
        }
        for w in writes.iter().rev().take(KEY_WRITES_MAX).rev() {
            let excused =
                w.excused.map(|e| format!(" [excused: n{} lost it at {}]", e.host, secs(e.at))).unwrap_or_default();
            let _ = writeln!(
                out,
                "     {} n{} (life {}) {}{excused}",
                secs(w.at),
                w.host,
                w.life,
                describe_entry(Some(&w.entry))
            );
        }
        let _ = writeln!(out, "   final entries:");
        for node in input.snapshot.nodes.iter().take(KEY_NODES_MAX) {
            let _ = writeln!(out, "     n{}: {}", node.host, describe_entry(node.entries.get(key)));
        }
        if input.snapshot.nodes.len() > KEY_NODES_MAX {
            let _ = writeln!(out, "     … {} more nodes", input.snapshot.nodes.len() - KEY_NODES_MAX);
        }
    }
    if v.key.is_none()
        && let Some((&subject, observers)) = v.hosts.split_first()
        && !observers.is_empty()
    {
        let faults: Vec<_> = input
            .fault_log
            .iter()
            .filter(|(_, h, note)| *h == subject || observers.contains(h) || !note.starts_with('n'))
            .collect();
        let _ = writeln!(
            out,
            "   faults touching n{subject}, its observers, or everyone (latest {}):",
            faults.len().min(EVENTS_MAX)
        );
        for (at, _, note) in faults.iter().rev().take(EVENTS_MAX).rev() {
            let _ = writeln!(out, "     {} {note}", secs(*at));
        }
        let notes = input.member_log.about(subject, observers, EVENTS_MAX);
        let _ = writeln!(out, "   what {:?} noticed about n{subject}:", observers);
        for (at, observer, note) in notes {
            let _ = writeln!(out, "     {} n{observer}: n{subject} {note:?}", secs(at));
        }
    }
    // A mesh-wide violation names no hosts: the latest events of a whole
    // mesh would be noise, not an excerpt.
    let events = if v.hosts.is_empty() { Vec::new() } else { input.trace.recent(&v.hosts, EVENTS_MAX) };
    if !events.is_empty() {
        let _ = writeln!(out, "   last events involving {:?}:", v.hosts);
        for e in events {
            let _ = writeln!(out, "     {e}");
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}
