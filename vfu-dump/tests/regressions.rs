//! Inputs the fuzzers (`fuzz/`) found, minimised, with the behaviour they must have. Each test names
//! the fuzz target it came from; see `fuzz/README.md` ("Findings").

use vfu_codec::Direction;
use vfu_dump::validate::{Event, Profile, Protocol, Validator};

/// fuzz target `validator` (crash-9df253e6…): a DEVICE_GET_REGION_INFO reply whose `cap_offset` is
/// 0xffffffff got the finding `decode/region-cap-out-of-bounds` at `+0x10000000f`, far past the
/// 48-byte message. The validator passes on the codec's offset; the codec now reports a pointer that
/// leads nowhere at the pointer itself (codec/tests/regressions.rs), here `cap_offset` at 0x1c.
#[test]
fn finding_for_a_far_cap_offset_names_a_byte_of_the_message() {
    let msg: [u8; 48] = [
        0x07, 0x00, 0x05, 0x00, 0x30, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, // header
        0x30, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
        0xff, // argsz flags index cap_offset
        0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, // size offset
    ];
    let mut v = Validator::new(Profile::Spec);
    let ev = Event {
        conn: 0,
        index: 0,
        direction: Direction::ServerToClient,
        protocol: Protocol::VfioUser,
        fds: 0,
        truncated: false,
        bytes: &msg,
    };
    let findings = v.check_event(&ev);
    let f = findings
        .iter()
        .find(|f| f.rule.id == "decode/region-cap-out-of-bounds")
        .expect("the chain error is reported");
    assert_eq!(f.offset, 0x1c, "{f}");
}
