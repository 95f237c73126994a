//! Gossip encryption with a cluster key (`--cluster-key-file`): every
//! datagram and stream frame on the gossip port is sealed with
//! XChaCha20-Poly1305, so only nodes holding the key can read it, and a
//! packet that was not sealed with a key we hold is dropped before the core
//! sees it — as Serf's `-encrypt` does.
//!
//! A sealed payload is `[ENVELOPE_V1][24-byte nonce][ciphertext][16-byte tag]`,
//! the ciphertext holding the sender's wall-clock time (8 bytes) before the
//! payload. Nonces are random: with 24 bytes, a long-lived key never repeats
//! one. A payload sealed more than [`SEALED_AGE_MAX`] from the receiver's
//! clock is refused, so a captured packet cannot be replayed later — in
//! particular not after the tombstone TTL, when an old write could bring
//! back a key whose delete the mesh has forgotten.
//!
//! The key file holds one or more keys (base64 of 32 bytes, one per line;
//! blank lines and `#` comments are ignored). The first seals; all open, so
//! a key can be rotated without a split mesh: add the new key second on
//! every node, then move it first on every node, then remove the old one.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::Rng;

/// First byte of a sealed payload. Distinct from the core's message tags,
/// so that a node without the key drops sealed packets as unknown, and a
/// node with the key refuses plain ones.
const ENVELOPE_V1: u8 = 0xE1;
const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;
const TIME_BYTES: usize = 8;
/// Bytes a sealed payload has on top of the plain one.
pub const ENVELOPE_OVERHEAD: usize = 1 + NONCE_BYTES + TIME_BYTES + TAG_BYTES;
/// How far a sealed payload's time may be from the receiver's clock, either
/// way, ms: clocks of a mesh agree far better (NTP; `max_clock_drift_ms` is
/// 500), and anything older is a replay or a stuck packet.
pub const SEALED_AGE_MAX_MS: u64 = 5 * 60 * 1000;
/// [`SEALED_AGE_MAX_MS`] for the docs.
pub const SEALED_AGE_MAX: std::time::Duration = std::time::Duration::from_millis(SEALED_AGE_MAX_MS);
/// Bytes in a key.
pub const KEY_BYTES: usize = 32;

/// The keys of a mesh: the first seals, every one opens. Cheap to clone.
#[derive(Clone)]
pub struct ClusterKeys {
    ciphers: Arc<[XChaCha20Poly1305]>,
}

impl fmt::Debug for ClusterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("ClusterKeys").field("keys", &self.ciphers.len()).finish()
    }
}

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// It could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not base64 of 32 bytes.
    #[error("{path} line {line}: not a key (base64 of {KEY_BYTES} bytes; `rumor keygen` makes one)")]
    BadKey {
        /// The file.
        path: String,
        /// The line number, from 1.
        line: usize,
    },
    /// It holds no key.
    #[error("{path} holds no key (`rumor keygen` makes one)")]
    Empty {
        /// The file.
        path: String,
    },
}

/// Why a payload did not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotSealedForUs {
    /// Not sealed, or not with any of our keys.
    #[error("gossip payload not sealed with this mesh's cluster key (a node with another key, or none?)")]
    Key,
    /// Sealed with our key, but too far from our clock: a replay, or a
    /// sender whose clock is far off.
    #[error("gossip payload sealed {0} ms away from this node's clock (a replay, or clocks apart)")]
    Time(i64),
}

