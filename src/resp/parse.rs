//! The incremental RESP2 request parser: array frames (`*N` of `$len`
//! bulks) and inline commands, fed from one connection's read buffer.
//!
//! The parser keeps its place inside a partly received frame (which
//! argument it is in, where its bytes start, how far it has looked for a
//! line end), so each byte is examined once however the frame is split
//! across reads: a 500 MB value costs a header parse and then one length
//! comparison per read, not a rescan. Arguments are kept as ranges into
//! the caller's buffer, so a parsed command allocates nothing.
//!
//! Every length a client announces is checked against [`ClientLimits`]
//! before anything is buffered for it, and a line with no end in sight
//! trips `max_inline_bytes`, so a client can never make the connection
//! buffer without bound. An incomplete frame is `Ok(None)`, an expected
//! outcome; a malformed one is a [`ProtocolError`], after which the
//! connection is closed.

use std::ops::Range;

use bytes::BytesMut;

use super::inline;
use super::num::parse_i64;
use super::shared::ClientLimits;

/// Why a request could not be parsed. The client gets
/// `-ERR Protocol error: <this>` and the connection is closed; nothing
/// was executed from the bad frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// An inline line longer than `max_inline_bytes`.
    #[error("too big inline request")]
    TooBigInline,
    /// An inline line with more than `max_args` arguments.
    #[error("too many arguments in inline request")]
    TooManyInlineArgs,
    /// An inline line with an unclosed quote.
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A `*` line longer than `max_inline_bytes`.
    #[error("too big mbulk count string")]
    TooBigMultibulkCount,
    /// A `*` count that is not a number or exceeds `max_args`.
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    /// More than 10 arguments before `AUTH` (Redis's pre-auth bound).
    #[error("unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// A `$` line longer than `max_inline_bytes`.
    #[error("too big bulk count string")]
    TooBigBulkCount,
    /// Something other than `$` where a bulk string must start.
    #[error("expected '$', got '{}'", .0.escape_ascii())]
    ExpectedBulk(u8),
    /// A `$` length that is negative, not a number, or over
    /// `max_bulk_bytes`.
    #[error("invalid bulk length")]
    InvalidBulkLength,
    /// A bulk longer than 16 KiB before `AUTH` (Redis's pre-auth bound).
    #[error("unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// Bulk data not followed by CRLF.
    #[error("bulk data not followed by CRLF")]
    MissingBulkCrlf,
    /// A whole frame larger than the request limit.
    #[error("request too big")]
    RequestTooBig,
}

impl ProtocolError {
    /// Writes the `-ERR Protocol error: …` reply, with the offending byte
    /// of [`ProtocolError::ExpectedBulk`] raw, as Redis sends it.
    pub fn write_reply(self, out: &mut BytesMut) {
        match self {
            ProtocolError::ExpectedBulk(byte) => {
                let message = [b"ERR Protocol error: expected '$', got '".as_slice(), &[byte], b"'"];
                super::reply::error(out, &message.concat());
            }
            other => super::reply::error(out, format!("ERR Protocol error: {other}").as_bytes()),
        }
    }
}

/// One connection's request parser. Feed it the unconsumed input, starting
/// at the first byte of the frame being parsed, each time more arrives.
#[derive(Debug)]
pub struct Parser {
    max_inline_bytes: usize,
    max_bulk_bytes: usize,
    max_args: usize,
    max_request_bytes: usize,
    unauthenticated: bool,
    state: State,
    /// Offset in the frame of the next byte to parse.
    pos: usize,
    /// Offset in the frame where the search for the current line's end
    /// resumes: everything before it has been searched already.
    scan_from: usize,
    /// The arguments of the frame: ranges into the caller's buffer, or into
    /// `inline` for an inline command.
    ranges: Vec<Range<usize>>,
    /// Unquoted arguments of an inline command.
    inline: Vec<u8>,
    /// Whether `ranges` point into `inline` (or into the caller's buffer).
    from_inline: bool,
    /// The last call completed a frame; the next call starts a new one.
    complete: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the first byte of a frame.
    Start,
    /// In an inline line, looking for its `\n`.
    Inline,
    /// In the `*N` line.
    Count,
    /// At a `$len` line, `remaining` arguments (this one included) to go.
    Header { remaining: usize },
    /// In the data of a bulk of `len` bytes that starts at `pos`.
    Data { remaining: usize, len: usize },
}

