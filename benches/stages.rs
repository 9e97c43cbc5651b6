//! What the stage times (`stats latency`) cost a request: the clock reads
//! and histogram records of one batch, and a read that brings the kernel's
//! arrival stamp against a plain read, on a loopback socket.
//!
//! The plain read runs first, before any socket in the process asks for
//! stamps (the kernel stamps every packet once one socket does), so the
//! two reads differ by all the stamping costs: the kernel's stamp of each
//! packet, the control message, its parsing and the wall-clock read.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use kvserve::engine::stages::{BatchTimes, StageHistograms};
use kvserve::server::receive;

/// A connected loopback pair: (client, server).
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    client.set_nodelay(true).unwrap();
    (client, server)
}

const REQUEST: &[u8] = b"get kvbench:00000042\r\n";

fn reads(c: &mut Criterion) {
    let mut group = c.benchmark_group("read a request");
    let mut buf = [0u8; 4096];
    let (mut client, mut server) = pair();
    group.bench_function("plain read", |b| {
        b.iter(|| {
            client.write_all(REQUEST).unwrap();
            black_box(server.read(&mut buf).unwrap())
        })
    });
    let (mut stamped_client, stamped) = pair();
    receive::stamp_arrivals(stamped.as_raw_fd());
    group.bench_function("read with arrival stamp", |b| {
        b.iter(|| {
            stamped_client.write_all(REQUEST).unwrap();
            let read = receive::recv(stamped.as_raw_fd(), &mut buf).unwrap();
            black_box((read, Instant::now()))
        })
    });
    let (mut client, mut server) = pair();
    group.bench_function("plain read, another socket stamping", |b| {
        b.iter(|| {
            client.write_all(REQUEST).unwrap();
            black_box(server.read(&mut buf).unwrap())
        })
    });
    // The kernel stops stamping a moment after the last socket that asked
    // for it closes.
    drop((stamped_client, stamped));
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (mut client, mut server) = pair();
    group.bench_function("plain read, no socket stamping again", |b| {
        b.iter(|| {
            client.write_all(REQUEST).unwrap();
            black_box(server.read(&mut buf).unwrap())
        })
    });
    group.finish();
}

/// A batch's four clock reads past the read (parsed, started, finished,
/// written) and its records into the stage histograms.
fn record(c: &mut Criterion) {
    let stages = StageHistograms::default();
    c.bench_function("stage times of a batch", |b| {
        b.iter(|| {
            let read = Instant::now();
            let times = BatchTimes {
                arrived: Some(read),
                read,
                parsed: Instant::now(),
                started: Instant::now(),
                finished: Instant::now(),
            };
            stages.record(black_box(&times), Instant::now(), 1);
        })
    });
}

criterion_group!(benches, reads, record);
criterion_main!(benches);
