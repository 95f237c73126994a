//! The tokio driver: real sockets and the real clock around the sans-IO core.
//! It knows nothing of clients: [`crate::run`] wires a process, giving the
//! client side its ends of the driver's channels ([`control`]).
//!
//! The driver ([`driver::Driver`]) is the task that owns the core, on the
//! clients' runtime; with a cluster key, every gossip payload is sealed on
//! its way out and opened on its way in ([`envelope`]).
//!
//! - [`driver`] — the task that owns the core; [`clock`] — the real clock.
//! - [`stream`] — framed TCP on the gossip port; [`envelope`] — sealing.
//! - [`storage`] — the data dir (fjall): loading, the writer thread.
//! - [`control`] — what client connections send the driver;
//!   [`handover`] — how their writes reach it, one wake-up per round.
//! - [`tls`] — client TLS configuration and its reload.
//! - [`metrics`] and [`metrics_http`] — Prometheus metrics and their port.
//! - [`catch_up`] — progress reports while anti-entropy catches a node up.
//! - [`waits`] — clients blocked in WAIT until peers confirm their writes.

pub mod catch_up;
pub mod clock;
pub mod control;
pub mod driver;
pub mod envelope;
pub mod handover;
pub mod metrics;
pub mod metrics_http;
pub mod storage;
pub mod stream;
pub mod tls;
pub mod waits;
