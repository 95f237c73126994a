//! DUMP and RESTORE: a key's value in Redis's serialization — an RDB
//! object (a type byte and the value), then the RDB version (two bytes,
//! little-endian) and a CRC-64 of all before it (Jones, little-endian) —
//! so that keys move between rumor and Redis with the tools built on them.
//!
//! DUMP writes a string as Redis does without compression: as an integer
//! encoding when it is one, else its length and bytes; version 9 (Redis
//! 5 and 6), which every Redis since restores. RESTORE reads what any
//! Redis up to 7.4 writes for a string, LZF-compressed ones included; a
//! payload of another type is refused, as rumor holds strings only.

use std::borrow::Cow;

use bytes::Bytes;
use crc::{CRC_64_REDIS, Crc};

use super::{CommandError, Ctx, is};
use crate::core::store::Write;
use crate::resp::num::parse_i64;
use crate::resp::parse::Args;
use crate::resp::reply;

/// The RDB version DUMP writes.
const WRITTEN_VERSION: u16 = 9;
/// The newest RDB version RESTORE reads (Redis 7.4's): a string is encoded
/// the same in every version up to it.
const NEWEST_VERSION: u16 = 12;
/// Version and checksum after the object.
const FOOTER_BYTES: usize = 10;

const RDB_TYPE_STRING: u8 = 0;
/// Length prefixes: the top two bits of the first byte.
const LEN_6BIT: u8 = 0;
const LEN_14BIT: u8 = 1;
const LEN_32BIT: u8 = 0x80;
const LEN_64BIT: u8 = 0x81;
const ENCODED: u8 = 3;
/// Special encodings (the low six bits after [`ENCODED`]).
const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

static CRC64: Crc<u64> = Crc::<u64>::new(&CRC_64_REDIS);

const BUSY_KEY: CommandError = CommandError::fixed("BUSYKEY Target key name already exists.");
const WRONG_PAYLOAD: CommandError = CommandError::fixed("ERR DUMP payload version or checksum are wrong");
const BAD_FORMAT: CommandError = CommandError::fixed("ERR Bad data format");
const TOO_LONG: CommandError = CommandError::fixed("ERR string exceeds maximum allowed size (proto-max-bulk-len)");

/// `DUMP key`: the serialized value, or nil.
pub(super) fn dump(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = ctx.key(args.arg(1))?;
    match ctx.shared.store.get(key, ctx.now_ms()) {
        Some(value) => reply::bulk(ctx.out, &serialize(&value)),
        None => reply::null(ctx.out),
    }
    Ok(())
}

/// `RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]`,
/// its checks in Redis's order. IDLETIME and FREQ are checked and then
/// ignored: rumor evicts nothing.
pub(super) fn restore(args: Args<'_>, ctx: &mut Ctx<'_>) -> Result<(), CommandError> {
    let key = Bytes::copy_from_slice(ctx.key(args.arg(1))?);
    let (mut replace, mut absolute, mut idle, mut freq) = (false, false, false, false);
    let mut index = 4;
    while let Some(option) = args.get(index) {
        let value = args.get(index + 1);
        if is(option, "REPLACE") {
            replace = true;
        } else if is(option, "ABSTTL") {
            absolute = true;
        } else if is(option, "IDLETIME")
            && !freq
            && let Some(value) = value
        {
            if parse_i64(value).ok_or(CommandError::NotInteger)? < 0 {
                return Err(CommandError::fixed("ERR Invalid IDLETIME value, must be >= 0"));
            }
            (idle, index) = (true, index + 1);
        } else if is(option, "FREQ")
            && !idle
            && let Some(value) = value
        {
            if !(0..=255).contains(&parse_i64(value).ok_or(CommandError::NotInteger)?) {
                return Err(CommandError::fixed("ERR Invalid FREQ value, must be >= 0 and <= 255"));
            }
            (freq, index) = (true, index + 1);
        } else {
            return Err(CommandError::Syntax);
        }
        index += 1;
    }
    let now_ms = ctx.now_ms();
    // Checked here for Redis's order of errors, and again as the value is
    // written: a SET between the two is not overwritten.
    if !replace && ctx.shared.store.get(&key, now_ms).is_some() {
        return Err(BUSY_KEY);
    }
    let ttl = parse_i64(args.arg(2)).ok_or(CommandError::NotInteger)?;
    if ttl < 0 {
        return Err(CommandError::fixed("ERR Invalid TTL value, must be >= 0"));
    }
    let value = deserialize(args.arg(3), ctx.shared.limits.max_bulk_bytes())?;
    let deadline = match ttl {
        0 => None,
        at if absolute => Some(at.unsigned_abs()),
        // Past the end of Redis's signed milliseconds: Redis's sum wraps
        // negative and the key is taken as expired at once; so here.
        after => Some(i64::try_from(now_ms).ok().and_then(|now| now.checked_add(after)).map_or(0, i64::unsigned_abs)),
    };
    let (written, busy) = ctx.shared.store.update(&key, now_ms, |live| {
        if !replace && live.is_some() {
            return (None, true);
        }
        let write = match deadline {
            // Already past: the key is gone (REPLACE deleted it).
            Some(at) if at <= now_ms => live.is_some().then_some(Write::Delete),
            expires_at_ms => Some(Write::Put { value, expires_at_ms }),
        };
        (write, false)
    })?;
    if busy {
        return Err(BUSY_KEY);
    }
    ctx.replicate(key, written);
    reply::ok(ctx.out);
    Ok(())
}

