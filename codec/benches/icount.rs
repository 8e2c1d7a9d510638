//! A driver for instruction counts, which a loaded machine cannot spoil the way it spoils timings:
//! `icount CASE N` runs one codec operation N times. `scripts/bench-codec-icount.sh` runs it under
//! callgrind with N = 1 and N = 10001 and prints the instructions per operation (the difference over
//! 10000), for comparing a change against its parent. Run by `cargo bench` without arguments, it does
//! each case once and prints nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a failure is a bug to see at once

use std::hint::black_box;

use vfu_codec::vfio::DmaMap;
use vfu_codec::vfio::caps::{Version, parse_capabilities};
use vfu_codec::{Body, Command, Direction, Header, VersionBody, decode, encode};

#[path = "../tests/common/msgs.rs"]
mod msgs;

static SESSION: &[u8] = include_bytes!("../testdata/lvu-sample-client.msgs");

/// libvfio-user's VERSION reply text (what the fast path takes).
const LVU_CAPS: &[u8] = br#"{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,"migration":{"pgsize":4096},"twin_socket":{"supported":true,"fd_index":0}}}"#;
/// QEMU 10.1's VERSION request text (the fast path, another member order).
const QEMU_CAPS: &[u8] = br#"{"capabilities":{"migration":{"pgsize":4096,"max_bitmap_size":268435456},"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096,"max_dma_maps":65535,"write_multiple":true}}"#;
/// The pytest corpus's spaced text (the general parser).
const SPACED_CAPS: &[u8] = br#"{ "capabilities": { "max_msg_fds": 8, "max_data_xfer_size": 1048576, "migration": { "pgsize": 4096 } } }"#;

/// The cases, in the order the script prints them.
pub const CASES: &[&str] = &[
    "version_decode",
    "caps_lvu",
    "caps_qemu",
    "caps_spaced",
    "dma_map_decode",
    "dma_map_encode",
    "version_encode",
    "session_decode",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cases, n): (Vec<&str>, u64) = match args.as_slice() {
        [case, n] if !case.starts_with('-') => (vec![case.as_str()], n.parse().expect("a count")),
        _ => (CASES.to_vec(), 1),
    };
    let v = Version::new(0, 2);
    let mut buf = vec![0u8; 4096];
    let version = Body::Version(VersionBody::new(&v, Some(LVU_CAPS)));
    let len = encode(&Header::reply(0, Command::VERSION), &version, &mut buf).unwrap();
    let version_msg = buf[..len].to_vec();
    let map = DmaMap::new(3, 0, 0x1_0000_0000, 0x20_0000);
    let len = encode(
        &Header::command(2, Command::DMA_MAP),
        &Body::DmaMap(&map),
        &mut buf,
    )
    .unwrap();
    let dma_msg = buf[..len].to_vec();
    let session: Vec<(Direction, Vec<u8>)> = msgs::records(SESSION)
        .into_iter()
        .map(|(d, m)| (d, m.to_vec()))
        .collect();
    let caps = |text: &[u8]| {
        let c = parse_capabilities(black_box(text));
        black_box(&c);
        u64::from(c.is_ok())
    };
    let mut acc = 0u64;
    for case in cases {
        for _ in 0..n {
            acc += match case {
                "version_decode" => decode(black_box(&version_msg), Direction::ServerToClient)
                    .map_or(0, |m| u64::from(m.header.msg_size.get())),
                "caps_lvu" => caps(LVU_CAPS),
                "caps_qemu" => caps(QEMU_CAPS),
                "caps_spaced" => caps(SPACED_CAPS),
                "dma_map_decode" => decode(black_box(&dma_msg), Direction::ClientToServer)
                    .map_or(0, |m| u64::from(m.header.msg_size.get())),
                "dma_map_encode" => encode(
                    &Header::command(2, Command::DMA_MAP),
                    black_box(&Body::DmaMap(&map)),
                    black_box(&mut buf),
                )
                .map_or(0, |n| n as u64),
                "version_encode" => encode(
                    &Header::reply(0, Command::VERSION),
                    black_box(&version),
                    black_box(&mut buf),
                )
                .map_or(0, |n| n as u64),
                "session_decode" => session
                    .iter()
                    .filter_map(|(d, m)| decode(black_box(m), *d).ok())
                    .map(|m| u64::from(m.header.msg_size.get()))
                    .sum(),
                other => panic!("unknown case {other}; cases: {CASES:?}"),
            };
        }
    }
    black_box(acc);
}
