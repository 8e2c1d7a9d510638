//! Decoding allocates nothing: a counting global allocator sees zero allocations while every message of
//! the real captures is decoded, its parts walked and its region capabilities iterated.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use vfu_codec::{Body, decode};
use vfu_tests::load;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn decode_allocates_nothing() {
    let mut all = Vec::new();
    for name in [
        "lvu-sample-client.pcapng",
        "lvu-sample-client-migrated.pcapng",
        "lvu-pytest-subset.pcapng",
    ] {
        all.extend(load(name));
    }
    let mut decoded = 0usize;
    let mut parts = 0usize;
    let before = ALLOCS.load(Ordering::SeqCst);
    for r in &all {
        if let Ok(m) = decode(&r.data, r.direction) {
            decoded += 1;
            m.for_each_part(|_| parts += 1);
            if let Body::Version(v) = m.body
                && let Some(j) = v.json
            {
                let _ = vfu_codec::vfio::caps::parse_capabilities(j);
            }
            if let Some(caps) = m.body.region_caps() {
                parts += caps.count();
            }
        }
    }
    let after = ALLOCS.load(Ordering::SeqCst);
    assert_eq!(after - before, 0, "decode allocated");
    assert!(decoded > 800 && parts > decoded, "{decoded} {parts}");
}
