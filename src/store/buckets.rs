//! The heads of a shard's hash chains, doubled a few buckets at a time.
//!
//! Doubling in one step re-chains every item of the shard under its lock:
//! 20-32 ms at 312 K items per shard (docs/memory.md). As memcached's
//! `assoc.c` does in a background thread, the old heads stay in use while
//! the shard moves their chains over, a few buckets per insert; a bucket
//! not yet moved is still found in the old array.

use super::item::NIL;

/// Old buckets moved per insert while doubling: the move ends within a
/// quarter of the inserts that would call for the next doubling.
pub const MOVED_PER_INSERT: usize = 4;

/// Chain heads (slot numbers, or `NIL`), a power of two of them.
pub struct Buckets {
    heads: Box<[u32]>,
    /// While doubling: the heads before, and how many of them are moved.
    old: Option<(Box<[u32]>, usize)>,
}

impl Buckets {
    pub fn new(count: usize) -> Buckets {
        Buckets {
            heads: vec![NIL; count].into_boxed_slice(),
            old: None,
        }
    }

    /// How many heads there are (after the doubling under way, if any).
    pub fn len(&self) -> usize {
        self.heads.len()
    }

    /// The head of the chain that `hash` belongs to.
    pub fn head(&mut self, hash: u64) -> &mut u32 {
        if let Some((old, moved)) = self.old.as_mut() {
            let bucket = hash as usize & (old.len() - 1);
            if bucket >= *moved {
                return &mut old[bucket];
            }
        }
        let mask = self.heads.len() - 1;
        &mut self.heads[hash as usize & mask]
    }

    /// Starts doubling: new, empty heads; the old ones stay in use until
    /// [`Buckets::take_old`] has taken every one. A doubling still under
    /// way must be finished first.
    pub fn start_doubling(&mut self) {
        assert!(self.old.is_none(), "one doubling at a time");
        let doubled = vec![NIL; self.heads.len() * 2].into_boxed_slice();
        self.old = Some((std::mem::replace(&mut self.heads, doubled), 0));
    }

    pub fn doubling(&self) -> bool {
        self.old.is_some()
    }

    /// The head of the old chain `ahead` places after the next one to
    /// move (`NIL` if empty or past the end), to fetch its item early.
    pub fn old_head_ahead(&self, ahead: usize) -> u32 {
        match &self.old {
            Some((old, moved)) => old.get(moved + ahead).copied().unwrap_or(NIL),
            None => NIL,
        }
    }

    /// The next old chain to move (its head; `NIL` for an empty one), now
    /// no longer found through the old heads; `None` once all are moved.
    pub fn take_old(&mut self) -> Option<u32> {
        let (old, moved) = self.old.as_mut()?;
        let head = std::mem::replace(&mut old[*moved], NIL);
        *moved += 1;
        if *moved == old.len() {
            self.old = None;
        }
        Some(head)
    }

    /// Bytes held by the heads, old and new.
    pub fn bytes(&self) -> usize {
        let old = self.old.as_ref().map_or(0, |(old, _)| old.len());
        (self.heads.len() + old) * size_of::<u32>()
    }

    /// Every head in use, old and new (for tests).
    #[cfg(test)]
    pub fn all_heads(&self) -> impl Iterator<Item = u32> + '_ {
        let old = self.old.iter().flat_map(|(old, moved)| &old[*moved..]);
        self.heads.iter().chain(old).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_is_found_in_the_old_heads_until_it_is_moved() {
        let mut buckets = Buckets::new(4);
        *buckets.head(6) = 60; // bucket 2
        *buckets.head(1) = 10; // bucket 1
        buckets.start_doubling();
        assert_eq!(buckets.len(), 8);
        assert_eq!((*buckets.head(6), *buckets.head(1)), (60, 10));
        assert_eq!(buckets.old_head_ahead(1), 10);
        assert_eq!(buckets.take_old(), Some(NIL)); // bucket 0
        assert_eq!(buckets.take_old(), Some(10)); // bucket 1, now new
        assert_eq!(*buckets.head(1), NIL);
        assert_eq!(*buckets.head(6), 60, "bucket 2 is still old");
        assert_eq!(buckets.bytes(), (8 + 4) * 4);
        assert_eq!(buckets.old_head_ahead(0), 60);
        assert_eq!(buckets.old_head_ahead(2), NIL, "past the end");
        assert_eq!(buckets.take_old(), Some(60));
        assert_eq!(buckets.take_old(), Some(NIL));
        assert!(!buckets.doubling());
        assert_eq!(buckets.take_old(), None);
        assert_eq!(buckets.bytes(), 8 * 4);
    }
}
