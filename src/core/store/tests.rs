//! The store's own tests: merge, expiry, sweep, digests, sync visits.

use super::*;
use crate::core::changes::ReplayedLog;
use crate::core::digest::{TREE_FANOUT, key_hash, leaf_of_hash};
use crate::core::version::EntryStamp;
use proptest::prelude::*;

fn node(n: u8) -> NodeId {
    NodeId::from_random_bytes([n; 16])
}

fn put(value: &'static str) -> Option<Write> {
    Some(Write::Put { value: Bytes::from_static(value.as_bytes()), expires_at_ms: None })
}

/// The sum of every held entry's footprint, walked.
fn walked_bytes(store: &Store) -> usize {
    let mut bytes = 0;
    store.for_each_entry(|key, entry| bytes += footprint(key, entry));
    bytes
}

#[test]
fn used_bytes_follows_every_change() {
    let (store, peer) = (Store::new(node(1), 500), Store::new(node(2), 500));
    assert_eq!(store.used_bytes(), 0);
    let (a, b) = (Bytes::from_static(b"a"), Bytes::from_static(b"bb"));
    store.update(&a, 1_000, |_| (put("12345"), ())).unwrap();
    assert_eq!(store.used_bytes(), 1 + 5 + ENTRY_OVERHEAD_BYTES);
    store.update(&a, 1_001, |_| (put("1"), ())).unwrap();
    assert_eq!(store.used_bytes(), 1 + 1 + ENTRY_OVERHEAD_BYTES, "an overwrite counts the new value only");
    let (from_peer, ()) = peer.update(&b, 1_000, |_| (put_until("xyz", 2_000), ())).unwrap();
    store.merge(b.clone(), from_peer.unwrap(), 1_000);
    assert_eq!(store.used_bytes(), walked_bytes(&store));
    store.update(&a, 1_002, |_| (Some(Write::Delete), ())).unwrap();
    assert_eq!(
        store.used_bytes(),
        1 + DEAD_ENTRY_OVERHEAD_BYTES + 2 + 3 + ENTRY_OVERHEAD_BYTES,
        "a tombstone keeps its key and a small record"
    );
    assert_eq!(store.sweep(0..SHARD_COUNT, 2_500).expired, 1);
    assert_eq!(store.used_bytes(), walked_bytes(&store), "a swept value no longer counts");
    assert_eq!(store.used_bytes(), 1 + 2 + 2 * DEAD_ENTRY_OVERHEAD_BYTES);
    store.clear();
    assert_eq!(store.used_bytes(), 0);
}

#[test]
fn local_write_beats_a_held_version_from_a_clock_far_ahead() {
    let store = Store::new(node(1), 500);
    let key = Bytes::from_static(b"k");
    // Within max_version_ahead_ms (5 min) but far beyond the drift bound.
    let future = Version { timestamp: Timestamp::from_physical_ms(200_000), writer: node(2) };
    let remote = Entry {
        value: Some(Bytes::from_static(b"remote")),
        version: future,
        expires_at_ms: None,
        deadline_set_at: future.timestamp,
    };
    assert_eq!(store.merge(key.clone(), remote, 1_000), MergeOutcome::Applied);
    assert_eq!(store.stats().drift_rejections.load(Ordering::Relaxed), 1);
    let (written, ()) = store.update(&key, 1_000, |_| (put("local"), ())).unwrap();
    assert!(written.unwrap().version > future);
    assert_eq!(store.get(b"k", 1_000).unwrap(), "local");
}

#[test]
fn expire_racing_set_on_another_node_keeps_the_set_value_on_both() {
    let (a, b) = (Store::new(node(1), 500), Store::new(node(2), 500));
    let key = Bytes::from_static(b"k");
    let (v1, ()) = a.update(&key, 1_000, |_| (put("v1"), ())).unwrap();
    b.merge(key.clone(), v1.unwrap(), 1_000);
    // Concurrently: SET v2 on a, EXPIRE (later by the clock) on b.
    let (set, ()) = a.update(&key, 1_001, |_| (put("v2"), ())).unwrap();
    let expire = Some(Write::Deadline { expires_at_ms: Some(60_000) });
    let (expired, ()) = b.update(&key, 1_002, |_| (expire, ())).unwrap();
    let (set, expired) = (set.unwrap(), expired.unwrap());
    assert_eq!(expired.value.as_deref(), Some(&b"v1"[..]), "b wrote only the deadline of what it held");
    assert_eq!(a.merge(key.clone(), expired, 1_003), MergeOutcome::Applied);
    assert_eq!(b.merge(key.clone(), set, 1_003), MergeOutcome::Applied);
    for store in [&a, &b] {
        assert_eq!(store.get(b"k", 1_003).unwrap(), "v2");
        assert_eq!(store.ttl(b"k", 1_003), Ttl::RemainingMs(58_997), "the later deadline");
    }
    assert_eq!(a.entry(b"k"), b.entry(b"k"));
    assert_eq!(a.leaf_digests(), b.leaf_digests());

    // PERSIST and SET KEEPTTL write one part each, too.
    let persist = Some(Write::Deadline { expires_at_ms: None });
    let (persisted, ()) = a.update(&key, 1_004, |_| (persist, ())).unwrap();
    let keep_ttl = Some(Write::Value { value: Bytes::from_static(b"v3") });
    let (kept, ()) = b.update(&key, 1_005, |_| (keep_ttl, ())).unwrap();
    assert_eq!(kept.as_ref().unwrap().expires_at_ms, Some(60_000), "KEEPTTL kept b's deadline");
    a.merge(key.clone(), kept.unwrap(), 1_006);
    b.merge(key.clone(), persisted.unwrap(), 1_006);
    for store in [&a, &b] {
        assert_eq!(store.get(b"k", 1_006).unwrap(), "v3");
        assert_eq!(store.ttl(b"k", 1_006), Ttl::Persistent);
    }
    assert_eq!(a.leaf_digests(), b.leaf_digests());
    // A one-part write on a missing key: EXPIRE writes nothing, KEEPTTL a plain SET.
    let missing = Bytes::from_static(b"missing");
    let (none, ()) = a.update(&missing, 1_007, |_| (Some(Write::Deadline { expires_at_ms: Some(9_000) }), ())).unwrap();
    assert!(none.is_none());
    let (fresh, ()) = a.update(&missing, 1_007, |_| (Some(Write::Value { value: missing.clone() }), ())).unwrap();
    let fresh = fresh.unwrap();
    assert_eq!((fresh.expires_at_ms, fresh.deadline_set_at), (None, fresh.version.timestamp));
}