impl Parser {
    /// A parser enforcing `limits`.
    #[must_use]
    pub fn new(limits: &ClientLimits) -> Self {
        Parser {
            max_inline_bytes: limits.max_inline_bytes,
            max_bulk_bytes: limits.max_bulk_bytes,
            max_args: limits.max_args,
            max_request_bytes: MAX_REQUEST_BYTES
                .max(limits.max_bulk_bytes.saturating_mul(2).saturating_add(limits.max_inline_bytes)),
            unauthenticated: false,
            state: State::Start,
            pos: 0,
            scan_from: 0,
            ranges: Vec::new(),
            inline: Vec::new(),
            from_inline: false,
            complete: false,
        }
    }

    /// Puts a new longest bulk in force (`CONFIG SET proto-max-bulk-len`)
    /// for the bulk headers parsed from now on. The bound on a whole
    /// request stays the one derived at creation, from the start value,
    /// which is the most this may be raised to.
    pub fn set_max_bulk_bytes(&mut self, max_bulk_bytes: usize) {
        self.max_bulk_bytes = max_bulk_bytes;
    }

    /// Applies Redis's tighter pre-`AUTH` bounds (10 arguments, 16 KiB
    /// bulks) to the frames parsed from now on.
    pub fn set_unauthenticated(&mut self, unauthenticated: bool) {
        self.unauthenticated = unauthenticated;
    }

    /// Parses on in the frame that starts at `input[0]`.
    ///
    /// Returns `Ok(Some(n))` once the frame is complete: it is `input[..n]`
    /// and [`Parser::args`] gives its arguments until the next call. After
    /// `Ok(None)`, call again with the same frame start and more bytes.
    /// Empty frames (`*0`, `*-1`, a blank line) complete with no arguments;
    /// Redis skips them silently, and so should the caller.
    ///
    /// # Errors
    ///
    /// A [`ProtocolError`] when the frame is malformed or over a limit;
    /// the connection cannot be resynchronised and should be closed.
    pub fn parse(&mut self, input: &[u8]) -> Result<Option<usize>, ProtocolError> {
        if self.complete {
            self.reset();
        }
        loop {
            match self.state {
                State::Start => match input.first() {
                    None => return Ok(None),
                    Some(b'*') => {
                        self.state = State::Count;
                        self.scan_from = 1;
                    }
                    Some(_) => self.state = State::Inline,
                },
                State::Inline => return self.parse_inline(input),
                State::Count => {
                    let Some((digits, next)) =
                        self.line(input, ProtocolError::TooBigMultibulkCount, ProtocolError::InvalidMultibulkLength)?
                    else {
                        return Ok(None);
                    };
                    let count = parse_i64(&input[digits]).ok_or(ProtocolError::InvalidMultibulkLength)?;
                    if count > i64::try_from(self.max_args).unwrap_or(i64::MAX) {
                        return Err(ProtocolError::InvalidMultibulkLength);
                    }
                    if self.unauthenticated && count > UNAUTHENTICATED_MAX_ARGS {
                        return Err(ProtocolError::UnauthenticatedMultibulkLength);
                    }
                    self.pos = next;
                    let Ok(remaining @ 1..) = usize::try_from(count) else {
                        return Ok(Some(self.finish(false)));
                    };
                    self.state = State::Header { remaining };
                    self.scan_from = next + 1;
                }
                State::Header { remaining } => {
                    let Some(&first) = input.get(self.pos) else {
                        return Ok(None);
                    };
                    if first != b'$' {
                        return Err(ProtocolError::ExpectedBulk(first));
                    }
                    let Some((digits, next)) =
                        self.line(input, ProtocolError::TooBigBulkCount, ProtocolError::InvalidBulkLength)?
                    else {
                        return Ok(None);
                    };
                    let len = parse_i64(&input[digits])
                        .and_then(|len| usize::try_from(len).ok())
                        .filter(|&len| len <= self.max_bulk_bytes)
                        .ok_or(ProtocolError::InvalidBulkLength)?;
                    if self.unauthenticated && len > UNAUTHENTICATED_MAX_BULK_BYTES {
                        return Err(ProtocolError::UnauthenticatedBulkLength);
                    }
                    if next.saturating_add(len).saturating_add(2) > self.max_request_bytes {
                        return Err(ProtocolError::RequestTooBig);
                    }
                    self.pos = next;
                    self.state = State::Data { remaining, len };
                }
                State::Data { remaining, len } => {
                    let end = self.pos + len;
                    let Some(terminator) = input.get(end..end + 2) else {
                        return Ok(None);
                    };
                    if terminator != b"\r\n" {
                        return Err(ProtocolError::MissingBulkCrlf);
                    }
                    self.ranges.push(self.pos..end);
                    self.pos = end + 2;
                    if remaining == 1 {
                        return Ok(Some(self.finish(false)));
                    }
                    self.state = State::Header { remaining: remaining - 1 };
                    self.scan_from = self.pos + 1;
                }
            }
        }
    }

