//! One shard of the store: a hash table over a slab of entries, threaded on
//! a least-recently-used list. Always used under the shard's lock.

use hashbrown::HashTable;

use super::chunked::Chunked;
use super::expiry::{is_past, Deadline};
use crate::alloc;

/// What an item costs beside its key and value's allocation: its entry and
/// its table bucket (a slot number and a control byte).
const ENTRY_COST: usize = std::mem::size_of::<Entry>() + std::mem::size_of::<u32>() + 1;

/// What an item of `data_len` key and value bytes really costs, counted in
/// `bytes`: the allocator's size class for the key and value, and its entry
/// and table bucket.
pub fn item_cost(data_len: usize) -> usize {
    alloc::size_class(data_len) + ENTRY_COST
}

/// Low bits of every cas unique name the shard that issued it, so that
/// shards count independently and uniques stay unique across the store.
pub const SHARD_BITS: u32 = 6;

const NIL: u32 = u32::MAX;

/// One cached item. A free slot has empty `data`.
struct Entry {
    /// The key followed by the value, in one allocation.
    data: Box<[u8]>,
    hash: u64,
    cas: u64,
    flags: u32,
    deadline: Deadline,
    stored_at: u32,
    /// When the item was stored or last fetched (meta `l`, `me`'s `la`).
    last_access: u32,
    marks: Marks,
    prev: u32,
    next: u32,
    key_len: u8,
}

impl Entry {
    fn key(&self) -> &[u8] {
        &self.data[..self.key_len as usize]
    }