/// A string value as DUMP writes it.
fn serialize(value: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(value.len() + 1 + 9 + FOOTER_BYTES);
    payload.push(RDB_TYPE_STRING);
    match as_small_integer(value) {
        Some(n) if i8::try_from(n).is_ok() => payload.extend([ENCODED << 6 | ENC_INT8, n as i8 as u8]),
        Some(n) if i16::try_from(n).is_ok() => {
            payload.push(ENCODED << 6 | ENC_INT16);
            payload.extend((n as i16).to_le_bytes());
        }
        Some(n) => {
            payload.push(ENCODED << 6 | ENC_INT32);
            payload.extend(n.to_le_bytes());
        }
        None => {
            write_len(&mut payload, value.len() as u64);
            payload.extend_from_slice(value);
        }
    }
    payload.extend(WRITTEN_VERSION.to_le_bytes());
    let crc = CRC64.checksum(&payload);
    payload.extend(crc.to_le_bytes());
    payload
}

/// The value as a 32-bit integer, if it is one written the one way Redis
/// reads and writes integers (no sign but `-`, no leading zero): Redis
/// encodes those as integers.
fn as_small_integer(value: &[u8]) -> Option<i32> {
    (value.len() <= 11).then(|| parse_i64(value)).flatten().and_then(|n| i32::try_from(n).ok())
}

fn write_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(LEN_6BIT << 6 | len as u8);
    } else if len < 1 << 14 {
        out.extend([LEN_14BIT << 6 | (len >> 8) as u8, len as u8]);
    } else if let Ok(len) = u32::try_from(len) {
        out.push(LEN_32BIT);
        out.extend(len.to_be_bytes());
    } else {
        out.push(LEN_64BIT);
        out.extend(len.to_be_bytes());
    }
}

/// The string a RESTORE payload holds: its footer checked first, then the
/// object, which must be a string that ends where the footer starts and
/// is at most `max_len` bytes.
fn deserialize(payload: &[u8], max_len: usize) -> Result<Bytes, CommandError> {
    let Some(body_len) = payload.len().checked_sub(FOOTER_BYTES) else { return Err(WRONG_PAYLOAD) };
    let (body, footer) = payload.split_at(body_len);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(footer[2..].try_into().unwrap_or_default());
    if version > NEWEST_VERSION || CRC64.checksum(&payload[..body_len + 2]) != crc {
        return Err(WRONG_PAYLOAD);
    }
    let mut reader = Reader { rest: body };
    let kind = reader.byte().ok_or(BAD_FORMAT)?;
    if kind != RDB_TYPE_STRING {
        return Err(CommandError::Message(Cow::Owned(format!(
            "ERR Bad data format: the payload holds a {}, and rumor holds strings only",
            type_name(kind)
        ))));
    }
    let value = reader.string(max_len)?;
    if !reader.rest.is_empty() {
        return Err(BAD_FORMAT);
    }
    Ok(value)
}

