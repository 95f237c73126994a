//! Measures what foca's custom broadcast (updates piggybacked on SWIM
//! messages) would cost for small writes, against rumor's own push: the time
//! to enqueue N updates, and the datagrams needed to send each of them.
//!
//! `cargo run --release --example foca_broadcast_cost`
#![allow(clippy::disallowed_methods, reason = "a benchmark times itself")]

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Instant;

use bytes::Bytes;
use foca::{BroadcastHandler, Foca, Invalidates, PostcardCodec};
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use rumor::core::gossip::pack;
use rumor::core::store::Entry;
use rumor::core::version::{NodeId, Timestamp, Version};

/// Items are keyed by their first 8 bytes (a write id): each is new.
struct Writes;

#[derive(Clone, Copy, PartialEq, Eq)]
struct WriteId(u64);

impl Invalidates for WriteId {
    fn invalidates(&self, other: &Self) -> bool {
        self == other
    }
}

#[derive(Debug)]
struct Never;
impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}
impl std::error::Error for Never {}

impl BroadcastHandler<SocketAddr> for Writes {
    type Key = WriteId;
    type Error = Never;

    fn receive_item(&mut self, data: &[u8], _sender: Option<&SocketAddr>) -> Result<Option<WriteId>, Never> {
        let mut id = [0u8; 8];
        id.copy_from_slice(&data[..8]);
        Ok(Some(WriteId(u64::from_be_bytes(id))))
    }
}

fn main() {
    let config = foca::Config::new_lan(NonZeroU32::new(10).unwrap());
    let max_tx = config.max_transmissions.get();
    println!("updates of 8-byte id + 16-byte key + 32-byte value; foca new_lan(10): max_transmissions {max_tx}");
    println!("{:>7} {:>18} {:>22} {:>24}", "writes", "foca enqueue (ms)", "rumor pack (ms)", "datagrams foca/rumor");
    for n in [1_000u64, 4_000, 16_000] {
        let addr: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let mut foca = Foca::with_custom_broadcast(addr, config.clone(), rng, PostcardCodec, Writes);
        let items: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let mut item = i.to_be_bytes().to_vec();
                item.extend_from_slice(format!("key:{i:012}").as_bytes());
                item.extend_from_slice(&[b'v'; 32]);
                item
            })
            .collect();
        let start = Instant::now();
        for item in &items {
            foca.add_broadcast(item).unwrap();
        }
        let foca_ms = start.elapsed().as_secs_f64() * 1e3;
        // Every item is sent max_transmissions times, packed into packets of
        // at most max_packet_size alongside membership updates.
        let per_packet = config.max_packet_size.get() / items[0].len();
        let foca_packets = (n as usize * max_tx as usize).div_ceil(per_packet);

        let writer = NodeId::from_random_bytes([1; 16]);
        let entries: Vec<(Bytes, Entry)> = (0..n)
            .map(|i| {
                let entry = Entry {
                    value: Some(Bytes::from(vec![b'v'; 32])),
                    version: Version { timestamp: Timestamp::from_physical_ms(i), writer },
                    expires_at_ms: None,
                    deadline_set_at: Timestamp::from_physical_ms(i),
                };
                (Bytes::from(format!("key:{i:012}")), entry)
            })
            .collect();
        let start = Instant::now();
        let packed = pack(&entries, addr, 6, 1400, 1 << 20);
        let rumor_ms = start.elapsed().as_secs_f64() * 1e3;
        // Each packed datagram goes to `fanout` (3) peers from the writer.
        println!("{n:>7} {foca_ms:>18.1} {rumor_ms:>22.2} {:>13}/{}", foca_packets, packed.len() * 3);
    }
}
