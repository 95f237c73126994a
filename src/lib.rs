//! rumor: a leaderless, gossip-based, eventually consistent key-value mesh
//! that speaks RESP2.
#![deny(missing_docs)]

pub mod config;
pub mod core;
pub mod dev;
pub mod resp;
pub mod server;
