//! The entry points of the fuzz targets in `fuzz_targets/`, and the input formats they share with the
//! seed generator (`examples/seed.rs`).
//!
//! Each target is one line calling a function here. Every function takes arbitrary bytes, drives one
//! part of the library through its public API only, and checks the invariants that part promises: no
//! panic, errors that name an offset inside the input, and, where a value decodes, that re-encoding it
//! gives back the same bytes. The entry points live in this crate rather than behind `cfg(fuzzing)` in
//! the libraries, so the codec's public API and its `no_std` build are untouched.

#![forbid(unsafe_code)]

pub mod format;
pub mod roundtrip;

use std::io;

use vfu_codec::frame::{Frame, Framer, frame as frame_one, msg_size};
use vfu_codec::vduse::{
    REQUEST_TYPE_NAMES, VDUSE_GET_VQ_STATE, VDUSE_MSG_SIZE, VduseDevRequest, VduseDevResponse,
    decode_request, decode_response, encode_request, encode_response,
};
use vfu_codec::vfio::caps::{Capabilities, Scope, parse_capabilities};
use vfu_codec::vfio::device::{CapIter, IoFdEntries, MAX_REGION_CAPS, RegionCap};
use vfu_codec::{Body, DecodeError, Direction, HEADER_SIZE, Message, Part, decode, encode_exact};
use vfu_dump::capture::{CaptureReader, OpenOptions, Protocol, RecordRef};
use vfu_dump::options::OutputFormat;
use vfu_dump::pipeline::{Config as PipelineConfig, Pipeline};
use vfu_dump::render::{self, Meta, Style};
use vfu_dump::validate::{self, Event, Finding, Validator};
use zerocopy::IntoBytes;

/// Most records read from one capture input (libFuzzer inputs are small; this only bounds a loop).
const MAX_RECORDS: u64 = 1 << 16;

/// `message`: one whole vfio-user message, decoded in both directions.
///
/// The direction only labels the result, so both decodes must agree. A decoded message must re-encode
/// byte for byte ([`encode_exact`]), its parts must tile the input, its capability chain (replies) must
/// walk without error and its capabilities JSON must parse. An error must name an offset inside the
/// input (or its end).
pub fn message(data: &[u8]) {
    let c2s = decode(data, Direction::ClientToServer);
    let s2c = decode(data, Direction::ServerToClient);
    match (&c2s, &s2c) {
        (Ok(a), Ok(b)) => {
            assert_eq!(
                (a.header, a.body, a.trailing),
                (b.header, b.body, b.trailing)
            );
            check_decoded(data, a);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            check_error(data, a);
        }
        _ => panic!("the direction changed the outcome: {c2s:?} / {s2c:?}"),
    }
}

/// The checks every successfully decoded message passes.
pub fn check_decoded(data: &[u8], m: &Message<'_>) {
    assert_eq!(m.header.msg_size.get() as usize, data.len());
    // Re-encoding reproduces the input.
    let mut out = vec![0xa5u8; data.len()];
    let n = encode_exact(m.header, &m.body, m.trailing, &mut out)
        .unwrap_or_else(|e| panic!("a decoded message does not re-encode: {e:?}"));
    assert_eq!(&out[..n], data, "re-encoding changed the bytes");
    // Every part is the bytes at its offset; together they reach the end of the message.
    let mut end = 0usize;
    m.for_each_part(|p| {
        let (at, len) = (p.offset(), p.len());
        let bytes = match p {
            Part::Struct { bytes, .. } | Part::Data { bytes, .. } => bytes,
        };
        assert_eq!(
            data.get(at..at + len),
            Some(bytes),
            "part at {at} is not the input's bytes"
        );
        end = end.max(at + len);
    });
    assert_eq!(
        end,
        data.len(),
        "the parts do not reach the end of the message"
    );
    // A reply's capability chain was checked by decode: walking it again finds no error.
    if let Some(caps) = m.body.region_caps() {
        let mut last = 0;
        for (i, cap) in caps.enumerate() {
            assert!(i < MAX_REGION_CAPS);
            match cap {
                Ok(c) => {
                    assert!(c.offset() > last && c.offset() >= 32);
                    last = c.offset();
                }
                Err(e) => assert!(
                    !m.is_reply(),
                    "decode accepted a reply whose chain fails: {e}"
                ),
            }
        }
    }
    if let Body::Version(v) = m.body
        && let Some(json) = v.json
    {
        parse_capabilities(json).expect("decode accepted capabilities that do not parse");
    }
    let _ = format!("{m:?} {}", m.command());
}

