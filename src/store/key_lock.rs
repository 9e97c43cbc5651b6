//! One key's shard held locked across the steps of a command: look up,
//! read, change, store. The classic storage and arithmetic commands are
//! built from these steps, and the meta commands, which read and change
//! several things of one item at once, use them directly.

use std::sync::MutexGuard;

use super::counter;
use super::expiry::Deadline;
use super::item::Marks;
use super::shard::{ItemRef, Miss, NewItem, Shard};
use super::{ArithOutcome, StoreMode, StoreOutcome};
use crate::protocol::{item_size, parse_strtoull};

/// A key whose shard is locked, with the live item found under it, if any.
pub struct KeyLock<'a> {
    pub(super) shard: MutexGuard<'a, Shard>,
    pub(super) hash: u64,
    pub(super) key: &'a [u8],
    pub(super) now: u32,
    pub(super) slot: Result<u32, Miss>,
    pub(super) limit: usize,
    pub(super) max_item_size: usize,
}

/// What a storage command asks for, beyond its key.
#[derive(Clone, Copy, Debug, Default)]
pub struct Storing<'a> {
    pub mode: StoreMode,
    pub flags: u32,
    pub deadline: Deadline,
    pub data: &'a [u8],
    /// `ms C<cas> MA`/`MP`: append or prepend only while the item's cas is
    /// still this one (0: no check).
    pub compare: u64,
    /// `ms I` in cas mode: a cas older than the item's stores the value
    /// anyway, marked stale, keeping the item's deadline.
    pub stale_if_older: bool,
    /// Marks the new item starts with (a base64 key).
    pub marks: Marks,
}

impl<'a> KeyLock<'a> {
    /// Whether a live item is under the key, or why not.
    pub fn found(&self) -> Result<(), Miss> {
        self.slot.map(|_| ())
    }

    /// The live item, leaving its recency alone.
    pub fn item(&self) -> Option<ItemRef<'_>> {
        self.slot.ok().map(|slot| self.shard.item(slot))
    }

    /// Marks the item fetched now and most recently used.
    pub fn fetch(&mut self) {
        if let Ok(slot) = self.slot {
            self.shard.fetch(slot, self.now);
        }
    }

    pub fn set_deadline(&mut self, deadline: Deadline) {
        if let Ok(slot) = self.slot {
            self.shard.set_deadline(slot, deadline);
        }
    }

    pub fn set_marks(&mut self, marks: Marks) {
        if let Ok(slot) = self.slot {
            self.shard.set_marks(slot, marks);
        }
    }

    /// Gives the item a new cas unique (an item marked stale by `md I`).
    pub fn renew_cas(&mut self) {
        if let Ok(slot) = self.slot {
            self.shard.renew_cas(slot);
        }
    }

    /// Removes the item, if there is one.
    pub fn remove(&mut self) {
        if let Ok(slot) = self.slot {
            self.shard.remove(slot, self.hash);
            self.slot = Err(Miss::Absent);
        }
    }

    /// Stores a new item under the key, replacing the old one if any.
    pub fn insert(&mut self, value: [&[u8]; 2], flags: u32, deadline: Deadline, marks: Marks) {
        self.remove();
        let item = NewItem {
            key: self.key,
            value,
            flags,
            deadline,
            marks,
        };
        self.slot = Ok(self.shard.insert(self.hash, item, self.now, self.limit));
    }

    /// A storage command: `set`, `add`, `replace`, `append`, `prepend`,
    /// `cas`, and `ms` in its modes. Returns the outcome and, if stored,
    /// the new item's cas unique (0 otherwise).
    pub fn store(&mut self, new: &Storing<'_>) -> (StoreOutcome, u64) {
        let outcome = match (new.mode, self.slot) {
            (StoreMode::Add, Ok(slot)) => {
                self.shard.read(slot); // memcached bumps the item it refused to replace
                StoreOutcome::NotStored
            }
            (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, Err(_)) => {
                StoreOutcome::NotStored
            }
            (StoreMode::Cas(_), Err(_)) => StoreOutcome::NotFound,
            (StoreMode::Cas(unique), Ok(slot)) => {
                let old = self.shard.read(slot);
                if old.cas == unique {
                    self.insert([new.data, &[]], new.flags, new.deadline, new.marks);
                    StoreOutcome::Stored
                } else if new.stale_if_older && unique != 0 && unique < old.cas {
                    let deadline = old.deadline;
                    let won = old.marks.contains(Marks::WIN_SENT);
                    let mut marks = new.marks.with(Marks::STALE);
                    if won {
                        marks = marks.with(Marks::WIN_SENT);
                    }
                    self.insert([new.data, &[]], new.flags, deadline, marks);
                    StoreOutcome::Stored
                } else {
                    StoreOutcome::Exists
                }
            }
            (StoreMode::Append | StoreMode::Prepend, Ok(slot)) => {
                let old = self.shard.read(slot);
                if new.compare != 0 && new.compare != old.cas {
                    StoreOutcome::Exists
                } else if item_size(self.key.len(), old.value.len() + new.data.len())
                    > self.max_item_size
                {
                    StoreOutcome::NotStored
                } else {
                    let (flags, deadline) = (old.flags, old.deadline);
                    let old_value = old.value.to_vec();
                    let value = if new.mode == StoreMode::Append {
                        [&old_value[..], new.data]
                    } else {
                        [new.data, &old_value[..]]
                    };
                    self.insert(value, flags, deadline, Marks::NONE);
                    StoreOutcome::Stored
                }
            }
            (StoreMode::Set | StoreMode::Add | StoreMode::Replace, _) => {
                self.insert([new.data, &[]], new.flags, new.deadline, new.marks);
                StoreOutcome::Stored
            }
        };
        let cas = match (outcome, self.item()) {
            (StoreOutcome::Stored, Some(item)) => item.cas,
            _ => 0,
        };
        (outcome, cas)
    }

    /// `incr` (wrapping at 2^64) or `decr` (stopping at 0).
    pub fn arithmetic(&mut self, incr: bool, delta: u64) -> ArithOutcome {
        let Ok(slot) = self.slot else {
            return ArithOutcome::NotFound;
        };
        let item = self.shard.read(slot);
        if item.value.is_empty() {
            return ArithOutcome::NonNumeric;
        }
        let (flags, deadline) = (item.flags, item.deadline);
        let Some(value) = parse_strtoull(item.value) else {
            return ArithOutcome::NonNumeric;
        };
        let new_value = if incr {
            value.wrapping_add(delta)
        } else {
            value.saturating_sub(delta)
        };
        if !counter::overwrite(self.shard.value_mut(slot), new_value) {
            // The number grew longer than the item: store it anew.
            let digits = itoa::Buffer::new().format(new_value).as_bytes().to_vec();
            self.insert([&digits, &[]], flags, deadline, Marks::NONE);
        }
        ArithOutcome::Value(new_value)
    }
}