/// The most bytes one byte of an LZF stream expands to: a back-reference
/// of 3 bytes copies at most 264.
pub(super) const LZF_MAX_EXPANSION: usize = 88;

/// Decompresses an LZF stream (liblzf's format, which Redis writes) into
/// exactly `len` bytes, or `None`. The output grows as it is produced,
/// never past `len`: a stream that fails early costs what it produced.
fn lzf_decompress(input: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    let mut rest = input;
    while let Some((&ctrl, after)) = rest.split_first() {
        rest = after;
        let ctrl = usize::from(ctrl);
        if ctrl < 1 << 5 {
            // A literal run of ctrl + 1 bytes.
            let (run, after) = rest.split_at_checked(ctrl + 1)?;
            rest = after;
            grow(&mut out, run.len(), len)?;
            out.extend_from_slice(run);
        } else {
            // A back-reference: length in the top 3 bits (7: one more byte
            // adds to it), distance in the low 5 and the next byte.
            let mut run = ctrl >> 5;
            if run == 7 {
                let (&more, after) = rest.split_first()?;
                rest = after;
                run += usize::from(more);
            }
            let (&low, after) = rest.split_first()?;
            rest = after;
            let back = ((ctrl & 0x1f) << 8 | usize::from(low)) + 1;
            let run = run + 2;
            let start = out.len().checked_sub(back)?;
            grow(&mut out, run, len)?;
            if back >= run {
                out.extend_from_within(start..start + run);
            } else {
                // Byte by byte: the source overlaps what is being written.
                for i in start..start + run {
                    out.push(out[i]);
                }
            }
        }
    }
    (out.len() == len).then_some(out)
}

/// Makes room for `extra` more bytes in `out`, doubling but never past
/// `len`; `None` if `extra` would pass it.
fn grow(out: &mut Vec<u8>, extra: usize, len: usize) -> Option<()> {
    let wanted = out.len().checked_add(extra).filter(|&n| n <= len)?;
    if wanted > out.capacity() {
        let target = wanted.max(out.capacity().saturating_mul(2)).min(len);
        out.reserve_exact(target - out.len());
    }
    Some(())
}

/// RDB object types other than strings, by family.
fn type_name(kind: u8) -> &'static str {
    match kind {
        1 | 10 | 14 | 18 => "list",
        2 | 11 | 20 => "set",
        3 | 5 | 12 | 17 => "sorted set",
        4 | 9 | 13 | 16 => "hash",
        6 | 7 => "module value",
        15 | 19 | 21 => "stream",
        _ => "type rumor does not know",
    }
}

/// Reads an RDB object front to back; every read is bounded by what is
/// left.
struct Reader<'a> {
    rest: &'a [u8],
}

/// A length prefix: a plain length, or the special encoding that follows.
enum Len {
    Plain(u64),
    Encoded(u8),
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(taken)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn len(&mut self) -> Result<Len, CommandError> {
        let first = self.byte().ok_or(BAD_FORMAT)?;
        let number = |bytes: Option<&[u8]>| -> Result<u64, CommandError> {
            bytes.map(|b| b.iter().fold(0u64, |n, &byte| n << 8 | u64::from(byte))).ok_or(BAD_FORMAT)
        };
        Ok(match first >> 6 {
            LEN_6BIT => Len::Plain(u64::from(first & 0x3f)),
            LEN_14BIT => Len::Plain(u64::from(first & 0x3f) << 8 | u64::from(self.byte().ok_or(BAD_FORMAT)?)),
            ENCODED => Len::Encoded(first & 0x3f),
            _ if first == LEN_32BIT => Len::Plain(number(self.take(4))?),
            _ if first == LEN_64BIT => Len::Plain(number(self.take(8))?),
            _ => return Err(BAD_FORMAT),
        })
    }

