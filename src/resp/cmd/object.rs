//! `OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ|HELP` and `RANDOMKEY`: what
//! Redis reports of a key's representation, answered for rumor's one kind
//! of value as Redis would answer for a string.

use super::{CommandError, Ctx, is, unknown_subcommand};
use crate::resp::num::parse_i64;
use crate::resp::parse::Args;
use crate::resp::reply;

/// Longest string Redis stores as `embstr`.
const EMBSTR_MAX_BYTES: usize = 44;
/// Redis shares the integers below this (`OBJ_SHARED_INTEGERS`) when no
/// LRU/LFU policy is set, and reports their refcount as `INT_MAX`.
const SHARED_INTEGERS: i64 = 10_000;

/// `OBJECT subcommand [key]`.
pub(super) fn object(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let sub = args.arg(1);
    if is(sub, "HELP") {
        let lines: [&[u8]; 10] = [
            b"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            b"ENCODING <key>",
            b"    Return the kind of internal representation used in order to store the value",
            b"    associated with a <key>.",
            b"FREQ <key>",
            b"    Return the access frequency index of the <key>. Needs an LFU maxmemory policy.",
            b"IDLETIME <key>",
            b"    Return the seconds since the <key> was last written (rumor keeps no read times).",
            b"REFCOUNT <key>",
            b"    Return the number of references of the value associated with the specified <key>.",
        ];
        reply::array(ctx.out, lines.len() + 2);
        for line in lines {
            reply::simple(ctx.out, line);
        }
        reply::simple(ctx.out, b"HELP");
        reply::simple(ctx.out, b"    Print this help.");
        return Ok(());
    }
    let known = ["ENCODING", "REFCOUNT", "IDLETIME", "FREQ"].iter().any(|name| is(sub, name));
    if !known {
        return Err(unknown_subcommand(args, "OBJECT"));
    }
    let key = ctx.key(args.arg(2))?;
    let now_ms = ctx.now_ms();
    let Some(entry) = ctx.shared.store.entry(key).filter(|e| e.live_value(now_ms).is_some()) else {
        reply::null(ctx.out);
        return Ok(());
    };
    let value = entry.value.as_deref().unwrap_or_default();
    let integer = (value.len() <= 20).then(|| parse_i64(value)).flatten();
    if is(sub, "ENCODING") {
        let encoding: &[u8] = match integer {
            Some(_) => b"int",
            None if value.len() <= EMBSTR_MAX_BYTES => b"embstr",
            None => b"raw",
        };
        reply::bulk(ctx.out, encoding);
    } else if is(sub, "REFCOUNT") {
        let shared = integer.is_some_and(|n| (0..SHARED_INTEGERS).contains(&n));
        reply::integer(ctx.out, if shared { i64::from(i32::MAX) } else { 1 });
    } else if is(sub, "IDLETIME") {
        let written_ms = entry.version.timestamp.physical_ms().max(entry.deadline_set_at.physical_ms());
        reply::integer(ctx.out, i64::try_from(now_ms.saturating_sub(written_ms) / 1000).unwrap_or(i64::MAX));
    } else {
        return Err(CommandError::fixed(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when \
             switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ));
    }
    Ok(())
}

/// `RANDOMKEY`: a live key, or nil when there is none.
pub(super) fn randomkey(ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let now_ms = ctx.now_ms();
    // Drawn from the session and the clock, not an unseeded RNG: the
    // simulator runs this code and must replay it.
    let pick = splitmix64(ctx.session.id ^ now_ms.rotate_left(21) ^ ctx.session.commands.rotate_left(42));
    match ctx.shared.store.random_key(pick, now_ms) {
        Some(key) => ctx.out.bulk_shared(key),
        None => reply::null(ctx.out),
    }
    Ok(())
}

/// SplitMix64's finaliser: spreads nearby inputs over all 64 bits.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Harness;

    #[tokio::test]
    async fn object_reports_as_redis_does_for_strings() {
        let mut h = Harness::new();
        h.run(&["SET", "int", "12345"]).await;
        h.run(&["SET", "small", "7"]).await;
        h.run(&["SET", "emb", "hello"]).await;
        h.run(&["SET", "raw", &"x".repeat(50)]).await;
        h.run(&["SET", "big", "99999999999999999999"]).await;
        h.run(&["SET", "negzero", "-0"]).await;
        for (key, encoding) in [
            ("int", "int"),
            ("small", "int"),
            ("emb", "embstr"),
            ("raw", "raw"),
            ("big", "embstr"),
            ("negzero", "embstr"),
        ] {
            let expected = format!("${}\r\n{encoding}\r\n", encoding.len());
            assert_eq!(h.run(&["OBJECT", "ENCODING", key]).await, expected, "{key}");
        }
        assert_eq!(h.run(&["OBJECT", "ENCODING", "nosuch"]).await, "$-1\r\n");
        assert_eq!(h.run(&["OBJECT", "REFCOUNT", "int"]).await, ":1\r\n");
        assert_eq!(h.run(&["OBJECT", "REFCOUNT", "small"]).await, ":2147483647\r\n");
        assert_eq!(h.run(&["OBJECT", "IDLETIME", "emb"]).await, ":0\r\n");
        assert!(h.run(&["OBJECT", "FREQ", "emb"]).await.starts_with("-ERR An LFU maxmemory policy is not selected"));
        assert_eq!(h.run(&["OBJECT", "NOSUCH", "a"]).await, "-ERR unknown subcommand 'NOSUCH'. Try OBJECT HELP.\r\n");
        assert_eq!(h.run(&["OBJECT"]).await, "-ERR wrong number of arguments for 'object' command\r\n");
        assert!(h.run(&["OBJECT", "HELP"]).await.starts_with("*12\r\n+OBJECT <subcommand>"));
    }

    #[tokio::test]
    async fn randomkey_answers_a_live_key_or_nil() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["RANDOMKEY"]).await, "$-1\r\n");
        for key in ["a", "b", "c"] {
            h.run(&["SET", key, "1"]).await;
        }
        h.run(&["DEL", "c"]).await;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let reply = h.run(&["RANDOMKEY"]).await;
            assert!(reply == "$1\r\na\r\n" || reply == "$1\r\nb\r\n", "{reply:?}");
            seen.insert(reply);
        }
        assert_eq!(seen.len(), 2, "both live keys come up");
    }
}
