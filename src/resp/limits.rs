//! The client limits as running connections read them. `CONFIG SET` may
//! change some of them while clients are served, so those are atomics:
//! a command reads one with a relaxed load, never a lock or an allocation,
//! since the per-request CPU cost is measured against redis-server. The
//! others are fixed at start, because something sized at start depends on
//! them (the gossip frame limit on the longest key, the parser's buffers
//! on the longest line).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use super::shared::ClientLimits;

/// [`ClientLimits`] with the run-time changeable ones behind atomics.
#[derive(Debug)]
pub struct LiveLimits {
    /// See [`ClientLimits::max_inline_bytes`]; fixed.
    pub max_inline_bytes: usize,
    /// See [`ClientLimits::max_args`]; fixed.
    pub max_args: usize,
    /// See [`ClientLimits::max_key_bytes`]; fixed.
    pub max_key_bytes: usize,
    /// The limits the node started with: the ceilings of the changeable
    /// ones, for which descriptors and frame sizes were reserved.
    at_start: ClientLimits,
    max_clients: AtomicUsize,
    max_bulk_bytes: AtomicUsize,
    /// Milliseconds; 0: no timeout.
    timeout_ms: AtomicU64,
    output_buffer_limit_bytes: AtomicUsize,
    maxmemory: AtomicU64,
    /// Held by one `CONFIG SET` at a time, so that two cannot interleave
    /// and leave a mix of both (never taken by a command's hot path).
    changing: parking_lot::Mutex<()>,
}

impl From<ClientLimits> for LiveLimits {
    fn from(limits: ClientLimits) -> Self {
        LiveLimits {
            max_inline_bytes: limits.max_inline_bytes,
            max_args: limits.max_args,
            max_key_bytes: limits.max_key_bytes,
            max_clients: AtomicUsize::new(limits.max_clients),
            max_bulk_bytes: AtomicUsize::new(limits.max_bulk_bytes),
            timeout_ms: AtomicU64::new(timeout_ms(limits.timeout)),
            output_buffer_limit_bytes: AtomicUsize::new(limits.output_buffer_limit_bytes),
            maxmemory: AtomicU64::new(limits.maxmemory),
            at_start: limits,
            changing: parking_lot::Mutex::new(()),
        }
    }
}

fn timeout_ms(timeout: Option<Duration>) -> u64 {
    timeout.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1))
}

impl LiveLimits {
    /// See [`ClientLimits::max_clients`].
    pub fn max_clients(&self) -> usize {
        self.max_clients.load(Ordering::Relaxed)
    }

    /// See [`ClientLimits::max_bulk_bytes`].
    pub fn max_bulk_bytes(&self) -> usize {
        self.max_bulk_bytes.load(Ordering::Relaxed)
    }

    /// See [`ClientLimits::timeout`].
    pub fn timeout(&self) -> Option<Duration> {
        let ms = self.timeout_ms.load(Ordering::Relaxed);
        (ms != 0).then(|| Duration::from_millis(ms))
    }

    /// See [`ClientLimits::output_buffer_limit_bytes`].
    pub fn output_buffer_limit_bytes(&self) -> usize {
        self.output_buffer_limit_bytes.load(Ordering::Relaxed)
    }

    /// See [`ClientLimits::maxmemory`].
    pub fn maxmemory(&self) -> u64 {
        self.maxmemory.load(Ordering::Relaxed)
    }

    /// The limits the node started with.
    pub fn at_start(&self) -> &ClientLimits {
        &self.at_start
    }

    /// The limits in force now, as one value.
    pub fn current(&self) -> ClientLimits {
        ClientLimits {
            max_clients: self.max_clients(),
            max_inline_bytes: self.max_inline_bytes,
            max_bulk_bytes: self.max_bulk_bytes(),
            max_args: self.max_args,
            max_key_bytes: self.max_key_bytes,
            timeout: self.timeout(),
            output_buffer_limit_bytes: self.output_buffer_limit_bytes(),
            maxmemory: self.maxmemory(),
        }
    }

    /// Lets `change` edit the limits in force and, if it succeeds, puts
    /// its changeable ones in force; if it fails, nothing changes. A
    /// connection may see some of one change's values before the others,
    /// as each is read on its own.
    pub fn change<E>(&self, change: impl FnOnce(&mut ClientLimits) -> Result<(), E>) -> Result<(), E> {
        let _one_at_a_time = self.changing.lock();
        let mut limits = self.current();
        change(&mut limits)?;
        self.max_clients.store(limits.max_clients, Ordering::Relaxed);
        self.max_bulk_bytes.store(limits.max_bulk_bytes, Ordering::Relaxed);
        self.timeout_ms.store(timeout_ms(limits.timeout), Ordering::Relaxed);
        self.output_buffer_limit_bytes.store(limits.output_buffer_limit_bytes, Ordering::Relaxed);
        self.maxmemory.store(limits.maxmemory, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_change_changes_nothing() {
        let limits = LiveLimits::from(ClientLimits::default());
        let before = format!("{:?}", limits.current());
        let failed: Result<(), &str> = limits.change(|l| {
            l.maxmemory = 5;
            Err("no")
        });
        assert_eq!((failed, format!("{:?}", limits.current())), (Err("no"), before));
        limits
            .change(|l| {
                (l.maxmemory, l.timeout, l.max_clients) = (5, Some(Duration::from_secs(3)), 7);
                Ok::<_, ()>(())
            })
            .unwrap();
        assert_eq!((limits.maxmemory(), limits.timeout(), limits.max_clients()), (5, Some(Duration::from_secs(3)), 7));
        assert_eq!(limits.at_start().max_clients, ClientLimits::default().max_clients, "the start values stay");
    }
}
