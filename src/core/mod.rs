//! The sans-IO node core: no clock, no socket, no spawn, no global RNG.
//! Time and randomness come in as arguments; what the node wants done comes
//! out as values that a driver (tokio, or the simulator) carries out.

pub mod hlc;
pub mod store;
pub mod version;
