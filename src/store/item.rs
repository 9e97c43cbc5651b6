//! One item in one allocation: its fixed fields, key and value, reached by
//! a thin pointer, as memcached keeps an item's header, key and value in
//! one slab chunk.
//!
//! Why not a struct beside a `Box<[u8]>`: for a 10-byte value that layout
//! cost a 64-byte entry plus a 32-byte key and value block, and memcached
//! held 1.17x as many items per MiB. Here a 9-byte key and 10-byte value
//! take one 64-byte block (40 bytes of fields, 19 of data), the item's
//! links (LRU list, hash chain) are slot numbers inside it, and the shard
//! keeps only an 8-byte pointer per slot (docs/memory.md).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

use super::expiry::Deadline;
use crate::alloc::size_class;

/// No slot: the end of a list or chain.
pub const NIL: u32 = u32::MAX;

/// An item's fixed fields, stored in front of its key and value.
#[repr(C)]
pub struct Header {
    pub cas: u64,
    pub flags: u32,
    pub deadline: Deadline,
    /// When the item was stored or last fetched (meta `l`, `me`'s `la`);
    /// a delayed `flush_all` kills items whose time is at or before its
    /// cutoff, as memcached compares its `it->time`.
    pub last_access: u32,
    /// The slots of its neighbours in the shard's LRU list.
    pub prev: u32,
    pub next: u32,
    /// The slot of the next item in its hash bucket.
    pub chain: u32,
    /// Private: the allocation's layout is computed from these two.
    value_len: u32,
    key_len: u8,
    pub marks: Marks,
    /// The top bits of the key's hash: a lookup compares keys only when
    /// these match (it fills what would be padding).
    pub tag: u16,
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
    pub(super) const ACTIVE: Marks = Marks(16);

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

/// The fields a new item starts with.
pub struct Fields {
    pub tag: u16,
    pub cas: u64,
    pub flags: u32,
    pub deadline: Deadline,
    pub now: u32,
    pub marks: Marks,
}

/// An owned item: header, key and value in one allocation, freed on drop.
pub struct Item(NonNull<Header>);

// SAFETY: an `Item` owns its allocation alone, as a `Box` does, and hands
// out references only through `&self` and `&mut self`.
unsafe impl Send for Item {}
// SAFETY: as above; `&Item` gives only shared, read-only access.
unsafe impl Sync for Item {}

impl Item {
    /// An item under `key` whose value is `value[0]` then `value[1]` (so
    /// that `append` and `prepend` need no temporary copy), in no list.
    ///
    /// Keys are at most 250 bytes (the parser's limit) and values at most a
    /// gigabyte (`-I`'s limit), so both lengths fit their fields.
    pub fn new(key: &[u8], value: [&[u8]; 2], fields: Fields) -> Item {
        let value_len = value[0].len() + value[1].len();
        let header = Header {
            cas: fields.cas,
            flags: fields.flags,
            deadline: fields.deadline,
            last_access: fields.now,
            prev: NIL,
            next: NIL,
            chain: NIL,
            value_len: u32::try_from(value_len).expect("values are at most a gigabyte"),
            key_len: u8::try_from(key.len()).expect("keys are at most 250 bytes"),
            marks: fields.marks,
            tag: fields.tag,
        };
        let layout = layout(key.len(), value_len);
        // SAFETY: the layout is at least a header long, so not zero-sized.
        let raw = unsafe { alloc(layout) }.cast::<Header>();
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(layout)
        };
        // SAFETY: `ptr` is a fresh allocation of `layout`: a header, aligned
        // for it, followed by room for exactly the key and both value parts.
        unsafe {
            ptr.as_ptr().write(header);
            let mut at = ptr.as_ptr().add(1).cast::<u8>();
            for part in [key, value[0], value[1]] {
                std::ptr::copy_nonoverlapping(part.as_ptr(), at, part.len());
                at = at.add(part.len());
            }
        }
        Item(ptr)
    }