    /// The arguments of the frame the last [`Parser::parse`] completed;
    /// `frame` is the same input that call was given. Empty otherwise.
    #[must_use]
    pub fn args<'a>(&'a self, frame: &'a [u8]) -> Args<'a> {
        if !self.complete {
            return Args::default();
        }
        Args { src: if self.from_inline { &self.inline } else { frame }, ranges: &self.ranges }
    }

    /// Bytes still missing from the bulk being received, given `buffered`
    /// bytes of the frame so far: lets the reader grow its buffer once for
    /// a large value instead of read by read. 0 when not inside a bulk.
    #[must_use]
    pub fn bytes_wanted(&self, buffered: usize) -> usize {
        match self.state {
            State::Data { len, .. } if !self.complete => (self.pos + len + 2).saturating_sub(buffered),
            _ => 0,
        }
    }

    /// Finds the CRLF ending the `*`/`$` line that starts at `pos`. Returns
    /// the range of the digits and the offset after the CRLF.
    fn line(
        &mut self,
        input: &[u8],
        too_long: ProtocolError,
        malformed: ProtocolError,
    ) -> Result<Option<(Range<usize>, usize)>, ProtocolError> {
        let from = self.scan_from.min(input.len());
        let Some(offset) = input[from..].iter().position(|&b| b == b'\r') else {
            self.scan_from = input.len();
            return if input.len() - self.pos > self.max_inline_bytes { Err(too_long) } else { Ok(None) };
        };
        let cr = from + offset;
        self.scan_from = cr;
        if cr - self.pos > self.max_inline_bytes {
            return Err(too_long);
        }
        match input.get(cr + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some((self.pos + 1..cr, cr + 2))),
            Some(_) => Err(malformed),
        }
    }

    fn parse_inline(&mut self, input: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let from = self.scan_from.min(input.len());
        let Some(offset) = input[from..].iter().position(|&b| b == b'\n') else {
            self.scan_from = input.len();
            // A line of exactly the limit may still be waiting for its "\r\n".
            return if input.len() > self.max_inline_bytes.saturating_add(1) {
                Err(ProtocolError::TooBigInline)
            } else {
                Ok(None)
            };
        };
        let newline = from + offset;
        let end = if newline > 0 && input[newline - 1] == b'\r' { newline - 1 } else { newline };
        if end > self.max_inline_bytes {
            return Err(ProtocolError::TooBigInline);
        }
        inline::split(&input[..end], &mut self.inline, &mut self.ranges)
            .map_err(|inline::UnbalancedQuotes| ProtocolError::UnbalancedQuotes)?;
        if self.ranges.len() > self.max_args {
            return Err(ProtocolError::TooManyInlineArgs);
        }
        self.pos = newline + 1;
        Ok(Some(self.finish(true)))
    }

    fn finish(&mut self, from_inline: bool) -> usize {
        self.from_inline = from_inline;
        self.complete = true;
        self.pos
    }

    fn reset(&mut self) {
        self.state = State::Start;
        self.pos = 0;
        self.scan_from = 0;
        self.complete = false;
        self.ranges.clear();
        self.inline.clear();
        // One huge command should not pin its bookkeeping forever.
        if self.ranges.capacity() > RETAINED_CAPACITY {
            self.ranges = Vec::new();
        }
        if self.inline.capacity() > RETAINED_CAPACITY {
            self.inline = Vec::new();
        }
    }
}

