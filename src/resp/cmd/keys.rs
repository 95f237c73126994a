//! Whole-key commands: DEL (and UNLINK), EXISTS (and TOUCH), TYPE,
//! RENAME, RENAMENX, COPY, DBSIZE, SCAN, KEYS.

use bytes::Bytes;

use super::{CommandError, Ctx, is};
use crate::core::store::{Ttl, Write};
use crate::resp::glob;
use crate::resp::num::{parse_i64, parse_u64};
use crate::resp::parse::Args;
use crate::resp::reply;

/// `DEL key…`: how many keys held a live value. Only those get a tombstone.
pub(super) fn del(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    for key in args.iter_from(1) {
        ctx.key(key)?;
    }
    let now_ms = ctx.now_ms();
    let mut deleted = 0;
    for key in args.iter_from(1) {
        let key = Bytes::copy_from_slice(key);
        let (written, existed) = ctx.shared.store.update(&key, now_ms, |live| match live {
            Some(_) => (Some(Write::Delete), true),
            None => (None, false),
        })?;
        deleted += usize::from(existed);
        ctx.replicate(key, written);
    }
    reply::count(ctx.out, deleted);
    Ok(())
}

/// `EXISTS key…`: how many of the keys are live; a key named twice counts
/// twice, as in Redis.
pub(super) fn exists(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    for key in args.iter_from(1) {
        ctx.key(key)?;
    }
    let now_ms = ctx.now_ms();
    let live = args.iter_from(1).filter(|key| ctx.shared.store.ttl(key, now_ms) != Ttl::Missing).count();
    reply::count(ctx.out, live);
    Ok(())
}

/// `RENAME key newkey` (`nx`: `RENAMENX`, `:1`/`:0`): the value and its
/// deadline move as one write of both keys on this node (a tombstone for
/// `key`, the value under `newkey`), and reach the other nodes in one batch.
pub(super) fn rename(args: Args<'_>, ctx: &mut Ctx<'_>, nx: bool) -> Result<(), CommandError> {
    let keys = [Bytes::copy_from_slice(ctx.key(args.arg(1))?), Bytes::copy_from_slice(ctx.key(args.arg(2))?)];
    let same = keys[0] == keys[1];
    let (written, outcome) = ctx.shared.store.update_many(&keys, ctx.now_ms(), |live| match live {
        [None, _] => (Vec::new(), Err(CommandError::fixed("ERR no such key"))),
        [Some(_), _] if same => (Vec::new(), Ok(false)),
        [Some(_), Some(_)] if nx => (Vec::new(), Ok(false)),
        [Some(source), _] => {
            let moved = Write::Put { value: source.value.clone(), expires_at_ms: source.expires_at_ms };
            (vec![Some(Write::Delete), Some(moved)], Ok(true))
        }
        _ => unreachable!("two keys"),
    })?;
    let renamed = outcome?;
    for (key, entry) in written {
        ctx.replicate(key, Some(entry));
    }
    if nx {
        reply::integer(ctx.out, i64::from(renamed));
    } else {
        reply::ok(ctx.out);
    }
    Ok(())
}

/// `COPY source destination [DB 0] [REPLACE]`: `:1` if the value (and its
/// deadline) was copied, `:0` if the source is missing or the destination
/// holds a value and REPLACE was not given.
pub(super) fn copy(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let keys = [Bytes::copy_from_slice(ctx.key(args.arg(1))?), Bytes::copy_from_slice(ctx.key(args.arg(2))?)];
    let mut replace = false;
    let mut index = 3;
    while let Some(option) = args.get(index) {
        if is(option, "REPLACE") {
            replace = true;
        } else if is(option, "DB") && args.get(index + 1).is_some() {
            index += 1;
            if super::session::db_index(args.arg(index))? != 0 {
                return Err(CommandError::fixed("ERR DB index is out of range"));
            }
        } else {
            return Err(CommandError::Syntax);
        }
        index += 1;
    }
    if keys[0] == keys[1] {
        return Err(CommandError::fixed("ERR source and destination objects are the same"));
    }
    let (written, copied) = ctx.shared.store.update_many(&keys, ctx.now_ms(), |live| match live {
        [Some(source), destination] if replace || destination.is_none() => {
            let copy = Write::Put { value: source.value.clone(), expires_at_ms: source.expires_at_ms };
            (vec![None, Some(copy)], true)
        }
        _ => (Vec::new(), false),
    })?;
    for (key, entry) in written {
        ctx.replicate(key, Some(entry));
    }
    reply::integer(ctx.out, i64::from(copied));
    Ok(())
}

