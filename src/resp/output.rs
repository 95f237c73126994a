//! A connection's unsent replies: encoded bytes, and large values shared
//! with the store rather than copied.
//!
//! A 1 KiB `MGET` naming one 4 MiB key 128 times asks for a 512 MiB reply;
//! copied into one buffer, that is 512 MiB of memory per request. Shared,
//! each value costs a reference count, and the reply's bytes exist once, in
//! the store. Small values are still copied: below [`SHARE_MIN_BYTES`], a
//! separate piece costs more (a write vector slot, a reference) than the
//! copy. On the common path — no large value — everything is in one
//! buffer and goes out with one write, as before.
//!
//! Commands write replies through `Deref` to the encoding buffer (the
//! [`reply`](super::reply) functions); [`Output::bulk_shared`] is the one
//! way to add a shared value. [`Output::len`] counts every unsent byte,
//! shared ones too, since a shared value is kept alive by the reply even
//! after the store has replaced it: that is what the output-buffer limit
//! bounds.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::ops::{Deref, DerefMut};

use bytes::{Buf, Bytes, BytesMut};

use super::reply::{self, Protocol};

/// Unsent replies, in order: finished pieces, then the buffer being written.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// The protocol replies are encoded in: the session's, set by the
    /// executor before each command.
    pub(crate) protocol: Protocol,
    /// Pieces ahead of `tail`: encoded bytes split off it, and shared values.
    pieces: VecDeque<Bytes>,
    /// Bytes in `pieces`.
    piece_bytes: usize,
    /// Where replies are encoded.
    tail: BytesMut,
}

impl Output {
    /// Unsent bytes, shared values included.
    pub(crate) fn len(&self) -> usize {
        self.piece_bytes + self.tail.len()
    }

    /// Whether nothing is left to send.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A bulk string whose bytes are shared with `value`'s owner when large.
    pub(crate) fn bulk_shared(&mut self, value: Bytes) {
        if value.len() < SHARE_MIN_BYTES {
            reply::bulk(&mut self.tail, &value);
            return;
        }
        reply::bulk_header(&mut self.tail, value.len());
        let encoded = self.tail.split().freeze();
        self.push_piece(encoded);
        self.push_piece(value);
        self.tail.extend_from_slice(b"\r\n");
    }

    /// [`Output::bulk_shared`], or the null bulk string for `None`.
    pub(crate) fn optional_bulk_shared(&mut self, value: Option<Bytes>) {
        match value {
            Some(value) => self.bulk_shared(value),
            None => reply::null(self),
        }
    }

    /// Drops the last unsent bytes so that `len` remain: the replies of
    /// commands run under `CLIENT REPLY OFF|SKIP`. Only what was written
    /// after the length was `len` is dropped, shared pieces included.
    pub(crate) fn truncate(&mut self, len: usize) {
        while self.len() > len {
            let excess = self.len() - len;
            if !self.tail.is_empty() {
                let keep = self.tail.len().saturating_sub(excess);
                self.tail.truncate(keep);
                continue;
            }
            let Some(piece) = self.pieces.back_mut() else { return };
            if piece.len() > excess {
                piece.truncate(piece.len() - excess);
                self.piece_bytes -= excess;
            } else {
                self.piece_bytes -= piece.len();
                self.pieces.pop_back();
            }
        }
    }

    /// Drops everything unsent (a client cut off at its limit). The
    /// encoding buffer's memory is kept only if small.
    pub(crate) fn discard(&mut self, retain_bytes: usize) {
        self.pieces.clear();
        self.piece_bytes = 0;
        if self.tail.capacity() > retain_bytes {
            self.tail = BytesMut::new();
        } else {
            self.tail.clear();
        }
    }

    fn push_piece(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.piece_bytes += piece.len();
            self.pieces.push_back(piece);
        }
    }
}

/// Replies are encoded into the tail buffer, so every `reply::*` encoder
/// writes to an `Output` as it would to a buffer.
impl Deref for Output {
    type Target = BytesMut;

    fn deref(&self) -> &BytesMut {
        &self.tail
    }
}

impl DerefMut for Output {
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.tail
    }
}

/// Writing drains the pieces in order, then the tail; vectored writes see
/// up to [`MAX_WRITE_SLICES`] of them at once.
impl Buf for Output {
    fn remaining(&self) -> usize {
        self.len()
    }

    fn chunk(&self) -> &[u8] {
        self.pieces.front().map_or(&self.tail[..], |piece| &piece[..])
    }

