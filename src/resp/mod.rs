//! The RESP2 client protocol: what `redis-cli`, `redis-benchmark` and every
//! Redis client library speak to a rumor node.
//!
//! [`serve`] is the entry point: it accepts clients and runs one task per
//! connection. Inside, one job per file:
//!
//! - [`listener`] — the accept loop, `max_clients`, graceful shutdown;
//!   `shutdown` — the stop signal connections listen for.
//! - `connection` — one client: read, parse every complete frame, execute,
//!   write all replies at once.
//! - [`parse`] — the incremental request parser (array and inline forms)
//!   and its limits; `inline` — Redis's quoting rules for inline commands.
//! - [`acl`] — users, passwords and permissions (Redis's ACL model), the
//!   ACL file, the AUTH failure throttle.
//! - `cmd` — command dispatch and the commands, one family per file.
//! - `reply` — reply encoding; `num` — Redis-strict integers; `glob` —
//!   Redis's glob matcher for KEYS, SCAN and CONFIG GET.
//!
//! Reads go straight to the store from the connection's task; a write is
//! applied to the store, then handed to dissemination on the bounded
//! `writes` channel before the client is answered.

pub mod acl;
mod cmd;
mod connection;
mod glob;
mod inline;
pub mod listener;
mod num;
pub mod parse;
mod reply;
mod shutdown;

#[cfg(test)]
mod tests;

pub use listener::serve;

/// The `cmd` label of each per-command metrics slot, in slot order.
pub(crate) use cmd::slot_labels as command_labels;
