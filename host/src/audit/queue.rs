//! The bounded queue between the callers that append audit entries and the
//! writer thread.
//!
//! The writer takes everything queued at once, and wakes every caller
//! blocked on a full queue with one signal. The standard bounded channel
//! it replaces woke one blocked caller per item taken: under a load that
//! outruns the writer, a context switch per audit entry, half of the
//! writer's time in 100-item batches (docs/PERFORMANCE.md).

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// A queue of `T` holding at most `capacity` items.
pub struct Queue<T> {
    state: Mutex<State<T>>,
    /// Signalled when items are taken from a full queue.
    space: Condvar,
    /// Signalled when an item arrives while the taker waits for one.
    arrived: Condvar,
    capacity: usize,
}

struct State<T> {
    items: Vec<T>,
    /// Callers waiting for space.
    blocked: usize,
    /// Whether the taker waits for an item.
    taker_waiting: bool,
    closed: bool,
}

/// The queue was closed: nothing takes items any more.
#[derive(Debug)]
pub struct Closed;

impl<T> Queue<T> {
    /// An empty queue for `capacity` items (at least one).
    pub fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                items: Vec::new(),
                blocked: 0,
                taker_waiting: false,
                closed: false,
            }),
            space: Condvar::new(),
            arrived: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `item`, waiting while the queue is full.
    pub fn push(&self, item: T) -> Result<(), Closed> {
        let mut state = self.lock();
        while state.items.len() >= self.capacity && !state.closed {
            state.blocked += 1;
            state = self
                .space
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.blocked -= 1;
        }
        self.enqueue(state, item)
    }

    /// Adds `item` at once, even to a full queue (for small markers that
    /// must not wait behind the items they follow).
    pub fn push_now(&self, item: T) -> Result<(), Closed> {
        self.enqueue(self.lock(), item)
    }

    fn enqueue(&self, mut state: MutexGuard<'_, State<T>>, item: T) -> Result<(), Closed> {
        if state.closed {
            return Err(Closed);
        }
        state.items.push(item);
        if state.taker_waiting {
            self.arrived.notify_one();
        }
        Ok(())
    }

    /// Moves every queued item to the end of `into`; returns how many.
    pub fn take_all(&self, into: &mut Vec<T>) -> usize {
        let mut state = self.lock();
        let taken = state.items.len();
        into.append(&mut state.items);
        if state.blocked > 0 {
            self.space.notify_all();
        }
        taken
    }

    /// Waits until an item is queued, then moves every queued item to
    /// `into`; `false` once the queue is closed and empty.
    pub fn wait_and_take(&self, into: &mut Vec<T>) -> bool {
        let mut state = self.lock();
        while state.items.is_empty() {
            if state.closed {
                return false;
            }
            state.taker_waiting = true;
            state = self
                .arrived
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.taker_waiting = false;
        }
        drop(state);
        self.take_all(into);
        true
    }

    /// Whether [`Queue::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Refuses further items and wakes everyone waiting; what is queued
    /// can still be taken.
    pub fn close(&self) {
        self.lock().closed = true;
        self.space.notify_all();
        self.arrived.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_full_queue_blocks_callers_until_the_taker_empties_it() {
        let queue = Arc::new(Queue::new(4));
        let pushed = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..3)
            .map(|caller| {
                let (queue, pushed) = (Arc::clone(&queue), Arc::clone(&pushed));
                std::thread::spawn(move || {
                    for i in 0..4 {
                        queue.push(caller * 10 + i).unwrap();
                        pushed.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(pushed.load(Ordering::SeqCst), 4, "the rest wait for space");

        let mut taken = Vec::new();
        while taken.len() < 12 {
            assert!(queue.wait_and_take(&mut taken));
        }
        for caller in callers {
            caller.join().unwrap();
        }
        taken.sort_unstable();
        let expected: Vec<usize> = (0..3)
            .flat_map(|c| (0..4).map(move |i| c * 10 + i))
            .collect();
        assert_eq!(taken, expected, "every item taken once");
    }

    #[test]
    fn closing_refuses_items_and_lets_the_taker_drain_and_stop() {
        let queue = Queue::new(8);
        queue.push(1).unwrap();
        queue.close();
        assert!(queue.push(2).is_err());
        let mut taken = Vec::new();
        assert!(queue.wait_and_take(&mut taken));
        assert_eq!(taken, [1]);
        assert!(!queue.wait_and_take(&mut taken));
    }

    #[test]
    fn closing_wakes_a_caller_blocked_on_a_full_queue() {
        let queue = Arc::new(Queue::new(1));
        queue.push(1).unwrap();
        let blocked = {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || queue.push(2))
        };
        std::thread::sleep(Duration::from_millis(50));
        queue.close();
        assert!(blocked.join().unwrap().is_err());
    }
}
