//! What one simulation run is asked to do, and the text forms its options
//! take on the command line (durations like `2m`, seed ranges like `1..50`),
//! including the exact command that replays a run.

use std::fmt;
use std::time::Duration;

use rumor::core::sabotage::Sabotage;

use crate::fault::FaultSet;

/// Everything that decides a run. Two runs with equal options produce the
/// same trace, bit for bit.
#[derive(Clone, Debug, PartialEq)]
pub struct SimOptions {
    /// The one seed every random choice derives from.
    pub seed: u64,
    /// Hosts, late joiners included.
    pub nodes: usize,
    /// Simulated time of the safety phase's end: joining, workload and
    /// faults happen before it; healing and the liveness phase after it.
    pub duration: Duration,
    /// Which faults the safety phase may inject.
    pub faults: FaultSet,
    /// A deliberate core bug (`Sabotage::named`), to show a checker fails.
    pub bug: Option<String>,
    /// Client operations per simulated second, over the whole mesh.
    pub rate_per_s: f64,
    /// Distinct keys the workload touches.
    pub keys: usize,
    /// Zipf exponent of key popularity; 0 is uniform.
    pub zipf: f64,
    /// Longest the liveness phase may take to converge after healing.
    pub liveness: Duration,
    /// Detection bound for crashed members; `None` derives it from the
    /// SWIM timings and the mesh size.
    pub detect_bound: Option<Duration>,
    /// Start from a formed mesh instead of a cold join.
    pub formed: bool,
    /// Each node's tombstone TTL. Short, so a run of a minute forgets the
    /// tombstones of its first seconds and the garbage-collection horizon
    /// is exercised; partitions of the plan are sized from it.
    pub tombstone_ttl: Duration,
    /// Each node's `member_gone_after`. Far longer than any partition or
    /// downtime the plan holds, unless a run asks otherwise.
    pub member_gone_after: Duration,
    /// Threads that carry out the hosts' steps. It changes how fast a run
    /// goes, never what happens in it (the trace is the same for any
    /// count), so the replay command leaves it out.
    pub threads: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 0,
            nodes: 16,
            duration: Duration::from_secs(30),
            faults: FaultSet::NONE,
            bug: None,
            rate_per_s: 100.0,
            keys: 100,
            zipf: 0.9,
            liveness: Duration::from_secs(30),
            detect_bound: None,
            formed: false,
            tombstone_ttl: DEFAULT_TOMBSTONE_TTL,
            member_gone_after: DEFAULT_MEMBER_GONE_AFTER,
            threads: 1,
        }
    }
}

/// Default `--tombstone-ttl`.
pub const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_secs(5);

/// Default `--member-gone-after`.
pub const DEFAULT_MEMBER_GONE_AFTER: Duration = Duration::from_secs(3600);

/// A problem with the options, worded to name the option at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionError(pub String);

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OptionError {}

/// Most hosts the simulator accepts (the membership views are n × n).
pub const MAX_NODES: usize = 5_000;

/// Most threads a run may use.
pub const MAX_THREADS: usize = 64;

