//! The `stats` family of commands, in memcached's shapes.

use super::stages::Stage;
use super::stats::Role;
use super::Engine;
use crate::alloc;
use crate::protocol::reply::{self, stat};
use crate::tls::TlsOptions;

impl Engine {
    /// Answers `stats <args>`.
    pub(super) fn report(&self, args: &[u8], out: &mut Vec<u8>, now: u32) {
        let mut words = args.split(|&b| b == b' ').filter(|w| !w.is_empty());
        match words.next() {
            None => self.general_stats(out, now),
            Some(b"settings") => self.settings_stats(out),
            Some(b"items") => self.items_stats(out),
            Some(b"slabs") => self.slabs_stats(out),
            Some(b"threads") => self.thread_stats(out),
            Some(b"latency") if words.next() == Some(b"buckets") => self.latency_buckets(out),
            Some(b"latency") => self.latency_stats(out),
            Some(b"cachedump") => return self.cachedump(words.next(), words.next(), out),
            Some(b"reset") => {
                self.stats.reset();
                out.extend_from_slice(reply::RESET);
                return;
            }
            Some(_) => {
                out.extend_from_slice(b"ERROR\r\n");
                return;
            }
        }
        out.extend_from_slice(reply::END);
    }

    fn general_stats(&self, out: &mut Vec<u8>, now: u32) {
        let totals = self.stats.totals();
        let store = self.store.stats();
        let (user, system) = cpu_times();
        let conns = &self.stats;
        stat(out, "pid", std::process::id());
        stat(out, "uptime", self.started.elapsed().as_secs());
        stat(out, "time", now);
        stat(out, "version", super::VERSION);
        stat(out, "pointer_size", usize::BITS);
        stat(out, "rusage_user", user);
        stat(out, "rusage_system", system);
        stat(out, "max_connections", self.settings.max_conns);
        stat(out, "curr_connections", load(&conns.curr_connections));
        stat(out, "total_connections", load(&conns.total_connections));
        stat(
            out,
            "rejected_connections",
            load(&conns.rejected_connections),
        );
        for (name, value) in totals.commands.fields() {
            stat(out, name, value);
        }
        stat(out, "bytes_read", totals.bytes_read);
        stat(out, "bytes_written", totals.bytes_written);
        stat(out, "limit_maxbytes", self.store.memory_limit());
        stat(out, "threads", self.settings.threads);
        stat(out, "conn_yields", totals.conn_yields);
        stat(out, "bytes", store.bytes);
        stat(out, "curr_items", store.curr_items);
        stat(out, "total_items", store.total_items);
        stat(out, "evictions", store.evictions);
        stat(out, "reclaimed", store.reclaimed);
        if let Some(tls) = &self.tls {
            let counters = &tls.counters;
            stat(
                out,
                "ssl_handshake_errors",
                load(&counters.handshake_errors),
            );
            stat(out, "ssl_proto_errors", load(&counters.proto_errors));
            stat(out, "ssl_new_sessions", load(&counters.new_sessions));
            stat(out, "time_since_server_cert_refresh", tls.since_refresh());
        }
        stat(out, "pattern", self.settings.pattern);
        // Beyond memcached: where resident memory goes, beside `bytes`.
        let heap = alloc::heap();
        stat(out, "rss", alloc::rss());
        stat(out, "heap_allocated", heap.allocated);
        stat(out, "heap_resident", heap.resident);
        stat(
            out,
            "heap_not_store",
            (heap.resident as u64).saturating_sub(store.held),
        );
        // kvbench compares the mean service time spent with the one asked.
        stat(out, "work_model", self.work_name());
        stat(out, "work_requests", totals.work_requests);
        stat(out, "work_asked_us", totals.work_asked_ns / 1000);
        stat(out, "work_spent_us", totals.work_spent_ns / 1000);
    }

    /// Beyond memcached: where requests' time went inside the server
    /// ([`super::stages`]), per stage, named `role:stage:quantity` by the
    /// role of the threads that do the stage in this pattern (`all` for
    /// `server`, which spans them), in microseconds. Enough quantiles for
    /// kvbench to draw from each stage's distribution.
    fn latency_stats(&self, out: &mut Vec<u8>) {
        const QUANTILES: [(&str, f64); 14] = [
            ("p1", 0.01),
            ("p5", 0.05),
            ("p10", 0.1),
            ("p20", 0.2),
            ("p30", 0.3),
            ("p40", 0.4),
            ("p50", 0.5),
            ("p60", 0.6),
            ("p70", 0.7),
            ("p80", 0.8),
            ("p90", 0.9),
            ("p95", 0.95),
            ("p99", 0.99),
            ("p999", 0.999),
        ];
        let (reads, executes) = self.stage_roles();
        for (stage, d) in Stage::ALL.into_iter().zip(self.stats.stages()) {
            let role = match stage {
                Stage::Socket | Stage::Wakeup | Stage::Parse => reads,
                Stage::Server => "all",
                _ => executes,
            };
            let name = |quantity: &str| format!("{role}:{}:{quantity}", stage.name());
            stat(out, &name("count"), d.count());
            stat(out, &name("mean"), format!("{:.3}", d.mean_ns() / 1e3));
            for (quantity, q) in QUANTILES {
                stat(
                    out,
                    &name(quantity),
                    format!("{:.3}", d.quantile_ns(q) / 1e3),
                );
            }
            stat(
                out,
                &name("max"),
                format!("{:.3}", d.quantile_ns(1.0) / 1e3),
            );
        }
    }

