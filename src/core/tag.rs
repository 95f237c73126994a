//! The first byte of every gossip-port payload, which says whose it is.
//! A module of its own so that SWIM and rumor's messages depend on it and
//! not on each other.

/// First byte of a foca (SWIM) payload.
pub const TAG_SWIM: u8 = 0x01;
/// First byte of a rumor message (`wire::Message`).
pub const TAG_GOSSIP: u8 = 0x02;
