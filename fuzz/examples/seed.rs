//! Writes the seed corpus, `fuzz/corpus/<target>/`, from the repository's `corpus/`: the golden
//! messages (`corpus/messages/*.bin`) and the real captures (`corpus/*.pcapng`).
//!
//! Run it through `fuzz/seed.sh` (which empties the seed directories first). The output is
//! deterministic: the same corpus gives the same files, with names that say where each came from.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use vfu_codec::vduse::{
    RequestBody, ResponseBody, VduseDevStatus, VduseIovaRange, VduseVqGroupAsid, VduseVqState,
    VduseVqStatePacked, encode_request, encode_response,
};
use vfu_codec::vfio::device::VFIO_REGION_INFO_FLAG_CAPS;
use vfu_codec::{Body, Direction, decode};
use vfu_dump::capture::{self, OpenOptions, PcapngWriter, Protocol, Record};
use vfu_dump::validate::Profile;
use vfu_fuzz::format::{self, OwnedEvent};

const CAPTURES: &[&str] = &[
    "lvu-sample-client",
    "lvu-sample-client-migrated",
    "lvu-pytest-subset",
];

struct Seeds {
    root: PathBuf,
    written: usize,
    bytes: usize,
}

impl Seeds {
    fn put(&mut self, target: &str, name: &str, data: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).expect("create seed dir");
        fs::write(dir.join(name), data).expect("write seed");
        self.written += 1;
        self.bytes += data.len();
    }
}

fn load(corpus: &Path, stem: &str) -> (Vec<Record>, Vec<u8>) {
    let path = corpus.join(format!("{stem}.pcapng"));
    let mut r = capture::open(&path, &OpenOptions::default()).expect("open capture");
    let mut v = Vec::new();
    while let Some(rec) = r.next_record().expect("read capture") {
        v.push(rec.to_owned());
    }
    (v, fs::read(&path).expect("read capture file"))
}

/// `dma_map-request` style name of a message.
fn describe(data: &[u8], direction: Direction) -> String {
    match decode(data, direction) {
        Ok(m) => {
            let cmd = m.command().short_name().map_or_else(
                || format!("cmd{}", m.command().0),
                |n| n.to_ascii_lowercase(),
            );
            let kind = if m.header.is_error() && m.is_reply() {
                "error"
            } else if m.is_reply() {
                "reply"
            } else {
                "request"
            };
            format!("{cmd}-{kind}")
        }
        Err(e) => format!("malformed-{}", e.rule.id()),
    }
}

