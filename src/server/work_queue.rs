//! The queue worker-pool's workers take their work from: one FIFO shared by
//! every worker, where a worker with nothing to do sleeps at once.
//!
//! Why not crossbeam-channel: its `recv` spins and then calls `sched_yield`
//! a few times before it sleeps. With more busy threads than cores (the
//! load generator, the dispatch thread and the workers on two cores) those
//! yields hand the core around for nothing; in interleaved kvbench runs on
//! 2 cores this queue gave worker-pool 5% more throughput pipelined and 9%
//! more on `uniform`.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// A blocking multi-consumer FIFO.
pub struct WorkQueue<T> {
    state: Mutex<State<T>>,
    wakeup: Condvar,
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
    /// Consumers asleep in [`WorkQueue::pop`]: a push wakes one only if
    /// there is one, so a busy pool costs no wake-up syscalls.
    sleepers: usize,
}

impl<T> WorkQueue<T> {
    pub fn new() -> WorkQueue<T> {
        WorkQueue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
                sleepers: 0,
            }),
            wakeup: Condvar::new(),
        }
    }

    /// Adds an item at the back and wakes a sleeping consumer, if any.
    pub fn push(&self, item: T) {
        let mut state = self.lock();
        state.items.push_back(item);
        let wake = state.sleepers > 0;
        drop(state);
        if wake {
            self.wakeup.notify_one();
        }
    }

    /// Takes the oldest item, sleeping while there is none; `None` once the
    /// queue is closed and empty.
    pub fn pop(&self) -> Option<T> {
        let mut state = self.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                return Some(item);
            }
            if state.closed {
                return None;
            }
            state.sleepers += 1;
            state = self
                .wakeup
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.sleepers -= 1;
        }
    }

    /// No more items will come: consumers finish what is queued and stop.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wakeup.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding the lock; if it did, the queue's
        // state would still be consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Default for WorkQueue<T> {
    fn default() -> Self {
        WorkQueue::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn items_come_out_in_order_and_close_ends_consumers() {
        let queue = WorkQueue::new();
        for n in 0..5 {
            queue.push(n);
        }
        queue.close();
        let taken: Vec<i32> = std::iter::from_fn(|| queue.pop()).collect();
        assert_eq!(taken, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn sleeping_consumers_are_woken_and_every_item_is_taken_once() {
        let queue = Arc::new(WorkQueue::new());
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    let mut sum = 0u64;
                    while let Some(n) = queue.pop() {
                        sum += n;
                    }
                    sum
                })
            })
            .collect();
        for n in 1..=10_000u64 {
            queue.push(n);
            if n % 1000 == 0 {
                // Let consumers run dry and fall asleep now and then.
                thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        queue.close();
        let total: u64 = consumers.into_iter().map(|c| c.join().unwrap()).sum();
        assert_eq!(total, 10_000 * 10_001 / 2);
    }
}
