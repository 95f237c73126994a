//! The RESP2 and RESP3 client protocol: what `redis-cli`, `redis-benchmark` and every
//! Redis client library speak to a rumor node.
//!
//! [`serve`] is the entry point: it accepts clients and runs one task per
//! connection. Inside, one job per file:
//!
//! - [`listener`] — the accept loop over the plain and TLS ports,
//!   `max_clients`, TLS handshakes, graceful shutdown; `shutdown` — the
//!   stop signal connections listen for.
//! - `connection` — one client over any byte stream: read, parse every
//!   complete frame, execute, write all replies at once; the output limit
//!   and the idle timeout.
//! - [`parse`] — the incremental request parser (array and inline forms)
//!   and its limits; `inline` — Redis's quoting rules for inline commands.
//! - [`acl`] — users, passwords and permissions (Redis's ACL model), the
//!   ACL file, the AUTH failure throttle.
//! - `cmd` — the command executor (dispatch: synchronous, it leaves any
//!   waiting to its caller) and the commands, one family per file;
//!   `blocking` — long commands kept off the workers, where the node's
//!   driver runs; `gate` — the node-wide gate that makes EXEC atomic.
//! - [`exec`] — the executor for callers without a connection (the
//!   simulator's clients): one command's bytes in, its reply and the writes
//!   it acknowledged out.
//! - [`clients`] — the registry of connections CLIENT LIST and KILL see.
//! - `reply` — reply encoding, RESP2 or RESP3 as the session chose; `output` — a connection's unsent replies,
//!   large values shared with the store; `num` — Redis-strict integers;
//!   `glob` — Redis's glob matcher for KEYS, SCAN and CONFIG GET.
//!
//! Reads go straight to the store from the connection's task; a write is
//! applied to the store, then handed to dissemination on the bounded
//! `writes` hand-over queue before the client is answered.

pub mod acl;
mod blocking;
pub mod clients;
mod cmd;
mod connection;
pub mod exec;
mod gate;
mod glob;
mod inline;
pub mod limits;
pub mod listener;
mod num;
mod output;
pub mod parse;
mod reply;
pub mod shared;
mod shutdown;

#[cfg(test)]
mod tests;

pub use listener::serve;

/// The `cmd` label of each per-command metrics slot, in slot order.
pub(crate) use cmd::slot_labels as command_labels;
