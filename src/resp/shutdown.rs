//! The stop signal each connection task listens for (mini-redis's
//! `Shutdown`): the listener drops the broadcast sender, and every
//! connection finishes its current batch and closes.

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::TryRecvError;

/// One connection's view of the node-wide stop signal.
#[derive(Debug)]
pub(crate) struct Shutdown {
    fired: bool,
    signal: broadcast::Receiver<()>,
}

impl Shutdown {
    /// Listens on `signal`; a message or the sender dropping means stop.
    pub(crate) fn new(signal: broadcast::Receiver<()>) -> Self {
        Shutdown { fired: false, signal }
    }

    /// Whether the signal has come, without waiting.
    pub(crate) fn fired(&mut self) -> bool {
        if !self.fired && !matches!(self.signal.try_recv(), Err(TryRecvError::Empty)) {
            self.fired = true;
        }
        self.fired
    }

    /// Waits for the signal; at once if it has come. Cancel-safe.
    pub(crate) async fn wait(&mut self) {
        if !self.fired {
            // Any outcome — a message, the sender gone, a lag — means stop.
            let _ = self.signal.recv().await;
            self.fired = true;
        }
    }
}
