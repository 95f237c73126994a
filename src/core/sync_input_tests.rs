//! Hostile sync input: each crafted message is refused before it is acted
//! on, and a node fed one keeps returning from every call with bounded
//! output. A message that used to hang a node runs on a thread with a
//! deadline, so a regression fails the test instead of hanging it.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use super::cluster_tests::{addr, config, identity};
use super::io::Now;
use super::node::{GossipStats, Node, NodeMemory};
use super::store::Store;
use super::wire::{Message, SyncRefusal};

const EPOCH_MS: u64 = 1_700_000_000_000;
/// Far more than a refused message may cause, far less than a runaway.
const MAX_TRANSMITS: usize = 64;

fn now(ms: u64) -> Now {
    Now { mono: Duration::from_millis(ms), wall_ms: EPOCH_MS + ms }
}

/// Feeds `datagram` to a lone node holding no keys, then fires its timers
/// a few times; returns its counters and how much it sent. Panics if that
/// does not finish within a deadline (the node looped).
fn feed(datagram: Vec<u8>) -> (GossipStats, usize) {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let me = identity(0);
        let store = Arc::new(Store::new(me.id, 500));
        let mut node = Node::new(me, config(addr(0), 16), store, 7, now(0), NodeMemory::default());
        let mut sent = 0;
        node.handle_datagram(addr(9), &datagram, now(1));
        for step in 0..20 {
            while node.poll_transmit().is_some() {
                sent += 1;
                assert!(sent <= MAX_TRANSMITS, "runaway output");
            }
            node.handle_timeout(now(2 + step));
        }
        while node.poll_transmit().is_some() {
            sent += 1;
        }
        let _ = done.send((node.gossip_stats(), sent));
    });
    finished.recv_timeout(Duration::from_secs(10)).expect("the node did not return: it looped on one datagram")
}

fn encoded(message: &Message) -> Vec<u8> {
    message.encode()
}

fn assert_refused(datagram: Vec<u8>) {
    let (stats, sent) = feed(datagram);
    assert_eq!(stats.sync_refused, 1, "{stats:?}");
    assert!(sent <= MAX_TRANSMITS);
}

#[test]
fn sync_versions_past_the_last_leaf_is_refused() {
    // From the issue: SyncVersions naming leaf 65,536 with no versions.
    let datagram: Vec<u8> =
        (0..15).map(|i| u8::from_str_radix(&"0202007f000001a6c0020180800400"[2 * i..2 * i + 2], 16).unwrap()).collect();
    assert!(matches!(Message::decode_body(&datagram[1..]).unwrap().check_sync(), Err(SyncRefusal::LeafRange(_))));
    assert_refused(datagram);
}

#[test]
fn sync_want_past_the_last_leaf_is_refused() {
    let message = Message::SyncWant { sender: addr(9), leaves: vec![70_000], key_hashes: vec![5] };
    assert_refused(encoded(&message));
}

#[test]
fn sync_digests_at_level_three_past_the_end_is_refused() {
    let message =
        Message::SyncDigests { sender: addr(9), level: 3, nodes: vec![4096], digests: vec![1; 16], caught_up: true };
    assert_eq!(message.check_sync(), Err(SyncRefusal::NodeRange { level: 3, node: 4096 }));
    assert_refused(encoded(&message));
}

#[test]
fn sync_digests_with_a_node_index_that_wraps_is_refused() {
    // 0x1000_0000 * 16 wraps to 0 in u32.
    let message = Message::SyncDigests {
        sender: addr(9),
        level: 2,
        nodes: vec![0x1000_0000],
        digests: vec![1; 16],
        caught_up: true,
    };
    assert_refused(encoded(&message));
}

#[test]
fn sync_digests_below_the_leaves_or_miscounted_is_refused() {
    let deep =
        Message::SyncDigests { sender: addr(9), level: 4, nodes: vec![0], digests: vec![1; 16], caught_up: true };
    assert_eq!(deep.check_sync(), Err(SyncRefusal::Level(4)));
    assert_refused(encoded(&deep));
    let short =
        Message::SyncDigests { sender: addr(9), level: 1, nodes: vec![3], digests: vec![1; 15], caught_up: true };
    assert_refused(encoded(&short));
}

#[test]
fn unordered_or_repeated_or_empty_leaves_are_refused() {
    for leaves in [vec![9, 3], vec![3, 3], vec![]] {
        let message = Message::SyncVersions { sender: addr(9), leaves: leaves.clone(), versions: vec![] };
        assert!(message.check_sync().is_err(), "{leaves:?}");
        assert_refused(encoded(&message));
    }
}

#[test]
fn hashes_outside_the_named_leaves_are_refused() {
    // Leaf 0 holds hashes below 2^48.
    let message = Message::SyncWant { sender: addr(9), leaves: vec![0], key_hashes: vec![5, 1 << 60] };
    assert_eq!(message.check_sync(), Err(SyncRefusal::StrayHash(1 << 60)));
    assert_refused(encoded(&message));
}

#[test]
fn well_formed_sync_messages_pass_the_check() {
    let ok = [
        Message::SyncDigests { sender: addr(9), level: 0, nodes: vec![0], digests: vec![0; 16], caught_up: true },
        Message::SyncDigests { sender: addr(9), level: 3, nodes: vec![0, 4095], digests: vec![0; 32], caught_up: true },
        Message::SyncVersions { sender: addr(9), leaves: vec![0, 65_535], versions: vec![] },
        Message::SyncWant { sender: addr(9), leaves: vec![65_535], key_hashes: vec![u64::MAX] },
    ];
    for message in ok {
        assert_eq!(message.check_sync(), Ok(()), "{message:?}");
        let (stats, _) = feed(encoded(&message));
        assert_eq!(stats.sync_refused, 0);
    }
}

