//! ns per message to decode: DEVICE_RESET, DMA_MAP, REGION_WRITE with 4 KiB and 64 KiB of data, VERSION
//! with capabilities JSON, and the whole real sample session; against a baseline that only copies each
//! message's bytes. Run with `cargo bench -p vfu-codec --bench decode` (or `scripts/bench-codec.sh`).
//!
//! The session is `testdata/lvu-sample-client.msgs`, the messages of `corpus/lvu-sample-client.pcapng`
//! (kept inside the package, so the bench runs from the published crate too).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a failure is a bug to see at once

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vfu_codec::vfio::caps::Version;
use vfu_codec::vfio::{DmaMap, RegionAccess};
use vfu_codec::{Body, Command, Direction, Header, VersionBody, decode, encode};

#[path = "../tests/common/msgs.rs"]
mod msgs;

static SESSION: &[u8] = include_bytes!("../testdata/lvu-sample-client.msgs");

const LVU_CAPS: &str = r#"{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,"migration":{"pgsize":4096},"twin_socket":{"supported":true,"fd_index":0}}}"#;

fn msg(h: Header, b: Body<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 20];
    let n = encode(&h, &b, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn bench_messages(c: &mut Criterion) {
    let v = Version::new(0, 2);
    let map = DmaMap::new(3, 0, 0x1_0000_0000, 0x20_0000);
    let data4k = vec![0xabu8; 4096];
    let data64k = vec![0xcdu8; 65536];
    let w4 = RegionAccess::new(0, 0, 4096);
    let w64 = RegionAccess::new(0, 0, 65536);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "device_reset",
            msg(Header::command(1, Command::DEVICE_RESET), Body::Empty),
        ),
        (
            "dma_map",
            msg(Header::command(2, Command::DMA_MAP), Body::DmaMap(&map)),
        ),
        (
            "region_write_4k",
            msg(
                Header::command(3, Command::REGION_WRITE),
                Body::RegionRw {
                    access: &w4,
                    data: &data4k,
                },
            ),
        ),
        (
            "region_write_64k",
            msg(
                Header::command(3, Command::REGION_WRITE),
                Body::RegionRw {
                    access: &w64,
                    data: &data64k,
                },
            ),
        ),
        (
            "version_caps",
            msg(
                Header::reply(0, Command::VERSION),
                Body::Version(VersionBody::new(&v, Some(LVU_CAPS.as_bytes()))),
            ),
        ),
    ];
    let mut g = c.benchmark_group("decode");
    for (name, bytes) in &cases {
        g.throughput(Throughput::Elements(1));
        g.bench_function(*name, |b| {
            b.iter(|| {
                decode(black_box(bytes), Direction::ClientToServer).map(|m| m.header.msg_size.get())
            })
        });
        // Baseline: copy the message's bytes (what a decoder that owns its data would at least do).
        let mut dst = vec![0u8; bytes.len()];
        g.bench_function(format!("{name}/copy_baseline"), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(bytes));
                black_box(&dst);
            })
        });
    }
    g.finish();

    // Owned, each message in its own allocation, as a receiver holds them.
    let session: Vec<(Direction, Vec<u8>)> = msgs::records(SESSION)
        .into_iter()
        .map(|(d, m)| (d, m.to_vec()))
        .collect();
    assert_eq!(session.len(), 224);
    let mut g = c.benchmark_group("session");
    g.throughput(Throughput::Elements(session.len() as u64));
    g.bench_function("lvu_sample_client_decode_all", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for (d, m) in &session {
                if let Ok(msg) = decode(black_box(m), *d) {
                    n += u64::from(msg.header.msg_size.get());
                }
            }
            n
        })
    });
    let mut bufs: Vec<Vec<u8>> = session.iter().map(|(_, m)| vec![0u8; m.len()]).collect();
    g.bench_function("lvu_sample_client_copy_baseline", |b| {
        b.iter(|| {
            for ((_, m), d) in session.iter().zip(bufs.iter_mut()) {
                d.copy_from_slice(black_box(m));
            }
            black_box(&bufs);
        })
    });
    g.finish();
}

criterion_group!(benches, bench_messages);
criterion_main!(benches);
