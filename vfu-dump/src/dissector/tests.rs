//! The generator's own checks: it succeeds, its names are unique and stable, and the body table
//! mirrors the codec's decode. The last is checked by walking every corpus message with the table (a
//! Rust interpreter with the semantics of the Lua one) and comparing parts and errors with
//! `vfu_codec::decode` and `Message::for_each_part`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vfu_codec::vduse::{RequestBody, ResponseBody, VduseDevRequest, VduseDevResponse};
use vfu_codec::vfio::caps::parse_capabilities;
use vfu_codec::{Part, decode};

use super::*;
use crate::capture::{OpenOptions, PcapngWriter, Protocol, RecordRef, open};

#[test]
fn generates_every_field() {
    let lua = lua_source().unwrap();
    for l in vfio_user_layouts() {
        for f in l.fields {
            let a = field_abbrev(PROTO_VFIO_USER, &l, f);
            assert!(lua.contains(&format!("\"{a}\"")), "{a} missing");
        }
    }
    for l in vfu_codec::vduse::LAYOUTS {
        for f in l.fields {
            let a = field_abbrev(PROTO_VDUSE, l, f);
            assert!(lua.contains(&format!("\"{a}\"")), "{a} missing");
        }
    }
    for a in [
        "vfio_user.id",
        "vfio_user.cmd",
        "vfio_user.size",
        "vfio_user.flags",
        "vfio_user.errno",
        "vfio_user.flags.type",
        "vfio_user.flags.no_reply",
        "vfio_user.flags.error",
        "vfio_user.dir",
        "vfio_user.dma_map.address",
        "vfio_user.dma_map.flags.read",
        "vfio_user.device_feature.flags.feature",
        "vfio_user.feature_mig_state.device_state",
        "vfio_user.json",
        "vduse.dev_request.req_type",
        "vduse.vq_state.index",
    ] {
        assert!(lua.contains(&format!("\"{a}\"")), "{a} missing");
    }
    // Lua 5.2 has no native bit operators.
    for op in [" & ", " | ", " ~ ", " << ", " >> ", "//"] {
        for (i, line) in lua.lines().enumerate() {
            let code = line.split("--").next().unwrap_or("");
            let code: String = code.split('"').step_by(2).collect();
            assert!(!code.contains(op), "line {}: `{op}` in {line}", i + 1);
        }
    }
}

#[test]
fn names() {
    assert_eq!(snake("IoFdShadowEntry"), "io_fd_shadow_entry");
    assert_eq!(struct_key(PROTO_VDUSE, &VDUSE.request), "dev_request");
    assert_eq!(ident("MIGRATION(legacy)"), "migration_legacy");
    assert_eq!(data_abbrev(DataKind::CapArea), "vfio_user.cap_area");
    for (r, _) in HEADER_ALIASES {
        assert!(r.field().is_some());
    }
}

#[test]
fn capture_constants_match_the_writer() {
    let mut w = PcapngWriter::new(Vec::new()).unwrap();
    let c = w
        .add_connection("vfio-user:0:/s", Protocol::VfioUser)
        .unwrap();
    let v = w.add_connection("vduse:1:/d", Protocol::Vduse).unwrap();
    let rec = |conn, direction, protocol, fds, truncated| RecordRef {
        conn,
        ts_ns: 1,
        direction,
        protocol,
        fds,
        fd_kinds: &[],
        truncated,
        data: &[0u8; 16],
        orig_len: 16,
        index: 0,
        file_offset: 0,
    };
    w.write_record(&rec(
        c,
        Direction::ClientToServer,
        Protocol::VfioUser,
        2,
        true,
    ))
    .unwrap();
    w.write_record(&rec(
        v,
        Direction::ServerToClient,
        Protocol::Vduse,
        0,
        false,
    ))
    .unwrap();
    let out = w.into_inner().unwrap();
    let has = |needle: &[u8]| out.windows(needle.len()).any(|x| x == needle);
    for name in [PROTO_VFIO_USER, PROTO_VDUSE] {
        let mut tag = vec![0, 12, 0, ((name.len() + 3) & !3) as u8];
        tag.extend_from_slice(name.as_bytes());
        assert!(has(&tag), "tag 12 {name}");
    }
    let mut dir = vec![0, 35, 0, 4];
    dir.extend_from_slice(&P2P_CLIENT_TO_SERVER.to_be_bytes());
    assert!(has(&dir));
    let mut dir = vec![0, 35, 0, 4];
    dir.extend_from_slice(&P2P_SERVER_TO_CLIENT.to_be_bytes());
    assert!(has(&dir));
    assert!(has(format!("{COMMENT_FDS}2 {COMMENT_TRUNCATED}").as_bytes()));
}

