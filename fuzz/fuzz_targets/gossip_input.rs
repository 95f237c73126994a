//! Arbitrary gossip-port input for a node core: the bytes are decoded as a
//! message (which must not panic), then fed to a node holding a few keys as
//! datagrams and stream frames, each followed by timer calls. Every call
//! must return, with a bounded number of transmits.
#![no_main]

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rumor::core::io::Now;
use rumor::core::membership::{Identity, SwimConfig};
use rumor::core::node::{Node, NodeConfig};
use rumor::core::store::{Store, Write};
use rumor::core::version::NodeId;
use rumor::core::wire::{Message, TAG_GOSSIP};

const EPOCH_MS: u64 = 1_700_000_000_000;
/// Transmits one input and its timer calls may cause, at most.
const MAX_PER_INPUT: usize = 64;

fn now(ms: u64) -> Now {
    Now { mono: Duration::from_millis(ms), wall_ms: EPOCH_MS + ms }
}

fn node() -> Node {
    let me = Identity {
        id: NodeId::from_random_bytes([1; 16]),
        addr: ([127, 0, 0, 1], 7000).into(),
        incarnation: 1,
        name: "fuzzed".into(),
    };
    let config = NodeConfig {
        swim: SwimConfig {
            probe_interval: Duration::from_millis(400),
            probe_timeout: Duration::from_millis(150),
            suspect_timeout: Duration::from_millis(1000),
            gossip_interval: Duration::from_millis(100),
            max_packet_bytes: NonZeroUsize::new(1399).unwrap(),
            cluster_size_hint: NonZeroU32::new(10).unwrap(),
            forget_down_after: Duration::from_secs(3600),
        },
        seeds: vec![],
        fanout: 3,
        max_hops: 6,
        direct_push_max: 16,
        max_datagram_bytes: 1400,
        max_stream_bytes: 1 << 20,
        join_retry_max: Duration::from_secs(1),
        rejoin_interval: Duration::from_secs(5),
        sync_interval: Duration::from_secs(1),
        sync_budget_bytes: 64 * 1024,
        tombstone_ttl: Duration::from_secs(3600),
        sabotage: Default::default(),
    };
    let store = Arc::new(Store::new(me.id, 500));
    for i in 0..64 {
        let key = bytes_of(format!("key:{i}"));
        let put = Write::Put { value: bytes_of("value".into()), expires_at_ms: None };
        store.update(&key, EPOCH_MS, |_| (Some(put), ()));
    }
    Node::new(me, config, store, 7, now(0))
}

fn bytes_of(s: String) -> Bytes {
    Bytes::from(s)
}

fuzz_target!(|data: &[u8]| {
    let _ = Message::decode_body(data);
    let mut node = node();
    let from = ([127, 0, 0, 1], 7009).into();
    let mut payload = Vec::with_capacity(data.len() + 1);
    payload.push(TAG_GOSSIP);
    payload.extend_from_slice(data);
    let mut at = 1;
    for as_frame in [false, true] {
        if as_frame {
            node.handle_frame(from, &payload, now(at));
        } else {
            node.handle_datagram(from, &payload, now(at));
        }
        for _ in 0..4 {
            let mut sent = 0;
            while node.poll_transmit().is_some() {
                sent += 1;
                assert!(sent <= MAX_PER_INPUT, "{sent} transmits from one input");
            }
            at += 1;
            node.handle_timeout(now(at));
        }
    }
});
