//! The values that cross the core's boundary: time in, transmissions and
//! events out.

use ::core::net::SocketAddr; // an address value; the core opens no socket
use std::time::Duration;

use bytes::Bytes;

/// The current time, as the driver read it (or the simulator made it up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time since the driver started; orders timers.
    pub mono: Duration,
    /// Wall-clock milliseconds since the Unix epoch; stamps versions and
    /// decides expiry.
    pub wall_ms: u64,
}

/// How a payload must travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// One UDP datagram on the gossip port.
    Datagram,
    /// One length-prefixed frame on a TCP stream to the gossip port: for
    /// payloads too big for a datagram, never fragmented UDP.
    Stream,
}

/// Bytes the node wants sent.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The peer's gossip address.
    pub to: SocketAddr,
    /// Datagram or stream.
    pub transport: Transport,
    /// The whole message, tag byte included.
    pub payload: Bytes,
}

/// Something the operator (logs) or a test may want to know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A member joined or came back.
    MemberUp {
        /// Its name.
        name: String,
        /// Its gossip address.
        addr: SocketAddr,
    },
    /// A member was declared down, or left.
    MemberDown {
        /// Its name.
        name: String,
        /// Its gossip address.
        addr: SocketAddr,
        /// It said it was leaving (a graceful stop, not a failure).
        left: bool,
    },
    /// We joined a mesh (membership has at least one other active member).
    Joined,
    /// We lost every other member; the node re-announces to seeds.
    Isolated,
    /// The mesh declared us down; membership renews our identity and rejoins.
    DeclaredDown,
}