    fn size(&self) -> usize {
        item_cost(self.data.len())
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

/// The per-item state bits the meta commands read and set, as memcached's
/// `it_flags`: fetched before, stale, win token sent, key stored from base64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marks(u8);

impl Marks {
    pub const NONE: Marks = Marks(0);
    /// Fetched at least once since stored (`h`, `me`'s `fetch`).
    pub const FETCHED: Marks = Marks(1);
    /// Invalidated by `md I` or stored by `ms I` with an older cas (`X`).
    pub const STALE: Marks = Marks(2);
    /// A client already got the win token to recache it (`W`, then `Z`).
    pub const WIN_SENT: Marks = Marks(4);
    /// The key was sent base64-encoded (`b`): `k` and `me` encode it back.
    pub const BINARY_KEY: Marks = Marks(8);
    /// Fetched twice: memcached's `ITEM_ACTIVE`, set (with the access
    /// time) by the second fetch only.
    const ACTIVE: Marks = Marks(16);

    pub fn contains(self, other: Marks) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn with(self, other: Marks) -> Marks {
        Marks(self.0 | other.0)
    }

    pub fn without(self, other: Marks) -> Marks {
        Marks(self.0 & !other.0)
    }
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
    table: HashTable<u32>,
    entries: Chunked<Entry>,
    free: Vec<u32>,
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
    pub fn new(id: usize) -> Shard {
        Shard {
            table: HashTable::new(),
            entries: Chunked::new(),
            free: Vec::new(),
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
        let entries = &self.entries;
        let Some(&slot) = self.table.find(hash, |&i| entries[i as usize].key() == key) else {
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
        let entry = &self.entries[slot as usize];
        if is_past(entry.deadline, at.now) {
            Some(Miss::Expired)
        } else if at.flush_cutoff != 0
            && at.now >= at.flush_cutoff
            && entry.stored_at <= at.flush_cutoff
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
        let entry = &self.entries[slot as usize];
        ItemRef {
            key: entry.key(),
            value: &entry.data[entry.key_len as usize..],
            flags: entry.flags,
            cas: entry.cas,
            deadline: entry.deadline,
            last_access: entry.last_access,
            marks: entry.marks,
        }
    }

    /// Marks the item in `slot` as fetched by a client at `now` (a get,
    /// touch or `mg`), as memcached's `do_item_bump` with its segmented
    /// LRU: the first fetch marks it fetched, the second active, and only
    /// that one moves its access time.
    pub fn fetch(&mut self, slot: u32, now: u32) {
        let entry = &mut self.entries[slot as usize];
        if !entry.marks.contains(Marks::FETCHED) {
            entry.marks = entry.marks.with(Marks::FETCHED);
        } else if !entry.marks.contains(Marks::ACTIVE) {
            entry.marks = entry.marks.with(Marks::ACTIVE);
            entry.last_access = now;
        }
        self.bump(slot);
    }

    pub fn set_deadline(&mut self, slot: u32, deadline: Deadline) {
        self.entries[slot as usize].deadline = deadline;
    }

    pub fn set_marks(&mut self, slot: u32, marks: Marks) {
        self.entries[slot as usize].marks = marks;
    }

    /// Gives the item in `slot` a new cas unique and returns it.
    pub fn renew_cas(&mut self, slot: u32) -> u64 {
        let cas = self.next_cas();
        self.entries[slot as usize].cas = cas;
        cas
    }

    /// The value bytes of `slot`, to change in place (`incr`/`decr`); the
    /// item gets a new cas unique.
    pub fn value_mut(&mut self, slot: u32) -> &mut [u8] {
        let cas = self.next_cas();
        self.bump(slot);
        let entry = &mut self.entries[slot as usize];
        entry.cas = cas;
        &mut entry.data[entry.key_len as usize..]
    }

    /// Stores a new item (the caller has removed any old one under its key),
    /// evicting least recently used items first until it fits `limit`.
    /// Returns the new item's slot.
    pub fn insert(&mut self, hash: u64, item: NewItem<'_>, now: u32, limit: usize) -> u32 {
        self.make_room(alloc::size_class(item.data_len()), limit);
        let mut data = Vec::with_capacity(item.data_len());
        data.extend_from_slice(item.key);
        data.extend_from_slice(item.value[0]);
        data.extend_from_slice(item.value[1]);
        let cas = self.next_cas();
        let entry = Entry {
            data: data.into_boxed_slice(),
            hash,
            cas,
            flags: item.flags,
            deadline: item.deadline,
            stored_at: now,
            last_access: now,
            marks: item.marks,
            prev: NIL,
            next: NIL,
            key_len: u8::try_from(item.key.len())
                .expect("the parser admits keys of at most 250 bytes"),
        };
        self.bytes += entry.size();
        self.items += 1;
        self.counters.total_items += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.entries[slot as usize] = entry;
                slot
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        let entries = &self.entries;
        self.table
            .insert_unique(hash, slot, |&i| entries[i as usize].hash);
        self.push_head(slot);
        slot
    }

    /// Takes the item in `slot` out of the table, the list and the count.
    pub fn remove(&mut self, slot: u32) {
        let hash = self.entries[slot as usize].hash;
        if let Ok(found) = self.table.find_entry(hash, |&i| i == slot) {
            found.remove();
        }
        self.unlink(slot);
        let entry = &mut self.entries[slot as usize];
        self.bytes -= entry.size();
        self.items -= 1;
        entry.data = Box::default();
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
                ENTRY_COST
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
        let mut old = std::mem::replace(&mut self.entries, Chunked::new());
        self.table = HashTable::new();
        self.free = Vec::new();
        let mut slot = self.tail;
        (self.head, self.tail) = (NIL, NIL);
        while slot != NIL {
            let entry = &mut old[slot as usize];
            slot = entry.prev;
            let moved = Entry {
                data: std::mem::take(&mut entry.data),
                ..*entry
            };
            let (hash, new_slot) = (moved.hash, self.entries.len() as u32);
            self.entries.push(moved);
            let entries = &self.entries;
            self.table
                .insert_unique(hash, new_slot, |&i| entries[i as usize].hash);
            self.push_head(new_slot);
        }
    }

    /// Removes every dead item; returns how many.
    pub fn sweep(&mut self, at: Moment) -> usize {
        let dead: Vec<u32> = (0..self.entries.len() as u32)
            .filter(|&slot| !self.entries[slot as usize].data.is_empty())
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
        self.entries = Chunked::new();
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
            let entry = self.entries.get(slot as usize)?;
            slot = entry.next;
            Some((
                entry.key(),
                entry.data.len() - entry.key_len as usize,
                entry.deadline,
            ))
        })
    }

    /// Memory the shard holds, which the memory limit bounds: its items'
    /// key and value allocations, its entry slots (live or free), and its
    /// table and free list at their capacity. The unused rest of the last
    /// chunk of entries (under 64 KiB) is not counted: a new chunk would
    /// otherwise evict a thousand small items at once.
    pub fn held(&self) -> usize {
        let containers = self.entries.len() * std::mem::size_of::<Entry>()
            + self.table.allocation_size()
            + self.free.capacity() * std::mem::size_of::<u32>();
        self.bytes - self.items * ENTRY_COST + containers
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
        let entry = &mut self.entries[slot as usize];
        entry.prev = NIL;
        entry.next = old_head;
        match old_head {
            NIL => self.tail = slot,
            h => self.entries[h as usize].prev = slot,
        }
        self.head = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let Entry { prev, next, .. } = self.entries[slot as usize];
        match prev {
            NIL => self.head = next,
            p => self.entries[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.entries[n as usize].prev = prev,
        }
    }
}