    fn plain_len(&mut self) -> Result<u64, CommandError> {
        match self.len()? {
            Len::Plain(len) => Ok(len),
            Len::Encoded(_) => Err(BAD_FORMAT),
        }
    }

    /// A string, in any of its encodings.
    fn string(&mut self, max_len: usize) -> Result<Bytes, CommandError> {
        let integer = |bytes: Option<&[u8]>| -> Result<Bytes, CommandError> {
            let bytes = bytes.ok_or(BAD_FORMAT)?;
            let n = match *bytes {
                [a] => i64::from(a as i8),
                [a, b] => i64::from(i16::from_le_bytes([a, b])),
                [a, b, c, d] => i64::from(i32::from_le_bytes([a, b, c, d])),
                _ => return Err(BAD_FORMAT),
            };
            Ok(Bytes::from(n.to_string()))
        };
        match self.len()? {
            Len::Plain(len) => {
                let len = usize::try_from(len).map_err(|_| BAD_FORMAT)?;
                Ok(Bytes::copy_from_slice(self.take(len).ok_or(BAD_FORMAT)?))
            }
            Len::Encoded(ENC_INT8) => integer(self.take(1)),
            Len::Encoded(ENC_INT16) => integer(self.take(2)),
            Len::Encoded(ENC_INT32) => integer(self.take(4)),
            Len::Encoded(ENC_LZF) => {
                let compressed_len = usize::try_from(self.plain_len()?).map_err(|_| BAD_FORMAT)?;
                let len = usize::try_from(self.plain_len()?).map_err(|_| BAD_FORMAT)?;
                let compressed = self.take(compressed_len).ok_or(BAD_FORMAT)?;
                if len > max_len {
                    return Err(TOO_LONG);
                }
                // No LZF stream expands past this: a length beyond it is a
                // lie, and allocating for it would let a 20-byte payload
                // cost 64 MiB.
                if len > compressed.len().saturating_mul(LZF_MAX_EXPANSION) {
                    return Err(BAD_FORMAT);
                }
                lzf_decompress(compressed, len).map(Bytes::from).ok_or(BAD_FORMAT)
            }
            Len::Encoded(_) => Err(BAD_FORMAT),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// `body` with a footer at `version` and its checksum.
    fn sealed(body: &[u8], version: u16) -> Vec<u8> {
        let mut payload = body.to_vec();
        payload.extend(version.to_le_bytes());
        let crc = CRC64.checksum(&payload);
        payload.extend(crc.to_le_bytes());
        payload
    }

    proptest! {
        #[test]
        fn every_value_comes_back_from_its_dump(value in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let back = deserialize(&serialize(&value), 1 << 20).ok();
            prop_assert_eq!(back.as_deref(), Some(&value[..]));
        }

        /// Payloads that pass the checksum and still lie: read or refused,
        /// never a panic, never more than the bound allocated.
        #[test]
        fn sealed_garbage_is_read_or_refused(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            kind in prop_oneof![Just(0u8), any::<u8>()],
            version in 0u16..14,
        ) {
            let mut body = body;
            body.insert(0, kind);
            if let Ok(value) = deserialize(&sealed(&body, version), 4096) {
                prop_assert!(value.len() <= 4096.max(body.len()));
            }
        }
    }

    /// Payloads redis-server 7.0.15 answered to DUMP.
    const HELLO: &[u8] = b"\x00\x05hello\x0a\x00cr\xdfve4 \x0a";
    const INT_123: &[u8] = b"\x00\xc0\x7b\x0a\x00H\xe2S\xe1\x00zg\xb9";
    const FORTY_A: &[u8] = b"\x00\xc3\x09\x28\x01aa\xe0\x1b\x00\x01aa\x0a\x00\xcf\x09/\xaa\xae%\x83\x1d";

    #[test]
    fn redis_payloads_restore_to_their_strings() {
        assert_eq!(deserialize(HELLO, 1 << 20).ok().as_deref(), Some(&b"hello"[..]));
        assert_eq!(deserialize(INT_123, 1 << 20).ok().as_deref(), Some(&b"123"[..]));
        assert_eq!(deserialize(FORTY_A, 1 << 20).ok().as_deref(), Some(&[b'a'; 40][..]), "LZF");
    }

    #[test]
    fn dump_writes_what_redis_reads_and_reads_it_back() {
        // Redis 7.0 writes the same object; only the version (and so the
        // checksum) differs.
        let hello = serialize(b"hello");
        assert_eq!(&hello[..7], &HELLO[..7]);
        assert_eq!(&serialize(b"123")[..3], &INT_123[..3]);
        let cases: [&[u8]; 11] =
            [b"", b"0", b"-1", b"127", b"128", b"-32769", b"2147483647", b"2147483648", b"007", b"+1", b"x y"];
        for value in cases.into_iter().chain([&[7u8; 70][..], &[0u8; 20_000][..]]) {
            let payload = serialize(value);
            assert_eq!(deserialize(&payload, 1 << 20).ok().as_deref(), Some(value), "{value:?}");
        }
        assert_eq!(serialize(b"-32768")[1], ENCODED << 6 | ENC_INT16);
        assert_eq!(serialize(b"2147483648")[1], LEN_6BIT << 6 | 10, "past i32: written as text");
        assert_eq!(serialize(b"007")[1], LEN_6BIT << 6 | 3, "not as Redis writes integers: text");
    }

    #[test]
    fn hostile_payloads_are_refused_not_trusted() {
        let wrong = |payload: &[u8]| {
            deserialize(payload, 1 << 20).err().map(|e| {
                let mut out = bytes::BytesMut::new();
                e.write(&mut out);
                String::from_utf8_lossy(&out).trim_start_matches('-').trim_end().to_owned()
            })
        };
        let checksum = Some("ERR DUMP payload version or checksum are wrong".to_owned());
        assert_eq!(wrong(b""), checksum);
        assert_eq!(wrong(b"hello moto moto blah blah"), checksum);
        let mut flipped = HELLO.to_vec();
        flipped[3] ^= 1;
        assert_eq!(wrong(&flipped), checksum);
        assert_eq!(wrong(&sealed(b"\x00\x05hello", 13)), checksum, "a version newer than Redis 7.4's");
        let bad = Some("ERR Bad data format".to_owned());
        for body in [
            &b""[..],
            b"\x00",
            b"\x00\x06hello",
            b"\x00\x05hello!",
            b"\x00\xc2\x01",
            b"\x00\xc4",
            b"\x00\x82",
            b"\x00\x80\xff\xff\xff\xff",
            b"\x00\xc3\x05\x28\x01aa\xe0",
            // A back-reference before the start, and fewer bytes than declared.
            b"\x00\xc3\x02\x0a\x20\x05",
            b"\x00\xc3\x03\x0a\x01aa",
        ] {
            assert_eq!(wrong(&sealed(body, 9)), bad, "{body:?}");
        }
        // 64 MiB declared over 2 compressed bytes: a lie, refused before
        // anything is allocated for it.
        let lying = sealed(b"\x00\xc3\x02\x80\x04\x00\x00\x00\x01a", 9);
        let refused = deserialize(&lying, 64 << 20).err().map(|e| {
            let mut out = bytes::BytesMut::new();
            e.write(&mut out);
            out
        });
        assert_eq!(refused.as_deref(), Some(&b"-ERR Bad data format\r\n"[..]));
        let declared_huge = sealed(b"\x00\xc3\x02\x81\x00\x00\x00\x10\x00\x00\x00\x00\x01aa", 9);
        assert_eq!(
            wrong(&declared_huge),
            Some("ERR string exceeds maximum allowed size (proto-max-bulk-len)".to_owned()),
            "a 64 GiB value is never allocated"
        );
        let hash = wrong(&sealed(b"\x04\x01\x01a\x01b", 9)).unwrap_or_default();
        assert!(hash.starts_with("ERR Bad data format") && hash.contains("hash"), "{hash}");
    }
}
