//! `rumor-sim`: runs the deterministic simulator from the command line —
//! one seed, or a sweep of seeds — and prints the report, with the
//! one-line summary as the last line of stdout.
//!
//! Exit status: 0 when no invariant was violated, 1 when one was, 2 for a
//! bad option.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use rumor_sim::check::bounds::{Percentiles, Samples};
use rumor_sim::options::{MAX_THREADS, SeedRange, parse_duration};
use rumor_sim::{FaultSet, Outcome, Progress, SimOptions};

/// glibc malloc's free-chunk bookkeeping was ~17% of a 1,000-node profile
/// (every packet is a few small allocations); where memory comes from does
/// not reach the results, which stay bit for bit the same.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Deterministic simulation of a rumor mesh: the real core under simulated
/// time, network and faults, with invariant checkers.
#[derive(Debug, Parser)]
#[command(name = "rumor-sim", version)]
struct Cli {
    /// The seed every random choice derives from.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sweep seeds A..B (half-open) or A..=B instead of one seed.
    #[arg(long, value_name = "A..B", value_parser = parse_seeds)]
    seeds: Option<SeedRange>,
    /// Hosts, late joiners included.
    #[arg(long, default_value_t = 16)]
    nodes: usize,
    /// Simulated time until healing (e.g. 120s, 2m, 500ms); the liveness
    /// phase follows.
    #[arg(long, default_value = "30s", value_parser = parse_dur)]
    duration: Duration,
    /// Faults: a comma list of loss, delay, dup, reorder, partition, crash,
    /// skew; or all; or none.
    #[arg(long, default_value = "none", value_parser = parse_faults)]
    faults: FaultSet,
    /// Break the core on purpose: merge-keeps-smaller, no-push,
    /// no-anti-entropy, drop-tombstones-early, no-change-log, ttl-only-gc,
    /// flush-not-kept.
    #[arg(long, value_name = "NAME")]
    bug: Option<String>,
    /// Client operations per simulated second, over the whole mesh.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Distinct keys.
    #[arg(long, default_value_t = 100)]
    keys: usize,
    /// Zipf exponent of key popularity (0 is uniform).
    #[arg(long, default_value_t = 0.9)]
    zipf: f64,
    /// Longest the mesh may take to converge after healing.
    #[arg(long, default_value = "30s", value_parser = parse_dur)]
    liveness: Duration,
    /// Detection bound for crashed members (default: from the SWIM timings
    /// and the mesh size).
    #[arg(long, value_parser = parse_dur)]
    detect_bound: Option<Duration>,
    /// Start from a formed mesh: every host boots at once already knowing
    /// the others (as after a restart), instead of joining through the
    /// seeds. Late joiners and restarts still join the usual way.
    #[arg(long)]
    formed: bool,
    /// Each node's tombstone TTL (short by default, so a run forgets
    /// tombstones); some planned partitions last 2 to 4 times as long.
    #[arg(long, default_value = "5s", value_parser = parse_dur)]
    tombstone_ttl: Duration,
    /// Each node's member_gone_after: a member away longer is gone for
    /// good and drops its old entries if it comes back.
    #[arg(long, default_value = "1h", value_parser = parse_dur)]
    member_gone_after: Duration,
    /// Threads that carry out the hosts' steps (default: the machine's
    /// cores from 256 nodes up, else 1). Any count gives the same run, bit
    /// for bit.
    #[arg(long)]
    threads: Option<usize>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

/// Meshes smaller than this run faster on one thread: their windows hold a
/// few cheap events, less work than a hand-off costs (100 nodes: 3.0 s on
/// one thread, 3.3 s on two).
const THREADED_FROM_NODES: usize = 256;

fn default_threads(nodes: usize) -> usize {
    if nodes < THREADED_FROM_NODES {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, usize::from).min(MAX_THREADS)
}

fn parse_dur(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

fn parse_seeds(text: &str) -> Result<SeedRange, String> {
    SeedRange::parse(text).map_err(|e| e.to_string())
}

fn parse_faults(text: &str) -> Result<FaultSet, String> {
    FaultSet::parse(text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = SimOptions {
        seed: cli.seed,
        nodes: cli.nodes,
        duration: cli.duration,
        faults: cli.faults,
        bug: cli.bug.clone(),
        rate_per_s: cli.rate,
        keys: cli.keys,
        zipf: cli.zipf,
        liveness: cli.liveness,
        detect_bound: cli.detect_bound,
        formed: cli.formed,
        tombstone_ttl: cli.tombstone_ttl,
        member_gone_after: cli.member_gone_after,
        threads: cli.threads.unwrap_or_else(|| default_threads(cli.nodes)),
    };
    if let Err(error) = opts.validate() {
        eprintln!("rumor-sim: {error}");
        return ExitCode::from(2);
    }
    match cli.seeds {
        None => run_one(&opts, cli.quiet),
        Some(range) => sweep(&opts, range, cli.quiet),
    }
}

fn run_one(opts: &SimOptions, quiet: bool) -> ExitCode {
    let started = wall_clock();
    let every = (!quiet).then(|| (opts.duration / 10).max(Duration::from_secs(5)));
    let mut progress = |p: &Progress| {
        let wall = started.elapsed().as_secs_f64();
        eprintln!(
            "[seed {}] sim {:.1}s {} | {} hosts up | {} writes | {} events | wall {:.1}s ({:.1} sim-s/s)",
            opts.seed,
            p.at.as_secs_f64(),
            p.phase.name(),
            p.up_hosts,
            p.writes,
            p.events,
            wall,
            p.at.as_secs_f64() / wall.max(1e-9)
        );
    };
    let outcome = match rumor_sim::run_with_progress(opts, every, &mut progress) {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("rumor-sim: {error}");
            return ExitCode::from(2);
        }
    };
    report_speed(&outcome, started);
    print!("{}", outcome.report);
    println!("{}", outcome.summary_line());
    if outcome.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn sweep(base: &SimOptions, range: SeedRange, quiet: bool) -> ExitCode {
    let started = wall_clock();
    let mut failing = Vec::new();
    let mut runs = 0u64;
    let mut combined = 0u64;
    let mut samples = Samples::default();
    let mut false_suspicions = 0u64;
    for seed in range.seeds() {
        let opts = SimOptions { seed, ..base.clone() };
        let one = wall_clock();
        let outcome = match rumor_sim::run(&opts) {
            Ok(outcome) => outcome,
            Err(error) => {
                eprintln!("rumor-sim: {error}");
                return ExitCode::from(2);
            }
        };
        runs += 1;
        combined = combined.rotate_left(5) ^ outcome.trace;
        samples.extend(&outcome.measurements.samples);
        false_suspicions += outcome.measurements.suspicions.false_on_healthy_links;
        if !quiet {
            eprintln!(
                "[seed {seed}] {} in {:.1}s wall",
                if outcome.passed() { "ok" } else { "FAILED" },
                one.elapsed().as_secs_f64()
            );
        }
        if !outcome.passed() {
            print!("{}", outcome.report);
            failing.push(seed);
        }
        println!("{}", outcome.summary_line());
    }
    if !quiet {
        eprintln!("sweep of {runs} seeds took {:.1}s wall", started.elapsed().as_secs_f64());
    }
    let show = |p: Option<Percentiles>| p.map_or("no samples".to_owned(), |p| p.to_string());
    println!("across {runs} runs:");
    println!("  dissemination (ack -> every live node holds it): {}", show(Percentiles::of(samples.dissemination)));
    println!("  first copy (ack -> a second node holds it): {}", show(Percentiles::of(samples.first_copy)));
    println!("  failure detection (stop -> down at every observer): {}", show(Percentiles::of(samples.detection)));
    println!("  convergence after healing: {}", show(Percentiles::of(samples.converge)));
    println!("  false suspicions over uncut links: {false_suspicions}");
    for seed in &failing {
        println!("failing: {}", SimOptions { seed: *seed, ..base.clone() }.replay_command());
    }
    let list = if failing.is_empty() {
        "-".to_owned()
    } else {
        failing.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
    };
    println!(
        "seeds={range} nodes={} sim={} runs={runs} failed={} failing={list} trace={combined:016x}",
        base.nodes,
        rumor_sim::options::format_duration(base.duration),
        failing.len()
    );
    if failing.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Wall-clock speed goes to stderr only: stdout stays deterministic.
fn report_speed(outcome: &Outcome, started: Instant) {
    let wall = started.elapsed().as_secs_f64();
    let sim = outcome.measurements.end.as_secs_f64();
    eprintln!(
        "rumor-sim: {:.1}s simulated in {:.2}s wall: {:.1} simulated seconds per wall second \
         ({} threads, {} of {} windows shared out)",
        sim,
        wall,
        sim / wall.max(1e-9),
        outcome.options.threads,
        outcome.windows_shared,
        outcome.windows
    );
}

#[expect(
    clippy::disallowed_methods,
    reason = "timing the simulator's own speed for the operator; never reaches the simulation"
)]
fn wall_clock() -> Instant {
    Instant::now()
}
