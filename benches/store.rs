//! Store throughput: a get hit, a set, and a mixed workload (90% get, 10%
//! set over 10k keys) from 1, 2 and 4 threads sharing one store. The
//! threaded figures are wall time divided by all threads' operations, so
//! they read as time per operation of the whole store (1 / throughput).

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kvserve::store::{Store, StoreMode};

const KEYS: usize = 10_000;
const NOW: u32 = 1_700_000_000;

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("key:{i:08}").into_bytes())
        .collect()
}

/// A store holding every key with a 100-byte value.
fn filled_store(keys: &[Vec<u8>]) -> Store {
    let store = Store::new(256 * 1024 * 1024, 1024 * 1024);
    let value = [b'v'; 100];
    for key in keys {
        store.store(StoreMode::Set, key, 0, 0, &value, NOW);
    }
    store
}

/// xorshift64: cheap enough not to dominate a store operation.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn bench_single(c: &mut Criterion) {
    let keys = keys();
    let store = filled_store(&keys);
    let value = [b'w'; 100];
    let mut group = c.benchmark_group("store");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));

    let mut i = 0;
    group.bench_function("get_hit", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            store
                .get(&keys[i], None, NOW, |item| black_box(item.value.len()))
                .unwrap()
        });
    });
    let mut i = 0;
    group.bench_function("set_100_bytes", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            store.store(StoreMode::Set, &keys[i], 0, 0, black_box(&value), NOW)
        });
    });
    group.finish();
}

/// `iters` operations on each of `threads` threads; returns wall time
/// divided by the thread count, i.e. `iters` operations' worth of the
/// store's aggregate throughput.
fn mixed(store: &Arc<Store>, keys: &Arc<Vec<Vec<u8>>>, threads: usize, iters: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, keys, barrier) =
                (Arc::clone(store), Arc::clone(keys), Arc::clone(&barrier));
            thread::spawn(move || {
                let value = [b'm'; 100];
                let mut state = 0x2545_F491_4F6C_DD1D ^ (t as u64 + 1);
                barrier.wait();
                for _ in 0..iters {
                    let r = next(&mut state);
                    let key = &keys[(r >> 8) as usize % KEYS];
                    if r.is_multiple_of(10) {
                        store.store(StoreMode::Set, key, 0, 0, &value, NOW);
                    } else {
                        let _ = black_box(store.get(key, None, NOW, |item| item.value.len()));
                    }
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for handle in handles {
        handle.join().unwrap();
    }
    start.elapsed() / threads as u32
}

fn bench_mixed(c: &mut Criterion) {
    let keys = Arc::new(keys());
    let store = Arc::new(filled_store(&keys));
    let mut group = c.benchmark_group("store_mixed_90get_10set");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for threads in [1, 2, 4] {
        group.bench_with_input(
            BenchmarkId::new("threads", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| mixed(&store, &keys, threads, iters));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_single, bench_mixed);
criterion_main!(benches);
