//! kvserve as a process others start: the open-file limit it raises, the
//! line it logs once it listens, the reading of that line back from its
//! stderr, and how it (and kvbench) report the error they end with.
//! kvbench and the tests start kvserve with `--port 0` and learn its port
//! from that line, so its format has one owner: this file.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::config::Pattern;

/// The words in front of the address in the listening line.
const LISTENING_ON: &str = "listening on ";

/// Raises this process's soft open-file limit to its hard limit, so that
/// thousands of connections fit (as memcached does for `-c`): the server's
/// own, kvbench's client sockets, and what the processes they start inherit.
pub fn raise_fd_limit() -> io::Result<()> {
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// How kvserve and kvbench end: 0, or 1 after printing the error with
/// its causes on one line (`Error: cannot listen on ADDR: Address already
/// in use`). No stack trace, even under `RUST_BACKTRACE=1`: what ends them
/// is the user's setup (a port in use, no server to load), not a bug.
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs `kvserve listening on ADDR pattern=P threads=N`: the server is
/// ready, and this is its address.
pub fn announce(addr: SocketAddr, pattern: Pattern, threads: usize) {
    tracing::info!(
        "kvserve {LISTENING_ON}{addr} pattern={} threads={threads}",
        pattern.name()
    );
}

/// The address in the line [`announce`] logs (with whatever the log
/// format puts in front of it); `None` for any other line.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let at = line.find(LISTENING_ON)? + LISTENING_ON.len();
    line[at..].split_whitespace().next()?.parse().ok()
}

/// A child server's stderr, read to its end on a thread of its own (so the
/// child never blocks on a full pipe): its last lines, for error messages,
/// and the address of its listening line, for the parent to connect to.
pub struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    /// In a mutex so that the tail can be shared with other threads.
    listening: Mutex<Receiver<SocketAddr>>,
}

impl StderrTail {
    /// Starts reading `pipe`, keeping its last `keep` lines.
    pub fn spawn(pipe: impl Read + Send + 'static, keep: usize) -> StderrTail {
        let lines = Arc::new(Mutex::new(VecDeque::with_capacity(keep)));
        let (tx, listening) = mpsc::channel();
        let tail = Arc::clone(&lines);
        thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut raw = Vec::new();
            // Held to the end, so that a closed channel means all is read.
            let mut told = false;
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = String::from_utf8_lossy(&raw).trim_end().to_string();
                if let Some(addr) = listening_addr(&line).filter(|_| !told) {
                    told = true;
                    let _ = tx.send(addr);
                }
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                if tail.len() == keep {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        StderrTail {
            lines,
            listening: Mutex::new(listening),
        }
    }

    /// The address of the listening line, waiting for it at most
    /// `timeout`; `None` when it did not come by then, or stderr ended
    /// without it (the server exited). Asked again, it waits for the end.
    pub fn listening(&self, timeout: Duration) -> Option<SocketAddr> {
        let listening = self.listening.lock().unwrap_or_else(|e| e.into_inner());
        listening.recv_timeout(timeout).ok()
    }

    /// The lines kept, oldest first, joined by newlines.
    pub fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_of_the_listening_line() {
        let line = "2026-11-25T23:47:06.455570Z  INFO kvserve::server: kvserve listening on 127.0.0.1:38777 pattern=worker-pool threads=2";
        assert_eq!(
            listening_addr(line),
            Some(SocketAddr::from(([127, 0, 0, 1], 38777)))
        );
        assert_eq!(
            listening_addr("listening on [::1]:5"),
            Some("[::1]:5".parse().unwrap())
        );
        assert_eq!(listening_addr("listening soon"), None);
        assert_eq!(listening_addr("listening on port 5"), None);
    }

    #[test]
    fn a_tail_keeps_the_last_lines_and_catches_the_first_address() {
        let text = "one\nkvserve listening on 127.0.0.1:7 pattern=basic\nthree\r\nlistening on 127.0.0.1:8\nfive\n";
        let tail = StderrTail::spawn(io::Cursor::new(text), 3);
        assert_eq!(
            tail.listening(Duration::from_secs(5)),
            Some(SocketAddr::from(([127, 0, 0, 1], 7)))
        );
        // Once the channel is closed, every line has been read.
        assert_eq!(tail.listening(Duration::from_secs(5)), None);
        assert_eq!(tail.text(), "three\nlistening on 127.0.0.1:8\nfive");
    }

    #[test]
    fn no_listening_line_is_none_once_stderr_ends() {
        let tail = StderrTail::spawn(io::Cursor::new("Error: cannot listen\n"), 10);
        assert_eq!(tail.listening(Duration::from_secs(5)), None);
        assert_eq!(tail.text(), "Error: cannot listen");
    }
}
