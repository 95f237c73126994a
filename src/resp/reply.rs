//! Encodes replies straight into a connection's output buffer, in the
//! protocol the connection chose with HELLO.
//!
//! There is one set of reply shapes — RESP3's — and two encoders: shapes
//! RESP2 has too (simple string, error, integer, bulk string, array) are
//! written the same way in both and take a plain buffer; the shapes RESP3
//! added take the [`Output`] (which knows its connection's [`Protocol`])
//! and are written in RESP2 the way Redis 7 downgrades them: a map is a
//! flat array of keys and values, a set an array, a double a bulk string,
//! a boolean the integer 1 or 0, a verbatim string or a big number a bulk
//! string, a push an array, and the null `$-1` (`*-1` where Redis answers
//! a null array). [`Reply`] is the same shapes as a value, for the few
//! replies that are easier to build as a tree (HELLO, COMMAND INFO).
//!
//! Nothing here allocates beyond growing that buffer: integers are
//! formatted on the stack, and a whole pipelined batch of replies goes out
//! with one write. The hot path (GET's bulk string or null) costs one
//! comparison of a byte more than a RESP2-only encoder.

use bytes::{BufMut, BytesMut};

use super::output::Output;

/// The protocol a connection speaks: RESP2 until a `HELLO 3`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// RESP2, every connection's protocol at first.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

