//! Hostile input, deterministically: every single-byte flip and every truncation point of the first
//! 64 messages of each real capture in `corpus/`, through the capture reader, the codec and the
//! validator (and the `vfu-dump` binary for a few of them); and inputs whose length fields claim
//! 4 GiB, with the peak allocation measured.
//!
//! What is checked for every mutated input:
//! - nothing panics;
//! - every reader error names a file offset inside the input, every decode error and every finding an
//!   offset inside its message;
//! - where the damage must be seen, it is: a flip in a block's leading or trailing length field is a
//!   reader error at that block's offset, a flip in the file magic or byte-order magic an error at 0, a
//!   flip in a message's `msg_size` a decode error of that message and a finding about it;
//! - a truncation inside a block is [`CaptureError::Incomplete`] at the offset of the block it cuts,
//!   after every record before it; one at a block boundary reads the records before it and nothing
//!   else; a truncation of a raw byte stream inside a message ends with a `truncated` record.
//!
//! The inputs are the captures' own bytes: the prefix of the file up to the 65th Enhanced Packet Block
//! (so the real header blocks, options and exported-PDU tags are mutated too). Flips are XOR 0xff.
//! Every byte position is flipped, and the input cut there, except in the bulk of large payloads: past
//! a message's first 256 bytes only every 31st position is (opaque data that the reader and decoder
//! only copy). Only the migrated session has such messages (MIG_DATA_WRITE with 1 KiB of data), so
//! the other two captures are covered at every position; the sampling is deterministic and keeps the
//! debug-mode run to about 25 s on 2 busy cores.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

use vfu_codec::frame::Framer;
use vfu_codec::{Direction, decode};
use vfu_dump::capture::{CaptureError, CaptureReader, OpenOptions, Protocol, RecordRef};
use vfu_dump::validate::{Event, Profile, Validator};
use vfu_tests::corpus_dir;

// ---------------------------------------------------------------------------------------------------
// Peak allocation, per thread (the test harness runs tests on several threads at once).
// ---------------------------------------------------------------------------------------------------

struct PeakTracking;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = CURRENT.try_with(|c| {
        let now = c.get() + delta;
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: forwards every call to the system allocator unchanged; only counts the bytes in thread-locals
// that are const-initialised `Cell`s (no allocation, no lock).
unsafe impl GlobalAlloc for PeakTracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: PeakTracking = PeakTracking;

/// Runs `f` and returns its result and the most bytes it had allocated at once (on this thread).
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    let peak = PEAK.with(Cell::get) - base;
    (r, peak.max(0) as usize)
}

/// The bound on what reading a hostile input may allocate: the reader's first buffer is 256 KiB.
const PEAK_LIMIT: usize = 4 << 20;

// ---------------------------------------------------------------------------------------------------
// One input through reader, decoder and validator.
// ---------------------------------------------------------------------------------------------------

/// What reading one input gave.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    /// Each record: file offset, truncated mark, data.
    records: Vec<(u64, bool, Vec<u8>)>,
    /// The reader's error, if reading stopped on one: its offset and whether it was `Incomplete`.
    error: Option<(Option<u64>, bool)>,
    /// Record indices whose message failed to decode.
    decode_errors: Vec<u64>,
    /// (record index, rule id) of every finding, in order.
    findings: Vec<(u64, &'static str)>,
}

fn run(input: &[u8], opts: &OpenOptions) -> Outcome {
    let len = input.len() as u64;
    let mut out = Outcome::default();
    let mut reader = match CaptureReader::new(input, opts) {
        Ok(r) => r,
        Err(e) => {
            check_error(&e, len);
            out.error = Some((e.offset(), matches!(e, CaptureError::Incomplete { .. })));
            return out;
        }
    };
    let mut v = Validator::new(Profile::LibvfioUser);
    let mut findings = Vec::new();
    loop {
        let rec = match reader.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => break,
            Err(e) => {
                check_error(&e, len);
                out.error = Some((e.offset(), matches!(e, CaptureError::Incomplete { .. })));
                assert!(
                    matches!(reader.next_record(), Ok(None)),
                    "the reader went on after: {e}"
                );
                break;
            }
        };
        assert!(
            rec.file_offset < len,
            "record at {} of a {len}-byte input",
            rec.file_offset
        );
        if rec.protocol == Protocol::VfioUser
            && let Err(e) = decode(rec.data, rec.direction)
        {
            assert!(
                e.offset <= rec.data.len(),
                "record #{}: decode error past the {}-byte message: {e}",
                rec.index,
                rec.data.len()
            );
            out.decode_errors.push(rec.index);
        }
        findings.clear();
        v.check(&event(&rec), &mut findings);
        for f in &findings {
            if f.index == rec.index {
                assert!(
                    f.offset <= rec.data.len(),
                    "finding past the {}-byte message: {f}",
                    rec.data.len()
                );
            }
            out.findings.push((f.index, f.rule.id));
        }
        out.records
            .push((rec.file_offset, rec.truncated, rec.data.to_vec()));
    }
    for f in v.finish() {
        out.findings.push((f.index, f.rule.id));
    }
    out
}

