//! The RESP request parser ([`crate::resp::parse`]) under arbitrary client
//! bytes, with small limits so that every limit is reachable.
//!
//! Properties: a byte stream parses to the same frames and the same final
//! outcome however it is split across reads; every parse makes progress;
//! arguments stay within the limits (and within Redis's pre-AUTH bounds
//! for an unauthenticated client); what the reader is told to reserve for a
//! bulk never exceeds the bulk limit; an inline line without quotes splits
//! on blanks exactly; and every parsed command, re-encoded as an array,
//! parses back to the same arguments.

use crate::resp::parse::{Parser, ProtocolError};
use crate::resp::shared::ClientLimits;

use super::Shape;

/// Arguments of each complete frame, then how the stream ended: `Ok(n)`
/// with `n` bytes of an incomplete frame left, or the protocol error.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: Vec<Vec<Vec<u8>>>,
    end: Result<usize, ProtocolError>,
}

/// Limits and the pre-AUTH flag from two shape bytes: small enough that
/// short inputs reach them.
fn limits_of(shape: &mut Shape<'_>) -> (ClientLimits, bool) {
    let a = shape.byte();
    let b = shape.byte();
    let limits = ClientLimits {
        max_clients: 1,
        max_inline_bytes: 4 + usize::from(a & 0x3f),
        max_bulk_bytes: usize::from(b & 0x3f) * 4,
        max_args: 1 + usize::from(b >> 6) * 5,
        max_key_bytes: 16,
        ..ClientLimits::default()
    };
    (limits, a & 0x80 != 0)
}

fn parser(limits: &ClientLimits, unauthenticated: bool) -> Parser {
    let mut parser = Parser::new(limits);
    parser.set_unauthenticated(unauthenticated);
    parser
}

/// Feeds `input` to a fresh parser as a connection would: the buffer
/// grows by `chunks` (sizes, cycled; the whole input at once if empty),
/// and each complete frame is consumed from its front. Checks the
/// per-frame properties on the way.
fn run(input: &[u8], limits: &ClientLimits, unauthenticated: bool, chunks: &[usize]) -> Outcome {
    let mut p = parser(limits, unauthenticated);
    let mut frames = Vec::new();
    let mut start = 0;
    let mut buffered = if chunks.is_empty() { input.len() } else { 0 };
    let mut next_chunk = chunks.iter().cycle();
    loop {
        let frame = &input[start..buffered];
        match p.parse(frame) {
            Ok(Some(n)) => {
                assert!(n > 0 && n <= frame.len(), "a frame of {n} bytes out of {}", frame.len());
                let args: Vec<Vec<u8>> = p.args(frame).iter_from(0).map(<[u8]>::to_vec).collect();
                check_frame(&frame[..n], &args, limits, unauthenticated);
                frames.push(args);
                start += n;
            }
            Ok(None) => {
                let wanted = p.bytes_wanted(frame.len());
                assert!(wanted <= limits.max_bulk_bytes + 2, "asks to reserve {wanted} bytes");
                if buffered == input.len() {
                    return Outcome { frames, end: Ok(input.len() - start) };
                }
                let step = next_chunk.next().copied().unwrap_or(usize::MAX).max(1);
                buffered = buffered.saturating_add(step).min(input.len());
            }
            Err(error) => return Outcome { frames, end: Err(error) },
        }
    }
}

/// Properties of one complete frame `raw` that parsed to `args`.
fn check_frame(raw: &[u8], args: &[Vec<u8>], limits: &ClientLimits, unauthenticated: bool) {
    assert!(args.len() <= limits.max_args, "{} arguments over the limit of {}", args.len(), limits.max_args);
    if raw.first() == Some(&b'*') {
        for arg in args {
            assert!(arg.len() <= limits.max_bulk_bytes, "a bulk of {} over the limit", arg.len());
        }
        if unauthenticated {
            assert!(args.len() <= 10, "{} arguments before AUTH", args.len());
        }
    } else {
        assert!(raw.ends_with(b"\n"), "an inline frame ends at its newline");
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(line.len() <= limits.max_inline_bytes, "an inline line of {} bytes", line.len());
        if !line.iter().any(|b| matches!(b, b'"' | b'\'')) {
            assert_eq!(args, unquoted_words(line), "an unquoted line splits on blanks");
        }
    }
    if !args.is_empty() {
        check_reencoded(args);
    }
}

