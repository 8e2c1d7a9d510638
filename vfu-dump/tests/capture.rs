//! The capture layer against the corpus: counts from `corpus/README.md`, round trips through
//! the writer, sockdump and raw inputs built from the corpus messages, corrupt inputs, and memory.

#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use vfu_codec::Direction;
use vfu_dump::capture::{
    CaptureError, CaptureReader, Connection, Format, MAX_RECORD_LEN, OpenOptions, PcapngWriter,
    Protocol, Record, open,
};

// ---------------------------------------------------------------------------------------------------
// A per-thread allocation counter, to show that reading does not allocate per record and that a huge
// length field does not allocate its size.

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + size;
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
    let _ = CALLS.try_with(|c| c.set(c.get() + 1));
}

fn note_free(size: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(size)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: same layout as given to us.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_free(layout.size());
        note_alloc(new_size);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result, the peak of this thread's live allocation above the level at
/// the start, and the number of allocation calls.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let calls = CALLS.with(Cell::get);
    let out = f();
    (
        out,
        PEAK.with(Cell::get) - base,
        CALLS.with(Cell::get) - calls,
    )
}

// ---------------------------------------------------------------------------------------------------
// Helpers.

const FILES: [&str; 3] = [
    "lvu-sample-client",
    "lvu-sample-client-migrated",
    "lvu-pytest-subset",
];

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(format!("{name}.pcapng"))
}