/// The arguments of one command, the name first, borrowed from the read
/// buffer (or the parser, for inline commands). Copying one is free.
#[derive(Clone, Copy, Debug, Default)]
pub struct Args<'a> {
    src: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    /// The arguments `ranges` of `src` (a transaction's queued command).
    pub(crate) fn new(src: &'a [u8], ranges: &'a [Range<usize>]) -> Self {
        Args { src, ranges }
    }

    /// Number of arguments, the command name included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether there are none (an empty frame).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `index`, if present.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<&'a [u8]> {
        self.ranges.get(index).and_then(|range| self.src.get(range.clone()))
    }

    /// Argument `index`, or an empty slice past the end: for commands whose
    /// arity was checked already.
    #[must_use]
    pub fn arg(&self, index: usize) -> &'a [u8] {
        debug_assert!(index < self.len(), "arity is checked before arguments are read");
        self.get(index).unwrap_or_default()
    }

    /// The arguments from `index` on.
    pub fn iter_from(&self, index: usize) -> impl ExactSizeIterator<Item = &'a [u8]> + use<'a> {
        let src = self.src;
        self.ranges.get(index..).unwrap_or_default().iter().map(move |range| src.get(range.clone()).unwrap_or_default())
    }
}

/// Frames may always grow to this size (1 GiB, Redis's default
/// `client-query-buffer-limit`), or to two maximal bulks if that is more.
const MAX_REQUEST_BYTES: usize = 1 << 30;

/// Redis's bound on the argument count before `AUTH`.
const UNAUTHENTICATED_MAX_ARGS: i64 = 10;

/// Redis's bound on a bulk before `AUTH`.
const UNAUTHENTICATED_MAX_BULK_BYTES: usize = 16 * 1024;

