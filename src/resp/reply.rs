//! Encodes RESP2 replies straight into a connection's output buffer.
//!
//! Nothing here allocates beyond growing that buffer: integers are
//! formatted on the stack, and a whole pipelined batch of replies goes out
//! with one write.

use bytes::{BufMut, BytesMut};

/// `+OK`.
pub(crate) fn ok(out: &mut BytesMut) {
    out.extend_from_slice(b"+OK\r\n");
}

/// A simple string, `+text`. `text` must not contain CR or LF.
pub(crate) fn simple(out: &mut BytesMut, text: &[u8]) {
    debug_assert!(!text.contains(&b'\r') && !text.contains(&b'\n'));
    out.put_u8(b'+');
    out.extend_from_slice(text);
    out.extend_from_slice(CRLF);
}

/// An error, `-CODE message`. CR and LF inside `message` become spaces, as
/// Redis does, so no client input can break the framing.
pub(crate) fn error(out: &mut BytesMut, message: &[u8]) {
    out.reserve(message.len() + 3);
    out.put_u8(b'-');
    out.extend(message.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(CRLF);
}

/// An integer, `:n`.
pub(crate) fn integer(out: &mut BytesMut, value: i64) {
    out.put_u8(b':');
    put_i64(out, value);
    out.extend_from_slice(CRLF);
}

/// A count as an integer reply, saturating at `i64::MAX`.
pub(crate) fn count(out: &mut BytesMut, value: usize) {
    integer(out, i64::try_from(value).unwrap_or(i64::MAX));
}

/// A bulk string, `$len` then the bytes.
pub(crate) fn bulk(out: &mut BytesMut, data: &[u8]) {
    out.reserve(data.len() + 16);
    bulk_header(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(CRLF);
}

/// A bulk string's `$len` line, for a body written apart (and its CRLF).
pub(crate) fn bulk_header(out: &mut BytesMut, len: usize) {
    out.put_u8(b'$');
    put_u64(out, len as u64);
    out.extend_from_slice(CRLF);
}

/// A bulk string holding a decimal number (SCAN's cursor).
pub(crate) fn bulk_u64(out: &mut BytesMut, value: u64) {
    let mut digits = [0u8; 20];
    bulk(out, format_u64(value, &mut digits));
}

/// A bulk string, or the null bulk string for `None`.
pub(crate) fn optional_bulk(out: &mut BytesMut, data: Option<&[u8]>) {
    match data {
        Some(data) => bulk(out, data),
        None => null(out),
    }
}

/// The null bulk string, `$-1`: RESP2's "no value".
pub(crate) fn null(out: &mut BytesMut) {
    out.extend_from_slice(b"$-1\r\n");
}

/// The header of an array of `len` elements; the elements follow.
pub(crate) fn array(out: &mut BytesMut, len: usize) {
    out.put_u8(b'*');
    put_u64(out, len as u64);
    out.extend_from_slice(CRLF);
}

fn put_i64(out: &mut BytesMut, value: i64) {
    if value < 0 {
        out.put_u8(b'-');
    }
    put_u64(out, value.unsigned_abs());
}

fn put_u64(out: &mut BytesMut, value: u64) {
    let mut digits = [0u8; 20];
    out.extend_from_slice(format_u64(value, &mut digits));
}

/// Formats `value` in decimal at the end of `digits`, returning the digits.
fn format_u64(mut value: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut start = digits.len();
    loop {
        start -= 1;
        // `value % 10` is below 10, so the cast cannot truncate.
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    &digits[start..]
}

const CRLF: &[u8] = b"\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(write: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
        let mut out = BytesMut::new();
        write(&mut out);
        out.to_vec()
    }

    #[test]
    fn encodes_every_reply_kind_exactly() {
        assert_eq!(encoded(ok), b"+OK\r\n");
        assert_eq!(encoded(|o| simple(o, b"PONG")), b"+PONG\r\n");
        assert_eq!(encoded(|o| integer(o, 0)), b":0\r\n");
        assert_eq!(encoded(|o| integer(o, -2)), b":-2\r\n");
        assert_eq!(encoded(|o| integer(o, i64::MIN)), b":-9223372036854775808\r\n");
        assert_eq!(encoded(|o| integer(o, i64::MAX)), b":9223372036854775807\r\n");
        assert_eq!(encoded(|o| count(o, 12)), b":12\r\n");
        assert_eq!(encoded(|o| bulk(o, b"")), b"$0\r\n\r\n");
        assert_eq!(encoded(|o| bulk(o, b"a\r\nb")), b"$4\r\na\r\nb\r\n");
        assert_eq!(encoded(|o| bulk_u64(o, 1024)), b"$4\r\n1024\r\n");
        assert_eq!(encoded(|o| optional_bulk(o, None)), b"$-1\r\n");
        assert_eq!(encoded(null), b"$-1\r\n");
        assert_eq!(encoded(|o| array(o, 3)), b"*3\r\n");
        assert_eq!(encoded(|o| bulk_u64(o, u64::MAX)), b"$20\r\n18446744073709551615\r\n");
    }

    #[test]
    fn errors_cannot_break_the_framing() {
        assert_eq!(encoded(|o| error(o, b"ERR bad\r\nthing")), b"-ERR bad  thing\r\n");
    }
}
