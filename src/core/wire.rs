//! The gossip port's wire format.
//!
//! SWIM (foca) and rumor's own messages share one UDP port, so every
//! datagram starts with a tag byte. Stream frames on the TCP side carry the
//! same tagged payloads behind a 4-byte big-endian length.

use ::core::net::SocketAddr; // an address value; the core opens no socket

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::digest::{LEAF_COUNT, TREE_DEPTH, TREE_FANOUT, leaf_of_hash};
use super::entry::Entry;
use super::membership::{Identity, MemberRecord};
use super::tag::TAG_GOSSIP;
use super::version::{EntryStamp, Timestamp};

/// Bytes of the length prefix of a stream frame.
pub const FRAME_HEADER_BYTES: usize = 4;

/// A sync message's fixed part at most (tag, variant, sender address,
/// level, counts, `held`): its items are budgeted against the rest of the
/// frame limit. Generous; the frame's length prefix is counted too.
pub const SYNC_MESSAGE_OVERHEAD_BYTES: usize = 64 + FRAME_HEADER_BYTES;

/// A rumor message between peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Entries the sender just learned (or wrote), to merge and, if new,
    /// pass on while `hops_left > 0`.
    Push {
        /// The sender's gossip address, so a forward skips it.
        sender: SocketAddr,
        /// Remaining forwarding steps after this one.
        hops_left: u8,
        /// Key and entry pairs.
        entries: Vec<(Bytes, Entry)>,
    },
    /// Anti-entropy: the sender's digests of the children of `nodes` (tree
    /// positions at `level`, 0 = root), `TREE_FANOUT` per node in order.
    /// The receiver compares them with its own and answers with the next
    /// level's digests where they differ, or with entries at the leaves.
    SyncDigests {
        /// Where to answer.
        sender: SocketAddr,
        /// Level of `nodes`.
        level: u8,
        /// Positions whose children are digested.
        nodes: Vec<u32>,
        /// The children's digests.
        digests: Vec<u64>,
        /// The sender has caught up with the mesh once (or never had to):
        /// a node catching up may take a match with these digests as
        /// holding what the mesh holds there (see `core::loading`).
        caught_up: bool,
    },
    /// Anti-entropy, at the leaves that differ: `(key hash, versions)` of
    /// every entry the sender holds in `leaves` (the value's and the
    /// deadline's: either part can be the newer one). The receiver answers with
    /// the entries the sender lacks or holds older (`SyncEntries`) and asks
    /// for the ones it lacks itself (`SyncWant`).
    SyncVersions {
        /// Where to answer.
        sender: SocketAddr,
        /// Leaves the summaries cover, entirely.
        leaves: Vec<u32>,
        /// Key hash and versions of each entry.
        versions: Vec<(u64, EntryStamp)>,
    },
    /// Anti-entropy: "send me the entries of these key hashes in `leaves`".
    SyncWant {
        /// Where to send them.
        sender: SocketAddr,
        /// Leaves to look in.
        leaves: Vec<u32>,
        /// Key hashes wanted.
        key_hashes: Vec<u64>,
    },
    /// Anti-entropy: entries the receiver lacks; merge them.
    SyncEntries {
        /// Key and entry pairs.
        entries: Vec<(Bytes, Entry)>,
        /// Entries the sender holds in all: how far a catching-up receiver
        /// has to go, for its progress report.
        held: u64,
    },
    /// Membership anti-entropy, opening each sync round: the sender's
    /// [`Membership::digest`](super::membership::Membership::digest). A
    /// receiver that disagrees answers with its [`Message::Members`].
    MembersDigest {
        /// Where to answer.
        sender: SocketAddr,
        /// The digest.
        digest: u64,
    },
    /// Membership anti-entropy: the sender's whole member list. `reply`
    /// asks for the receiver's in return, so one disagreement repairs both.
    Members {
        /// Where to answer.
        sender: SocketAddr,
        /// What the sender knows of every member, itself included.
        members: Vec<MemberRecord>,
        /// Whether to answer with our own list.
        reply: bool,
    },
    /// FLUSHALL: every entry written at or before `upto` is gone. Pushed
    /// like entries when a client flushes (and passed on, while hops are
    /// left, by nodes to which it is news), and sent at the start of every
    /// sync round by a node that has taken one, so that nodes that missed
    /// it — down, partitioned, joining later — take it too.
    Flush {
        /// The sender's gossip address, so a forward skips it.
        sender: SocketAddr,
        /// Remaining forwarding steps after this one.
        hops_left: u8,
        /// The flush's timestamp.
        upto: Timestamp,
    },
    /// WAIT: "hold these entries (the current ones of keys I wrote) and
    /// say so". One part of a round; each part is acknowledged on its own.
    /// With `digests` (the root's children) instead of entries: "say so if
    /// your store matches mine there".
    Confirm {
        /// Where to answer.
        sender: SocketAddr,
        /// The round, as the sender numbers them.
        round: u64,
        /// This part's index.
        part: u32,
        /// Parts in the round.
        parts: u32,
        /// Key and entry pairs to merge.
        entries: Vec<(Bytes, Entry)>,
        /// Empty, or the sender's digests of the root's children.
        digests: Vec<u64>,
    },
    /// WAIT: part `part` of round `round` is held.
    Confirmed {
        /// The gossip address of the node that holds it.
        sender: SocketAddr,
        /// The round.
        round: u64,
        /// The part.
        part: u32,
    },
    /// "I am stopping on purpose": sent to every live member just before
    /// the sender leaves SWIM, so they list it as left, not failed.
    Leaving {
        /// The sender's current identity.
        identity: Identity,
    },
}

