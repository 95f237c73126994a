//! The string commands that read before they write, or write in another
//! shape than SET: SETNX, SETEX, PSETEX, GETSET, GETDEL, GETEX, APPEND,
//! SETRANGE, and the reads STRLEN and GETRANGE (SUBSTR).
//!
//! Each decides under its key's lock, on what this node holds, so on one
//! node it is atomic as in Redis. Across nodes it is last-write-wins like
//! any write: two nodes racing APPENDs on one key keep the later one's
//! result, not both appends. APPEND and SETRANGE write the value only
//! (the deadline part is kept, as Redis keeps a key's TTL); GETEX writes
//! the deadline only, as EXPIRE does.

use bytes::{Bytes, BytesMut};

use super::expire::Unit;
use super::string::Expiry;
use super::{CommandError, Ctx, is};
use crate::core::store::Write;
use crate::resp::num::parse_i64;
use crate::resp::parse::Args;
use crate::resp::reply;

/// Redis's error for a value that would pass `proto-max-bulk-len`.
const TOO_LONG: CommandError = CommandError::fixed("ERR string exceeds maximum allowed size (proto-max-bulk-len)");

/// `SETNX key value`: `:1` if the key was set, `:0` if it held a value.
pub(super) fn setnx(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = Bytes::copy_from_slice(ctx.key(args.arg(1))?);
    let value = Bytes::copy_from_slice(args.arg(2));
    let (written, set) = ctx.shared.store.update(&key, ctx.now_ms(), |live| match live {
        Some(_) => (None, false),
        None => (Some(Write::Put { value, expires_at_ms: None }), true),
    })?;
    ctx.replicate(key, written);
    reply::integer(ctx.out, i64::from(set));
    Ok(())
}

/// `SETEX key seconds value` and `PSETEX key milliseconds value`.
pub(super) fn setex(args: Args<'_>, ctx: &mut Ctx<'_>, unit: Unit) -> Result<(), CommandError> {
    let name = match unit {
        Unit::Seconds => "setex",
        Unit::Milliseconds => "psetex",
    };
    let key = Bytes::copy_from_slice(ctx.key(args.arg(1))?);
    let now_ms = ctx.now_ms();
    let expires_at_ms = Some(Expiry { unit, relative: true }.deadline(args.arg(2), now_ms, name)?);
    let value = Bytes::copy_from_slice(args.arg(3));
    let (written, ()) = ctx.shared.store.update(&key, now_ms, |_| (Some(Write::Put { value, expires_at_ms }), ()))?;
    ctx.replicate(key, written);
    reply::ok(ctx.out);
    Ok(())
}

/// `GETSET key value`: the old value (or nil), and the key set without a
/// deadline, as `SET key value GET`.
pub(super) fn getset(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = Bytes::copy_from_slice(ctx.key(args.arg(1))?);
    let value = Bytes::copy_from_slice(args.arg(2));
    let (written, old) = ctx.shared.store.update(&key, ctx.now_ms(), |live| {
        (Some(Write::Put { value, expires_at_ms: None }), live.map(|l| l.value.clone()))
    })?;
    ctx.replicate(key, written);
    ctx.out.optional_bulk_shared(old);
    Ok(())
}

/// `GETDEL key`: the value (or nil), and the key deleted.
pub(super) fn getdel(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = Bytes::copy_from_slice(ctx.key(args.arg(1))?);
    let (written, old) = ctx.shared.store.update(&key, ctx.now_ms(), |live| match live {
        Some(live) => (Some(Write::Delete), Some(live.value.clone())),
        None => (None, None),
    })?;
    ctx.replicate(key, written);
    ctx.out.optional_bulk_shared(old);
    Ok(())
}

/// `GETEX key [EX s | PX ms | EXAT s | PXAT ms | PERSIST]`: the value (or
/// nil), and its deadline changed if asked; a deadline already past
/// deletes the key, as in Redis.
pub(super) fn getex(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = Bytes::copy_from_slice(ctx.key(args.arg(1))?);
    let now_ms = ctx.now_ms();
    // As in Redis, the amount is checked only once the key is found: a
    // missing key answers nil whatever it is.
    let change = match getex_option(args)? {
        GetexOption::Keep => Ok(None),
        GetexOption::Persist => Ok(Some(Write::Deadline { expires_at_ms: None })),
        GetexOption::Expire(kind, amount) => kind
            .deadline(amount, now_ms, "getex")
            .map(|at| Some(if at <= now_ms { Write::Delete } else { Write::Deadline { expires_at_ms: Some(at) } })),
    };
    let (written, value) = ctx.shared.store.update(&key, now_ms, |live| match (live, &change) {
        (Some(_), Err(error)) => (None, Err(error.clone())),
        (Some(live), Ok(change)) => {
            // PERSIST on a key without a deadline writes nothing.
            let change = change
                .clone()
                .filter(|w| !matches!(w, Write::Deadline { expires_at_ms: None }) || live.expires_at_ms.is_some());
            (change, Ok(Some(live.value.clone())))
        }
        (None, _) => (None, Ok(None)),
    })?;
    let value = value?;
    ctx.replicate(key, written);
    ctx.out.optional_bulk_shared(value);
    Ok(())
}

