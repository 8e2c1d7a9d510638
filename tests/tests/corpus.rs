//! The real captures in `corpus/` (libvfio-user's sample session and its Python test suite) through the
//! codec: every message decodes (or, where the suite sent it malformed on purpose, fails with a precise
//! error listed in a golden file), and every well-formed message re-encodes byte for byte.

use std::fmt::Write as _;

use vfu_codec::{Body, decode, encode_exact};
use vfu_dump::capture::Protocol;
use vfu_tests::{golden, load};

const SAMPLES: &[&str] = &[
    "lvu-sample-client.pcapng",
    "lvu-sample-client-migrated.pcapng",
];

#[test]
fn sample_sessions_decode_without_error() {
    for name in SAMPLES {
        let recs = load(name);
        assert!(!recs.is_empty(), "{name}: no records");
        for r in &recs {
            assert_eq!(r.protocol, Protocol::VfioUser);
            if let Err(e) = decode(&r.data, r.direction) {
                panic!("{name} #{}: {e}", r.index);
            }
        }
    }
}

#[test]
fn sample_sessions_cover_the_commands_in_the_readme() {
    // The sample session: 224 messages (as its recorder counted them), among them every command the
    // sample client uses.
    let recs = load("lvu-sample-client.pcapng");
    assert_eq!(recs.len(), 224);
    let mut seen = std::collections::BTreeSet::new();
    for r in &recs {
        let m = decode(&r.data, r.direction).unwrap();
        seen.insert(m.command().0);
        if let Body::Version(v) = m.body {
            let caps = vfu_codec::vfio::caps::parse_capabilities(v.json.unwrap_or(b"{}")).unwrap();
            let _ = caps;
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 16, 17]
    );
}

#[test]
fn pytest_capture_errors_are_precise_and_listed() {
    let recs = load("lvu-pytest-subset.pcapng");
    assert_eq!(recs.len(), 576);
    let mut listing = String::new();
    let mut errors = 0;
    for r in &recs {
        match decode(&r.data, r.direction) {
            Ok(_) => {}
            Err(e) => {
                errors += 1;
                let _ = writeln!(
                    listing,
                    "conn {} #{} {} len {}{}: {} at offset {:#x}{}",
                    r.conn,
                    r.index,
                    r.direction.short(),
                    r.data.len(),
                    if r.truncated { " truncated" } else { "" },
                    e.rule.id(),
                    e.offset,
                    e.needed()
                        .map_or(String::new(), |n| format!(", {n} more bytes needed")),
                );
            }
        }
    }
    // Every one of these is a message the suite sent malformed on purpose (see the golden file's
    // header comment and corpus/README.md); none comes from the server.
    for r in &recs {
        if decode(&r.data, r.direction).is_err() {
            assert_eq!(
                r.direction,
                vfu_codec::Direction::ClientToServer,
                "#{}: the server sent a malformed message",
                r.index
            );
        }
    }
    assert!(errors > 0);
    golden(
        "corpus/expected/lvu-pytest-subset.decode-errors.txt",
        listing.as_bytes(),
    );
}

#[test]
fn well_formed_messages_reencode_byte_for_byte() {
    for name in [
        "lvu-sample-client.pcapng",
        "lvu-sample-client-migrated.pcapng",
        "lvu-pytest-subset.pcapng",
    ] {
        let mut n = 0;
        for r in load(name) {
            let Ok(m) = decode(&r.data, r.direction) else {
                continue;
            };
            let mut out = vec![0u8; r.data.len()];
            let len = encode_exact(m.header, &m.body, m.trailing, &mut out).unwrap();
            assert_eq!(&out[..len], &r.data[..], "{name} #{}", r.index);
            n += 1;
        }
        assert!(n > 80, "{name}: only {n} messages");
    }
}
