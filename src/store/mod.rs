//! The in-memory store, shared by every thread of every pattern.
//!
//! Keys are spread over a power-of-two number of shards, each a
//! `Shard` behind its own mutex (lock striping), so that
//! threads rarely contend. Each shard owns an equal part of the memory limit
//! and evicts its own least recently used items, so the store never holds
//! more than the limit plus one item per shard (an item is stored even when
//! it alone exceeds its shard's part), counting the items at their
//! allocator size class ([`item_cost`]) and the shards' own tables. Expired
//! items are removed when a lookup meets them and by [`Store::sweep`], which
//! the server calls periodically.
//!
//! Every operation takes `now` (unix seconds) from the caller: the server
//! reads the clock once per batch of requests, and tests move time at will.

mod buckets;
mod chunked;
pub mod counter;
pub mod expiry;
mod item;
mod key_lock;
mod shard;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use foldhash::fast::RandomState;
use std::hash::BuildHasher;

/// How a storage command is to treat an existing item.
pub use crate::protocol::StoreMode;
pub use expiry::{deadline, unix_now, Deadline};
pub use item::Marks;
pub use key_lock::{KeyLock, Storing};
pub use shard::{item_cost, ItemRef, Miss};
use shard::{Moment, Shard, SHARD_BITS};

/// The store's answer to a storage command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored,
    NotStored,
    /// `cas` on an item changed since the client read it.
    Exists,
    /// `cas` on a missing item.
    NotFound,
}

/// The store's answer to `incr`/`decr` and `ma`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOutcome {
    Value(u64),
    NotFound,
    NonNumeric,
}

/// Totals over all shards, for `stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreStats {
    pub curr_items: u64,
    /// What the items cost (see [`item_cost`]): memcached's `bytes`.
    pub bytes: u64,
    /// All the memory the store holds: items, and its tables at capacity.
    pub held: u64,
    pub total_items: u64,
    pub evictions: u64,
    pub reclaimed: u64,
}

/// One key in `stats cachedump`.
pub struct DumpedItem {
    pub key: Vec<u8>,
    pub value_len: usize,
    pub deadline: Deadline,
}

/// The shared key-value store with memcached's semantics.
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    memory_limit: AtomicUsize,
    max_item_size: usize,
    /// Pending `flush_all <delay>` cutoff (see [`shard::Moment`]); 0 if none.
    flush_cutoff: AtomicU32,
}

