//! Readings of a running server for `kvbench top`: its `stats`, its
//! `stats threads` and stage times when it has them (kvserve; memcached
//! does not), and the
//! moment they were read, so that two readings give rates.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::anatomy::{read_buckets_on, StageBuckets};
use super::stats;
use super::threads::{stats_threads_on, ThreadStat};
use crate::net::stream::Stream;
use crate::net::Endpoint;

/// The commands a server counts in `stats`, as memcached counts them (a
/// multi-get counts one `cmd_get` per key; `cas` is a `cmd_set`). Their sum
/// is the ops/s of `kvbench top`'s header, for kvserve and memcached alike.
const COMMANDS: [&str; 10] = [
    "cmd_get",
    "cmd_set",
    "cmd_touch",
    "cmd_flush",
    "delete_hits",
    "delete_misses",
    "incr_hits",
    "incr_misses",
    "decr_hits",
    "decr_misses",
];

/// A server's statistics at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// When the reading was complete (after `stats threads`).
    pub at: Instant,
    /// `stats`, by name.
    pub stats: HashMap<String, String>,
    /// `stats threads`; `None` from a server without it.
    pub threads: Option<Vec<ThreadStat>>,
    /// `stats latency buckets` (kvserve); `None` from a server without it.
    pub stages: Option<StageBuckets>,
}

impl Snapshot {
    /// A counter or gauge from `stats`; 0 when absent or not a number.
    pub fn number(&self, name: &str) -> u64 {
        self.stats
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// A `stats` value as text, if the server reports it.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.stats.get(name).map(String::as_str)
    }

    /// Commands executed since the server started (see [`COMMANDS`]).
    pub fn ops(&self) -> u64 {
        COMMANDS.iter().map(|name| self.number(name)).sum()
    }

    /// True when `later` comes from another run of the server (it was
    /// restarted in between): its counters started again from zero.
    pub fn restarted_by(&self, later: &Snapshot) -> bool {
        self.text("pid") != later.text("pid") || later.number("uptime") < self.number("uptime")
    }
}

/// Takes readings of one server over one connection, kept open between
/// them so that a refresh costs the server two requests and no accept;
/// after an error the next reading connects again.
pub struct Reader {
    server: Endpoint,
    timeout: Duration,
    stream: Option<Stream>,
}

impl Reader {
    /// A reader of `server` whose every step is bounded by `timeout`.
    pub fn new(server: Endpoint, timeout: Duration) -> Reader {
        Reader {
            server,
            timeout,
            stream: None,
        }
    }

    /// Reads `stats`, then `stats threads` and `stats latency buckets`.
    pub fn take(&mut self) -> Result<Snapshot> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => self
                .stream
                .insert(stats::connect(&self.server, self.timeout)?),
        };
        let read = |stream: &mut Stream| -> Result<Snapshot> {
            let stats = stats::parse(&stats::ask_on(stream, "", self.timeout)?)?;
            let threads = stats_threads_on(stream, self.timeout)?;
            let stages = match threads {
                Some(_) => read_buckets_on(stream, self.timeout)?,
                None => None,
            };
            Ok(Snapshot {
                at: Instant::now(),
                stats,
                threads,
                stages,
            })
        };
        let reading = read(stream);
        if reading.is_err() {
            self.stream = None;
        }
        reading
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(text: &str) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            stats: stats::parse(text).unwrap(),
            threads: None,
            stages: None,
        }
    }

    #[test]
    fn ops_add_up_the_commands_and_restarts_are_seen() {
        let a = snapshot(
            "STAT pid 7\r\nSTAT uptime 10\r\nSTAT cmd_get 5\r\nSTAT cmd_set 3\r\n\
             STAT get_hits 4\r\nSTAT delete_hits 1\r\nSTAT incr_misses 2\r\nSTAT version x\r\nEND\r\n",
        );
        assert_eq!(a.ops(), 11);
        assert_eq!(a.number("uptime"), 10);
        assert_eq!(a.number("version"), 0);
        assert_eq!(a.text("version"), Some("x"));
        let same = snapshot("STAT pid 7\r\nSTAT uptime 12\r\nEND\r\n");
        assert!(!a.restarted_by(&same));
        assert!(a.restarted_by(&snapshot("STAT pid 8\r\nSTAT uptime 12\r\nEND\r\n")));
        assert!(a.restarted_by(&snapshot("STAT pid 7\r\nSTAT uptime 1\r\nEND\r\n")));
    }
}
