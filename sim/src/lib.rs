//! rumor-sim: the deterministic simulator of rumor.
//!
//! It runs many nodes of the real core (`rumor::core`, the code `rumor
//! serve` runs) in one thread, under simulated time and a simulated
//! network, injects faults drawn from one seed, drives a client workload,
//! and checks rumor's invariants: strong convergence, no lost
//! acknowledged writes, no resurrection, membership convergence and
//! detection, and bounds. The same options give the same trace, bit for
//! bit, so a failing seed replays exactly.
//!
//! # Layout
//!
//! - [`options`]: what a run is asked to do; durations, seed ranges, the
//!   replay command.
//! - [`seed`]: one seed split into independent streams per component.
//! - [`world`]: the event queue and the phases of a run (warmup, safety,
//!   liveness, tail); `world/inputs.rs` feeds and drains the nodes in the
//!   core's order, `world/verdict.rs` decides convergence and judges.
//! - [`host`]: one machine — address, clock, the node of its current life.
//! - [`clock`]: skewed, drifting, stepping wall clocks.
//! - [`net`]: latency, loss, duplication, reordering, partitions.
//! - [`fault`]: fault schedules from the seed (swarm testing).
//! - [`workload`]: clients and the history they leave.
//! - [`check`]: one checker per invariant, plus bounds and measurements.
//! - [`trace`]: the run's hash and the event ring for excerpts.
//! - [`report`]: the human report.
#![deny(missing_docs)]

pub mod check;
pub mod clock;
pub mod disk;
pub mod fault;
pub mod host;
pub mod net;
pub mod options;
pub mod report;
pub mod seed;
pub mod trace;
pub mod workload;
pub mod world;

use std::time::Duration;

pub use crate::check::Violation;
pub use crate::check::bounds::Measurements;
pub use crate::fault::{FaultKind, FaultSet};
pub use crate::options::{OptionError, SeedRange, SimOptions};
pub use crate::world::Progress;

/// The result of one run.
#[derive(Debug)]
pub struct Outcome {
    /// The options it ran with.
    pub options: SimOptions,
    /// Every broken invariant.
    pub violations: Vec<Violation>,
    /// What it measured.
    pub measurements: Measurements,
    /// The hash of every event carried out.
    pub trace: u64,
    /// The human report (the summary line is separate).
    pub report: String,
    /// Lookahead windows whose steps were shared out across threads: how
    /// this process ran it, not what happened in the run.
    pub windows_shared: u64,
    /// Lookahead windows run in all.
    pub windows: u64,
}

impl Outcome {
    /// Whether no invariant was violated.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The one-line summary: `seed=S nodes=N sim=30s violations=0
    /// converge_ms=100 trace=<16 hex digits>`.
    pub fn summary_line(&self) -> String {
        let converge = self.measurements.converge.map_or("none".to_owned(), |d| d.as_millis().to_string());
        format!(
            "seed={} nodes={} sim={} violations={} converge_ms={} trace={:016x}",
            self.options.seed,
            self.options.nodes,
            options::format_duration(self.options.duration),
            self.violations.len(),
            converge,
            self.trace
        )
    }

    /// Whether any violation came from checker `name`.
    pub fn violated(&self, name: &str) -> bool {
        self.violations.iter().any(|v| v.checker == name)
    }
}

/// Runs `opts` to the end.
pub fn run(opts: &SimOptions) -> Result<Outcome, OptionError> {
    run_with_progress(opts, None, &mut |_| {})
}

/// Runs `opts`, calling `progress` every `progress_every` of simulated time.
pub fn run_with_progress(
    opts: &SimOptions,
    progress_every: Option<Duration>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Outcome, OptionError> {
    opts.validate()?;
    Ok(world::World::new(opts).run(progress_every, progress))
}
