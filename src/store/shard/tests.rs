//! Shard tests: the index through growth and removals, compaction, and
//! the flush cutoff.

use super::*;

const AT: Moment = Moment {
    now: 1000,
    flush_cutoff: 0,
};

fn put(shard: &mut Shard, key: &[u8]) -> u32 {
    let item = NewItem {
        key,
        value: [b"value", b""],
        flags: 0,
        deadline: 0,
        marks: Marks::NONE,
    };
    let hash = shard.hasher.hash_one(key);
    shard.insert(hash, item, AT.now, usize::MAX)
}

fn find(shard: &mut Shard, key: &[u8]) -> Result<u32, Miss> {
    shard.find(shard.hasher.hash_one(key), key, AT)
}

/// Every live item once in some chain, and nothing else.
fn chained(shard: &Shard) -> usize {
    let mut count = 0;
    for head in shard.buckets.all_heads() {
        let mut slot = head;
        while slot != NIL {
            count += 1;
            assert!(count <= shard.items, "a chain loops or repeats");
            slot = shard.live(slot).header().chain;
        }
    }
    count
}

fn recency(shard: &Shard) -> Vec<Vec<u8>> {
    shard
        .items_by_recency()
        .map(|(k, _, _)| k.to_vec())
        .collect()
}

#[test]
fn the_index_finds_every_key_through_growth_and_removals() {
    let mut shard = Shard::new(0, RandomState::default());
    let keys: Vec<Vec<u8>> = (0..10_000)
        .map(|i| format!("key:{i}").into_bytes())
        .collect();
    for key in &keys {
        put(&mut shard, key);
    }
    assert!(shard.buckets.len() >= shard.items, "grew with the items");
    assert!(shard.buckets.len() > FIRST_BUCKETS);
    // 10,000 items: the doubling from 8,192 to 16,384 buckets is under
    // way, so the removals and lookups below meet both arrays.
    assert!(shard.buckets.doubling());
    for key in keys.iter().step_by(3) {
        let slot = find(&mut shard, key).unwrap();
        shard.remove(slot, shard.hasher.hash_one(key));
    }
    for (i, key) in keys.iter().enumerate() {
        let found = find(&mut shard, key);
        assert_eq!(
            found.is_ok(),
            i % 3 != 0,
            "{}",
            String::from_utf8_lossy(key)
        );
    }
    assert_eq!(chained(&shard), shard.items);
    assert_eq!(recency(&shard).len(), shard.items);
}

#[test]
fn compaction_keeps_recency_and_the_index() {
    let mut shard = Shard::new(0, RandomState::default());
    let keys: Vec<Vec<u8>> = (0..3000).map(|i| format!("k{i}").into_bytes()).collect();
    for key in &keys {
        put(&mut shard, key);
    }
    for key in &keys[..2500] {
        let slot = find(&mut shard, key).unwrap();
        shard.remove(slot, shard.hasher.hash_one(key));
    }
    // A fetch moves an item to the front; compaction must keep that.
    let slot = find(&mut shard, b"k2600").unwrap();
    shard.read(slot);
    let before = recency(&shard);
    assert_eq!(before[0], b"k2600");
    shard.make_room(0, usize::MAX);
    assert_eq!((shard.slots.len(), shard.free.len()), (500, 0), "compacted");
    assert_eq!(recency(&shard), before);
    assert_eq!(chained(&shard), 500);
    for key in &keys[2500..] {
        assert!(find(&mut shard, key).is_ok());
    }
}

#[test]
fn a_delayed_flush_kills_items_not_fetched_since_its_cutoff() {
    let mut shard = Shard::new(0, RandomState::default());
    put(&mut shard, b"old");
    let cutoff = Moment {
        now: AT.now + 10,
        flush_cutoff: AT.now + 10,
    };
    assert_eq!(
        shard.find(shard.hasher.hash_one(b"old"), b"old", cutoff),
        Err(Miss::Flushed)
    );
    let later = Moment {
        now: AT.now + 20,
        flush_cutoff: AT.now + 10,
    };
    let item = NewItem {
        key: b"new",
        value: [b"v", b""],
        flags: 0,
        deadline: 0,
        marks: Marks::NONE,
    };
    let hash = shard.hasher.hash_one(b"new");
    shard.insert(hash, item, later.now, usize::MAX);
    assert!(shard.find(hash, b"new", later).is_ok());
}
