//! rumor: a leaderless, gossip-based, eventually consistent key-value mesh
//! that speaks RESP2.
#![deny(missing_docs)]

pub mod config;
pub mod core;
pub mod dev;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod resp;
pub mod server;
