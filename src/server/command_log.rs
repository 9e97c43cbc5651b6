//! `-vv`: each client's commands and replies, in memcached's shape:
//! `<FD get foo` for a command line, `>FD sending key foo` and `>FD END`
//! for its reply, `<FD new client connection` and `<FD connection
//! closed.` around them (FD: the connection's file descriptor).
//!
//! A connection decides once, when it opens, whether it logs
//! ([`enabled`]); when it does not, serving a request costs one branch.

use std::os::fd::RawFd;

/// Whether commands and replies are logged (trace level, `-vv`).
pub fn enabled() -> bool {
    tracing::enabled!(tracing::Level::TRACE)
}

/// A connection opened.
pub fn opened(fd: RawFd) {
    tracing::trace!("<{fd} new client connection");
}

/// A connection closed.
pub fn closed(fd: RawFd) {
    tracing::trace!("<{fd} connection closed.");
}

/// One request and its reply: the command line (without a data block),
/// then each reply line, a value as `sending key KEY` without its data,
/// `stats` lines left out (as memcached does). A `noreply` request has no
/// reply line.
pub fn exchange(fd: RawFd, input: &[u8], reply: &[u8]) {
    let line = first_line(input);
    tracing::trace!("<{fd} {}", String::from_utf8_lossy(line));
    for line in reply_lines(reply) {
        match line.strip_prefix(b"VALUE ") {
            Some(rest) => {
                let key = rest.split(|&b| b == b' ').next().unwrap_or_default();
                tracing::trace!(">{fd} sending key {}", String::from_utf8_lossy(key));
            }
            None if line.starts_with(b"STAT ") => {}
            None => tracing::trace!(">{fd} {}", String::from_utf8_lossy(line)),
        }
    }
}

/// The bytes before the first line end (`\r\n` or `\n`).
fn first_line(input: &[u8]) -> &[u8] {
    let line = match memchr::memchr(b'\n', input) {
        Some(end) => &input[..end],
        None => input,
    };
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The lines of a reply, the data block after each `VALUE` line skipped.
fn reply_lines(mut reply: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    while !reply.is_empty() {
        let line = first_line(reply);
        let mut next = (line.len() + 2).min(reply.len());
        if line.starts_with(b"VALUE ") {
            let data = line
                .split(|&b| b == b' ')
                .nth(3)
                .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok())
                .unwrap_or(0);
            next = (next + data + 2).min(reply.len());
        }
        lines.push(line);
        reply = &reply[next..];
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_without_data() {
        assert_eq!(first_line(b"set foo 0 0 3\r\nbar\r\n"), b"set foo 0 0 3");
        assert_eq!(first_line(b"get foo\n"), b"get foo");
    }

    #[test]
    fn reply_lines_skip_values() {
        let reply = b"VALUE foo 0 5\r\nEND\r\n\r\nVALUE k 1 1 7\r\nx\r\nEND\r\n";
        let lines: Vec<&[u8]> = reply_lines(reply);
        assert_eq!(lines, [&b"VALUE foo 0 5"[..], b"VALUE k 1 1 7", b"END"]);
        assert_eq!(reply_lines(b"STORED\r\n"), [b"STORED"]);
        assert!(reply_lines(b"").is_empty());
    }
}