#[test]
fn a_swept_copy_takes_the_value_back_from_a_persist_that_raced_the_expiry() {
    let (a, b) = (Store::new(node(1), 500), Store::new(node(2), 500));
    let key = Bytes::from_static(b"k");
    let (v, ()) = a.update(&key, 1_000, |_| (put_until("v", 2_000), ())).unwrap();
    b.merge(key.clone(), v.unwrap(), 1_000);
    // b persists the key just before the deadline; a's clock passes it first and sweeps.
    let (persisted, ()) = b.update(&key, 1_999, |_| (Some(Write::Deadline { expires_at_ms: None }), ())).unwrap();
    assert_eq!(a.sweep(0..SHARD_COUNT, 2_500).expired, 1);
    let digests = a.leaf_digests();
    assert_eq!(a.merge(key.clone(), persisted.unwrap(), 2_500), MergeOutcome::Applied);
    assert_eq!(a.get(b"k", 2_500).unwrap(), "v");
    assert_eq!(a.entry(b"k"), b.entry(b"k"));
    assert_ne!(a.leaf_digests(), digests);
    // The swept copy offered back changes nothing: the value stays.
    let mut swept = a.entry(b"k").unwrap();
    swept.value = None;
    assert_eq!(b.merge(key.clone(), swept, 2_500), MergeOutcome::Stale);
}

#[test]
fn stale_merge_is_ignored() {
    let store = Store::new(node(1), 500);
    let key = Bytes::from_static(b"k");
    let (newer, ()) = store.update(&key, 2_000, |_| (put("new"), ())).unwrap();
    let old = Entry {
        value: Some(Bytes::from_static(b"old")),
        version: Version { timestamp: Timestamp::from_physical_ms(1_000), writer: node(9) },
        expires_at_ms: None,
        deadline_set_at: Timestamp::from_physical_ms(1_000),
    };
    assert_eq!(store.merge(key.clone(), old, 2_000), MergeOutcome::Stale);
    assert_eq!(store.entry(b"k"), newer);
}

#[test]
fn expired_and_deleted_keys_read_as_missing() {
    let store = Store::new(node(1), 500);
    let a = Bytes::from_static(b"a");
    let b = Bytes::from_static(b"b");
    store.update(&a, 1_000, |_| (Some(Write::Put { value: a.clone(), expires_at_ms: Some(1_500) }), ())).unwrap();
    store.update(&b, 1_000, |_| (put("v"), ())).unwrap();
    store.update(&b, 1_001, |_| (Some(Write::Delete), ())).unwrap();
    assert_eq!(store.get(b"a", 1_499).unwrap(), "a");
    assert_eq!(store.ttl(b"a", 1_400), Ttl::RemainingMs(100));
    assert_eq!(store.get(b"a", 1_500), None);
    assert_eq!(store.ttl(b"a", 1_500), Ttl::Missing);
    assert_eq!(store.get(b"b", 1_001), None);
    assert_eq!(store.value_count(), 1);
    assert_eq!(store.entry_count(), 2);
}

#[test]
fn scan_returns_every_live_key_once() {
    let store = Store::new(node(1), 500);
    for i in 0..5_000u32 {
        let key = Bytes::from(format!("key:{i}"));
        store.update(&key, 1, |_| (put("v"), ())).unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let (next, keys) = store.scan(cursor, 100, 1, |_| true);
        seen.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5_000);
}