/// An error names an offset in the input: at most its length (an error about missing bytes names the
/// end), and its text mentions it.
pub fn check_error(data: &[u8], e: &DecodeError) {
    assert!(
        e.offset <= data.len(),
        "error offset {} past the {}-byte input: {e}",
        e.offset,
        data.len()
    );
    let _ = e.to_string();
}

/// `frame`: a byte stream cut into messages. Offsets run on without gaps, every message is `msg_size`
/// long, a bad size consumes the 16 header bytes, and what is left is an incomplete message.
pub fn frame(data: &[u8]) {
    let mut framer = Framer::new(data);
    let mut expect = 0usize;
    for (at, item) in framer.by_ref() {
        assert_eq!(at, expect);
        match item {
            Ok(msg) => {
                assert!(msg.len() >= HEADER_SIZE);
                assert_eq!(msg_size(msg), Some(msg.len() as u32));
                assert_eq!(msg, &data[at..at + msg.len()]);
                if let Ok(m) = decode(msg, Direction::ClientToServer) {
                    assert_eq!(m.header.msg_size.get() as usize, msg.len());
                }
                expect += msg.len();
            }
            Err((header, e)) => {
                assert_eq!(header.len(), HEADER_SIZE);
                assert!(msg_size(header).is_some_and(|s| (s as usize) < HEADER_SIZE));
                assert_eq!(e.offset, 4);
                expect += HEADER_SIZE;
            }
        }
    }
    assert_eq!(framer.offset(), expect);
    let rest = framer.remainder();
    assert_eq!(rest, &data[expect..]);
    match frame_one(rest) {
        Frame::Incomplete { needed } => assert!(needed > 0),
        other => panic!("the framer stopped before {other:?}"),
    }
}

/// `version_caps`: capabilities JSON. Parsing never panics and errors name an offset within the text;
/// what parses emits valid JSON, and the emitted value round-trips under the conditions
/// [`Capabilities::emit`] documents.
pub fn version_caps(data: &[u8]) {
    // The fast path and the general parser agree on everything, errors included.
    assert_eq!(
        parse_capabilities(data),
        vfu_codec::vfio::caps::parse_capabilities_general(data),
        "{}",
        String::from_utf8_lossy(data)
    );
    let caps = match parse_capabilities(data) {
        Ok(c) => c,
        Err((at, rule)) => {
            assert!(
                at <= data.len(),
                "error offset {at} past the {}-byte text: {rule}",
                data.len()
            );
            return;
        }
    };
    let _ = (
        caps.effective_max_msg_fds(),
        caps.effective_max_data_xfer_size(),
        caps.effective_twin_socket(),
        caps.ill_typed().count(),
    );
    let text = emit(&caps);
    let again = parse_capabilities(&text).unwrap_or_else(|e| {
        panic!(
            "emitted text does not parse: {e:?}: {}",
            String::from_utf8_lossy(&text)
        )
    });
    if emit_round_trips(&again) {
        let text2 = emit(&again);
        let third = parse_capabilities(&text2).expect("emitted text parses");
        assert_eq!(third, again, "{}", String::from_utf8_lossy(&text2));
    }
}

/// [`Capabilities::emit`] into a buffer of [`Capabilities::emitted_len`] bytes.
pub fn emit(caps: &Capabilities<'_>) -> Vec<u8> {
    let mut out = vec![0u8; caps.emitted_len()];
    let n = caps.emit(&mut out).expect("emit fits emitted_len");
    assert_eq!(n, out.len());
    // One byte short is an error, not a panic or a partial write reported as success.
    if n > 0 {
        assert!(caps.emit(&mut out.clone()[..n - 1]).is_err());
    }
    out
}

