//! Expiry: EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (with NX, XX, GT, LT),
//! TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST.
//!
//! A deadline is absolute wall-clock time (`now + ttl`) and travels with
//! the entry, versioned apart from the value: EXPIRE and PERSIST write only
//! the deadline, so they never bring back a value that a SET on another
//! node replaced meanwhile. A deadline already past deletes the key, as in
//! Redis, by writing a tombstone that replicates like any delete.

use bytes::Bytes;

use super::{CommandError, Ctx, is};
use crate::core::store::{Ttl, Write};
use crate::resp::num::parse_i64;
use crate::resp::parse::Args;
use crate::resp::reply;

/// Seconds or milliseconds, in and out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Seconds (EXPIRE, TTL).
    Seconds,
    /// Milliseconds (PEXPIRE, PTTL).
    Milliseconds,
}

/// One of the four EXPIRE commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct How {
    name: &'static str,
    unit: Unit,
    /// Relative to now, or a Unix time.
    relative: bool,
}

impl How {
    pub(crate) const EXPIRE: How = How::new("expire", Unit::Seconds, true);
    pub(crate) const PEXPIRE: How = How::new("pexpire", Unit::Milliseconds, true);
    pub(crate) const EXPIREAT: How = How::new("expireat", Unit::Seconds, false);
    pub(crate) const PEXPIREAT: How = How::new("pexpireat", Unit::Milliseconds, false);

    const fn new(name: &'static str, unit: Unit, relative: bool) -> Self {
        How { name, unit, relative }
    }
}

/// `EXPIRE key seconds [NX|XX|GT|LT]` and its three siblings: `:1` when
/// the deadline was set (or the key deleted), `:0` when the key is missing
/// or a condition failed.
pub(super) fn expire(args: Args<'_>, ctx: &mut Ctx<'_>, how: How) -> Result<(), CommandError> {
    let key = ctx.key(args.arg(1))?;
    let condition = Condition::parse(args)?;
    let amount = parse_i64(args.arg(2)).ok_or(CommandError::NotInteger)?;
    let invalid = CommandError::InvalidExpireTime(how.name);
    let mut when = match how.unit {
        Unit::Seconds => amount.checked_mul(1000).ok_or(invalid.clone())?,
        Unit::Milliseconds => amount,
    };
    let now_ms = ctx.now_ms();
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    if how.relative {
        when = when.checked_add(now).ok_or(invalid)?;
    }
    let key = Bytes::copy_from_slice(key);
    let (written, changed) = ctx.shared.store.update(&key, now_ms, |live| {
        let Some(live) = live else {
            return (None, false);
        };
        let current = live.expires_at_ms.map(|at| i64::try_from(at).unwrap_or(i64::MAX));
        if !condition.allows(current, when) {
            return (None, false);
        }
        let write = match u64::try_from(when) {
            // The deadline only: a SET racing this on another node keeps
            // its value (with this deadline if this EXPIRE came later).
            Ok(at) if when > now => Write::Deadline { expires_at_ms: Some(at) },
            _ => Write::Delete,
        };
        (Some(write), true)
    })?;
    ctx.replicate(key, written);
    reply::integer(ctx.out, i64::from(changed));
    Ok(())
}

/// `TTL key` / `PTTL key`: `-2` missing, `-1` no deadline, else the time
/// left (seconds rounded to nearest, as Redis does).
pub(super) fn ttl(args: Args<'_>, ctx: &mut Ctx<'_>, unit: Unit) -> Result<(), CommandError> {
    let key = ctx.key(args.arg(1))?;
    let answer = match ctx.shared.store.ttl(key, ctx.now_ms()) {
        Ttl::Missing => -2,
        Ttl::Persistent => -1,
        Ttl::RemainingMs(ms) => {
            let ms = i64::try_from(ms).unwrap_or(i64::MAX);
            match unit {
                Unit::Seconds => ms.saturating_add(500) / 1000,
                Unit::Milliseconds => ms,
            }
        }
    };
    reply::integer(ctx.out, answer);
    Ok(())
}