/// What GETEX was asked to do to the deadline.
#[derive(Clone, Copy)]
enum GetexOption<'a> {
    Keep,
    Persist,
    /// An expiry and its amount, not yet checked.
    Expire(Expiry, &'a [u8]),
}

/// GETEX's option, parsed with SET's rules, as Redis shares the parser:
/// one kind of expiry, repeated as often as wanted (the last amount is the
/// one read, and the only one checked), or PERSIST, as often.
fn getex_option(args: Args<'_>) -> Result<GetexOption<'_>, CommandError> {
    let mut option = GetexOption::Keep;
    let mut index = 2;
    while let Some(name) = args.get(index) {
        option = match (Expiry::named(name), args.get(index + 1), option) {
            (None, _, GetexOption::Keep | GetexOption::Persist) if is(name, "PERSIST") => GetexOption::Persist,
            (Some(kind), Some(amount), GetexOption::Keep) => GetexOption::Expire(kind, amount),
            (Some(kind), Some(amount), GetexOption::Expire(held, _)) if held == kind => {
                GetexOption::Expire(kind, amount)
            }
            _ => return Err(CommandError::Syntax),
        };
        index += if matches!(option, GetexOption::Expire(..)) { 2 } else { 1 };
    }
    Ok(option)
}

/// `APPEND key value`: the new length; a missing key is created.
pub(super) fn append(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = Bytes::copy_from_slice(ctx.key(args.arg(1))?);
    let tail = args.arg(2);
    let max = ctx.shared.limits.max_bulk_bytes();
    let (written, len) = ctx.shared.store.update(&key, ctx.now_ms(), |live| {
        let held: &[u8] = live.as_ref().map_or(&[], |l| l.value.as_ref());
        let len = held.len() + tail.len();
        if len > max {
            return (None, Err(TOO_LONG));
        }
        if tail.is_empty() && live.is_some() {
            return (None, Ok(len));
        }
        let mut value = BytesMut::with_capacity(len);
        value.extend_from_slice(held);
        value.extend_from_slice(tail);
        (Some(Write::Value { value: value.freeze() }), Ok(len))
    })?;
    let len = len?;
    ctx.replicate(key, written);
    reply::count(ctx.out, len);
    Ok(())
}

/// `SETRANGE key offset value`: overwrites from `offset`, padding with
/// zero bytes; the new length.
pub(super) fn setrange(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = Bytes::copy_from_slice(ctx.key(args.arg(1))?);
    let offset = parse_i64(args.arg(2)).ok_or(CommandError::NotInteger)?;
    let offset = usize::try_from(offset).map_err(|_| CommandError::fixed("ERR offset is out of range"))?;
    let patch = args.arg(3);
    let max = ctx.shared.limits.max_bulk_bytes();
    let (written, len) = ctx.shared.store.update(&key, ctx.now_ms(), |live| {
        let held: &[u8] = live.as_ref().map_or(&[], |l| l.value.as_ref());
        // An empty patch changes nothing, and creates nothing.
        if patch.is_empty() {
            return (None, Ok(held.len()));
        }
        let end = match offset.checked_add(patch.len()) {
            Some(end) if end <= max => end,
            _ => return (None, Err(TOO_LONG)),
        };
        let len = held.len().max(end);
        let mut value = BytesMut::zeroed(len);
        value[..held.len()].copy_from_slice(held);
        value[offset..end].copy_from_slice(patch);
        (Some(Write::Value { value: value.freeze() }), Ok(len))
    })?;
    let len = len?;
    ctx.replicate(key, written);
    reply::count(ctx.out, len);
    Ok(())
}

/// `STRLEN key`: 0 for a missing key.
pub(super) fn strlen(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = ctx.key(args.arg(1))?;
    let len = ctx.shared.store.get(key, ctx.now_ms()).map_or(0, |v| v.len());
    reply::count(ctx.out, len);
    Ok(())
}

/// `GETRANGE key start end` (and its old name `SUBSTR`): the bytes from
/// `start` to `end` inclusive, negative positions counting from the end,
/// as Redis clamps them.
pub(super) fn getrange(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = ctx.key(args.arg(1))?;
    let start = parse_i64(args.arg(2)).ok_or(CommandError::NotInteger)?;
    let end = parse_i64(args.arg(3)).ok_or(CommandError::NotInteger)?;
    let value = ctx.shared.store.get(key, ctx.now_ms()).unwrap_or_default();
    // Both positions are below the value's length, so they fit a usize.
    match range(value.len() as u64, start, end) {
        Some((from, to)) => ctx.out.bulk_shared(value.slice(from as usize..=to as usize)),
        None => reply::bulk(ctx.out, b""),
    }
    Ok(())
}

/// Redis's inclusive range `start..=end` over `len` positions (GETRANGE's
/// bytes, BITCOUNT's and BITPOS's bytes or bits), negative positions
/// counting from the end and both clamped; `None` when it is empty.
pub(super) fn range(len: u64, start: i64, end: i64) -> Option<(u64, u64)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let from_end = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (from_end(start), from_end(end).min(len - 1));
    if len == 0 || start > end {
        return None;
    }
    Some((u64::try_from(start).ok()?, u64::try_from(end).ok()?))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Harness;
    use super::range;

    /// PTTL of `key`: the clock may move a millisecond between commands.
    async fn pttl(h: &mut Harness, key: &str) -> i64 {
        h.run(&["PTTL", key]).await.trim_start_matches(':').trim_end().parse().unwrap()
    }

    #[tokio::test]
    async fn setnx_sets_only_a_missing_key() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SETNX", "k", "a"]).await, ":1\r\n");
        assert_eq!(h.run(&["SETNX", "k", "b"]).await, ":0\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "$1\r\na\r\n");
        assert_eq!(h.replicated(), [("k".to_owned(), false)], "the refused SETNX wrote nothing");
    }

    #[tokio::test]
    async fn setex_and_psetex_set_a_deadline_and_refuse_bad_ones() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SETEX", "k", "10", "v"]).await, "+OK\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":10\r\n");
        assert_eq!(h.run(&["PSETEX", "p", "1500", "v"]).await, "+OK\r\n");
        assert!((1490..=1500).contains(&pttl(&mut h, "p").await));
        assert_eq!(h.run(&["SETEX", "k", "0", "v"]).await, "-ERR invalid expire time in 'setex' command\r\n");
        assert_eq!(h.run(&["PSETEX", "k", "-5", "v"]).await, "-ERR invalid expire time in 'psetex' command\r\n");
        assert_eq!(h.run(&["SETEX", "k", "x", "v"]).await, "-ERR value is not an integer or out of range\r\n");
        assert_eq!(
            h.run(&["SETEX", "k", "9223372036854775807", "v"]).await,
            "-ERR invalid expire time in 'setex' command\r\n"
        );
        assert_eq!(h.run(&["SETEX", "k", "1"]).await, "-ERR wrong number of arguments for 'setex' command\r\n");
    }

    #[tokio::test]
    async fn getset_and_getdel_answer_the_old_value() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["GETSET", "k", "a"]).await, "$-1\r\n");
        assert_eq!(h.run(&["SETEX", "k", "100", "b"]).await, "+OK\r\n");
        assert_eq!(h.run(&["GETSET", "k", "c"]).await, "$1\r\nb\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":-1\r\n", "GETSET drops the deadline, as SET does");
        assert_eq!(h.run(&["GETDEL", "k"]).await, "$1\r\nc\r\n");
        assert_eq!(h.run(&["GETDEL", "k"]).await, "$-1\r\n");
        assert_eq!(h.run(&["EXISTS", "k"]).await, ":0\r\n");
        let written: Vec<bool> = h.replicated().into_iter().map(|(_, tombstone)| tombstone).collect();
        assert_eq!(written, [false, false, false, true], "the second GETDEL wrote nothing");
    }

    #[tokio::test]
    async fn getex_changes_only_the_deadline() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["GETEX", "k"]).await, "$-1\r\n");
        assert_eq!(h.run(&["GETEX", "k", "EX", "10"]).await, "$-1\r\n", "a missing key gets no deadline");
        assert_eq!(h.run(&["GETEX", "k", "EX", "0"]).await, "$-1\r\n", "the amount is checked on a found key only");
        assert_eq!(h.run(&["GETEX", "k", "PX", "x"]).await, "$-1\r\n");
        h.run(&["SET", "k", "v"]).await;
        assert_eq!(h.run(&["GETEX", "k", "PX", "5000"]).await, "$1\r\nv\r\n");
        assert!((4990..=5000).contains(&pttl(&mut h, "k").await));
        assert_eq!(h.run(&["GETEX", "k", "PERSIST"]).await, "$1\r\nv\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":-1\r\n");
        assert_eq!(h.run(&["GETEX", "k"]).await, "$1\r\nv\r\n");
        assert_eq!(h.run(&["GETEX", "k", "EX", "0"]).await, "-ERR invalid expire time in 'getex' command\r\n");
        assert_eq!(h.run(&["GETEX", "k", "EX"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["GETEX", "k", "PERSIST", "EX", "1"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["GETEX", "k", "KEEPTTL"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["GETEX", "k", "EX", "1", "PX", "1"]).await, "-ERR syntax error\r\n");
        // As in Redis, the same option may come again: the last amount is
        // the one read, and the only one checked.
        assert_eq!(h.run(&["GETEX", "k", "EX", "0", "EX", "20"]).await, "$1\r\nv\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":20\r\n");
        assert_eq!(h.run(&["GETEX", "k", "PERSIST", "PERSIST"]).await, "$1\r\nv\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":-1\r\n");
        // SET, then PX and PERSIST, EX 20 and PERSIST PERSIST: five writes; GETEX without options,
        // and PERSIST of a key without a deadline, write nothing.
        assert_eq!(h.run(&["GETEX", "k", "PERSIST"]).await, "$1\r\nv\r\n");
        assert_eq!(h.replicated().len(), 5);
        // A Unix time already past deletes the key.
        assert_eq!(h.run(&["GETEX", "k", "PXAT", "1"]).await, "$1\r\nv\r\n");
        assert_eq!(h.run(&["EXISTS", "k"]).await, ":0\r\n");
    }

    #[tokio::test]
    async fn append_and_setrange_keep_the_deadline_and_the_length_limit() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["APPEND", "k", "Hello"]).await, ":5\r\n");
        assert_eq!(h.run(&["APPEND", "k", " World"]).await, ":11\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "$11\r\nHello World\r\n");
        h.run(&["EXPIRE", "k", "100"]).await;
        assert_eq!(h.run(&["SETRANGE", "k", "6", "Redis"]).await, ":11\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "$11\r\nHello Redis\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":100\r\n", "APPEND and SETRANGE keep the deadline");
        assert_eq!(h.run(&["SETRANGE", "pad", "3", "x"]).await, ":4\r\n");
        assert_eq!(h.run(&["GET", "pad"]).await, "$4\r\n\0\0\0x\r\n");
        assert_eq!(h.run(&["SETRANGE", "none", "5", ""]).await, ":0\r\n");
        assert_eq!(h.run(&["EXISTS", "none"]).await, ":0\r\n", "an empty patch creates nothing");
        assert_eq!(h.run(&["SETRANGE", "k", "-1", "x"]).await, "-ERR offset is out of range\r\n");
        let too_far = (64 * 1024 * 1024).to_string();
        assert_eq!(
            h.run(&["SETRANGE", "k", &too_far, "x"]).await,
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"
        );
        assert_eq!(h.run(&["STRLEN", "k"]).await, ":11\r\n");
        assert_eq!(h.run(&["STRLEN", "missing"]).await, ":0\r\n");
    }

    #[tokio::test]
    async fn nil_and_lengths_in_resp3() {
        let mut h = Harness::new();
        assert!(h.run(&["HELLO", "3"]).await.starts_with('%'));
        assert_eq!(h.run(&["GETDEL", "nosuch"]).await, "_\r\n");
        assert_eq!(h.run(&["GETSET", "k", "v"]).await, "_\r\n");
        assert_eq!(h.run(&["GETEX", "k", "PX", "100"]).await, "$1\r\nv\r\n");
        assert_eq!(h.run(&["APPEND", "k", "w"]).await, ":2\r\n");
    }

    #[tokio::test]
    async fn getrange_clamps_as_redis_does() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "This is a string"]).await;
        assert_eq!(h.run(&["GETRANGE", "k", "0", "3"]).await, "$4\r\nThis\r\n");
        assert_eq!(h.run(&["GETRANGE", "k", "-3", "-1"]).await, "$3\r\ning\r\n");
        assert_eq!(h.run(&["GETRANGE", "k", "0", "-1"]).await, "$16\r\nThis is a string\r\n");
        assert_eq!(h.run(&["GETRANGE", "k", "10", "100"]).await, "$6\r\nstring\r\n");
        assert_eq!(h.run(&["SUBSTR", "k", "5", "6"]).await, "$2\r\nis\r\n");
        assert_eq!(h.run(&["GETRANGE", "missing", "0", "-1"]).await, "$0\r\n\r\n");
        assert_eq!(h.run(&["GETRANGE", "k", "a", "1"]).await, "-ERR value is not an integer or out of range\r\n");
        assert_eq!(range(5, -1, -2), None);
        assert_eq!(range(5, 3, 1), None);
        assert_eq!(range(0, 0, -1), None);
        assert_eq!(range(5, -100, 100), Some((0, 4)));
    }
}
