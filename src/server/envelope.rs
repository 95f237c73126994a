//! Gossip encryption with a cluster key (`--cluster-key-file`): every
//! datagram and stream frame on the gossip port is sealed with
//! XChaCha20-Poly1305, so only nodes holding the key can read it, and a
//! packet that was not sealed with a key we hold is dropped before the core
//! sees it — as Serf's `-encrypt` does.
//!
//! A sealed payload is `[ENVELOPE_V1][24-byte nonce][ciphertext][16-byte tag]`.
//! Nonces are random: with 24 bytes, a long-lived key never repeats one.
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
/// Bytes a sealed payload has on top of the plain one.
pub const ENVELOPE_OVERHEAD: usize = 1 + NONCE_BYTES + TAG_BYTES;
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

/// A payload that did not open: not sealed, or not with any of our keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("gossip payload not sealed with this mesh's cluster key")]
pub struct NotSealedForUs;

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

    /// `plain`, sealed with the first key under a fresh random nonce.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let nonce = fresh_nonce();
        let sealed = match self.ciphers[0].encrypt(&XNonce::from(nonce), plain) {
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

    /// The plain payload of `sealed`, if one of our keys sealed it.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, NotSealedForUs> {
        let Some((&ENVELOPE_V1, rest)) = sealed.split_first() else { return Err(NotSealedForUs) };
        if rest.len() < NONCE_BYTES + TAG_BYTES {
            return Err(NotSealedForUs);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let nonce = XNonce::try_from(nonce).map_err(|_| NotSealedForUs)?;
        self.ciphers.iter().find_map(|cipher| cipher.decrypt(&nonce, ciphertext).ok()).ok_or(NotSealedForUs)
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

    fn keys(bytes: &[u8]) -> ClusterKeys {
        ClusterKeys::new(&bytes.iter().map(|&b| [b; KEY_BYTES]).collect::<Vec<_>>())
    }

    #[test]
    fn sealed_payloads_open_with_the_key_and_carry_its_overhead() {
        let mesh = keys(&[1]);
        let sealed = mesh.seal(b"probe");
        assert_eq!(sealed.len(), b"probe".len() + ENVELOPE_OVERHEAD);
        assert_eq!(sealed[0], ENVELOPE_V1);
        assert!(!sealed.windows(5).any(|w| w == b"probe"), "the payload is not readable on the wire");
        assert_eq!(mesh.open(&sealed).unwrap(), b"probe");
        assert_ne!(mesh.seal(b"probe"), sealed, "every seal has its own nonce");
    }

    #[test]
    fn other_keys_plain_tampered_and_short_payloads_are_refused() {
        let mesh = keys(&[1]);
        let sealed = mesh.seal(b"entries");
        assert_eq!(keys(&[2]).open(&sealed), Err(NotSealedForUs));
        assert_eq!(mesh.open(&[0x01, 1, 2, 3]), Err(NotSealedForUs), "a plain SWIM packet");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(mesh.open(&tampered), Err(NotSealedForUs));
        assert_eq!(mesh.open(&sealed[..ENVELOPE_OVERHEAD - 1]), Err(NotSealedForUs));
        assert_eq!(mesh.open(&[]), Err(NotSealedForUs));
    }

    #[test]
    fn rotation_opens_with_every_key_and_seals_with_the_first() {
        let old = keys(&[1]);
        let rotating = keys(&[1, 2]);
        let new = keys(&[2, 1]);
        assert_eq!(rotating.open(&old.seal(b"a")).unwrap(), b"a");
        assert_eq!(old.open(&rotating.seal(b"b")).unwrap(), b"b");
        assert_eq!(rotating.open(&new.seal(b"c")).unwrap(), b"c");
        assert_eq!(old.open(&new.seal(b"d")), Err(NotSealedForUs));
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
        assert_eq!(only_first.open(&loaded.seal(b"x")).unwrap(), b"x", "the first key seals");

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
