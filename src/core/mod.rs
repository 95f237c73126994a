//! The sans-IO node core: no clock, no socket, no spawn, no global RNG.
//! Time and randomness come in as arguments; what the node wants done comes
//! out as values that a driver (tokio, or the simulator) carries out.
//!
//! - [`node`] — the one facade a driver talks to; it owns everything below
//!   and runs anti-entropy (`node/anti_entropy.rs`).
//! - [`store`] — the replicated map: shards, digest tree, sweep; [`entry`] —
//!   one entry and its merge; [`digest`] — the digest tree's hashing; [`version`] and [`hlc`] — the versions that merge orders by.
//! - [`membership`] — SWIM (foca); [`strangers`] — what non-members may send.
//! - [`gossip`] — rumor mongering of fresh entries; [`wire`] — the gossip
//!   port's messages and their checks.
//! - [`horizon`] — when a dead entry may be forgotten.
//! - [`changes`] — the hook durable storage sees changes through.
//! - [`tag`] — the byte that tells SWIM from rumor's messages.
//! - [`timer`] — the deadline queue; [`io`] — what crosses the boundary.
//! - [`start`] — a node's settings and their defaults, the store they
//!   build, and the one rule for a data dir's age.
//! - [`sabotage`] — deliberate bugs that show the simulator's checkers fail.

pub mod changes;
pub mod digest;
pub mod entry;
pub mod gossip;
pub mod hlc;
pub mod horizon;
pub mod io;
pub mod loading;
pub mod membership;
pub mod node;
pub mod sabotage;
pub mod start;
pub mod store;
pub mod strangers;
pub mod tag;
pub mod timer;
pub mod version;
pub mod wire;

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod sync_input_tests;
