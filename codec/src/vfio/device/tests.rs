//! The capability chain walker's and the IO_FDS entry parser's tests.

use super::*;
use crate::error::Rule;

/// A capability area (payload bytes from offset 32) with a cap header at `at` pointing to `next`.
fn area_with(caps: &[(usize, u16, u32, u32)], len: usize) -> [u8; 128] {
    let mut a = [0u8; 128];
    for &(at, id, next, nr) in caps {
        let o = at - 32;
        a[o..o + 2].copy_from_slice(&id.to_le_bytes());
        a[o + 2..o + 4].copy_from_slice(&1u16.to_le_bytes());
        a[o + 4..o + 8].copy_from_slice(&next.to_le_bytes());
        a[o + 8..o + 12].copy_from_slice(&nr.to_le_bytes());
    }
    let _ = len;
    a
}

fn rules(area: &[u8], first: u32) -> heapless::Vec<Result<usize, (usize, Rule)>, 8> {
    CapIter::new(area, first, 16)
        .map(|c| c.map(|c| c.offset()).map_err(|e| (e.offset, e.rule)))
        .collect()
}

#[test]
fn walks_a_sound_chain() {
    let a = area_with(&[(32, 2, 48, 0), (48, 1, 0, 1)], 64);
    assert_eq!(&rules(&a[..48], 32)[..], &[Ok(32), Ok(48)]);
}

#[test]
fn rejects_a_loop() {
    let a = area_with(&[(32, 2, 48, 0), (48, 2, 32, 0)], 64);
    assert_eq!(
        &rules(&a[..48], 32)[..],
        &[
            Ok(32),
            Err((
                16 + 52, // the `next` field that points back
                Rule::CapLoop {
                    cap_offset: 48,
                    next: 32
                }
            ))
        ]
    );
    let self_loop = area_with(&[(40, 2, 40, 0)], 64);
    assert_eq!(
        &rules(&self_loop[..48], 40)[..],
        &[Err((
            16 + 44,
            Rule::CapLoop {
                cap_offset: 40,
                next: 40
            }
        ))]
    );
}

#[test]
fn rejects_overlap_with_the_fixed_part() {
    let a = [0u8; 32];
    assert_eq!(
        &rules(&a, 8)[..],
        &[Err((16 + 12, Rule::CapOverlapsFixed { cap_offset: 8 }))]
    );
}

#[test]
fn rejects_next_out_of_bounds() {
    let a = area_with(&[(32, 2, 4000, 0)], 16);
    assert_eq!(
        &rules(&a[..16], 32)[..],
        &[
            Ok(32),
            Err((
                16 + 36,
                Rule::CapOutOfBounds {
                    cap_offset: 4000,
                    payload: 48
                }
            ))
        ]
    );
}

#[test]
fn rejects_areas_that_do_not_fit() {
    // SPARSE_MMAP claiming 3 areas (48 bytes) with room for one.
    let a = area_with(&[(32, 1, 0, 3)], 32);
    assert_eq!(
        &rules(&a[..32], 32)[..],
        &[Err((
            16 + 32,
            Rule::CapTruncated {
                id: 1,
                need: 64,
                have: 32
            }
        ))]
    );
    // A count so large that its byte size overflows is still only "too short".
    let b = area_with(&[(32, 16, 0, u32::MAX)], 32);
    assert!(matches!(
        rules(&b[..32], 32)[0],
        Err((48, Rule::CapTruncated { id: 16, .. }))
    ));
}

#[test]
fn io_fds_stride_from_argsz_or_bytes() {
    let data = [0u8; 96];
    assert_eq!(
        IoFdEntries::parse(&data, 16 + 96, 2, 32).unwrap().layout(),
        IoFdLayout::Shadow
    );
    assert_eq!(
        IoFdEntries::parse(&data[..80], 16 + 80, 2, 32)
            .unwrap()
            .layout(),
        IoFdLayout::Spec
    );
    // argsz says nothing useful (a cut reply): fall back to the bytes present.
    assert_eq!(
        IoFdEntries::parse(&data[..80], 7, 2, 32).unwrap().layout(),
        IoFdLayout::Spec
    );
    let e = IoFdEntries::parse(&data[..50], 7, 2, 32).unwrap_err();
    assert_eq!(
        (e.offset, e.rule),
        (
            32,
            Rule::IoFdStride {
                argsz: 7,
                count: 2,
                have: 50
            }
        )
    );
    let e = IoFdEntries::parse(&data[..40], 16 + 96, 2, 32).unwrap_err();
    assert_eq!(e.rule.id(), "short-body");
}