/// Reads every record; the error, if any, ends the list.
fn read_all<R: Read>(
    mut r: CaptureReader<R>,
) -> (Vec<Record>, Vec<Connection>, Option<CaptureError>) {
    let mut out = vec![];
    let err = loop {
        match r.next_record() {
            Ok(Some(rec)) => out.push(rec.to_owned()),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    // Fused after the end or an error.
    assert!(matches!(r.next_record(), Ok(None)));
    (out, r.connections().to_vec(), err)
}

fn read_file(name: &str) -> (Vec<Record>, Vec<Connection>) {
    let r = open(&corpus(name), &OpenOptions::default()).unwrap();
    assert_eq!(r.format(), Format::Pcapng);
    let (recs, conns, err) = read_all(r);
    assert!(err.is_none(), "{name}: {err:?}");
    (recs, conns)
}

fn read_bytes(
    bytes: &[u8],
    opts: &OpenOptions,
) -> (Vec<Record>, Vec<Connection>, Option<CaptureError>) {
    read_all(CaptureReader::new(bytes, opts).unwrap())
}

/// What the writer preserves.
fn essence(r: &Record) -> (u32, u64, Direction, Protocol, u32, bool, &[u8]) {
    (
        r.conn,
        r.ts_ns,
        r.direction,
        r.protocol,
        r.fds,
        r.truncated,
        &r.data,
    )
}

fn cmd(data: &[u8]) -> u16 {
    u16::from_le_bytes([data[2], data[3]])
}

fn flags(data: &[u8]) -> u32 {
    u32::from_le_bytes([data[8], data[9], data[10], data[11]])
}

// ---------------------------------------------------------------------------------------------------
// The corpus against the README's tables.

/// Columns: C->S command, C->S reply, C->S truncated, S->C command, S->C reply, S->C error-reply.
type Row = (u16, [u32; 6]);

#[rustfmt::skip]
const SAMPLE_CLIENT: &[Row] = &[
    (1, [1, 0, 0, 0, 1, 0]), (2, [16, 0, 0, 0, 16, 0]), (3, [8, 0, 0, 0, 8, 0]),
    (4, [1, 0, 0, 0, 1, 0]), (5, [10, 0, 0, 0, 10, 0]), (7, [5, 0, 0, 0, 5, 0]),
    (8, [1, 0, 0, 0, 1, 0]), (9, [3, 0, 0, 0, 2, 1]), (10, [4, 0, 0, 0, 4, 0]),
    (11, [0, 4, 0, 4, 0, 0]), (12, [0, 4, 0, 4, 0, 0]), (13, [1, 0, 0, 0, 1, 0]),
    (16, [21, 0, 0, 0, 21, 0]), (17, [33, 0, 0, 0, 33, 0]),
];

#[rustfmt::skip]
const MIGRATED: &[Row] = &[
    (1, [1, 0, 0, 0, 1, 0]), (2, [8, 0, 0, 0, 8, 0]), (3, [1, 0, 0, 0, 1, 0]),
    (7, [5, 0, 0, 0, 5, 0]), (8, [1, 0, 0, 0, 1, 0]), (9, [1, 0, 0, 0, 1, 0]),
    (11, [0, 4, 0, 4, 0, 0]), (12, [0, 4, 0, 4, 0, 0]), (16, [3, 0, 0, 0, 3, 0]),
    (18, [17, 0, 0, 0, 17, 0]),
];

#[rustfmt::skip]
const PYTEST: &[Row] = &[
    (1, [41, 0, 1, 0, 29, 12]), (2, [138, 0, 0, 0, 135, 2]), (3, [12, 0, 0, 0, 3, 9]),
    (4, [3, 0, 0, 0, 1, 2]), (5, [8, 0, 0, 0, 5, 3]), (7, [7, 0, 0, 0, 4, 3]),
    (8, [30, 0, 0, 0, 9, 21]), (9, [24, 0, 0, 0, 24, 0]), (10, [24, 0, 0, 0, 24, 0]),
    (999, [1, 0, 0, 0, 0, 1]),
];

fn table(recs: &[Record]) -> Vec<Row> {
    let mut t: HashMap<u16, [u32; 6]> = HashMap::new();
    for r in recs {
        let c2s = r.direction == Direction::ClientToServer;
        let reply = flags(&r.data) & 0xf == 1;
        let error = flags(&r.data) & 0x20 != 0;
        let col = match (c2s, r.truncated, reply, error) {
            (true, true, ..) => 2,
            (true, false, false, _) => 0,
            (true, false, true, _) => 1,
            (false, false, false, _) => 3,
            (false, false, true, false) => 4,
            (false, false, true, true) => 5,
            (false, true, ..) => panic!("unexpected truncated S->C record"),
        };
        t.entry(cmd(&r.data)).or_default()[col] += 1;
    }
    let mut rows: Vec<Row> = t.into_iter().collect();
    rows.sort();
    rows
}

/// (messages with fds, total fds) per direction.
fn fd_counts(recs: &[Record]) -> [(u32, u32); 2] {
    let mut out = [(0, 0); 2];
    for r in recs.iter().filter(|r| r.fds > 0) {
        let d = usize::from(r.direction == Direction::ServerToClient);
        out[d].0 += 1;
        out[d].1 += r.fds;
    }
    out
}

#[test]
fn corpus_matches_the_readme() {
    // File, records, connections, command table, fds per direction.
    type Expect<'a> = (&'a str, usize, usize, &'a [Row], [(u32, u32); 2]);
    let expect: [Expect<'_>; 3] = [
        (
            "lvu-sample-client",
            224,
            1,
            SAMPLE_CLIENT,
            [(17, 17), (1, 1)],
        ),
        (
            "lvu-sample-client-migrated",
            90,
            1,
            MIGRATED,
            [(9, 9), (0, 0)],
        ),
        ("lvu-pytest-subset", 576, 43, PYTEST, [(7, 9), (1, 1)]),
    ];
    for (name, n, conns, rows, fds) in expect {
        let (recs, c) = read_file(name);
        assert_eq!(recs.len(), n, "{name}");
        assert_eq!(c.len(), conns, "{name}");
        for (i, conn) in c.iter().enumerate() {
            assert_eq!(conn.id as usize, i);
            assert!(
                conn.name.starts_with(&format!("vfio-user:{i}:/")),
                "{}",
                conn.name
            );
            assert_eq!(conn.protocol, Protocol::VfioUser);
        }
        assert!(recs.iter().all(|r| r.protocol == Protocol::VfioUser));
        assert!(recs.iter().enumerate().all(|(i, r)| r.index == i as u64));
        assert!(recs.windows(2).all(|w| w[0].file_offset < w[1].file_offset));
        assert_eq!(table(&recs), rows, "{name}");
        assert_eq!(fd_counts(&recs), fds, "{name}");
        let truncated: Vec<_> = recs.iter().filter(|r| r.truncated).collect();
        assert_eq!(
            truncated.len(),
            usize::from(name == "lvu-pytest-subset"),
            "{name}"
        );
        for r in &recs {
            if !r.truncated && r.data.len() >= 16 {
                let size =
                    u32::from_le_bytes([r.data[4], r.data[5], r.data[6], r.data[7]]) as usize;
                assert!(
                    size == r.data.len() || size < 16,
                    "{name} record {}",
                    r.index
                );
            }
            // Nanosecond timestamps of 2020s wall-clock time.
            assert!(r.ts_ns > 1_600_000_000_000_000_000, "{}", r.ts_ns);
        }
    }
    // The truncated record: a VERSION header that claims 1048625 bytes.
    let (recs, _) = read_file("lvu-pytest-subset");
    let t = recs.iter().find(|r| r.truncated).unwrap();
    assert_eq!(
        (cmd(&t.data), t.data.len(), t.direction),
        (1, 16, Direction::ClientToServer)
    );
}

// ---------------------------------------------------------------------------------------------------
// Writing.

fn write(recs: &[Record], conns: &[Connection]) -> Vec<u8> {
    let mut w = PcapngWriter::new(Vec::new()).unwrap();
    for c in conns {
        w.add_connection(&c.name, c.protocol).unwrap();
    }
    for r in recs {
        w.write_record(&r.as_ref()).unwrap();
    }
    w.into_inner().unwrap()
}

#[test]
fn round_trip_through_the_writer() {
    for name in FILES {
        let (original, _) = read_file(name);
        // Convert as a tool would: connections copied as the reader finds them.
        let mut reader = open(&corpus(name), &OpenOptions::default()).unwrap();
        let mut w = PcapngWriter::new(Vec::new()).unwrap();
        while let Some(rec) = reader.next_record().unwrap() {
            let rec = rec.to_owned();
            w.copy_connections_from(&reader).unwrap();
            w.write_record(&rec.as_ref()).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        let (again, conns, err) = read_bytes(&bytes, &OpenOptions::default());
        assert!(err.is_none());
        assert_eq!(conns, reader.connections());
        assert_eq!(again.len(), original.len());
        for (a, b) in original.iter().zip(&again) {
            assert_eq!(essence(a), essence(b), "{name} record {}", a.index);
        }
        // The independent recorder writes the same layout: the bytes are identical, except that it
        // places IDBs as connections are accepted, which may be before earlier connections' packets.
        let file = std::fs::read(corpus(name)).unwrap();
        if name != "lvu-pytest-subset" {
            assert_eq!(bytes, file, "{name}");
        }
        assert_eq!(bytes.len(), file.len(), "{name}");
    }
}

/// The VDUSE captures: one written by an independent C daemon's recorder, one by the `vduse-blk`
/// example with `vfu_codec::capture`. Read and written again by this crate's writer (which encodes with
/// the same module), both come out byte for byte as they are: the three writers lay the format out
/// alike.
#[test]
fn vduse_captures_round_trip_byte_for_byte() {
    for name in ["vduse-6.12-blk", "vduse-6.12-blk-example"] {
        let (recs, conns) = read_file(name);
        assert_eq!(recs.len(), 32, "{name}");
        assert!(recs.iter().all(|r| r.protocol == Protocol::Vduse), "{name}");
        assert_eq!(conns.len(), 1);
        assert_eq!(conns[0].name, "vduse:0:/dev/vduse/vduse-blk0");
        let file = std::fs::read(corpus(name)).unwrap();
        assert_eq!(write(&recs, &conns), file, "{name}");
    }
}

/// `pcap-file`, an independent pcapng reader, reads what the writer writes.
#[test]
fn writer_output_reads_with_pcap_file() {
    use pcap_file::pcapng::{Block, PcapNgReader};
    let (recs, conns) = read_file("lvu-sample-client");
    let bytes = write(&recs, &conns);
    let mut r = PcapNgReader::new(&bytes[..]).unwrap();
    let mut n = 0;
    let mut idbs = 0;
    while let Some(block) = r.next_block() {
        match block.unwrap() {
            Block::InterfaceDescription(idb) => {
                idbs += 1;
                assert_eq!(u32::from(idb.linktype), 252);
                assert_eq!(idb.snaplen, 0);
            }
            Block::EnhancedPacket(epb) => {
                let rec = &recs[n];
                assert!(epb.data.ends_with(&rec.data));
                assert_eq!(&epb.data[..4], &[0, 12, 0, 12]);
                assert_eq!(epb.original_len as usize, epb.data.len());
                n += 1;
            }
            _ => {}
        }
    }
    assert_eq!((idbs, n), (1, recs.len()));
}

#[test]
fn connections_can_be_added_between_records() {
    let (recs, _) = read_file("lvu-pytest-subset");
    let mut w = PcapngWriter::new(Vec::new()).unwrap();
    let mut added = 0;
    for r in &recs {
        while added <= r.conn {
            let id = w
                .add_connection(&format!("vfio-user:{added}:/tmp/x"), Protocol::VfioUser)
                .unwrap();
            assert_eq!(id, added);
            added += 1;
        }
        w.write_record(&r.as_ref()).unwrap();
    }
    let (again, conns, err) = read_bytes(&w.into_inner().unwrap(), &OpenOptions::default());
    assert!(err.is_none());
    assert_eq!(conns.len(), 43);
    assert!(
        recs.iter()
            .zip(&again)
            .all(|(a, b)| essence(a) == essence(b))
    );
}

// ---------------------------------------------------------------------------------------------------
// sockdump: a classic pcap (link type 147) of the corpus messages, cut into odd-sized sends.

const SERVER_PID: u64 = 4242;

fn sockdump_record(out: &mut Vec<u8>, ts_ns: u64, path: &str, pid: u64, peer: u64, data: &[u8]) {
    let mut prefix = [0u8; 125];
    prefix[0] = path.len() as u8;
    prefix[1..1 + path.len()].copy_from_slice(path.as_bytes());
    prefix[109..117].copy_from_slice(&peer.to_be_bytes());
    prefix[117..125].copy_from_slice(&pid.to_be_bytes());
    let len = (125 + data.len()) as u32;
    let (sec, usec) = (
        (ts_ns / 1_000_000_000) as u32,
        (ts_ns % 1_000_000_000 / 1000) as u32,
    );
    for w in [sec, usec, len, len] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(&prefix);
    out.extend_from_slice(data);
}

/// A sockdump capture of `recs`: connection `c`'s client is pid 1000 + c; each message is sent in
/// pieces of 1, 3, 7, 13, 29, 61, 127 … bytes (cycling), so pieces cross message boundaries only
/// within one message.
fn sockdump_of(recs: &[Record]) -> Vec<u8> {
    let mut f = vec![];
    for w in [0xA1B2_C3D4u32, 0x0004_0002, 0, 0, 65535, 147] {
        f.extend_from_slice(&w.to_le_bytes());
    }
    // Major 2, minor 4 as u16 pairs.
    f[4..8].copy_from_slice(&[2, 0, 4, 0]);
    let sizes = [1usize, 3, 7, 13, 29, 61, 127, 255];
    let mut k = 0;
    for r in recs {
        let client = 1000 + u64::from(r.conn);
        let (pid, peer) = match r.direction {
            Direction::ClientToServer => (client, SERVER_PID),
            Direction::ServerToClient => (SERVER_PID, client),
        };
        let mut rest = &r.data[..];
        while !rest.is_empty() {
            let n = sizes[k % sizes.len()].min(rest.len());
            k += 1;
            sockdump_record(&mut f, r.ts_ns, "/tmp/vfu-S.sock", pid, peer, &rest[..n]);
            rest = &rest[n..];
        }
    }
    f
}

#[test]
fn sockdump_reassembles_the_corpus_messages() {
    for name in FILES {
        let (recs, conns) = read_file(name);
        let pcap = sockdump_of(&recs);
        let r = CaptureReader::new(&pcap[..], &OpenOptions::default()).unwrap();
        assert_eq!(r.format(), Format::Pcap);
        let (got, got_conns, err) = read_all(r);
        assert!(err.is_none(), "{name}: {err:?}");
        assert_eq!(got_conns.len(), conns.len(), "{name}");
        assert_eq!(got_conns[0].name, "vfio-user:0:/tmp/vfu-S.sock");
        // Whole messages come out in order with the timestamp of their last send (µs resolution);
        // partial messages come out at the end of the input.
        let whole = |rs: &[Record]| -> Vec<_> {
            rs.iter()
                .filter(|r| !r.truncated)
                .map(|r| (r.conn, r.ts_ns / 1000, r.direction, r.data.clone()))
                .collect()
        };
        assert_eq!(whole(&got), whole(&recs), "{name}");
        let cut = |rs: &[Record]| -> Vec<_> {
            rs.iter()
                .filter(|r| r.truncated)
                .map(|r| (r.conn, r.direction, r.data.clone()))
                .collect()
        };
        assert_eq!(cut(&got), cut(&recs), "{name}");
        assert!(
            got.iter()
                .all(|r| r.fds == 0 && r.protocol == Protocol::VfioUser)
        );
        // Each record points at the pcap record that holds the message's first byte.
        for r in got.iter().filter(|r| !r.truncated) {
            let at = r.file_offset as usize;
            assert_eq!(&pcap[at + 16 + 125..at + 16 + 125 + 1], &r.data[..1]);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Raw byte streams.

#[test]
fn raw_streams_of_one_direction() {
    let (recs, _) = read_file("lvu-sample-client");
    for dir in [Direction::ClientToServer, Direction::ServerToClient] {
        let mine: Vec<&Record> = recs.iter().filter(|r| r.direction == dir).collect();
        let stream: Vec<u8> = mine.iter().flat_map(|r| r.data.iter().copied()).collect();
        let r = CaptureReader::new(&stream[..], &OpenOptions::raw(dir)).unwrap();
        assert_eq!(r.format(), Format::Raw);
        let (got, _, err) = read_all(r);
        assert!(err.is_none());
        assert_eq!(got.len(), mine.len());
        let mut at = 0u64;
        for (g, m) in got.iter().zip(&mine) {
            assert_eq!(
                (g.direction, &g.data, g.truncated, g.file_offset),
                (dir, &m.data, false, at)
            );
            at += g.data.len() as u64;
        }
        // Cut the stream inside its last message: the tail is a truncated record.
        let cut = &stream[..stream.len() - 3];
        let (got, _, err) = read_bytes(cut, &OpenOptions::raw(dir));
        assert!(err.is_none());
        let last = got.last().unwrap();
        assert!(last.truncated);
        assert_eq!(last.data.len(), mine.last().unwrap().data.len() - 3);
    }
    // The pytest connection whose stream ends in the truncated VERSION.
    let (recs, _) = read_file("lvu-pytest-subset");
    let t = recs.iter().find(|r| r.truncated).unwrap();
    let stream: Vec<u8> = recs
        .iter()
        .filter(|r| r.conn == t.conn && r.direction == Direction::ClientToServer)
        .flat_map(|r| r.data.iter().copied())
        .collect();
    let (got, _, err) = read_bytes(&stream, &OpenOptions::raw(Direction::ClientToServer));
    assert!(err.is_none());
    assert!(got.last().unwrap().truncated);
    assert_eq!(got.iter().filter(|r| r.truncated).count(), 1);
}

// ---------------------------------------------------------------------------------------------------
// Corrupt inputs.

/// Reads `bytes` to the end or the first error; never panics. Returns the records and whether it
/// ended in an error.
fn read_lossy(bytes: &[u8], opts: &OpenOptions) -> (Vec<Record>, bool) {
    match CaptureReader::new(bytes, opts) {
        Ok(r) => {
            let (recs, _, err) = read_all(r);
            (recs, err.is_some())
        }
        Err(_) => (vec![], true),
    }
}

#[test]
fn every_truncation_of_the_first_4k() {
    let file = std::fs::read(corpus("lvu-sample-client")).unwrap();
    let (full, _) = read_file("lvu-sample-client");
    // Block boundaries: where a cut leaves a well-formed shorter file.
    let mut ends = vec![];
    let mut at = 0;
    while at < 4096 {
        at += u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
        ends.push(at);
    }
    for n in 0..=4096 {
        let (recs, failed) = read_lossy(&file[..n], &OpenOptions::default());
        assert_eq!(failed, !ends.contains(&n), "cut at {n}");
        assert!(recs.len() <= full.len());
        for (a, b) in recs.iter().zip(&full) {
            assert_eq!(a, b, "cut at {n}");
        }
        // Everything complete before the cut was delivered.
        let complete = full.iter().filter(|r| {
            let len =
                u32::from_le_bytes(file[r.file_offset as usize + 4..][..4].try_into().unwrap());
            r.file_offset as usize + len as usize <= n
        });
        assert_eq!(recs.len(), complete.count(), "cut at {n}");
    }
}

/// Every byte of the first 4 KiB flipped three ways, and a sample of later bytes; the file is read to
/// its first block boundary past 16 KiB (the unflipped prefix reads cleanly).
#[test]
fn single_byte_flips_never_panic() {
    let file = std::fs::read(corpus("lvu-pytest-subset")).unwrap();
    let mut end = 0;
    while end < 16 << 10 {
        end += u32::from_le_bytes(file[end + 4..end + 8].try_into().unwrap()) as usize;
    }
    let mut flipped = file[..end].to_vec();
    let (clean, failed) = read_lossy(&flipped, &OpenOptions::default());
    assert!(!failed);
    let mut errors = 0;
    let positions = (0..4096).chain((4096..end).step_by(61));
    for at in positions {
        for mask in [0x01u8, 0x80, 0xff] {
            flipped[at] ^= mask;
            let (recs, failed) = read_lossy(&flipped, &OpenOptions::default());
            errors += usize::from(failed);
            // A flip can end the file early or change bytes, never add records past the clean
            // count by more than a reinterpretation of one block allows.
            assert!(recs.len() <= clean.len() + 1, "flip {mask:#x} at {at}");
            flipped[at] ^= mask;
        }
    }
    assert!(errors > 0);
}

#[test]
fn truncated_and_flipped_sockdump_and_raw_never_panic() {
    let (recs, _) = read_file("lvu-sample-client");
    let pcap = sockdump_of(&recs[..40]);
    for n in 0..pcap.len().min(6000) {
        read_lossy(&pcap[..n], &OpenOptions::default());
    }
    let mut flipped = pcap.clone();
    for at in (0..flipped.len()).step_by(3) {
        flipped[at] ^= 0xff;
        read_lossy(&flipped, &OpenOptions::default());
        flipped[at] ^= 0xff;
    }
    let stream: Vec<u8> = recs
        .iter()
        .take(60)
        .flat_map(|r| r.data.iter().copied())
        .collect();
    let opts = OpenOptions::raw(Direction::ClientToServer);
    for n in 0..stream.len() {
        let (got, failed) = read_lossy(&stream[..n], &opts);
        assert!(!failed || n < 4);
        assert_eq!(got.iter().map(|r| r.data.len()).sum::<usize>(), n);
    }
}

#[test]
fn errors_name_offsets_and_come_after_the_records() {
    let mut file = std::fs::read(corpus("lvu-sample-client")).unwrap();
    let (full, _) = read_file("lvu-sample-client");
    // Break the 11th EPB's trailing length.
    let victim = &full[10];
    let at = victim.file_offset as usize;
    let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
    file[at + len - 4] ^= 0x40;
    let (recs, _, err) = read_bytes(&file, &OpenOptions::default());
    assert_eq!(recs.len(), 10);
    let err = err.unwrap();
    assert_eq!(err.offset(), Some(at as u64));
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("pcapng enhanced packet block at offset {at:#x}: ")),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------------
// Memory.

/// A block that claims 4 GiB is refused at once; one that claims just under the limit in a short
/// file allocates no more than the read buffer, since the buffer grows only with data read.
#[test]
fn huge_lengths_do_not_allocate_their_size() {
    let file = std::fs::read(corpus("lvu-sample-client")).unwrap();
    let shb = &file[..28];
    for claim in [0xFFFF_FFF0u32, (MAX_RECORD_LEN as u32 - 64) & !3] {
        let mut f = shb.to_vec();
        f.extend_from_slice(&6u32.to_le_bytes());
        f.extend_from_slice(&claim.to_le_bytes());
        f.extend_from_slice(&[0u8; 4000]);
        let ((recs, _, err), peak, _) = measure(|| read_bytes(&f, &OpenOptions::default()));
        assert!(recs.is_empty());
        let err = err.unwrap();
        assert_eq!(err.offset(), Some(28));
        assert!(
            matches!(
                err,
                CaptureError::TooLarge { .. } | CaptureError::Incomplete { .. }
            ),
            "{err}"
        );
        assert!(
            peak < 1 << 20,
            "peak allocation {peak} for a claim of {claim}"
        );
    }
    // A raw stream whose msg_size claims 4 GiB, in an endless input: refused after the limit.
    struct Endless;
    impl Read for Endless {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            out.fill(0xff);
            Ok(out.len())
        }
    }
    let mut r = CaptureReader::new(Endless, &OpenOptions::raw(Direction::ClientToServer)).unwrap();
    let err = r.next_record().unwrap_err();
    assert!(
        matches!(
            err,
            CaptureError::TooLarge {
                len: 0xFFFF_FFFF,
                ..
            }
        ),
        "{err}"
    );
}

/// After the first record, reading allocates nothing.
#[test]
fn steady_state_reading_does_not_allocate() {
    let file = std::fs::read(corpus("lvu-sample-client")).unwrap();
    let mut r = CaptureReader::new(&file[..], &OpenOptions::default()).unwrap();
    r.next_record().unwrap().unwrap();
    let (n, _, calls) = measure(|| {
        let mut n = 0;
        while let Some(rec) = r.next_record().unwrap() {
            n += rec.data.len();
        }
        n
    });
    assert!(n > 0);
    assert_eq!(calls, 0);
}

#[test]
fn standard_input_path_and_missing_files() {
    let err = open(
        Path::new("/nonexistent/capture.pcapng"),
        &OpenOptions::default(),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("/nonexistent/capture.pcapng"),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());
}
