//! Write confirmations, for WAIT: which live peers are known to hold every
//! local write up to a point.
//!
//! Local writes are numbered by batch (one [`Node::handle_local_writes`]
//! call). A WAIT asks for the batches so far to be confirmed: to each live
//! peer not yet known to hold them, the node sends the current entries of
//! the keys those batches wrote (`Message::Confirm`, by stream, in parts
//! that fit a frame); the peer merges them as it merges a push and
//! acknowledges each part (`Message::Confirmed`). Once every part is
//! acknowledged the peer holds each of those writes or something newer.
//! Parts not acknowledged are sent again every [`CONFIRM_RETRY`] while a
//! WAIT still wants them. The keys of the last `wait_tracked_keys` writes
//! are kept for this; a peer whose confirmation goes back further than
//! that is confirmed by anti-entropy instead: the node sends its top-level
//! digests, and a peer whose store matches them holds everything this one
//! holds.
//!
//! A confirmation belongs to the peer's identity: a member that restarts
//! on the same address (empty, or from an older data dir) starts again
//! from nothing confirmed.

use ::core::net::SocketAddr; // an address value; the core opens no socket
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use super::{Node, NodeTimer};
use crate::core::entry::Entry;
use crate::core::io::{Now, Transmit, Transport};
use crate::core::membership::Identity;
use crate::core::store::MergeOutcome;
use crate::core::wire::{Message, SYNC_MESSAGE_OVERHEAD_BYTES, entry_size_bound};

/// How long a part of a confirmation round waits for its acknowledgement
/// before the round is sent again.
pub const CONFIRM_RETRY: Duration = Duration::from_secs(1);

/// What WAIT needs of the node: the local write batches and who confirmed
/// them.
#[derive(Debug, Default)]
pub(super) struct Confirmations {
    /// Local write batches so far; the last one's number.
    batches_written: u64,
    /// The keys of recent batches, oldest first.
    recent: VecDeque<(u64, Vec<Bytes>)>,
    /// Keys in `recent`.
    recent_keys: usize,
    /// The greatest batch each peer (as this identity) is known to hold
    /// with every batch before it.
    confirmed: BTreeMap<SocketAddr, (Identity, u64)>,
    /// The batch WAITs want confirmed, and until when (monotonic).
    wanted: Option<(u64, Duration)>,
    /// The round under way with each peer: its number, the batch it
    /// confirms and the parts not yet acknowledged.
    rounds: BTreeMap<SocketAddr, Round>,
    /// Rounds started so far (numbers them).
    rounds_started: u64,
    /// Whether a retry is scheduled.
    retry_scheduled: bool,
}

#[derive(Debug)]
struct Round {
    id: u64,
    upto: u64,
    identity: Identity,
    unacknowledged: BTreeSet<u32>,
}

/// Counts for INFO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConfirmStats {
    /// Local write batches so far.
    pub batches_written: u64,
    /// Of those, the ones every live peer has confirmed.
    pub batches_confirmed_by_all: u64,
    /// Confirmation rounds sent to a peer.
    pub rounds_sent: u64,
}

impl Confirmations {
    /// Notes a batch of local writes to `keys`; forgets the oldest keys
    /// past `max_keys`.
    fn note_batch(&mut self, keys: Vec<Bytes>, max_keys: usize) {
        self.batches_written += 1;
        self.recent_keys += keys.len();
        self.recent.push_back((self.batches_written, keys));
        while self.recent_keys > max_keys
            && let Some((_, keys)) = self.recent.pop_front()
        {
            self.recent_keys -= keys.len();
        }
    }

    /// The keys written by batches after `after` up to `upto`, once each;
    /// `None` if some of those batches are no longer kept.
    fn keys_between(&self, after: u64, upto: u64) -> Option<BTreeSet<Bytes>> {
        let oldest_kept = self.recent.front().map_or(self.batches_written + 1, |(seq, _)| *seq);
        if after + 1 < oldest_kept {
            return None;
        }
        let keys = self.recent.iter().filter(|(seq, _)| *seq > after && *seq <= upto).flat_map(|(_, keys)| keys);
        Some(keys.cloned().collect())
    }
}

impl Node {
    /// The local write batches so far: what a WAIT now waits for.
    pub fn local_batches(&self) -> u64 {
        self.confirmations.batches_written
    }

    /// Live peers known to hold every local write batch up to `upto`.
    pub fn confirmed_peers(&self, upto: u64) -> usize {
        self.membership.live_peers().iter().filter(|peer| upto == 0 || self.confirmed_upto(**peer) >= upto).count()
    }

    /// Asks for local batches up to `upto` to be confirmed by every live
    /// peer, trying until `until` (monotonic); a later call replaces the
    /// deadline. `None` stops asking.
    pub fn want_confirmation(&mut self, wanted: Option<(u64, Duration)>, now: Now) {
        self.confirmations.wanted = wanted.filter(|(upto, _)| *upto > 0);
        if self.confirmations.wanted.is_some() {
            self.confirm_round(now);
        } else {
            self.confirmations.rounds.clear();
        }
    }

    /// Counts for INFO.
    pub fn confirm_stats(&self) -> ConfirmStats {
        let all = self.membership.live_peers().iter().map(|peer| self.confirmed_upto(*peer)).min();
        ConfirmStats {
            batches_written: self.confirmations.batches_written,
            batches_confirmed_by_all: all.unwrap_or(self.confirmations.batches_written),
            rounds_sent: self.confirmations.rounds_started,
        }
    }

