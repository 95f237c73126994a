//! Memory per key of the store: fills a store, on one thread, with `N` keys
//! (default 1,000,000; 13-byte keys) and prints the growth of the resident
//! set per key. `values` (the default) stores 8-byte values with no
//! deadline; `tombstones` deletes `N` keys (a tombstone each); `expired`
//! stores values with a deadline, lets it pass and sweeps them, as a
//! session cache does: in ten waves of `N / 10` keys, each swept before the
//! next is written, so that what the sweep frees is reused by the next wave
//! (the allocator keeps freed pages, and the resident set would show the
//! values' peak, not what expired keys hold).
//!
//! `cargo run --release --example bytes_per_key [N] [values|tombstones|expired]`

use bytes::Bytes;
use rumor::core::store::{SHARD_COUNT, Store, Write};
use rumor::core::version::NodeId;

/// Resident bytes of this process (Linux), page-exact.
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|pages| pages.parse::<usize>().ok()).unwrap_or(0) * 4096
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let mode = std::env::args().nth(2).unwrap_or_else(|| "values".to_owned());
    let now_ms = 1_700_000_000_000;
    let store = Store::new(NodeId::from_random_bytes([1; 16]), 500);
    let empty = resident_bytes();
    let waves = if mode == "expired" { 10 } else { 1 };
    for wave in 0..waves {
        let now_ms = now_ms + wave as u64 * 1_000;
        for i in (wave * n / waves)..((wave + 1) * n / waves) {
            let key = Bytes::from(format!("key:{i:09}"));
            let write = match mode.as_str() {
                "tombstones" => Write::Delete,
                "expired" => Write::Put { value: Bytes::from(vec![b'v'; 8]), expires_at_ms: Some(now_ms + 100) },
                _ => Write::Put { value: Bytes::from_static(b"value123"), expires_at_ms: None },
            };
            store.update(&key, now_ms, |_| (Some(write), ())).expect("a version is left");
        }
        if mode == "expired" {
            store.sweep(0..SHARD_COUNT, now_ms + 1_000);
        }
    }
    let full = resident_bytes();
    println!(
        "{n} {mode}: {:.1} resident bytes/key (Entry {} bytes, map slot {} bytes)",
        (full - empty) as f64 / n as f64,
        std::mem::size_of::<rumor::core::store::Entry>(),
        std::mem::size_of::<(Bytes, rumor::core::store::Entry)>(),
    );
}