/// Redis's split of a line without quotes: any C blank (`isspace`) before
/// a word is skipped, but only space, tab, CR and LF end one.
fn unquoted_words(line: &[u8]) -> Vec<Vec<u8>> {
    let mut words = Vec::new();
    let mut rest = line;
    loop {
        let start = rest.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c));
        let Some(start) = start else { return words };
        rest = &rest[start..];
        let end = rest.iter().position(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')).unwrap_or(rest.len());
        words.push(rest[..end].to_vec());
        rest = &rest[end..];
    }
}

/// `args`, encoded as a RESP array, parse back to themselves, exactly.
fn check_reencoded(args: &[Vec<u8>]) {
    let mut encoded = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        encoded.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        encoded.extend_from_slice(arg);
        encoded.extend_from_slice(b"\r\n");
    }
    let mut p = Parser::new(&ClientLimits::default());
    assert_eq!(p.parse(&encoded), Ok(Some(encoded.len())), "a re-encoded command parses whole");
    let again: Vec<Vec<u8>> = p.args(&encoded).iter_from(0).map(<[u8]>::to_vec).collect();
    assert_eq!(again, args, "a re-encoded command keeps its arguments");
}

/// The check: two shape bytes for the limits, one for how the stream is
/// cut, then the client's bytes. The stream is parsed whole, byte by byte
/// and in chunks of fuzzer-chosen sizes; all three must agree.
pub fn check(data: &[u8]) {
    let mut shape = Shape::new(data);
    let (limits, unauthenticated) = limits_of(&mut shape);
    let cut = shape.byte();
    let sizes: Vec<usize> = shape.take(usize::from(cut & 0x07)).iter().map(|&b| usize::from(b) + 1).collect();
    let input = shape.rest();
    let whole = run(input, &limits, unauthenticated, &[]);
    let by_byte = run(input, &limits, unauthenticated, &[1]);
    assert_eq!(by_byte, whole, "byte by byte vs whole");
    if !sizes.is_empty() {
        let chunked = run(input, &limits, unauthenticated, &sizes);
        assert_eq!(chunked, whole, "chunks of {sizes:?} vs whole");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RESP-looking input: pieces of real frames glued to noise, so the
    /// short run gets past the first byte more often than random bytes do.
    fn resp_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"*".to_vec()),
            Just(b"$".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\"".to_vec()),
            Just(b"'".to_vec()),
            Just(b"\\x4".to_vec()),
            Just(b" ".to_vec()),
            (0u32..40).prop_map(|n| n.to_string().into_bytes()),
            Just(b"-1".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..6),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_keep_the_parser_properties(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            check(&data);
        }

        #[test]
        fn resp_like_streams_keep_the_parser_properties(
            shape in proptest::collection::vec(any::<u8>(), 3..11),
            stream in resp_like(),
        ) {
            let mut data = shape;
            data[2] = (data[2] & 0xf8) | (data.len() as u8 - 3).min(7);
            data.extend_from_slice(&stream);
            check(&data);
        }
    }

    #[test]
    fn a_pipelined_stream_of_both_forms_parses_alike_however_split() {
        let mut data = vec![0x3f, 0xff, 0x02, 3, 7];
        data.extend_from_slice(b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nPING\r\nSET a 'b c'\r\n*1\r\n$3\r\nGE");
        check(&data);
        let (limits, unauthenticated) = limits_of(&mut Shape::new(&data));
        let whole = run(&data[5..], &limits, unauthenticated, &[]);
        assert_eq!(whole.frames.len(), 3);
        assert_eq!(whole.end, Ok(10), "the last frame is incomplete, its 10 bytes kept");
    }
}
