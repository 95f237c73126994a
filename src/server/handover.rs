//! The hand-over of local writes from client connections to the driver.
//!
//! A connection queues the writes of each batch it ran; the driver takes
//! them in bulk. Only the first batch into an empty queue wakes it, and the
//! driver yields once before it takes (it is a task on the client runtime,
//! so tokio runs it after the tasks already ready — the other connections
//! with commands read): when clients do not pipeline, one wake-up and one
//! push then carry the writes of every connection of the round instead of
//! one connection's. A queue of `capacity` batches, or of `capacity_bytes`
//! bytes of keys and values, makes senders wait, which is the backpressure
//! that bounds its memory (a batch into an empty queue is always taken,
//! however large).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::server::control::Replicate;

/// The hand-over's two ends: cloned senders for connections, the one
/// receiver for the driver.
pub fn channel(capacity: usize, capacity_bytes: usize) -> (Sender, Receiver) {
    let queue = Arc::new(Queue {
        state: Mutex::new(State { batches: VecDeque::new(), bytes: 0, senders: 1, receiver_gone: false }),
        driver: Notify::new(),
        room: Notify::new(),
        capacity: capacity.max(1),
        capacity_bytes,
    });
    (Sender { queue: queue.clone() }, Receiver { queue })
}

#[derive(Debug)]
struct Queue {
    state: Mutex<State>,
    /// Where the driver waits for batches.
    driver: Notify,
    /// Where senders wait while the queue is full.
    room: Notify,
    /// Batches the queue holds at most.
    capacity: usize,
    /// Bytes of keys and values the queue holds at most, but for one batch.
    capacity_bytes: usize,
}