/// `TYPE key`: `string` (every value is one, for now) or `none`.
pub(super) fn key_type(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = ctx.key(args.arg(1))?;
    let live = ctx.shared.store.ttl(key, ctx.now_ms()) != Ttl::Missing;
    reply::simple(ctx.out, if live { b"string" } else { b"none" });
    Ok(())
}

/// `DBSIZE`: keys holding a value (expired ones until they are swept, the
/// approximation Redis makes too).
pub(super) fn dbsize(ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    reply::count(ctx.out, ctx.shared.store.value_count());
    Ok(())
}

/// `FLUSHALL [ASYNC|SYNC]` and `FLUSHDB [ASYNC|SYNC]` (one database, so
/// the same): every key on every node, as one versioned flush — each node
/// drops what was written before it and refuses it from then on, and
/// writes after it stay (see `core::store::flush`). Either mode frees the
/// memory before the reply; the flush goes out with the batch's writes.
pub(super) fn flush(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    match args.len() {
        1 => {}
        2 if is(args.arg(1), "ASYNC") || is(args.arg(1), "SYNC") => {}
        _ => return Err(CommandError::Syntax),
    }
    let upto = ctx.shared.store.flush_local(ctx.now_ms)?;
    ctx.session.unsettled_writes = true;
    ctx.session.wrote = true;
    ctx.pending.flushed = Some(upto);
    reply::ok(ctx.out);
    Ok(())
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`. The cursor is the
/// store's shard index; every key present for the whole walk is returned
/// once. Every value is a string, so `TYPE string` keeps all keys and any
/// other type none.
pub(super) fn scan(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let cursor = parse_u64(args.arg(1)).ok_or(CommandError::fixed("ERR invalid cursor"))?;
    let mut count = DEFAULT_SCAN_COUNT;
    let mut pattern: Option<&[u8]> = None;
    let mut strings_only = true;
    let mut index = 2;
    while let Some(option) = args.get(index) {
        let value = args.get(index + 1).ok_or(CommandError::Syntax)?;
        if is(option, "COUNT") {
            let n = parse_i64(value).ok_or(CommandError::NotInteger)?;
            count = usize::try_from(n).ok().filter(|&n| n >= 1).ok_or(CommandError::Syntax)?;
        } else if is(option, "MATCH") {
            pattern = (value != b"*").then_some(value);
        } else if is(option, "TYPE") {
            strings_only = is(value, "STRING");
        } else {
            return Err(CommandError::Syntax);
        }
        index += 2;
    }
    let now_ms = ctx.now_ms();
    let walk = || {
        ctx.shared
            .store
            .scan(cursor, count, now_ms, |key| strings_only && pattern.is_none_or(|p| glob::matches(p, key, false)))
    };
    // A COUNT that asks for much walks much: off the client workers.
    let (next, keys) = if count > LONG_SCAN_COUNT { crate::resp::blocking::off_workers(walk) } else { walk() };
    reply::array(ctx.out, 2);
    reply::bulk_u64(ctx.out, next);
    write_keys(ctx, &keys);
    Ok(())
}

/// `KEYS pattern`: every live key matching, in one reply.
pub(super) fn keys(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let pattern = args.arg(1);
    let everything = pattern == b"*";
    let (_, keys) =
        ctx.shared.store.scan(0, usize::MAX, ctx.now_ms(), |key| everything || glob::matches(pattern, key, false));
    write_keys(ctx, &keys);
    Ok(())
}

fn write_keys(ctx: &mut Ctx<'_>, keys: &[Bytes]) {
    reply::array(ctx.out, keys.len());
    for key in keys {
        reply::bulk(ctx.out, key);
    }
}

/// SCAN's COUNT when none is given (Redis's default).
const DEFAULT_SCAN_COUNT: usize = 10;

/// A SCAN COUNT past which the call runs off the client workers (it may
/// look at ten times as many entries).
const LONG_SCAN_COUNT: usize = 1000;

#[cfg(test)]
mod tests {
    use super::super::testkit::Harness;

    /// Parses a flat array reply of bulk strings (test replies only).
    fn bulks(reply: &str) -> Vec<String> {
        let mut lines = reply.split("\r\n");
        let mut out = Vec::new();
        while let Some(line) = lines.next() {
            if line.starts_with('$') {
                out.push(lines.next().unwrap().to_owned());
            }
        }
        out
    }

    #[tokio::test]
    async fn del_counts_live_keys_only() {
        let mut h = Harness::new();
        h.run(&["MSET", "a", "1", "b", "2"]).await;
        h.replicated();
        assert_eq!(h.run(&["DEL", "a", "missing", "a", "b"]).await, ":2\r\n");
        assert_eq!(h.run(&["GET", "a"]).await, "$-1\r\n");
        assert_eq!(h.replicated(), [("a".to_owned(), true), ("b".to_owned(), true)]);
        assert_eq!(h.run(&["DEL", "a"]).await, ":0\r\n");
        assert!(h.replicated().is_empty(), "no tombstone for a missing key");
    }

    #[tokio::test]
    async fn type_unlink_and_touch() {
        let mut h = Harness::new();
        h.run(&["SET", "a", "1"]).await;
        assert_eq!(h.run(&["TYPE", "a"]).await, "+string\r\n");
        assert_eq!(h.run(&["TYPE", "b"]).await, "+none\r\n");
        assert_eq!(h.run(&["TOUCH", "a", "a", "b"]).await, ":2\r\n");
        assert_eq!(h.run(&["UNLINK", "a", "b"]).await, ":1\r\n");
        assert_eq!(h.run(&["TYPE", "a"]).await, "+none\r\n");
        assert_eq!(h.run(&["UNLINK"]).await, "-ERR wrong number of arguments for 'unlink' command\r\n");
        assert_eq!(h.replicated(), [("a".to_owned(), false), ("a".to_owned(), true)]);
    }

    #[tokio::test]
    async fn rename_moves_the_value_and_its_deadline_as_one_batch() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["RENAME", "nosuch", "b"]).await, "-ERR no such key\r\n");
        assert_eq!(h.run(&["RENAMENX", "nosuch", "b"]).await, "-ERR no such key\r\n");
        h.run(&["SET", "a", "1", "PX", "100000"]).await;
        assert_eq!(h.run(&["RENAME", "a", "a"]).await, "+OK\r\n");
        assert_eq!(h.run(&["RENAMENX", "a", "a"]).await, ":0\r\n");
        assert_eq!(h.replicated(), [("a".to_owned(), false)], "renaming a key to itself writes nothing");
        assert_eq!(h.run(&["RENAME", "a", "b"]).await, "+OK\r\n");
        assert_eq!(h.replicated(), [("a".to_owned(), true), ("b".to_owned(), false)], "one batch, both keys");
        assert_eq!(h.run(&["GET", "b"]).await, "$1\r\n1\r\n");
        assert_eq!(h.run(&["EXISTS", "a"]).await, ":0\r\n");
        let pttl: i64 = h.run(&["PTTL", "b"]).await.trim_start_matches(':').trim().parse().unwrap();
        assert!((99_000..=100_000).contains(&pttl), "the deadline moved with the value: {pttl}");
        h.run(&["SET", "c", "3"]).await;
        assert_eq!(h.run(&["RENAMENX", "b", "c"]).await, ":0\r\n");
        assert_eq!(h.run(&["RENAMENX", "b", "d"]).await, ":1\r\n");
        assert_eq!(h.run(&["RENAME", "d", "c"]).await, "+OK\r\n", "RENAME overwrites");
        assert_eq!(h.run(&["GET", "c"]).await, "$1\r\n1\r\n");
    }

    #[tokio::test]
    async fn copy_keeps_the_source_and_needs_replace_to_overwrite() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["COPY", "nosuch", "b"]).await, ":0\r\n");
        h.run(&["SET", "a", "1", "EX", "100"]).await;
        h.run(&["SET", "b", "2"]).await;
        assert_eq!(h.run(&["COPY", "a", "b"]).await, ":0\r\n");
        assert_eq!(h.run(&["COPY", "a", "b", "REPLACE"]).await, ":1\r\n");
        assert_eq!(h.run(&["MGET", "a", "b"]).await, "*2\r\n$1\r\n1\r\n$1\r\n1\r\n");
        assert_eq!(h.run(&["TTL", "b"]).await, ":100\r\n");
        assert_eq!(h.run(&["COPY", "a", "c", "DB", "0"]).await, ":1\r\n");
        assert_eq!(h.run(&["COPY", "a", "d", "DB", "1"]).await, "-ERR DB index is out of range\r\n");
        assert_eq!(
            h.run(&["COPY", "a", "d", "DB", "-2147483649"]).await,
            "-ERR value is out of range, value must between -2147483648 and 2147483647\r\n"
        );
        assert_eq!(h.run(&["COPY", "a", "a"]).await, "-ERR source and destination objects are the same\r\n");
        assert_eq!(h.run(&["COPY", "a", "e", "foo"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["COPY", "a", "e", "DB"]).await, "-ERR syntax error\r\n");
    }

    #[tokio::test]
    async fn exists_counts_duplicates() {
        let mut h = Harness::new();
        h.run(&["SET", "a", "1"]).await;
        assert_eq!(h.run(&["EXISTS", "a", "a", "b"]).await, ":2\r\n");
        assert_eq!(h.run(&["EXISTS", "b"]).await, ":0\r\n");
    }

    #[tokio::test]
    async fn flushall_empties_the_node_and_goes_out_as_one_flush() {
        let mut h = Harness::new();
        h.run(&["MSET", "a", "1", "b", "2"]).await;
        h.run(&["DEL", "b"]).await;
        h.replicated();
        assert_eq!(h.run(&["FLUSHALL"]).await, "+OK\r\n");
        assert_eq!(h.run(&["DBSIZE"]).await, ":0\r\n");
        assert_eq!(h.shared.store.entry_count(), 0, "no tombstone per key");
        let flushed = h.shared.store.flushed();
        let batch = h.replicated.try_recv().expect("the flush is handed to dissemination");
        assert_eq!((batch.writes.len(), batch.flushed), (0, Some(flushed)));
        h.run(&["SET", "a", "after"]).await;
        assert_eq!(h.run(&["FLUSHDB", "async"]).await, "+OK\r\n");
        assert!(h.shared.store.flushed() > flushed);
        assert_eq!(h.run(&["GET", "a"]).await, "$-1\r\n");
        assert_eq!(h.run(&["FLUSHALL", "SYNC"]).await, "+OK\r\n");
        assert_eq!(h.run(&["FLUSHALL", "LAZY"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["FLUSHDB", "SYNC", "ASYNC"]).await, "-ERR syntax error\r\n");
    }

    #[tokio::test]
    async fn dbsize_counts_values() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["DBSIZE"]).await, ":0\r\n");
        h.run(&["MSET", "a", "1", "b", "2", "c", "3"]).await;
        h.run(&["DEL", "b"]).await;
        assert_eq!(h.run(&["DBSIZE"]).await, ":2\r\n");
    }

    #[tokio::test]
    async fn keys_matches_a_glob() {
        let mut h = Harness::new();
        h.run(&["MSET", "user:1", "a", "user:2", "b", "item:1", "c"]).await;
        let mut all = bulks(&h.run(&["KEYS", "*"]).await);
        all.sort();
        assert_eq!(all, ["item:1", "user:1", "user:2"]);
        let mut users = bulks(&h.run(&["KEYS", "user:*"]).await);
        users.sort();
        assert_eq!(users, ["user:1", "user:2"]);
        assert_eq!(bulks(&h.run(&["KEYS", "*:[2]"]).await), ["user:2"]);
        assert_eq!(h.run(&["KEYS", "nothing*"]).await, "*0\r\n");
    }

    #[tokio::test]
    async fn scan_walks_every_key_once() {
        let mut h = Harness::new();
        for i in 0..300 {
            h.run(&["SET", &format!("key:{i}"), "v"]).await;
        }
        h.replicated();
        let mut seen = Vec::new();
        let mut cursor = "0".to_owned();
        for _ in 0..10_000 {
            let reply = h.run(&["SCAN", &cursor, "COUNT", "50"]).await;
            assert!(reply.starts_with("*2\r\n$"), "{reply}");
            let mut parts = bulks(&reply);
            cursor = parts.remove(0);
            seen.extend(parts);
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(cursor, "0");
        seen.sort();
        let before = seen.len();
        seen.dedup();
        assert_eq!(before, seen.len(), "no key twice");
        assert_eq!(seen.len(), 300);
    }

    #[tokio::test]
    async fn scan_options() {
        let mut h = Harness::new();
        h.run(&["MSET", "user:1", "a", "item:1", "c"]).await;
        let reply = h.run(&["SCAN", "0", "MATCH", "user:*", "COUNT", "100000"]).await;
        assert_eq!(reply, "*2\r\n$1\r\n0\r\n*1\r\n$6\r\nuser:1\r\n");
        let reply = h.run(&["scan", "0", "count", "5000", "type", "string", "match", "*"]).await;
        assert_eq!(bulks(&reply).len(), 3);
        let reply = h.run(&["SCAN", "0", "COUNT", "5000", "TYPE", "hash"]).await;
        assert_eq!(reply, "*2\r\n$1\r\n0\r\n*0\r\n");
        assert_eq!(h.run(&["SCAN", "x"]).await, "-ERR invalid cursor\r\n");
        assert_eq!(h.run(&["SCAN", "-1"]).await, "-ERR invalid cursor\r\n");
        assert_eq!(h.run(&["SCAN", "0", "COUNT", "0"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["SCAN", "0", "COUNT", "x"]).await, "-ERR value is not an integer or out of range\r\n");
        assert_eq!(h.run(&["SCAN", "0", "MATCH"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["SCAN", "0", "LIMIT", "1"]).await, "-ERR syntax error\r\n");
        // A cursor past the end is a finished walk, as in Redis.
        assert_eq!(h.run(&["SCAN", "99999999"]).await, "*2\r\n$1\r\n0\r\n*0\r\n");
    }
}
