//! ns per message to decode: DEVICE_RESET, DMA_MAP, REGION_WRITE with 4 KiB and 64 KiB of data, VERSION
//! with capabilities JSON, and the whole real sample session; against a baseline that only copies each
//! message's bytes. Run with `cargo bench -p vfu-codec --bench decode` (or `scripts/bench-codec.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a failure is a bug to see at once

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vfu_codec::vfio::caps::Version;
use vfu_codec::vfio::{DmaMap, RegionAccess};
use vfu_codec::{Body, Command, Direction, Header, VersionBody, decode, encode};
use zerocopy::little_endian::U16;

const LVU_CAPS: &str = r#"{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,"migration":{"pgsize":4096},"twin_socket":{"supported":true,"fd_index":0}}}"#;

fn msg(h: Header, b: Body<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 20];
    let n = encode(&h, &b, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// The vfio-user messages of a pcapng capture in the project's format (link type 252): a minimal
/// walker over Enhanced Packet Blocks that skips the exported-PDU tags.
fn pcapng_messages(file: &[u8]) -> Vec<(Direction, Vec<u8>)> {
    let mut out = Vec::new();
    let mut off = 0;
    let u32at = |o: usize| u32::from_le_bytes(file[o..o + 4].try_into().unwrap()) as usize;
    while off + 12 <= file.len() {
        let (ty, len) = (u32at(off), u32at(off + 4));
        if ty == 6 {
            let cap = u32at(off + 20);
            let pkt = &file[off + 28..off + 28 + cap];
            let (mut p, mut dir) = (0, Direction::ClientToServer);
            loop {
                let tag = u16::from_be_bytes([pkt[p], pkt[p + 1]]);
                let l = u16::from_be_bytes([pkt[p + 2], pkt[p + 3]]) as usize;
                if tag == 35 && pkt[p + 7] == 1 {
                    dir = Direction::ServerToClient;
                }
                p += 4 + l;
                if tag == 0 {
                    break;
                }
            }
            out.push((dir, pkt[p..].to_vec()));
        }
        off += len.max(12);
    }
    out
}

fn bench_messages(c: &mut Criterion) {
    let v = Version {
        major: U16::new(0),
        minor: U16::new(2),
    };
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
                Body::Version(VersionBody {
                    version: &v,
                    json: Some(LVU_CAPS.as_bytes()),
                }),
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

    let file = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../corpus/lvu-sample-client.pcapng"
    ))
    .unwrap();
    let session = pcapng_messages(&file);
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
