//! The run's trace: a hash over every event the world carries out (time,
//! kind, hosts, payload bytes), which two runs of one seed must agree on bit
//! for bit, and a ring of the latest events for the excerpt printed with a
//! violation.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

/// What kind of event a trace record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceKind {
    /// A datagram delivered.
    Datagram = 1,
    /// A stream frame delivered.
    Frame = 2,
    /// A node's timers fired.
    Timer = 3,
    /// A client operation (payload: key, then the written version if any).
    Client = 4,
    /// A fault or heal (payload: its description).
    Fault = 5,
    /// Local writes handed to the node (payload: count).
    HandOver = 6,
}

impl TraceKind {
    fn label(self) -> &'static str {
        match self {
            TraceKind::Datagram => "datagram",
            TraceKind::Frame => "frame",
            TraceKind::Timer => "timer",
            TraceKind::Client => "client",
            TraceKind::Fault => "fault",
            TraceKind::HandOver => "hand-over",
        }
    }
}

/// One event, as kept for excerpts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    /// Simulated time.
    pub at: Duration,
    /// Kind.
    pub kind: TraceKind,
    /// Sending (or acting) host.
    pub from: u32,
    /// Receiving host (same as `from` for local events).
    pub to: u32,
    /// Payload length, bytes.
    pub len: u32,
    /// First payload byte (the wire tag for packets).
    pub tag: u8,
    /// xxh3 of the payload.
    pub digest: u64,
    /// A short description, for client and fault events.
    pub note: Option<String>,
}

impl fmt::Display for TraceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "t={:>10.3}ms {:<8} n{}->n{} len={} tag={:#04x} digest={:016x}",
            self.at.as_secs_f64() * 1000.0,
            self.kind.label(),
            self.from,
            self.to,
            self.len,
            self.tag,
            self.digest
        )?;
        if let Some(note) = &self.note {
            write!(f, " {note}")?;
        }
        Ok(())
    }
}

/// The hash and the ring.
pub struct Trace {
    hasher: Xxh3,
    events: u64,
    ring: VecDeque<TraceRecord>,
}

/// Records kept for excerpts.
const RING_CAPACITY: usize = 4096;

impl Default for Trace {
    fn default() -> Self {
        Trace { hasher: Xxh3::new(), events: 0, ring: VecDeque::with_capacity(RING_CAPACITY) }
    }
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("events", &self.events)
            .field("digest", &format_args!("{:016x}", self.digest()))
            .finish()
    }
}

impl Trace {
    /// Adds one event to the hash and the ring.
    pub fn record(
        &mut self,
        at: Duration,
        kind: TraceKind,
        from: usize,
        to: usize,
        payload: &[u8],
        note: Option<String>,
    ) {
        let from = u32::try_from(from).unwrap_or(u32::MAX);
        let to = u32::try_from(to).unwrap_or(u32::MAX);
        let nanos = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
        self.hasher.update(&nanos.to_le_bytes());
        self.hasher.update(&[kind as u8]);
        self.hasher.update(&from.to_le_bytes());
        self.hasher.update(&to.to_le_bytes());
        self.hasher.update(&(payload.len() as u64).to_le_bytes());
        self.hasher.update(payload);
        self.events += 1;
        if self.ring.len() == RING_CAPACITY {
            self.ring.pop_front();
        }
        self.ring.push_back(TraceRecord {
            at,
            kind,
            from,
            to,
            len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            tag: payload.first().copied().unwrap_or(0),
            digest: xxh3_64(payload),
            note,
        });
    }

    /// The hash of every event so far.
    pub fn digest(&self) -> u64 {
        self.hasher.digest()
    }

    /// Events recorded so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The latest `limit` records that involve any of `hosts` (all records
    /// when `hosts` is empty), oldest first.
    pub fn recent(&self, hosts: &[usize], limit: usize) -> Vec<&TraceRecord> {
        let involves =
            |r: &TraceRecord| hosts.is_empty() || hosts.iter().any(|h| *h == r.from as usize || *h == r.to as usize);
        let mut picked: Vec<&TraceRecord> = self.ring.iter().rev().filter(|r| involves(r)).take(limit).collect();
        picked.reverse();
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_event_sequences_hash_equal_and_any_change_shows() {
        let run = |payload: &[u8]| {
            let mut t = Trace::default();
            t.record(Duration::from_millis(1), TraceKind::Datagram, 0, 1, b"abc", None);
            t.record(Duration::from_millis(2), TraceKind::Frame, 1, 0, payload, None);
            t.digest()
        };
        assert_eq!(run(b"xyz"), run(b"xyz"));
        assert_ne!(run(b"xyz"), run(b"xyw"));
    }

    #[test]
    fn recent_filters_by_host_and_keeps_order() {
        let mut t = Trace::default();
        for i in 0..10u64 {
            t.record(Duration::from_millis(i), TraceKind::Timer, (i % 3) as usize, (i % 3) as usize, b"", None);
        }
        let picked = t.recent(&[1], 2);
        assert_eq!(picked.len(), 2);
        assert!(picked[0].at < picked[1].at);
        assert!(picked.iter().all(|r| r.from == 1));
    }
}
