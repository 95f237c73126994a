//! The bit commands on string values: SETBIT, GETBIT, BITCOUNT, BITPOS,
//! BITOP. Bit 0 is
//! the most significant bit of the first byte, as in Redis. SETBIT is a
//! read-modify-write of the value part (the deadline is kept), atomic on
//! this node and last-write-wins across nodes, like APPEND.

use bytes::{Bytes, BytesMut};

use super::string_update::range;
use super::{CommandError, Ctx, is};
use crate::core::store::Write;
use crate::resp::num::parse_i64;
use crate::resp::parse::Args;
use crate::resp::reply;

/// A bit offset, within a string of `proto-max-bulk-len` bytes
/// (`max_bulk_bytes`) as Redis bounds it, for GETBIT as for SETBIT: the
/// same offset is refused by both, with the same error.
fn bit_offset(arg: &[u8], max_bulk_bytes: usize) -> Result<u64, CommandError> {
    parse_i64(arg)
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| n / 8 < max_bulk_bytes as u64)
        .ok_or(CommandError::fixed("ERR bit offset is not an integer or out of range"))
}

fn bit_of(value: &[u8], offset: u64) -> bool {
    let byte = usize::try_from(offset / 8).unwrap_or(usize::MAX);
    value.get(byte).is_some_and(|b| b & (0x80 >> (offset % 8)) != 0)
}

/// `SETBIT key offset 0|1`: the bit's old value; the value grows with zero
/// bytes as needed.
pub(super) fn setbit(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = Bytes::copy_from_slice(ctx.key(args.arg(1))?);
    let offset = bit_offset(args.arg(2), ctx.shared.limits.max_bulk_bytes())?;
    let on = match args.arg(3) {
        b"0" => false,
        b"1" => true,
        _ => return Err(CommandError::fixed("ERR bit is not an integer or out of range")),
    };
    // Below max_bulk_bytes, a usize.
    let byte = (offset / 8) as usize;
    let (written, old) = ctx.shared.store.update(&key, ctx.now_ms(), |live| {
        let held: &[u8] = live.as_ref().map_or(&[], |l| l.value.as_ref());
        let old = bit_of(held, offset);
        if old == on && byte < held.len() {
            return (None, old);
        }
        let mut value = BytesMut::zeroed(held.len().max(byte + 1));
        value[..held.len()].copy_from_slice(held);
        let mask = 0x80 >> (offset % 8);
        if on {
            value[byte] |= mask;
        } else {
            value[byte] &= !mask;
        }
        (Some(Write::Value { value: value.freeze() }), old)
    })?;
    ctx.replicate(key, written);
    reply::integer(ctx.out, i64::from(old));
    Ok(())
}

/// `GETBIT key offset`: 0 past the end or for a missing key.
pub(super) fn getbit(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = ctx.key(args.arg(1))?;
    let offset = bit_offset(args.arg(2), ctx.shared.limits.max_bulk_bytes())?;
    let value = ctx.shared.store.get(key, ctx.now_ms()).unwrap_or_default();
    reply::integer(ctx.out, i64::from(bit_of(&value, offset)));
    Ok(())
}

/// `BITCOUNT key [start end [BYTE|BIT]]`: the set bits, in the range of
/// bytes (or bits) from `start` to `end` inclusive, negative positions
/// counting from the end, as Redis clamps them.
pub(super) fn bitcount(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = ctx.key(args.arg(1))?;
    let asked = match args.len() {
        2 => None,
        4 | 5 => {
            let start = parse_i64(args.arg(2)).ok_or(CommandError::NotInteger)?;
            let end = parse_i64(args.arg(3)).ok_or(CommandError::NotInteger)?;
            let in_bits = match args.get(4) {
                None => false,
                Some(unit) if is(unit, "BYTE") => false,
                Some(unit) if is(unit, "BIT") => true,
                Some(_) => return Err(CommandError::Syntax),
            };
            Some((start, end, in_bits))
        }
        _ => return Err(CommandError::Syntax),
    };
    let value = ctx.shared.store.get(key, ctx.now_ms()).unwrap_or_default();
    let count = match asked {
        None => value.iter().map(|b| b.count_ones() as u64).sum(),
        Some((start, end, in_bits)) => {
            let len = if in_bits { value.len() as u64 * 8 } else { value.len() as u64 };
            match range(len, start, end) {
                None => 0,
                Some((from, to)) if in_bits => (from..=to).filter(|bit| bit_of(&value, *bit)).count() as u64,
                Some((from, to)) => value[from as usize..=to as usize].iter().map(|b| b.count_ones() as u64).sum(),
            }
        }
    };
    reply::integer(ctx.out, i64::try_from(count).unwrap_or(i64::MAX));
    Ok(())
}

