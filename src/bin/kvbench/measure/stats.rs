//! Asking a server for `stats`, and what kvbench reads from the general
//! statistics: the pattern, its threads, its service-time model and the
//! work it actually spent.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use kvserve::engine::work::WorkModel;

use crate::net::stream::Stream;
use crate::net::Endpoint;

/// Sends `stats ARGS` (`args` empty for the general statistics) on a new
/// connection and returns the reply up to and including `END` (bounded by
/// `timeout`).
pub fn ask(server: &Endpoint, args: &str, timeout: Duration) -> Result<String> {
    ask_on(&mut connect(server, timeout)?, args, timeout)
}

/// A connection for [`ask_on`] (over TLS and authenticated when the
/// server wants it), with `timeout` on connecting, reads and writes.
pub fn connect(server: &Endpoint, timeout: Duration) -> Result<Stream> {
    Ok(server.connect(timeout)?)
}

/// [`ask`] on an open connection, which can ask again after it: the
/// reply is read to its last byte (`END` or an `ERROR` line).
pub fn ask_on(stream: &mut Stream, args: &str, timeout: Duration) -> Result<String> {
    let command = if args.is_empty() {
        "stats\r\n".to_string()
    } else {
        format!("stats {args}\r\n")
    };
    stream.write_all(command.as_bytes())?;
    stream.flush()?;
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        let error_line = buf.starts_with(b"ERROR") && buf.ends_with(b"\r\n");
        if buf.ends_with(b"END\r\n") || error_line || buf.len() > 1 << 20 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "`{}` timed out",
            command.trim_end()
        );
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => bail!("the server closed the connection"),
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `STAT name value` lines up to `END`, by name.
pub fn parse(text: &str) -> Result<HashMap<String, String>> {
    let mut stats = HashMap::new();
    for line in text.split("\r\n") {
        if line == "END" {
            return Ok(stats);
        }
        let mut words = line.splitn(3, ' ');
        let (Some("STAT"), Some(name), Some(value)) = (words.next(), words.next(), words.next())
        else {
            bail!("unexpected line in `stats`: {line:?}");
        };
        stats.insert(name.to_string(), value.to_string());
    }
    bail!("`stats` reply without END")
}

/// What a server says about itself that the queueing model needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerInfo {
    /// kvserve's `pattern`; `None` for another server (memcached).
    pub pattern: Option<String>,
    pub threads: Option<usize>,
    /// kvserve's `work_model`; `None` when it has none (or is not kvserve).
    pub work: Option<WorkModel>,
    /// `stats settings`' `reqs_per_event`: the most requests a thread
    /// serves from one connection per turn.
    pub reqs_per_event: Option<usize>,
}

/// Work actually done, from kvserve's `work_*` counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkDone {
    pub requests: u64,
    pub asked_us: u64,
    pub spent_us: u64,
}

impl WorkDone {
    /// Reads the counters; zeros for a server without them.
    pub fn of(stats: &HashMap<String, String>) -> WorkDone {
        let n = |name: &str| stats.get(name).and_then(|v| v.parse().ok()).unwrap_or(0);
        WorkDone {
            requests: n("work_requests"),
            asked_us: n("work_asked_us"),
            spent_us: n("work_spent_us"),
        }
    }

    /// What was done between `earlier` and `self`.
    pub fn since(self, earlier: WorkDone) -> WorkDone {
        WorkDone {
            requests: self.requests.saturating_sub(earlier.requests),
            asked_us: self.asked_us.saturating_sub(earlier.asked_us),
            spent_us: self.spent_us.saturating_sub(earlier.spent_us),
        }
    }

    /// The work of both.
    pub fn plus(self, other: WorkDone) -> WorkDone {
        WorkDone {
            requests: self.requests + other.requests,
            asked_us: self.asked_us + other.asked_us,
            spent_us: self.spent_us + other.spent_us,
        }
    }

    /// Mean time actually spent per request, if any was.
    pub fn mean_spent(&self) -> Option<Duration> {
        (self.requests > 0)
            .then(|| Duration::from_secs_f64(self.spent_us as f64 * 1e-6 / self.requests as f64))
    }
}

/// Reads `stats` and `stats settings`.
pub fn server_info(server: &Endpoint, timeout: Duration) -> Result<ServerInfo> {
    let mut stream = connect(server, timeout)?;
    let general = parse(&ask_on(&mut stream, "", timeout)?)?;
    let settings = parse(&ask_on(&mut stream, "settings", timeout)?)?;
    let work = match general.get("work_model").map(String::as_str) {
        None | Some("none") => None,
        Some(text) => Some(
            text.parse()
                .map_err(|e: String| anyhow::anyhow!(e))
                .with_context(|| format!("the server's work_model {text:?}"))?,
        ),
    };
    Ok(ServerInfo {
        pattern: general.get("pattern").cloned(),
        threads: general.get("threads").and_then(|v| v.parse().ok()),
        work,
        reqs_per_event: settings.get("reqs_per_event").and_then(|v| v.parse().ok()),
    })
}

/// Reads the work counters from `stats`.
pub fn work_done(server: &Endpoint, timeout: Duration) -> Result<WorkDone> {
    Ok(WorkDone::of(&parse(&ask(server, "", timeout)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn general_stats_parse_and_work_deltas() {
        let before = parse("STAT pid 7\r\nSTAT work_requests 10\r\nSTAT work_asked_us 1000\r\nSTAT work_spent_us 1100\r\nEND\r\n").unwrap();
        let after = parse("STAT work_requests 30\r\nSTAT work_asked_us 3000\r\nSTAT work_spent_us 3500\r\nSTAT version 1.6.18 x\r\nEND\r\n").unwrap();
        assert_eq!(after["version"], "1.6.18 x");
        let done = WorkDone::of(&after).since(WorkDone::of(&before));
        assert_eq!(
            done,
            WorkDone {
                requests: 20,
                asked_us: 2000,
                spent_us: 2400
            }
        );
        assert_eq!(done.mean_spent(), Some(Duration::from_micros(120)));
        assert_eq!(WorkDone::default().mean_spent(), None);
        assert!(parse("STAT a 1\r\n").is_err());
        assert!(parse("ERROR\r\n").is_err());
    }
}