    /// The bytes the allocator takes for an item of `data_len` key and
    /// value bytes: its size class for the header and data.
    pub fn allocation(data_len: usize) -> usize {
        size_class(size_of::<Header>() + data_len)
    }

    pub fn header(&self) -> &Header {
        // SAFETY: the pointer is to a live header this item owns.
        unsafe { self.0.as_ref() }
    }

    /// The header, to change its public fields (not its lengths).
    pub fn header_mut(&mut self) -> &mut Header {
        // SAFETY: as in `header`, and `&mut self` makes the access unique.
        unsafe { self.0.as_mut() }
    }

    pub fn key(&self) -> &[u8] {
        let len = self.header().key_len as usize;
        // SAFETY: the key's bytes follow the header, written by `new`.
        unsafe { std::slice::from_raw_parts(self.data(), len) }
    }

    pub fn value(&self) -> &[u8] {
        let header = self.header();
        let (key_len, len) = (header.key_len as usize, header.value_len as usize);
        // SAFETY: the value's bytes follow the key, written by `new`.
        unsafe { std::slice::from_raw_parts(self.data().add(key_len), len) }
    }

    /// The value bytes, to change in place (`incr`/`decr`).
    pub fn value_mut(&mut self) -> &mut [u8] {
        let header = self.header();
        let (key_len, len) = (header.key_len as usize, header.value_len as usize);
        // SAFETY: as in `value`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.data().add(key_len).cast_mut(), len) }
    }

    /// Where the item starts (to prefetch it).
    pub fn address(&self) -> *const u8 {
        self.0.as_ptr().cast()
    }

    /// Key and value bytes.
    pub fn data_len(&self) -> usize {
        let header = self.header();
        header.key_len as usize + header.value_len as usize
    }

    fn data(&self) -> *const u8 {
        // SAFETY: one header past the start is within the allocation (at
        // worst its end, for an empty key and value).
        unsafe { self.0.as_ptr().add(1).cast::<u8>() }
    }
}

impl Drop for Item {
    fn drop(&mut self) {
        let header = self.header();
        let layout = layout(header.key_len as usize, header.value_len as usize);
        // SAFETY: allocated in `new` with this same layout; the header has
        // no fields that need dropping.
        unsafe { dealloc(self.0.as_ptr().cast::<u8>(), layout) }
    }
}

fn layout(key_len: usize, value_len: usize) -> Layout {
    Layout::from_size_align(
        size_of::<Header>() + key_len + value_len,
        align_of::<Header>(),
    )
    .expect("an item's size fits an allocation")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        Fields {
            tag: 3,
            cas: 7,
            flags: 9,
            deadline: 0,
            now: 100,
            marks: Marks::NONE,
        }
    }

    #[test]
    fn keeps_key_value_and_fields() {
        let mut item = Item::new(b"key", [b"val", b"ue"], fields());
        assert_eq!((item.key(), item.value()), (&b"key"[..], &b"value"[..]));
        assert_eq!(item.data_len(), 8);
        let header = item.header();
        assert_eq!((header.cas, header.flags, header.last_access), (7, 9, 100));
        item.value_mut()[0] = b'V';
        item.header_mut().cas = 8;
        assert_eq!((item.value(), item.header().cas), (&b"Value"[..], 8));
    }

    #[test]
    fn empty_and_long_parts() {
        let empty = Item::new(b"", [b"", b""], fields());
        assert_eq!((empty.key(), empty.value()), (&b""[..], &b""[..]));
        let key = [b'k'; 250];
        let value = vec![b'v'; 100_000];
        let item = Item::new(&key, [&value[..50_000], &value[50_000..]], fields());
        assert_eq!((item.key(), item.value()), (&key[..], &value[..]));
    }

    #[test]
    fn a_small_item_takes_one_64_byte_block() {
        // The header is 40 bytes: a key and a 10-byte value fit 64 up to a
        // 14-byte key.
        assert_eq!(size_of::<Header>(), 40);
        assert_eq!(Item::allocation(24), 64);
        assert_eq!(Item::allocation(25), 80);
    }
}