fn event<'a>(rec: &RecordRef<'a>) -> Event<'a> {
    Event {
        conn: rec.conn,
        index: rec.index,
        direction: rec.direction,
        protocol: if rec.protocol == Protocol::Vduse {
            vfu_dump::validate::Protocol::Vduse
        } else {
            vfu_dump::validate::Protocol::VfioUser
        },
        fds: rec.fds,
        truncated: rec.truncated,
        bytes: rec.data,
    }
}

fn check_error(e: &CaptureError, len: u64) {
    let off = e
        .offset()
        .unwrap_or_else(|| panic!("an error from the contents without an offset: {e}"));
    assert!(
        off <= len,
        "error offset {off} past the {len}-byte input: {e}"
    );
    let text = e.to_string();
    assert!(!text.is_empty());
}

// ---------------------------------------------------------------------------------------------------
// The captures' structure, parsed independently of the reader.
// ---------------------------------------------------------------------------------------------------

const BT_EPB: u32 = 6;

/// A pcapng block of the (little-endian) corpus captures.
#[derive(Clone, Copy, Debug)]
struct Block {
    start: usize,
    len: usize,
    ty: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The file's prefix holding its first `n` EPBs (and the blocks before them), and those blocks.
fn prefix(file: &[u8], n: usize) -> (Vec<u8>, Vec<Block>) {
    let mut blocks = Vec::new();
    let (mut at, mut epbs) = (0, 0);
    while at + 8 <= file.len() {
        let b = Block {
            start: at,
            len: u32_at(file, at + 4) as usize,
            ty: u32_at(file, at),
        };
        if b.ty == BT_EPB {
            if epbs == n {
                break;
            }
            epbs += 1;
        }
        blocks.push(b);
        at += b.len;
    }
    (file[..at].to_vec(), blocks)
}

struct Capture {
    bytes: Vec<u8>,
    blocks: Vec<Block>,
    baseline: Outcome,
}

fn capture(name: &'static str) -> Capture {
    let file = std::fs::read(corpus_dir().join(name)).expect("read capture");
    let (bytes, blocks) = prefix(&file, 64);
    let baseline = run(&bytes, &OpenOptions::default());
    assert_eq!(baseline.records.len(), 64, "{name}");
    assert!(baseline.error.is_none(), "{name}: {:?}", baseline.error);
    Capture {
        bytes,
        blocks,
        baseline,
    }
}

/// For each EPB: (block start, message start in the file, message length).
fn messages(c: &Capture) -> Vec<(usize, usize, usize)> {
    let epbs = c.blocks.iter().filter(|b| b.ty == BT_EPB);
    epbs.zip(&c.baseline.records)
        .map(|(b, (off, _, data))| {
            assert_eq!(b.start as u64, *off);
            let cap = u32_at(&c.bytes, b.start + 20) as usize;
            (b.start, b.start + 28 + cap - data.len(), data.len())
        })
        .collect()
}

/// Where a message's bulk data starts: positions past it are sampled.
const BULK: usize = 256;

/// The byte positions flipped (and the truncation points): all of them except a message's bytes past
/// its first [`BULK`], of which every 31st.
fn positions(c: &Capture) -> Vec<usize> {
    let msgs = messages(c);
    (0..=c.bytes.len())
        .filter(|&p| {
            msgs.iter()
                .find(|&&(_, m, l)| p >= m + BULK && p < m + l)
                .is_none_or(|&(_, m, _)| (p - m) % 31 == 0)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// Flips
// ---------------------------------------------------------------------------------------------------

fn flips(name: &'static str) {
    let c = capture(name);
    let msgs = messages(&c);
    let positions: Vec<usize> = positions(&c)
        .into_iter()
        .filter(|&p| p < c.bytes.len())
        .collect();
    let mut input = c.bytes.clone();
    let (mut errors, mut changed, mut must, mut seen_must) = (0usize, 0usize, 0usize, 0usize);
    for &p in &positions {
        input[p] ^= 0xff;
        let out = run(&input, &OpenOptions::default());
        input[p] ^= 0xff;
        if out.error.is_some() {
            errors += 1;
        }
        if out != c.baseline {
            changed += 1;
        }
        // Where the damage must be reported, and at which offset.
        let block = c
            .blocks
            .iter()
            .find(|b| p >= b.start && p < b.start + b.len)
            .expect("inside a block");
        let in_length =
            (block.start + 4..block.start + 8).contains(&p) || p >= block.start + block.len - 4;
        let magic = p < 4 || (8..12).contains(&p);
        if in_length || magic {
            must += 1;
            let want = if magic { 0 } else { block.start as u64 };
            match out.error {
                Some((Some(at), _)) if at == want => seen_must += 1,
                other => panic!(
                    "{name}: flip at {p:#x} ({block:?}): want an error at {want:#x}, got {other:?}"
                ),
            }
        }
        if let Some((i, _)) = msgs
            .iter()
            .enumerate()
            .find(|&(_, &(_, m, _))| (m + 4..m + 8).contains(&p))
        {
            must += 1;
            let i = i as u64;
            assert!(
                out.decode_errors.contains(&i) && out.findings.iter().any(|(at, _)| *at == i),
                "{name}: flip at {p:#x} in msg_size of record #{i}: no decode error and finding: {:?} {:?}",
                out.decode_errors,
                out.findings
            );
            seen_must += 1;
        }
    }
    eprintln!(
        "{name}: {} bytes, {} flips: {errors} reader errors, {changed} changed the outcome, {seen_must}/{must} required detections",
        c.bytes.len(),
        positions.len()
    );
    assert_eq!(seen_must, must);
    assert!(must > 64 * 3, "{name}: only {must} checked positions");
}

#[test]
fn flips_sample_client() {
    flips("lvu-sample-client.pcapng");
}

#[test]
fn flips_sample_client_migrated() {
    flips("lvu-sample-client-migrated.pcapng");
}

#[test]
fn flips_pytest_subset() {
    flips("lvu-pytest-subset.pcapng");
}

// ---------------------------------------------------------------------------------------------------
// Truncations
// ---------------------------------------------------------------------------------------------------

fn truncations(name: &'static str) {
    let c = capture(name);
    let ends: Vec<usize> = c.blocks.iter().map(|b| b.start + b.len).collect();
    let (mut incomplete, mut cuts) = (0, 0);
    for cut in positions(&c) {
        cuts += 1;
        let out = run(&c.bytes[..cut], &OpenOptions::default());
        // Records whose block ends by the cut are delivered unchanged; nothing else is.
        let whole = c
            .blocks
            .iter()
            .filter(|b| b.ty == BT_EPB && b.start + b.len <= cut)
            .count();
        if cut < 4 {
            assert_eq!(out.error, Some((Some(0), false)), "{name}: cut at {cut}");
            continue;
        }
        assert_eq!(
            &out.records[..],
            &c.baseline.records[..whole],
            "{name}: cut at {cut:#x}"
        );
        if cut == c.bytes.len() || ends.contains(&cut) {
            assert_eq!(
                out.error, None,
                "{name}: cut at the block boundary {cut:#x}"
            );
        } else {
            let block = c
                .blocks
                .iter()
                .find(|b| cut > b.start && cut < b.start + b.len)
                .expect("cut in a block");
            assert_eq!(
                out.error,
                Some((Some(block.start as u64), true)),
                "{name}: cut at {cut:#x} in {block:?}"
            );
            incomplete += 1;
        }
    }
    eprintln!(
        "{name}: {cuts} of {} truncation points, {incomplete} inside a block",
        c.bytes.len() + 1
    );
}

#[test]
fn truncations_sample_client() {
    truncations("lvu-sample-client.pcapng");
}

#[test]
fn truncations_sample_client_migrated() {
    truncations("lvu-sample-client-migrated.pcapng");
}

#[test]
fn truncations_pytest_subset() {
    truncations("lvu-pytest-subset.pcapng");
}

/// The first 32 messages as one raw byte stream, cut at every point: a cut inside a
/// message ends with that message as a `truncated` record (which the validator reports), a cut at a
/// message boundary reads the whole messages before it.
#[test]
fn truncations_of_a_raw_stream() {
    let c = capture("lvu-sample-client.pcapng");
    let stream: Vec<u8> = c
        .baseline
        .records
        .iter()
        .take(32)
        .flat_map(|(_, _, d)| d.clone())
        .collect();
    let starts: Vec<usize> = Framer::new(&stream).map(|(at, _)| at).collect();
    assert_eq!(starts.len(), 32);
    let opts = OpenOptions::raw(Direction::ClientToServer);
    for cut in 1..=stream.len() {
        let out = run(&stream[..cut], &opts);
        assert_eq!(out.error, None);
        let whole = starts.iter().filter(|&&s| s < cut).count();
        assert_eq!(out.records.len(), whole, "cut at {cut}");
        let (last_off, last_truncated, last) = out.records.last().expect("a record");
        let boundary = cut == stream.len() || starts.contains(&cut);
        assert_eq!(*last_truncated, !boundary, "cut at {cut}");
        assert_eq!(&stream[*last_off as usize..cut], &last[..]);
        if !boundary {
            let i = (out.records.len() - 1) as u64;
            assert!(
                out.findings.iter().any(|&(at, _)| at == i),
                "cut at {cut}: no finding for the truncated record"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The binary's exit status on mutated files
// ---------------------------------------------------------------------------------------------------

/// The `vfu-dump` binary next to this test's, brought up to date by `cargo build` (a no-op after
/// `cargo test --workspace`, which builds it).
fn vfu_dump() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let bin = dir.join(format!("vfu-dump{}", std::env::consts::EXE_SUFFIX));
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", "vfu-dump", "--bin", "vfu-dump"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(
            status.success() && bin.exists(),
            "could not build {}",
            bin.display()
        );
        bin
    })
    .clone()
}

fn exit_status(args: &[&str], file: &Path) -> (i32, String) {
    let out = Command::new(vfu_dump())
        .args(args)
        .arg(file)
        .output()
        .expect("run vfu-dump");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn binary_exit_status_on_mutated_captures() {
    let c = capture("lvu-sample-client.pcapng");
    let msgs = messages(&c);
    let dir = std::env::temp_dir().join(format!("vfu-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("write mutated capture");
        p
    };

    // Intact: read exits 0, validate 0 or 1 (the sample's findings, if any).
    let intact = write("intact.pcapng", &c.bytes);
    let (code, stdout) = exit_status(&["read", "--color", "never"], &intact);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().filter(|l| l.starts_with('#')).count(), 64);
    let baseline_validate = exit_status(&["validate"], &intact).0;
    assert!(baseline_validate <= 1);

    // Cut inside the 11th EPB: read prints the 10 records before it and exits 2; validate exits 2.
    let epb = c
        .blocks
        .iter()
        .filter(|b| b.ty == BT_EPB)
        .nth(10)
        .expect("an 11th EPB");
    let cut = write("cut.pcapng", &c.bytes[..epb.start + 10]);
    let (code, stdout) = exit_status(&["read", "--color", "never"], &cut);
    assert_eq!(code, 2);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with('#')).count(),
        10,
        "{stdout}"
    );
    assert_eq!(exit_status(&["validate"], &cut).0, 2);

    // A flipped msg_size: the file reads (0), the message is malformed, validate reports it (1).
    let mut bad = c.bytes.clone();
    bad[msgs[5].1 + 5] ^= 0xff;
    let bad = write("bad-msg-size.pcapng", &bad);
    assert_eq!(exit_status(&["read", "--color", "never"], &bad).0, 0);
    assert_eq!(exit_status(&["validate"], &bad).0, 1);

    // A flipped block length: a capture error after the records before it (2).
    let mut len = c.bytes.clone();
    len[epb.start + 5] ^= 0xff;
    let len = write("bad-block-length.pcapng", &len);
    let (code, stdout) = exit_status(&["read", "--color", "never"], &len);
    assert_eq!(
        (code, stdout.lines().filter(|l| l.starts_with('#')).count()),
        (2, 10)
    );
    assert_eq!(exit_status(&["validate"], &len).0, 2);

    // A flipped magic: not a capture (2).
    let mut magic = c.bytes.clone();
    magic[0] ^= 0xff;
    let magic = write("bad-magic.pcapng", &magic);
    assert_eq!(exit_status(&["read"], &magic).0, 2);
    assert_eq!(exit_status(&["validate"], &magic).0, 2);

    // A block claiming 4 GiB: refused (2), after the records before it.
    let huge = write("huge-block.pcapng", &huge_block_pcapng());
    assert_eq!(exit_status(&["read", "--color", "never"], &huge).0, 2);
    assert_eq!(exit_status(&["validate"], &huge).0, 2);

    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------------
// Lengths that claim 4 GiB
// ---------------------------------------------------------------------------------------------------

fn block(ty: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len()).next_multiple_of(4) as u32;
    let mut b = ty.to_le_bytes().to_vec();
    b.extend(len.to_le_bytes());
    b.extend_from_slice(body);
    b.resize(len as usize - 4, 0);
    b.extend(len.to_le_bytes());
    b
}

fn shb() -> Vec<u8> {
    let mut body = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    body.extend(1u16.to_le_bytes());
    body.extend(0u16.to_le_bytes());
    body.extend((-1i64).to_le_bytes());
    block(0x0A0D_0D0A, &body)
}

/// An IDB for link type 252 whose snaplen claims 4 GiB.
fn idb_huge_snaplen() -> Vec<u8> {
    let mut body = 252u16.to_le_bytes().to_vec();
    body.extend(0u16.to_le_bytes());
    body.extend(u32::MAX.to_le_bytes());
    block(1, &body)
}

/// A vfio-user header (VERSION) whose msg_size claims 4 GiB, then 48 bytes.
fn huge_message() -> Vec<u8> {
    let mut m = vec![0u8; 64];
    m[2] = 1;
    m[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    m
}

fn epb(msg: &[u8], cap: u32) -> Vec<u8> {
    let mut pdu = Vec::new();
    pdu.extend(12u16.to_be_bytes());
    pdu.extend(12u16.to_be_bytes());
    pdu.extend(b"vfio_user\0\0\0");
    pdu.extend([0, 0, 0, 0]);
    pdu.extend_from_slice(msg);
    let mut body = 0u32.to_le_bytes().to_vec();
    body.extend([0u8; 8]);
    body.extend(cap.to_le_bytes());
    body.extend((pdu.len() as u32).to_le_bytes());
    body.extend(&pdu);
    block(BT_EPB, &body)
}

/// SHB, an IDB with a 4 GiB snaplen, one good EPB, then a block whose length claims 4 GiB − 4.
fn huge_block_pcapng() -> Vec<u8> {
    let mut f = shb();
    f.extend(idb_huge_snaplen());
    let mut version = vec![0u8; 16];
    version[2] = 1;
    version[4] = 16;
    f.extend(epb(&version, 36));
    f.extend(BT_EPB.to_le_bytes());
    f.extend(0xffff_fffcu32.to_le_bytes());
    f.extend([0u8; 1000]);
    f
}

#[test]
fn four_gib_claims_keep_memory_flat() {
    // The codec: decode and frame a header claiming 4 GiB (it never allocates at all).
    let msg = huge_message();
    let ((), peak) = peak_of(|| {
        let e = decode(&msg, Direction::ClientToServer).unwrap_err();
        assert_eq!(e.rule.id(), "msg-truncated");
        assert!(e.offset <= msg.len());
        assert_eq!(Framer::new(&msg).count(), 0);
    });
    assert_eq!(peak, 0, "the codec allocated");

    // The validator on that message.
    let (findings, peak) = peak_of(|| {
        let mut v = Validator::new(Profile::Spec);
        let ev = Event {
            conn: 0,
            index: 0,
            direction: Direction::ClientToServer,
            protocol: vfu_dump::validate::Protocol::VfioUser,
            fds: 0,
            truncated: false,
            bytes: &msg,
        };
        let mut out = v.check_event(&ev);
        out.extend(v.finish());
        out.len()
    });
    assert!(findings > 0);
    assert!(peak < PEAK_LIMIT, "validator peak {peak}");

    // Readers: each input, its expected outcome, and the peak allocation while reading it.
    let mut cases: Vec<(&str, Vec<u8>, OpenOptions)> = Vec::new();
    // pcapng: a 4 GiB snaplen, then a block claiming 4 GiB − 4 (above the 64 MiB record limit).
    cases.push((
        "pcapng block 4 GiB",
        huge_block_pcapng(),
        OpenOptions::default(),
    ));
    // pcapng: a block claiming 60 MiB (under the limit) with 1000 bytes present.
    let mut f = shb();
    f.extend(idb_huge_snaplen());
    f.extend(BT_EPB.to_le_bytes());
    f.extend((60u32 << 20).to_le_bytes());
    f.extend([0u8; 1000]);
    cases.push(("pcapng block 60 MiB", f, OpenOptions::default()));
    // pcapng: an EPB whose captured length claims 4 GiB inside a small block.
    let mut f = shb();
    f.extend(idb_huge_snaplen());
    f.extend(epb(&huge_message(), u32::MAX));
    cases.push(("pcapng captured length 4 GiB", f, OpenOptions::default()));
    // pcapng: a well-formed EPB carrying the 4 GiB message.
    let mut f = shb();
    f.extend(idb_huge_snaplen());
    let m = huge_message();
    f.extend(epb(&m, 20 + m.len() as u32));
    cases.push(("pcapng message msg_size 4 GiB", f, OpenOptions::default()));
    // pcap: snaplen 4 GiB, a record claiming 4 GiB; and one claiming 60 MiB.
    for incl in [u32::MAX, 60 << 20] {
        let mut f = 0xA1B2_C3D4u32.to_le_bytes().to_vec();
        f.extend(2u16.to_le_bytes());
        f.extend(4u16.to_le_bytes());
        f.extend([0u8; 8]);
        f.extend(u32::MAX.to_le_bytes());
        f.extend(252u32.to_le_bytes());
        f.extend([0u8; 8]);
        f.extend(incl.to_le_bytes());
        f.extend(incl.to_le_bytes());
        f.extend([0u8; 1000]);
        cases.push(("pcap record", f, OpenOptions::default()));
    }
    // sockdump: sends whose message claims 4 GiB.
    let mut f = 0xA1B2_C3D4u32.to_le_bytes().to_vec();
    f.extend(2u16.to_le_bytes());
    f.extend(4u16.to_le_bytes());
    f.extend([0u8; 8]);
    f.extend(u32::MAX.to_le_bytes());
    f.extend(147u32.to_le_bytes());
    for i in 0..8 {
        let mut rec = vec![0u8; 125];
        rec[0] = 6;
        rec[1..7].copy_from_slice(b"/t.sck");
        rec[109..117].copy_from_slice(&2u64.to_be_bytes());
        rec[117..125].copy_from_slice(&1u64.to_be_bytes());
        if i == 0 {
            rec.extend(huge_message());
        } else {
            rec.extend([0x5au8; 4000]);
        }
        f.extend([0u8; 8]);
        f.extend((rec.len() as u32).to_le_bytes());
        f.extend((rec.len() as u32).to_le_bytes());
        f.extend(rec);
    }
    cases.push(("sockdump message msg_size 4 GiB", f, OpenOptions::default()));
    // raw: a stream whose first message claims 4 GiB.
    let mut f = huge_message();
    f.extend([0u8; 4000]);
    cases.push((
        "raw message msg_size 4 GiB",
        f,
        OpenOptions::raw(Direction::ClientToServer),
    ));

    for (what, input, opts) in &cases {
        let (out, peak) = peak_of(|| run(input, opts));
        eprintln!(
            "{what}: {} records, error {:?}, peak allocation {peak} bytes",
            out.records.len(),
            out.error
        );
        assert!(peak < PEAK_LIMIT, "{what}: peak allocation {peak} bytes");
        assert!(
            out.error.is_some() || !out.decode_errors.is_empty() || out.records.iter().any(|r| r.1),
            "{what}: accepted without an error, a decode error or a truncated record: {out:?}"
        );
    }
}
