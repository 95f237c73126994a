//! The sans-IO node core: no clock, no socket, no spawn, no global RNG.
//! Time and randomness come in as arguments; what the node wants done comes
//! out as values that a driver (tokio, or the simulator) carries out.

pub mod changes;
pub mod digest;
pub mod gossip;
pub mod hlc;
pub mod horizon;
pub mod io;
pub mod loading;
pub mod membership;
pub mod node;
pub mod sabotage;
pub mod store;
pub mod strangers;
pub mod timer;
pub mod version;
pub mod wire;

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod sync_input_tests;