/// Whether `caps` meets the conditions under which parsing its emitted text gives back an equal value:
/// no duplicate count, no ill-typed member whose field is also set, unknown members in emitted order.
pub fn emit_round_trips(caps: &Capabilities<'_>) -> bool {
    fn order(s: Scope) -> u8 {
        match s {
            Scope::Migration => 0,
            Scope::TwinSocket => 1,
            Scope::Capabilities => 2,
            Scope::TopLevel => 3,
        }
    }
    let ill_and_set = caps.ill_typed().any(|u| {
        let key: String = u.key_chars().collect();
        known_is_set(caps, u.scope, &key)
    });
    let sorted = caps
        .unknown
        .windows(2)
        .all(|w| order(w[0].scope) <= order(w[1].scope));
    caps.duplicate_keys == 0 && !ill_and_set && sorted
}

/// `region_caps`: a region-info capability area. The first 4 bytes are the chain's first offset
/// (`cap_offset`, little-endian), the rest the area after the 32-byte fixed part.
///
/// The iterator moves strictly forward, stays inside the area, stops after an error and after
/// [`MAX_REGION_CAPS`]; a reply message built around the same area decodes exactly when the chain
/// walks without error.
pub fn region_caps(data: &[u8]) {
    let Some((first, area)) = data.split_first_chunk::<4>() else {
        return;
    };
    let first = u32::from_le_bytes(*first);
    let mut ok = true;
    let mut last = 0usize;
    let mut n = 0usize;
    let mut iter = CapIter::new(area, first, HEADER_SIZE);
    for cap in iter.by_ref() {
        n += 1;
        assert!(n <= MAX_REGION_CAPS + 1, "the chain did not stop");
        match cap {
            Ok(c) => {
                let at = c.offset();
                assert!(at >= 32 && at > last, "capability at {at} after {last}");
                assert!(
                    at - 32 + 8 <= area.len(),
                    "capability at {at} outside the area"
                );
                let end = match c {
                    RegionCap::SparseMmap { head, areas, .. } => {
                        assert_eq!(areas.len(), head.nr_areas.get() as usize);
                        16 + std::mem::size_of_val(areas)
                    }
                    RegionCap::SparseMmapFds { head, areas, .. } => {
                        assert_eq!(areas.len(), head.nr_areas.get() as usize);
                        16 + std::mem::size_of_val(areas)
                    }
                    RegionCap::Type { .. } => 16,
                    RegionCap::Unknown { .. } => 8,
                };
                assert!(
                    at - 32 + end <= area.len(),
                    "capability at {at} runs past the area"
                );
                last = at;
            }
            Err(e) => {
                ok = false;
                // Errors name the message offset of the capability (header, 32-byte fixed part, area).
                assert!(e.offset >= HEADER_SIZE, "{e}");
                let _ = e.to_string();
            }
        }
    }
    assert!(iter.next().is_none(), "the iterator resumed");
    // The same area in a reply.
    let mut msg = vec![0u8; HEADER_SIZE + 32];
    msg[2..4].copy_from_slice(&5u16.to_le_bytes());
    msg[8..12].copy_from_slice(&1u32.to_le_bytes());
    msg[16..20].copy_from_slice(&32u32.to_le_bytes());
    msg[20..24].copy_from_slice(&vfu_codec::vfio::device::VFIO_REGION_INFO_FLAG_CAPS.to_le_bytes());
    msg[28..32].copy_from_slice(&first.to_le_bytes());
    msg.extend_from_slice(area);
    let Ok(size) = u32::try_from(msg.len()) else {
        return;
    };
    msg[4..8].copy_from_slice(&size.to_le_bytes());
    match decode(&msg, Direction::ServerToClient) {
        Ok(m) => {
            assert!(ok, "decode accepted a chain the iterator refuses");
            check_decoded(&msg, &m);
        }
        Err(e) => {
            assert!(!ok, "decode refused a chain the iterator walks: {e}");
            check_error(&msg, &e);
        }
    }
}

