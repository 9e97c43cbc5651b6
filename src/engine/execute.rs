//! Executing one parsed request: store operation, statistics, reply bytes.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::stages::Stage;
use super::stats::{CommandCounters, Counter, ThreadStats};
use super::work::{minimise_timer_slack, Rng, WorkKind, WorkModel};
use super::Engine;
use crate::protocol::{reply, ArithOp, Request, StoreMode};
use crate::store::{deadline, ArithOutcome, Miss, StoreOutcome};

/// What the connection does after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// `quit`: close once the replies before it are written.
    Close,
}

impl Engine {
    /// Executes `request`, whose spans point into `input`, and appends its
    /// reply to `out` (nothing for `noreply`). `stats` are the calling
    /// thread's own; `now` is unix seconds, read once per batch.
    pub fn execute(
        &self,
        request: &Request,
        input: &[u8],
        out: &mut Vec<u8>,
        stats: &ThreadStats,
        now: u32,
    ) -> Flow {
        stats.requests.incr();
        // Before the reply, so a `stats` reply counts its own work.
        if let Some(work) = &self.settings.work {
            perform_work(work, stats);
        }
        let mark = out.len();
        let flow = self.reply(request, input, out, stats, now);
        if request.noreply() {
            out.truncate(mark);
        }
        flow
    }