    /// Notes a batch of local writes (see [`Node::handle_local_writes`]).
    pub(super) fn note_local_batch(&mut self, writes: &[(Bytes, Entry)]) {
        let keys = writes.iter().map(|(key, _)| key.clone()).collect();
        self.confirmations.note_batch(keys, self.config.wait_tracked_keys);
    }

    /// The greatest batch `peer`, as the member it is now, has confirmed.
    fn confirmed_upto(&self, peer: SocketAddr) -> u64 {
        match (self.confirmations.confirmed.get(&peer), self.membership.identity_at(peer)) {
            (Some((identity, upto)), Some(current)) if identity == current => *upto,
            _ => 0,
        }
    }

    /// Sends a round to every live peer that has not confirmed what is
    /// wanted, and schedules the retry.
    pub(super) fn confirm_round(&mut self, now: Now) {
        let Some((upto, until)) = self.confirmations.wanted else {
            return;
        };
        if now.mono >= until {
            self.confirmations.wanted = None;
            self.confirmations.rounds.clear();
            return;
        }
        let peers: Vec<SocketAddr> = self.membership.live_peers().to_vec();
        let mut behind = false;
        for peer in peers {
            let after = self.confirmed_upto(peer);
            if after >= upto {
                continue;
            }
            behind = true;
            self.send_round(peer, after, upto);
        }
        if behind && !self.confirmations.retry_scheduled {
            self.confirmations.retry_scheduled = true;
            self.timers.schedule(now.mono + CONFIRM_RETRY, NodeTimer::ConfirmRetry);
        }
    }

    /// The retry timer fired.
    pub(super) fn confirm_retry(&mut self, now: Now) {
        self.confirmations.retry_scheduled = false;
        self.confirm_round(now);
    }

    fn send_round(&mut self, peer: SocketAddr, after: u64, upto: u64) {
        let Some(identity) = self.membership.identity_at(peer).cloned() else {
            return;
        };
        let sender = self.membership.identity().addr;
        self.confirmations.rounds_started += 1;
        let round = self.confirmations.rounds_started;
        let messages: Vec<Message> = match self.confirmations.keys_between(after, upto) {
            Some(keys) => {
                let entries: Vec<(Bytes, Entry)> =
                    keys.into_iter().filter_map(|key| self.store.entry(&key).map(|entry| (key, entry))).collect();
                let budget = self.config.max_stream_bytes.saturating_sub(SYNC_MESSAGE_OVERHEAD_BYTES).max(1);
                let mut parts: Vec<Vec<(Bytes, Entry)>> = vec![Vec::new()];
                let mut bytes = 0;
                for (key, entry) in entries {
                    let size = entry_size_bound(&key, &entry);
                    if bytes + size > budget && !parts[parts.len() - 1].is_empty() {
                        parts.push(Vec::new());
                        bytes = 0;
                    }
                    bytes += size;
                    let last = parts.len() - 1;
                    parts[last].push((key, entry));
                }
                let count = parts.len() as u32;
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(part, entries)| Message::Confirm {
                        sender,
                        round,
                        part: part as u32,
                        parts: count,
                        entries,
                        digests: Vec::new(),
                    })
                    .collect()
            }
            None => vec![Message::Confirm {
                sender,
                round,
                part: 0,
                parts: 1,
                entries: Vec::new(),
                digests: self.store.children_digests(0, 0),
            }],
        };
        let unacknowledged = (0..messages.len() as u32).collect();
        self.confirmations.rounds.insert(peer, Round { id: round, upto, identity, unacknowledged });
        for message in messages {
            let payload = Bytes::from(message.encode());
            self.transmits.push_back(Transmit { to: peer, transport: Transport::Stream, payload });
        }
    }

    /// A peer's round: merge what it sent (or compare its digests) and
    /// acknowledge the part.
    pub(super) fn handle_confirm(
        &mut self,
        peer: SocketAddr,
        round: u64,
        part: u32,
        entries: Vec<(Bytes, Entry)>,
        digests: &[u64],
        wall_ms: u64,
    ) {
        if !digests.is_empty() && digests != self.store.children_digests(0, 0).as_slice() {
            return;
        }
        for (key, entry) in entries {
            // Refused ones (from too far ahead) are not held: no answer.
            if self.store.merge(key, entry, wall_ms) == MergeOutcome::TooFarAhead {
                return;
            }
        }
        let sender = self.membership.identity().addr;
        let payload = Bytes::from(Message::Confirmed { sender, round, part }.encode());
        self.transmits.push_back(Transmit { to: peer, transport: Transport::Datagram, payload });
    }

    /// A peer acknowledged part `part` of round `round`.
    pub(super) fn handle_confirmed(&mut self, peer: SocketAddr, round: u64, part: u32) {
        let Some(current) = self.confirmations.rounds.get_mut(&peer) else {
            return;
        };
        if current.id != round {
            return;
        }
        current.unacknowledged.remove(&part);
        if current.unacknowledged.is_empty()
            && let Some(done) = self.confirmations.rounds.remove(&peer)
        {
            let held = self.confirmed_upto(peer).max(done.upto);
            self.confirmations.confirmed.insert(peer, (done.identity, held));
        }
    }
}