/// As Redis's, a SCAN call whose MATCH finds little stops after looking at
/// about ten times COUNT entries, rather than walking the whole store.
#[test]
fn a_scan_call_that_finds_little_looks_at_a_bounded_number_of_entries() {
    let store = Store::new(node(1), 500);
    for i in 0..50_000u32 {
        let key = Bytes::from(format!("key:{i}"));
        store.update(&key, 1, |_| (put("v"), ())).unwrap();
    }
    let looked_at = std::cell::Cell::new(0usize);
    let (mut cursor, mut found) = (0, Vec::new());
    let mut calls = 0;
    loop {
        looked_at.set(0);
        let (next, keys) = store.scan(cursor, 10, 1, |key| {
            looked_at.set(looked_at.get() + 1);
            key == b"key:123"
        });
        calls += 1;
        // Whole shards of about 50 entries each: at most 100 entries and
        // one shard more.
        assert!(looked_at.get() <= 100 + 200, "one call looked at {} entries", looked_at.get());
        found.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert_eq!(found, [Bytes::from_static(b"key:123")], "the walk still finds what matches");
    assert!(calls > 100, "{calls} calls");
}

/// Every node's children, at every level, against the leaf array.
fn assert_tree_matches_leaves(store: &Store) {
    let leaves = store.leaf_digests();
    for level in 0..TREE_DEPTH {
        for node in (0..TREE_FANOUT.pow(u32::from(level))).chain([TREE_FANOUT.pow(u32::from(level)), 1 << 24]) {
            assert_eq!(
                store.children_digests(level, node),
                crate::core::digest::children_digests(&leaves, level, node),
                "level {level} node {node}"
            );
        }
    }
}

#[test]
fn kept_inner_digests_follow_writes_sweeps_and_clears() {
    let store = Store::new(node(1), 500).with_tombstone_ttl(10);
    let peer = Store::new(node(2), 500);
    for i in 0..3_000u32 {
        let key = Bytes::from(format!("k{i}"));
        store.update(&key, 1_000, |_| (put("v"), ())).unwrap();
        if i % 3 == 0 {
            let (entry, ()) = peer.update(&key, 1_001 + u64::from(i % 7), |_| (put("w"), ())).unwrap();
            store.merge(key.clone(), entry.unwrap(), 1_001);
        }
        if i % 5 == 0 {
            store.update(&key, 1_002, |_| (Some(Write::Delete), ())).unwrap();
        }
    }
    assert_tree_matches_leaves(&store);
    // Forgetting old tombstones changes many leaves of each shard at once.
    let swept = store.sweep(0..SHARD_COUNT, 5_000);
    assert!(swept.forgotten > 0);
    assert_tree_matches_leaves(&store);
    store.clear();
    assert_tree_matches_leaves(&store);
    assert!(store.children_digests(0, 0).iter().all(|d| *d == 0));
}

#[test]
fn equal_contents_give_equal_digests_whatever_the_order() {
    let a = Store::new(node(1), 500);
    let b = Store::new(node(2), 500);
    let mut written = Vec::new();
    for i in 0..500u32 {
        let key = Bytes::from(format!("k{i}"));
        let (entry, ()) = a.update(&key, 1_000, |_| (put("v"), ())).unwrap();
        written.push((key, entry.unwrap()));
    }
    for (key, entry) in written.iter().rev() {
        b.merge(key.clone(), entry.clone(), 1_000);
    }
    assert_eq!(a.leaf_digests(), b.leaf_digests());
    // Inner digests straight from the shards agree with the leaf array.
    let leaves = a.leaf_digests();
    for (level, node) in [(0, 0), (1, 3), (2, 40), (3, 4000)] {
        assert_eq!(a.children_digests(level, node), crate::core::digest::children_digests(&leaves, level, node));
    }
    // One changed key changes exactly one leaf.
    let key = Bytes::from_static(b"k7");
    b.update(&key, 2_000, |_| (put("w"), ())).unwrap();
    let differing = a.leaf_digests().iter().zip(b.leaf_digests()).filter(|(x, y)| *x != y).count();
    assert_eq!(differing, 1);
    // The shard digests followed the overwrite.
    let leaves = b.leaf_digests();
    for (level, node) in [(0, 0), (1, 0), (1, 15)] {
        assert_eq!(b.children_digests(level, node), crate::core::digest::children_digests(&leaves, level, node));
    }
    let leaf = leaf_of_hash(key_hash(b"k7"));
    let (leaves, versions) = b.leaf_versions(&[leaf], 0, 1, usize::MAX);
    assert_eq!(leaves, vec![leaf]);
    let changed = b.entry(b"k7").unwrap().stamp();
    assert!(versions.contains(&(key_hash(b"k7"), changed)));
    let wanted = [key_hash(b"k7")].into_iter().collect();
    let (covered, entries) = b.entries_by_hash(&[leaf], &wanted, 0, usize::MAX, usize::MAX);
    assert_eq!(covered, 1);
    assert_eq!(entries, vec![(key.clone(), b.entry(b"k7").unwrap())]);
}

#[test]
fn sweep_turns_expired_values_into_tombstones_and_forgets_old_tombstones() {
    let ttl = 10_000;
    let store = Store::new(node(1), 500).with_tombstone_ttl(ttl);
    let e = Bytes::from_static(b"expiring");
    let d = Bytes::from_static(b"deleted");
    store.update(&e, 1_000, |_| (Some(Write::Put { value: e.clone(), expires_at_ms: Some(2_000) }), ())).unwrap();
    store.update(&d, 1_000, |_| (put("v"), ())).unwrap();
    store.update(&d, 1_001, |_| (Some(Write::Delete), ())).unwrap();
    let digests = store.leaf_digests();
    let outcome = store.sweep(0..SHARD_COUNT, 3_000);
    assert_eq!(outcome, SweepOutcome { expired: 1, forgotten: 0 });
    assert_eq!(store.entry(b"expiring").unwrap().value, None);
    assert_eq!(store.leaf_digests(), digests, "same versions, same digests");
    assert_eq!(store.value_count(), 0);
    let outcome = store.sweep(0..SHARD_COUNT, 1_001 + ttl + 1);
    assert_eq!(outcome.forgotten, 1, "the delete's tombstone is past the TTL");
    assert!(store.entry(b"deleted").is_none());
    // A forgotten tombstone offered again by a peer that still holds it
    // is taken back as held since it died, so that the peer can match
    // us there and forget it too; the next sweep forgets it again.
    let old = Entry {
        value: None,
        version: Version { timestamp: Timestamp::from_physical_ms(1_001), writer: node(3) },
        expires_at_ms: None,
        deadline_set_at: Timestamp::from_physical_ms(1_001),
    };
    assert_eq!(store.merge(d.clone(), old, 1_001 + ttl + 2), MergeOutcome::Applied);
    assert!(store.entry(b"deleted").is_some());
    assert_eq!(store.sweep(0..SHARD_COUNT, 1_001 + ttl + 3).forgotten, 1);
    assert!(store.entry(b"deleted").is_none());
}

fn put_until(value: &'static str, deadline_ms: u64) -> Option<Write> {
    Some(Write::Put { value: Bytes::from_static(value.as_bytes()), expires_at_ms: Some(deadline_ms) })
}

#[test]
fn keyspace_counts_keys_with_a_deadline_and_their_average_time_left() {
    let store = Store::new(node(1), 500).with_tombstone_ttl(1_000_000);
    let (a, b, c) = (Bytes::from_static(b"a"), Bytes::from_static(b"b"), Bytes::from_static(b"c"));
    assert_eq!(store.keyspace(1_000), Keyspace::default());
    store.update(&a, 1_000, |_| (put_until("1", 11_000), ())).unwrap();
    store.update(&b, 1_000, |_| (put_until("2", 21_000), ())).unwrap();
    store.update(&c, 1_000, |_| (put("3"), ())).unwrap();
    assert_eq!(store.keyspace(1_000), Keyspace { keys: 3, expires: 2, avg_ttl_ms: 15_000 });
    assert_eq!(store.keyspace(6_000).avg_ttl_ms, 10_000, "the average counts down with the clock");

    // Overwriting without a deadline (SET, PERSIST) takes the key out.
    store.update(&a, 2_000, |_| (put("1"), ())).unwrap();
    assert_eq!(store.keyspace(2_000), Keyspace { keys: 3, expires: 1, avg_ttl_ms: 19_000 });
    // A deadline added to a persistent key (EXPIRE) brings it in.
    store.update(&c, 2_000, |_| (put_until("3", 4_000), ())).unwrap();
    assert_eq!(store.keyspace(2_000), Keyspace { keys: 3, expires: 2, avg_ttl_ms: 10_500 });
    // A delete takes it out.
    store.update(&b, 3_000, |_| (Some(Write::Delete), ())).unwrap();
    assert_eq!(store.keyspace(3_000), Keyspace { keys: 2, expires: 1, avg_ttl_ms: 1_000 });

    // A peer's entry with a deadline counts when it wins the merge, not when it is stale.
    let from_peer = |ms: u64, deadline: u64| Entry {
        value: Some(Bytes::from_static(b"peer")),
        version: Version { timestamp: Timestamp::from_physical_ms(ms), writer: node(2) },
        expires_at_ms: Some(deadline),
        deadline_set_at: Timestamp::from_physical_ms(ms),
    };
    assert_eq!(store.merge(b.clone(), from_peer(1_000, 99_000), 3_000), MergeOutcome::Stale);
    assert_eq!(store.keyspace(3_000).expires, 1);
    assert_eq!(store.merge(b.clone(), from_peer(3_500, 9_000), 3_000), MergeOutcome::Applied);
    assert_eq!(store.keyspace(3_000), Keyspace { keys: 3, expires: 2, avg_ttl_ms: 3_500 });

    // Past its deadline, c counts until the sweep, and its overdue time
    // pulls the average down; the sweep takes it out.
    assert_eq!(store.keyspace(5_000), Keyspace { keys: 3, expires: 2, avg_ttl_ms: 1_500 });
    assert_eq!(store.keyspace(8_000).avg_ttl_ms, 0, "never below 0");
    assert_eq!(store.sweep(0..SHARD_COUNT, 5_000).expired, 1);
    assert_eq!(store.keyspace(5_000), Keyspace { keys: 2, expires: 1, avg_ttl_ms: 4_000 });
    store.clear();
    assert_eq!(store.keyspace(5_000), Keyspace::default());
}

/// A shard's tally recounted from its map.
fn recount(store: &Store) -> Vec<Tally> {
    store
        .shards
        .iter()
        .map(|s| {
            let mut tally = Tally::default();
            s.read().live.values().for_each(|e| tally.add(e));
            tally
        })
        .collect()
}

/// One change in the property tests' sequences.
#[derive(Clone, Debug)]
enum Step {
    Write { key: u8, ttl_ms: Option<u64> },
    Delete { key: u8 },
    Merge { key: u8, entry: Entry },
    Sweep,
    Clear,
}

impl Step {
    /// Makes this change to `store` at `now_ms`.
    fn apply(self, store: &Store, now_ms: u64) {
        match self {
            Step::Write { key, ttl_ms } => {
                let write = Write::Put { value: Bytes::from_static(b"v"), expires_at_ms: ttl_ms.map(|t| now_ms + t) };
                store.update(&Bytes::from(vec![key]), now_ms, |_| (Some(write), ())).unwrap();
            }
            Step::Delete { key } => {
                store.update(&Bytes::from(vec![key]), now_ms, |_| (Some(Write::Delete), ())).unwrap();
            }
            Step::Merge { key, entry } => {
                store.merge(Bytes::from(vec![key]), entry, now_ms);
            }
            Step::Sweep => {
                store.sweep(0..SHARD_COUNT, now_ms);
            }
            Step::Clear => store.clear(),
        }
    }
}

fn arb_step() -> impl Strategy<Value = Step> {
    let entry = (0u64..4_000, 0u8..3, any::<bool>(), proptest::option::of(0u64..4_000)).prop_map(
        |(ms, writer, value, expires_at_ms)| Entry {
            value: value.then(|| Bytes::from(vec![writer])),
            version: Version { timestamp: Timestamp::from_physical_ms(ms), writer: node(writer) },
            expires_at_ms,
            deadline_set_at: Timestamp::from_physical_ms(ms),
        },
    );
    prop_oneof![
        4 => (0u8..6, proptest::option::of(1u64..2_000)).prop_map(|(key, ttl_ms)| Step::Write { key, ttl_ms }),
        2 => (0u8..6).prop_map(|key| Step::Delete { key }),
        4 => (0u8..6, entry).prop_map(|(key, entry)| Step::Merge { key, entry }),
        2 => Just(Step::Sweep),
        1 => Just(Step::Clear),
    ]
}

fn arb_entry() -> impl Strategy<Value = (u8, Entry)> {
    // One version is one write, so the value — and, for a SET, its
    // deadline — is a function of it. The deadline part is set apart
    // (EXPIRE, PERSIST: always at a later timestamp than the value)
    // half of the time, deadlines far ahead (merge runs at time 0 here).
    let deadline = proptest::option::of((1u64..20, proptest::option::of(1u64..4)));
    (0u8..4, 0u64..50, 0u8..3, deadline).prop_map(|(key, ts, writer, deadline)| {
        let set_px = ((ts + u64::from(writer)) % 3 == 0).then_some(ts % 3 + 1);
        let (set_at, expires_at_ms) = deadline.map_or((ts, set_px), |(later, expires)| (ts + later, expires));
        let entry = Entry {
            value: (ts % 5 != 0).then(|| Bytes::from(vec![ts as u8, writer])),
            version: Version { timestamp: Timestamp::from_packed(ts), writer: node(writer) },
            expires_at_ms: expires_at_ms.map(|d| d * 1_000_000),
            deadline_set_at: Timestamp::from_packed(set_at),
        };
        (key, entry)
    })
}

fn final_state(entries: &[(u8, Entry)]) -> Vec<(Bytes, Entry)> {
    let store = Store::new(node(200), 500);
    for (k, e) in entries {
        store.merge(Bytes::from(vec![*k]), e.clone(), 0);
    }
    let mut all = Vec::new();
    store.for_each_entry(|k, e| all.push((k.clone(), e.clone())));
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

proptest! {
    /// Any order, with any duplicates, gives the same store: merge is
    /// commutative, associative and idempotent.
    #[test]
    fn merge_order_and_duplicates_do_not_matter(
        entries in proptest::collection::vec(arb_entry(), 0..40),
        seed in any::<u64>(),
    ) {
        let mut shuffled = entries.clone();
        // A deterministic permutation from the seed, plus duplicates.
        let n = shuffled.len();
        for i in 0..n {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % n as u64) as usize;
            shuffled.swap(i, j);
        }
        shuffled.extend(entries.iter().take(n / 2).cloned());
        let expected = final_state(&entries);
        prop_assert_eq!(final_state(&shuffled), expected.clone());
        // Each key holds its greatest version of each part.
        for (k, e) in &expected {
            let of_key = || entries.iter().filter(|(key, _)| [*key] == k[..]).map(|(_, e)| e);
            prop_assert_eq!(Some(e.version), of_key().map(|e| e.version).max());
            let greatest = of_key().map(Entry::stamp).max_by_key(EntryStamp::deadline_order);
            prop_assert_eq!(Some(e.deadline_stamp()), greatest.map(|s| s.deadline));
        }
    }

    /// Local writes, deletes, merges, sweeps and clears, as time
    /// passes: every shard's tally always equals a recount of its map,
    /// the entry count a count of the entries, and `used_bytes` the sum
    /// of their footprints.
    #[test]
    fn tally_stays_exact_under_any_sequence_of_changes(
        steps in proptest::collection::vec((arb_step(), 0u64..500), 0..60),
    ) {
        let store = Store::new(node(1), 500).with_tombstone_ttl(1_000);
        let mut now_ms = 1_000;
        for (step, elapsed_ms) in steps {
            now_ms += elapsed_ms;
            step.apply(&store, now_ms);
            let kept: Vec<Tally> = store.shards.iter().map(|s| s.read().tally).collect();
            prop_assert_eq!(kept, recount(&store));
            let mut entries = 0;
            store.for_each_entry(|_, _| entries += 1);
            prop_assert_eq!(store.entry_count(), entries);
            prop_assert_eq!(store.used_bytes(), walked_bytes(&store));
        }
    }

    /// The same kinds of changes, with a change log attached: replaying
    /// the log in order always gives exactly the store's entries, which
    /// is what the data dir relies on.
    #[test]
    fn the_change_log_replays_to_the_store(
        steps in proptest::collection::vec((arb_step(), 0u64..500), 0..60),
    ) {
        let log = Arc::new(ReplayedLog::default());
        let store = Store::new(node(1), 500).with_tombstone_ttl(1_000).with_change_log(log.clone());
        let mut now_ms = 1_000;
        for (step, elapsed_ms) in steps {
            now_ms += elapsed_ms;
            step.apply(&store, now_ms);
            let mut held = std::collections::BTreeMap::new();
            store.for_each_entry(|k, e| {
                held.insert(k.clone(), e.clone());
            });
            prop_assert_eq!(log.entries(), held.into_iter().collect::<Vec<_>>());
        }
    }
}

#[test]
fn restore_keeps_the_greater_version_logs_nothing_and_moves_the_clock() {
    let log = Arc::new(ReplayedLog::default());
    let store = Store::new(node(1), 500).with_change_log(log.clone());
    let key = Bytes::from_static(b"k");
    let at = |ms| Version { timestamp: Timestamp::from_physical_ms(ms), writer: node(2) };
    let entry = |ms, v: &'static str| Entry {
        value: Some(Bytes::from_static(v.as_bytes())),
        version: at(ms),
        expires_at_ms: None,
        deadline_set_at: at(ms).timestamp,
    };
    // Written by us before a restart, with a clock now a little behind.
    store.restore(key.clone(), entry(2_000, "new"), 1_900);
    store.restore(key.clone(), entry(1_500, "old"), 1_900);
    assert_eq!(store.get(b"k", 1_900).unwrap(), "new");
    assert!(log.entries().is_empty());
    assert!(store.clock_reading() >= at(2_000).timestamp);
}