/// `io_fds`: IO_FDS reply entries. The first 8 bytes are `argsz` and `count` (little-endian), the rest
/// the bytes after the 16-byte head. Parsed entries are `count` entries of a 40- or 48-byte stride at
/// the start of the data; a reply built from the same fields decodes the same way.
pub fn io_fds(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let argsz = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let count = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let base = HEADER_SIZE + 16;
    let parsed = IoFdEntries::parse(rest, argsz, count, base);
    match &parsed {
        Ok(e) => {
            assert_eq!(e.len(), count as usize);
            assert_eq!(e.is_empty(), count == 0);
            let bytes = e.as_bytes();
            assert_eq!(bytes.len(), e.len() * e.layout().stride());
            assert_eq!(bytes, &rest[..bytes.len()]);
        }
        Err(e) => assert_eq!(e.offset, base, "{e}"),
    }
    let mut msg = vec![0u8; HEADER_SIZE + 16];
    msg[2..4].copy_from_slice(&6u16.to_le_bytes());
    msg[8..12].copy_from_slice(&1u32.to_le_bytes());
    msg[16..20].copy_from_slice(&argsz.to_le_bytes());
    msg[28..32].copy_from_slice(&count.to_le_bytes());
    msg.extend_from_slice(rest);
    let Ok(size) = u32::try_from(msg.len()) else {
        return;
    };
    msg[4..8].copy_from_slice(&size.to_le_bytes());
    let decoded = decode(&msg, Direction::ServerToClient);
    match (&parsed, &decoded) {
        (_, Ok(m)) => {
            check_decoded(&msg, m);
            if !rest.is_empty() {
                let Body::RegionIoFds { entries, .. } = m.body else {
                    panic!("not an IO_FDS body: {:?}", m.body);
                };
                assert_eq!(Ok(entries), parsed);
            }
        }
        (Err(p), Err(d)) => assert_eq!(p, d),
        (Ok(_), Err(d)) => panic!("entries parse but the reply does not decode: {d}"),
    }
}

/// `vduse`: one VDUSE request and response (152 bytes each). What decodes re-encodes: the typed body
/// survives [`encode_request`]/[`encode_response`], and the raw struct is the input. The renderer
/// (`vfu-dump read` of a VDUSE connection) formats the same bytes as text and JSON.
pub fn vduse(data: &[u8]) {
    match decode_request(data) {
        Ok(req) => {
            assert_eq!(req.raw.as_bytes(), data);
            let _ = req.to_string();
            let mut buf = [0u8; VDUSE_MSG_SIZE];
            assert_eq!(
                encode_request(req.request_id(), &req.body, &mut buf),
                Ok(VDUSE_MSG_SIZE)
            );
            let again = decode_request(&buf).expect("an encoded request decodes");
            assert_eq!(again.body, req.body);
            assert_eq!(again.request_id(), req.request_id());
            assert_eq!(
                VduseDevRequest::new(req.request_id(), &req.body).as_bytes(),
                &buf[..]
            );
            assert!(encode_request(0, &req.body, &mut buf[..VDUSE_MSG_SIZE - 1]).is_err());
        }
        Err(e) => {
            assert_ne!(data.len(), VDUSE_MSG_SIZE);
            check_error(data, &e);
        }
    }
    match decode_response(data) {
        Ok(resp) => {
            assert_eq!(resp.as_bytes(), data);
            for t in REQUEST_TYPE_NAMES
                .iter()
                .map(|n| n.value as u32)
                .chain([VDUSE_GET_VQ_STATE, 99])
            {
                let body = resp.body(t);
                let mut buf = [0u8; VDUSE_MSG_SIZE];
                assert_eq!(
                    encode_response(resp.request_id.get(), resp.result.get(), &body, &mut buf),
                    Ok(VDUSE_MSG_SIZE)
                );
                let again = decode_response(&buf).expect("an encoded response decodes");
                assert_eq!(again.body(t), body);
                assert_eq!(
                    VduseDevResponse::new(resp.request_id.get(), resp.result.get(), &body)
                        .as_bytes(),
                    &buf[..]
                );
            }
            let _ = resp.is_ok();
        }
        Err(e) => check_error(data, &e),
    }
    // The whole path of `vfu-dump read` for VDUSE (pairing, text, -v, -x, JSON, validation), with the
    // bytes as a request and then as the response to it.
    for format in [OutputFormat::Text, OutputFormat::Json] {
        let cfg = PipelineConfig {
            format,
            style: Style {
                color: format == OutputFormat::Text,
                verbose: true,
                hex: true,
                relative_to: None,
            },
            validate: Some(validate::Profile::Spec),
            ..PipelineConfig::default()
        };
        let mut p = Pipeline::new(cfg, io::sink());
        for direction in [Direction::ClientToServer, Direction::ServerToClient] {
            let rec = record(data, direction, Protocol::Vduse);
            p.record(rec.into()).expect("sink");
        }
        p.finish().expect("sink");
    }
}

