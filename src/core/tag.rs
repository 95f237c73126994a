//! The first byte of every gossip-port payload, which says whose it is.
//! A module of its own so that SWIM and rumor's messages depend on it and
//! not on each other.

/// First byte of a foca (SWIM) payload.
pub const TAG_SWIM: u8 = 0x01;
/// First byte of a rumor message (`wire::Message`).
pub const TAG_GOSSIP: u8 = 0x02;
/// First byte of a padded foca payload: `[TAG_SWIM_PADDED][u16 LE length]
/// [payload][zeros]`. A node's announces go this way, padded to
/// [`PADDED_SWIM_BYTES`], because a non-member's answer is capped at
/// [`STRANGER_ANSWER_FACTOR`] times its request (so that a forged source
/// gets little reflected at it), and the answer to an announce — the
/// members' list — is up to a datagram long.
pub const TAG_SWIM_PADDED: u8 = 0x03;
/// What an announce is padded to, bytes: a third of a datagram and a bit.
pub const PADDED_SWIM_BYTES: usize = 480;
/// How many times its request's size a non-member's answer may be.
pub const STRANGER_ANSWER_FACTOR: usize = 3;

/// Whether `payload` is a foca payload, padded or not.
pub fn is_swim(payload: &[u8]) -> bool {
    matches!(payload.first(), Some(&TAG_SWIM | &TAG_SWIM_PADDED))
}

/// `[TAG_SWIM][foca payload]` as a padded payload.
pub fn pad_swim(tagged: &[u8]) -> Vec<u8> {
    let body = tagged.get(1..).unwrap_or_default();
    let length = u16::try_from(body.len()).unwrap_or(u16::MAX);
    let mut padded = Vec::with_capacity(PADDED_SWIM_BYTES.max(body.len() + 3));
    padded.push(TAG_SWIM_PADDED);
    padded.extend_from_slice(&length.to_le_bytes());
    padded.extend_from_slice(&body[..usize::from(length)]);
    padded.resize(PADDED_SWIM_BYTES.max(padded.len()), 0);
    padded
}

/// The foca payload inside a padded payload's body (after the tag), or
/// `None` if its length runs past the end.
pub fn unpad_swim(body: &[u8]) -> Option<&[u8]> {
    let (length, rest) = body.split_first_chunk::<2>()?;
    rest.get(..usize::from(u16::from_le_bytes(*length)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_padded_payload_carries_the_foca_payload_and_nothing_else() {
        let tagged = [TAG_SWIM, 1, 2, 3];
        let padded = pad_swim(&tagged);
        assert_eq!((padded.len(), padded[0]), (PADDED_SWIM_BYTES, TAG_SWIM_PADDED));
        assert!(is_swim(&padded) && is_swim(&tagged) && !is_swim(&[TAG_GOSSIP]));
        assert_eq!(unpad_swim(&padded[1..]), Some(&[1u8, 2, 3][..]));
        assert_eq!(unpad_swim(&[5, 0, 1, 2]), None, "a length past the end");
        assert_eq!(unpad_swim(&[0]), None);
        let long = [vec![TAG_SWIM], vec![9; 1000]].concat();
        assert_eq!(unpad_swim(&pad_swim(&long)[1..]), Some(&long[1..]), "longer than the padding: not cut");
    }
}