/// Why a payload could not be read. Nothing changed; the payload is dropped
/// and counted.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Empty payload.
    #[error("empty payload")]
    Empty,
    /// The tag byte is not one we know.
    #[error("unknown tag byte {0:#04x}")]
    UnknownTag(u8),
    /// The body did not decode.
    #[error("malformed message: {0}")]
    Malformed(#[from] postcard::Error),
}

impl Message {
    /// Encodes with the tag byte in front.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with_capacity(0)
    }

    /// [`Message::encode`] into a buffer of at least `capacity` bytes: a
    /// caller that knows a bound on the size saves the buffer's regrowth.
    pub fn encode_with_capacity(&self, capacity: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(capacity.max(1));
        out.push(TAG_GOSSIP);
        // Serializing into a Vec cannot fail for these types.
        match postcard::to_extend(self, out) {
            Ok(buf) => buf,
            Err(_) => unreachable!("postcard to a Vec is infallible for Message"),
        }
    }

    /// The gossip address the message says it comes from, where answers to
    /// it go; `None` for [`Message::SyncEntries`], which names none and is
    /// never answered. A receiver acts on a message only if this is a
    /// current member at the packet's real source.
    pub fn sender(&self) -> Option<SocketAddr> {
        match self {
            Message::Push { sender, .. }
            | Message::SyncDigests { sender, .. }
            | Message::SyncVersions { sender, .. }
            | Message::SyncWant { sender, .. }
            | Message::MembersDigest { sender, .. }
            | Message::Members { sender, .. }
            | Message::Flush { sender, .. }
            | Message::Confirm { sender, .. }
            | Message::Confirmed { sender, .. } => Some(*sender),
            Message::Leaving { identity } => Some(identity.addr),
            Message::SyncEntries { .. } => None,
        }
    }

    /// Its kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Push { .. } => "Push",
            Message::SyncDigests { .. } => "SyncDigests",
            Message::SyncVersions { .. } => "SyncVersions",
            Message::SyncWant { .. } => "SyncWant",
            Message::SyncEntries { .. } => "SyncEntries",
            Message::MembersDigest { .. } => "MembersDigest",
            Message::Members { .. } => "Members",
            Message::Leaving { .. } => "Leaving",
            Message::Flush { .. } => "Flush",
            Message::Confirm { .. } => "Confirm",
            Message::Confirmed { .. } => "Confirmed",
        }
    }

    /// Decodes a body whose tag byte was already read.
    pub fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        Ok(postcard::from_bytes(body)?)
    }
}

/// Why a decoded sync message was refused before anything acted on it.
/// The handlers rely on these shapes (positions in range, leaves in
/// ascending order, one hash per named leaf); a message that breaks them
/// would make a round loop, wrap an index or do unbounded work.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncRefusal {
    /// `SyncDigests` at or below the leaf level.
    #[error("digest level {0} is not above the leaves")]
    Level(u8),
    /// A tree position past the end of its level.
    #[error("node {node} does not exist at level {level}")]
    NodeRange {
        /// The level named.
        level: u8,
        /// The position named.
        node: u32,
    },
    /// Digests that are not `TREE_FANOUT` per node.
    #[error("{digests} digests for {nodes} nodes")]
    DigestCount {
        /// Nodes named.
        nodes: usize,
        /// Digests carried.
        digests: usize,
    },
    /// A leaf past the last one.
    #[error("leaf {0} does not exist")]
    LeafRange(u32),
    /// Positions or leaves not strictly ascending (repeats included).
    #[error("positions not strictly ascending")]
    Order,
    /// Nothing named: a round that covers nothing makes no progress.
    #[error("names no position")]
    Empty,
    /// A key hash outside the leaves the message names.
    #[error("key hash {0:#018x} outside the named leaves")]
    StrayHash(u64),
    /// A confirmation part past its round's end.
    #[error("part {part} of a round of {parts}")]
    PartRange {
        /// The part named.
        part: u32,
        /// The parts the round has.
        parts: u32,
    },
}

/// Checks that `positions` are strictly ascending, non-empty and below `end`.
fn check_positions(positions: &[u32], end: u32, out_of_range: impl Fn(u32) -> SyncRefusal) -> Result<(), SyncRefusal> {
    let (&last, _) = positions.split_last().ok_or(SyncRefusal::Empty)?;
    if positions.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(SyncRefusal::Order);
    }
    if last >= end {
        return Err(out_of_range(last));
    }
    Ok(())
}