#[cfg(test)]
mod far_future_tests {
    use super::*;

    fn node(n: u8) -> NodeId {
        NodeId::from_random_bytes([n; 16])
    }

    fn put(value: &'static str) -> Option<Write> {
        Some(Write::Put { value: Bytes::from_static(value.as_bytes()), expires_at_ms: None })
    }

    const NOW: u64 = 1_700_000_000_000;

    fn stamped(packed: u64, value: &'static str) -> Entry {
        Entry {
            value: Some(Bytes::from_static(value.as_bytes())),
            version: Version { timestamp: Timestamp::from_packed(packed), writer: node(2) },
            expires_at_ms: None,
            deadline_set_at: Timestamp::from_packed(packed),
        }
    }

    #[test]
    fn an_entry_from_the_far_future_is_refused_and_local_writes_stick() {
        let store = Store::new(node(1), 500);
        let key = Bytes::from_static(b"k");
        let poison = stamped(u64::MAX - 1, "poison");
        assert_eq!(store.merge(key.clone(), poison.clone(), NOW), MergeOutcome::TooFarAhead);
        assert_eq!(store.get(b"k", NOW), None);
        store.update(&key, NOW, |_| (put("mine"), ())).unwrap();
        assert_eq!(store.merge_ref(&key, &poison, NOW + 1), MergeOutcome::TooFarAhead);
        assert_eq!(store.get(b"k", NOW + 1).unwrap(), "mine");
        store.update(&key, NOW + 2, |_| (Some(Write::Delete), ())).unwrap();
        assert_eq!(store.merge(key.clone(), poison.clone(), NOW + 3), MergeOutcome::TooFarAhead);
        assert_eq!(store.get(b"k", NOW + 3), None, "the delete sticks too");
        // Restored from a data dir: refused the same way.
        store.restore(Bytes::from_static(b"r"), poison, NOW);
        assert!(store.entry(b"r").is_none());
        assert_eq!(store.stats().future_refused.load(Ordering::Relaxed), 4);
        assert!(store.clock_reading().physical_ms() <= NOW + 3, "the clock did not follow");
    }