/// `BITPOS key 0|1 [start [end [BYTE|BIT]]]`: the first bit set (or
/// clear) in the range, or -1. Looking for a clear bit without an `end`,
/// the bits past the value count as clear, as Redis answers.
pub(super) fn bitpos(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = ctx.key(args.arg(1))?;
    let wanted = match parse_i64(args.arg(2)) {
        None => return Err(CommandError::NotInteger),
        Some(0) => false,
        Some(1) => true,
        Some(_) => return Err(CommandError::fixed("ERR The bit argument must be 1 or 0.")),
    };
    if args.len() > 6 {
        return Err(CommandError::Syntax);
    }
    let number = |i: usize| args.get(i).map(|a| parse_i64(a).ok_or(CommandError::NotInteger)).transpose();
    let (start, end) = (number(3)?, number(4)?);
    let in_bits = match args.get(5) {
        None => false,
        Some(unit) if is(unit, "BYTE") => false,
        Some(unit) if is(unit, "BIT") => true,
        Some(_) => return Err(CommandError::Syntax),
    };
    let Some(value) = ctx.shared.store.get(key, ctx.now_ms()) else {
        reply::integer(ctx.out, if wanted { -1 } else { 0 });
        return Ok(());
    };
    let total = if in_bits { value.len() as u64 * 8 } else { value.len() as u64 };
    let last = i64::try_from(total).unwrap_or(i64::MAX) - 1;
    let found = range(total, start.unwrap_or(0), end.unwrap_or(last)).map(|(from, to)| {
        let bits = if in_bits { from..=to } else { from * 8..=to * 8 + 7 };
        let past = *bits.end() + 1;
        (first_bit(&value, bits, wanted), past)
    });
    let answer = match found {
        Some((Some(position), _)) => i64::try_from(position).unwrap_or(i64::MAX),
        Some((None, past)) if !wanted && end.is_none() => i64::try_from(past).unwrap_or(i64::MAX),
        _ => -1,
    };
    reply::integer(ctx.out, answer);
    Ok(())
}

/// The first bit equal to `wanted` among `bits` of `value`, skipping whole
/// bytes that cannot hold one.
fn first_bit(value: &[u8], bits: std::ops::RangeInclusive<u64>, wanted: bool) -> Option<u64> {
    let skip = if wanted { 0x00 } else { 0xff };
    let mut bit = *bits.start();
    while bit <= *bits.end() {
        let byte = value.get(usize::try_from(bit / 8).ok()?).copied().unwrap_or(0);
        if bit.is_multiple_of(8) && byte == skip && bit + 7 <= *bits.end() {
            bit += 8;
            continue;
        }
        if (byte & (0x80 >> (bit % 8)) != 0) == wanted {
            return Some(bit);
        }
        bit += 1;
    }
    None
}

/// `BITOP AND|OR|XOR|NOT destkey key…`: `destkey` set to the operation
/// over the keys' values (missing keys and shorter values read as zero
/// bytes; NOT takes one key), read and written as one update on this node;
/// the result's length. An empty result deletes `destkey`, as in Redis.
pub(super) fn bitop(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let op = args.arg(1);
    let op = if is(op, "AND") {
        Op::And
    } else if is(op, "OR") {
        Op::Or
    } else if is(op, "XOR") {
        Op::Xor
    } else if is(op, "NOT") {
        Op::Not
    } else {
        return Err(CommandError::Syntax);
    };
    if op == Op::Not && args.len() != 4 {
        return Err(CommandError::fixed("ERR BITOP NOT must be called with a single source key."));
    }
    for key in args.iter_from(2) {
        ctx.key(key)?;
    }
    // The destination first, then the sources.
    let keys: Vec<Bytes> = args.iter_from(2).map(Bytes::copy_from_slice).collect();
    let (written, len) = ctx.shared.store.update_many(&keys, ctx.now_ms(), |live| {
        let sources: Vec<&[u8]> = live[1..].iter().map(|l| l.as_ref().map_or(&[][..], |l| l.value.as_ref())).collect();
        let len = sources.iter().map(|s| s.len()).max().unwrap_or(0);
        let byte = |source: &[u8], i: usize| source.get(i).copied().unwrap_or(0);
        let result: Vec<u8> = (0..len)
            .map(|i| {
                let mut bytes = sources.iter().map(|s| byte(s, i));
                let first = bytes.next().unwrap_or(0);
                match op {
                    Op::And => bytes.fold(first, |a, b| a & b),
                    Op::Or => bytes.fold(first, |a, b| a | b),
                    Op::Xor => bytes.fold(first, |a, b| a ^ b),
                    Op::Not => !first,
                }
            })
            .collect();
        let write = if result.is_empty() {
            live[0].is_some().then_some(Write::Delete)
        } else {
            Some(Write::Put { value: Bytes::from(result), expires_at_ms: None })
        };
        let mut writes = vec![None; live.len()];
        writes[0] = write;
        (writes, len)
    })?;
    for (key, entry) in written {
        ctx.replicate(key, Some(entry));
    }
    reply::count(ctx.out, len);
    Ok(())
}

