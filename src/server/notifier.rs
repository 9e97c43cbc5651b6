//! Waking an event loop from another thread, once per batch of messages.

use std::sync::atomic::{AtomicBool, Ordering};

/// A `mio::Waker` that skips the wake-up syscall when one is already pending
/// (as pelikan's waker does): senders push onto a channel and call
/// [`notify`](Notifier::notify); the loop calls [`clear`](Notifier::clear)
/// before draining the channel, so no message is missed.
pub struct Notifier {
    waker: mio::Waker,
    pending: AtomicBool,
}

impl Notifier {
    pub fn new(waker: mio::Waker) -> Notifier {
        Notifier {
            waker,
            pending: AtomicBool::new(false),
        }
    }

    pub fn notify(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            // A failed wake leaves the loop to its poll timeout; nothing is lost.
            let _ = self.waker.wake();
        }
    }

    pub fn clear(&self) {
        self.pending.store(false, Ordering::Release);
    }
}
