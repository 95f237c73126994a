//! The string commands: GET, SET (with all of Redis 7's options), MGET,
//! MSET, MSETNX.
//!
//! Keys and values are copied out of the read buffer before they are
//! stored: a stored slice of the buffer would pin the whole buffer.

use bytes::Bytes;

use super::expire::Unit;
use super::{CommandError, Ctx, is};
use crate::core::store::Write;
use crate::resp::num::parse_i64;
use crate::resp::parse::Args;
use crate::resp::reply;

/// `GET key`.
pub(super) fn get(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = ctx.key(args.arg(1))?;
    let value = ctx.shared.store.get(key, ctx.now_ms());
    ctx.out.optional_bulk_shared(value);
    Ok(())
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`.
pub(super) fn set(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = ctx.key(args.arg(1))?;
    let options = SetOptions::parse(args)?;
    let now_ms = ctx.now_ms();
    let deadline = options.expire.map(|(expire, amount)| expire.deadline(amount, now_ms, "set")).transpose()?;
    let key = Bytes::copy_from_slice(key);
    let value = Bytes::copy_from_slice(args.arg(2));
    let (written, (old, applied)) = ctx.shared.store.update(&key, now_ms, |live| {
        let old = options.get.then(|| live.map(|l| l.value.clone())).flatten();
        let found = live.is_some();
        if (options.nx && found) || (options.xx && !found) {
            return (None, (old, false));
        }
        let write = match deadline {
            // KEEPTTL writes the value only: a deadline set concurrently on
            // another node (EXPIRE, PERSIST) is kept, as is this node's.
            _ if options.keep_ttl => Write::Value { value },
            // An EXAT/PXAT already past: the key is gone at once.
            Some(at) if at <= now_ms => Write::Delete,
            expires_at_ms => Write::Put { value, expires_at_ms },
        };
        (Some(write), (old, true))
    })?;
    ctx.replicate(key, written);
    if options.get {
        ctx.out.optional_bulk_shared(old);
    } else if applied {
        reply::ok(ctx.out);
    } else {
        reply::null(ctx.out);
    }
    Ok(())
}

/// `MGET key…`.
pub(super) fn mget(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    for key in args.iter_from(1) {
        ctx.key(key)?;
    }
    let now_ms = ctx.now_ms();
    reply::array(ctx.out, args.len() - 1);
    for key in args.iter_from(1) {
        ctx.out.optional_bulk_shared(ctx.shared.store.get(key, now_ms));
    }
    Ok(())
}

/// `MSET key value [key value…]`: every key is checked before any is
/// written, and all are written as one (no command on this node sees some
/// and not the others).
pub(super) fn mset(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    set_all(args, ctx, "mset", false)?;
    reply::ok(ctx.out);
    Ok(())
}

/// `MSETNX key value [key value…]`: `:1` and every pair written as one if
/// none of the keys holds a value on this node, else `:0` and nothing.
pub(super) fn msetnx(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let set = set_all(args, ctx, "msetnx", true)?;
    reply::integer(ctx.out, i64::from(set));
    Ok(())
}

/// Writes MSET's pairs as one update, unless `only_if_none` and a key is
/// live; whether they were written.
fn set_all(args: Args<'_>, ctx: &mut Ctx<'_>, name: &'static str, only_if_none: bool) -> Result<bool, CommandError> {
    if args.len().is_multiple_of(2) {
        return Err(CommandError::Arity(name));
    }
    for key in args.iter_from(1).step_by(2) {
        ctx.key(key)?;
    }
    let keys: Vec<Bytes> = args.iter_from(1).step_by(2).map(Bytes::copy_from_slice).collect();
    let values = args.iter_from(2).step_by(2).map(Bytes::copy_from_slice);
    let (written, set) = ctx.shared.store.update_many(&keys, ctx.now_ms(), |live| {
        if only_if_none && live.iter().any(Option::is_some) {
            return (Vec::new(), false);
        }
        (values.map(|value| Some(Write::Put { value, expires_at_ms: None })).collect(), true)
    })?;
    for (key, entry) in written {
        ctx.replicate(key, Some(entry));
    }
    Ok(set)
}

/// SET's options, parsed with Redis's rules: NX and XX exclude each other,
/// one kind of expiry (repeated, the last wins) or KEEPTTL.
#[derive(Debug, Default)]
struct SetOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keep_ttl: bool,
    expire: Option<(Expiry, &'a [u8])>,
}

impl<'a> SetOptions<'a> {
    fn parse(args: Args<'a>) -> Result<Self, CommandError> {
        let mut options = SetOptions::default();
        let mut index = 3;
        while let Some(option) = args.get(index) {
            let next = args.get(index + 1);
            if is(option, "NX") && !options.xx {
                options.nx = true;
            } else if is(option, "XX") && !options.nx {
                options.xx = true;
            } else if is(option, "GET") {
                options.get = true;
            } else if is(option, "KEEPTTL") && options.expire.is_none() {
                options.keep_ttl = true;
            } else if let (Some(kind), Some(amount)) = (Expiry::named(option), next)
                && !options.keep_ttl
                && options.expire.is_none_or(|(held, _)| held == kind)
            {
                options.expire = Some((kind, amount));
                index += 1;
            } else {
                return Err(CommandError::Syntax);
            }
            index += 1;
        }
        Ok(options)
    }
}

/// The ways SET, GETEX and SETEX give an expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Expiry {
    pub(super) unit: Unit,
    /// Relative to now (EX, PX) or a Unix time (EXAT, PXAT).
    pub(super) relative: bool,
}

impl Expiry {
    /// `EX`, `PX`, `EXAT` or `PXAT`, in any case.
    pub(super) fn named(option: &[u8]) -> Option<Self> {
        let (unit, relative) = if is(option, "EX") {
            (Unit::Seconds, true)
        } else if is(option, "PX") {
            (Unit::Milliseconds, true)
        } else if is(option, "EXAT") {
            (Unit::Seconds, false)
        } else if is(option, "PXAT") {
            (Unit::Milliseconds, false)
        } else {
            return None;
        };
        Some(Expiry { unit, relative })
    }

    /// The absolute deadline, Unix ms. Like Redis, a zero or negative
    /// amount, or one that overflows, is `invalid expire time`.
    pub(super) fn deadline(self, amount: &[u8], now_ms: u64, command: &'static str) -> Result<u64, CommandError> {
        let invalid = CommandError::InvalidExpireTime(command);
        let amount = parse_i64(amount).ok_or(CommandError::NotInteger)?;
        if amount <= 0 {
            return Err(invalid);
        }
        let mut ms = match self.unit {
            Unit::Seconds => amount.checked_mul(1000).ok_or(invalid.clone())?,
            Unit::Milliseconds => amount,
        };
        if self.relative {
            let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
            ms = ms.checked_add(now).ok_or(invalid.clone())?;
        }
        u64::try_from(ms).map_err(|_| invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Harness;

    #[tokio::test]
    async fn get_and_set() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["GET", "k"]).await, "$-1\r\n");
        assert_eq!(h.run(&["SET", "k", "v1"]).await, "+OK\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "$2\r\nv1\r\n");
        assert_eq!(h.run(&["SET", "k", ""]).await, "+OK\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "$0\r\n\r\n");
        assert_eq!(h.replicated(), [("k".to_owned(), false), ("k".to_owned(), false)]);
    }

    #[tokio::test]
    async fn values_are_binary_safe() {
        let mut h = Harness::new();
        let value = b"\x00\r\n\xff$-1\r\n";
        assert_eq!(h.run_bytes(&[b"SET", b"\x00k", value]).await, b"+OK\r\n");
        let mut expected = b"$9\r\n".to_vec();
        expected.extend_from_slice(value);
        expected.extend_from_slice(b"\r\n");
        assert_eq!(h.run_bytes(&[b"GET", b"\x00k"]).await, expected);
    }

    #[tokio::test]
    async fn set_nx_and_xx() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SET", "k", "1", "XX"]).await, "$-1\r\n");
        assert_eq!(h.run(&["SET", "k", "1", "nx"]).await, "+OK\r\n");
        assert_eq!(h.run(&["SET", "k", "2", "NX"]).await, "$-1\r\n");
        assert_eq!(h.run(&["SET", "k", "3", "XX"]).await, "+OK\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "$1\r\n3\r\n");
        assert_eq!(h.run(&["SET", "k", "4", "NX", "XX"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.replicated().len(), 2, "refused writes are not disseminated");
    }

    #[tokio::test]
    async fn set_get_returns_the_old_value() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SET", "k", "1", "GET"]).await, "$-1\r\n");
        assert_eq!(h.run(&["SET", "k", "2", "GET"]).await, "$1\r\n1\r\n");
        assert_eq!(h.run(&["SET", "k", "3", "NX", "GET"]).await, "$1\r\n2\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "$1\r\n2\r\n", "NX refused the write");
    }

    #[tokio::test]
    async fn set_with_expiry() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SET", "k", "v", "EX", "100"]).await, "+OK\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":100\r\n");
        assert_eq!(h.run(&["SET", "k", "v", "PX", "5000"]).await, "+OK\r\n");
        let pttl = h.run(&["PTTL", "k"]).await;
        let left: i64 = pttl.trim_start_matches(':').trim_end().parse().unwrap();
        assert!((4_900..=5_000).contains(&left), "{pttl}");
        let at = (h.now_ms() / 1000 + 200).to_string();
        assert_eq!(h.run(&["SET", "k", "v", "EXAT", &at]).await, "+OK\r\n");
        let ttl = h.run(&["TTL", "k"]).await;
        assert!(ttl == ":200\r\n" || ttl == ":199\r\n", "{ttl}");
        let at_ms = (h.now_ms() + 300_000).to_string();
        assert_eq!(h.run(&["SET", "k", "v", "PXAT", &at_ms]).await, "+OK\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":300\r\n");
        assert_eq!(h.run(&["SET", "k", "w", "KEEPTTL"]).await, "+OK\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":300\r\n");
        assert_eq!(h.run(&["SET", "k", "x"]).await, "+OK\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":-1\r\n", "a plain SET clears the TTL");
        assert_eq!(h.run(&["SET", "k", "v", "EX", "1", "EX", "50"]).await, "+OK\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":50\r\n", "a repeated EX: the last wins");
    }

    #[tokio::test]
    async fn set_with_a_past_deadline_deletes() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v"]).await;
        h.replicated();
        assert_eq!(h.run(&["SET", "k", "v", "PXAT", "1"]).await, "+OK\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "$-1\r\n");
        assert_eq!(h.replicated(), [("k".to_owned(), true)]);
    }

    #[tokio::test]
    async fn set_rejects_bad_expiry() {
        let mut h = Harness::new();
        for (args, reply) in [
            (&["SET", "k", "v", "EX", "0"][..], "-ERR invalid expire time in 'set' command\r\n"),
            (&["SET", "k", "v", "PX", "-5"][..], "-ERR invalid expire time in 'set' command\r\n"),
            (&["SET", "k", "v", "EXAT", "0"][..], "-ERR invalid expire time in 'set' command\r\n"),
            (&["SET", "k", "v", "EX", "9223372036854775807"][..], "-ERR invalid expire time in 'set' command\r\n"),
            (&["SET", "k", "v", "PX", "9223372036854775807"][..], "-ERR invalid expire time in 'set' command\r\n"),
            (&["SET", "k", "v", "EX", "ten"][..], "-ERR value is not an integer or out of range\r\n"),
            (&["SET", "k", "v", "EX"][..], "-ERR syntax error\r\n"),
            (&["SET", "k", "v", "EX", "1", "PX", "1"][..], "-ERR syntax error\r\n"),
            (&["SET", "k", "v", "EX", "1", "KEEPTTL"][..], "-ERR syntax error\r\n"),
            (&["SET", "k", "v", "KEEPTTL", "PX", "1"][..], "-ERR syntax error\r\n"),
            (&["SET", "k", "v", "bogus"][..], "-ERR syntax error\r\n"),
        ] {
            assert_eq!(h.run(args).await, reply, "{args:?}");
        }
        assert_eq!(h.run(&["GET", "k"]).await, "$-1\r\n", "nothing was written");
        assert!(h.replicated().is_empty());
    }

    #[tokio::test]
    async fn mget_and_mset() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["MSET", "a", "1", "b", "2"]).await, "+OK\r\n");
        assert_eq!(h.run(&["MGET", "a", "missing", "b", "a"]).await, "*4\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n$1\r\n1\r\n");
        assert_eq!(h.replicated(), [("a".to_owned(), false), ("b".to_owned(), false)]);
        assert_eq!(h.run(&["MSET", "a"]).await, "-ERR wrong number of arguments for 'mset' command\r\n");
    }

    #[tokio::test]
    async fn msetnx_writes_all_or_nothing() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["MSETNX", "a", "1", "b", "2"]).await, ":1\r\n");
        assert_eq!(h.run(&["MSETNX", "c", "3", "a", "9"]).await, ":0\r\n", "a holds a value");
        assert_eq!(h.run(&["MGET", "a", "b", "c"]).await, "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n");
        assert_eq!(h.replicated(), [("a".to_owned(), false), ("b".to_owned(), false)]);
        assert_eq!(h.run(&["MSETNX", "a", "1", "b"]).await, "-ERR wrong number of arguments for 'msetnx' command\r\n");
        // A key named twice: the later value stays, as in Redis.
        assert_eq!(h.run(&["MSETNX", "d", "1", "d", "2"]).await, ":1\r\n");
        assert_eq!(h.run(&["GET", "d"]).await, "$1\r\n2\r\n");
    }
}