fn event(r: &Record) -> OwnedEvent {
    OwnedEvent {
        conn: r.conn,
        direction: r.direction,
        vduse: r.protocol == Protocol::Vduse,
        truncated: r.truncated,
        fds: r.fds,
        bytes: r.data.clone(),
    }
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let corpus = repo.join("corpus");
    let mut s = Seeds {
        root: Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"),
        written: 0,
        bytes: 0,
    };

    // Golden messages: message, render, roundtrip (as raw bytes for the description), frame.
    let mut golden: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in fs::read_dir(corpus.join("messages")).expect("corpus/messages") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "bin") {
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            golden.push((name, fs::read(&path).expect("read golden message")));
        }
    }
    golden.sort();
    let mut all = Vec::new();
    for (i, (name, data)) in golden.iter().enumerate() {
        s.put("message", name, data);
        let mut r = vec![(i as u8) & 0x0f];
        r.extend_from_slice(data);
        s.put("render", name, &r);
        s.put("roundtrip", name, data);
        all.extend_from_slice(data);
        let m = decode(data, Direction::ClientToServer).expect("golden messages decode");
        if let Body::Version(v) = m.body
            && let Some(j) = v.json
        {
            s.put("version_caps", &name.replace(".bin", ".json"), j);
        }
        if let Some(area) = region_area(&m) {
            s.put("region_caps", name, &area);
        }
        if let Some(io) = io_fds(data, &m) {
            s.put("io_fds", name, &io);
        }
    }
    s.put("frame", "golden-messages-concatenated.bin", &all);
    let mut bad = vec![0u8; 16];
    bad[4] = 8; // msg_size 8: below the header
    bad.extend_from_slice(&golden[0].1);
    bad.extend_from_slice(&golden[1].1[..golden[1].1.len() / 2]);
    s.put("frame", "bad-size-then-message-then-partial.bin", &bad);

    // Handwritten capabilities texts for the parser's corners.
    for (name, text) in [
        (
            "escaped-key.json",
            r#"{"capabilities":{"max\u005fmsg_fds":4,"x\"y":1}}"#,
        ),
        (
            "ill-typed.json",
            r#"{"capabilities":{"max_msg_fds":"8","pgsizes":-1,"write_multiple":1,"migration":23}}"#,
        ),
        (
            "duplicates.json",
            r#"{"capabilities":{"max_msg_fds":1,"max_msg_fds":2},"capabilities":{}}"#,
        ),
        (
            "nested-unknown.json",
            r#"{"capabilities":{"vendor":{"a":[1,2,{"b":null}],"c":"\ud83d\ude00"}},"z":[]}"#,
        ),
        (
            "twin-socket.json",
            r#"{"capabilities":{"twin_socket":{"supported":true,"fd_index":0}}}"#,
        ),
        ("deep.json", r#"{"a":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}"#),
        (
            "numbers.json",
            r#"{"capabilities":{"max_dma_maps":18446744073709551615,"x":-0.5e+3,"y":1E2}}"#,
        ),
    ] {
        s.put("version_caps", name, text.as_bytes());
    }

    // Capability chains and IO_FDS entries the corpus does not have: every kind of capability in one
    // chain, a loop, a pointer past the area; spec and shadow entries with and without a telling argsz.
    let cap = |id: u16, next: u32, body: &[u8]| {
        let mut c = id.to_le_bytes().to_vec();
        c.extend(1u16.to_le_bytes());
        c.extend(next.to_le_bytes());
        c.extend_from_slice(body);
        c
    };
    let mut chain = 32u32.to_le_bytes().to_vec();
    let mut sparse = 2u32.to_le_bytes().to_vec();
    sparse.extend([0u8; 4]);
    sparse.extend([0x11u8; 32]);
    chain.extend(cap(1, 32 + 48, &sparse)); // SPARSE_MMAP, 2 areas: 48 bytes
    chain.extend(cap(2, 32 + 64, &[3, 0, 0, 0, 1, 0, 0, 0])); // TYPE
    let mut fds = 1u32.to_le_bytes().to_vec();
    fds.extend([0u8; 4]);
    fds.extend([0x22u8; 32]);
    chain.extend(cap(16, 32 + 112, &fds)); // SPARSE_MMAP_FDS, 1 area: 48 bytes
    chain.extend(cap(0x7777, 0, &[0xee; 8])); // unknown
    s.put("region_caps", "chain-all-kinds.bin", &chain);
    let mut looped = 32u32.to_le_bytes().to_vec();
    looped.extend(cap(2, 32, &[0u8; 8]));
    s.put("region_caps", "chain-loop.bin", &looped);
    let mut far = 32u32.to_le_bytes().to_vec();
    far.extend(cap(2, 4000, &[0u8; 8]));
    s.put("region_caps", "next-past-the-area.bin", &far);
    for (name, stride, n, argsz) in [
        ("spec-2-entries.bin", 40usize, 2u32, 16 + 80u32),
        ("shadow-3-entries-argsz-from-bytes.bin", 48, 3, 0),
        ("count-beyond-the-bytes.bin", 40, 9, 16 + 360),
    ] {
        let mut v = argsz.to_le_bytes().to_vec();
        v.extend(n.to_le_bytes());
        v.extend((0..stride * n.min(3) as usize).map(|i| i as u8));
        s.put("io_fds", name, &v);
    }

    // The real captures.
    for stem in CAPTURES {
        let (recs, file) = load(&corpus, stem);
        // message: the first occurrence of each kind of message (and each decode error).
        let mut seen = BTreeSet::new();
        for r in &recs {
            let what = describe(&r.data, r.direction);
            if seen.insert(what.clone()) {
                s.put(
                    "message",
                    &format!("{stem}-{:04}-{what}.bin", r.index),
                    &r.data,
                );
                if let Ok(m) = decode(&r.data, r.direction) {
                    if let Body::Version(v) = m.body
                        && let Some(j) = v.json
                    {
                        s.put(
                            "version_caps",
                            &format!("{stem}-{:04}-{what}.json", r.index),
                            j,
                        );
                    }
                    if let Some(area) = region_area(&m) {
                        s.put("region_caps", &format!("{stem}-{:04}.bin", r.index), &area);
                    }
                    if let Some(io) = io_fds(&r.data, &m) {
                        s.put("io_fds", &format!("{stem}-{:04}.bin", r.index), &io);
                    }
                }
            }
        }
        // frame: each direction's stream of the first 64 messages.
        for d in [Direction::ClientToServer, Direction::ServerToClient] {
            let stream: Vec<u8> = recs
                .iter()
                .take(64)
                .filter(|r| r.direction == d)
                .flat_map(|r| r.data.iter().copied())
                .collect();
            s.put(
                "frame",
                &format!("{stem}-first64-{}.bin", d.short()),
                &stream,
            );
        }
        // validator: the first 64 messages under each profile.
        let first: Vec<OwnedEvent> = recs.iter().take(64).map(event).collect();
        for p in Profile::ALL {
            s.put(
                "validator",
                &format!("{stem}-first64-{p}.bin"),
                &format::encode_events(p, &first),
            );
        }
        // capture_pcapng: the file's own first 16 blocks after the header blocks, and the first 16
        // messages written again by PcapngWriter.
        if let Some(cut) = recs.get(16).map(|r| r.file_offset as usize) {
            s.put(
                "capture_pcapng",
                &format!("{stem}-prefix16.pcapng"),
                &file[..cut],
            );
        }
        s.put(
            "capture_pcapng",
            &format!("{stem}-first16-rewritten.pcapng"),
            &rewrite(&recs[..16.min(recs.len())]),
        );
        // The same with what each descriptor is, as `trace -w` writes it (`fd=` words).
        let described: Vec<Record> = recs
            .iter()
            .take(16)
            .map(|r| Record {
                fd_kinds: FD_KINDS
                    .iter()
                    .cycle()
                    .take(r.fds as usize)
                    .map(|k| k.to_string())
                    .collect(),
                ..r.clone()
            })
            .collect();
        if described.iter().any(|r| !r.fd_kinds.is_empty()) {
            s.put(
                "capture_pcapng",
                &format!("{stem}-first16-fd-kinds.pcapng"),
                &rewrite(&described),
            );
        }
        // capture_pcap: link type 252 records in each byte order and resolution; a raw stream.
        for (big, nanos) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut p = vec![format::pcap_selector(
                big,
                nanos,
                format::LINKTYPE_UPPER_PDU,
            )];
            for (i, r) in recs.iter().take(16).enumerate() {
                let pdu = format::pdu_packet("vfio_user", Some(r.direction), &r.data);
                p.extend(format::pcap_record(
                    big,
                    1_700_000_000 + i as u32,
                    i as u32 * 10,
                    &pdu,
                    pdu.len(),
                ));
            }
            let order = if big { "be" } else { "le" };
            let res = if nanos { "ns" } else { "us" };
            s.put(
                "capture_pcap",
                &format!("{stem}-first16-pdu-{order}-{res}.pcap"),
                &p,
            );
        }
        let mut raw = vec![format::raw_selector(Direction::ClientToServer)];
        raw.extend(
            recs.iter()
                .take(64)
                .filter(|r| r.direction == Direction::ClientToServer)
                .flat_map(|r| r.data.clone()),
        );
        s.put("capture_pcap", &format!("{stem}-first64-c2s-raw.bin"), &raw);
        // capture_sockdump: the first 32 messages as sends, some split in two, some joined.
        let path = format!("/run/{stem}.sock");
        let mut sd = vec![0u8];
        let mut i = 0;
        while i < recs.len().min(32) {
            let r = &recs[i];
            let (pid, peer) = if r.direction == Direction::ClientToServer {
                (100, 200)
            } else {
                (200, 100)
            };
            if i % 5 == 1 && r.data.len() > 20 {
                let (a, b) = r.data.split_at(r.data.len() / 2);
                for part in [a, b] {
                    let rec = format::sockdump_record(&path, pid, peer, part);
                    sd.extend(format::pcap_record(false, 1, i as u32, &rec, rec.len()));
                }
            } else {
                let mut data = r.data.clone();
                if i % 7 == 3 && recs.get(i + 1).is_some_and(|n| n.direction == r.direction) {
                    i += 1;
                    data.extend_from_slice(&recs[i].data);
                }
                let rec = format::sockdump_record(&path, pid, peer, &data);
                sd.extend(format::pcap_record(false, 1, i as u32, &rec, rec.len()));
            }
            i += 1;
        }
        s.put(
            "capture_sockdump",
            &format!("{stem}-first32-sends.pcap"),
            &sd,
        );
    }

    // sockdump corners: a cut send, a same-process connection, big-endian nanosecond header.
    let (recs, _) = load(&corpus, CAPTURES[0]);
    let mut cut = vec![0u8];
    for (i, r) in recs.iter().take(8).enumerate() {
        let (pid, peer) = if r.direction == Direction::ClientToServer {
            (7, 8)
        } else {
            (8, 7)
        };
        let rec = format::sockdump_record("/tmp/s", pid, peer, &r.data);
        let keep = if i == 3 {
            rec.len() - r.data.len() / 2
        } else {
            rec.len()
        };
        cut.extend(format::pcap_record(
            false,
            2,
            i as u32,
            &rec[..keep],
            rec.len(),
        ));
    }
    s.put("capture_sockdump", "cut-send.pcap", &cut);
    let mut same = vec![3u8];
    for (i, r) in recs.iter().take(8).enumerate() {
        let rec = format::sockdump_record("/tmp/same", 42, 42, &r.data);
        same.extend(format::pcap_record(true, 3, i as u32, &rec, rec.len()));
    }
    s.put("capture_sockdump", "same-process-be-ns.pcap", &same);

    // VDUSE: a request of each type and responses.
    let state = VduseVqState::new_split(1, 7);
    let packed = VduseVqState::new_packed(2, VduseVqStatePacked::new(1, 2, 3, 4));
    let status = VduseDevStatus { status: 0x0f };
    let range = VduseIovaRange {
        start: 0x1000.into(),
        last: 0x1fff.into(),
    };
    let asid = VduseVqGroupAsid {
        group: 1.into(),
        asid: 2.into(),
    };
    let raw = [0x5au8; 128];
    let requests: [(&str, RequestBody<'_>); 5] = [
        ("request-get_vq_state.bin", RequestBody::GetVqState(&state)),
        ("request-set_status.bin", RequestBody::SetStatus(&status)),
        ("request-update_iotlb.bin", RequestBody::UpdateIotlb(&range)),
        (
            "request-set_vq_group_asid.bin",
            RequestBody::SetVqGroupAsid(&asid),
        ),
        (
            "request-unknown-type-9.bin",
            RequestBody::Unknown {
                req_type: 9,
                raw: &raw,
            },
        ),
    ];
    let mut vduse_events = Vec::new();
    for (i, (name, body)) in requests.iter().enumerate() {
        let mut buf = [0u8; 152];
        encode_request(i as u32 + 1, body, &mut buf).expect("encode VDUSE request");
        s.put("vduse", name, &buf);
        vduse_events.push(OwnedEvent {
            conn: 1,
            direction: Direction::ClientToServer,
            vduse: true,
            truncated: false,
            fds: 0,
            bytes: buf.to_vec(),
        });
        let body = if i == 0 {
            ResponseBody::GetVqState(&packed)
        } else {
            ResponseBody::Raw(&[0; 128])
        };
        encode_response(i as u32 + 1, u32::from(i == 4), &body, &mut buf)
            .expect("encode VDUSE response");
        s.put("vduse", &name.replace("request", "response"), &buf);
        vduse_events.push(OwnedEvent {
            conn: 1,
            direction: Direction::ServerToClient,
            vduse: true,
            truncated: false,
            fds: 0,
            bytes: buf.to_vec(),
        });
    }
    s.put(
        "validator",
        "vduse-session.bin",
        &format::encode_events(Profile::Spec, &vduse_events),
    );
    let mut vfio_events = Vec::new();
    for (name, data) in &golden {
        let direction = if name.contains("-reply") {
            Direction::ServerToClient
        } else {
            Direction::ClientToServer
        };
        vfio_events.push(OwnedEvent {
            conn: 0,
            direction,
            vduse: false,
            truncated: false,
            fds: 0,
            bytes: data.clone(),
        });
    }
    s.put(
        "validator",
        "golden-messages.bin",
        &format::encode_events(Profile::Spec, &vfio_events),
    );

    eprintln!(
        "wrote {} seeds, {} bytes, under {}",
        s.written,
        s.bytes,
        s.root.display()
    );
}

