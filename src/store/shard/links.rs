//! The links threaded through a shard's items: each bucket's chain of
//! items (the hash index, doubled a few buckets per insert), and the
//! least-recently-used list.

use std::hash::BuildHasher;

use super::Shard;
use crate::store::buckets::MOVED_PER_INSERT;
use crate::store::item::{Header, NIL};

/// How many old buckets ahead of the move their items are fetched.
const LOOKAHEAD: usize = 8;

/// Asks the CPU to bring the cache line at `address` in, without waiting.
fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

impl Shard {
    /// Puts `slot` first in the chain of `hash`'s bucket.
    pub(super) fn chain(&mut self, hash: u64, slot: u32) {
        let head = self.buckets.head(hash);
        let first = std::mem::replace(head, slot);
        self.header_mut(slot).chain = first;
    }

    /// The hash of `slot`'s key.
    pub(super) fn hash_of(&self, slot: u32) -> u64 {
        self.hasher.hash_one(self.live(slot).key())
    }

    /// Takes `slot`, whose key hashes to `hash`, out of its bucket's chain.
    pub(super) fn unchain(&mut self, slot: u32, hash: u64) {
        let after = self.live(slot).header().chain;
        let head = self.buckets.head(hash);
        if *head == slot {
            *head = after;
            return;
        }
        let mut before = *head;
        loop {
            assert_ne!(before, NIL, "a listed slot is in its bucket's chain");
            let next = self.live(before).header().chain;
            if next == slot {
                self.header_mut(before).chain = after;
                return;
            }
            before = next;
        }
    }

    /// After an insert: moves a few chains of a doubling under way, and
    /// starts one past one item per bucket (finishing any still under way
    /// first, which the pace of the moves makes unlikely).
    pub(super) fn grow_index(&mut self) {
        if self.items > self.buckets.len() {
            while self.buckets.doubling() {
                self.move_old_chain();
            }
            self.buckets.start_doubling();
        }
        for _ in 0..MOVED_PER_INSERT {
            if !self.buckets.doubling() {
                break;
            }
            self.move_old_chain();
        }
    }

    /// Moves the next old bucket's chain to the new buckets.
    fn move_old_chain(&mut self) {
        // Bucket order meets the items at random, each a cache miss: ask
        // for the head item a few buckets ahead, and for its slot twice as
        // far ahead (so that reading the slot then finds it cached).
        if let Some(slot) = self
            .slots
            .get(self.buckets.old_head_ahead(2 * LOOKAHEAD) as usize)
        {
            prefetch(std::ptr::from_ref(slot).cast());
        }
        if let Some(Some(item)) = self
            .slots
            .get(self.buckets.old_head_ahead(LOOKAHEAD) as usize)
        {
            prefetch(item.address());
        }
        let mut slot = self.buckets.take_old().unwrap_or(NIL);
        while slot != NIL {
            let next = self.live(slot).header().chain;
            self.chain(self.hash_of(slot), slot);
            slot = next;
        }
    }

    /// Makes `slot` the most recently used.
    pub(super) fn bump(&mut self, slot: u32) {
        if self.head != slot {
            self.unlink(slot);
            self.push_head(slot);
        }
    }

    /// Puts `slot`, in no list, first in the recency list.
    pub(super) fn push_head(&mut self, slot: u32) {
        let old_head = self.head;
        let item = self.header_mut(slot);
        item.prev = NIL;
        item.next = old_head;
        match old_head {
            NIL => self.tail = slot,
            h => self.header_mut(h).prev = slot,
        }
        self.head = slot;
    }

    /// Takes `slot` out of the recency list.
    pub(super) fn unlink(&mut self, slot: u32) {
        let Header { prev, next, .. } = *self.live(slot).header();
        match prev {
            NIL => self.head = next,
            p => self.header_mut(p).next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.header_mut(n).prev = prev,
        }
    }
}
