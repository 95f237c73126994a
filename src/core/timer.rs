//! The node's one deadline queue. foca requires every timer delivered in
//! deadline order from a single scheduler (`Timer: Ord` compares kinds only),
//! so ties are broken by insertion sequence.

use std::collections::BTreeMap;
use std::time::Duration;

/// Timers ordered by (deadline, sequence).
#[derive(Debug)]
pub struct TimerQueue<T> {
    queue: BTreeMap<(Duration, u64), T>,
    next_seq: u64,
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        TimerQueue { queue: BTreeMap::new(), next_seq: 0 }
    }
}

impl<T> TimerQueue<T> {
    /// Schedules `timer` at monotonic time `at`.
    pub fn schedule(&mut self, at: Duration, timer: T) {
        self.queue.insert((at, self.next_seq), timer);
        self.next_seq += 1;
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub fn pop_due(&mut self, now: Duration) -> Option<T> {
        let entry = self.queue.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        Some(entry.remove())
    }

    /// A mark for [`TimerQueue::pop_due_before`]: timers scheduled from
    /// now on are after it.
    pub fn mark(&self) -> u64 {
        self.next_seq
    }

    /// Like [`TimerQueue::pop_due`], but only timers scheduled before
    /// `mark`: a caller that fires due timers in a loop takes the ones its
    /// own firing scheduled at the next call, so one call does bounded work
    /// however timers reschedule themselves.
    pub fn pop_due_before(&mut self, now: Duration, mark: u64) -> Option<T> {
        let key = *self.queue.range(..=(now, u64::MAX)).map(|(key, _)| key).find(|(_, seq)| *seq < mark)?;
        self.queue.remove(&key)
    }

    /// Timers pending.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_deadlines_fire_in_insertion_order() {
        let mut q = TimerQueue::default();
        let t = Duration::from_millis(10);
        q.schedule(t, "b-first");
        q.schedule(Duration::from_millis(5), "a");
        q.schedule(t, "b-second");
        assert_eq!(q.next_deadline(), Some(Duration::from_millis(5)));
        assert_eq!(q.pop_due(Duration::from_millis(4)), None);
        assert_eq!(q.pop_due(t), Some("a"));
        assert_eq!(q.pop_due(t), Some("b-first"));
        assert_eq!(q.pop_due(t), Some("b-second"));
        assert!(q.is_empty());
    }
}
