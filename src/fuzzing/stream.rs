//! The gossip port's TCP framing ([`crate::server::stream`]) under
//! arbitrary connections: frames of any declared length, sealed or not,
//! cut short, followed by garbage, delivered in pieces of any size.
//!
//! Properties: the reader returns on every input (it never waits on a
//! budget it cannot get); the frames it forwards are exactly those of the
//! connection up to the first one that breaks a rule — over the limit
//! (the small first-frame limit with a key, before the connection proved
//! it), cut short, or not sealed with our key — and nothing after that
//! with a key; empty frames (a sender's hello) are never forwarded; a
//! frame that does not open is counted as an authentication failure; a
//! connection of valid frames ends without an error; and every byte
//! reserved from the shared read budget is given back.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::{Semaphore, mpsc};

use crate::config::StreamLimits;
use crate::core::wire::FRAME_HEADER_BYTES;
use crate::server::clock::Clock;
use crate::server::envelope::{ClusterKeys, ENVELOPE_OVERHEAD, KEY_BYTES};
use crate::server::stream::{FrameRules, StreamStats, read_frames};

use super::Shape;

/// A connection that delivers its bytes at most `piece` at a time.
struct Pieces<'a> {
    data: &'a [u8],
    piece: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let n = self.piece.min(buf.remaining()).min(self.data.len());
        let (now, later) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = later;
        Poll::Ready(Ok(()))
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a current-thread runtime");
}

/// Why the frames the check wrote stop being predictable.
#[derive(Debug, PartialEq)]
enum Stop {
    /// Every frame was whole and within the rules.
    None,
    /// A frame over its limit, cut short, or (with a key) not sealed.
    Refused { unopened: bool },
    /// A frame whose header claims more bytes than follow it: cut short if
    /// nothing follows it on the wire, else misframed garbage.
    Overlong { ends_at: usize },
    /// Bytes that are not a frame: what they parse to is unknown.
    Garbage,
}

