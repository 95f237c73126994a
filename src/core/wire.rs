//! The gossip port's wire format.
//!
//! SWIM (foca) and rumor's own messages share one UDP port, so every
//! datagram starts with a tag byte. Stream frames on the TCP side carry the
//! same tagged payloads behind a 4-byte big-endian length.

use ::core::net::SocketAddr; // an address value; the core opens no socket

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::membership::{Identity, MemberRecord};
use super::store::Entry;
use super::version::Version;

/// First byte of a foca (SWIM) payload.
pub const TAG_SWIM: u8 = 0x01;
/// First byte of a rumor [`Message`].
pub const TAG_GOSSIP: u8 = 0x02;

/// Bytes of the length prefix of a stream frame.
pub const FRAME_HEADER_BYTES: usize = 4;

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
    },
    /// Anti-entropy, at the leaves that differ: `(key hash, version)` of
    /// every entry the sender holds in `leaves`. The receiver answers with
    /// the entries the sender lacks or holds older (`SyncEntries`) and asks
    /// for the ones it lacks itself (`SyncWant`).
    SyncVersions {
        /// Where to answer.
        sender: SocketAddr,
        /// Leaves the summaries cover, entirely.
        leaves: Vec<u32>,
        /// Key hash and version of each entry.
        versions: Vec<(u64, Version)>,
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
            | Message::Members { sender, .. } => Some(*sender),
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
        }
    }

    /// Decodes a body whose tag byte was already read.
    pub fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        Ok(postcard::from_bytes(body)?)
    }
}

/// Conservative encoded size of one pushed entry, used to pack datagrams
/// without encoding twice: postcard's varints never exceed these bounds.
pub fn entry_size_bound(key: &[u8], entry: &Entry) -> usize {
    // key len varint (5) + key + option tag (1) + value len varint (5) +
    // value + timestamp varint (10) + uuid (1 + 16) + expiry option (1 + 10)
    key.len() + entry.value.as_ref().map_or(0, Bytes::len) + 49
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
        // + uuid (1 + 16) + expiry 1
        assert_eq!(bytes.len(), 35);
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