    /// `stats latency buckets`: every counted bucket of every stage, as
    /// `stage:low-high count` in nanoseconds, so that a reader can take two
    /// readings apart and know the stage times between them (`kvbench
    /// top`).
    fn latency_buckets(&self, out: &mut Vec<u8>) {
        for (stage, d) in Stage::ALL.into_iter().zip(self.stats.stages()) {
            for (low, width, count) in d.buckets() {
                stat(
                    out,
                    &format!("{}:{low}-{}", stage.name(), low + width),
                    count,
                );
            }
        }
    }

    /// Which role reads and parses requests, and which executes them.
    fn stage_roles(&self) -> (&'static str, &'static str) {
        let roles: Vec<Role> = self.stats.threads().iter().map(|t| t.role).collect();
        let reads = roles
            .iter()
            .find(|r| !matches!(r, Role::Acceptor | Role::Worker))
            .map_or("loop", |r| r.name());
        let executes = if roles.contains(&Role::Worker) {
            Role::Worker.name()
        } else {
            reads
        };
        (reads, executes)
    }

    /// `--work` as it reads back (`spin:fixed:5us`), or `none`.
    fn work_name(&self) -> String {
        self.settings
            .work
            .map_or_else(|| "none".to_string(), |w| w.to_string())
    }

    fn settings_stats(&self, out: &mut Vec<u8>) {
        let s = &self.settings;
        stat(out, "maxbytes", self.store.memory_limit());
        stat(out, "maxconns", s.max_conns);
        stat(out, "tcpport", s.port);
        stat(out, "udpport", 0);
        stat(out, "inter", &s.listen);
        stat(out, "verbosity", self.verbosity());
        stat(out, "evictions", "on");
        stat(out, "num_threads", s.threads);
        stat(out, "reqs_per_event", s.reqs_per_event);
        stat(out, "cas_enabled", "yes");
        stat(out, "auth_enabled_sasl", "no");
        // The file's path, as memcached shows it.
        let auth = self.auth.as_ref().map_or("no", |auth| auth.path());
        stat(out, "auth_enabled_ascii", auth);
        stat(out, "item_size_max", s.max_item_size);
        stat(out, "idle_timeout", s.idle_timeout);
        self.tls_settings(out);
        stat(out, "pattern", s.pattern);
        stat(out, "work", self.work_name());
        stat(out, "stage_sample", s.stage_sample);
        stat(
            out,
            "stamp_arrivals",
            if s.stamp_arrivals { "yes" } else { "no" },
        );
        stat(out, "store_shards", self.store.shard_count());
    }

    /// The `ssl_*` settings under memcached's names, shown with TLS off
    /// too, as memcached built with TLS shows them.
    fn tls_settings(&self, out: &mut Vec<u8>) {
        let default = TlsOptions::default();
        let options = self.tls.as_ref().map_or(&default, |tls| &tls.options);
        let path = |p: &Option<std::path::PathBuf>, none: &str| {
            p.as_ref()
                .map_or(none.to_string(), |p| p.display().to_string())
        };
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        stat(out, "ssl_enabled", yes_no(self.tls.is_some()));
        stat(out, "ssl_chain_cert", path(&options.chain_cert, "(null)"));
        stat(out, "ssl_key", path(&options.key, "(null)"));
        stat(out, "ssl_verify_mode", options.verify_mode.number());
        stat(out, "ssl_keyformat", 1);
        stat(out, "ssl_ciphers", "NULL");
        stat(out, "ssl_ca_cert", path(&options.ca_cert, "NULL"));
        stat(out, "ssl_wbuf_size", options.wbuf_size_kib * 1024);
        stat(out, "ssl_session_cache", yes_no(options.session_cache));
        stat(out, "ssl_kernel_tls", "no");
        stat(out, "ssl_min_version", options.min_version.name());
    }