fn record(data: &[u8], direction: Direction, protocol: Protocol) -> RecordRef<'_> {
    RecordRef {
        conn: 0,
        ts_ns: 1,
        direction,
        protocol,
        fds: 0,
        fd_kinds: &[],
        truncated: false,
        data,
        orig_len: data.len(),
        index: 0,
        file_offset: 0,
    }
}

/// `render`: the first byte picks the direction and style, the rest is one vfio-user message, shown
/// as `vfu-dump read` shows it (one line, verbose fields, annotated hex, JSON), decoded or not.
pub fn render(data: &[u8]) {
    let Some((&sel, msg)) = data.split_first() else {
        return;
    };
    let direction = if sel & 1 == 0 {
        Direction::ClientToServer
    } else {
        Direction::ServerToClient
    };
    let decoded = decode(msg, direction);
    let meta = Meta {
        index: u64::from(sel),
        ts_ns: 1_700_000_000_000_000_000,
        conn: 0,
        direction,
        fds: u32::from(sel >> 4),
        truncated: sel & 2 != 0,
        // Now and then shown as cut by a capture after half its bytes.
        cut: (sel & 1 != 0).then(|| render::Cut {
            captured: msg.len() / 2,
            orig_len: msg.len(),
        }),
        rtt_ns: (sel & 4 != 0).then_some(1234),
    };
    let style = Style {
        color: sel & 8 != 0,
        verbose: true,
        hex: true,
        relative_to: None,
    };
    let mut out = Vec::new();
    render::write_line(&mut out, &meta, msg, &decoded, &style).expect("vec");
    render::json::write_json(&mut out, &meta, msg, &decoded).expect("vec");
    if let Ok(m) = &decoded {
        render::write_verbose(&mut io::sink(), m, &style).expect("sink");
        render::write_hex(&mut io::sink(), m, msg, &style).expect("sink");
        let _ = render::key_fields(m);
    }
    assert!(
        std::str::from_utf8(&out).is_ok(),
        "the renderer wrote bytes that are not UTF-8"
    );
}

/// `validator`: a sequence of messages ([`format::parse_events`]) through the stateful validator, as
/// `vfu-dump validate` does. Findings about the message just checked name an offset inside it and its
/// connection; the final pass names only connections that were seen.
pub fn validator(data: &[u8]) {
    let (profile, events) = format::parse_events(data);
    let mut v = Validator::new(profile);
    let mut out: Vec<Finding> = Vec::new();
    let mut conns = Vec::new();
    for ev in &events {
        out.clear();
        v.check(ev, &mut out);
        check_findings(ev, &out);
        if !conns.contains(&ev.conn) {
            conns.push(ev.conn);
        }
    }
    for f in v.finish() {
        assert!(
            conns.contains(&f.conn),
            "finding about an unseen connection: {f}"
        );
        let _ = f.to_string();
    }
}

/// Findings of one [`Validator::check`] call.
pub fn check_findings(ev: &Event<'_>, findings: &[Finding]) {
    for f in findings {
        assert_eq!(f.conn, ev.conn, "{f}");
        assert!(f.index <= ev.index, "finding about a later message: {f}");
        if f.index == ev.index {
            assert!(
                f.offset <= ev.bytes.len(),
                "finding offset past the {}-byte message: {f}",
                ev.bytes.len()
            );
        }
        assert!(validate::rule_by_id(f.rule.id).is_some(), "{f}");
        let _ = f.to_string();
    }
}

