//! What every polling thread shares (event loops, worker-pool's dispatch
//! thread, work-stealing's readers, the acceptor): the tokens and timeouts
//! of its poll, how it is wired and waited on, and how a round ends.

use std::cell::Cell;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::listener::Listeners;
use super::notifier::Notifier;
use super::shutdown::Shutdown;
use crate::engine::stats::ThreadStats;

/// The token of a poll's waker ([`Notifier`]).
pub const WAKER: Token = Token(usize::MAX);
/// The token of the listening sockets, in the poll of the thread that accepts.
pub const LISTENER: Token = Token(usize::MAX - 1);

/// How long a loop sleeps at most, so a lost wake-up costs only this delay.
pub const POLL_TIMEOUT: Duration = Duration::from_millis(500);
/// How soon a loop retries accepting after an error such as EMFILE.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(10);
/// How long shutdown waits for replies to drain to slow clients.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

thread_local! {
    /// When this thread's last poll began and returned.
    static LAST_WAIT: Cell<Option<(Instant, Instant)>> = const { Cell::new(None) };
}

/// Waits up to `timeout` for the next round of events. `false` if the poll
/// failed (logged unless a signal interrupted it): poll again. `timed`
/// (with `--stamp-arrivals`): note when the wait began and ended, for
/// [`wakeup_after`].
pub fn wait_for_events(
    poll: &mut Poll,
    events: &mut Events,
    timeout: Duration,
    timed: bool,
) -> bool {
    let began = timed.then(Instant::now);
    let polled = poll.poll(events, Some(timeout));
    LAST_WAIT.set(began.map(|began| (began, Instant::now())));
    match polled {
        Ok(()) => true,
        Err(e) => {
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::error!(error = %e, "poll failed");
            }
            false
        }
    }
}

/// How long bytes that arrived at `arrived` waited for this thread to
/// wake up, if they came while it slept in its last poll.
pub fn wakeup_after(arrived: Instant) -> Option<Duration> {
    let (began, returned) = LAST_WAIT.get()?;
    (began < arrived && arrived <= returned).then(|| returned - arrived)
}

/// Ends a round of events on a polling thread (event loop or dispatch):
/// counts its busy time, then gives the core away if anything else waits
/// for it. A loop that always finds events never sleeps, so the scheduler
/// otherwise preempts it for whole time slices with its connections' work
/// pending. Measured on 2 cores shared with the load generator (kvbench
/// uniform): multi-reader p99 7.8 ms -> 0.45 ms at equal throughput. An
/// idle core makes it one cheap syscall per round, not per request.
/// (worker-pool's dispatch thread without it: about 5% more throughput,
/// 50% more p99.)
pub fn end_round(stats: &ThreadStats, started: Instant) {
    stats.busy_us.add(started.elapsed().as_micros() as u64);
    std::thread::yield_now();
}

/// A poller with the listeners (if the thread accepts) and a waker
/// registered, the waker also woken on shutdown: how every pattern's
/// polling thread starts.
pub fn wire_poll(
    listeners: Option<&mut Listeners>,
    shutdown: &Shutdown,
) -> io::Result<(Poll, Arc<Notifier>)> {
    let poll = Poll::new()?;
    for listener in listeners.into_iter().flat_map(|l| l.0.iter_mut()) {
        poll.registry()
            .register(&mut listener.socket, LISTENER, Interest::READABLE)?;
    }
    let notifier = Arc::new(Notifier::new(mio::Waker::new(poll.registry(), WAKER)?));
    shutdown.watch(Arc::clone(&notifier));
    Ok((poll, notifier))
}
