//! Churn: every request on a connection of its own, as short-lived
//! clients send them: connect, the TLS handshake (when the server is
//! reached over TLS), authentication (when it wants it), one get or set,
//! its reply, close. What it measures is the server's rate of new
//! connections, which in multi-reader one acceptor thread and in basic the
//! one loop take on. Each client is a blocking thread with one connection
//! at a time, as a short-lived client is a process of its own; latency runs
//! from before the connect to the reply.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use indicatif::ProgressBar;

use crate::load::client::{self, RequestGen};
use crate::load::options::Options;
use crate::load::progress::follow;
use crate::load::reply::{printable, ErrorKind, Expect, Outcome, ReplyParser};
use crate::load::stats::{GroupStats, RunResult};
use crate::load::workload::Plan;

/// Replies and errors so far, for the progress bar.
#[derive(Default)]
struct Progress {
    done: AtomicU64,
    failed: AtomicU64,
}

/// Runs `plan` (one group; its connections are the clients) for the
/// run's duration: each client opens its next connection when the last
/// one's reply is in.
pub fn measure(plan: &Plan, opts: &Options, bar: &ProgressBar) -> Result<RunResult> {
    let spec = Arc::new(plan.groups[0].clone());
    let value = client::value_bytes(plan.max_value_size());
    let progress = Progress::default();
    let start = Instant::now();
    let end = start + opts.duration;
    let clients = spec.connections;
    let outputs = thread::scope(|scope| -> Result<Vec<GroupStats>> {
        let mut handles = Vec::with_capacity(clients);
        for c in 0..clients {
            let gen = RequestGen::new(Arc::clone(&spec), c as u64, Arc::clone(&value));
            let progress = &progress;
            let handle = thread::Builder::new()
                .name(format!("kvbench-churn-{c}"))
                .spawn_scoped(scope, move || churn(gen, opts, end, progress))
                .context("spawn a churn client")?;
            handles.push(handle);
        }
        follow(bar, opts.duration, &progress.done, &progress.failed, || {
            handles.iter().all(|h| h.is_finished())
        });
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a churn client panicked")))
            .collect()
    })?;
    let mut all = GroupStats::new();
    for s in &outputs {
        all.merge(s);
    }
    all.span = all
        .last_reply
        .map_or(Duration::ZERO, |t| t.duration_since(start));
    Ok(RunResult {
        groups: vec![all],
        elapsed: start.elapsed(),
        client_threads: clients,
    })
}

/// One client: connection after connection until `end`.
fn churn(mut gen: RequestGen, opts: &Options, end: Instant, progress: &Progress) -> GroupStats {
    let mut stats = GroupStats::new();
    let mut request = Vec::new();
    let mut input = vec![0u8; 64 << 10];
    let mut carry = Vec::new();
    while Instant::now() < end {
        let start = Instant::now();
        request.clear();
        let expect = gen.encode(&mut request);
        match once(opts, &request, expect, &mut input, &mut carry) {
            Ok(reply) => {
                stats.handshake(reply.resumed);
                stats.record(expect, reply.done, reply.done - start, reply.outcome);
                if let Some(line) = reply.error_line {
                    stats.note(|| line);
                }
                let counter = match reply.outcome {
                    Outcome::Failed(_) => &progress.failed,
                    _ => &progress.done,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err((kind, why)) => {
                stats.fail(kind, 1, || why);
                progress.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    stats
}

/// What one connection got.
struct Reply {
    outcome: Outcome,
    /// The reply's line when it was an error.
    error_line: Option<String>,
    /// Whether the TLS handshake resumed a session (`None`: plaintext).
    resumed: Option<bool>,
    /// When the reply was in.
    done: Instant,
}

/// One connection, closed with a reset whatever happens (see
/// [`crate::net::stream::Stream::reset_on_close`]); or why it failed.
fn once(
    opts: &Options,
    request: &[u8],
    expect: Expect,
    input: &mut [u8],
    carry: &mut Vec<u8>,
) -> Result<Reply, (ErrorKind, String)> {
    let server = &opts.server;
    let mut stream = opts
        .server
        .connect(opts.timeout)
        .map_err(|e| (ErrorKind::Connection, format!("connect to {server}: {e}")))?;
    stream.reset_on_close();
    let lost = |e: io::Error| {
        let kind = match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Connection,
        };
        (kind, format!("connection to {server}: {e}"))
    };
    stream
        .write_all(request)
        .and_then(|()| stream.flush())
        .map_err(lost)?;
    let mut parser = ReplyParser::default();
    carry.clear();
    let outcome = loop {
        let n = stream.read(input).map_err(lost)?;
        if n == 0 {
            return Err(lost(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before the reply",
            )));
        }
        carry.extend_from_slice(&input[..n]);
        let (used, outcome) = parser.feed(carry, expect);
        if parser.is_broken() {
            return Err((
                ErrorKind::Unexpected,
                format!("reply out of step: {}", printable(carry)),
            ));
        }
        carry.drain(..used);
        if let Some(outcome) = outcome {
            break outcome;
        }
    };
    Ok(Reply {
        outcome,
        error_line: parser.take_error_line(),
        resumed: stream.resumed(),
        done: Instant::now(),
    })
}
