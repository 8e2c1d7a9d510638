//! `testdata/*.msgs`, which the codec's own tests and benchmarks read (the crate is packaged without the
//! repository's `corpus/`), are what the captures in `corpus/` hold: this test derives them again from
//! the captures and compares, byte for byte. `VFU_BLESS=1` rewrites them. Outside the repository (the
//! packaged crate) the captures are absent and the test says it skipped.

#![allow(clippy::unwrap_used)] // test code: a failure is a test failure

#[path = "common/msgs.rs"]
mod msgs;

use std::path::{Path, PathBuf};

use vfu_codec::{Command, Direction, Header};

/// The vfio-user messages of a pcapng capture in the project's format (link type 252): a minimal walker
/// over Enhanced Packet Blocks that skips the exported-PDU tags; tag 35 (`vfio_user.dir`) gives the
/// direction.
fn pcapng_messages(file: &[u8]) -> Vec<(Direction, Vec<u8>)> {
    let mut out = Vec::new();
    let mut off = 0;
    let u32at = |o: usize| u32::from_le_bytes(file[o..o + 4].try_into().unwrap()) as usize;
    while off + 12 <= file.len() {
        let (ty, len) = (u32at(off), u32at(off + 4));
        if ty == 6 {
            let cap = u32at(off + 20);
            let pkt = &file[off + 28..off + 28 + cap];
            let (mut p, mut dir) = (0, Direction::ClientToServer);
            loop {
                let tag = u16::from_be_bytes([pkt[p], pkt[p + 1]]);
                let l = u16::from_be_bytes([pkt[p + 2], pkt[p + 3]]) as usize;
                if tag == 35 && pkt[p + 7] == 1 {
                    dir = Direction::ServerToClient;
                }
                p += 4 + l;
                if tag == 0 {
                    break;
                }
            }
            out.push((dir, pkt[p..].to_vec()));
        }
        off += len.max(12);
    }
    out
}

fn compare_or_bless(path: &Path, want: &[u8]) {
    if std::env::var_os("VFU_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(path, want).unwrap();
        return;
    }
    let have = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e} (VFU_BLESS=1 writes it)", path.display()));
    assert!(
        have == want,
        "{} differs from what the captures hold (VFU_BLESS=1 rewrites it)",
        path.display()
    );
}

#[test]
fn testdata_matches_the_captures() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus = manifest.join("../corpus");
    let capture = |name: &str| std::fs::read(corpus.join(name)).ok();
    let Some(sample) = capture("lvu-sample-client.pcapng") else {
        eprintln!(
            "skipped: {} is not here (a packaged crate); testdata/ is checked in the repository",
            corpus.display()
        );
        return;
    };
    let session = pcapng_messages(&sample);
    assert_eq!(session.len(), 224);
    let file = msgs::file(&session);
    let back: Vec<(Direction, Vec<u8>)> = msgs::records(&file)
        .into_iter()
        .map(|(d, m)| (d, m.to_vec()))
        .collect();
    assert_eq!(back, session, "the .msgs format holds the session");
    compare_or_bless(
        &manifest.join("testdata/lvu-sample-client.msgs"),
        &msgs::file(&session),
    );

    let mut versions = Vec::new();
    for name in [
        "lvu-sample-client.pcapng",
        "lvu-sample-client-migrated.pcapng",
        "lvu-pytest-subset.pcapng",
    ] {
        let file = capture(name).unwrap();
        versions.extend(
            pcapng_messages(&file)
                .into_iter()
                .filter(|(_, m)| Header::peek(m).is_some_and(|h| h.cmd() == Command::VERSION)),
        );
    }
    compare_or_bless(
        &manifest.join("testdata/version-messages.msgs"),
        &msgs::file(&versions),
    );
}
