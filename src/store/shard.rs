//! One shard of the store: a hash table over an array of slots, each
//! holding one item and threaded on a least-recently-used list. Always used
//! under the shard's lock.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::chunked::Chunked;
use super::expiry::{is_past, Deadline};
use super::item::{Fields, Item, Marks};

/// What an item costs beside its own allocation: its slot and its table
/// bucket (a slot number and a control byte).
const SLOT_COST: usize = size_of::<Slot>() + size_of::<u32>() + 1;

/// What an item of `data_len` key and value bytes really costs, counted in
/// `bytes`: the allocator's size class for its fields, key and value, and
/// its slot and table bucket.
pub fn item_cost(data_len: usize) -> usize {
    Item::allocation(data_len) + SLOT_COST
}

/// Low bits of every cas unique name the shard that issued it, so that
/// shards count independently and uniques stay unique across the store.
pub const SHARD_BITS: u32 = 6;

const NIL: u32 = u32::MAX;

/// A place for one item, and its neighbours in the LRU list (kept here, not
/// in the item, so that relinking touches the slots only). 16 bytes.
struct Slot {
    /// `None` in a free slot.
    item: Option<Item>,
    prev: u32,
    next: u32,
}

// Two slots per item would undo the point of `Item`: keep it at 16 bytes.
const _: () = assert!(size_of::<Slot>() == 16);

impl Slot {
    fn live(&self) -> &Item {
        self.item
            .as_ref()
            .expect("a slot in the table holds an item")
    }

