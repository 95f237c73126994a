//! Fits `max_clients` to the process's file descriptor limit, as Redis
//! does: a node whose clients could take every descriptor would find its
//! data dir unable to open a file ("Too many open files") and stop.
//!
//! At start the soft `RLIMIT_NOFILE` is raised toward the hard limit, as
//! far as `max_clients` plus the reserve needs. The reserve is what the
//! node opens besides clients: the data dir's files, gossip streams in
//! both directions, metrics requests, refusals in flight, and a fixed
//! margin for listeners, sockets, the runtime and logs. When the limit
//! still leaves less than `max_clients`, `max_clients` is lowered to what
//! fits, with a warning; past it, clients get
//! `-ERR max number of clients reached`.

use crate::config::Settings;
use crate::resp::listener::MAX_POLITE_REFUSALS;
use crate::server::{metrics_http, storage};

/// How the descriptor limit was shared out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fitted {
    /// The soft descriptor limit in force after raising it; `None`:
    /// unlimited.
    pub limit: Option<u64>,
    /// Descriptors kept for everything but clients.
    pub reserved: u64,
    /// Clients allowed: the configured `max_clients`, or less if that did
    /// not fit.
    pub max_clients: usize,
}

/// The descriptor limit leaves no room for a single client.
#[derive(Debug, thiserror::Error)]
#[error(
    "the file descriptor limit ({limit}) leaves no room for clients after the {reserved} kept for the data dir, \
     gossip streams and the node itself: raise it (ulimit -n) or lower limits.storage_open_files and \
     gossip_streams.max_inbound"
)]
pub struct NoRoomForClients {
    /// The soft limit.
    pub limit: u64,
    /// Descriptors the node keeps for itself.
    pub reserved: u64,
}

/// Descriptors `settings` need besides clients.
pub fn reserved(settings: &Settings) -> u64 {
    let storage = match settings.data_dir {
        Some(_) => settings.storage_open_files.max(storage::MIN_OPEN_FILES) + storage::OTHER_FILES,
        None => 0,
    };
    // Inbound streams are capped; outbound ones are one per peer, which a
    // mesh has about as many of as inbound ones.
    let streams = 2 * settings.streams.max_inbound;
    let metrics = if settings.metrics.is_some() { metrics_http::MAX_CONNECTIONS } else { 0 };
    (MARGIN + storage + streams + metrics + MAX_POLITE_REFUSALS) as u64
}

/// Raises the soft descriptor limit toward what `settings` need and
/// lowers `settings.limits.max_clients` to what fits.
pub fn fit(settings: &mut Settings) -> Result<Fitted, NoRoomForClients> {
    let reserved = reserved(settings);
    let wanted = settings.limits.max_clients as u64 + reserved;
    let limit = raise_soft_limit(wanted);
    let room = limit.map_or(u64::MAX, |limit| limit.saturating_sub(reserved));
    if room == 0 {
        return Err(NoRoomForClients { limit: limit.unwrap_or(0), reserved });
    }
    let configured = settings.limits.max_clients;
    let max_clients = usize::try_from(room).unwrap_or(usize::MAX).min(configured);
    if max_clients < configured {
        tracing::warn!(
            max_clients,
            configured,
            descriptor_limit = limit,
            reserved,
            "max_clients lowered to {max_clients} to fit the file descriptor limit ({}), {reserved} of which are \
             kept for the data dir, gossip streams and the node itself; raise the limit (ulimit -n) to allow more",
            limit.unwrap_or(0)
        );
        settings.limits.max_clients = max_clients;
    }
    Ok(Fitted { limit, reserved, max_clients })
}

/// Raises the soft limit to `wanted`, or as near as the hard limit allows;
/// returns the soft limit in force (`None`: unlimited).
fn raise_soft_limit(wanted: u64) -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let current = current?;
    if current >= wanted {
        return Some(current);
    }
    let target = maximum.map_or(wanted, |hard| hard.min(wanted));
    if target <= current {
        return Some(current);
    }
    match setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum }) {
        Ok(()) => {
            tracing::info!(from = current, to = target, "raised the file descriptor limit");
            Some(target)
        }
        Err(error) => {
            tracing::warn!(%error, current, target, "cannot raise the file descriptor limit");
            Some(current)
        }
    }
}

/// Descriptors for what every node opens besides clients and the reserves
/// above: stdio, listeners, the gossip socket, the runtime's epoll and
/// wakers, signal pipes, log files. Redis keeps 32 as well.
const MARGIN: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_counts_storage_streams_and_metrics() {
        let mut s = Settings::default();
        let base = reserved(&s);
        assert_eq!(base, (MARGIN + 2 * s.streams.max_inbound + MAX_POLITE_REFUSALS) as u64);
        s.data_dir = Some("d".into());
        let with_storage = reserved(&s);
        assert_eq!(with_storage - base, (s.storage_open_files + storage::OTHER_FILES) as u64);
        s.metrics = Some(([127, 0, 0, 1], 0).into());
        assert_eq!(reserved(&s) - with_storage, metrics_http::MAX_CONNECTIONS as u64);
    }

    #[test]
    fn max_clients_is_kept_when_it_fits() {
        // The test process's limit is what it is: ask for little enough
        // to fit any sane one.
        let mut s = Settings::default();
        s.limits.max_clients = 8;
        let fitted = fit(&mut s).unwrap();
        assert_eq!((fitted.max_clients, s.limits.max_clients), (8, 8));
        assert!(fitted.limit.is_none_or(|limit| limit >= 8 + fitted.reserved));
    }
}
