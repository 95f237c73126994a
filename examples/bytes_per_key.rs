//! Memory per key of the store: fills a store, on one thread, with `N` keys
//! (default 1,000,000; 13-byte keys, 8-byte values, no deadline) and prints
//! the growth of the resident set per key.
//!
//! `cargo run --release --example bytes_per_key [N]`

use bytes::Bytes;
use rumor::core::store::{Store, Write};
use rumor::core::version::NodeId;

/// Resident bytes of this process (Linux), page-exact.
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|pages| pages.parse::<usize>().ok()).unwrap_or(0) * 4096
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let store = Store::new(NodeId::from_random_bytes([1; 16]), 500);
    let empty = resident_bytes();
    for i in 0..n {
        let key = Bytes::from(format!("key:{i:09}"));
        let write = Write::Put { value: Bytes::from_static(b"value123"), expires_at_ms: None };
        store.update(&key, 1_700_000_000_000, |_| (Some(write), ())).expect("a version is left");
    }
    let full = resident_bytes();
    println!(
        "{n} keys: {:.1} resident bytes/key (Entry {} bytes, map slot {} bytes)",
        (full - empty) as f64 / n as f64,
        std::mem::size_of::<rumor::core::store::Entry>(),
        std::mem::size_of::<(Bytes, rumor::core::store::Entry)>(),
    );
}
