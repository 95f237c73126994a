//! The node-wide gate that makes EXEC atomic on this node: every other
//! command passes it shared, EXEC alone.
//!
//! Nothing blocks a thread on it. A command that finds it closed is asked
//! back to its connection, which waits for the gate asynchronously and runs
//! the command again ([`crate::resp::cmd`]'s `Question::Gate` and
//! `Question::Exec`): a blocking lock here would take a client worker — and
//! with it the node's driver, which runs on those workers — for as long as
//! an EXEC runs, or one thread per waiting client if each wait went off the
//! workers. It is fair both ways: an EXEC waiting for the gate closes it to
//! newcomers, so a stream of short commands cannot hold a transaction off
//! for ever, and the commands that waited while an EXEC ran pass before the
//! next EXEC, so a client sending EXECs back to back cannot hold the others
//! off either.

use parking_lot::{Mutex, MutexGuard};
use tokio::sync::Notify;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct TransactionGate {
    state: Mutex<State>,
    /// Where waiters wait for the gate to change.
    changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Commands passing shared.
    shared: usize,
    /// An EXEC holds the gate.
    exclusive: bool,
    /// EXECs waiting in [`TransactionGate::exclusive`].
    execs_waiting: usize,
    /// Commands waiting in [`TransactionGate::shared`].
    shared_waiting: usize,
    /// Commands that may still pass shared before the next EXEC: those
    /// that waited while the last EXEC ran get their turn, as every client
    /// of a Redis server gets its turn between two EXECs.
    turn: usize,
}

/// Passing the gate: shared, or alone if it came from
/// [`TransactionGate::try_exclusive`] or [`TransactionGate::exclusive`].
#[must_use]
#[derive(Debug)]
pub struct Pass<'a> {
    gate: &'a TransactionGate,
    exclusive: bool,
}

impl TransactionGate {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Passes shared, unless an EXEC holds the gate, or waits for it and
    /// the commands that waited for the last one have had their turn.
    pub fn try_shared(&self) -> Option<Pass<'_>> {
        self.pass_shared(false)
    }

    /// [`TransactionGate::try_shared`]; a command that `waited` uses up one
    /// of the turns.
    fn pass_shared(&self, waited: bool) -> Option<Pass<'_>> {
        let mut state = self.lock();
        if state.exclusive || (state.execs_waiting > 0 && state.turn == 0) {
            return None;
        }
        state.shared += 1;
        if waited {
            state.turn = state.turn.saturating_sub(1);
        }
        Some(Pass { gate: self, exclusive: false })
    }

    /// Passes shared once [`TransactionGate::try_shared`] would.
    pub async fn shared(&self) -> Pass<'_> {
        self.lock().shared_waiting += 1;
        let _waiting = Waiting { gate: self, exec: false };
        self.pass_when(|| self.pass_shared(true)).await
    }

    /// Passes alone, if nothing holds the gate and no command waits for it.
    pub fn try_exclusive(&self) -> Option<Pass<'_>> {
        let mut state = self.lock();
        if state.shared > 0 || state.exclusive || state.turn > 0 || state.shared_waiting > 0 {
            return None;
        }
        state.exclusive = true;
        Some(Pass { gate: self, exclusive: true })
    }

    /// Passes alone once the commands holding the gate, and those whose
    /// turn it is, are done; from the call on, newcomers wait for this EXEC.
    pub async fn exclusive(&self) -> Pass<'_> {
        self.lock().execs_waiting += 1;
        let _waiting = Waiting { gate: self, exec: true };
        self.pass_when(|| {
            let mut state = self.lock();
            let free = state.shared == 0 && !state.exclusive && state.turn == 0;
            free.then(|| {
                state.exclusive = true;
                Pass { gate: self, exclusive: true }
            })
        })
        .await
    }

    /// Waits for a change of the gate until `pass` gives a pass.
    async fn pass_when<'a>(&'a self, mut pass: impl FnMut() -> Option<Pass<'a>>) -> Pass<'a> {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the check, so a release between the check
            // and the wait is not missed.
            changed.as_mut().enable();
            if let Some(pass) = pass() {
                return pass;
            }
            changed.await;
        }
    }
}