mod arbitrary_input {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::core::digest::TREE_FANOUT;
    use crate::core::store::Write;
    use crate::core::tag::TAG_GOSSIP;
    use crate::core::version::{DeadlineStamp, EntryStamp, NodeId, Timestamp, Version};

    /// Transmits one input (and the timer calls after it) may cause, at
    /// most: a sync answer is a handful of messages.
    const MAX_PER_INPUT: usize = 16;

    fn version() -> impl Strategy<Value = Version> {
        (any::<u64>(), any::<u8>()).prop_map(|(ts, w)| Version {
            timestamp: Timestamp::from_packed(ts),
            writer: NodeId::from_random_bytes([w; 16]),
        })
    }

    /// Strictly ascending positions below `end`.
    fn positions(end: u32, most: usize) -> impl Strategy<Value = Vec<u32>> {
        proptest::collection::btree_set(0..end, 1..most).prop_map(|set| set.into_iter().collect())
    }

    /// Key hashes in `leaves`.
    fn hashes_in(leaves: Vec<u32>) -> impl Strategy<Value = (Vec<u32>, Vec<u64>)> {
        let n = leaves.len();
        proptest::collection::vec((0..n, any::<u64>()), 0..20).prop_map(move |picks| {
            let hashes =
                picks.iter().map(|(i, low)| (u64::from(leaves[*i]) << 48) | (low & 0xffff_ffff_ffff)).collect();
            (leaves.clone(), hashes)
        })
    }

    /// Well-formed sync messages, as a peer (or a forger) could send them.
    fn sync_message() -> impl Strategy<Value = Message> {
        let sender = addr(9);
        let digests = (0u8..4).prop_flat_map(move |level| {
            positions(TREE_FANOUT.pow(u32::from(level)), 8).prop_flat_map(move |nodes| {
                proptest::collection::vec(any::<u64>(), nodes.len() * 16).prop_map(move |digests| {
                    Message::SyncDigests { sender, level, nodes: nodes.clone(), digests, caught_up: true }
                })
            })
        });
        let versions = positions(65_536, 8).prop_flat_map(hashes_in).prop_flat_map(move |(leaves, hashes)| {
            proptest::collection::vec(version(), hashes.len()).prop_map(move |vs| Message::SyncVersions {
                sender,
                leaves: leaves.clone(),
                versions: hashes
                    .iter()
                    .copied()
                    .zip(vs)
                    .map(|(hash, value)| {
                        let deadline = DeadlineStamp { set_at: value.timestamp, expires_at_ms: None };
                        (hash, EntryStamp { value, deadline })
                    })
                    .collect(),
            })
        });
        let want = positions(65_536, 8)
            .prop_flat_map(hashes_in)
            .prop_map(move |(leaves, key_hashes)| Message::SyncWant { sender, leaves, key_hashes });
        let members = any::<u64>().prop_map(move |digest| Message::MembersDigest { sender, digest });
        prop_oneof![digests, versions, want, members]
    }

    /// A node holding a few hundred keys, with the sender, [`addr`]`(9)`,
    /// listed as its member: a stranger's messages stop at the member
    /// check, and the handlers would never run.
    fn node() -> Node {
        let me = identity(0);
        let store = Arc::new(Store::new(me.id, 500));
        for i in 0..300 {
            let key = Bytes::from(format!("key:{i}"));
            let put = Write::Put { value: Bytes::from_static(b"value"), expires_at_ms: None };
            store.update(&key, EPOCH_MS, |_| (Some(put), ())).expect("a fresh version");
        }
        let mut node = Node::new(me, config(addr(0), 16), store, 7, now(0), NodeMemory::default());
        node.restore_members(&[identity(9)], now(0));
        node
    }

    /// Feeds each payload as a datagram or a frame, then a few timer calls;
    /// asserts every call returns with bounded output. Returns the node's
    /// counters.
    fn feed_all(payloads: &[(bool, Vec<u8>)]) -> Result<GossipStats, TestCaseError> {
        let mut node = node();
        let mut at = 1;
        for (as_frame, payload) in payloads {
            if *as_frame {
                node.handle_frame(addr(9), payload, now(at));
            } else {
                node.handle_datagram(addr(9), payload, now(at));
            }
            for _ in 0..4 {
                let mut sent = 0;
                while node.poll_transmit().is_some() {
                    sent += 1;
                    prop_assert!(sent <= MAX_PER_INPUT, "{sent} transmits from one input");
                }
                at += 1;
                node.handle_timeout(now(at));
            }
        }
        Ok(node.gossip_stats())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic_or_run_away(
            payloads in proptest::collection::vec(
                (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..200).prop_map(|mut body| {
                    body.insert(0, TAG_GOSSIP);
                    body
                })),
                1..6,
            )
        ) {
            feed_all(&payloads)?;
        }

        #[test]
        fn well_formed_sync_messages_do_bounded_work(
            messages in proptest::collection::vec((any::<bool>(), sync_message()), 1..6)
        ) {
            let payloads: Vec<(bool, Vec<u8>)> = messages.iter().map(|(f, m)| (*f, m.encode())).collect();
            let refused = messages.iter().filter(|(_, m)| m.check_sync().is_err()).count();
            prop_assert_eq!(refused, 0);
            let stats = feed_all(&payloads)?;
            // The sender is a member: every message got past the member
            // check to its handler.
            prop_assert_eq!(stats.strangers_refused, 0);
        }
    }
}