    #[test]
    fn an_honest_entry_ahead_is_only_delayed_until_the_clock_is_within_the_bound() {
        let store = Store::new(node(1), 500).with_max_version_ahead(60_000);
        let key = Bytes::from_static(b"k");
        let ahead = stamped(Timestamp::from_physical_ms(NOW + 90_000).packed(), "ahead");
        assert_eq!(store.merge(key.clone(), ahead.clone(), NOW), MergeOutcome::TooFarAhead);
        assert_eq!(store.merge(key.clone(), ahead.clone(), NOW + 30_000), MergeOutcome::Applied);
        assert_eq!(store.entry(b"k"), Some(ahead));
    }

    #[test]
    fn a_local_write_with_no_greater_version_left_fails_and_stores_nothing() {
        // A bound wide enough to let the last timestamp in.
        let store = Store::new(node(1), 500).with_max_version_ahead(u64::MAX);
        let key = Bytes::from_static(b"k");
        let last = stamped(u64::MAX, "last");
        assert_eq!(store.merge(key.clone(), last.clone(), NOW), MergeOutcome::Applied);
        assert_eq!(store.update(&key, NOW, |_| (put("mine"), ())), Err(WriteError::VersionExhausted));
        assert_eq!(store.entry(b"k"), Some(last));
    }

