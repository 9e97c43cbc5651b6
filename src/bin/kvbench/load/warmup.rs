//! The warmup: every key of every group set once before the measured run,
//! over a few pipelined blocking connections, so that gets hit.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use crate::load::client;
use crate::load::options::Options;
use crate::load::reply::{parse_replies, Expect, Outcome, ReplyParser};
use crate::load::workload::{Plan, Rng};

/// Sets per warmup batch, and the most bytes one batch may hold.
const WARMUP_BATCH: usize = 64;
const WARMUP_BATCH_BYTES: usize = 1 << 20;
/// Warmup connections (and threads).
const WARMUP_CONNS: usize = 4;
/// The warmup gives up after this long.
const WARMUP_LIMIT: Duration = Duration::from_secs(120);

/// What the warmup did.
#[derive(Clone, Debug, Default)]
pub struct WarmupResult {
    pub sets: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

/// Prefills every key of every group with a set (values sized as the
/// group's), over a few pipelined blocking connections.
pub fn warmup(plan: &Plan, opts: &Options, bar: &ProgressBar) -> WarmupResult {
    let start = Instant::now();
    if !plan.warmup {
        return WarmupResult::default();
    }
    let total: u64 = plan.groups.iter().map(|g| g.keys).sum();
    bar.set_length(total);
    bar.set_message("warmup");
    let conns = (WARMUP_CONNS as u64).min(total).max(1) as usize;
    let value = client::value_bytes(plan.max_value_size());
    let deadline = start + WARMUP_LIMIT;
    let results: Vec<WarmupResult> = thread::scope(|scope| {
        let handles: Vec<_> = (0..conns)
            .map(|t| {
                let value = Arc::clone(&value);
                scope.spawn(move || warmup_conn(plan, opts, t, conns, &value, deadline, bar))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| WarmupResult {
                    errors: 1,
                    first_error: Some("warmup thread panicked".into()),
                    ..WarmupResult::default()
                })
            })
            .collect()
    });
    let mut out = WarmupResult {
        elapsed: start.elapsed(),
        ..WarmupResult::default()
    };
    for r in results {
        out.sets += r.sets;
        out.errors += r.errors;
        if out.first_error.is_none() {
            out.first_error = r.first_error;
        }
    }
    out
}

/// One warmup connection: keys `k` with `k % conns == index`, in batches.
fn warmup_conn(
    plan: &Plan,
    opts: &Options,
    index: usize,
    conns: usize,
    value: &[u8],
    deadline: Instant,
    bar: &ProgressBar,
) -> WarmupResult {
    let mut out = WarmupResult::default();
    let mut to_send: u64 = plan
        .groups
        .iter()
        .map(|g| (g.keys + (conns - 1 - index) as u64) / conns as u64)
        .sum();
    let fail = |out: &mut WarmupResult, n: u64, why: String| {
        out.errors += n;
        out.first_error.get_or_insert(why);
    };
    let mut stream = match opts.server.connect(opts.timeout) {
        Ok(s) => s,
        Err(e) => {
            fail(
                &mut out,
                to_send,
                format!("warmup connect to {}: {e}", opts.server),
            );
            return out;
        }
    };
    let mut rng = Rng::new(0x5eed ^ index as u64);
    let mut buf = Vec::new();
    let mut parser = ReplyParser::default();
    let mut inflight: VecDeque<(Expect, ())> = VecDeque::new();
    let mut input = vec![0u8; 64 << 10];
    let mut carry: Vec<u8> = Vec::new();
    for g in &plan.groups {
        let prefix = g.key_prefix.as_bytes();
        let mut key = index as u64;
        while key < g.keys {
            if Instant::now() >= deadline {
                fail(
                    &mut out,
                    to_send,
                    format!("warmup stopped after {WARMUP_LIMIT:?}"),
                );
                return out;
            }
            buf.clear();
            while key < g.keys && inflight.len() < WARMUP_BATCH && buf.len() < WARMUP_BATCH_BYTES {
                let len = g.value_size.pick(&mut rng);
                client::encode_set(&mut buf, prefix, key, &value[..len]);
                inflight.push_back((Expect::Set, ()));
                key += conns as u64;
            }
            let batch = inflight.len() as u64;
            if let Err(e) = stream.write_all(&buf) {
                fail(&mut out, to_send, format!("warmup write: {e}"));
                return out;
            }
            while !inflight.is_empty() {
                let n = match stream.read(&mut input) {
                    Ok(0) => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed the connection",
                    )),
                    Ok(n) => Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Err(e),
                };
                let n = match n {
                    Ok(n) => n,
                    Err(e) => {
                        fail(&mut out, to_send, format!("warmup read: {e}"));
                        return out;
                    }
                };
                carry.extend_from_slice(&input[..n]);
                let used = parse_replies(&mut parser, &mut inflight, &carry, |_, _, o| {
                    to_send -= 1;
                    match o {
                        Outcome::Stored => out.sets += 1,
                        _ => out.errors += 1,
                    }
                });
                carry.drain(..used);
                if let Some(line) = parser.take_error_line() {
                    out.first_error.get_or_insert(format!("warmup: {line}"));
                }
                if parser.is_broken() {
                    fail(&mut out, to_send, "warmup: reply stream out of step".into());
                    return out;
                }
            }
            bar.inc(batch);
        }
    }
    out
}