    /// kvserve keeps one item class; memcached lists only classes in use.
    fn items_stats(&self, out: &mut Vec<u8>) {
        let store = self.store.stats();
        if store.curr_items == 0 {
            return;
        }
        let fields = [
            ("number", store.curr_items),
            ("number_hot", 0),
            ("number_warm", 0),
            ("number_cold", store.curr_items),
            ("age_hot", 0),
            ("age_warm", 0),
            ("age", 0),
            ("mem_requested", store.bytes),
            ("evicted", store.evictions),
            ("evicted_nonzero", 0),
            ("evicted_time", 0),
            ("outofmemory", 0),
            ("tailrepairs", 0),
            ("reclaimed", store.reclaimed),
            ("expired_unfetched", 0),
            ("evicted_unfetched", 0),
            ("evicted_active", 0),
        ];
        for (name, value) in fields {
            stat(out, &format!("items:1:{name}"), value);
        }
    }

    fn slabs_stats(&self, out: &mut Vec<u8>) {
        let store = self.store.stats();
        let c = self.stats.totals().commands;
        if store.curr_items > 0 {
            let fields = [
                ("chunk_size", self.settings.max_item_size as u64),
                ("chunks_per_page", 1),
                ("total_pages", store.curr_items),
                ("total_chunks", store.curr_items),
                ("used_chunks", store.curr_items),
                ("free_chunks", 0),
                ("free_chunks_end", 0),
                ("get_hits", c.get_hits),
                ("cmd_set", c.cmd_set),
                ("delete_hits", c.delete_hits),
                ("incr_hits", c.incr_hits),
                ("decr_hits", c.decr_hits),
                ("cas_hits", c.cas_hits),
                ("cas_badval", c.cas_badval),
                ("touch_hits", c.touch_hits),
            ];
            for (name, value) in fields {
                stat(out, &format!("1:{name}"), value);
            }
        }
        stat(out, "active_slabs", u64::from(store.curr_items > 0));
        stat(out, "total_malloced", store.bytes);
    }

    /// `stats threads`: per thread, the figures that show how evenly a
    /// pattern spreads its load.
    fn thread_stats(&self, out: &mut Vec<u8>) {
        for (n, t) in self.stats.threads().iter().enumerate() {
            stat(out, &format!("{n}:role"), t.role.name());
            stat(out, &format!("{n}:connections"), t.connections.get());
            stat(out, &format!("{n}:requests"), t.requests.get());
            stat(out, &format!("{n}:bytes_read"), t.bytes_read.get());
            stat(out, &format!("{n}:bytes_written"), t.bytes_written.get());
            stat(out, &format!("{n}:busy_us"), t.busy_us.get());
            if t.role == Role::StealingReader {
                stat(out, &format!("{n}:stolen"), t.stolen.get());
                stat(out, &format!("{n}:lost"), t.lost.get());
            }
            if self.tls.is_some() {
                stat(out, &format!("{n}:tls_handshakes"), t.tls_handshakes.get());
                stat(out, &format!("{n}:tls_resumed"), t.tls_resumed.get());
                stat(out, &format!("{n}:tls_us"), t.tls_ns.get() / 1000);
            }
        }
    }

    /// `stats cachedump <class> <limit>`: `ITEM <key> [<bytes> b; <exptime> s]`.
    fn cachedump(&self, class: Option<&[u8]>, limit: Option<&[u8]>, out: &mut Vec<u8>) {
        let (Some(class), Some(limit)) = (class, limit) else {
            out.extend_from_slice(reply::BAD_COMMAND_LINE);
            return;
        };
        let number = |w: &[u8]| std::str::from_utf8(w).ok()?.parse::<u32>().ok();
        let (Some(class), Some(limit)) = (number(class), number(limit)) else {
            out.extend_from_slice(crate::protocol::ErrorReply::BadCommandLineFormat.line());
            return;
        };
        if class >= 64 {
            out.extend_from_slice(reply::ILLEGAL_SLAB_ID);
            return;
        }
        if class == 1 {
            for item in self.store.dump(limit as usize) {
                out.extend_from_slice(b"ITEM ");
                out.extend_from_slice(&item.key);
                let line = format!(" [{} b; {} s]\r\n", item.value_len, item.deadline);
                out.extend_from_slice(line.as_bytes());
            }
        }
        out.extend_from_slice(reply::END);
    }
}

fn load(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(std::sync::atomic::Ordering::Relaxed)
}

/// User and system CPU time of the process, as `seconds.micros` strings.
fn cpu_times() -> (String, String) {
    // SAFETY: getrusage only writes the struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let format = |t: libc::timeval| format!("{}.{:06}", t.tv_sec, t.tv_usec);
    (format(usage.ru_utime), format(usage.ru_stime))
}