    #[test]
    fn a_write_past_the_clock_lease_fails_stores_nothing_and_goes_through_once_it_is_raised() {
        let store = Store::new(node(1), 500);
        let lease = Timestamp::end_of_ms(NOW);
        let ceiling = store.hlc().limit_to(lease);
        store.hlc().raise_to(lease);
        let key = Bytes::from_static(b"k");
        assert_eq!(store.update(&key, NOW + 3_600_000, |_| (put("late"), ())), Err(WriteError::ClockAtLease));
        assert_eq!(store.flush_local(NOW + 3_600_000), Err(WriteError::ClockAtLease));
        assert_eq!(store.entry(b"k"), None);
        assert_eq!(store.flushed(), Timestamp::ZERO);
        ceiling.raise_to(Timestamp::end_of_ms(NOW + 3_605_000));
        store.update(&key, NOW + 3_600_000, |_| (put("late"), ())).unwrap();
        assert_eq!(store.version(b"k").unwrap().timestamp, Timestamp::from_physical_ms(NOW + 3_600_000));
    }
}

#[test]
fn update_many_sees_values_before_and_writes_in_order() {
    let store = Store::new(node(1), 500);
    let (a, b) = (Bytes::from_static(b"a"), Bytes::from_static(b"b"));
    store.update(&a, 1_000, |_| (put("old"), ())).unwrap();
    let keys = [a.clone(), b.clone(), a.clone()];
    let (written, seen) = store
        .update_many(&keys, 1_001, |live| {
            let seen: Vec<Option<Bytes>> = live.iter().map(|l| l.as_ref().map(|l| l.value.clone())).collect();
            (vec![put("1"), None, put("2")], seen)
        })
        .unwrap();
    assert_eq!(seen, [Some(Bytes::from_static(b"old")), None, Some(Bytes::from_static(b"old"))]);
    let keys_written: Vec<&Bytes> = written.iter().map(|(key, _)| key).collect();
    assert_eq!(keys_written, [&a, &a], "a key without a write is not written");
    assert!(written[0].1.version < written[1].1.version, "the later write of a key is the newer");
    assert_eq!(store.get(&a, 1_002).as_deref(), Some(&b"2"[..]));
    assert_eq!(store.get(&b, 1_002), None);
}

