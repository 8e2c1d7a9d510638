//! Inputs the fuzzers (`fuzz/`) found, minimised, with the behaviour they must have. Each test names
//! the fuzz target and the artifact it came from; see `fuzz/README.md` ("Findings").

use vfu_codec::vfio::device::CapIter;
use vfu_codec::{Direction, Rule, decode};

/// A DEVICE_GET_REGION_INFO reply: CAPS set, `cap_offset` 0xffffffff, no capability area.
const REGION_INFO_CAP_OFFSET_FAR: [u8; 48] = [
    0x07, 0x00, 0x05, 0x00, 0x30, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, // header
    0x30, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
    0xff, // argsz flags index cap_offset
    0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, // size offset
];

/// fuzz target `message` (crash-f3830f24…), `region_caps` and `validator`: a capability offset beyond
/// the payload was reported at message offset `16 + cap_offset` (0x1_0000_000f for this 48-byte
/// message). Fixed in `CapIter::step` (codec/src/vfio/device.rs): a pointer that leads nowhere is now
/// reported at the pointer itself, here the reply's `cap_offset` field at 0x1c; the generated dissector
/// does the same.
#[test]
fn cap_offset_past_the_payload_is_reported_inside_the_message() {
    let msg = REGION_INFO_CAP_OFFSET_FAR;
    let err = decode(&msg, Direction::ServerToClient).unwrap_err();
    assert!(
        matches!(
            err.rule,
            Rule::CapOutOfBounds {
                cap_offset: 0xffff_ffff,
                payload: 32
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.offset, 0x1c, "the cap_offset field");
    assert!(
        err.offset < msg.len(),
        "offset {:#x} past the {}-byte message",
        err.offset,
        msg.len()
    );
}

/// The same through the iterator: a `next` pointing past the area.
#[test]
fn next_past_the_area_is_reported_inside_the_message() {
    // One TYPE capability at payload offset 32 whose `next` is 4000; the area is its 16 bytes.
    let mut area = [0u8; 16];
    area[0..2].copy_from_slice(&2u16.to_le_bytes());
    area[4..8].copy_from_slice(&4000u32.to_le_bytes());
    let errors: Vec<_> = CapIter::new(&area, 32, 16)
        .filter_map(Result::err)
        .collect();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].offset < 16 + 32 + area.len(), "{}", errors[0]);
}

/// What the fuzzers check of every decode error holds for the other capability rules.
#[test]
fn other_capability_errors_name_bytes_of_the_message() {
    // cap_offset 8: inside the fixed part.
    let mut msg = REGION_INFO_CAP_OFFSET_FAR;
    msg[28..32].copy_from_slice(&8u32.to_le_bytes());
    let err = decode(&msg, Direction::ServerToClient).unwrap_err();
    assert!(matches!(err.rule, Rule::CapOverlapsFixed { cap_offset: 8 }));
    assert!(err.offset < msg.len());
    // cap_offset 32 = the payload's end: no room for a header, reported at the message's end.
    msg[28..32].copy_from_slice(&32u32.to_le_bytes());
    let err = decode(&msg, Direction::ServerToClient).unwrap_err();
    assert!(matches!(err.rule, Rule::CapOutOfBounds { .. }));
    assert!(err.offset <= msg.len());
}