#[test]
fn vduse_members_match_the_codec() {
    for t in 0..8u32 {
        let mut r = VduseDevRequest::default();
        r.req_type.set(t);
        let codec = match r.body() {
            RequestBody::GetVqState(m) => Some(Layout::of_val(m)),
            RequestBody::SetStatus(m) => Some(Layout::of_val(m)),
            RequestBody::UpdateIotlb(m) => Some(Layout::of_val(m)),
            RequestBody::SetVqGroupAsid(m) => Some(Layout::of_val(m)),
            RequestBody::Unknown { .. } => None,
        };
        let table = VDUSE
            .request_members
            .iter()
            .find(|(v, _)| *v == u64::from(t))
            .map(|(_, l)| *l);
        assert_eq!(codec, table, "request type {t}");
        let resp = VduseDevResponse::default();
        let codec = match resp.body(t) {
            ResponseBody::GetVqState(m) => Some(Layout::of_val(m)),
            ResponseBody::Raw(_) => None,
        };
        let table = VDUSE
            .response_members
            .iter()
            .find(|(v, _)| *v == u64::from(t))
            .map(|(_, l)| *l);
        assert_eq!(codec, table, "response to type {t}");
    }
    assert_eq!(VDUSE.request.size, VDUSE.msg_size);
    assert_eq!(VDUSE.response.size, VDUSE.msg_size);
}

// ---------------------------------------------------------------------------------------------------
// A Rust interpreter of the body table, with the semantics of `runtime.lua`.

