//! Executing the meta commands (`mg`, `ms`, `md`, `ma`, `me`) against the
//! store, with replies as memcached 1.6.18 writes them: a status code, then
//! the flags that return something, in request order.

use super::execute::{arithmetic_counters, count_lookup, count_store};
use super::stats::ThreadStats;
use super::Engine;
use crate::protocol::{
    base64_encode, decode_key, item_size, reply, ErrorReply, MetaCommand, MetaFlags, MetaRequest,
    StoreMode, KEY_MAX_LENGTH,
};
use crate::store::{deadline, ArithOutcome, Deadline, Marks, StoreOutcome, Storing};

/// memcached's `MFLAG_MAX_OPAQUE_LENGTH`: a longer `O` is an error.
const MAX_OPAQUE: usize = 32;

/// A meta command's key (decoded), flags and flag tokens.
#[derive(Clone, Copy)]
struct Meta<'a> {
    flags: &'a MetaFlags,
    key: &'a [u8],
    tokens: &'a [&'a [u8]],
}

/// What a meta reply does in quiet mode (`q`): memcached drops only the
/// nominal answer of each command.
#[derive(PartialEq, Eq)]
enum Quiet {
    Drop,
    Keep,
}

impl Engine {
    /// Executes `mg`, `ms`, `md` or `ma`, appending its reply to `out`.
    pub(super) fn meta(
        &self,
        request: &MetaRequest,
        input: &[u8],
        out: &mut Vec<u8>,
        stats: &ThreadStats,
        now: u32,
    ) {
        let mut decoded = [0; KEY_MAX_LENGTH];
        let key = request_key(request, input, &mut decoded);
        let tokens: Vec<&[u8]> = request.tokens.words(input).collect();
        let meta = Meta {
            flags: &request.flags,
            key,
            tokens: &tokens,
        };
        let start = out.len();
        let quiet = match request.command {
            MetaCommand::Get => self.meta_get(&meta, out, stats, now),
            MetaCommand::Set => self.meta_set(&meta, request.data.of(input), out, stats, now),
            MetaCommand::SetTooLarge => {
                stats.commands.store_too_large.incr();
                // As memcached: a failed ms leaves no old value readable.
                self.store.delete(key, now);
                out.extend_from_slice(reply::TOO_LARGE);
                Ok(Quiet::Keep)
            }
            MetaCommand::Delete => self.meta_delete(&meta, out, stats, now),
            MetaCommand::Arithmetic => self.meta_arithmetic(&meta, out, stats, now),
        };
        match quiet {
            Ok(Quiet::Drop) if request.flags.has(b'q') => out.truncate(start),
            Ok(_) => {}
            Err(error) => {
                out.truncate(start);
                out.extend_from_slice(error.line());
            }
        }
    }