impl SimOptions {
    /// Checks ranges that the types do not.
    pub fn validate(&self) -> Result<(), OptionError> {
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return Err(OptionError(format!("--nodes must be 1 to {MAX_NODES}, not {}", self.nodes)));
        }
        if self.duration.is_zero() {
            return Err(OptionError("--duration must be positive".into()));
        }
        if !(self.rate_per_s.is_finite() && self.rate_per_s >= 0.0) {
            return Err(OptionError("--rate must be a non-negative number".into()));
        }
        if self.threads == 0 || self.threads > MAX_THREADS {
            return Err(OptionError(format!("--threads must be 1 to {MAX_THREADS}, not {}", self.threads)));
        }
        if self.keys == 0 {
            return Err(OptionError("--keys must be at least 1".into()));
        }
        if !(self.zipf.is_finite() && self.zipf >= 0.0) {
            return Err(OptionError("--zipf must be a non-negative number".into()));
        }
        if self.tombstone_ttl < Duration::from_millis(1) {
            return Err(OptionError("--tombstone-ttl must be at least 1ms".into()));
        }
        if self.member_gone_after < Duration::from_millis(1) {
            return Err(OptionError("--member-gone-after must be at least 1ms".into()));
        }
        if let Some(bug) = &self.bug
            && Sabotage::named(bug).is_none()
        {
            return Err(OptionError(format!("--bug {bug}: unknown; one of {}", Sabotage::NAMES.join(", "))));
        }
        Ok(())
    }

    /// The sabotage `--bug` names (none by default).
    pub fn sabotage(&self) -> Sabotage {
        self.bug.as_deref().and_then(Sabotage::named).unwrap_or_default()
    }

    /// The exact command line that replays this run.
    pub fn replay_command(&self) -> String {
        let defaults = SimOptions::default();
        let mut cmd = format!(
            "rumor-sim --seed {} --nodes {} --duration {}",
            self.seed,
            self.nodes,
            format_duration(self.duration)
        );
        if !self.faults.is_empty() {
            cmd.push_str(&format!(" --faults {}", self.faults));
        }
        if let Some(bug) = &self.bug {
            cmd.push_str(&format!(" --bug {bug}"));
        }
        if self.rate_per_s != defaults.rate_per_s {
            cmd.push_str(&format!(" --rate {}", self.rate_per_s));
        }
        if self.keys != defaults.keys {
            cmd.push_str(&format!(" --keys {}", self.keys));
        }
        if self.zipf != defaults.zipf {
            cmd.push_str(&format!(" --zipf {}", self.zipf));
        }
        if self.liveness != defaults.liveness {
            cmd.push_str(&format!(" --liveness {}", format_duration(self.liveness)));
        }
        if let Some(bound) = self.detect_bound {
            cmd.push_str(&format!(" --detect-bound {}", format_duration(bound)));
        }
        if self.formed {
            cmd.push_str(" --formed");
        }
        if self.tombstone_ttl != defaults.tombstone_ttl {
            cmd.push_str(&format!(" --tombstone-ttl {}", format_duration(self.tombstone_ttl)));
        }
        if self.member_gone_after != defaults.member_gone_after {
            cmd.push_str(&format!(" --member-gone-after {}", format_duration(self.member_gone_after)));
        }
        cmd
    }
}

/// Parses `120s`, `2m`, `500ms`, `1h`, `1.5s` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, OptionError> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 =
        number.parse().map_err(|_| OptionError(format!("bad duration {text:?}: expected e.g. 120s, 2m, 500ms")))?;
    let seconds_per_unit = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(OptionError(format!("bad duration unit {unit:?} in {text:?}: use ms, s, m or h")));
        }
    };
    let seconds = value * seconds_per_unit;
    if !seconds.is_finite() || !(0.0..=1e9).contains(&seconds) {
        return Err(OptionError(format!("duration {text:?} out of range")));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Text [`parse_duration`] reads back as `d` (whole ms): `120s` or `1500ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

/// A half-open range of seeds, `A..B` (or inclusive `A..=B`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedRange {
    /// First seed.
    pub start: u64,
    /// One past the last seed.
    pub end: u64,
}

impl SeedRange {
    /// Parses `A..B` or `A..=B`.
    pub fn parse(text: &str) -> Result<SeedRange, OptionError> {
        let bad = || OptionError(format!("bad seed range {text:?}: expected A..B or A..=B"));
        let (a, b) = text.split_once("..").ok_or_else(bad)?;
        let start: u64 = a.trim().parse().map_err(|_| bad())?;
        let end = match b.strip_prefix('=') {
            Some(b) => b.trim().parse::<u64>().map_err(|_| bad())?.saturating_add(1),
            None => b.trim().parse().map_err(|_| bad())?,
        };
        if end <= start {
            return Err(OptionError(format!("seed range {text:?} is empty")));
        }
        Ok(SeedRange { start, end })
    }

    /// The seeds, in order.
    pub fn seeds(self) -> std::ops::Range<u64> {
        self.start..self.end
    }
}

impl fmt::Display for SeedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("120s").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("7 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn formatted_durations_read_back() {
        for ms in [500, 1000, 1500, 60_000, 90_000, 120_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }

    #[test]
    fn seed_ranges_are_half_open_unless_inclusive() {
        assert_eq!(SeedRange::parse("1..4").unwrap().seeds().count(), 3);
        assert_eq!(SeedRange::parse("1..=4").unwrap().seeds().count(), 4);
        assert!(SeedRange::parse("4..4").is_err());
        assert!(SeedRange::parse("x..4").is_err());
    }

    #[test]
    fn replay_command_names_every_non_default_option() {
        let opts = SimOptions {
            seed: 9,
            faults: FaultSet::parse("loss,crash").unwrap(),
            bug: Some("no-push".into()),
            keys: 7,
            formed: true,
            tombstone_ttl: Duration::from_secs(2),
            member_gone_after: Duration::from_secs(20),
            ..SimOptions::default()
        };
        assert_eq!(
            opts.replay_command(),
            "rumor-sim --seed 9 --nodes 16 --duration 30s --faults loss,crash --bug no-push --keys 7 --formed \
             --tombstone-ttl 2s --member-gone-after 20s"
        );
    }
}
