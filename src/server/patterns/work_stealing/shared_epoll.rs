//! Another thread's epoll, seen from outside: work-stealing's readers help
//! a reader that is stuck in a long request by reading its connections for
//! it. Two kernel features make that possible without a central poller:
//! any thread may `epoll_wait` on an epoll instance, and an epoll instance
//! can watch another one, which turns readable when the watched one has
//! events. The raw calls live here, so the pattern reads as what it does.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use mio::Token;

use crate::server::connection::Readiness;

/// The most events taken in one [`harvest`].
const HARVEST: usize = 64;

/// Makes `watcher`'s epoll report `token` once, the next time `watched`
/// has events (at once if it has some now). Fails with `ELOOP` when that
/// would close a circle of epolls watching each other, and `EEXIST` when
/// `watched` is already in `watcher`.
pub fn watch_once(watcher: &OwnedFd, watched: &OwnedFd, token: Token) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLONESHOT) as u32,
        u64: token.0 as u64,
    };
    // SAFETY: both are open epoll descriptors owned by the caller, and the
    // kernel only reads `event`.
    let rc = unsafe {
        libc::epoll_ctl(
            watcher.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            watched.as_raw_fd(),
            &mut event,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes `watched` from `watcher`, after its one report.
pub fn unwatch(watcher: &OwnedFd, watched: &OwnedFd) {
    // SAFETY: as in `watch_once`; DEL ignores the event argument.
    unsafe {
        libc::epoll_ctl(
            watcher.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            watched.as_raw_fd(),
            std::ptr::null_mut(),
        );
    }
}

/// Takes the events waiting in `epoll` now, without sleeping: what its
/// owner's own poll would have returned. mio registers sockets
/// edge-triggered, so an event taken here is not seen by the owner; the
/// caller must act on it (and hold whatever the owner holds while it does).
pub fn harvest(epoll: &OwnedFd) -> Vec<(Token, Readiness)> {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; HARVEST];
    // SAFETY: the kernel writes at most HARVEST entries into `events`.
    let n = unsafe {
        libc::epoll_wait(
            epoll.as_raw_fd(),
            events.as_mut_ptr(),
            HARVEST as libc::c_int,
            0,
        )
    };
    let n = usize::try_from(n).unwrap_or(0);
    events[..n]
        .iter()
        .map(|e| (Token(e.u64 as usize), Readiness::of_epoll(e.events)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Waker};
    use std::os::fd::AsFd;
    use std::time::Duration;

    fn dup(poll: &Poll) -> OwnedFd {
        poll.registry().as_fd().try_clone_to_owned().unwrap()
    }

    #[test]
    fn a_watcher_is_told_once_and_the_events_are_taken_from_outside() {
        let mut watcher = Poll::new().unwrap();
        let watched = Poll::new().unwrap();
        let waker = Waker::new(watched.registry(), Token(7)).unwrap();
        let (watcher_fd, watched_fd) = (dup(&watcher), dup(&watched));
        watch_once(&watcher_fd, &watched_fd, Token(1 << 40)).unwrap();
        let mut events = Events::with_capacity(8);
        watcher
            .poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        assert!(events.is_empty(), "nothing happened yet");

        waker.wake().unwrap();
        watcher
            .poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        let tokens: Vec<Token> = events.iter().map(|e| e.token()).collect();
        assert_eq!(tokens, [Token(1 << 40)]);
        let taken = harvest(&watched_fd);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].0, Token(7));
        assert!(harvest(&watched_fd).is_empty(), "taken once");

        waker.wake().unwrap();
        watcher
            .poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        assert!(events.is_empty(), "one report per watch");
        unwatch(&watcher_fd, &watched_fd);
        watch_once(&watcher_fd, &watched_fd, Token(3)).unwrap();
        watcher
            .poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(events.iter().count(), 1, "ready when watched: at once");
    }

    #[test]
    fn epolls_cannot_watch_each_other() {
        let (a, b) = (Poll::new().unwrap(), Poll::new().unwrap());
        let (a, b) = (dup(&a), dup(&b));
        watch_once(&a, &b, Token(1)).unwrap();
        let err = watch_once(&b, &a, Token(2)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        let err = watch_once(&a, &b, Token(1)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
    }
}