impl Store {
    /// A store holding at most `memory_limit` bytes (plus one item per
    /// shard), of items of at most `max_item_size` bytes.
    pub fn new(memory_limit: usize, max_item_size: usize) -> Store {
        let shards = shard_count(memory_limit, max_item_size);
        let hasher = RandomState::default();
        Store {
            shards: (0..shards)
                .map(|i| Mutex::new(Shard::new(i, hasher)))
                .collect(),
            hasher,
            memory_limit: AtomicUsize::new(memory_limit),
            max_item_size,
            flush_cutoff: AtomicU32::new(0),
        }
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub fn memory_limit(&self) -> usize {
        self.memory_limit.load(Ordering::Relaxed)
    }

    /// Changes the memory limit (`cache_memlimit`), evicting at once what no
    /// longer fits, one shard lock at a time, and handing the freed pages
    /// back to the system.
    pub fn set_memory_limit(&self, bytes: usize) {
        self.memory_limit.store(bytes, Ordering::Relaxed);
        let part = self.shard_limit();
        for shard in self.shards.iter() {
            lock(shard).make_room(0, part);
        }
        crate::alloc::purge();
    }

    /// Looks `key` up and hands the item to `read` under the shard lock (so
    /// the value is copied straight into a reply, with no reference count).
    /// With `touch`, the item's deadline is changed first (`gat`).
    pub fn get<T>(
        &self,
        key: &[u8],
        touch: Option<Deadline>,
        now: u32,
        read: impl FnOnce(ItemRef<'_>) -> T,
    ) -> Result<T, Miss> {
        let mut locked = self.lock_key(key, now);
        locked.found()?;
        if let Some(deadline) = touch {
            locked.set_deadline(deadline);
        }
        locked.fetch();
        locked.item().map(read).ok_or(Miss::Absent)
    }

    /// `set`, `add`, `replace`, `append`, `prepend` and `cas`.
    pub fn store(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        deadline: Deadline,
        data: &[u8],
        now: u32,
    ) -> StoreOutcome {
        let new = Storing {
            mode,
            flags,
            deadline,
            data,
            ..Storing::default()
        };
        self.lock_key(key, now).store(&new).0
    }

    /// Removes `key`; says whether a live item was there.
    pub fn delete(&self, key: &[u8], now: u32) -> bool {
        let mut locked = self.lock_key(key, now);
        let found = locked.found().is_ok();
        locked.remove();
        found
    }

    /// `incr` (wrapping at 2^64) or `decr` (stopping at 0).
    pub fn arithmetic(&self, key: &[u8], incr: bool, delta: u64, now: u32) -> ArithOutcome {
        self.lock_key(key, now).arithmetic(incr, delta)
    }

    /// Gives `key` a new deadline; says whether it was there.
    pub fn touch(&self, key: &[u8], deadline: Deadline, now: u32) -> bool {
        let mut locked = self.lock_key(key, now);
        if locked.found().is_err() {
            return false;
        }
        locked.set_deadline(deadline);
        locked.fetch();
        true
    }

    /// Locks the shard of `key` and looks the key up, for an operation of
    /// several steps that must see no other client in between (the meta
    /// commands, and the classic ones built on the same steps).
    pub fn lock_key<'a>(&'a self, key: &'a [u8], now: u32) -> KeyLock<'a> {
        let (hash, mut shard) = self.locate(key);
        let slot = shard.find(hash, key, self.moment(now));
        KeyLock {
            shard,
            hash,
            key,
            now,
            slot,
            limit: self.shard_limit(),
            max_item_size: self.max_item_size,
        }
    }

    /// `flush_all`: with no delay every item goes now; with a delay, every
    /// item stored until then becomes invalid at that time (as memcached,
    /// one second early: its cutoff is `now + delay - 1`).
    pub fn flush_all(&self, delay: i64, now: u32) {
        if delay <= 0 {
            self.flush_cutoff.store(0, Ordering::Relaxed);
            for shard in self.shards.iter() {
                lock(shard).clear();
            }
        } else {
            let cutoff = deadline(delay, now).saturating_sub(1).max(1);
            self.flush_cutoff.store(cutoff, Ordering::Relaxed);
        }
    }

    /// Removes expired and flushed items from every shard, one shard lock at
    /// a time; returns how many. The server calls this about once a second.
    pub fn sweep(&self, now: u32) -> usize {
        let at = self.moment(now);
        self.shards.iter().map(|s| lock(s).sweep(at)).sum()
    }

    /// Totals for `stats`.
    pub fn stats(&self) -> StoreStats {
        let mut total = StoreStats::default();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            total.curr_items += shard.items as u64;
            total.bytes += shard.bytes as u64;
            total.held += shard.held() as u64;
            total.total_items += shard.counters.total_items;
            total.evictions += shard.counters.evictions;
            total.reclaimed += shard.counters.reclaimed;
        }
        total
    }

    /// Up to `limit` keys (0: all), most recently used first within each
    /// shard, for `stats cachedump`.
    pub fn dump(&self, limit: usize) -> Vec<DumpedItem> {
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut items = Vec::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            let room = limit - items.len();
            items.extend(
                shard
                    .items_by_recency()
                    .take(room)
                    .map(|(key, value_len, deadline)| DumpedItem {
                        key: key.to_vec(),
                        value_len,
                        deadline,
                    }),
            );
            if items.len() == limit {
                break;
            }
        }
        items
    }

    fn shard_limit(&self) -> usize {
        self.memory_limit() / self.shards.len()
    }

    fn moment(&self, now: u32) -> Moment {
        Moment {
            now,
            flush_cutoff: self.flush_cutoff.load(Ordering::Relaxed),
        }
    }

    fn locate(&self, key: &[u8]) -> (u64, MutexGuard<'_, Shard>) {
        let hash = self.hasher.hash_one(key);
        // Middle bits pick the shard: the shard's index uses the low bits
        // for its bucket, which must stay varied within a shard.
        let index = (hash >> 32) as usize & (self.shards.len() - 1);
        (hash, lock(&self.shards[index]))
    }
}

/// A shard's lock. Nothing panics while holding one, so a poisoned lock
/// (impossible in practice) still guards consistent data.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// As many shards as keep each shard's part of the limit at least two
/// maximum items, up to 64 (the cas uniques' shard bits).
fn shard_count(memory_limit: usize, max_item_size: usize) -> usize {
    let fit = memory_limit / (2 * max_item_size.max(1));
    let max = 1 << SHARD_BITS;
    match fit {
        0 => 1,
        n if n >= max => max,
        n => 1 << n.ilog2(),
    }
}