/// Scratch capacity kept between frames.
const RETAINED_CAPACITY: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> ClientLimits {
        ClientLimits {
            max_clients: 10,
            max_inline_bytes: 64,
            max_bulk_bytes: 1024,
            max_args: 8,
            max_key_bytes: 32,
            ..ClientLimits::default()
        }
    }

    fn parser() -> Parser {
        Parser::new(&limits())
    }

    use crate::resp::cmd::testkit::frame as encode;

    fn owned(parser: &Parser, frame: &[u8]) -> Vec<Vec<u8>> {
        parser.args(frame).iter_from(0).map(<[u8]>::to_vec).collect()
    }

    /// Parses every frame in `input`, returning their arguments.
    fn parse_all(parser: &mut Parser, input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut frames = Vec::new();
        let mut start = 0;
        while let Some(n) = parser.parse(&input[start..])? {
            frames.push(owned(parser, &input[start..]));
            start += n;
        }
        assert_eq!(start, input.len(), "trailing bytes left unparsed");
        Ok(frames)
    }

    fn error_of(input: &[u8]) -> ProtocolError {
        let mut p = parser();
        let mut start = 0;
        loop {
            match p.parse(&input[start..]) {
                Ok(Some(n)) => start += n,
                Ok(None) => panic!("{:?} parsed without error", input.escape_ascii().to_string()),
                Err(e) => return e,
            }
        }
    }

    fn reply_of(error: ProtocolError) -> Vec<u8> {
        let mut out = BytesMut::new();
        error.write_reply(&mut out);
        out.to_vec()
    }

    #[test]
    fn parses_an_array_frame_exactly() {
        let input = encode(&[b"SET", b"key", b"va\r\nlue"]);
        let mut p = parser();
        assert_eq!(p.parse(&input), Ok(Some(input.len())));
        assert_eq!(owned(&p, &input), [&b"SET"[..], b"key", b"va\r\nlue"]);
    }

    #[test]
    fn every_split_point_waits_then_completes() {
        let frames: [&[u8]; 4] =
            [&encode(&[b"SET", b"k", b"v"]), &encode(&[b"", b"x"]), b"SET \"a b\" 'c'\r\n", b"PING\n"];
        for frame in frames {
            for split in 0..frame.len() {
                let mut p = parser();
                assert_eq!(p.parse(&frame[..split]), Ok(None), "split at {split}");
                assert!(p.args(&frame[..split]).is_empty());
                assert_eq!(p.parse(frame), Ok(Some(frame.len())), "split at {split}");
            }
            // And byte by byte, on one parser.
            let mut p = parser();
            for end in 0..frame.len() {
                assert_eq!(p.parse(&frame[..end]), Ok(None));
            }
            assert_eq!(p.parse(frame), Ok(Some(frame.len())));
        }
    }

    #[test]
    fn pipelined_frames_parse_one_after_another() {
        let mut input = encode(&[b"PING"]);
        input.extend_from_slice(b"ECHO hi\r\n");
        input.extend_from_slice(&encode(&[b"GET", b"k"]));
        input.extend_from_slice(b"*0\r\n*-1\r\n\r\n");
        let frames = parse_all(&mut parser(), &input).unwrap();
        let expected: Vec<Vec<Vec<u8>>> = vec![
            vec![b"PING".to_vec()],
            vec![b"ECHO".to_vec(), b"hi".to_vec()],
            vec![b"GET".to_vec(), b"k".to_vec()],
            vec![],
            vec![],
            vec![],
        ];
        assert_eq!(frames, expected);
    }

    #[test]
    fn inline_commands_follow_redis_quoting() {
        let frames = parse_all(&mut parser(), b"SET \"a\\x41\" 'it\\'s'\r\n").unwrap();
        assert_eq!(frames, [vec![b"SET".to_vec(), b"aA".to_vec(), b"it's".to_vec()]]);
        assert_eq!(error_of(b"SET \"oops\r\n"), ProtocolError::UnbalancedQuotes);
        assert_eq!(reply_of(ProtocolError::UnbalancedQuotes), b"-ERR Protocol error: unbalanced quotes in request\r\n");
    }

    #[test]
    fn large_bulk_arriving_byte_by_byte_is_linear() {
        let mut limits = limits();
        limits.max_bulk_bytes = 4 << 20;
        let value = vec![b'x'; 2 << 20];
        let input = encode(&[b"SET", b"k", &value]);
        let mut p = Parser::new(&limits);
        let mut wanted_seen = 0;
        for end in 0..input.len() {
            assert_eq!(p.parse(&input[..end]), Ok(None));
            wanted_seen = wanted_seen.max(p.bytes_wanted(end));
        }
        assert!(wanted_seen >= value.len(), "announces the bulk it waits for");
        assert_eq!(p.parse(&input), Ok(Some(input.len())));
        assert_eq!(p.args(&input).arg(2).len(), value.len());
        assert_eq!(p.bytes_wanted(input.len()), 0);
    }

    #[test]
    fn endless_lines_trip_the_inline_limit() {
        let line = vec![b'a'; 100];
        assert_eq!(error_of(&line), ProtocolError::TooBigInline);
        let mut long = vec![b'a'; 65];
        long.extend_from_slice(b"\r\n");
        assert_eq!(error_of(&long), ProtocolError::TooBigInline);
        // Exactly at the limit is fine, even while the LF is outstanding.
        let mut exact = vec![b'a'; 64];
        exact.push(b'\r');
        let mut p = parser();
        assert_eq!(p.parse(&exact), Ok(None));
        exact.push(b'\n');
        assert_eq!(p.parse(&exact), Ok(Some(66)));
        assert_eq!(reply_of(ProtocolError::TooBigInline), b"-ERR Protocol error: too big inline request\r\n");
    }

    #[test]
    fn endless_length_lines_trip_the_limit() {
        let mut count = b"*".to_vec();
        count.extend(std::iter::repeat_n(b'1', 100));
        assert_eq!(error_of(&count), ProtocolError::TooBigMultibulkCount);
        let mut bulk = b"*1\r\n$".to_vec();
        bulk.extend(std::iter::repeat_n(b'1', 100));
        assert_eq!(error_of(&bulk), ProtocolError::TooBigBulkCount);
        assert_eq!(
            reply_of(ProtocolError::TooBigMultibulkCount),
            b"-ERR Protocol error: too big mbulk count string\r\n"
        );
        assert_eq!(reply_of(ProtocolError::TooBigBulkCount), b"-ERR Protocol error: too big bulk count string\r\n");
    }

    #[test]
    fn bad_counts_are_invalid_multibulk_lengths() {
        for input in [&b"*abc\r\n"[..], b"*9\r\n", b"*+1\r\n", b"*1x\r\n", b"*\r\n", b"*1\rX", b"*\x01\xfe\xff\r\n"] {
            assert_eq!(error_of(input), ProtocolError::InvalidMultibulkLength);
        }
        assert_eq!(
            reply_of(ProtocolError::InvalidMultibulkLength),
            b"-ERR Protocol error: invalid multibulk length\r\n"
        );
    }

    #[test]
    fn bad_bulk_lengths_are_invalid() {
        for input in [
            &b"*1\r\n$-1\r\n"[..],
            b"*1\r\n$abc\r\n",
            b"*1\r\n$1025\r\n",
            b"*1\r\n$99999999999999999999999\r\n",
            b"*1\r\n$\r\n",
            b"*1\r\n$3\rx",
        ] {
            assert_eq!(error_of(input), ProtocolError::InvalidBulkLength);
        }
        assert_eq!(reply_of(ProtocolError::InvalidBulkLength), b"-ERR Protocol error: invalid bulk length\r\n");
        // At the limit is fine.
        let max = vec![b'v'; 1024];
        assert!(parse_all(&mut parser(), &encode(&[&max])).is_ok());
    }

    #[test]
    fn a_missing_dollar_names_the_byte() {
        assert_eq!(error_of(b"*1\r\n:12\r\n"), ProtocolError::ExpectedBulk(b':'));
        assert_eq!(reply_of(ProtocolError::ExpectedBulk(b':')), b"-ERR Protocol error: expected '$', got ':'\r\n");
        assert_eq!(reply_of(ProtocolError::ExpectedBulk(b'\n')), b"-ERR Protocol error: expected '$', got ' '\r\n");
    }

    #[test]
    fn bulk_data_must_end_with_crlf() {
        assert_eq!(error_of(b"*1\r\n$3\r\nabcde\r\n"), ProtocolError::MissingBulkCrlf);
        assert_eq!(error_of(b"*1\r\n$3\r\nabc\n\r"), ProtocolError::MissingBulkCrlf);
    }

    #[test]
    fn too_many_inline_arguments_are_refused() {
        assert_eq!(error_of(b"a b c d e f g h i\r\n"), ProtocolError::TooManyInlineArgs);
        assert!(parse_all(&mut parser(), b"a b c d e f g h\r\n").is_ok());
    }

    #[test]
    fn unauthenticated_clients_get_tight_bounds() {
        let mut limits = limits();
        limits.max_args = 100;
        limits.max_bulk_bytes = 100_000;
        let mut p = Parser::new(&limits);
        p.set_unauthenticated(true);
        assert_eq!(p.parse(b"*11\r\n"), Err(ProtocolError::UnauthenticatedMultibulkLength));
        let mut p = Parser::new(&limits);
        p.set_unauthenticated(true);
        assert_eq!(p.parse(b"*2\r\n$16385\r\n"), Err(ProtocolError::UnauthenticatedBulkLength));
        let mut p = Parser::new(&limits);
        assert_eq!(p.parse(b"*11\r\n$16385\r\n"), Ok(None));
    }

    #[test]
    fn oversized_requests_are_refused_before_buffering() {
        let mut p = parser();
        p.max_request_bytes = 40;
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$20\r\n";
        assert_eq!(p.parse(input), Err(ProtocolError::RequestTooBig));
        let mut p = parser();
        p.max_request_bytes = 40;
        assert_eq!(p.parse(&input[..input.len() - 4]), Ok(None));
    }

    proptest! {
        #[test]
        fn encoded_commands_round_trip(
            args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8),
            split in any::<prop::sample::Index>(),
        ) {
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let input = encode(&refs);
            let split = split.index(input.len());
            let mut p = parser();
            prop_assert_eq!(p.parse(&input[..split]), Ok(None));
            prop_assert_eq!(p.parse(&input), Ok(Some(input.len())));
            prop_assert_eq!(owned(&p, &input), args);
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut p = parser();
            let mut start = 0;
            while let Ok(Some(n)) = p.parse(&input[start..]) {
                prop_assert!(n > 0);
                start += n;
            }
        }
    }
}