    /// `mg`: `VA`/`HD` with the asked-for fields, or `EN`. A miss with `N`
    /// creates an empty item and wins the right to fill it (`W`).
    fn meta_get(
        &self,
        meta: &Meta<'_>,
        out: &mut Vec<u8>,
        stats: &ThreadStats,
        now: u32,
    ) -> Result<Quiet, ErrorReply> {
        let Meta { flags, key, tokens } = *meta;
        // Flags that read the item as it was before this fetch, or change
        // it, fetch it only at the end (memcached's "locked" mode).
        let late_fetch = b"NTRlh".iter().any(|&f| flags.has(f));
        let fetch = !flags.has(b'u');
        let mut locked = self.store.lock_key(key, now);
        let mut found = locked.found();
        if fetch && !late_fetch {
            locked.fetch();
        }
        let created = found.is_err() && flags.has(b'N');
        if created {
            locked.insert([&[], &[]], 0, 0, Marks::NONE);
            found = Ok(());
        }
        let Some(item) = locked.item() else {
            count_lookup(&stats.commands, false, found);
            out.extend_from_slice(b"EN");
            echo_request(out, tokens, key, flags)?;
            out.extend_from_slice(b"\r\n");
            return Ok(Quiet::Drop);
        };
        if flags.has(b'v') {
            out.extend_from_slice(b"VA ");
            number(out, item.value.len());
        } else {
            out.extend_from_slice(b"HD");
        }
        let mut won = false;
        let mut touched = false;
        for token in tokens {
            let Some(item) = locked.item() else { break };
            let mut field = |flag: u8, value: &dyn std::fmt::Display| {
                out.extend_from_slice(&[b' ', flag]);
                out.extend_from_slice(value.to_string().as_bytes());
            };
            match token[0] {
                b's' => field(b's', &item.value.len()),
                b't' => field(b't', &Ttl(item.deadline, now)),
                b'c' => field(b'c', &item.cas),
                b'f' => field(b'f', &item.flags),
                b'l' => field(b'l', &now.wrapping_sub(item.last_access)),
                b'h' => field(b'h', &u8::from(item.marks.contains(Marks::FETCHED))),
                b'k' => echo_key(out, item.key, item.marks.contains(Marks::BINARY_KEY)),
                b'O' => echo_opaque(out, token)?,
                b'R' => {
                    won |= !item.marks.contains(Marks::WIN_SENT)
                        && !created
                        && item.deadline != 0
                        && item.deadline < deadline(flags.recache_ttl, now);
                }
                b'T' => {
                    locked.set_deadline(deadline(flags.ttl, now));
                    touched = true;
                }
                b'N' if created => {
                    locked.set_deadline(deadline(flags.vivify_ttl, now));
                    won = true;
                }
                _ => {}
            }
        }
        let Some(item) = locked.item() else {
            return Ok(Quiet::Keep);
        };
        let marks = item.marks;
        if marks.contains(Marks::WIN_SENT) {
            out.extend_from_slice(b" Z");
        }
        if marks.contains(Marks::STALE) {
            out.extend_from_slice(b" X");
            won |= !marks.contains(Marks::WIN_SENT);
        }
        if won {
            out.extend_from_slice(b" W");
        }
        out.extend_from_slice(b"\r\n");
        if flags.has(b'v') {
            out.extend_from_slice(item.value);
            out.extend_from_slice(b"\r\n");
        }
        if won {
            locked.set_marks(marks.with(Marks::WIN_SENT));
        }
        if fetch && late_fetch {
            locked.fetch();
        }
        count_lookup(&stats.commands, touched, found);
        Ok(Quiet::Keep)
    }

    /// `ms`: `HD`, `NS`, `EX` or `NF`, in the mode `M` names; with `C`, a
    /// set or replace is a cas, and `I` lets an older cas store a stale value.
    fn meta_set(
        &self,
        meta: &Meta<'_>,
        data: &[u8],
        out: &mut Vec<u8>,
        stats: &ThreadStats,
        now: u32,
    ) -> Result<Quiet, ErrorReply> {
        let Meta { flags, key, tokens } = *meta;
        let mode = match (flags.mode, flags.has(b'C')) {
            (b'E', _) => StoreMode::Add,
            (b'A', _) => StoreMode::Append,
            (b'P', _) => StoreMode::Prepend,
            (b'R' | b'S' | 0, true) => StoreMode::Cas(flags.cas),
            (b'R', false) => StoreMode::Replace,
            _ => StoreMode::Set,
        };
        let binary = flags.has(b'b');
        let storing = Storing {
            mode,
            flags: flags.client_flags,
            deadline: deadline(flags.ttl, now),
            data,
            compare: flags.cas,
            stale_if_older: flags.has(b'I') && matches!(mode, StoreMode::Cas(_)),
            marks: if binary {
                Marks::BINARY_KEY
            } else {
                Marks::NONE
            },
        };
        let (outcome, cas) = self.store.lock_key(key, now).store(&storing);
        count_store(&stats.commands, mode, outcome);
        out.extend_from_slice(match outcome {
            StoreOutcome::Stored => b"HD",
            StoreOutcome::NotStored => b"NS",
            StoreOutcome::Exists => b"EX",
            StoreOutcome::NotFound => b"NF",
        });
        for token in tokens {
            match token[0] {
                b'O' => echo_opaque(out, token)?,
                b'k' => echo_key(out, key, binary),
                b'c' => {
                    out.extend_from_slice(b" c");
                    number(out, cas);
                }
                _ => {}
            }
        }
        out.extend_from_slice(b"\r\n");
        Ok(quiet_if(outcome == StoreOutcome::Stored))
    }