    fn reply(
        &self,
        request: &Request,
        input: &[u8],
        out: &mut Vec<u8>,
        stats: &ThreadStats,
        now: u32,
    ) -> Flow {
        let c = &stats.commands;
        let store = &self.store;
        match *request {
            Request::Get {
                keys,
                with_cas,
                touch,
            } => {
                let touch = touch.map(|exptime| deadline(exptime, now));
                for key in keys.words(input) {
                    let found = store.get(key, touch, now, |item| {
                        let cas = with_cas.then_some(item.cas);
                        reply::value(out, key, item.flags, item.value, cas);
                    });
                    count_lookup(c, touch.is_some(), found);
                }
                out.extend_from_slice(reply::END);
            }
            Request::Store {
                mode,
                key,
                flags,
                exptime,
                data,
                ..
            } => {
                let key = key.of(input);
                let outcome = store.store(
                    mode,
                    key,
                    flags,
                    deadline(exptime, now),
                    data.of(input),
                    now,
                );
                count_store(c, mode, outcome);
                out.extend_from_slice(match outcome {
                    StoreOutcome::Stored => reply::STORED,
                    StoreOutcome::NotStored => reply::NOT_STORED,
                    StoreOutcome::Exists => reply::EXISTS,
                    StoreOutcome::NotFound => reply::NOT_FOUND,
                });
            }
            Request::TooLarge { mode, key, .. } => {
                c.store_too_large.incr();
                // As memcached: a failed set must not leave the old value readable.
                if mode == StoreMode::Set {
                    store.delete(key.of(input), now);
                }
                out.extend_from_slice(reply::TOO_LARGE);
            }
            Request::Delete { key, .. } => {
                if store.delete(key.of(input), now) {
                    c.delete_hits.incr();
                    out.extend_from_slice(reply::DELETED);
                } else {
                    c.delete_misses.incr();
                    out.extend_from_slice(reply::NOT_FOUND);
                }
            }
            Request::Arithmetic { op, key, delta, .. } => {
                let incr = op == ArithOp::Incr;
                let (hits, misses) = arithmetic_counters(c, incr);
                match store.arithmetic(key.of(input), incr, delta, now) {
                    ArithOutcome::Value(value) => {
                        hits.incr();
                        reply::number(out, value);
                    }
                    ArithOutcome::NotFound => {
                        misses.incr();
                        out.extend_from_slice(reply::NOT_FOUND);
                    }
                    ArithOutcome::NonNumeric => out.extend_from_slice(reply::NON_NUMERIC),
                }
            }
            Request::Touch { key, exptime, .. } => {
                c.cmd_touch.incr();
                if store.touch(key.of(input), deadline(exptime, now), now) {
                    c.touch_hits.incr();
                    out.extend_from_slice(reply::TOUCHED);
                } else {
                    c.touch_misses.incr();
                    out.extend_from_slice(reply::NOT_FOUND);
                }
            }
            Request::FlushAll { delay, .. } => {
                c.cmd_flush.incr();
                store.flush_all(delay, now);
                out.extend_from_slice(reply::OK);
            }
            Request::Version => {
                out.extend_from_slice(b"VERSION ");
                out.extend_from_slice(super::VERSION.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Request::RefreshCerts => match &self.tls {
                None => out.extend_from_slice(b"Error TLS not enabled\r\n"),
                Some(tls) => match tls.refresh() {
                    Ok(()) => out.extend_from_slice(reply::OK),
                    Err(why) => {
                        tracing::warn!("refresh_certs: {why}; the old certificate stays");
                        out.extend_from_slice(why.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                },
            },
            Request::Verbosity { level, .. } => {
                self.set_verbosity(level);
                out.extend_from_slice(reply::OK);
            }
            Request::Stats { args } => self.report(args.of(input), out, now),
            Request::CacheMemlimit { megabytes, .. } => {
                out.extend_from_slice(match megabytes {
                    0..=7 => reply::MEMLIMIT_TOO_SMALL,
                    1_000_000_001.. => reply::MEMLIMIT_NOT_BYTES,
                    mb => {
                        store.set_memory_limit(mb as usize * 1024 * 1024);
                        reply::OK
                    }
                });
            }
            Request::Quit => return Flow::Close,
            Request::Meta(ref meta) => self.meta(meta, input, out, stats, now),
            Request::MetaDebug { key, binary } => {
                self.meta_debug(key.of(input), binary, out, stats, now)
            }
            Request::MetaNoop => out.extend_from_slice(reply::MN),
            Request::Auth { accepted } => {
                c.auth_cmds.incr();
                if accepted {
                    out.extend_from_slice(reply::STORED);
                } else {
                    c.auth_errors.incr();
                    out.extend_from_slice(reply::AUTH_FAILURE);
                }
            }
            Request::Error { reply, .. } => out.extend_from_slice(reply.line()),
        }
        Flow::Continue
    }
}

/// Counts one key looked up by a get (`get`, `mg`) or, with `touch`, by
/// a touch (`gat`, `mg T`).
pub(super) fn count_lookup(c: &CommandCounters, touch: bool, found: Result<(), Miss>) {
    match (touch, found) {
        (false, Ok(())) => c.get_hits.incr(),
        (false, Err(miss)) => {
            c.get_misses.incr();
            match miss {
                Miss::Expired => c.get_expired.incr(),
                Miss::Flushed => c.get_flushed.incr(),
                Miss::Absent => {}
            }
        }
        (true, Ok(())) => c.touch_hits.incr(),
        (true, Err(_)) => c.touch_misses.incr(),
    }
    if touch {
        c.cmd_touch.incr();
    } else {
        c.cmd_get.incr();
    }
}

/// Counts one storage command (`set` ... `cas`, `ms`).
pub(super) fn count_store(c: &CommandCounters, mode: StoreMode, outcome: StoreOutcome) {
    c.cmd_set.incr();
    if let StoreMode::Cas(_) = mode {
        match outcome {
            StoreOutcome::Stored => c.cas_hits.incr(),
            StoreOutcome::Exists => c.cas_badval.incr(),
            StoreOutcome::NotFound => c.cas_misses.incr(),
            StoreOutcome::NotStored => {}
        }
    }
}

/// The hit and miss counters of `incr` or `decr` (and `ma`).
pub(super) fn arithmetic_counters(c: &CommandCounters, incr: bool) -> (&Counter, &Counter) {
    if incr {
        (&c.incr_hits, &c.incr_misses)
    } else {
        (&c.decr_hits, &c.decr_misses)
    }
}

/// Spends one service time drawn from `work` on the calling thread and
/// counts it: the time asked for, and the time it really took.
#[inline(never)]
fn perform_work(work: &WorkModel, stats: &ThreadStats) {
    let (asked, spent) = WORKER.with_borrow_mut(|worker| {
        if work.kind == WorkKind::Block && !worker.slack_minimised {
            minimise_timer_slack();
            worker.slack_minimised = true;
        }
        let start = Instant::now();
        let asked = work.perform(&mut worker.rng);
        (asked, start.elapsed())
    });
    stats.work_requests.incr();
    stats.work_asked_ns.add(nanos(asked));
    stats.work_spent_ns.add(nanos(spent));
    stats.stages.get(Stage::Service).record(nanos(spent), 1);
}

fn nanos(time: std::time::Duration) -> u64 {
    u64::try_from(time.as_nanos()).unwrap_or(u64::MAX)
}

/// What a thread that executes requests keeps for `--work`.
struct Worker {
    /// Its own generator: no shared state on the hot path.
    rng: Rng,
    /// Whether its timer slack was lowered (on its first block request).
    slack_minimised: bool,
}

/// Numbers the threads that draw service times, so each seeds apart.
static WORKER_SEEDS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static WORKER: RefCell<Worker> = RefCell::new(Worker {
        rng: Rng::new(
            WORKER_SEEDS
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ 0x6b76_7365_7276_6521,
        ),
        slack_minimised: false,
    });
}