/// A wait in [`TransactionGate::shared`] or [`TransactionGate::exclusive`],
/// counted out however it ends (a dropped future included).
struct Waiting<'a> {
    gate: &'a TransactionGate,
    exec: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = self.gate.lock();
        if self.exec {
            state.execs_waiting -= 1;
        } else {
            state.shared_waiting -= 1;
            // A command given up while it had a turn gives the turn up.
            state.turn = state.turn.min(state.shared_waiting);
        }
        drop(state);
        self.gate.changed.notify_waiters();
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut state = self.gate.lock();
        if self.exclusive {
            state.exclusive = false;
            state.turn = state.shared_waiting;
        } else {
            state.shared -= 1;
            if state.shared > 0 || state.execs_waiting == 0 {
                return;
            }
        }
        drop(state);
        // The EXEC's end lets the waiting commands in; the last command
        // out lets a waiting EXEC in.
        self.gate.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn shared_passes_together_and_exec_passes_alone() {
        let gate = TransactionGate::default();
        let a = gate.try_shared().expect("open");
        let b = gate.try_shared().expect("shared passes together");
        assert!(gate.try_exclusive().is_none(), "not while commands pass");
        drop((a, b));
        let exec = gate.try_exclusive().expect("alone once they are done");
        assert!(gate.try_shared().is_none() && gate.try_exclusive().is_none(), "closed while EXEC runs");
        drop(exec);
        assert!(gate.try_shared().is_some());
    }

    #[test]
    fn a_waiting_exec_closes_the_gate_to_newcomers_and_gets_its_turn() {
        let gate = TransactionGate::default();
        let running = gate.try_shared().expect("open");
        let mut exec = pin!(gate.exclusive());
        assert!(poll_once(exec.as_mut()).is_pending(), "waits for the command running");
        assert!(gate.try_shared().is_none(), "newcomers wait behind the EXEC");
        let mut newcomer = pin!(gate.shared());
        assert!(poll_once(newcomer.as_mut()).is_pending());
        drop(running);
        let Poll::Ready(pass) = poll_once(exec.as_mut()) else { panic!("the EXEC's turn") };
        assert!(poll_once(newcomer.as_mut()).is_pending(), "still closed while it runs");
        drop(pass);
        assert!(poll_once(newcomer.as_mut()).is_ready(), "open again after it");
    }

    #[test]
    fn commands_that_waited_for_an_exec_pass_before_the_next_one() {
        let gate = TransactionGate::default();
        let first = gate.try_exclusive().expect("open");
        let mut waiting = pin!(gate.shared());
        assert!(poll_once(waiting.as_mut()).is_pending());
        drop(first);
        assert!(gate.try_exclusive().is_none(), "a command that waited has its turn first");
        let mut next = pin!(gate.exclusive());
        assert!(poll_once(next.as_mut()).is_pending());
        let Poll::Ready(pass) = poll_once(waiting.as_mut()) else { panic!("its turn") };
        assert!(gate.try_shared().is_none(), "newcomers wait behind the next EXEC");
        assert!(poll_once(next.as_mut()).is_pending(), "the next EXEC waits for it to finish");
        drop(pass);
        assert!(poll_once(next.as_mut()).is_ready());
    }

    #[test]
    fn an_exec_that_stops_waiting_opens_the_gate_again() {
        let gate = TransactionGate::default();
        let running = gate.try_shared().expect("open");
        {
            let mut exec = pin!(gate.exclusive());
            assert!(poll_once(exec.as_mut()).is_pending());
            assert!(gate.try_shared().is_none());
        }
        assert!(gate.try_shared().is_some(), "the abandoned wait no longer closes the gate");
        drop(running);
        assert!(gate.try_exclusive().is_some());
    }
}
