//! Property checks on hostile input, shared by the coverage-guided fuzz
//! targets (`fuzz/`, nightly, behind the `fuzzing` feature) and by their
//! short stable forms in `cargo test`: one definition of what "handled
//! correctly" means, run by both. Each check takes arbitrary bytes, gives
//! them a shape (limits, split points, keys, times, senders) and panics when
//! the code under test breaks a property; returning means the input passed.
//!
//! Not part of rumor's API: built only for tests and with `fuzzing`.

pub mod envelope;
pub mod gossip;
pub mod resp;
pub mod stream;

/// Reads shape parameters off the front of a fuzz input: each call takes
/// the next bytes, or zeros once the input runs out, so every input has a
/// shape and the rest of it is payload.
#[derive(Debug)]
pub struct Shape<'a> {
    data: &'a [u8],
}

impl<'a> Shape<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Shape { data }
    }

    /// The next byte.
    pub fn byte(&mut self) -> u8 {
        let (&first, rest) = self.data.split_first().unwrap_or((&0, &[]));
        self.data = rest;
        first
    }

    /// The next 2 bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// The next 8 bytes, big-endian.
    pub fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        bytes.iter_mut().for_each(|b| *b = self.byte());
        u64::from_be_bytes(bytes)
    }

    /// The next `n` bytes (fewer at the end of the input).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        taken
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}
