//! rumor: a leaderless, gossip-based, eventually consistent key-value mesh
//! that speaks RESP2.
//!
//! - [`core`] — the sans-IO node: store, versions, membership, gossip,
//!   anti-entropy, the garbage-collection horizon. No clock or socket.
//! - [`server`] — the tokio driver around the core: sockets, the real
//!   clock, the data dir, encryption, client TLS, metrics.
//! - [`resp`] — the client side: the Redis protocol and its commands.
//! - [`run`] — one process's wiring of a node's driver and its clients.
//! - [`config`] — the config file and command line, checked as one.
//! - [`dev`] — `rumor dev`: a local mesh in one process, with a status line.
#![deny(missing_docs)]

pub mod config;
pub mod core;
pub mod dev;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod resp;
pub mod run;
pub mod server;