/// BITOP's operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    And,
    Or,
    Xor,
    Not,
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Harness;

    #[tokio::test]
    async fn setbit_and_getbit_as_redis() {
        let mut h = Harness::new();
        assert_eq!(h.run(&["SETBIT", "k", "7", "1"]).await, ":0\r\n");
        assert_eq!(h.run(&["SETBIT", "k", "7", "1"]).await, ":1\r\n");
        assert_eq!(h.run(&["GET", "k"]).await, "$1\r\n\x01\r\n");
        assert_eq!(h.run(&["GETBIT", "k", "7"]).await, ":1\r\n");
        assert_eq!(h.run(&["GETBIT", "k", "0"]).await, ":0\r\n");
        assert_eq!(h.run(&["GETBIT", "k", "100"]).await, ":0\r\n");
        assert_eq!(h.run(&["GETBIT", "missing", "0"]).await, ":0\r\n");
        assert_eq!(h.run(&["SETBIT", "k", "17", "1"]).await, ":0\r\n");
        assert_eq!(h.run(&["STRLEN", "k"]).await, ":3\r\n", "grown with zero bytes");
        assert_eq!(h.run(&["SETBIT", "k", "7", "0"]).await, ":1\r\n");
        assert_eq!(h.run(&["SETBIT", "k", "-1", "1"]).await, "-ERR bit offset is not an integer or out of range\r\n");
        assert_eq!(
            h.run(&["SETBIT", "k", "4294967296", "1"]).await,
            "-ERR bit offset is not an integer or out of range\r\n"
        );
        assert_eq!(h.run(&["SETBIT", "k", "1", "2"]).await, "-ERR bit is not an integer or out of range\r\n");
        // Redis bounds offsets by proto-max-bulk-len (max_bulk_bytes, 1 MiB
        // here), for reads as for writes.
        let past = (1u64 << 23).to_string();
        for command in ["SETBIT", "GETBIT"] {
            let mut args = vec![command, "k", &past];
            args.extend((command == "SETBIT").then_some("1"));
            assert_eq!(h.run(&args).await, "-ERR bit offset is not an integer or out of range\r\n", "{command}");
        }
        assert_eq!(h.run(&["GETBIT", "k", &((1u64 << 23) - 1).to_string()]).await, ":0\r\n");
        // Setting a bit already set writes nothing.
        let writes = h.replicated().len();
        h.run(&["SETBIT", "k", "17", "1"]).await;
        assert_eq!(h.replicated().len(), 0, "after {writes} writes, a no-op SETBIT wrote nothing");
    }

    #[tokio::test]
    async fn bitop_combines_values_into_the_destination() {
        let mut h = Harness::new();
        h.run(&["SET", "a", "foobar"]).await;
        h.run(&["SET", "b", "abcdef"]).await;
        assert_eq!(h.run(&["BITOP", "AND", "dest", "a", "b"]).await, ":6\r\n");
        assert_eq!(h.run(&["GET", "dest"]).await, "$6\r\n`bc`ab\r\n");
        assert_eq!(h.run(&["BITOP", "OR", "dest", "a", "missing"]).await, ":6\r\n");
        assert_eq!(h.run(&["GET", "dest"]).await, "$6\r\nfoobar\r\n");
        h.run(&["SET", "one", "\x0f"]).await;
        assert_eq!(h.run(&["BITOP", "NOT", "dest", "one"]).await, ":1\r\n");
        assert_eq!(h.run_bytes(&[b"GET", b"dest"]).await, b"$1\r\n\xf0\r\n");
        assert_eq!(h.run(&["BITOP", "XOR", "dest", "a", "a"]).await, ":6\r\n");
        assert_eq!(h.run(&["BITOP", "AND", "dest", "missing"]).await, ":0\r\n");
        assert_eq!(h.run(&["EXISTS", "dest"]).await, ":0\r\n", "an empty result deletes the destination");
        assert_eq!(
            h.run(&["BITOP", "NOT", "dest", "a", "b"]).await,
            "-ERR BITOP NOT must be called with a single source key.\r\n"
        );
        assert_eq!(h.run(&["BITOP", "NAND", "dest", "a"]).await, "-ERR syntax error\r\n");
    }

    #[tokio::test]
    async fn bitpos_as_redis() {
        let mut h = Harness::new();
        h.run_bytes(&[b"SET", b"k", b"\xff\xf0"]).await;
        h.run_bytes(&[b"SET", b"ones", b"\xff\xff"]).await;
        h.run(&["SET", "empty", ""]).await;
        for (args, answer) in [
            (&["BITPOS", "k", "0"][..], ":12\r\n"),
            (&["BITPOS", "k", "1", "2"], ":-1\r\n"),
            (&["BITPOS", "k", "1", "2", "-1", "BYTE"], ":-1\r\n"),
            (&["BITPOS", "k", "1", "7", "15", "BIT"], ":7\r\n"),
            (&["BITPOS", "k", "1", "5", "1"], ":-1\r\n"),
            (&["BITPOS", "missing", "0"], ":0\r\n"),
            (&["BITPOS", "missing", "1"], ":-1\r\n"),
            (&["BITPOS", "ones", "0"], ":16\r\n"),
            (&["BITPOS", "ones", "0", "1"], ":16\r\n"),
            (&["BITPOS", "ones", "0", "0", "-1"], ":-1\r\n"),
            (&["BITPOS", "ones", "0", "0", "15", "BIT"], ":-1\r\n"),
            (&["BITPOS", "ones", "1", "-1"], ":8\r\n"),
            (&["BITPOS", "empty", "1"], ":-1\r\n"),
            (&["BITPOS", "empty", "0"], ":-1\r\n"),
            (&["BITPOS", "k", "2"], "-ERR The bit argument must be 1 or 0.\r\n"),
            (&["BITPOS", "k", "0", "0", "1", "WORD"], "-ERR syntax error\r\n"),
            (&["BITPOS", "k", "1", "a"], "-ERR value is not an integer or out of range\r\n"),
            (&["BITPOS", "k", "x"], "-ERR value is not an integer or out of range\r\n"),
            (&["BITPOS", "k", "01"], "-ERR value is not an integer or out of range\r\n"),
        ] {
            assert_eq!(h.run(args).await, answer, "{args:?}");
        }
    }

    #[tokio::test]
    async fn bitcount_in_bytes_and_bits() {
        let mut h = Harness::new();
        h.run(&["SET", "k", "foobar"]).await;
        assert_eq!(h.run(&["BITCOUNT", "k"]).await, ":26\r\n");
        assert_eq!(h.run(&["BITCOUNT", "k", "0", "0"]).await, ":4\r\n");
        assert_eq!(h.run(&["BITCOUNT", "k", "1", "1"]).await, ":6\r\n");
        assert_eq!(h.run(&["BITCOUNT", "k", "1", "1", "BYTE"]).await, ":6\r\n");
        assert_eq!(h.run(&["BITCOUNT", "k", "5", "30", "BIT"]).await, ":17\r\n");
        assert_eq!(h.run(&["BITCOUNT", "k", "-2", "-1"]).await, ":7\r\n");
        assert_eq!(h.run(&["BITCOUNT", "k", "-1", "-2"]).await, ":0\r\n");
        assert_eq!(h.run(&["BITCOUNT", "missing"]).await, ":0\r\n");
        assert_eq!(h.run(&["BITCOUNT", "k", "0"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["BITCOUNT", "k", "0", "1", "WORD"]).await, "-ERR syntax error\r\n");
        assert_eq!(h.run(&["BITCOUNT", "k", "a", "1"]).await, "-ERR value is not an integer or out of range\r\n");
    }
}
