//! One shard of the store: slots holding items, a hash index over them and
//! a least-recently-used list through them. Always used under the shard's
//! lock.
//!
//! The index is memcached's (`assoc.c`): a power-of-two array of chain
//! heads, each chain threaded through the items' own `chain` field,
//! doubled when it holds more than one item per bucket (memcached: 1.5;
//! shorter chains cost 7-10% less per store operation here, for at most
//! 2 bytes more per item), a few buckets per insert ([`Buckets`]). An open-addressing table would keep
//! its own copy of every slot number, and with items coming and going its
//! deleted markers made it double in size (to 15 bytes per item at -m 64).

use std::hash::BuildHasher;

use foldhash::fast::RandomState;

use super::buckets::Buckets;
use super::chunked::Chunked;
use super::expiry::{is_past, Deadline};
use super::item::{Fields, Header, Item, Marks, NIL};

mod links;

/// A slot: the item, or `None` when free. 8 bytes.
type Slot = Option<Item>;

// A slot is a thin pointer; a larger one would undo the point of `Item`.
const _: () = assert!(size_of::<Slot>() == 8);

/// What an item costs beside its own allocation: its slot, and a bucket
/// (the index holds 0.5 to 1 item per 4-byte bucket).
const SLOT_COST: usize = size_of::<Slot>() + size_of::<u32>();

/// What an item of `data_len` key and value bytes really costs, counted in
/// `bytes`: the allocator's size class for its fields, key and value, and
/// its slot and bucket.
pub fn item_cost(data_len: usize) -> usize {
    Item::allocation(data_len) + SLOT_COST
}

/// Low bits of every cas unique name the shard that issued it, so that
/// shards count independently and uniques stay unique across the store.
pub const SHARD_BITS: u32 = 6;

/// The bits of a key's hash kept in its item (the bucket takes the low
/// bits, the shard bits 32-37).
fn tag(hash: u64) -> u16 {
    (hash >> 48) as u16
}

/// Buckets a shard starts with.
const FIRST_BUCKETS: usize = 64;

/// A live item, as a reader sees it while holding the shard lock.
pub struct ItemRef<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub flags: u32,
    pub cas: u64,
    pub deadline: Deadline,
    pub last_access: u32,
    pub marks: Marks,
}

/// Why a lookup found nothing to serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    Absent,
    Expired,
    /// Invalidated by a delayed `flush_all`.
    Flushed,
}

/// The time a shard operation happens at, with the pending `flush_all`
/// cutoff: items stored or last fetched at or before `flush_cutoff` are
/// dead once `now` reaches it (0: no flush pending).
#[derive(Clone, Copy, Debug)]
pub struct Moment {
    pub now: u32,
    pub flush_cutoff: u32,
}

/// Counters the store reports in `stats`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShardCounters {
    pub evictions: u64,
    pub total_items: u64,
    /// Expired or flushed items whose memory was taken back.
    pub reclaimed: u64,
}

/// A new item's fields, with its value given in up to two parts (so that
/// `append` and `prepend` build the new value without a temporary copy).
pub struct NewItem<'a> {
    pub key: &'a [u8],
    pub value: [&'a [u8]; 2],
    pub flags: u32,
    pub deadline: Deadline,
    pub marks: Marks,
}

impl NewItem<'_> {
    /// Key and value bytes.
    pub fn data_len(&self) -> usize {
        self.key.len() + self.value[0].len() + self.value[1].len()
    }
}

pub struct Shard {
    /// Chain heads: the slot of the first item whose key hashes to each
    /// bucket, or `NIL`.
    buckets: Buckets,
    slots: Chunked<Slot>,
    free: Vec<u32>,
    hasher: RandomState,
    /// Most recently used end of the LRU list.
    head: u32,
    /// Least recently used end: evicted first.
    tail: u32,
    id: u64,
    cas_counter: u64,
    pub bytes: usize,
    pub items: usize,
    pub counters: ShardCounters,
}

impl Shard {
    /// Shard number `id`, whose keys are hashed by `hasher`.
    pub fn new(id: usize, hasher: RandomState) -> Shard {
        Shard {
            buckets: Buckets::new(FIRST_BUCKETS),
            slots: Chunked::new(),
            free: Vec::new(),
            hasher,
            head: NIL,
            tail: NIL,
            id: id as u64,
            cas_counter: 0,
            bytes: 0,
            items: 0,
            counters: ShardCounters::default(),
        }
    }