/// The check: a flags byte (bit 0: a cluster key; the rest picks the read
/// piece size), the frame limits (2 bytes and 1), then pieces, each a kind
/// byte and its bytes: a plain frame, a sealed frame, a sealed hello, or
/// unframed garbage.
pub fn check(data: &[u8]) {
    let mut shape = Shape::new(data);
    let flags = shape.byte();
    let keyed = flags & 1 == 1;
    let piece = 1 + usize::from(flags >> 1) * usize::from(flags >> 1);
    let max_frame_bytes = 16 + usize::from(shape.u16() % 2048);
    let unauthenticated_frame_bytes = usize::from(shape.byte());
    let mesh = ClusterKeys::new(&[[7; KEY_BYTES]]);
    let clock = Clock::start();
    let overhead = if keyed { ENVELOPE_OVERHEAD } else { 0 };

    let mut wire = Vec::new();
    let mut expected: Vec<Vec<u8>> = Vec::new();
    let mut frames_written = 0;
    let mut authenticated = !keyed;
    let mut stop = Stop::None;
    while !shape.is_empty() {
        let kind = shape.byte();
        let plain_frame = kind.is_multiple_of(4);
        let (body, opens_to) = match kind % 4 {
            0 => {
                let len = usize::from(shape.u16()) % (2 * max_frame_bytes + 1);
                (shape.take(len).to_vec(), None)
            }
            1 => {
                let len = usize::from(shape.byte());
                let plain = shape.take(len).to_vec();
                (mesh.seal(&plain, clock.wall_ms()), Some(plain))
            }
            2 => (mesh.seal(&[], clock.wall_ms()), Some(Vec::new())),
            _ => {
                let len = usize::from(shape.byte());
                let garbage = shape.take(len);
                wire.extend_from_slice(garbage);
                if stop == Stop::None && !garbage.is_empty() {
                    stop = Stop::Garbage;
                }
                continue;
            }
        };
        // A plain frame may claim more bytes than it has.
        let declared =
            if plain_frame && kind & 0x80 != 0 { body.len() + usize::from(kind & 0x7c) + 1 } else { body.len() };
        wire.extend_from_slice(&(declared as u32).to_be_bytes());
        wire.extend_from_slice(&body);
        frames_written += 1;
        if stop != Stop::None {
            continue;
        }
        let body_len = body.len();
        let largest = max_frame_bytes + overhead;
        let limit = if authenticated { largest } else { unauthenticated_frame_bytes.min(largest) };
        let opened = if keyed { opens_to } else { Some(body) };
        match opened {
            _ if declared > limit => stop = Stop::Refused { unopened: false },
            _ if declared > body_len => stop = Stop::Overlong { ends_at: wire.len() },
            None => stop = Stop::Refused { unopened: true },
            Some(plain) => {
                authenticated = true;
                if !plain.is_empty() {
                    expected.push(plain);
                }
            }
        }
    }

    if let Stop::Overlong { ends_at } = stop {
        stop = if ends_at == wire.len() { Stop::Refused { unopened: false } } else { Stop::Garbage };
    }

    let limits = StreamLimits {
        unauthenticated_frame_bytes,
        buffer_bytes: max_frame_bytes + overhead,
        ..StreamLimits::default()
    };
    let budget = Arc::new(Semaphore::new(limits.buffer_bytes));
    let auth_failures = Arc::new(AtomicU64::new(0));
    let rules = FrameRules {
        max_frame_bytes,
        keys: keyed.then(|| mesh.clone()),
        auth_failures: auth_failures.clone(),
        clock,
        limits,
        stats: Arc::new(StreamStats::default()),
    };
    let (to_driver, mut forwarded) = mpsc::channel(frames_written + 1);
    let source = "127.0.0.1:7946".parse().expect("an address");
    let connection = Pieces { data: &wire, piece };
    let ended = RUNTIME.with(|rt| rt.block_on(read_frames(connection, source, &rules, &budget, to_driver)));

    let mut got = Vec::new();
    while let Ok((from, frame)) = forwarded.try_recv() {
        assert_eq!(from, source, "a frame forwarded as another sender's");
        assert!(!frame.is_empty(), "a hello was forwarded");
        assert!(frame.len() <= max_frame_bytes, "a frame of {} bytes over the limit {max_frame_bytes}", frame.len());
        got.push(frame.to_vec());
    }
    assert_eq!(budget.available_permits(), rules.limits.buffer_bytes, "read budget not given back");
    let failures = auth_failures.load(Ordering::Relaxed);
    match (&stop, keyed) {
        (Stop::None, _) => {
            assert!(ended.is_ok(), "a connection of valid frames ended with {ended:?}");
            assert_eq!(got, expected, "the frames forwarded");
        }
        (Stop::Refused { unopened }, true) => {
            assert!(ended.is_err(), "a refused frame ended the connection cleanly");
            assert_eq!(got, expected, "frames forwarded after one was refused");
            assert_eq!(failures, u64::from(*unopened), "authentication failures counted");
        }
        (Stop::Garbage, true) => {
            // Garbage never opens, so nothing from it is forwarded.
            assert_eq!(got, expected, "garbage forwarded as frames");
            assert!(failures <= 1, "one connection counted {failures} failures");
        }
        (Stop::Refused { .. }, false) => {
            assert!(ended.is_err(), "a refused frame ended the connection cleanly");
            assert_eq!(got, expected, "frames forwarded after one was refused");
        }
        (Stop::Overlong { .. }, _) => unreachable!("resolved above"),
        (Stop::Garbage, false) => {
            assert!(got.starts_with(&expected), "the frames before the garbage");
        }
    }
    if !keyed {
        assert_eq!(failures, 0, "an authentication failure without a key");
    }
    // Each forwarded frame came with a header of its own.
    assert!(got.len() * FRAME_HEADER_BYTES <= wire.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_connections_keep_the_framing_properties(
            data in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            check(&data);
        }

        #[test]
        fn sealed_frames_then_anything_keep_the_framing_properties(
            limit in any::<u16>(),
            plains in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6),
            tail in proptest::collection::vec(any::<u8>(), 0..60),
            piece in any::<u8>(),
        ) {
            // Keyed, a first-frame limit that lets a hello through, sealed
            // frames (the fuzzer cannot forge them), then raw bytes.
            let mut data = vec![piece | 1];
            data.extend_from_slice(&limit.to_be_bytes());
            data.push(ENVELOPE_OVERHEAD as u8 + 8);
            data.push(2);
            for plain in &plains {
                data.extend_from_slice(&[1, plain.len() as u8]);
                data.extend_from_slice(plain);
            }
            data.extend_from_slice(&tail);
            check(&data);
        }
    }

    #[test]
    fn a_stranger_unsealed_first_frame_is_counted_and_ends_the_connection() {
        // Keyed, first-frame limit 200, a 5-byte plain frame.
        check(&[1, 0, 100, 200, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']);
    }
}