    fn live_mut(&mut self) -> &mut Item {
        self.item
            .as_mut()
            .expect("a slot in the table holds an item")
    }
}

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
/// cutoff: items stored at or before `flush_cutoff` are dead once `now`
/// reaches it (0: no flush pending).
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
    /// Slot numbers, found by the hash of their item's key (not stored:
    /// recomputed when the table grows).
    table: HashTable<u32>,
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
            table: HashTable::new(),
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
        let slots = &self.slots;
        let Some(&slot) = self
            .table
            .find(hash, |&i| slots[i as usize].live().key() == key)
        else {
            return Err(Miss::Absent);
        };
        match self.death(slot, at) {
            None => Ok(slot),
            Some(why) => {
                self.remove(slot);
                self.counters.reclaimed += 1;
                Err(why)
            }
        }
    }

    fn death(&self, slot: u32, at: Moment) -> Option<Miss> {
        let item = self.slots[slot as usize].live().header();
        if is_past(item.deadline, at.now) {
            Some(Miss::Expired)
        } else if at.flush_cutoff != 0
            && at.now >= at.flush_cutoff
            && item.stored_at <= at.flush_cutoff
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
        let item = self.slots[slot as usize].live();
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
        let item = self.slots[slot as usize].live_mut();
        item.header_mut().cas = cas;
        item.value_mut()
    }

    /// Stores a new item (the caller has removed any old one under its key),
    /// evicting least recently used items first until it fits `limit`.
    /// Returns the new item's slot.
    pub fn insert(&mut self, hash: u64, item: NewItem<'_>, now: u32, limit: usize) -> u32 {
        self.make_room(Item::allocation(item.data_len()), limit);
        let fields = Fields {
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
                self.slots[slot as usize].item = Some(item);
                slot
            }
            None => {
                self.slots.push(Slot {
                    item: Some(item),
                    prev: NIL,
                    next: NIL,
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.index(hash, slot);
        self.push_head(slot);
        slot
    }

    /// Takes the item in `slot` out of the table, the list and the count.
    pub fn remove(&mut self, slot: u32) {
        let hash = self.hasher.hash_one(self.slots[slot as usize].live().key());
        let indexed = self.table.find_entry(hash, |&i| i == slot);
        indexed.expect("a live slot is in the table").remove();
        self.unlink(slot);
        let item = self.slots[slot as usize].item.take();
        let item = item.expect("a slot in the table holds an item");
        self.bytes -= item_cost(item.data_len());
        self.items -= 1;
        self.free.push(slot);
    }

    /// Evicts from the cold end until a new item whose key and value take
    /// `incoming` bytes (0: none) fits in `limit` with all the shard holds
    /// (see [`Shard::held`]). An item larger than the whole limit is still
    /// stored, alone.
    pub fn make_room(&mut self, incoming: usize, limit: usize) {
        while self.tail != NIL {
            // A new item takes a free slot if there is one, else a new slot.
            let slot = if incoming > 0 && self.free.is_empty() {
                SLOT_COST
            } else {
                0
            };
            if self.held() + incoming + slot <= limit {
                break;
            }
            self.remove(self.tail);
            self.counters.evictions += 1;
        }
        // Slots are reused but never given back, and evicting an item frees
        // only its key and value: when the table or the free list grows, the
        // items evicted to pay for it leave their slots free for good, and
        // small items replaced by large ones leave most slots free. Then
        // move the items to containers their size, which takes more than
        // an eighth of the items' count in removals to happen again.
        if self.free.len() > self.items / 8 + 1024 {
            self.compact();
        }
    }

    /// Moves the live items into new containers, keeping their order.
    fn compact(&mut self) {
        let mut old = std::mem::replace(&mut self.slots, Chunked::new());
        self.table = HashTable::new();
        self.free = Vec::new();
        let mut slot = self.tail;
        (self.head, self.tail) = (NIL, NIL);
        while slot != NIL {
            let moving = &mut old[slot as usize];
            slot = moving.prev;
            let item = moving.item.take().expect("a listed slot holds an item");
            let hash = self.hasher.hash_one(item.key());
            let new_slot = self.slots.len() as u32;
            self.slots.push(Slot {
                item: Some(item),
                prev: NIL,
                next: NIL,
            });
            self.index(hash, new_slot);
            self.push_head(new_slot);
        }
    }

    /// Removes every dead item; returns how many.
    pub fn sweep(&mut self, at: Moment) -> usize {
        let dead: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|&slot| self.slots[slot as usize].item.is_some())
            .filter(|&slot| self.death(slot, at).is_some())
            .collect();
        for &slot in &dead {
            self.remove(slot);
        }
        self.counters.reclaimed += dead.len() as u64;
        dead.len()
    }

    /// Removes every item (`flush_all` with no delay).
    pub fn clear(&mut self) {
        // New, empty containers: the old ones' memory goes back.
        self.table = HashTable::new();
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
            let listed = self.slots.get(slot as usize)?;
            slot = listed.next;
            let item = listed.live();
            Some((item.key(), item.value().len(), item.header().deadline))
        })
    }

    /// Memory the shard holds, which the memory limit bounds: its items'
    /// allocations, its slots (live or free), and its table and free list
    /// at their capacity. The unused rest of the last chunk of slots (under
    /// 16 KiB) is not counted: a new chunk would otherwise evict a thousand
    /// small items at once.
    pub fn held(&self) -> usize {
        let containers = self.slots.len() * size_of::<Slot>()
            + self.table.allocation_size()
            + self.free.capacity() * size_of::<u32>();
        self.bytes - self.items * SLOT_COST + containers
    }

    fn header_mut(&mut self, slot: u32) -> &mut super::item::Header {
        self.slots[slot as usize].live_mut().header_mut()
    }

    /// Enters `slot` in the table under `hash`.
    fn index(&mut self, hash: u64, slot: u32) {
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.table.insert_unique(hash, slot, |&i| {
            hasher.hash_one(slots[i as usize].live().key())
        });
    }

    fn next_cas(&mut self) -> u64 {
        self.cas_counter += 1;
        self.cas_counter << SHARD_BITS | self.id
    }

    fn bump(&mut self, slot: u32) {
        if self.head != slot {
            self.unlink(slot);
            self.push_head(slot);
        }
    }

    fn push_head(&mut self, slot: u32) {
        let old_head = self.head;
        let linked = &mut self.slots[slot as usize];
        linked.prev = NIL;
        linked.next = old_head;
        match old_head {
            NIL => self.tail = slot,
            h => self.slots[h as usize].prev = slot,
        }
        self.head = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let Slot { prev, next, .. } = self.slots[slot as usize];
        match prev {
            NIL => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
    }
}