#[test]
fn update_many_is_seen_whole_or_not_at_all() {
    // Two keys in different shards, written together over and over while
    // another thread reads both, also together: it never sees them apart.
    // Written one key at a time instead, the reader sees them differ.
    let store = std::sync::Arc::new(Store::new(node(1), 500));
    let keys: Vec<Bytes> = (0..)
        .map(|i| Bytes::from(format!("k{i}")))
        .scan(None, |first: &mut Option<Bytes>, key| {
            Some(match first {
                None => {
                    *first = Some(key.clone());
                    Some(key)
                }
                Some(f) if Slot::of(f).shard != Slot::of(&key).shard => Some(key),
                Some(_) => None,
            })
        })
        .flatten()
        .take(2)
        .collect();
    let writer = {
        let (store, keys) = (store.clone(), keys.clone());
        std::thread::spawn(move || {
            for i in 0..20_000u32 {
                let value = Bytes::from(i.to_string());
                store
                    .update_many(&keys, 1_000, |_| {
                        let put = || Some(Write::Put { value: value.clone(), expires_at_ms: None });
                        (vec![put(), put()], ())
                    })
                    .unwrap();
            }
        })
    };
    let mut apart = 0;
    while !writer.is_finished() {
        let (_, both) = store
            .update_many(&keys, 1_000, |live| {
                let values: Vec<Option<Bytes>> = live.iter().map(|l| l.as_ref().map(|l| l.value.clone())).collect();
                (vec![None, None], values)
            })
            .unwrap();
        apart += usize::from(both[0] != both[1]);
    }
    writer.join().unwrap();
    assert_eq!(apart, 0, "a reader saw the two keys apart");
}