    /// `md`: `HD`, `NF`, or `EX` when `C` does not match; with `I` the
    /// item is marked stale (and given a new cas, and `T`'s TTL) instead.
    fn meta_delete(
        &self,
        meta: &Meta<'_>,
        out: &mut Vec<u8>,
        stats: &ThreadStats,
        now: u32,
    ) -> Result<Quiet, ErrorReply> {
        let Meta { flags, key, tokens } = *meta;
        let c = &stats.commands;
        let mut locked = self.store.lock_key(key, now);
        let (code, quiet) = match locked.item().map(|item| (item.cas, item.marks)) {
            Some((cas, _)) if flags.has(b'C') && cas != flags.cas => {
                c.delete_misses.incr();
                (b"EX", Quiet::Keep)
            }
            Some((_, marks)) if flags.has(b'I') => {
                if flags.has(b'T') {
                    locked.set_deadline(deadline(flags.ttl, now));
                }
                locked.set_marks(marks.with(Marks::STALE).without(Marks::WIN_SENT));
                locked.renew_cas();
                (b"HD", Quiet::Drop)
            }
            Some(_) => {
                c.delete_hits.incr();
                locked.remove();
                (b"HD", Quiet::Drop)
            }
            None => {
                c.delete_misses.incr();
                (b"NF", Quiet::Keep)
            }
        };
        out.extend_from_slice(code);
        echo_request(out, tokens, key, flags)?;
        out.extend_from_slice(b"\r\n");
        Ok(quiet)
    }

    /// `ma`: `HD` or `VA` with the new number, `NF`, `EX`; with `N` a miss
    /// creates the item with the `J` value.
    fn meta_arithmetic(
        &self,
        meta: &Meta<'_>,
        out: &mut Vec<u8>,
        stats: &ThreadStats,
        now: u32,
    ) -> Result<Quiet, ErrorReply> {
        let Meta { flags, key, tokens } = *meta;
        let incr = !matches!(flags.mode, b'D' | b'-');
        let (hits, misses) = arithmetic_counters(&stats.commands, incr);
        let mut locked = self.store.lock_key(key, now);
        let old_len = match locked.item() {
            Some(item) if !item.value.is_empty() && flags.cas != 0 && item.cas != flags.cas => {
                out.extend_from_slice(b"EX");
                echo_request(out, tokens, key, flags)?;
                out.extend_from_slice(b"\r\n");
                return Ok(Quiet::Keep);
            }
            item => item.map_or(0, |item| item.value.len()),
        };
        let outcome = locked.arithmetic(incr, flags.delta);
        // A created item is answered even in quiet mode, as memcached does.
        let (value, created) = match outcome {
            ArithOutcome::Value(value) => {
                hits.incr();
                (value, false)
            }
            ArithOutcome::NonNumeric => {
                out.extend_from_slice(reply::NON_NUMERIC);
                return Ok(Quiet::Keep);
            }
            ArithOutcome::NotFound if flags.has(b'N') => {
                let digits = itoa::Buffer::new()
                    .format(flags.initial)
                    .as_bytes()
                    .to_vec();
                locked.insert([&digits, &[]], 0, 0, Marks::NONE);
                (flags.initial, true)
            }
            ArithOutcome::NotFound => {
                misses.incr();
                out.extend_from_slice(b"NF");
                echo_request(out, tokens, key, flags)?;
                out.extend_from_slice(b"\r\n");
                return Ok(Quiet::Keep);
            }
        };
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(value).as_bytes();
        if flags.has(b'v') {
            out.extend_from_slice(b"VA ");
            number(out, digits.len());
        } else {
            out.extend_from_slice(b"HD");
        }
        // A number that outgrew its item was stored in a new one; memcached
        // then applies `T` to the old, unlinked item: `t` shows it, the
        // stored item keeps its TTL.
        let detached = !created && digits.len() > old_len;
        let mut ttl = locked.item().map_or(0, |item| item.deadline);
        for token in tokens {
            let Some(item) = locked.item() else { break };
            match token[0] {
                b'c' => {
                    out.extend_from_slice(b" c");
                    number(out, item.cas);
                }
                b't' => {
                    out.extend_from_slice(b" t");
                    out.extend_from_slice(Ttl(ttl, now).to_string().as_bytes());
                }
                b'T' => {
                    ttl = deadline(flags.ttl, now);
                    if !detached {
                        locked.set_deadline(ttl);
                    }
                }
                b'N' if created => {
                    ttl = deadline(flags.vivify_ttl, now);
                    locked.set_deadline(ttl);
                }
                b'O' => echo_opaque(out, token)?,
                b'k' => echo_key(out, key, flags.has(b'b')),
                _ => {}
            }
        }
        if flags.has(b'v') {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(digits);
        }
        out.extend_from_slice(b"\r\n");
        Ok(quiet_if(!created))
    }

