//! Every VERSION message of the libvfio-user captures (`testdata/version-messages.msgs`, taken from
//! `corpus/` by `tests/testdata.rs`): each decodes as the captures' decoder found it, and each
//! capabilities text parses, re-emits and parses again to the same value.

#![allow(clippy::unwrap_used)] // test code: a failure is a test failure

#[path = "common/msgs.rs"]
mod msgs;

use vfu_codec::vfio::caps::parse_capabilities;
use vfu_codec::{Body, Command, decode};

static VERSIONS: &[u8] = include_bytes!("../testdata/version-messages.msgs");

#[test]
fn captured_version_payloads() {
    let needle = b"\"capabilities\"";
    let (mut seen, mut ill, mut refused, mut errors, mut other) = (0, 0, 0, 0, 0);
    for (direction, bytes) in msgs::records(VERSIONS) {
        let named = bytes.windows(needle.len()).any(|w| w == needle);
        let m = match decode(bytes, direction) {
            Ok(m) => m,
            Err(e) => {
                // None of the malformed VERSIONs names "capabilities".
                assert!(!named, "{e}: {bytes:02x?}");
                refused += 1;
                continue;
            }
        };
        assert_eq!(m.command(), Command::VERSION);
        let Body::Version(v) = m.body else {
            assert_eq!(m.body, Body::Error);
            errors += 1;
            continue;
        };
        let Some(json) = v.json.filter(|_| named) else {
            // No capabilities text, or one without the "capabilities" member.
            other += 1;
            continue;
        };
        let caps = parse_capabilities(json).expect("capabilities parse");
        ill += caps.ill_typed().count();
        // Emitting and parsing again gives the same value.
        let mut buf = vec![0xa5u8; caps.emitted_len()];
        let n = caps.emit(&mut buf).unwrap();
        assert_eq!(parse_capabilities(&buf[..n]).unwrap(), caps);
        seen += 1;
    }
    assert_eq!(seen, 67);
    // "capabilities": "23", "max_msg_fds": "foo" and -1, "migration": "23", "pgsize": "foo".
    assert_eq!(ill, 5);
    // Malformed VERSIONs (libvfio-user's tests send them), error replies, and two without a
    // "capabilities" member.
    assert_eq!((refused, errors, other), (6, 12, 2));
}
