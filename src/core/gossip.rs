//! Rumor mongering (Demers et al. 1987): packing fresh entries into
//! messages, and choosing who hears them.
//!
//! A write is pushed at once to `fanout` random live peers; a peer that
//! learns something new from a push passes it on with one hop fewer. Since
//! only *new* entries are forwarded, every node forwards a given write at
//! most once, and the hop bound caps the spread in very large meshes.
//! Whatever this misses, anti-entropy repairs.

use ::core::net::SocketAddr; // an address value; the core opens no socket

use bytes::Bytes;
use rand::Rng;
use rand::RngExt;

use super::io::Transport;
use super::store::Entry;
use super::wire::{Message, PUSH_OVERHEAD_BYTES, entry_size_bound};

/// One encoded push, ready to go to any number of peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packed {
    /// Datagram when it fits, stream otherwise.
    pub transport: Transport,
    /// Tagged payload.
    pub payload: Bytes,
}

/// Packs `entries` into as few pushes as fit in `max_datagram_bytes` each;
/// an entry too big for a datagram on its own travels in a stream push,
/// batched with other big ones up to `max_stream_bytes`.
pub fn pack(
    entries: &[(Bytes, Entry)],
    sender: SocketAddr,
    hops_left: u8,
    max_datagram_bytes: usize,
    max_stream_bytes: usize,
) -> Vec<Packed> {
    let mut out = Vec::new();
    let mut small: Vec<(Bytes, Entry)> = Vec::new();
    let mut small_bytes = PUSH_OVERHEAD_BYTES;
    let mut big: Vec<(Bytes, Entry)> = Vec::new();
    let mut big_bytes = PUSH_OVERHEAD_BYTES;
    // `bound` is the batch's size bound: the encoding fits it, so the
    // buffer never grows.
    let flush = |batch: &mut Vec<(Bytes, Entry)>, bound: usize, transport: Transport, out: &mut Vec<Packed>| {
        if batch.is_empty() {
            return;
        }
        let message = Message::Push { sender, hops_left, entries: std::mem::take(batch) };
        out.push(Packed { transport, payload: Bytes::from(message.encode_with_capacity(bound)) });
    };
    for (key, entry) in entries {
        let size = entry_size_bound(key, entry);
        if PUSH_OVERHEAD_BYTES + size > max_datagram_bytes {
            if big_bytes + size > max_stream_bytes {
                flush(&mut big, big_bytes, Transport::Stream, &mut out);
                big_bytes = PUSH_OVERHEAD_BYTES;
            }
            big.push((key.clone(), entry.clone()));
            big_bytes += size;
            continue;
        }
        if small_bytes + size > max_datagram_bytes {
            flush(&mut small, small_bytes, Transport::Datagram, &mut out);
            small_bytes = PUSH_OVERHEAD_BYTES;
        }
        small.push((key.clone(), entry.clone()));
        small_bytes += size;
    }
    flush(&mut small, small_bytes, Transport::Datagram, &mut out);
    flush(&mut big, big_bytes, Transport::Stream, &mut out);
    out
}

/// Up to `count` distinct peers chosen uniformly from `candidates` minus
/// `skip`, with the node's seeded RNG. Large lists are sampled by index
/// rather than copied: this runs for every push in a thousand-node mesh.
pub fn choose_peers(
    candidates: &[SocketAddr],
    count: usize,
    skip: &[SocketAddr],
    rng: &mut impl Rng,
) -> Vec<SocketAddr> {
    let mut chosen = Vec::with_capacity(count);
    if candidates.len() > 4 * (count + skip.len()) {
        // At least three in four candidates are eligible: a few draws do.
        for _ in 0..count * 16 {
            let peer = candidates[rng.random_range(0..candidates.len())];
            if !skip.contains(&peer) && !chosen.contains(&peer) {
                chosen.push(peer);
                if chosen.len() == count {
                    return chosen;
                }
            }
        }
        chosen.clear();
    }
    let mut pool: Vec<SocketAddr> = candidates.iter().filter(|a| !skip.contains(a)).copied().collect();
    let count = count.min(pool.len());
    for i in 0..count {
        let j = rng.random_range(i..pool.len());
        pool.swap(i, j);
    }
    pool.truncate(count);
    pool
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::tag::TAG_GOSSIP;
    use crate::core::version::{NodeId, Timestamp, Version};
    use rand::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    fn entry(value_len: usize) -> Entry {
        Entry {
            value: Some(Bytes::from(vec![b'x'; value_len])),
            version: Version { timestamp: Timestamp::from_physical_ms(1), writer: NodeId::from_random_bytes([3; 16]) },
            expires_at_ms: None,
            deadline_set_at: Timestamp::from_physical_ms(1),
        }
    }

    fn sender() -> SocketAddr {
        "127.0.0.1:7946".parse().unwrap()
    }

    #[test]
    fn small_entries_share_datagrams_that_stay_under_the_limit() {
        let entries: Vec<_> = (0..100).map(|i| (Bytes::from(format!("key{i}")), entry(20))).collect();
        let packed = pack(&entries, sender(), 3, 1400, 1 << 20);
        assert!(packed.len() > 1 && packed.len() < 10, "{} datagrams", packed.len());
        let mut total = 0;
        for p in &packed {
            assert_eq!(p.transport, Transport::Datagram);
            assert!(p.payload.len() <= 1400);
            assert_eq!(p.payload[0], TAG_GOSSIP);
            let Message::Push { entries, hops_left, .. } = Message::decode_body(&p.payload[1..]).unwrap() else {
                panic!("not a push");
            };
            assert_eq!(hops_left, 3);
            total += entries.len();
        }
        assert_eq!(total, 100);
    }

    #[test]
    fn an_entry_bigger_than_a_datagram_goes_by_stream() {
        let entries = vec![(Bytes::from_static(b"small"), entry(10)), (Bytes::from_static(b"big"), entry(5000))];
        let packed = pack(&entries, sender(), 1, 1400, 1 << 20);
        let transports: Vec<_> = packed.iter().map(|p| p.transport).collect();
        assert_eq!(transports, vec![Transport::Datagram, Transport::Stream]);
    }

    #[test]
    fn chosen_peers_are_distinct_and_bounded() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let peers: Vec<SocketAddr> = (0..10).map(|i| SocketAddr::from(([127, 0, 0, 1], 7000 + i))).collect();
        let chosen = choose_peers(&peers, 3, &[peers[0]], &mut rng);
        assert!(!chosen.contains(&peers[0]));
        assert_eq!(chosen.len(), 3);
        let mut dedup = chosen.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 3);
        assert_eq!(choose_peers(&peers[..2], 3, &[], &mut rng).len(), 2);
        let many: Vec<SocketAddr> = (0..1000).map(|i| SocketAddr::from(([127, 0, 0, 1], 10_000 + i))).collect();
        let sampled = choose_peers(&many, 3, &many[..5], &mut rng);
        assert_eq!(sampled.len(), 3);
        assert!(sampled.iter().all(|p| !many[..5].contains(p)));
    }
}
