//! VERSION capabilities JSON: this crate's no-alloc parser against serde_json, both the way the
//! rust-vmm `vfio_user` crate does it (derived structs) and into a `serde_json::Value`.
//!
//! Run with `cargo bench -p vfu-codec --bench decode_json`. Kept apart from `decode.rs` as its own bench
//! target; `bench_version_json` can move there as is.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde::Deserialize;
use vfu_codec::vfio::caps::parse_capabilities;

/// libvfio-user's VERSION reply with migration and twin-socket on (the JSON text without its NUL).
const LVU_REPLY: &[u8] = br#"{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,"migration":{"pgsize":4096},"twin_socket":{"supported":true,"fd_index":0}}}"#;

// The derived structs, written for this bench in the way `vfio_user` 0.1.7 declares its own
// (`CapabilitiesData { capabilities: Capabilities { max_msg_fds, max_data_xfer_size, migration } }`,
// unknown members skipped), but with every member the spec names, so that both parsers extract the
// same facts.

/// The top-level object.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Document {
    capabilities: Caps,
}

/// `capabilities`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Caps {
    max_msg_fds: Option<u64>,
    max_data_xfer_size: Option<u64>,
    max_dma_maps: Option<u64>,
    pgsizes: Option<u64>,
    write_multiple: Option<bool>,
    migration: Option<Mig>,
    twin_socket: Option<Twin>,
}

/// `capabilities.migration`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Mig {
    pgsize: Option<u64>,
    max_bitmap_size: Option<u64>,
}

/// `capabilities.twin_socket`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Twin {
    supported: Option<bool>,
    fd_index: Option<u64>,
}

/// Parses libvfio-user's reply with `parse_capabilities`, with serde_json into the derived structs,
/// and with serde_json into a `Value`.
///
/// Each result is observed where it was built (`black_box(&value)`, then dropped inside the timed
/// loop, allocations and all) rather than returned to criterion, which would move it: for the
/// 784-byte `Capabilities` that move is a `memcpy` costing about as much as a sixth of the parse,
/// and it measures the harness, not the parser.
fn bench_version_json(c: &mut Criterion) {
    let mut group = c.benchmark_group("version_json");
    group.throughput(criterion::Throughput::Bytes(LVU_REPLY.len() as u64));
    group.bench_function("parse_capabilities", |b| {
        b.iter(|| {
            let caps = parse_capabilities(black_box(LVU_REPLY));
            black_box(&caps);
        })
    });
    group.bench_function("serde_json_derive", |b| {
        b.iter(|| {
            let doc = serde_json::from_slice::<Document>(black_box(LVU_REPLY));
            black_box(&doc);
        })
    });
    group.bench_function("serde_json_value", |b| {
        b.iter(|| {
            let value = serde_json::from_slice::<serde_json::Value>(black_box(LVU_REPLY));
            black_box(&value);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_version_json);
criterion_main!(benches);
