//! The only real clock in rumor. Everything else takes time as an argument.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Monotonic time for timers and wall time for versions and expiry.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose monotonic reading starts at zero now.
    #[expect(clippy::disallowed_methods, reason = "the one real clock")]
    pub fn start() -> Self {
        Clock { start: Instant::now() }
    }

    /// Monotonic time since [`Clock::start`].
    pub fn mono(&self) -> Duration {
        self.start.elapsed()
    }

    /// Wall-clock milliseconds since the Unix epoch.
    #[expect(clippy::disallowed_methods, reason = "the one real clock")]
    pub fn wall_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

impl Clock {
    /// The real instant of monotonic reading `mono`, for sleeping until a
    /// core deadline.
    pub fn instant_at(&self, mono: Duration) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.start + mono)
    }

    /// Both readings, as the core takes them.
    pub fn now(&self) -> crate::core::io::Now {
        crate::core::io::Now { mono: self.mono(), wall_ms: self.wall_ms() }
    }
}