/// The `region_caps` input of a region-info reply with capabilities: `cap_offset` and the area.
fn region_area(m: &vfu_codec::Message<'_>) -> Option<Vec<u8>> {
    let Body::RegionInfo { info, caps } = m.body else {
        return None;
    };
    if !m.is_reply() || info.flags.get() & VFIO_REGION_INFO_FLAG_CAPS == 0 {
        return None;
    }
    let mut v = info.cap_offset.get().to_le_bytes().to_vec();
    v.extend_from_slice(caps);
    Some(v)
}

/// The `io_fds` input of an IO_FDS reply with entries: `argsz`, `count` and the bytes after the head.
fn io_fds(data: &[u8], m: &vfu_codec::Message<'_>) -> Option<Vec<u8>> {
    let Body::RegionIoFds { head, entries } = m.body else {
        return None;
    };
    if !m.is_reply() || entries.is_empty() {
        return None;
    }
    let mut v = head.argsz.get().to_le_bytes().to_vec();
    v.extend(head.count.get().to_le_bytes());
    v.extend_from_slice(&data[32..]);
    Some(v)
}

/// Records written again as a pcapng file with one interface per connection.
/// Descriptor descriptions for the `fd=` seeds: plain, with spaces and `%`, not ASCII.
const FD_KINDS: [&str; 4] = [
    "/memfd:guest ram (deleted)",
    "anon_inode:[eventfd]",
    "socket:[4242] 100%",
    "/tmp/caf\u{e9}",
];

fn rewrite(recs: &[Record]) -> Vec<u8> {
    let mut w = PcapngWriter::new(Vec::new()).expect("writer");
    let mut conns = Vec::new();
    for r in recs {
        while conns.len() <= r.conn as usize {
            let id = w
                .add_connection(
                    &format!("vfio-user:{}:/run/dev.sock", conns.len()),
                    Protocol::VfioUser,
                )
                .expect("idb");
            conns.push(id);
        }
        let mut rec = r.as_ref();
        rec.conn = conns[r.conn as usize];
        w.write_record(&rec).expect("write record");
    }
    w.into_inner().expect("flush")
}
