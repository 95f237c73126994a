//! The envelope opener ([`crate::server::envelope`]) under arbitrary
//! payloads, times and tampering.
//!
//! Properties: anything not sealed with one of our keys is refused as such
//! (random bytes, plain payloads, another mesh's, a sealed payload with any
//! byte changed, cut short or extended), for any clock reading; a payload we
//! sealed opens to the same bytes exactly when the receiver's clock is
//! within the replay window of the sealing time, and is refused as a
//! replay otherwise; opened bytes re-sealed open to the same bytes; every
//! key of a rotating set opens, the first seals; and a sealed payload
//! never starts like a plain one, so a node without a key drops it.

use crate::core::tag::{TAG_GOSSIP, TAG_SWIM};
use crate::server::envelope::{ClusterKeys, ENVELOPE_OVERHEAD, KEY_BYTES, NotSealedForUs, SEALED_AGE_MAX_MS};

use super::Shape;

fn key(byte: u8) -> [u8; KEY_BYTES] {
    [byte; KEY_BYTES]
}

/// The check: a flags byte, the sealing and opening clocks (8 bytes each),
/// a tamper position (2 bytes) and mask (1), then the plain payload, which
/// is also tried as if it had arrived sealed.
pub fn check(data: &[u8]) {
    let mut shape = Shape::new(data);
    let flags = shape.byte();
    let sealed_at = shape.u64();
    // Usually near the sealing time, so both sides of the window are hit.
    let opened_at = match flags & 0x03 {
        0 => shape.u64(),
        1 => sealed_at.wrapping_add(u64::from(shape.u16()) * 10_000),
        2 => sealed_at.wrapping_sub(u64::from(shape.u16()) * 10_000),
        _ => sealed_at.wrapping_add(SEALED_AGE_MAX_MS).wrapping_add(u64::from(shape.byte()).wrapping_sub(128)),
    };
    let at = usize::from(shape.u16());
    let mask = shape.byte().max(1);
    let plain = shape.rest();

    let mesh = ClusterKeys::new(&[key(1)]);
    let other = ClusterKeys::new(&[key(2)]);
    let rotating = ClusterKeys::new(&[key(2), key(1)]);

    // Bytes that arrived as they are: never ours (a forged tag is out of
    // reach), whatever the clock says.
    assert_eq!(mesh.open(plain, opened_at), Err(NotSealedForUs::Key), "unsealed bytes opened");

    let sealed = mesh.seal(plain, sealed_at);
    assert_eq!(sealed.len(), plain.len() + ENVELOPE_OVERHEAD);
    assert!(![TAG_SWIM, TAG_GOSSIP].contains(&sealed[0]), "a sealed payload looks plain to a keyless node");

    let in_window = sealed_at.abs_diff(opened_at) <= SEALED_AGE_MAX_MS;
    for keys in [&mesh, &rotating] {
        match keys.open(&sealed, opened_at) {
            Ok(opened) => {
                assert!(in_window, "opened {} ms away from its sealing", sealed_at.abs_diff(opened_at));
                assert_eq!(opened, plain, "opened to other bytes");
                let resealed = keys.seal(&opened, opened_at);
                assert_eq!(keys.open(&resealed, opened_at).as_deref(), Ok(plain), "re-sealed bytes open the same");
            }
            Err(NotSealedForUs::Time(offset)) => {
                assert!(!in_window, "refused as a replay inside the window");
                let exact = i128::from(sealed_at) - i128::from(opened_at);
                let clamped = exact.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
                assert_eq!(i128::from(offset), clamped, "the offset reported");
            }
            Err(NotSealedForUs::Key) => panic!("our own key refused our payload"),
        }
    }
    assert_eq!(other.open(&sealed, opened_at), Err(NotSealedForUs::Key), "another mesh's key opened it");

    let mut tampered = sealed.clone();
    tampered[at % sealed.len()] ^= mask;
    assert_eq!(mesh.open(&tampered, opened_at), Err(NotSealedForUs::Key), "a changed byte at {at} went unseen");
    let cut = at % sealed.len();
    assert_eq!(mesh.open(&sealed[..cut], opened_at), Err(NotSealedForUs::Key), "cut to {cut} bytes opened");
    let mut extended = sealed.clone();
    extended.push(mask);
    assert_eq!(mesh.open(&extended, opened_at), Err(NotSealedForUs::Key), "an extended payload opened");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_payloads_times_and_tampering_keep_the_envelope_properties(
            data in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            check(&data);
        }

        #[test]
        fn clocks_anywhere_in_u64_keep_the_envelope_properties(
            sealed_at in any::<u64>(),
            opened_at in any::<u64>(),
            plain in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let mut data = vec![0];
            data.extend_from_slice(&sealed_at.to_be_bytes());
            data.extend_from_slice(&opened_at.to_be_bytes());
            data.extend_from_slice(&[0, 7, 0x80]);
            data.extend_from_slice(&plain);
            check(&data);
        }
    }

    #[test]
    fn clocks_at_the_ends_of_u64_are_compared_without_overflow() {
        // A key holder may stamp any time; the receiver's clock may read
        // anything. Half of u64 apart overflowed an i64 subtraction.
        for (sealed_at, opened_at) in [(1 << 63, 1_700_000_000_000), (u64::MAX, 0), (0, u64::MAX), (1 << 63, 0)] {
            let mut data = vec![0];
            data.extend_from_slice(&u64::to_be_bytes(sealed_at));
            data.extend_from_slice(&u64::to_be_bytes(opened_at));
            data.extend_from_slice(b"\0\x03\x01push");
            check(&data);
        }
    }
}