#[derive(Clone, Debug, PartialEq, Eq)]
enum P {
    S(&'static str, usize, Option<usize>),
    D(DataKind, usize, usize),
}

type Fail = (&'static str, usize);

struct Walk<'a> {
    b: &'a [u8],
    pos: usize,
    limit: usize,
    vals: HashMap<(&'static str, usize), u64>,
    parts: Vec<P>,
    stop: bool,
}

impl Walk<'_> {
    fn val(&self, r: &FieldRef) -> u64 {
        *self
            .vals
            .get(&(r.layout.name, r.offset))
            .unwrap_or_else(|| panic!("{} not read", r.layout.name))
    }

    fn add(&mut self, l: Layout, at: usize, index: Option<usize>) {
        for f in l.fields {
            if let Some(v) = f.read_u64(&self.b[at..]) {
                self.vals.insert((l.name, f.offset), v);
            }
        }
        self.parts.push(P::S(l.name, at, index));
    }

    fn data(&mut self, kind: DataKind, at: usize, len: usize) {
        if len > 0 {
            self.parts.push(P::D(kind, at, len));
        }
    }

    fn run(&mut self, steps: &[Step]) -> Result<(), Fail> {
        for s in steps {
            if self.stop {
                return Ok(());
            }
            self.step(s)?;
        }
        Ok(())
    }

    fn step(&mut self, s: &Step) -> Result<(), Fail> {
        let have = self.limit - self.pos;
        match *s {
            Step::Struct(l) => {
                if have < l.size {
                    return Err(("short-body", self.pos));
                }
                self.add(l, self.pos, None);
                self.pos += l.size;
            }
            Step::Array { elem, count } => {
                let n = self.val(&count);
                if n.saturating_mul(elem.size as u64) > have as u64 {
                    return Err(("count-exceeds-payload", self.pos));
                }
                for i in 0..n as usize {
                    self.add(elem, self.pos, Some(i));
                    self.pos += elem.size;
                }
            }
            Step::Data { kind, len } => {
                let n = self.val(&len);
                if n > have as u64 {
                    return Err(("count-exceeds-payload", self.pos));
                }
                self.data(kind, self.pos, n as usize);
                self.pos += n as usize;
            }
            Step::Rest(kind) => {
                self.data(kind, self.pos, have);
                self.pos = self.limit;
            }
            Step::StopIfEmpty => self.stop = have == 0,
            Step::IfFlag { field, mask, then } => {
                if self.val(&field) & mask != 0 {
                    self.run(then)?;
                }
            }
            Step::IfNonEmpty(then) => {
                if have > 0 {
                    self.run(then)?;
                }
            }
            Step::Switch {
                field,
                mask,
                cases,
                default,
            } => {
                let key = (self.val(&field) & mask) >> mask.trailing_zeros();
                let steps = cases
                    .iter()
                    .find(|c| c.values.contains(&key))
                    .map_or(default, |c| c.steps);
                self.run(steps)?;
            }
            Step::Json => {
                if have == 0 {
                    return Ok(());
                }
                if self.b[self.limit - 1] != 0 {
                    return Err(("version-json-not-terminated", self.limit - 1));
                }
                let text = &self.b[self.pos..self.limit - 1];
                if let Some(nul) = text.iter().position(|&x| x == 0) {
                    return Err(("version-json-not-terminated", self.pos + nul));
                }
                if let Err((at, rule)) = parse_capabilities(text) {
                    return Err((rule.id(), self.pos + at));
                }
                self.data(DataKind::Json, self.pos, text.len());
                self.data(DataKind::Nul, self.limit - 1, 1);
                self.pos = self.limit;
            }
            Step::RegionCaps(rc) => self.caps(rc)?,
            Step::IoFdEntries {
                head,
                argsz,
                count,
                entries,
            } => {
                if have == 0 {
                    return Ok(());
                }
                let n = self.val(&count) as usize;
                if n == 0 {
                    return Ok(());
                }
                let a = self.val(&argsz) as usize;
                let by_argsz = a
                    .checked_sub(head.size)
                    .filter(|b| b % n == 0)
                    .map(|b| b / n);
                let entry = entries
                    .iter()
                    .find(|e| Some(e.size) == by_argsz)
                    .or_else(|| entries.iter().find(|e| e.size == have / n))
                    .ok_or(("io-fds-stride", self.pos))?;
                if have < n * entry.size {
                    return Err(("short-body", self.pos));
                }
                for i in 0..n {
                    self.add(*entry, self.pos, Some(i));
                    self.pos += entry.size;
                }
            }
            Step::ReportBitmap { length, page_size } => {
                let want = vfu_codec::vfio::dma::dirty_bitmap_bytes(
                    self.val(&length),
                    self.val(&page_size),
                );
                let n = match want {
                    Some(n) if n <= have as u64 => n as usize,
                    _ => have,
                };
                self.data(DataKind::Bitmap, self.pos, n);
                self.pos += n;
            }
        }
        Ok(())
    }

    fn caps(&mut self, rc: &RegionCaps) -> Result<(), Fail> {
        let base = HEADER_SIZE;
        let fixed = rc.info.size;
        let area = self.limit - self.pos;
        let first = if self.val(&rc.flags) & rc.caps_flag != 0 {
            self.val(&rc.first) as usize
        } else {
            0
        };
        if first == 0 {
            return self.step(&Step::Rest(DataKind::CapArea));
        }
        let id_f = rc.id.field().unwrap();
        let next_f = rc.next.field().unwrap();
        let mut caps = Vec::new();
        let mut at = first;
        let mut seen = 0;
        // A pointer that leads nowhere is reported at the pointer: cap_offset, then each `next`.
        let mut from = rc.first.field().unwrap().offset;
        loop {
            if at < fixed {
                return Err(("region-cap-overlaps-fixed", base + from));
            }
            let rest = (area + fixed).saturating_sub(at);
            if at - fixed > area || rest < rc.id.layout.size {
                return Err(("region-cap-out-of-bounds", base + from));
            }
            let bytes = &self.b[base + at..];
            let id = id_f.read_u64(bytes).unwrap();
            let next = next_f.read_u64(bytes).unwrap() as usize;
            if next != 0 && next <= at {
                return Err(("region-cap-loop", base + at + next_f.offset));
            }
            seen += 1;
            if seen > rc.max {
                return Err(("region-cap-loop", base + at));
            }
            let (head, areas) = match rc.kinds.iter().find(|k| k.id == id) {
                None => (UNKNOWN_CAP, None),
                Some(k) => {
                    if rest < k.head.size {
                        return Err(("region-cap-truncated", base + at));
                    }
                    let areas = k.areas.map(|(count, l)| {
                        (count.field().unwrap().read_u64(bytes).unwrap() as usize, l)
                    });
                    if let Some((n, l)) = areas
                        && rest < k.head.size + n * l.size
                    {
                        return Err(("region-cap-truncated", base + at));
                    }
                    (k.head, areas)
                }
            };
            caps.push((at, head, areas));
            if next == 0 {
                break;
            }
            from = at + next_f.offset;
            at = next;
        }
        let mut pos = fixed;
        for (at, head, areas) in caps {
            if at > pos {
                self.data(DataKind::CapArea, base + pos, at - pos);
            }
            let mut o = base + at;
            self.add(head, o, None);
            o += head.size;
            if let Some((n, l)) = areas {
                for i in 0..n {
                    self.add(l, o, Some(i));
                    o += l.size;
                }
            }
            pos = pos.max(o - base);
        }
        if pos - fixed < area {
            self.data(DataKind::CapArea, base + pos, area - (pos - fixed));
        }
        self.pos = self.limit;
        Ok(())
    }
}

fn walk(b: &[u8]) -> Result<Vec<P>, Fail> {
    let Some(h) = vfu_codec::Header::peek(b) else {
        return Err(("short-header", 0));
    };
    let size = h.msg_size.get() as usize;
    if size < HEADER_SIZE {
        return Err(("msg-size-below-header", 4));
    }
    if b.len() < size {
        return Err(("msg-truncated", b.len()));
    }
    if b.len() > size {
        return Err(("msg-overlong", size));
    }
    if h.message_type().is_none() {
        return Err(("bad-message-type", 8));
    }
    let mut w = Walk {
        b,
        pos: HEADER_SIZE,
        limit: size,
        vals: HashMap::new(),
        parts: Vec::new(),
        stop: false,
    };
    w.add(HEADER, 0, None);
    if !(h.is_reply() && h.is_error()) {
        let steps = VFIO_USER_BODIES
            .iter()
            .find(|r| r.command == h.cmd())
            .map_or(
                UNKNOWN_BODY,
                |r| {
                    if h.is_reply() { r.reply } else { r.request }
                },
            );
        w.run(steps)?;
    }
    let (pos, limit) = (w.pos, w.limit);
    w.data(DataKind::Trailing, pos, limit - pos);
    Ok(w.parts)
}

fn codec(b: &[u8]) -> Result<Vec<P>, Fail> {
    let m = decode(b, Direction::ClientToServer).map_err(|e| (e.rule.id(), e.offset))?;
    let mut v = Vec::new();
    m.for_each_part(|p| {
        v.push(match p {
            Part::Struct {
                layout,
                offset,
                index,
                ..
            } => P::S(layout.name, offset, index),
            Part::Data {
                kind,
                offset,
                bytes,
            } => P::D(kind, offset, bytes.len()),
        })
    });
    Ok(v)
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus")
}

fn check(what: &str, b: &[u8], seen: &mut usize) {
    assert_eq!(walk(b), codec(b), "{what}");
    *seen += 1;
}

#[test]
fn body_table_mirrors_the_codec_on_the_corpus() {
    let mut seen = 0;
    let mut files: Vec<_> = std::fs::read_dir(corpus().join("messages")).map_or(Vec::new(), |d| {
        d.filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "bin"))
            .collect()
    });
    files.sort();
    for p in &files {
        let b = std::fs::read(p).unwrap();
        check(&p.display().to_string(), &b, &mut seen);
        // Every cut of the message, too: the table must fail where the codec fails, with the same rule.
        for n in HEADER_SIZE..b.len() {
            let mut cut = b[..n].to_vec();
            cut[4..8].copy_from_slice(&(n as u32).to_le_bytes());
            check(&format!("{} cut to {n}", p.display()), &cut, &mut seen);
        }
    }
    let mut pcaps: Vec<_> = std::fs::read_dir(corpus())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcapng"))
        .collect();
    pcaps.sort();
    for p in &pcaps {
        let mut r = open(p, &OpenOptions::default()).unwrap();
        while let Some(rec) = r.next_record().unwrap() {
            if rec.protocol == Protocol::VfioUser {
                let what = format!("{} #{}", p.display(), rec.index);
                check(&what, rec.data, &mut seen);
            }
        }
    }
    assert!(seen > 1000, "only {seen} messages walked");
}