    /// The slot of the live item under `key`; a dead one found on the way
    /// is removed (lazy expiry).
    pub fn find(&mut self, hash: u64, key: &[u8], at: Moment) -> Result<u32, Miss> {
        let mut slot = *self.buckets.head(hash);
        while slot != NIL {
            let item = self.live(slot);
            if item.header().tag == tag(hash) && item.key() == key {
                break;
            }
            slot = item.header().chain;
        }
        if slot == NIL {
            return Err(Miss::Absent);
        }
        match self.death(slot, at) {
            None => Ok(slot),
            Some(why) => {
                self.remove(slot, hash);
                self.counters.reclaimed += 1;
                Err(why)
            }
        }
    }

    fn death(&self, slot: u32, at: Moment) -> Option<Miss> {
        let item = self.live(slot).header();
        if is_past(item.deadline, at.now) {
            Some(Miss::Expired)
        } else if at.flush_cutoff != 0
            && at.now >= at.flush_cutoff
            && item.last_access <= at.flush_cutoff
        {
            Some(Miss::Flushed)
        } else {
            None
        }
    }

    /// The item in `slot`, marked as just used.
    pub fn read(&mut self, slot: u32) -> ItemRef<'_> {
        self.bump(slot);
        self.item(slot)
    }

    /// The item in `slot`, leaving its recency alone.
    pub fn item(&self, slot: u32) -> ItemRef<'_> {
        let item = self.live(slot);
        let header = item.header();
        ItemRef {
            key: item.key(),
            value: item.value(),
            flags: header.flags,
            cas: header.cas,
            deadline: header.deadline,
            last_access: header.last_access,
            marks: header.marks,
        }
    }

    /// Marks the item in `slot` as fetched by a client at `now` (a get,
    /// touch or `mg`), as memcached's `do_item_bump` with its segmented
    /// LRU: the first fetch marks it fetched, the second active, and only
    /// that one moves its access time.
    pub fn fetch(&mut self, slot: u32, now: u32) {
        let item = self.header_mut(slot);
        if !item.marks.contains(Marks::FETCHED) {
            item.marks = item.marks.with(Marks::FETCHED);
        } else if !item.marks.contains(Marks::ACTIVE) {
            item.marks = item.marks.with(Marks::ACTIVE);
            item.last_access = now;
        }
        self.bump(slot);
    }

    pub fn set_deadline(&mut self, slot: u32, deadline: Deadline) {
        self.header_mut(slot).deadline = deadline;
    }

    pub fn set_marks(&mut self, slot: u32, marks: Marks) {
        self.header_mut(slot).marks = marks;
    }

    /// Gives the item in `slot` a new cas unique and returns it.
    pub fn renew_cas(&mut self, slot: u32) -> u64 {
        let cas = self.next_cas();
        self.header_mut(slot).cas = cas;
        cas
    }

    /// The value bytes of `slot`, to change in place (`incr`/`decr`); the
    /// item gets a new cas unique.
    pub fn value_mut(&mut self, slot: u32) -> &mut [u8] {
        let cas = self.next_cas();
        self.bump(slot);
        let item = self.live_mut(slot);
        item.header_mut().cas = cas;
        item.value_mut()
    }

    /// Stores a new item (the caller has removed any old one under its key),
    /// evicting least recently used items first until it fits `limit`.
    /// Returns the new item's slot.
    pub fn insert(&mut self, hash: u64, item: NewItem<'_>, now: u32, limit: usize) -> u32 {
        self.make_room(Item::allocation(item.data_len()), limit);
        let fields = Fields {
            tag: tag(hash),
            cas: self.next_cas(),
            flags: item.flags,
            deadline: item.deadline,
            now,
            marks: item.marks,
        };
        let item = Item::new(item.key, item.value, fields);
        self.bytes += item_cost(item.data_len());
        self.items += 1;
        self.counters.total_items += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(item);
                slot
            }
            None => {
                self.slots.push(Some(item));
                (self.slots.len() - 1) as u32
            }
        };
        self.chain(hash, slot);
        self.push_head(slot);
        self.grow_index();
        slot
    }

    /// Takes the item in `slot`, whose key hashes to `hash`, out of the
    /// index, the list and the count.
    pub fn remove(&mut self, slot: u32, hash: u64) {
        self.unchain(slot, hash);
        self.unlink(slot);
        let item = self.slots[slot as usize].take();
        let item = item.expect("a listed slot holds an item");
        self.bytes -= item_cost(item.data_len());
        self.items -= 1;
        self.free.push(slot);
    }

    /// Evicts from the cold end until a new item whose allocation takes
    /// `incoming` bytes (0: none) fits in `limit` with all the shard holds
    /// (see [`Shard::held`]). An item larger than the whole limit is still
    /// stored, alone.
    pub fn make_room(&mut self, incoming: usize, limit: usize) {
        while self.tail != NIL {
            // A new item takes a free slot if there is one, else a new slot.
            let slot = if incoming > 0 && self.free.is_empty() {
                size_of::<Slot>()
            } else {
                0
            };
            if self.held() + incoming + slot <= limit {
                break;
            }
            self.remove(self.tail, self.hash_of(self.tail));
            self.counters.evictions += 1;
        }
        // Slots are reused but never given back: when the index grows, the
        // items evicted to pay for it leave their slots free for good, and
        // small items replaced by large ones leave most slots free. Then
        // move the items to new slots, which takes more than an eighth of
        // the items' count in removals to happen again.
        if self.free.len() > self.items / 8 + 1024 {
            self.compact();
        }
    }

    /// Moves the live items into new, dense slots, keeping their order.
    fn compact(&mut self) {
        let mut old = std::mem::replace(&mut self.slots, Chunked::new());
        self.buckets = Buckets::new(self.buckets.len());
        self.free = Vec::new();
        let mut slot = self.tail;
        (self.head, self.tail) = (NIL, NIL);
        while slot != NIL {
            let item = old[slot as usize]
                .take()
                .expect("a listed slot holds an item");
            slot = item.header().prev;
            let hash = self.hasher.hash_one(item.key());
            let new_slot = self.slots.len() as u32;
            self.slots.push(Some(item));
            self.chain(hash, new_slot);
            self.push_head(new_slot);
        }
    }

    /// Removes every dead item; returns how many.
    pub fn sweep(&mut self, at: Moment) -> usize {
        let dead: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&slot| self.slots[slot as usize].is_some())
            .filter(|&slot| self.death(slot, at).is_some())
            .collect();
        for &slot in &dead {
            self.remove(slot, self.hash_of(slot));
        }
        self.counters.reclaimed += dead.len() as u64;
        dead.len()
    }

    /// Removes every item (`flush_all` with no delay).
    pub fn clear(&mut self) {
        // New, empty containers: the old ones' memory goes back.
        self.buckets = Buckets::new(FIRST_BUCKETS);
        self.slots = Chunked::new();
        self.free = Vec::new();
        self.head = NIL;
        self.tail = NIL;
        self.bytes = 0;
        self.items = 0;
    }

    /// Live items from most to least recently used: key, value length, deadline.
    pub fn items_by_recency(&self) -> impl Iterator<Item = (&[u8], usize, Deadline)> {
        let mut slot = self.head;
        std::iter::from_fn(move || {
            let item = self.slots.get(slot as usize)?.as_ref()?;
            slot = item.header().next;
            Some((item.key(), item.value().len(), item.header().deadline))
        })
    }

    /// Memory the shard holds, which the memory limit bounds: its items'
    /// allocations, its slots (live or free), its buckets, and its free
    /// list at its capacity. The unused rest of the last chunk of slots
    /// (under 8 KiB) is not counted: a new chunk would otherwise evict a
    /// hundred small items at once.
    pub fn held(&self) -> usize {
        let containers = self.slots.len() * size_of::<Slot>()
            + self.buckets.bytes()
            + self.free.capacity() * size_of::<u32>();
        self.bytes - self.items * SLOT_COST + containers
    }

    fn live(&self, slot: u32) -> &Item {
        self.slots[slot as usize]
            .as_ref()
            .expect("a listed slot holds an item")
    }

    fn live_mut(&mut self, slot: u32) -> &mut Item {
        self.slots[slot as usize]
            .as_mut()
            .expect("a listed slot holds an item")
    }

    fn header_mut(&mut self, slot: u32) -> &mut Header {
        self.live_mut(slot).header_mut()
    }

    fn next_cas(&mut self) -> u64 {
        self.cas_counter += 1;
        self.cas_counter << SHARD_BITS | self.id
    }
}

#[cfg(test)]
mod tests;
