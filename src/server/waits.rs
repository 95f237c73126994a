//! Clients blocked in WAIT, held by the driver task: each is answered
//! once enough live peers have confirmed the local writes it waits for
//! (see `core::node::confirm`), at its timeout, or dropped when its client
//! is gone.

use std::time::Duration;

use tokio::sync::oneshot;

use crate::core::io::Now;
use crate::core::node::Node;

/// One blocked WAIT.
#[derive(Debug)]
struct Waiting {
    /// The local write batches it waits for (0: none).
    upto: u64,
    /// Live peers it wants.
    numpeers: usize,
    /// When it answers anyway (monotonic); `None`: never.
    deadline: Option<Duration>,
    answer: oneshot::Sender<usize>,
}

/// The WAITs the driver holds.
#[derive(Debug, Default)]
pub struct Waits {
    waiting: Vec<Waiting>,
    /// What the node was last asked to confirm.
    wanted: Option<(u64, Duration)>,
}

impl Waits {
    /// A client's WAIT for `numpeers` live peers to hold the local writes
    /// up to `upto`, for at most `timeout` (`None`: no limit). Answered at
    /// once if already satisfied.
    pub fn add(
        &mut self,
        node: &mut Node,
        upto: u64,
        numpeers: usize,
        timeout: Option<Duration>,
        answer: oneshot::Sender<usize>,
        now: Now,
    ) {
        let confirmed = node.confirmed_peers(upto);
        if confirmed >= numpeers {
            let _ = answer.send(confirmed);
            return;
        }
        self.waiting.push(Waiting { upto, numpeers, deadline: timeout.map(|t| now.mono + t), answer });
        self.settle(node, now);
    }

    /// Answers every WAIT that is satisfied or past its deadline, drops
    /// those whose client is gone, and tells the node what is still
    /// wanted. Called after every input the driver hands the node.
    pub fn settle(&mut self, node: &mut Node, now: Now) {
        if self.waiting.is_empty() && self.wanted.is_none() {
            return;
        }
        let mut still = Vec::with_capacity(self.waiting.len());
        for waiting in self.waiting.drain(..) {
            let confirmed = node.confirmed_peers(waiting.upto);
            if waiting.answer.is_closed() {
                continue;
            }
            if confirmed >= waiting.numpeers || waiting.deadline.is_some_and(|d| now.mono >= d) {
                let _ = waiting.answer.send(confirmed);
            } else {
                still.push(waiting);
            }
        }
        self.waiting = still;
        let wanted = self
            .waiting
            .iter()
            .map(|w| (w.upto, w.deadline.unwrap_or(Duration::MAX)))
            .reduce(|(upto_a, until_a), (upto_b, until_b)| (upto_a.max(upto_b), until_a.max(until_b)));
        if wanted != self.wanted {
            self.wanted = wanted;
            node.want_confirmation(wanted, now);
        }
    }

    /// The earliest deadline of a WAIT, for the driver's timer.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.waiting.iter().filter_map(|w| w.deadline).min()
    }
}