#[test]
fn a_flush_drops_every_entry_written_before_it_and_refuses_them_after() {
    let log = Arc::new(ReplayedLog::default());
    let store = Store::new(node(1), 500).with_change_log(log.clone());
    let peer = Store::new(node(2), 500);
    for i in 0..200 {
        let key = Bytes::from(format!("k{i}"));
        store.update(&key, 1_000, |_| (put("old"), ())).unwrap();
    }
    store.update(&Bytes::from_static(b"k0"), 1_000, |_| (Some(Write::Delete), ())).unwrap();
    // A peer's write before the flush, still on its way.
    let (late, ()) = peer.update(&Bytes::from_static(b"late"), 1_000, |_| (put("old too"), ())).unwrap();
    let flushed = store.flush_local(1_001).unwrap();
    assert_eq!(store.flushed(), flushed);
    assert_eq!((store.entry_count(), store.used_bytes(), store.value_count()), (0, 0, 0));
    assert_eq!(store.leaf_digests(), Store::new(node(3), 500).leaf_digests(), "an empty store's digests");
    assert_eq!(store.children_digests(0, 0), vec![0; TREE_FANOUT as usize]);
    assert!(log.entries().is_empty(), "the disk's copy is flushed too");
    assert_eq!(store.merge(Bytes::from_static(b"late"), late.unwrap(), 1_002), MergeOutcome::Stale);
    assert_eq!(store.get(b"late", 1_002), None, "a write from before the flush never comes back");
    // Writes after it stay, on this node and from a peer that saw it.
    store.update(&Bytes::from_static(b"new"), 1_001, |_| (put("new"), ())).unwrap();
    assert_eq!(peer.flush(flushed, 1_001), FlushOutcome::Applied);
    assert_eq!(peer.flush(flushed, 1_001), FlushOutcome::Stale, "a flush is taken once");
    let (after, ()) = peer.update(&Bytes::from_static(b"after"), 1_001, |_| (put("after"), ())).unwrap();
    assert!(after.as_ref().unwrap().version.timestamp > flushed, "the flush moved the peer's clock");
    assert_eq!(store.merge(Bytes::from_static(b"after"), after.unwrap(), 1_002), MergeOutcome::Applied);
    assert_eq!(store.value_count(), 2);
    assert_eq!(store.flush(flushed, 1_002), FlushOutcome::Stale);
    assert_eq!(store.value_count(), 2, "a flush heard again drops nothing written after it");
    assert_eq!(log.entries().len(), 2);
}

#[test]
fn a_flush_from_far_in_the_future_is_refused() {
    let store = Store::new(node(1), 500);
    store.update(&Bytes::from_static(b"k"), 1_000, |_| (put("v"), ())).unwrap();
    let future = Timestamp::from_physical_ms(1_000 + DEFAULT_MAX_VERSION_AHEAD_MS + 1);
    assert_eq!(store.flush(future, 1_000), FlushOutcome::TooFarAhead);
    assert_eq!(store.value_count(), 1);
    assert_eq!(store.flushed(), Timestamp::ZERO);
}

#[test]
fn a_restored_entry_from_before_the_flush_stays_out() {
    let store = Store::new(node(1), 500);
    let (old, ()) = store.update(&Bytes::from_static(b"k"), 1_000, |_| (put("v"), ())).unwrap();
    let restarted = Store::new(node(1), 500);
    restarted.restore_flushed(Timestamp::from_physical_ms(1_500));
    restarted.restore(Bytes::from_static(b"k"), old.unwrap(), 2_000);
    assert_eq!(restarted.entry_count(), 0);
    assert!(restarted.hlc().last() >= Timestamp::from_physical_ms(1_500), "the clock is past the flush");
}

#[test]
fn a_write_after_a_flush_from_a_clock_far_ahead_is_after_the_flush() {
    // The clock follows remote readings up to 500 ms ahead; this flush is
    // a minute ahead (within max_version_ahead_ms), so the clock stays.
    let store = Store::new(node(1), 500);
    let upto = Timestamp::from_physical_ms(61_000);
    assert_eq!(store.flush(upto, 1_000), FlushOutcome::Applied);
    let (written, ()) = store.update(&Bytes::from_static(b"k"), 1_000, |_| (put("after"), ())).unwrap();
    let written = written.unwrap();
    assert!(written.version.timestamp > upto, "{} after {upto}", written.version);
    assert!(!written.flushed_by(store.flushed()));
    assert!(store.flush_local(1_000).unwrap() > upto, "a later flush here is after it too");
    assert_eq!(store.get(b"k", 1_000), None);
}