#[derive(Debug)]
struct State {
    batches: VecDeque<Replicate>,
    /// [`Replicate::bytes`] over `batches`.
    bytes: usize,
    /// Live [`Sender`]s: with none left and the queue empty,
    /// [`Receiver::recv`] ends.
    senders: usize,
    receiver_gone: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, so a poisoned one only
        // means a panic elsewhere: the state is still whole.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The driver is gone: nothing will disseminate the batch.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed(pub Replicate);

/// A connection's end.
#[derive(Debug)]
pub struct Sender {
    queue: Arc<Queue>,
}

impl Sender {
    /// Queues `batch` for the driver, waiting while the queue is full.
    pub async fn send(&self, batch: Replicate) -> Result<(), Closed> {
        let queue = &*self.queue;
        loop {
            let room = queue.room.notified();
            let mut room = std::pin::pin!(room);
            // Registered before the check, so a take between the check and
            // the wait is not missed.
            room.as_mut().enable();
            {
                let mut state = queue.lock();
                if state.receiver_gone {
                    return Err(Closed(batch));
                }
                let room_for_bytes = state.bytes == 0 || state.bytes + batch.bytes <= queue.capacity_bytes;
                if state.batches.len() < queue.capacity && room_for_bytes {
                    state.bytes += batch.bytes;
                    state.batches.push_back(batch);
                    let first = state.batches.len() == 1;
                    drop(state);
                    // A queue that held batches already has a wake-up
                    // on its way, or the driver at work on it.
                    if first {
                        queue.driver.notify_one();
                    }
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// Batches that may still be queued before senders wait.
    pub fn capacity(&self) -> usize {
        self.queue.capacity.saturating_sub(self.queue.lock().batches.len())
    }
}

impl Clone for Sender {
    fn clone(&self) -> Self {
        self.queue.lock().senders += 1;
        Sender { queue: self.queue.clone() }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let last = {
            let mut state = self.queue.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.queue.driver.notify_one();
        }
    }
}

/// The driver's end.
pub struct Receiver {
    queue: Arc<Queue>,
}

impl Receiver {
    /// Waits until a batch is queued into an empty queue (or the last
    /// sender is gone); the batches are then taken with [`Receiver::take`].
    /// May return with nothing queued.
    pub async fn ready(&self) {
        self.queue.driver.notified().await;
    }

    /// Takes queued batches, oldest first, until `writes_max` writes are
    /// out (at least one batch, if any is queued). If some are left, the
    /// next [`Receiver::ready`] returns at once.
    pub fn take(&self, writes_max: usize, mut each: impl FnMut(Replicate)) {
        let mut taken = Vec::new();
        let left = {
            let mut state = self.queue.lock();
            let mut writes = 0;
            while writes < writes_max.max(1)
                && let Some(batch) = state.batches.pop_front()
            {
                writes += batch.writes.len().max(1);
                state.bytes -= batch.bytes;
                taken.push(batch);
            }
            !state.batches.is_empty()
        };
        if !taken.is_empty() {
            self.queue.room.notify_waiters();
        }
        if left {
            self.queue.driver.notify_one();
        }
        taken.into_iter().for_each(&mut each);
    }

    /// The oldest queued batch, if any.
    pub fn try_recv(&self) -> Option<Replicate> {
        let batch = {
            let mut state = self.queue.lock();
            let batch = state.batches.pop_front()?;
            state.bytes -= batch.bytes;
            batch
        };
        self.queue.room.notify_waiters();
        Some(batch)
    }

    /// The next batch, waiting for one; `None` once every sender is gone
    /// and nothing is queued. For tests that stand in for the driver.
    pub async fn recv(&self) -> Option<Replicate> {
        loop {
            let ready = self.queue.driver.notified();
            let mut ready = std::pin::pin!(ready);
            ready.as_mut().enable();
            if let Some(batch) = self.try_recv() {
                return Some(batch);
            }
            if self.queue.lock().senders == 0 {
                return None;
            }
            ready.await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.queue.lock().receiver_gone = true;
        self.queue.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::core::entry::Entry;
    use crate::core::version::{NodeId, Timestamp, Version};

    const DEADLINE: Duration = Duration::from_secs(5);

    fn batch(key: &str) -> Replicate {
        let timestamp = Timestamp::from_physical_ms(1);
        let version = Version { timestamp, writer: NodeId::from_bytes([1; 16]) };
        let tombstone = Entry { value: None, version, expires_at_ms: None, deadline_set_at: timestamp };
        Replicate { writes: vec![(Bytes::from(key.to_owned()), tombstone)], flushed: None, bytes: key.len() }
    }

    /// Waits for a wake-up and takes what it finds.
    async fn one_wake(receiver: &Receiver) -> Vec<Bytes> {
        tokio::time::timeout(DEADLINE, receiver.ready()).await.expect("the driver is woken");
        let mut keys = Vec::new();
        receiver.take(usize::MAX, |b| keys.extend(b.writes.into_iter().map(|(k, _)| k)));
        keys
    }

    fn is_ready(receiver: &Receiver) -> bool {
        let ready = receiver.ready();
        let mut ready = std::pin::pin!(ready);
        let waker = std::task::Waker::noop();
        ready.as_mut().poll(&mut std::task::Context::from_waker(waker)).is_ready()
    }

    fn take_now(receiver: &Receiver) -> usize {
        let mut n = 0;
        receiver.take(usize::MAX, |b| n += b.writes.len());
        n
    }

    #[tokio::test]
    async fn only_a_batch_into_an_empty_queue_wakes_the_driver() {
        let (sender, receiver) = channel(64, usize::MAX);
        sender.send(batch("first")).await.unwrap();
        assert!(is_ready(&receiver), "the first batch wakes the driver");
        // Batches queued while the driver is awake (yielding before it
        // takes) add no wake-up: it takes them with the first.
        for i in 0..9 {
            sender.send(batch(&format!("k{i}"))).await.unwrap();
        }
        assert_eq!(take_now(&receiver), 10);
        assert!(!is_ready(&receiver), "one wake-up for the ten");
        sender.send(batch("next")).await.unwrap();
        assert_eq!(one_wake(&receiver).await, vec![Bytes::from("next")]);
    }

    #[tokio::test]
    async fn take_stops_at_the_write_limit_and_leaves_the_rest_ready() {
        let (sender, receiver) = channel(64, usize::MAX);
        for key in ["a", "b", "c", "d", "e"] {
            sender.send(batch(key)).await.unwrap();
        }
        assert!(is_ready(&receiver));
        let mut first = 0;
        receiver.take(2, |b| first += b.writes.len());
        assert_eq!(first, 2);
        assert!(is_ready(&receiver), "what is left is ready at once");
        assert_eq!(take_now(&receiver), 3);
    }

    #[tokio::test]
    async fn a_full_queue_makes_senders_wait_until_the_driver_takes() {
        let (sender, receiver) = channel(2, usize::MAX);
        sender.send(batch("a")).await.unwrap();
        sender.send(batch("b")).await.unwrap();
        assert_eq!(sender.capacity(), 0);
        let third = tokio::spawn(async move { sender.send(batch("c")).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!third.is_finished(), "the third batch waits for room");
        assert_eq!(take_now(&receiver), 2);
        tokio::time::timeout(DEADLINE, third).await.expect("room made").unwrap().unwrap();
        assert_eq!(one_wake(&receiver).await, vec![Bytes::from("c")]);
    }

    /// Bytes bound the queue as batches do; one batch larger than the
    /// whole budget still goes into an empty queue.
    #[tokio::test]
    async fn a_queue_past_its_bytes_makes_senders_wait_but_takes_one_large_batch() {
        let (sender, receiver) = channel(64, 10);
        sender.send(batch("way-past-ten-bytes")).await.unwrap();
        let sender = std::sync::Arc::new(sender);
        let next = sender.clone();
        let waiting = tokio::spawn(async move { next.send(batch("ab")).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "no room for 2 more bytes past 18");
        assert_eq!(take_now(&receiver), 1);
        tokio::time::timeout(DEADLINE, waiting).await.expect("room made").unwrap().unwrap();
        for key in ["cdef", "ghij"] {
            sender.send(batch(key)).await.unwrap();
        }
        let last = sender.clone();
        let waiting = tokio::spawn(async move { last.send(batch("k")).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "10 bytes queued: full");
        assert_eq!(receiver.try_recv().map(|b| b.bytes), Some(2));
        tokio::time::timeout(DEADLINE, waiting).await.expect("room made").unwrap().unwrap();
        assert_eq!(take_now(&receiver), 3);
    }

    #[tokio::test]
    async fn recv_ends_when_the_senders_are_gone_and_send_fails_without_a_driver() {
        let (sender, receiver) = channel(4, usize::MAX);
        let second = sender.clone();
        sender.send(batch("a")).await.unwrap();
        drop(sender);
        drop(second);
        assert_eq!(receiver.recv().await.map(|b| b.writes.len()), Some(1));
        assert_eq!(receiver.recv().await, None);

        let (sender, receiver) = channel(4, usize::MAX);
        drop(receiver);
        assert!(sender.send(batch("a")).await.is_err());
    }
}
