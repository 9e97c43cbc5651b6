//! The shard's slots: a growable array kept in fixed chunks of 1,024,
//! so that growing never copies the slots nor frees a large old array.
//!
//! A `Vec` grown by doubling keeps up to half its capacity unused, and each
//! reallocation frees the old array: filling 64 MiB with 10-byte values
//! left tens of MiB of such freed arrays resident until the allocator's
//! decay returned them (peak RSS 1.5-1.7x the limit). Chunks waste at most one
//! chunk per shard and free nothing while growing.

use std::ops::{Index, IndexMut};

/// Elements per chunk: 8 KiB chunks for 8-byte slots.
const CHUNK: usize = 1024;

/// An array of `T` in chunks of [`CHUNK`].
pub struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Chunked<T> {
    pub fn new() -> Chunked<T> {
        Chunked {
            chunks: Vec::new(),
            len: 0,
        }
    }

    /// How many elements are stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends `value` at index `len()`.
    pub fn push(&mut self, value: T) {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks
            .last_mut()
            .expect("a chunk with room")
            .push(value);
        self.len += 1;
    }

    pub fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }
}

impl<T> Index<usize> for Chunked<T> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        &self.chunks[index / CHUNK][index % CHUNK]
    }
}

impl<T> IndexMut<usize> for Chunked<T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        &mut self.chunks[index / CHUNK][index % CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_across_chunks() {
        let mut c = Chunked::new();
        assert_eq!(c.get(0), None);
        for i in 0..CHUNK as u32 + 1 {
            c.push(i);
        }
        assert_eq!(c.len(), CHUNK + 1);
        assert_eq!(c[CHUNK], CHUNK as u32);
        c[3] = 7;
        assert_eq!(c.get(3), Some(&7));
        assert_eq!(c.get(CHUNK + 1), None);
    }
}