/// `EXPIRETIME key` / `PEXPIRETIME key`: `-2` missing, `-1` no deadline,
/// else the deadline as a Unix time (seconds rounded to nearest, as Redis
/// does).
pub(super) fn expire_time(args: Args<'_>, ctx: &mut Ctx<'_>, unit: Unit) -> Result<(), CommandError> {
    let key = ctx.key(args.arg(1))?;
    let now_ms = ctx.now_ms();
    let answer = match ctx.shared.store.ttl(key, now_ms) {
        Ttl::Missing => -2,
        Ttl::Persistent => -1,
        Ttl::RemainingMs(ms) => {
            let at = i64::try_from(now_ms.saturating_add(ms)).unwrap_or(i64::MAX);
            match unit {
                Unit::Seconds => at.saturating_add(500) / 1000,
                Unit::Milliseconds => at,
            }
        }
    };
    reply::integer(ctx.out, answer);
    Ok(())
}

/// `PERSIST key`: `:1` if a deadline was removed.
pub(super) fn persist(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = Bytes::copy_from_slice(ctx.key(args.arg(1))?);
    let (written, changed) = ctx.shared.store.update(&key, ctx.now_ms(), |live| match live {
        Some(live) if live.expires_at_ms.is_some() => (Some(Write::Deadline { expires_at_ms: None }), true),
        _ => (None, false),
    })?;
    ctx.replicate(key, written);
    reply::integer(ctx.out, i64::from(changed));
    Ok(())
}

/// EXPIRE's NX / XX / GT / LT.
#[derive(Clone, Copy, Debug, Default)]
struct Condition {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl Condition {
    fn parse(args: Args<'_>) -> Result<Self, CommandError> {
        let mut c = Condition::default();
        for option in args.iter_from(3) {
            if is(option, "NX") {
                c.nx = true;
            } else if is(option, "XX") {
                c.xx = true;
            } else if is(option, "GT") {
                c.gt = true;
            } else if is(option, "LT") {
                c.lt = true;
            } else {
                return Err(CommandError::echoing("ERR Unsupported option ", option, ""));
            }
        }
        if c.nx && (c.xx || c.gt || c.lt) {
            return Err(CommandError::fixed("ERR NX and XX, GT or LT options at the same time are not compatible"));
        }
        if c.gt && c.lt {
            return Err(CommandError::fixed("ERR GT and LT options at the same time are not compatible"));
        }
        Ok(c)
    }