#[test]
fn body_table_mirrors_the_codec_on_edge_cases() {
    use vfu_codec::{Body, Command, Header, encode_exact};
    let mut seen = 0;
    let mut buf = vec![0u8; 4096];
    // Region-info replies with hand-made capability chains, good and bad.
    let mut info = vfu_codec::vfio::RegionInfo::default();
    for (flags, cap_offset, caps) in [
        (8u32, 32u32, vec![(1u16, 0u32, 1u32)]),
        (8, 40, vec![(2, 0, 0)]),
        (8, 32, vec![(16, 0, 1)]),
        (8, 32, vec![(99, 0, 0)]),
        (8, 16, vec![(2, 0, 0)]),
        (8, 200, vec![(2, 0, 0)]),
        (8, 32, vec![(2, 32, 0)]),
        (8, 32, vec![(1, 0, 9)]),
        (0, 32, vec![(2, 0, 0)]),
        (8, 0, vec![(2, 0, 0)]),
    ] {
        info.flags.set(flags);
        info.cap_offset.set(cap_offset);
        let mut area = [0u8; 80];
        for (id, next, n) in caps {
            let at = (cap_offset as usize).saturating_sub(32).min(64);
            area[at..at + 2].copy_from_slice(&id.to_le_bytes());
            area[at + 4..at + 8].copy_from_slice(&next.to_le_bytes());
            area[at + 8..at + 12].copy_from_slice(&n.to_le_bytes());
        }
        for len in [0, 8, 16, 40, 64, 80] {
            let body = Body::RegionInfo {
                info: &info,
                caps: &area[..len],
            };
            let h = Header::reply(1, Command::DEVICE_GET_REGION_INFO);
            let n = encode_exact(&h, &body, &[], &mut buf).unwrap();
            check(
                &format!("caps {flags} {cap_offset} {len}"),
                &buf[..n],
                &mut seen,
            );
        }
    }
    // Odd headers: bad type, error replies with payload, unknown commands.
    for (cmd, flags, payload) in [
        (2u16, 2u32, 8usize),
        (2, 0x21, 8),
        (999, 0, 3),
        (9, 1, 0),
        (12, 1, 0),
        (18, 1, 0),
        (11, 1, 0),
    ] {
        let mut b = vec![0u8; 16 + payload];
        b[2..4].copy_from_slice(&cmd.to_le_bytes());
        b[4..8].copy_from_slice(&((16 + payload) as u32).to_le_bytes());
        b[8..12].copy_from_slice(&flags.to_le_bytes());
        check(&format!("cmd {cmd} flags {flags:#x}"), &b, &mut seen);
    }
    assert!(seen > 50);
}
