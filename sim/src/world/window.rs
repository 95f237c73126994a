//! Lookahead windows: the host-local events at the head of the queue,
//! run host by host (on several threads when there is enough of them),
//! then their effects carried out in the one-thread order. See
//! [`super::step`] for why that is the same run.

use std::cmp::Reverse;
use std::sync::Arc;

use super::step::{HostBatch, LOOKAHEAD, Queued, StepView};
use super::worker::{Mailbox, Window};
use super::{Phase, Scheduled, World, WorldEvent};
use crate::host::Host;

/// `batch_of` for a host with no events in the current window.
pub(super) const NO_BATCH: usize = usize::MAX;

/// Fewest events in a window worth sharing out across threads. In a
/// 1,000-node cold join even two events are worth it (each is a big foca
/// update batch); in small meshes no window is, which is why the CLI runs
/// them on one thread.
const PARALLEL_MIN_EVENTS: usize = 2;

impl World {
    /// Runs every host-local event queued within [`LOOKAHEAD`] of the
    /// earliest one and before the next global event (a fault, a client
    /// operation, a check), which may change what hosts see.
    pub(super) fn run_window(&mut self, helpers: &[Mailbox]) {
        let Some(Reverse(first)) = self.queue.peek() else {
            return;
        };
        let limit = first.at + LOOKAHEAD;
        let mut window_end = limit;
        let mut used = 0;
        let mut events = 0;
        while let Some(Reverse(next)) = self.queue.peek() {
            if next.at >= limit {
                break;
            }
            if !matches!(next.event, WorldEvent::Local { .. }) {
                window_end = next.at;
                break;
            }
            let Some(Reverse(Scheduled { at, seq, event: WorldEvent::Local { host, event } })) = self.queue.pop()
            else {
                break;
            };
            let batch = match self.batch_of[host] {
                NO_BATCH => {
                    if used == self.batches.len() {
                        self.batches.push(HostBatch::default());
                    }
                    self.batches[used].reset(host);
                    self.batch_of[host] = used;
                    used += 1;
                    used - 1
                }
                b => b,
            };
            self.batches[batch].queued.push_back(Queued { at, seq, event });
            events += 1;
        }
        for b in &self.batches[..used] {
            self.batch_of[b.host] = NO_BATCH;
        }
        if used == 0 {
            return;
        }

        self.windows += 1;
        let shared = self.shared(window_end);
        if helpers.is_empty() || used < 2 || events < PARALLEL_MIN_EVENTS {
            for batch in &mut self.batches[..used] {
                batch.run(&mut self.hosts[batch.host], &shared);
            }
        } else {
            self.windows_shared += 1;
            self.share_out(used, shared, helpers);
        }
        self.commit_window(used);
    }

    /// Runs the window's batches on this thread and the helpers; the
    /// hosts are moved into the shared window and back.
    fn share_out(&mut self, used: usize, shared: StepView, helpers: &[Mailbox]) {
        // Busiest hosts first, so the last ones claimed are short.
        let mut slots: Vec<usize> = (0..used).collect();
        slots.sort_by_key(|&b| std::cmp::Reverse(self.batches[b].queued.len()));
        let items = slots
            .iter()
            .map(|&b| {
                let host = self.batches[b].host;
                let batch = std::mem::take(&mut self.batches[b]);
                (batch, std::mem::replace(&mut self.hosts[host], Host::vacant(host)))
            })
            .collect();
        let window = Arc::new(Window::new(items, shared));
        for mailbox in helpers {
            mailbox.post(Arc::clone(&window));
        }
        window.work();
        for mailbox in helpers {
            mailbox.wait();
        }
        let Ok(window) = Arc::try_unwrap(window) else {
            unreachable!("every helper lets go of the window before it reports done");
        };
        for (b, (batch, host)) in slots.into_iter().zip(window.into_items()) {
            self.hosts[batch.host] = host;
            self.batches[b] = batch;
        }
    }

    /// Carries out the window's effects by (time, sequence), as one thread
    /// would have met them.
    fn commit_window(&mut self, used: usize) {
        let mut order = std::mem::take(&mut self.commit_order);
        order.clear();
        for (b, batch) in self.batches[..used].iter_mut().enumerate() {
            batch.committed = 0;
            for (r, record) in batch.records.iter().enumerate() {
                if let Some(seq) = record.seq {
                    order.push(Reverse((record.at, seq, b, r)));
                }
            }
        }
        while let Some(Reverse((at, _, b, r))) = order.pop() {
            debug_assert_eq!(r, self.batches[b].committed, "a host's records are carried out in the order they ran");
            self.batches[b].committed = r + 1;
            if !self.count_event(at) {
                break;
            }
            let host = self.batches[b].host;
            for _ in 0..self.batches[b].records[r].effects {
                let Some(effect) = self.batches[b].effects.pop_front() else {
                    break;
                };
                if let Some((at, seq, fresh)) = self.apply_effect(host, effect) {
                    let record = self.batches[b].fresh.records[fresh];
                    order.push(Reverse((at, seq, b, record)));
                }
            }
            if self.phase == Phase::Done {
                break;
            }
        }
        self.commit_order = order;
    }
}