    /// Redis's rules; no deadline counts as an infinite one.
    fn allows(self, current: Option<i64>, when: i64) -> bool {
        !(self.nx && current.is_some()
            || self.xx && current.is_none()
            || self.gt && current.is_none_or(|at| when <= at)
            || self.lt && current.is_some_and(|at| when >= at))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Harness;

    #[tokio::test]
    async fn expiretime_answers_the_deadline_as_a_unix_time() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["EXPIRETIME", "k"]).await, ":-2\r\n");
        h.run(&["SET", "k", "v"]).await;
        assert_eq!(h.run(&["PEXPIRETIME", "k"]).await, ":-1\r\n");
        assert_eq!(h.run(&["PEXPIREAT", "k", "33177117420123"]).await, ":1\r\n");
        assert_eq!(h.run(&["PEXPIRETIME", "k"]).await, ":33177117420123\r\n");
        assert_eq!(h.run(&["EXPIRETIME", "k"]).await, ":33177117420\r\n");
    }

    #[tokio::test]
    async fn expire_sets_a_deadline() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["EXPIRE", "k", "10"]).await, ":0\r\n", "missing key");
        h.run(&["SET", "k", "v"]).await;
        assert_eq!(h.run(&["TTL", "k"]).await, ":-1\r\n");
        assert_eq!(h.run(&["EXPIRE", "k", "10"]).await, ":1\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":10\r\n");
        assert_eq!(h.run(&["PEXPIRE", "k", "20000"]).await, ":1\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":20\r\n");
        let at = (h.now_ms() / 1000 + 30).to_string();
        assert_eq!(h.run(&["EXPIREAT", "k", &at]).await, ":1\r\n");
        let ttl = h.run(&["TTL", "k"]).await;
        assert!(ttl == ":30\r\n" || ttl == ":29\r\n", "{ttl}");
        let at_ms = (h.now_ms() + 40_000).to_string();
        assert_eq!(h.run(&["PEXPIREAT", "k", &at_ms]).await, ":1\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":40\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "$1\r\nv\r\n", "the value is kept");
        assert_eq!(h.replicated().len(), 5);
    }

    #[tokio::test]
    async fn a_past_deadline_deletes_the_key() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v"]).await;
        h.replicated();
        assert_eq!(h.run(&["EXPIRE", "k", "0"]).await, ":1\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "$-1\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":-2\r\n");
        assert_eq!(h.replicated(), [("k".to_owned(), true)]);
        h.run(&["SET", "k", "v"]).await;
        assert_eq!(h.run(&["PEXPIRE", "k", "-100"]).await, ":1\r\n");
        assert_eq!(h.run(&["EXISTS", "k"]).await, ":0\r\n");
        h.run(&["SET", "k", "v"]).await;
        assert_eq!(h.run(&["EXPIREAT", "k", "1"]).await, ":1\r\n");
        assert_eq!(h.run(&["EXISTS", "k"]).await, ":0\r\n");
    }

    #[tokio::test]
    async fn expire_conditions() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v"]).await;
        assert_eq!(h.run(&["EXPIRE", "k", "100", "XX"]).await, ":0\r\n");
        assert_eq!(h.run(&["EXPIRE", "k", "100", "GT"]).await, ":0\r\n", "none is infinite");
        assert_eq!(h.run(&["EXPIRE", "k", "100", "LT"]).await, ":1\r\n");
        assert_eq!(h.run(&["EXPIRE", "k", "50", "NX"]).await, ":0\r\n");
        assert_eq!(h.run(&["EXPIRE", "k", "50", "GT"]).await, ":0\r\n");
        assert_eq!(h.run(&["EXPIRE", "k", "200", "gt"]).await, ":1\r\n");
        assert_eq!(h.run(&["EXPIRE", "k", "300", "LT"]).await, ":0\r\n");
        assert_eq!(h.run(&["EXPIRE", "k", "150", "LT", "XX"]).await, ":1\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":150\r\n");
        assert_eq!(
            h.run(&["EXPIRE", "k", "1", "NX", "XX"]).await,
            "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"
        );
        assert_eq!(
            h.run(&["EXPIRE", "k", "1", "GT", "LT"]).await,
            "-ERR GT and LT options at the same time are not compatible\r\n"
        );
        assert_eq!(h.run(&["EXPIRE", "k", "1", "SOON"]).await, "-ERR Unsupported option SOON\r\n");
        // The option's bytes as they came, as Redis echoes them.
        assert_eq!(h.run_bytes(&[b"EXPIRE", b"k", b"1", b"\xff"]).await, b"-ERR Unsupported option \xff\r\n");
    }

    #[tokio::test]
    async fn expire_rejects_bad_numbers() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "v"]).await;
        assert_eq!(h.run(&["EXPIRE", "k", "1.5"]).await, "-ERR value is not an integer or out of range\r\n");
        assert_eq!(
            h.run(&["EXPIRE", "k", "9223372036854775807"]).await,
            "-ERR invalid expire time in 'expire' command\r\n"
        );
        assert_eq!(
            h.run(&["PEXPIRE", "k", "9223372036854775807"]).await,
            "-ERR invalid expire time in 'pexpire' command\r\n"
        );
        assert_eq!(h.run(&["TTL", "k"]).await, ":-1\r\n");
    }

    #[tokio::test]
    async fn ttl_rounds_like_redis() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["TTL", "missing"]).await, ":-2\r\n");
        assert_eq!(h.run(&["PTTL", "missing"]).await, ":-2\r\n");
        h.run(&["SET", "k", "v"]).await;
        assert_eq!(h.run(&["PTTL", "k"]).await, ":-1\r\n");
        h.run(&["SET", "k", "v", "PX", "1600"]).await;
        assert_eq!(h.run(&["TTL", "k"]).await, ":2\r\n", "1.6 s rounds to 2");
        h.run(&["SET", "k", "v", "PX", "1400"]).await;
        assert_eq!(h.run(&["TTL", "k"]).await, ":1\r\n", "1.4 s rounds to 1");
    }

    #[tokio::test]
    async fn persist_removes_the_deadline() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["PERSIST", "k"]).await, ":0\r\n");
        h.run(&["SET", "k", "v"]).await;
        assert_eq!(h.run(&["PERSIST", "k"]).await, ":0\r\n");
        h.run(&["EXPIRE", "k", "100"]).await;
        h.replicated();
        assert_eq!(h.run(&["PERSIST", "k"]).await, ":1\r\n");
        assert_eq!(h.run(&["TTL", "k"]).await, ":-1\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "$1\r\nv\r\n");
        assert_eq!(h.replicated(), [("k".to_owned(), false)]);
    }
}