impl ClusterKeys {
    /// Reads a key file (see the module docs).
    pub fn load(path: &Path) -> Result<ClusterKeys, KeyFileError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| KeyFileError::Read { path: shown.clone(), source })?;
        let keys = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .map(|(i, line)| decode_key(line.trim()).ok_or(KeyFileError::BadKey { path: shown.clone(), line: i + 1 }))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(KeyFileError::Empty { path: shown });
        }
        Ok(ClusterKeys::new(&keys))
    }

    /// Keys from their bytes; the first seals. `keys` must not be empty.
    pub fn new(keys: &[[u8; KEY_BYTES]]) -> ClusterKeys {
        assert!(!keys.is_empty(), "a cluster needs at least one key");
        let ciphers = keys.iter().map(|key| XChaCha20Poly1305::new(&(*key).into())).collect();
        ClusterKeys { ciphers }
    }

    /// `plain`, sealed with the first key under a fresh random nonce, with
    /// the sender's wall-clock time `now_ms`.
    pub fn seal(&self, plain: &[u8], now_ms: u64) -> Vec<u8> {
        let nonce = fresh_nonce();
        let mut timed = Vec::with_capacity(TIME_BYTES + plain.len());
        timed.extend_from_slice(&now_ms.to_be_bytes());
        timed.extend_from_slice(plain);
        let sealed = match self.ciphers[0].encrypt(&XNonce::from(nonce), timed.as_slice()) {
            Ok(sealed) => sealed,
            // Encryption fails only for plaintexts beyond 256 GiB.
            Err(_) => unreachable!("a gossip payload is far below XChaCha20's length limit"),
        };
        let mut out = Vec::with_capacity(ENVELOPE_OVERHEAD + plain.len());
        out.push(ENVELOPE_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plain payload of `sealed`, if one of our keys sealed it within
    /// [`SEALED_AGE_MAX`] of `now_ms`.
    pub fn open(&self, sealed: &[u8], now_ms: u64) -> Result<Vec<u8>, NotSealedForUs> {
        let Some((&ENVELOPE_V1, rest)) = sealed.split_first() else { return Err(NotSealedForUs::Key) };
        if rest.len() < NONCE_BYTES + TIME_BYTES + TAG_BYTES {
            return Err(NotSealedForUs::Key);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce).map_err(|_| NotSealedForUs::Key)?;
        let mut timed = self
            .ciphers
            .iter()
            .find_map(|cipher| cipher.decrypt(&nonce, ciphertext).ok())
            .ok_or(NotSealedForUs::Key)?;
        let mut time = [0u8; TIME_BYTES];
        time.copy_from_slice(&timed[..TIME_BYTES]);
        let sealed_at = u64::from_be_bytes(time);
        if sealed_at.abs_diff(now_ms) > SEALED_AGE_MAX_MS {
            // Any u64 either side (a key holder stamps what it likes): the
            // difference is taken wide, then reported within i64.
            let offset = i128::from(sealed_at) - i128::from(now_ms);
            let offset_ms = i64::try_from(offset).unwrap_or(if offset > 0 { i64::MAX } else { i64::MIN });
            return Err(NotSealedForUs::Time(offset_ms));
        }
        timed.drain(..TIME_BYTES);
        Ok(timed)
    }
}

/// A new key, base64 as key files hold it, from the OS's randomness.
pub fn generate_key() -> String {
    let mut key = [0u8; KEY_BYTES];
    fill_random(&mut key);
    BASE64.encode(key)
}

fn decode_key(text: &str) -> Option<[u8; KEY_BYTES]> {
    BASE64.decode(text).ok()?.try_into().ok()
}

fn fresh_nonce() -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    fill_random(&mut nonce);
    nonce
}