/// Reads a whole capture, checking every record and error against the input's length; each vfio-user
/// record is decoded. Returns the number of records and whether reading ended with an error.
pub fn read_capture(input: &[u8], opts: &OpenOptions) -> (u64, bool) {
    let len = input.len() as u64;
    let mut reader = match CaptureReader::new(input, opts) {
        Ok(r) => r,
        Err(e) => {
            assert!(e.offset().is_none_or(|o| o <= len), "{e}");
            let _ = e.to_string();
            return (0, true);
        }
    };
    let mut n = 0u64;
    loop {
        match reader.next_record() {
            Ok(Some(rec)) => {
                assert_eq!(rec.index, n);
                assert!(
                    rec.file_offset < len,
                    "record at {} of a {len}-byte input",
                    rec.file_offset
                );
                assert!(rec.data.len() as u64 <= len);
                // At most `fds=N` descriptions, decoded from comment bytes inside the input (a byte
                // that is not UTF-8 becomes the 3-byte U+FFFD).
                assert!(rec.fd_kinds.len() <= rec.fds as usize);
                let text: usize = rec.fd_kinds.iter().map(String::len).sum();
                assert!(text as u64 <= 3 * len, "{text} bytes of descriptions");
                let (conn, protocol, direction) = (rec.conn, rec.protocol, rec.direction);
                if protocol == Protocol::VfioUser
                    && !rec.truncated
                    && let Ok(m) = decode(rec.data, direction)
                {
                    check_decoded(rec.data, &m);
                }
                let known = reader.connections();
                assert!(
                    (conn as usize) < known.len(),
                    "record on connection {conn} of {}",
                    known.len()
                );
                assert_eq!(known[conn as usize].id, conn);
                n += 1;
                if n >= MAX_RECORDS {
                    return (n, false);
                }
            }
            Ok(None) => return (n, false),
            Err(e) => {
                assert!(e.offset().is_some_and(|o| o <= len), "{e}");
                let _ = e.to_string();
                assert!(
                    matches!(reader.next_record(), Ok(None)),
                    "the reader went on after an error"
                );
                return (n, true);
            }
        }
    }
}

/// `capture_pcapng`: the input is a pcapng file.
pub fn capture_pcapng(data: &[u8]) {
    read_capture(data, &OpenOptions::default());
}

/// `capture_pcap`: the first byte picks a classic pcap file header ([`format::pcap_header`]) or a raw
/// stream; the rest are the records (or the stream).
pub fn capture_pcap(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (input, opts) = format::pcap_input(sel, rest);
    read_capture(&input, &opts);
}

/// `capture_sockdump`: the first byte picks the byte order and timestamp resolution of a link type 147
/// pcap header; the rest are sockdump records.
pub fn capture_sockdump(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut input = format::pcap_header(sel & 1 != 0, sel & 2 != 0, format::LINKTYPE_SOCKDUMP);
    input.extend_from_slice(rest);
    read_capture(&input, &OpenOptions::default());
}

/// Whether the known capability `key` of `scope` has a value in `caps`.
pub(crate) fn known_is_set(caps: &Capabilities<'_>, scope: Scope, key: &str) -> bool {
    let m = caps.migration.unwrap_or_default();
    let t = caps.twin_socket.unwrap_or_default();
    match (scope, key) {
        (Scope::Capabilities, "max_msg_fds") => caps.max_msg_fds.is_some(),
        (Scope::Capabilities, "max_data_xfer_size") => caps.max_data_xfer_size.is_some(),
        (Scope::Capabilities, "max_dma_maps") => caps.max_dma_maps.is_some(),
        (Scope::Capabilities, "pgsizes") => caps.pgsizes.is_some(),
        (Scope::Capabilities, "write_multiple") => caps.write_multiple.is_some(),
        (Scope::Capabilities, "migration") => caps.migration.is_some(),
        (Scope::Capabilities, "twin_socket") => caps.twin_socket.is_some(),
        (Scope::Migration, "pgsize") => m.pgsize.is_some(),
        (Scope::Migration, "max_bitmap_size") => m.max_bitmap_size.is_some(),
        (Scope::TwinSocket, "supported") => t.supported.is_some(),
        (Scope::TwinSocket, "fd_index") => t.fd_index.is_some(),
        _ => false,
    }
}
