//! VERSION capabilities JSON: this crate's no-alloc parser against `serde_json::Value`.
//!
//! Run with `cargo bench -p vfu-codec --bench decode_json`. Kept apart from `decode.rs` as its own bench
//! target; `bench_version_json` can move there as is.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use vfu_codec::vfio::caps::parse_capabilities;

/// libvfio-user's VERSION reply with migration and twin-socket on (the JSON text without its NUL).
const LVU_REPLY: &[u8] = br#"{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,"migration":{"pgsize":4096},"twin_socket":{"supported":true,"fd_index":0}}}"#;

/// Parses libvfio-user's reply with `parse_capabilities` and with `serde_json::from_slice::<Value>`.
fn bench_version_json(c: &mut Criterion) {
    let mut group = c.benchmark_group("version_json");
    group.throughput(criterion::Throughput::Bytes(LVU_REPLY.len() as u64));
    group.bench_function("parse_capabilities", |b| {
        b.iter(|| parse_capabilities(black_box(LVU_REPLY)))
    });
    group.bench_function("serde_json_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(LVU_REPLY)))
    });
    group.finish();
}

criterion_group!(benches, bench_version_json);
criterion_main!(benches, probes);

fn probe(c: &mut Criterion) {
    let mut g = c.benchmark_group("probe");
    for (name, j) in [
        ("empty", &b"{}"[..]),
        ("caps_empty", br#"{"capabilities":{}}"#),
        ("one", br#"{"capabilities":{"max_msg_fds":8}}"#),
        (
            "unknown8",
            br#"{"capabilities":{"a":8,"b":8,"c":8,"d":8,"e":8,"f":8,"g":8,"h":8}}"#,
        ),
    ] {
        g.bench_function(name, |b| b.iter(|| parse_capabilities(black_box(j))));
    }
    g.bench_function("copy776", |b| {
        let src = [7u8; 776];
        b.iter(|| {
            let x: [u8; 776] = *black_box(&src);
            black_box(x)
        })
    });
    g.bench_function("default", |b| {
        b.iter(|| black_box(vfu_codec::vfio::caps::Capabilities::default()))
    });
    g.bench_function("from_utf8", |b| {
        b.iter(|| core::str::from_utf8(black_box(LVU_REPLY)).is_ok())
    });
    g.finish();
}
criterion_group!(probes, probe);