/// Keys and nonces come from the thread's OS-seeded CSPRNG: the driver
/// side's randomness, never the core's seeded one.
#[expect(clippy::disallowed_methods, reason = "key material and nonces need a CSPRNG, not a seeded RNG")]
fn fill_random(bytes: &mut [u8]) {
    rand::rng().fill_bytes(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wall-clock reading for the tests, ms.
    const T: u64 = 1_700_000_000_000;

    fn keys(bytes: &[u8]) -> ClusterKeys {
        ClusterKeys::new(&bytes.iter().map(|&b| [b; KEY_BYTES]).collect::<Vec<_>>())
    }

    #[test]
    fn sealed_payloads_open_with_the_key_and_carry_its_overhead() {
        let mesh = keys(&[1]);
        let sealed = mesh.seal(b"probe", T);
        assert_eq!(sealed.len(), b"probe".len() + ENVELOPE_OVERHEAD);
        assert_eq!(sealed[0], ENVELOPE_V1);
        assert!(!sealed.windows(5).any(|w| w == b"probe"), "the payload is not readable on the wire");
        assert_eq!(mesh.open(&sealed, T).unwrap(), b"probe");
        assert_ne!(mesh.seal(b"probe", T), sealed, "every seal has its own nonce");
    }

    #[test]
    fn other_keys_plain_tampered_and_short_payloads_are_refused() {
        let mesh = keys(&[1]);
        let sealed = mesh.seal(b"entries", T);
        assert_eq!(keys(&[2]).open(&sealed, T), Err(NotSealedForUs::Key));
        assert_eq!(mesh.open(&[0x01, 1, 2, 3], T), Err(NotSealedForUs::Key), "a plain SWIM packet");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(mesh.open(&tampered, T), Err(NotSealedForUs::Key));
        assert_eq!(mesh.open(&sealed[..ENVELOPE_OVERHEAD - 1], T), Err(NotSealedForUs::Key));
        assert_eq!(mesh.open(&[], T), Err(NotSealedForUs::Key));
    }

    #[test]
    fn payloads_sealed_too_long_ago_or_ahead_are_refused_as_replays() {
        let mesh = keys(&[1]);
        let sealed = mesh.seal(b"push", T);
        assert_eq!(mesh.open(&sealed, T + SEALED_AGE_MAX_MS).unwrap(), b"push", "at the edge of the window");
        assert_eq!(mesh.open(&sealed, T - SEALED_AGE_MAX_MS).unwrap(), b"push");
        let a_day = 24 * 60 * 60 * 1000;
        assert_eq!(mesh.open(&sealed, T + a_day), Err(NotSealedForUs::Time(-(a_day as i64))));
        assert_eq!(
            mesh.open(&sealed, T - SEALED_AGE_MAX_MS - 1),
            Err(NotSealedForUs::Time(SEALED_AGE_MAX_MS as i64 + 1))
        );
        assert!(NotSealedForUs::Time(-5).to_string().contains("replay"));
    }

    #[test]
    fn rotation_opens_with_every_key_and_seals_with_the_first() {
        let old = keys(&[1]);
        let rotating = keys(&[1, 2]);
        let new = keys(&[2, 1]);
        assert_eq!(rotating.open(&old.seal(b"a", T), T).unwrap(), b"a");
        assert_eq!(old.open(&rotating.seal(b"b", T), T).unwrap(), b"b");
        assert_eq!(rotating.open(&new.seal(b"c", T), T).unwrap(), b"c");
        assert_eq!(old.open(&new.seal(b"d", T), T), Err(NotSealedForUs::Key));
    }

    #[test]
    fn key_files_hold_base64_keys_with_comments_and_name_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.key");
        let (first, second) = (generate_key(), generate_key());
        std::fs::write(&path, format!("# rotated 2026-12-01\n{first}\n\n  {second}  \n")).unwrap();
        let loaded = ClusterKeys::load(&path).unwrap();
        assert_eq!(loaded.ciphers.len(), 2);
        let only_first = ClusterKeys::new(&[decode_key(&first).unwrap()]);
        assert_eq!(only_first.open(&loaded.seal(b"x", T), T).unwrap(), b"x", "the first key seals");

        std::fs::write(&path, format!("{first}\nnot-a-key\n")).unwrap();
        let error = ClusterKeys::load(&path).unwrap_err().to_string();
        assert!(error.contains("line 2") && error.contains("rumor keygen"), "{error}");
        std::fs::write(&path, "# nothing here\n").unwrap();
        assert!(ClusterKeys::load(&path).unwrap_err().to_string().contains("holds no key"));
        let short = BASE64.encode([7u8; 16]);
        std::fs::write(&path, short).unwrap();
        assert!(matches!(ClusterKeys::load(&path), Err(KeyFileError::BadKey { line: 1, .. })));
        assert!(format!("{loaded:?}").contains("keys: 2") && !format!("{loaded:?}").contains(&first));
    }
}