    fn advance(&mut self, mut count: usize) {
        while count > 0 {
            let Some(piece) = self.pieces.front_mut() else {
                self.tail.advance(count);
                return;
            };
            let step = count.min(piece.len());
            piece.advance(step);
            self.piece_bytes -= step;
            count -= step;
            if piece.is_empty() {
                self.pieces.pop_front();
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let limit = slices.len().min(MAX_WRITE_SLICES);
        let mut filled = 0;
        let all = self.pieces.iter().map(|piece| &piece[..]).chain(std::iter::once(&self.tail[..]));
        for chunk in all.filter(|chunk| !chunk.is_empty()) {
            if filled == limit {
                break;
            }
            slices[filled] = IoSlice::new(chunk);
            filled += 1;
        }
        filled
    }
}

/// Values at least this large are shared, not copied, into a reply.
pub(crate) const SHARE_MIN_BYTES: usize = 16 * 1024;

/// Pieces one vectored write covers (well under any `IOV_MAX`).
const MAX_WRITE_SLICES: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(mut out: Output) -> Vec<u8> {
        let mut bytes = Vec::new();
        while out.has_remaining() {
            let chunk = out.chunk().to_vec();
            out.advance(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        bytes
    }

    #[test]
    fn shared_and_copied_values_encode_the_same() {
        let big = Bytes::from(vec![b'x'; SHARE_MIN_BYTES]);
        let mut shared = Output::default();
        let mut copied = BytesMut::new();
        reply::array(&mut shared, 3);
        reply::array(&mut copied, 3);
        shared.bulk_shared(big.clone());
        reply::bulk(&mut copied, &big);
        shared.optional_bulk_shared(Some(Bytes::from_static(b"small")));
        reply::bulk(&mut copied, b"small");
        shared.optional_bulk_shared(None);
        copied.extend_from_slice(b"$-1\r\n");
        assert_eq!(shared.len(), copied.len());
        assert_eq!(drained(shared), copied.to_vec());
    }

    #[test]
    fn a_large_value_is_referenced_not_copied() {
        let big = Bytes::from(vec![7u8; 4 * SHARE_MIN_BYTES]);
        let mut out = Output::default();
        for _ in 0..100 {
            out.bulk_shared(big.clone());
        }
        assert_eq!(out.len(), 100 * (big.len() + 2 + 2 + 5 + 1));
        assert!(out.capacity() < 64 * 1024, "the values stay out of the encoding buffer");
        assert!(out.pieces.iter().any(|piece| piece.as_ptr() == big.as_ptr()));
    }

    #[test]
    fn truncating_drops_only_the_latest_bytes() {
        let big = Bytes::from(vec![b'y'; SHARE_MIN_BYTES]);
        let mut out = Output::default();
        reply::ok(&mut out);
        let mark = out.len();
        out.bulk_shared(big.clone());
        reply::ok(&mut out);
        out.truncate(mark);
        assert_eq!(drained(out), b"+OK\r\n");
        let mut out = Output::default();
        out.bulk_shared(big.clone());
        let mark = out.len();
        reply::ok(&mut out);
        out.bulk_shared(big);
        out.truncate(mark);
        assert_eq!(out.len(), mark);
        let mut expected = format!("${SHARE_MIN_BYTES}\r\n").into_bytes();
        expected.extend_from_slice(&[b'y'; SHARE_MIN_BYTES]);
        expected.extend_from_slice(b"\r\n");
        assert_eq!(drained(out), expected);
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let big = Bytes::from((0..SHARE_MIN_BYTES * 2).map(|i| i as u8).collect::<Vec<_>>());
        let mut out = Output::default();
        reply::ok(&mut out);
        out.bulk_shared(big.clone());
        reply::ok(&mut out);
        let mut expected = b"+OK\r\n".to_vec();
        expected.extend_from_slice(format!("${}\r\n", big.len()).as_bytes());
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b"\r\n+OK\r\n");
        let mut got = Vec::new();
        while out.has_remaining() {
            let mut slices = [IoSlice::new(&[]); 4];
            let n = out.chunks_vectored(&mut slices);
            assert!(n > 0);
            // Take 7 bytes at a time, across piece boundaries.
            let mut take = 7;
            for slice in &slices[..n] {
                let step = take.min(slice.len());
                got.extend_from_slice(&slice[..step]);
                take -= step;
            }
            let advanced = 7 - take;
            out.advance(advanced);
        }
        assert_eq!(got, expected);
        out.discard(0);
        assert!(out.is_empty());
    }
}
