//! The tokio driver: real sockets and the real clock around the sans-IO core.

pub mod clock;
pub mod shared;