impl Protocol {
    /// The version number HELLO and CLIENT INFO show.
    pub(crate) fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// A reply as a value: the RESP3 shapes, encoded in either protocol by
/// [`Reply::encode`]. Borrowed text, so building one copies nothing.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(not(test), expect(dead_code, reason = "shapes for replies to come (sorted sets, EXEC); tested here"))]
pub(crate) enum Reply<'a> {
    /// `+text`.
    Simple(&'a str),
    /// `:n`.
    Integer(i64),
    /// `$len` and bytes.
    Bulk(&'a [u8]),
    /// RESP3's `_`; RESP2's null bulk string.
    Null,
    /// `*n` and the elements.
    Array(Vec<Reply<'a>>),
    /// RESP3's `%n`; RESP2 flattens it to an array of 2n.
    Map(Vec<(Reply<'a>, Reply<'a>)>),
    /// RESP3's `~n`; an array in RESP2.
    Set(Vec<Reply<'a>>),
    /// RESP3's `,d`; a bulk string in RESP2.
    Double(f64),
    /// RESP3's `#t`/`#f`; the integer 1 or 0 in RESP2.
    Boolean(bool),
}

impl Reply<'_> {
    /// Writes the reply in `out`'s protocol.
    pub(crate) fn encode(&self, out: &mut Output) {
        match self {
            Reply::Simple(text) => simple(out, text.as_bytes()),
            Reply::Integer(value) => integer(out, *value),
            Reply::Bulk(data) => bulk(out, data),
            Reply::Null => null(out),
            Reply::Array(items) => {
                array(out, items.len());
                items.iter().for_each(|item| item.encode(out));
            }
            Reply::Map(pairs) => {
                map(out, pairs.len());
                for (key, value) in pairs {
                    key.encode(out);
                    value.encode(out);
                }
            }
            Reply::Set(items) => {
                set(out, items.len());
                items.iter().for_each(|item| item.encode(out));
            }
            Reply::Double(value) => double(out, *value),
            Reply::Boolean(value) => boolean(out, *value),
        }
    }
}

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

/// A bulk string, or the null for `None`.
pub(crate) fn optional_bulk(out: &mut Output, data: Option<&[u8]>) {
    match data {
        Some(data) => bulk(out, data),
        None => null(out),
    }
}

/// "No value": RESP3's `_`, RESP2's null bulk string `$-1`.
pub(crate) fn null(out: &mut Output) {
    let encoded: &[u8] = match out.protocol {
        Protocol::Resp2 => b"$-1\r\n",
        Protocol::Resp3 => b"_\r\n",
    };
    out.extend_from_slice(encoded);
}

/// "No array" (Redis's null multi-bulk, e.g. an aborted EXEC): RESP3's
/// `_`, RESP2's `*-1`.
pub(crate) fn null_array(out: &mut Output) {
    let encoded: &[u8] = match out.protocol {
        Protocol::Resp2 => b"*-1\r\n",
        Protocol::Resp3 => b"_\r\n",
    };
    out.extend_from_slice(encoded);
}

/// The header of an array of `len` elements; the elements follow.
pub(crate) fn array(out: &mut BytesMut, len: usize) {
    aggregate(out, b'*', len);
}

/// The header of a map of `pairs` key-value pairs; keys and values follow,
/// alternating. RESP2: an array of `2 * pairs`.
pub(crate) fn map(out: &mut Output, pairs: usize) {
    match out.protocol {
        Protocol::Resp2 => aggregate(out, b'*', pairs.saturating_mul(2)),
        Protocol::Resp3 => aggregate(out, b'%', pairs),
    }
}

/// The header of a set of `len` members. RESP2: an array.
pub(crate) fn set(out: &mut Output, len: usize) {
    let kind = if out.protocol == Protocol::Resp3 { b'~' } else { b'*' };
    aggregate(out, kind, len);
}

/// The header of a push of `len` elements (pub/sub messages). RESP2: an
/// array, which is how RESP2 clients receive messages.
#[cfg_attr(not(test), expect(dead_code, reason = "for pub/sub messages; tested here"))]
pub(crate) fn push(out: &mut Output, len: usize) {
    let kind = if out.protocol == Protocol::Resp3 { b'>' } else { b'*' };
    aggregate(out, kind, len);
}

/// A double. RESP3: `,1.5`, `,inf`, `,-inf`, `,nan`; RESP2: the same text
/// as a bulk string, as Redis 7 sends scores. The text is the shortest
/// that reads back as the same number.
pub(crate) fn double(out: &mut Output, value: f64) {
    let mut text = [0u8; DOUBLE_TEXT_BYTES];
    let text = format_double(value, &mut text);
    match out.protocol {
        Protocol::Resp2 => bulk(out, text),
        Protocol::Resp3 => {
            out.put_u8(b',');
            out.extend_from_slice(text);
            out.extend_from_slice(CRLF);
        }
    }
}

/// A boolean. RESP3: `#t`/`#f`; RESP2: the integer 1 or 0.
pub(crate) fn boolean(out: &mut Output, value: bool) {
    let encoded: &[u8] = match (out.protocol, value) {
        (Protocol::Resp2, true) => b":1\r\n",
        (Protocol::Resp2, false) => b":0\r\n",
        (Protocol::Resp3, true) => b"#t\r\n",
        (Protocol::Resp3, false) => b"#f\r\n",
    };
    out.extend_from_slice(encoded);
}

/// A verbatim string of `format` (`txt` or `mkd`): RESP3's
/// `=len\r\ntxt:text`; RESP2: a bulk string of the text alone. INFO and
/// CLIENT INFO/LIST answer this way, as in Redis 7.
pub(crate) fn verbatim(out: &mut Output, format: &[u8; 3], text: &[u8]) {
    match out.protocol {
        Protocol::Resp2 => bulk(out, text),
        Protocol::Resp3 => {
            out.reserve(text.len() + 24);
            out.put_u8(b'=');
            put_u64(out, text.len() as u64 + 4);
            out.extend_from_slice(CRLF);
            out.extend_from_slice(format);
            out.put_u8(b':');
            out.extend_from_slice(text);
            out.extend_from_slice(CRLF);
        }
    }
}

/// An integer too large for 64 bits, as its decimal `digits`. RESP3:
/// `(digits`; RESP2: a bulk string.
#[cfg_attr(not(test), expect(dead_code, reason = "for replies beyond 64 bits; tested here"))]
pub(crate) fn big_number(out: &mut Output, digits: &[u8]) {
    debug_assert!(
        !digits.is_empty() && digits.iter().enumerate().all(|(i, b)| b.is_ascii_digit() || (i == 0 && *b == b'-'))
    );
    match out.protocol {
        Protocol::Resp2 => bulk(out, digits),
        Protocol::Resp3 => {
            out.put_u8(b'(');
            out.extend_from_slice(digits);
            out.extend_from_slice(CRLF);
        }
    }
}

fn aggregate(out: &mut BytesMut, kind: u8, len: usize) {
    out.put_u8(kind);
    put_u64(out, len as u64);
    out.extend_from_slice(CRLF);
}

/// Writes `value` as Redis 7 does: `inf`, `-inf`, `nan`, or the shortest
/// decimal that parses back to `value`, in exponent form (`1e+300`) when
/// that is shorter, as C's `%.17g` would choose.
fn format_double(value: f64, buffer: &mut [u8; DOUBLE_TEXT_BYTES]) -> &[u8] {
    use std::io::Write as _;
    if value.is_nan() {
        return b"nan";
    }
    if value.is_infinite() {
        return if value > 0.0 { b"inf" } else { b"-inf" };
    }
    let total = buffer.len();
    let mut cursor = &mut buffer[..];
    let exponent = if value == 0.0 { 0 } else { value.abs().log10().floor() as i32 };
    // Rust's `{}` is shortest-round-trip but never uses an exponent;
    // `{:e}` is shortest-round-trip in exponent form. `%.17g` switches to
    // the exponent form below 1e-4 and from 1e17 on.
    let written = if (-5..17).contains(&exponent) {
        write!(cursor, "{value}")
    } else {
        let mut scientific = [0u8; DOUBLE_TEXT_BYTES];
        let mut sc = &mut scientific[..];
        let _ = write!(sc, "{value:e}");
        let used = DOUBLE_TEXT_BYTES - sc.len();
        let text = &scientific[..used];
        // `1e300` → `1e+300`, `1.5e-7` → `1.5e-07`, as C prints exponents.
        match text.iter().position(|&b| b == b'e') {
            Some(at) => {
                let (mantissa, exp) = (&text[..at], &text[at + 1..]);
                let (sign, digits) = match exp.first() {
                    Some(b'-') => (b'-', &exp[1..]),
                    _ => (b'+', exp),
                };
                let pad: &[u8] = if digits.len() < 2 { b"0" } else { b"" };
                cursor
                    .write_all(mantissa)
                    .and_then(|()| cursor.write_all(&[b'e', sign]))
                    .and_then(|()| cursor.write_all(pad))
                    .and_then(|()| cursor.write_all(digits))
            }
            None => cursor.write_all(text),
        }
    };
    debug_assert!(written.is_ok(), "a double's text fits in {DOUBLE_TEXT_BYTES} bytes");
    let used = total - cursor.len();
    &buffer[..used]
}

/// Room for any double's text (`-2.2250738585072014e-308` is 24 bytes).
const DOUBLE_TEXT_BYTES: usize = 32;

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
    use bytes::Buf;

    use super::*;

    fn encoded(write: impl FnOnce(&mut BytesMut)) -> Vec<u8> {
        let mut out = BytesMut::new();
        write(&mut out);
        out.to_vec()
    }

    /// What `write` encodes in RESP2 and in RESP3.
    fn both(write: impl Fn(&mut Output)) -> (String, String) {
        let run = |protocol| {
            let mut out = Output::default();
            out.protocol = protocol;
            write(&mut out);
            let mut bytes = Vec::new();
            while out.has_remaining() {
                bytes.extend_from_slice(out.chunk());
                out.advance(out.chunk().len());
            }
            String::from_utf8(bytes).unwrap()
        };
        (run(Protocol::Resp2), run(Protocol::Resp3))
    }

    fn pair(resp2: &str, resp3: &str) -> (String, String) {
        (resp2.to_owned(), resp3.to_owned())
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
        assert_eq!(encoded(|o| array(o, 3)), b"*3\r\n");
        assert_eq!(encoded(|o| bulk_u64(o, u64::MAX)), b"$20\r\n18446744073709551615\r\n");
    }

    #[test]
    fn resp3_shapes_and_their_resp2_downgrades() {
        assert_eq!(both(null), pair("$-1\r\n", "_\r\n"));
        assert_eq!(both(null_array), pair("*-1\r\n", "_\r\n"));
        assert_eq!(both(|o| optional_bulk(o, None)), pair("$-1\r\n", "_\r\n"));
        assert_eq!(both(|o| optional_bulk(o, Some(b"v"))), pair("$1\r\nv\r\n", "$1\r\nv\r\n"));
        assert_eq!(both(|o| map(o, 2)), pair("*4\r\n", "%2\r\n"));
        assert_eq!(both(|o| map(o, 0)), pair("*0\r\n", "%0\r\n"));
        assert_eq!(both(|o| set(o, 3)), pair("*3\r\n", "~3\r\n"));
        assert_eq!(both(|o| push(o, 3)), pair("*3\r\n", ">3\r\n"));
        assert_eq!(both(|o| boolean(o, true)), pair(":1\r\n", "#t\r\n"));
        assert_eq!(both(|o| boolean(o, false)), pair(":0\r\n", "#f\r\n"));
        assert_eq!(both(|o| double(o, 1.5)), pair("$3\r\n1.5\r\n", ",1.5\r\n"));
        assert_eq!(both(|o| double(o, f64::INFINITY)), pair("$3\r\ninf\r\n", ",inf\r\n"));
        assert_eq!(both(|o| double(o, f64::NEG_INFINITY)), pair("$4\r\n-inf\r\n", ",-inf\r\n"));
        assert_eq!(both(|o| double(o, f64::NAN)), pair("$3\r\nnan\r\n", ",nan\r\n"));
        assert_eq!(both(|o| verbatim(o, b"txt", b"a=1\n")), pair("$4\r\na=1\n\r\n", "=8\r\ntxt:a=1\n\r\n"));
        let big = "3492890328409238509324850943850943825024385";
        assert_eq!(both(|o| big_number(o, big.as_bytes())), pair(&format!("$43\r\n{big}\r\n"), &format!("({big}\r\n")));
    }

    #[test]
    fn doubles_are_the_shortest_text_that_reads_back() {
        let text = |value: f64| {
            let mut buffer = [0u8; DOUBLE_TEXT_BYTES];
            String::from_utf8(format_double(value, &mut buffer).to_vec()).unwrap()
        };
        for (value, expected) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (3.0, "3"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (1e300, "1e+300"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (f64::MAX, "1.7976931348623157e+308"),
            (-f64::MIN_POSITIVE, "-2.2250738585072014e-308"),
        ] {
            assert_eq!(text(value), expected, "{value:e}");
        }
        for value in [0.1, 1.0 / 3.0, 123_456.789, 6.02e23, 5e-324] {
            assert_eq!(text(value).parse::<f64>().unwrap(), value);
        }
    }

    #[test]
    fn a_reply_tree_encodes_in_either_protocol() {
        let reply = Reply::Map(vec![
            (Reply::Bulk(b"proto"), Reply::Integer(3)),
            (Reply::Bulk(b"flags"), Reply::Set(vec![Reply::Simple("fast")])),
            (Reply::Bulk(b"none"), Reply::Null),
            (Reply::Bulk(b"list"), Reply::Array(vec![Reply::Boolean(true), Reply::Double(0.5)])),
        ]);
        let (resp2, resp3) = both(|o| reply.encode(o));
        assert_eq!(
            resp2,
            "*8\r\n$5\r\nproto\r\n:3\r\n$5\r\nflags\r\n*1\r\n+fast\r\n$4\r\nnone\r\n$-1\r\n\
             $4\r\nlist\r\n*2\r\n:1\r\n$3\r\n0.5\r\n"
        );
        assert_eq!(
            resp3,
            "%4\r\n$5\r\nproto\r\n:3\r\n$5\r\nflags\r\n~1\r\n+fast\r\n$4\r\nnone\r\n_\r\n\
             $4\r\nlist\r\n*2\r\n#t\r\n,0.5\r\n"
        );
    }

    /// An owned reply tree, for property tests: [`Owned::reply`] borrows it.
    #[derive(Clone, Debug)]
    enum Owned {
        Simple(String),
        Integer(i64),
        Bulk(Vec<u8>),
        Null,
        Array(Vec<Owned>),
        Map(Vec<(Owned, Owned)>),
        Set(Vec<Owned>),
        Double(f64),
        Boolean(bool),
    }

    impl Owned {
        fn reply(&self) -> Reply<'_> {
            match self {
                Owned::Simple(text) => Reply::Simple(text),
                Owned::Integer(value) => Reply::Integer(*value),
                Owned::Bulk(data) => Reply::Bulk(data),
                Owned::Null => Reply::Null,
                Owned::Array(items) => Reply::Array(items.iter().map(Owned::reply).collect()),
                Owned::Map(pairs) => Reply::Map(pairs.iter().map(|(k, v)| (k.reply(), v.reply())).collect()),
                Owned::Set(items) => Reply::Set(items.iter().map(Owned::reply).collect()),
                Owned::Double(value) => Reply::Double(*value),
                Owned::Boolean(value) => Reply::Boolean(*value),
            }
        }

        /// What an independent RESP parser (the `redis` crate's) must read.
        fn expected(&self, protocol: Protocol) -> redis::Value {
            use redis::Value;
            let resp3 = protocol == Protocol::Resp3;
            match self {
                Owned::Simple(text) => Value::SimpleString(text.clone()),
                Owned::Integer(value) => Value::Int(*value),
                Owned::Bulk(data) => Value::BulkString(data.clone()),
                Owned::Null => Value::Nil,
                Owned::Array(items) => Value::Array(items.iter().map(|i| i.expected(protocol)).collect()),
                Owned::Map(pairs) if resp3 => {
                    Value::Map(pairs.iter().map(|(k, v)| (k.expected(protocol), v.expected(protocol))).collect())
                }
                Owned::Map(pairs) => {
                    Value::Array(pairs.iter().flat_map(|(k, v)| [k.expected(protocol), v.expected(protocol)]).collect())
                }
                Owned::Set(items) if resp3 => Value::Set(items.iter().map(|i| i.expected(protocol)).collect()),
                Owned::Set(items) => Value::Array(items.iter().map(|i| i.expected(protocol)).collect()),
                Owned::Double(value) if resp3 => Value::Double(*value),
                Owned::Double(value) => {
                    let mut buffer = [0u8; DOUBLE_TEXT_BYTES];
                    Value::BulkString(format_double(*value, &mut buffer).to_vec())
                }
                Owned::Boolean(value) if resp3 => Value::Boolean(*value),
                Owned::Boolean(value) => Value::Int(i64::from(*value)),
            }
        }
    }

    fn owned() -> impl proptest::strategy::Strategy<Value = Owned> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            "[a-zA-Z0-9 ]{0,12}".prop_map(Owned::Simple),
            any::<i64>().prop_map(Owned::Integer),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Owned::Bulk),
            Just(Owned::Null),
            // Every double but NaN, which equals nothing (its text is tested above).
            any::<f64>().prop_filter("not NaN", |d| !d.is_nan()).prop_map(Owned::Double),
            any::<bool>().prop_map(Owned::Boolean),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Owned::Array),
                proptest::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(Owned::Map),
                proptest::collection::vec(inner, 0..6).prop_map(Owned::Set),
            ]
        })
    }

    proptest::proptest! {
        /// Both encodings of any reply tree read back as the tree, and end
        /// exactly where they should: two in a row read back as two.
        #[test]
        fn any_reply_reads_back_in_both_protocols(tree in owned()) {
            for protocol in [Protocol::Resp2, Protocol::Resp3] {
                let mut out = Output::default();
                out.protocol = protocol;
                tree.reply().encode(&mut out);
                tree.reply().encode(&mut out);
                let mut bytes = Vec::new();
                while out.has_remaining() {
                    bytes.extend_from_slice(out.chunk());
                    out.advance(out.chunk().len());
                }
                let mut parser = redis::Parser::new();
                let mut reader = &bytes[..];
                let expected = tree.expected(protocol);
                proptest::prop_assert_eq!(parser.parse_value(&mut reader).unwrap(), expected.clone());
                proptest::prop_assert_eq!(parser.parse_value(&mut reader).unwrap(), expected);
                proptest::prop_assert!(parser.parse_value(&mut reader).is_err(), "nothing is left over");
            }
        }
    }

    #[test]
    fn errors_cannot_break_the_framing() {
        assert_eq!(encoded(|o| error(o, b"ERR bad\r\nthing")), b"-ERR bad  thing\r\n");
    }
}