    /// `me`: memcached's debug line about an item, or `EN`. The item is
    /// not fetched by it.
    pub(super) fn meta_debug(
        &self,
        token: &[u8],
        binary: bool,
        out: &mut Vec<u8>,
        stats: &ThreadStats,
        now: u32,
    ) {
        stats.commands.cmd_meta.incr();
        let mut decoded = [0; KEY_MAX_LENGTH];
        let key = if binary {
            decode_key(token, &mut decoded).unwrap_or(token)
        } else {
            token
        };
        let locked = self.store.lock_key(key, now);
        let Some(item) = locked.item() else {
            out.extend_from_slice(b"EN\r\n");
            return;
        };
        out.extend_from_slice(b"ME ");
        if item.marks.contains(Marks::BINARY_KEY) {
            base64_encode(item.key, out);
        } else {
            out.extend_from_slice(item.key);
        }
        // memcached's `exp` is the time *since* the deadline: negative
        // while the item lives. Its size counts 4 bytes for nonzero flags.
        let exp = match item.deadline {
            0 => -1,
            d => i64::from(now) - i64::from(d),
        };
        let size =
            item_size(item.key.len(), item.value.len()) + if item.flags != 0 { 4 } else { 0 };
        let line = format!(
            " exp={exp} la={} cas={} fetch={} cls=1 size={size}\r\n",
            now.wrapping_sub(item.last_access),
            item.cas,
            if item.marks.contains(Marks::FETCHED) {
                "yes"
            } else {
                "no"
            },
        );
        out.extend_from_slice(line.as_bytes());
    }
}

/// The key a meta request names: its token, decoded if it has `b` (the
/// parser checked that it decodes).
fn request_key<'a>(
    request: &MetaRequest,
    input: &'a [u8],
    decoded: &'a mut [u8; KEY_MAX_LENGTH],
) -> &'a [u8] {
    let token = request.key.of(input);
    if request.flags.has(b'b') {
        decode_key(token, decoded).unwrap_or(token)
    } else {
        token
    }
}

fn quiet_if(nominal: bool) -> Quiet {
    if nominal {
        Quiet::Drop
    } else {
        Quiet::Keep
    }
}

/// A remaining TTL as `t` shows it: -1 for none.
struct Ttl(Deadline, u32);

impl std::fmt::Display for Ttl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Ttl(0, _) => f.write_str("-1"),
            Ttl(deadline, now) => write!(f, "{}", deadline.wrapping_sub(now)),
        }
    }
}

fn number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// ` O<opaque>`, echoed as sent; memcached refuses one over 32 bytes.
fn echo_opaque(out: &mut Vec<u8>, token: &[u8]) -> Result<(), ErrorReply> {
    if token.len() > MAX_OPAQUE {
        return Err(ErrorReply::OpaqueTooLong);
    }
    out.push(b' ');
    out.extend_from_slice(token);
    Ok(())
}

/// ` k<key>`, base64-encoded and followed by ` b` for a binary key.
fn echo_key(out: &mut Vec<u8>, key: &[u8], binary: bool) {
    out.extend_from_slice(b" k");
    if binary {
        base64_encode(key, out);
        out.extend_from_slice(b" b");
    } else {
        out.extend_from_slice(key);
    }
}

/// The `O` and `k` flags of a reply about the request's key rather than
/// an item (a miss, `md`, a failed `ma`).
fn echo_request(
    out: &mut Vec<u8>,
    tokens: &[&[u8]],
    key: &[u8],
    flags: &MetaFlags,
) -> Result<(), ErrorReply> {
    for token in tokens {
        match token[0] {
            b'O' => echo_opaque(out, token)?,
            b'k' => echo_key(out, key, flags.has(b'b')),
            _ => {}
        }
    }
    Ok(())
}