/// Checks that every hash falls in one of `leaves` (ascending).
fn check_hashes(leaves: &[u32], hashes: impl Iterator<Item = u64>) -> Result<(), SyncRefusal> {
    for hash in hashes {
        if leaves.binary_search(&leaf_of_hash(hash)).is_err() {
            return Err(SyncRefusal::StrayHash(hash));
        }
    }
    Ok(())
}

impl Message {
    /// Checks a sync message's shape before any handler acts on it; other
    /// messages pass. Linear in the message's size, so the check costs no
    /// more than the decode did.
    pub fn check_sync(&self) -> Result<(), SyncRefusal> {
        match self {
            Message::SyncDigests { level, nodes, digests, .. } => {
                if *level >= TREE_DEPTH {
                    return Err(SyncRefusal::Level(*level));
                }
                let level = *level;
                check_positions(nodes, TREE_FANOUT.pow(u32::from(level)), |node| SyncRefusal::NodeRange {
                    level,
                    node,
                })?;
                if digests.len() != nodes.len() * TREE_FANOUT as usize {
                    return Err(SyncRefusal::DigestCount { nodes: nodes.len(), digests: digests.len() });
                }
                Ok(())
            }
            Message::SyncVersions { leaves, versions, .. } => {
                check_positions(leaves, LEAF_COUNT as u32, SyncRefusal::LeafRange)?;
                check_hashes(leaves, versions.iter().map(|(hash, _)| *hash))
            }
            Message::SyncWant { leaves, key_hashes, .. } => {
                check_positions(leaves, LEAF_COUNT as u32, SyncRefusal::LeafRange)?;
                check_hashes(leaves, key_hashes.iter().copied())
            }
            Message::Confirm { part, parts, digests, .. } => {
                if part >= parts {
                    return Err(SyncRefusal::PartRange { part: *part, parts: *parts });
                }
                if !digests.is_empty() && digests.len() != TREE_FANOUT as usize {
                    return Err(SyncRefusal::DigestCount { nodes: 1, digests: digests.len() });
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Conservative encoded size of one pushed entry, used to pack datagrams
/// without encoding twice: postcard's varints never exceed these bounds.
pub fn entry_size_bound(key: &[u8], entry: &Entry) -> usize {
    // key len varint (5) + key + option tag (1) + value len varint (5) +
    // value + timestamp varint (10) + uuid (1 + 16) + expiry option (1 + 10)
    // + deadline timestamp varint (10)
    key.len() + entry.value.as_ref().map_or(0, Bytes::len) + 59
}

/// Conservative size of a `Push` with no entries, tag byte included.
// tag + variant + sender (variant + 16 octets + port varint 3) + hops + count varint
pub const PUSH_OVERHEAD_BYTES: usize = 1 + 1 + 20 + 1 + 5;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::version::{NodeId, Timestamp, Version};
    use proptest::prelude::*;

    fn entry(value: Option<&[u8]>, ts: u64, expires: Option<u64>) -> Entry {
        Entry {
            value: value.map(Bytes::copy_from_slice),
            version: Version { timestamp: Timestamp::from_packed(ts), writer: NodeId::from_random_bytes([7; 16]) },
            expires_at_ms: expires,
            deadline_set_at: Timestamp::from_packed(ts),
        }
    }

    #[test]
    fn push_round_trips_with_exact_length() {
        let msg = Message::Push {
            sender: "127.0.0.1:7946".parse().unwrap(),
            hops_left: 3,
            entries: vec![(Bytes::from_static(b"k"), entry(Some(b"v"), 1, None))],
        };
        let bytes = msg.encode();
        // tag 1 + variant 1 + addr (variant 1 + 4 octets + port varint 2)
        // + hops 1 + len 1 + key (1 + 1) + value (1 + 1 + 1) + ts 1
        // + uuid (1 + 16) + expiry 1 + deadline ts 1
        assert_eq!(bytes.len(), 36);
        assert_eq!(bytes[0], TAG_GOSSIP);
        assert_eq!(Message::decode_body(&bytes[1..]).unwrap(), msg);
    }

    proptest! {
        #[test]
        fn entries_round_trip_within_the_size_bound(
            key in proptest::collection::vec(any::<u8>(), 0..64),
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            ts in any::<u64>(),
            expires in proptest::option::of(any::<u64>()),
        ) {
            let e = entry(value.as_deref(), ts, expires);
            let bound = entry_size_bound(&key, &e);
            let msg = Message::Push {
                sender: "[::1]:65535".parse().unwrap(),
                hops_left: 255,
                entries: vec![(Bytes::from(key), e)],
            };
            let bytes = msg.encode();
            prop_assert!(bytes.len() <= PUSH_OVERHEAD_BYTES + bound);
            prop_assert_eq!(Message::decode_body(&bytes[1..]).unwrap(), msg);
        }
    }
}
