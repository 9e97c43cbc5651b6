//! Graceful shutdown on SIGINT or SIGTERM: every loop is told, stops
//! accepting, answers what it has already read, and returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::notifier::Notifier;

/// The shared "stop now" flag and the loops to wake when it is raised.
#[derive(Default)]
pub struct Shutdown {
    requested: AtomicBool,
    loops: Mutex<Vec<Arc<Notifier>>>,
}

impl Shutdown {
    /// Starts the thread that turns SIGINT and SIGTERM into [`trigger`](Self::trigger).
    pub fn on_signals(self: &Arc<Self>) -> anyhow::Result<()> {
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let shutdown = Arc::clone(self);
        thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                if let Some(signal) = signals.forever().next() {
                    // Stop first: nothing that logging might do can keep
                    // the server from it.
                    shutdown.trigger();
                    tracing::info!(signal, "shutting down");
                }
            })?;
        Ok(())
    }

    /// Registers a loop to be woken when shutdown is requested.
    pub fn watch(&self, notifier: Arc<Notifier>) {
        self.loops.lock().unwrap().push(notifier);
        if self.is_requested() {
            self.trigger();
        }
    }

    pub fn trigger(&self) {
        self.requested.store(true, Ordering::Release);
        for notifier in self.loops.lock().unwrap().iter() {
            notifier.notify();
        }
    }

    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }
}
