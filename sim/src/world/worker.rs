//! Helper threads for lookahead windows. A window's hosts are put in one
//! shared list; this thread and the helpers each take the next unclaimed
//! host until none is left, so a few expensive hosts (a seed answering a
//! thousand joins) do not leave one thread waiting on another's fixed
//! share. A window is tens of microseconds of work, so a helper spins
//! while windows come one after another and parks only when they stop (a
//! global stretch such as the final checks): a hand-off then costs a few
//! cache misses, not a futex wake.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;

use parking_lot::Mutex;

use super::step::{HostBatch, StepView};
use crate::host::Host;

/// One window's hosts, each with its batch, for whichever thread claims it.
pub(super) struct Window {
    items: Vec<Mutex<(HostBatch, Host)>>,
    next: AtomicUsize,
    shared: StepView,
}

impl Window {
    pub fn new(items: Vec<(HostBatch, Host)>, shared: StepView) -> Self {
        Window { items: items.into_iter().map(Mutex::new).collect(), next: AtomicUsize::new(0), shared }
    }

    /// Runs hosts until every one is claimed.
    pub fn work(&self) {
        while let Some(item) = self.items.get(self.next.fetch_add(1, Ordering::Relaxed)) {
            let (batch, host) = &mut *item.lock();
            batch.run(host, &self.shared);
        }
    }

    /// The hosts and batches, run, in the order they were given.
    pub fn into_items(self) -> impl Iterator<Item = (HostBatch, Host)> {
        self.items.into_iter().map(Mutex::into_inner)
    }
}

const IDLE: u8 = 0;
const POSTED: u8 = 1;
const RUNNING: u8 = 2;
const DONE: u8 = 3;
const QUIT: u8 = 4;

/// Spins before a helper parks: far longer than the gap between two
/// windows, far shorter than a global stretch.
const SPINS_BEFORE_PARKING: u32 = 1 << 16;

/// One helper's slot.
pub(super) struct Mailbox {
    state: AtomicU8,
    job: Mutex<Option<Arc<Window>>>,
    helper: OnceLock<Thread>,
}

impl Default for Mailbox {
    fn default() -> Self {
        Mailbox { state: AtomicU8::new(IDLE), job: Mutex::new(None), helper: OnceLock::new() }
    }
}

impl Mailbox {
    /// Offers `window` to the helper.
    pub fn post(&self, window: Arc<Window>) {
        *self.job.lock() = Some(window);
        self.state.store(POSTED, Ordering::Release);
        if let Some(helper) = self.helper.get() {
            helper.unpark();
        }
    }

    /// Waits until the helper is done with the posted window, or takes it
    /// back if the helper has not started (it may be parked: there is no
    /// point waking it for a window this thread has already finished).
    /// Afterwards the helper holds no reference to the window.
    pub fn wait(&self) {
        if self.state.compare_exchange(POSTED, IDLE, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.job.lock().take();
            return;
        }
        let mut spins = 0u32;
        while self.state.load(Ordering::Acquire) != DONE {
            if spins < SPINS_BEFORE_PARKING {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        self.state.store(IDLE, Ordering::Release);
    }

    /// Tells the helper to return.
    pub fn quit(&self) {
        self.state.store(QUIT, Ordering::Release);
        if let Some(helper) = self.helper.get() {
            helper.unpark();
        }
    }

    /// The helper's loop: work on each posted window, until told to quit.
    pub fn serve(&self) {
        let _ = self.helper.set(std::thread::current());
        loop {
            let mut spins = 0u32;
            loop {
                match self.state.load(Ordering::Acquire) {
                    POSTED => {
                        if self.state.compare_exchange(POSTED, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                            break;
                        }
                    }
                    QUIT => return,
                    _ if spins < SPINS_BEFORE_PARKING => {
                        spins += 1;
                        std::hint::spin_loop();
                    }
                    // A post between the load and the park leaves the
                    // unpark token set, so the park returns at once.
                    _ => std::thread::park(),
                }
            }
            let window = self.job.lock().take();
            if let Some(window) = window {
                window.work();
            }
            self.state.store(DONE, Ordering::Release);
        }
    }
}
