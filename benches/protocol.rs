//! Parser throughput: one `get`, one `set` with a 100-byte value, and a
//! buffer of 100 pipelined gets parsed to the end.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kvserve::protocol::{parse, Limits, Parsed};

fn limits() -> Limits {
    Limits::new(1024 * 1024)
}

/// Parses every request in `buf`; returns how many there were.
fn parse_all(buf: &[u8], limits: &Limits) -> usize {
    let (mut at, mut count) = (0, 0);
    while let Parsed::Request { len, .. } = parse(&buf[at..], limits) {
        at += len;
        count += 1;
    }
    count
}

fn bench_parse(c: &mut Criterion) {
    let limits = limits();
    let mut group = c.benchmark_group("parse");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));

    let get = b"get user:1234567890\r\n";
    group.throughput(Throughput::Elements(1));
    group.bench_function("get", |b| {
        b.iter(|| parse(black_box(get), &limits));
    });

    let mut set = b"set user:1234567890 0 0 100\r\n".to_vec();
    set.extend((0..100).map(|i| b'a' + (i % 26) as u8));
    set.extend_from_slice(b"\r\n");
    assert!(matches!(parse(&set, &limits), Parsed::Request { len, .. } if len == set.len()));
    group.bench_function("set_100_bytes", |b| {
        b.iter(|| parse(black_box(&set), &limits));
    });

    let pipelined: Vec<u8> = (0..100)
        .flat_map(|i| format!("get user:{i:010}\r\n").into_bytes())
        .collect();
    assert_eq!(parse_all(&pipelined, &limits), 100);
    group.throughput(Throughput::Elements(100));
    group.bench_function("100_pipelined_gets", |b| {
        b.iter(|| parse_all(black_box(&pipelined), &limits));
    });
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
