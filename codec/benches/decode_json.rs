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
criterion_main!(benches);
