//! The generated Wireshark dissector against `vfu-dump read`: for every message of every capture in
//! `corpus/` (plus one capture built from `corpus/messages/*.bin` and one of VDUSE traffic), the fields
//! tshark prints with the plugin must equal what `vfu-dump read --format json` says (direction,
//! connection, descriptors, header fields, every body struct field and data run, round-trip times),
//! its Info column must be `vfu-dump read`'s line, malformed messages must carry the codec's rule as
//! expert info, and nothing may raise a Lua error or a malformed-packet exception.
//!
//! Needs `tshark` (Debian: `apt-get install tshark`; `.ci/run` installs it). Without it the test
//! passes after printing `SKIPPED: <test>: needs tshark (apt-get install tshark)`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use vfu_codec::Direction;
use vfu_codec::header::VFIO_USER_F_TYPE_MASK;
use vfu_codec::vduse::{
    RequestBody, ResponseBody, VDUSE_REQ_RESULT_FAILED, VDUSE_REQ_RESULT_OK, VduseDevStatus,
    VduseIovaRange, VduseVqGroupAsid, VduseVqState, encode_request, encode_response,
};
use vfu_dump::capture::{PcapngWriter, Protocol, RecordRef};

/// `PI_ERROR` in Wireshark's expert severities.
const PI_ERROR: i64 = 0x0080_0000;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vfu-dump")
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus")
}

/// Says on the real standard error (not captured by the test harness, so `cargo test` shows it) that
/// `test` was skipped and why: `SKIPPED: <test>: <why>`, the marker `.ci/run` looks for.
fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

/// Whether tshark can run; when it cannot, says that `test` skipped and what to install.
fn have_tshark(test: &str) -> bool {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skipped(test, "needs tshark (apt-get install tshark)");
    }
    ok
}

// ---------------------------------------------------------------------------------------------------
// A small JSON reader for the output of `vfu-dump read --format json` and `tshark -T json`.

#[derive(Clone, Debug, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn get(&self, k: &str) -> Option<&J> {
        match self {
            J::Obj(v) => v.iter().find(|(key, _)| key == k).map(|(_, v)| v),
            _ => None,
        }
    }
    fn int(&self) -> i128 {
        match self {
            J::Num(n) => n.parse().unwrap_or_else(|_| panic!("not an integer: {n}")),
            J::Bool(b) => i128::from(*b),
            other => panic!("not a number: {other:?}"),
        }
    }
    fn str(&self) -> &str {
        match self {
            J::Str(s) => s,
            other => panic!("not a string: {other:?}"),
        }
    }
    fn arr(&self) -> &[J] {
        match self {
            J::Arr(v) => v,
            other => panic!("not an array: {other:?}"),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn parse(text: &str) -> J {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value();
        p.ws();
        assert_eq!(p.i, p.s.len(), "trailing text in JSON");
        v
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) {
        self.ws();
        assert_eq!(
            self.s.get(self.i),
            Some(&c),
            "JSON: expected {} at {}",
            c as char,
            self.i
        );
        self.i += 1;
    }
    fn value(&mut self) -> J {
        self.ws();
        match self.s[self.i] {
            b'{' => {
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.s[self.i] == b'}' {
                    self.i += 1;
                    return J::Obj(v);
                }
                loop {
                    self.ws();
                    let k = self.string();
                    self.eat(b':');
                    let x = self.value();
                    v.push((k, x));
                    self.ws();
                    self.i += 1;
                    if self.s[self.i - 1] == b'}' {
                        return J::Obj(v);
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.s[self.i] == b']' {
                    self.i += 1;
                    return J::Arr(v);
                }
                loop {
                    v.push(self.value());
                    self.ws();
                    self.i += 1;
                    if self.s[self.i - 1] == b']' {
                        return J::Arr(v);
                    }
                }
            }
            b'"' => J::Str(self.string()),
            b't' => {
                self.i += 4;
                J::Bool(true)
            }
            b'f' => {
                self.i += 5;
                J::Bool(false)
            }
            b'n' => {
                self.i += 4;
                J::Null
            }
            _ => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                J::Num(String::from_utf8(self.s[start..self.i].to_vec()).unwrap())
            }
        }
    }
    fn hex4(&mut self) -> u32 {
        let h = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
        self.i += 4;
        u32::from_str_radix(h, 16).unwrap()
    }
    fn string(&mut self) -> String {
        self.eat(b'"');
        let mut out = Vec::new();
        loop {
            let c = self.s[self.i];
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).unwrap(),
                b'\\' => {
                    let e = self.s[self.i];
                    self.i += 1;
                    let ch = match e {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let mut u = self.hex4();
                            if (0xd800..0xdc00).contains(&u) && self.s.get(self.i) == Some(&b'\\') {
                                self.i += 2;
                                let lo = self.hex4();
                                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                            }
                            char::from_u32(u).unwrap_or('\u{fffd}')
                        }
                        other => other as char,
                    };
                    let mut b = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                }
                other => out.push(other),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Expected values.

#[derive(Clone, Debug, PartialEq)]
enum Want {
    /// A number (tshark prints it in decimal, or hex with `0x`).
    Int(i128),
    /// Bytes in hex (tshark may separate them with `:`).
    Hex(String),
    /// A string.
    Text(String),
    /// A byte field of this many bytes.
    Len(usize),
}

fn matches(want: &Want, got: &str) -> bool {
    match want {
        Want::Int(n) => {
            let v = if let Some(h) = got.strip_prefix("0x") {
                i128::from_str_radix(h, 16).ok()
            } else {
                match got {
                    "True" => Some(1),
                    "False" => Some(0),
                    _ => got.parse().ok(),
                }
            };
            v == Some(*n)
        }
        Want::Hex(h) => got.replace(':', "").eq_ignore_ascii_case(h),
        Want::Text(t) => got == t,
        Want::Len(n) => got.replace(':', "").len() == n * 2,
    }
}

/// `DmaMap` → `dma_map` (independent of the generator's own function, so a change there shows here).
fn snake(name: &str) -> String {
    let mut s = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

struct Expected {
    proto: &'static str,
    /// abbrev → values, in order; `head` holds the abbrevs that do not come from the body.
    fields: BTreeMap<String, Vec<Want>>,
    head: BTreeSet<String>,
    malformed: Option<String>,
    rtt_ns: Option<i128>,
    text_line: Option<String>,
}

fn expected(o: &J) -> Expected {
    let vduse = o.get("protocol").is_some_and(|p| p.str() == "vduse");
    let proto = if vduse { "vduse" } else { "vfio_user" };
    let mut fields: BTreeMap<String, Vec<Want>> = BTreeMap::new();
    let mut put = |k: String, v: Want| fields.entry(k).or_default().push(v);
    put(
        format!("{proto}.dir"),
        Want::Text(o.get("dir").unwrap().str().to_owned()),
    );
    put(
        format!("{proto}.conn"),
        Want::Int(o.get("conn").unwrap().int()),
    );
    put(
        format!("{proto}.truncated"),
        Want::Int(o.get("truncated").unwrap().int()),
    );
    if let Some(f) = o.get("fds") {
        put(format!("{proto}.fds"), Want::Int(f.int()));
    }
    // The vfio-user header (a VDUSE record's id, cmd and type come from its body, compared below).
    if let Some(id) = o.get("id").filter(|_| !vduse) {
        let flags = o.get("flags").unwrap().int();
        put("vfio_user.id".into(), Want::Int(id.int()));
        put(
            "vfio_user.cmd".into(),
            Want::Int(o.get("cmd").unwrap().int()),
        );
        put(
            "vfio_user.size".into(),
            Want::Int(o.get("size").unwrap().int()),
        );
        put("vfio_user.flags".into(), Want::Int(flags));
        put(
            "vfio_user.errno".into(),
            Want::Int(o.get("errno").unwrap().int()),
        );
        put(
            "vfio_user.flags.type".into(),
            Want::Int(flags & i128::from(VFIO_USER_F_TYPE_MASK)),
        );
        put(
            "vfio_user.flags.no_reply".into(),
            Want::Int(o.get("no_reply").unwrap().int()),
        );
        put(
            "vfio_user.flags.error".into(),
            Want::Int(o.get("error").unwrap().int()),
        );
    }
    let head: BTreeSet<String> = fields.keys().cloned().collect();
    let mut put = |k: String, v: Want| fields.entry(k).or_default().push(v);
    let malformed = o
        .get("decode_error")
        .map(|e| e.get("rule").unwrap().str().to_owned());
    if malformed.is_none() {
        for part in o.get("body").map_or(&[][..], J::arr) {
            if let Some(s) = part.get("struct") {
                let mut key = snake(s.str());
                if vduse {
                    key = key.strip_prefix("vduse_").unwrap_or(&key).to_owned();
                }
                let J::Obj(fs) = part.get("fields").unwrap() else {
                    panic!("fields")
                };
                for (name, v) in fs {
                    if name.ends_with("_name")
                        && fs
                            .iter()
                            .any(|(n, _)| Some(n.as_str()) == name.strip_suffix("_name"))
                    {
                        continue;
                    }
                    let abbrev = format!("{proto}.{key}.{name}");
                    put(
                        abbrev,
                        match v {
                            J::Num(_) => Want::Int(v.int()),
                            J::Str(s) if s.chars().all(|c| c.is_ascii_hexdigit()) => {
                                Want::Hex(s.clone())
                            }
                            J::Str(s) => Want::Text(s.clone()),
                            other => panic!("field value {other:?}"),
                        },
                    );
                }
            } else {
                let kind = part.get("data").unwrap().str();
                let abbrev = format!("{proto}.{}", snake(kind));
                let len = part.get("len").unwrap().int() as usize;
                put(
                    abbrev,
                    match part.get("text") {
                        Some(t) => Want::Text(t.str().to_owned()),
                        None => Want::Len(len),
                    },
                );
            }
        }
    }
    Expected {
        proto,
        fields,
        head,
        malformed,
        rtt_ns: o.get("rtt_ns").map(J::int),
        text_line: None,
    }
}

// ---------------------------------------------------------------------------------------------------
// Captures built for the test.

fn rec<'a>(
    conn: u32,
    ts_ns: u64,
    direction: Direction,
    protocol: Protocol,
    fds: u32,
    data: &'a [u8],
) -> RecordRef<'a> {
    RecordRef {
        conn,
        ts_ns,
        direction,
        protocol,
        fds,
        fd_kinds: &[],
        truncated: false,
        data,
        orig_len: data.len(),
        index: 0,
        file_offset: 0,
    }
}

/// Every message of `corpus/messages`, requests client to server (DMA_READ/WRITE: server to client).
fn messages_capture(path: &Path) -> bool {
    let Ok(dir) = std::fs::read_dir(corpus().join("messages")) else {
        return false;
    };
    let mut files: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    if files.is_empty() {
        return false;
    }
    let mut w = PcapngWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    let c = w
        .add_connection("vfio-user:0:/tmp/messages.sock", Protocol::VfioUser)
        .unwrap();
    for (i, f) in files.iter().enumerate() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(f).unwrap();
        let request = name.contains("-request");
        let server_cmd = name.starts_with("dma_read") || name.starts_with("dma_write");
        let dir = if request != server_cmd {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        let fds = u32::from(name.starts_with("dma_map-request"));
        // What the descriptor is, as `trace -w` writes it (`fds=1 fd=/memfd:guest%20ram…`): the
        // dissector must still read `fds=1`. Every other record has the count alone.
        let kinds = ["/memfd:guest ram (deleted)".to_string()];
        w.write_record(&RecordRef {
            fd_kinds: &kinds[..fds as usize],
            ..rec(
                c,
                1_700_000_000_000_000_000 + i as u64 * 1000,
                dir,
                Protocol::VfioUser,
                fds,
                &data,
            )
        })
        .unwrap();
    }
    w.flush().unwrap();
    true
}

/// Edge cases the corpus lacks, as client-to-server messages on one connection: every golden message
/// cut at every length (with `msg_size` following), VERSION with JSON texts good and bad, region-info
/// replies with capability chains good and bad, and header oddities.
fn edge_capture(path: &Path) {
    let mut msgs: Vec<Vec<u8>> = Vec::new();
    let msg = |cmd: u16, flags: u32, payload: &[u8]| {
        let mut b = vec![0u8; 16];
        b[0..2].copy_from_slice(&7u16.to_le_bytes());
        b[2..4].copy_from_slice(&cmd.to_le_bytes());
        b[4..8].copy_from_slice(&((16 + payload.len()) as u32).to_le_bytes());
        b[8..12].copy_from_slice(&flags.to_le_bytes());
        b.extend_from_slice(payload);
        b
    };
    if let Ok(dir) = std::fs::read_dir(corpus().join("messages")) {
        let mut files: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "bin"))
            .collect();
        files.sort();
        for f in files {
            let b = std::fs::read(f).unwrap();
            for n in 16..b.len() {
                let mut cut = b[..n].to_vec();
                cut[4..8].copy_from_slice(&(n as u32).to_le_bytes());
                msgs.push(cut);
            }
        }
    }
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(15), "]".repeat(15));
    let deeper = format!("{{\"a\":{}1{}}}", "[".repeat(16), "]".repeat(16));
    let mut texts: Vec<Vec<u8>> = [
        r#"{}"#,
        r#" { } "#,
        r#"{"capabilities":{"max_msg_fds":8}}"#,
        r#"{"a":[1,-2,3.5,4e10,5E-3,-0,0.0,1e+2]}"#,
        r#"{"a":01}"#,
        r#"{"a":-}"#,
        r#"{"a":1.}"#,
        r#"{"a":1e}"#,
        r#"{"a":.5}"#,
        r#"{"a":+1}"#,
        r#"{"a":tru}"#,
        r#"{"a":tru"#,
        r#"{"a":nul}"#,
        r#"{"a":nulL}"#,
        r#"{"a":true,"b":false,"c":null}"#,
        r#"{"a":"x\"y\\z\/\b\f\n\r\t"}"#,
        r#"{"a":"\u00e9\uD83D\uDE00"}"#,
        r#"{"a":"\u12"}"#,
        r#"{"a":"\u12G4"}"#,
        r#"{"a":"\x"}"#,
        r#"{"a":"abc"#,
        r#"{"a":"abc\"#,
        "{\"a\":\"tab\there\"}",
        r#"{"a":1,}"#,
        r#"{"a" 1}"#,
        r#"{a:1}"#,
        r#"{"a":1}x"#,
        r#"{"a":1} "#,
        r#"[1]"#,
        r#"  "#,
        r#""#,
        r#"{"a":[1,2"#,
        r#"{"a":[1 2]}"#,
        r#"{"a":{"b":{"c":[[],{}]}}}"#,
        r#"{"#,
        r#"{"a""#,
        r#"{"a":"#,
        r#"{"a":[]"#,
        "{\"a\":\"é\"}",
        &deep,
        &deeper,
    ]
    .iter()
    .map(|t| t.as_bytes().to_vec())
    .collect();
    texts.extend([
        b"{\"a\":\"\xff\"}".to_vec(),
        b"{\"a\":\"\xc3\x28\"}".to_vec(),
        b"{\"a\":\"\xed\xa0\x80\"}".to_vec(),
        b"{\"a\":\"\xf4\x90\x80\x80\"}".to_vec(),
        b"{\"a\":\"\xe2\x82\"}".to_vec(),
        b"{\"a\" \xff}".to_vec(),
    ]);
    for t in &texts {
        let mut p = vec![0, 0, 2, 0];
        p.extend_from_slice(t);
        msgs.push(msg(1, 0, &p));
        p.push(0);
        msgs.push(msg(1, 1, &p));
        let mut inner = p.clone();
        inner.insert(5.min(inner.len() - 1), 0);
        msgs.push(msg(1, 0, &inner));
    }
    // Region-info replies: flags, cap_offset, capabilities (payload offset, id, next, nr_areas),
    // each cut to several lengths.
    type Chain<'a> = (u32, u32, &'a [(usize, u16, u32, u32)]);
    let chains: [Chain<'_>; 12] = [
        (8, 32, &[(32, 1, 0, 1)]),
        (8, 40, &[(40, 2, 0, 0)]),
        (8, 32, &[(32, 16, 0, 1)]),
        (8, 32, &[(32, 99, 0, 0)]),
        (8, 32, &[(32, 2, 56, 0), (56, 1, 0, 2)]),
        (8, 32, &[(32, 2, 40, 0), (40, 2, 0, 0)]),
        (8, 16, &[(32, 2, 0, 0)]),
        (8, 200, &[(32, 2, 0, 0)]),
        (8, 32, &[(32, 2, 32, 0)]),
        (8, 32, &[(32, 1, 0, 9)]),
        (0, 32, &[(32, 2, 0, 0)]),
        (8, 0, &[(32, 2, 0, 0)]),
    ];
    for (flags, cap_offset, caps) in chains {
        let mut p = [0u8; 32 + 96];
        p[4..8].copy_from_slice(&flags.to_le_bytes());
        p[12..16].copy_from_slice(&cap_offset.to_le_bytes());
        for &(at, id, next, n) in caps {
            p[at..at + 2].copy_from_slice(&id.to_le_bytes());
            p[at + 4..at + 8].copy_from_slice(&next.to_le_bytes());
            p[at + 8..at + 12].copy_from_slice(&n.to_le_bytes());
        }
        for len in [32, 40, 48, 64, 72, 96, 128] {
            msgs.push(msg(5, 1, &p[..len]));
        }
    }
    // DMA_LOGGING_REPORT replies: bitmap shorter than, equal to and longer than the bytes left, and a
    // page size of 0.
    for (length, page, extra) in [
        (0x10000u64, 0x1000u64, 16usize),
        (0x10000, 0x1000, 8),
        (0x10000, 0x1000, 4),
        (0x10000, 0, 8),
        (u64::MAX, 1, 8),
        (0x40001, 0x1000, 24),
    ] {
        let mut p = Vec::new();
        p.extend_from_slice(&(8u32 + 24 + extra as u32).to_le_bytes());
        p.extend_from_slice(&(8u32 | 0x10000).to_le_bytes());
        p.extend_from_slice(&0x1000u64.to_le_bytes());
        p.extend_from_slice(&length.to_le_bytes());
        p.extend_from_slice(&page.to_le_bytes());
        p.extend(std::iter::repeat_n(0xa5, extra));
        msgs.push(msg(16, 1, &p));
    }
    // Header oddities: bad type, error replies with payload, unknown command, NO_REPLY, a short
    // header, msg_size below 16, and a record longer than msg_size.
    msgs.push(msg(2, 2, &[0; 8]));
    msgs.push(msg(2, 0x21, &[1; 8]));
    msgs.push(msg(999, 0, &[1, 2, 3]));
    msgs.push(msg(10, 0x10, &[0; 16]));
    msgs.push(vec![1, 0, 2, 0, 8]);
    msgs.push(Vec::new());
    let mut small = msg(13, 0, &[]);
    small[4] = 8;
    msgs.push(small);
    let mut long = msg(13, 0, &[0; 4]);
    long[4] = 16;
    msgs.push(long);
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = PcapngWriter::new(file).unwrap();
    let c = w
        .add_connection("vfio-user:0:/tmp/edge.sock", Protocol::VfioUser)
        .unwrap();
    for (i, m) in msgs.iter().enumerate() {
        let ts = 1_700_000_000_000_000_000 + i as u64 * 1000;
        w.write_record(&rec(
            c,
            ts,
            Direction::ClientToServer,
            Protocol::VfioUser,
            0,
            m,
        ))
        .unwrap();
    }
    w.flush().unwrap();
}

/// VDUSE requests of every type and their responses, an unknown type, a response to nothing, and a
/// short record.
fn vduse_capture(path: &Path) {
    let mut w = PcapngWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    let c = w
        .add_connection("vduse:0:/dev/vduse/test", Protocol::Vduse)
        .unwrap();
    let mut t = 1_700_000_000_000_000_000u64;
    let mut put = |w: &mut PcapngWriter<std::fs::File>, dir, data: &[u8]| {
        t += 12_345;
        w.write_record(&rec(c, t, dir, Protocol::Vduse, 0, data))
            .unwrap();
    };
    let mut buf = [0u8; 152];
    let vq = VduseVqState::new_split(3, 0);
    let status = VduseDevStatus { status: 0x0f };
    let mut range = VduseIovaRange::default();
    range.start.set(0x1000);
    range.last.set(0x1fff);
    let mut ga = VduseVqGroupAsid::default();
    ga.group.set(1);
    ga.asid.set(2);
    let unknown = [7u8; 128];
    let requests = [
        RequestBody::GetVqState(&vq),
        RequestBody::SetStatus(&status),
        RequestBody::UpdateIotlb(&range),
        RequestBody::SetVqGroupAsid(&ga),
        RequestBody::Unknown {
            req_type: 9,
            raw: &unknown,
        },
    ];
    let answer = VduseVqState::new_split(3, 17);
    for (i, r) in requests.iter().enumerate() {
        let id = 40 + i as u32;
        encode_request(id, r, &mut buf).unwrap();
        put(&mut w, Direction::ClientToServer, &buf);
        let body = if i == 0 {
            ResponseBody::GetVqState(&answer)
        } else {
            ResponseBody::Raw(&[0; 128])
        };
        let result = if i == 1 {
            VDUSE_REQ_RESULT_FAILED
        } else {
            VDUSE_REQ_RESULT_OK
        };
        encode_response(id, result, &body, &mut buf).unwrap();
        put(&mut w, Direction::ServerToClient, &buf);
    }
    encode_response(
        99,
        VDUSE_REQ_RESULT_OK,
        &ResponseBody::Raw(&[0; 128]),
        &mut buf,
    )
    .unwrap();
    put(&mut w, Direction::ServerToClient, &buf);
    put(&mut w, Direction::ClientToServer, &buf[..100]);
    put(&mut w, Direction::ServerToClient, &[]);
    w.flush().unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Running the tools.

fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed: {stderr}");
    (stdout, stderr)
}

/// tshark's complaints, without its warning about running as root.
fn tshark_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("Running as user"))
        .collect()
}

fn tshark(lua: &Path, capture: &Path, args: &[&str]) -> String {
    tshark_with(&[lua], capture, args)
}

/// tshark with the plugin and any further Lua scripts.
fn tshark_with(scripts: &[&Path], capture: &Path, args: &[&str]) -> String {
    let mut c = Command::new("tshark");
    c.arg("-n");
    for s in scripts {
        c.arg("-X").arg(format!("lua_script:{}", s.display()));
    }
    c.arg("-r").arg(capture).args(args);
    let (out, err) = run(&mut c);
    let errors = tshark_errors(&err);
    assert!(
        errors.is_empty(),
        "tshark on {}: {errors:#?}",
        capture.display()
    );
    out
}

/// Frames matching a display filter, with the tree shown (-T fields) and hidden (tshark's one line
/// per frame, where the plugin adds only what Wireshark keeps): the two must agree.
fn count(lua: &Path, capture: &Path, filter: &str) -> usize {
    let shown = tshark(
        lua,
        capture,
        &["-Y", filter, "-T", "fields", "-e", "frame.number"],
    )
    .lines()
    .count();
    let hidden = tshark(lua, capture, &["-Y", filter]).lines().count();
    assert_eq!(
        hidden, shown,
        "frames matching {filter}, tree hidden vs shown"
    );
    shown
}

/// Compares one capture; returns (messages, malformed messages) for the summary.
fn check_capture(lua: &Path, capture: &Path) -> (usize, usize) {
    let name = capture.file_name().unwrap().to_string_lossy().into_owned();
    let (json, _) = run(Command::new(bin())
        .args(["read", "--format", "json", "--color", "never"])
        .arg(capture));
    let (text, _) = run(Command::new(bin())
        .args(["read", "--color", "never"])
        .arg(capture));
    let mut want: Vec<Expected> = json
        .lines()
        // Messages; not the `{"event":"fds",…}` lines saying what descriptors are.
        .filter(|l| l.starts_with('{') && !l.starts_with("{\"event\""))
        .map(|l| expected(&Parser::parse(l)))
        .collect();
    for line in text.lines().filter(|l| l.starts_with('#')) {
        let index: usize = line[1..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let body = ["→ ", "← "]
            .iter()
            .find_map(|a| line.split_once(a).map(|(_, b)| b))
            .unwrap();
        let body = match body.rfind(" rtt=") {
            Some(i) if !body[i + 5..].contains(' ') => &body[..i],
            _ => body,
        };
        want[index].text_line = Some(body.to_owned());
    }
    let mut universe: BTreeSet<String> = BTreeSet::new();
    let mut head_universe: BTreeSet<String> = BTreeSet::new();
    for w in &want {
        universe.extend(w.fields.keys().cloned());
        head_universe.extend(w.head.iter().cloned());
        universe.insert(format!("{}.time", w.proto));
        universe.insert(format!("{}.response_to", w.proto));
        universe.insert(format!("{}.response_in", w.proto));
    }
    // Two passes, so that requests show the frame of their reply; the filter makes tshark build the
    // tree (and so the connection number) in the first pass too.
    let mut args: Vec<String> = [
        "-2",
        "-Y",
        "vfio_user || vduse",
        "-T",
        "json",
        "-e",
        "frame.number",
        "-e",
        "_ws.col.Info",
        "-e",
        "_ws.expert.severity",
        "-e",
        "_ws.expert.message",
        "-e",
        "_ws.malformed",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for a in &universe {
        args.push("-e".into());
        args.push(a.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tshark(lua, capture, &args);
    let frames = Parser::parse(&out);
    let frames = frames.arr();
    assert_eq!(
        frames.len(),
        want.len(),
        "{name}: tshark shows {} frames, vfu-dump {} messages",
        frames.len(),
        want.len()
    );
    let layer = |f: &J, k: &str| -> Vec<String> {
        f.get("_source")
            .and_then(|s| s.get("layers"))
            .and_then(|l| l.get(k))
            .map_or(Vec::new(), |v| {
                v.arr().iter().map(|x| x.str().to_owned()).collect()
            })
    };
    let mut malformed = 0;
    let mut links = Vec::new();
    for (i, (f, w)) in frames.iter().zip(&want).enumerate() {
        let at = format!("{name} frame {}", i + 1);
        let messages = layer(f, "_ws.expert.message");
        assert!(
            !messages.iter().any(|m| m.contains("Lua Error")),
            "{at}: {messages:?}"
        );
        // An exception while dissecting shows as "[Malformed Packet …]"; the dissector's own expert
        // info for malformed messages (group Malformed) also sets `_ws.malformed`, so that is only
        // expected where vfu-dump says the message is malformed.
        assert!(
            !messages
                .iter()
                .any(|m| m.contains("Exception") || m.contains("Malformed Packet")),
            "{at}: {messages:?}"
        );
        let error = layer(f, "_ws.expert.severity")
            .iter()
            .any(|s| s.parse::<i64>().unwrap() >= PI_ERROR);
        let vduse_bad = w.proto == "vduse"
            && !w.fields.contains_key("vduse.dev_request.req_type")
            && !w.fields.contains_key("vduse.dev_response.request_id");
        let bad = w.malformed.is_some() || vduse_bad;
        assert_eq!(
            error, bad,
            "{at}: expert error {error}, vfu-dump malformed {:?}; experts {messages:?}",
            w.malformed
        );
        assert_eq!(
            !layer(f, "_ws.malformed").is_empty(),
            bad,
            "{at}: _ws.malformed"
        );
        if bad {
            malformed += 1;
        }
        if let Some(rule) = &w.malformed {
            assert!(
                messages.iter().any(|m| m.contains(&format!("[{rule} "))),
                "{at}: no expert info naming {rule}: {messages:?}"
            );
        }
        for a in &universe {
            if a.ends_with(".time") || a.ends_with(".response_to") || a.ends_with(".response_in") {
                continue;
            }
            // A malformed message has no body in vfu-dump: compare what precedes it.
            if bad
                && !w.head.contains(a)
                && (w.fields.contains_key(a) || !head_universe.contains(a))
            {
                continue;
            }
            let got = layer(f, a);
            let exp = w.fields.get(a).cloned().unwrap_or_default();
            let ok = got.len() == exp.len() && exp.iter().zip(&got).all(|(e, g)| matches(e, g));
            assert!(ok, "{at}: {a}: tshark {got:?}, vfu-dump {exp:?}");
        }
        let time = layer(f, &format!("{}.time", w.proto));
        let to = layer(f, &format!("{}.response_to", w.proto));
        match w.rtt_ns {
            Some(ns) => {
                assert_eq!(
                    time.len(),
                    1,
                    "{at}: no round-trip time, vfu-dump says {ns} ns"
                );
                let (s, frac) = time[0].split_once('.').unwrap();
                let got = s.parse::<i128>().unwrap() * 1_000_000_000
                    + format!("{frac:0<9}")[..9].parse::<i128>().unwrap();
                assert_eq!(got, ns, "{at}: round-trip time");
                assert_eq!(to.len(), 1, "{at}: no request link");
                links.push((i + 1, to[0].parse::<usize>().unwrap()));
            }
            None => assert!(
                time.is_empty() && to.is_empty(),
                "{at}: tshark pairs it ({to:?}), vfu-dump does not"
            ),
        }
        if w.proto == "vfio_user" {
            let info = layer(f, "_ws.col.Info").join("");
            let line = w
                .text_line
                .as_deref()
                .unwrap_or_else(|| panic!("{at}: no text line"));
            match (
                line.split_once("malformed: "),
                info.split_once("malformed: "),
            ) {
                (Some((lp, lr)), Some((ip, ir))) => {
                    assert_eq!(ip, lp, "{at}: Info column");
                    let tail = |s: &str| s.find(" at offset ").map(|i| s[i..].to_owned());
                    assert_eq!(
                        tail(ir),
                        tail(lr),
                        "{at}: Info column {info:?}, vfu-dump {line:?}"
                    );
                }
                _ => assert_eq!(info, line, "{at}: Info column"),
            }
        }
    }
    // The request of every reply links back to it.
    for (reply, request) in links {
        let f = &frames[request - 1];
        let rin = layer(f, &format!("{}.response_in", want[request - 1].proto));
        assert_eq!(
            rin,
            vec![reply.to_string()],
            "{name} frame {request}: response_in"
        );
    }
    (want.len(), malformed)
}

/// A directory removed when the test ends, passed or failed.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The generated plugin and the captures every test reads: `corpus/*.pcapng`, one capture of
/// `corpus/messages/*.bin`, the edge cases and VDUSE traffic, in a directory of their own.
struct Setup {
    dir: PathBuf,
    lua: PathBuf,
    captures: Vec<PathBuf>,
    _tmp: TempDir,
}

fn setup(test: &str) -> Setup {
    let tmp =
        TempDir(std::env::temp_dir().join(format!("vfu-dissector-{test}-{}", std::process::id())));
    let dir = tmp.0.clone();
    std::fs::create_dir_all(&dir).unwrap();
    let lua = dir.join("vfio_user.lua");
    let (script, _) = run(Command::new(bin()).arg("wireshark-dissector"));
    assert_eq!(
        script,
        vfu_dump::dissector::lua_source().unwrap(),
        "the command writes lua_source()"
    );
    std::fs::write(&lua, &script).unwrap();

    let mut captures: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcapng"))
        .collect();
    captures.sort();
    assert!(!captures.is_empty(), "no captures in corpus/");
    let messages = dir.join("messages.pcapng");
    if messages_capture(&messages) {
        captures.push(messages);
    }
    let edge = dir.join("edge.pcapng");
    edge_capture(&edge);
    captures.push(edge);
    let vduse = dir.join("vduse.pcapng");
    vduse_capture(&vduse);
    captures.push(vduse);
    Setup {
        dir,
        lua,
        captures,
        _tmp: tmp,
    }
}

#[test]
fn tshark_agrees_with_vfu_dump() {
    if !have_tshark("tshark_agrees_with_vfu_dump") {
        return;
    }
    let Setup {
        dir,
        lua,
        captures,
        _tmp,
    } = setup("agree");

    for c in &captures {
        let (n, bad) = check_capture(&lua, c);
        eprintln!(
            "{}: {n} messages agree ({bad} malformed, flagged as the codec flags them)",
            c.display()
        );
        // One pass (pairing as frames come), and two passes without a filter (no tree, so no field
        // values, in the first): no Lua error either way.
        for args in [&["-V"][..], &["-2", "-V"][..]] {
            let out = tshark(&lua, c, args);
            assert!(
                !out.contains("Lua Error"),
                "{} with {args:?}: Lua error",
                c.display()
            );
        }
    }

    // Display filters.
    let sample = corpus().join("lvu-sample-client.pcapng");
    let (json, _) = run(Command::new(bin())
        .args(["read", "--format", "json"])
        .arg(&sample));
    let objs: Vec<J> = json
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(Parser::parse)
        .collect();
    let n_cmd = |c: i128| {
        objs.iter()
            .filter(|o| o.get("cmd").is_some_and(|v| v.int() == c))
            .count()
    };
    assert_eq!(count(&lua, &sample, "vfio_user.cmd == 9"), n_cmd(9));
    assert_eq!(count(&lua, &sample, "vfio_user.cmd == 2"), n_cmd(2));
    let errors = objs
        .iter()
        .filter(|o| o.get("error").is_some_and(|v| v == &J::Bool(true)))
        .count();
    assert_eq!(count(&lua, &sample, "vfio_user.flags.error == 1"), errors);
    assert_eq!(
        count(&lua, &sample, "vfio_user.errno == 22"),
        objs.iter()
            .filter(|o| o.get("errno").is_some_and(|v| v.int() == 22))
            .count()
    );
    let messages = dir.join("messages.pcapng");
    if messages.exists() {
        assert_eq!(
            count(
                &lua,
                &messages,
                "vfio_user.dma_map.address == 0x100000000 || vfio_user.dma_map"
            ),
            count(&lua, &messages, "vfio_user.dma_map")
        );
        assert!(count(&lua, &messages, "vfio_user.dma_map") > 0);
        assert!(
            count(
                &lua,
                &messages,
                "vfio_user.device_feature.flags.feature == 2"
            ) > 0
        );
        assert!(
            count(
                &lua,
                &messages,
                "vfio_user.feature_mig_state.device_state == 3"
            ) > 0
        );
    }

    // The real VDUSE captures (Linux 6.12; corpus/README.md): filters on the request type, the
    // status and range a request carries, and the result of the responses.
    for name in ["vduse-6.12-blk.pcapng", "vduse-6.12-blk-example.pcapng"] {
        let c = corpus().join(name);
        for (filter, n) in [
            ("vduse.dev_request.req_type == 0", 1),
            ("vduse.dev_request.req_type == 1", 13),
            ("vduse.dev_request.req_type == 2", 2),
            ("vduse.dev_status.status == 0x0f", 2),
            ("vduse.iova_range.last == 0xffffffffffffffff", 2),
            ("vduse.dev_response.result == 0", 16),
            ("vduse.dev_response.result == 1", 0),
        ] {
            assert_eq!(count(&lua, &c, filter), n, "{name}: {filter}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The tree Wireshark does not show. With a hidden tree (tshark -q, -Y without -V, the packet list),
// the plugin adds only the items Wireshark keeps, which it learns as it goes: a filter, a tap or a
// custom column on any field must still find the field wherever a shown tree has it.

/// The plugin's protocols.
const PROTOCOLS: [&str; 3] = ["vfio_user", "vduse", "vduse_ioctl"];

/// Every field the plugin registers (`tshark -G fields`) and its protocols.
fn plugin_fields(lua: &Path) -> Vec<String> {
    let (out, _) = run(Command::new("tshark")
        .args(["-G", "fields", "-X"])
        .arg(format!("lua_script:{}", lua.display())));
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            match c.as_slice() {
                ["F", _, abbrev, _, proto, ..] if PROTOCOLS.contains(proto) => {
                    Some((*abbrev).to_owned())
                }
                ["P", _, abbrev, ..] if PROTOCOLS.contains(abbrev) => Some((*abbrev).to_owned()),
                _ => None,
            }
        })
        .collect();
    v.sort();
    v
}

/// A Lua script with one tap listener per display filter, each counting the frames that match it and
/// printing `COUNT\t<filter>\t<frames>` at the end (made when the first capture starts: the plugin's
/// fields do not exist yet while scripts load).
fn counter_script(path: &Path, filters: &[String]) {
    let mut s = String::from("local filters = {\n");
    for f in filters {
        s.push_str(&format!("  {f:?},\n"));
    }
    s.push_str(
        r#"}
local counts, made = {}, false
local P = Proto("vfu_test_count", "frames per filter")
function P.init()
  if made then return end
  made = true
  for _, f in ipairs(filters) do
    counts[f] = 0
    local l = Listener.new(nil, f)
    function l.packet() counts[f] = counts[f] + 1 end
    function l.reset() counts[f] = 0 end
    function l.draw() print("COUNT\t" .. f .. "\t" .. counts[f]) end
  end
end
"#,
    );
    std::fs::write(path, s).unwrap();
}

/// Frames matching each filter, as the counter script prints them.
fn counts(lua: &Path, counter: &Path, capture: &Path, args: &[&str]) -> BTreeMap<String, usize> {
    let out = tshark_with(&[lua, counter], capture, args);
    out.lines()
        .filter_map(|l| l.strip_prefix("COUNT\t"))
        .map(|l| {
            let (f, n) = l.rsplit_once('\t').unwrap();
            (f.to_owned(), n.parse().unwrap())
        })
        .collect()
}

/// Lua errors show as expert info.
const LUA_ERRORS: &str = "_ws.expert.message contains \"Lua Error\"";

#[test]
fn hidden_tree_keeps_every_referenced_field() {
    if !have_tshark("hidden_tree_keeps_every_referenced_field") {
        return;
    }
    let mut st = setup("hidden");
    // The traced captures too (VDUSE ioctl records), which the comparison with vfu-dump leaves out.
    if let Ok(dir) = std::fs::read_dir(corpus().join("trace")) {
        let mut traced: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pcapng"))
            .collect();
        traced.sort();
        st.captures.extend(traced);
    }
    let fields = plugin_fields(&st.lua);
    assert!(fields.len() > 250, "only {} fields", fields.len());
    assert!(fields.iter().any(|f| f == "vfio_user.dma_map.address"));
    let counter = st.dir.join("count.lua");
    let mut all = fields.clone();
    all.push(LUA_ERRORS.to_owned());
    // Fields in groups, so that each is asked for while most of its neighbours are not.
    const GROUPS: usize = 4;
    let group = |g: usize| -> Vec<String> {
        fields
            .iter()
            .enumerate()
            .filter(|(i, _)| i % GROUPS == g)
            .map(|(_, f)| f.clone())
            .chain([LUA_ERRORS.to_owned()])
            .collect()
    };
    for c in &st.captures {
        let name = c.file_name().unwrap().to_string_lossy().into_owned();
        for passes in [&[][..], &["-2"][..]] {
            // -T fields shows the tree (every item is added): what a hidden tree must match.
            counter_script(&counter, &all);
            let mut shown_args = passes.to_vec();
            shown_args.extend(["-T", "fields", "-e", "frame.number"]);
            let want = counts(&st.lua, &counter, c, &shown_args);
            assert_eq!(want.len(), all.len(), "{name}: counts {want:?}");
            assert_eq!(want[LUA_ERRORS], 0, "{name} {passes:?}: Lua errors");
            let groups: Vec<usize> = if passes.is_empty() {
                (0..GROUPS).collect()
            } else {
                vec![0]
            };
            for g in groups {
                let fs = group(g);
                counter_script(&counter, &fs);
                let mut hidden_args = passes.to_vec();
                hidden_args.push("-q");
                let got = counts(&st.lua, &counter, c, &hidden_args);
                for f in &fs {
                    assert_eq!(
                        got.get(f),
                        want.get(f),
                        "{name} {passes:?}: frames with {f}, tree hidden vs shown"
                    );
                }
            }
        }
        // With columns but a hidden tree (tshark's one line per frame): the same Info column.
        let hidden = tshark(&st.lua, c, &["-o", "gui.column.format:\"Info\",\"%i\""]);
        let shown = tshark(&st.lua, c, &["-T", "fields", "-e", "_ws.col.Info"]);
        let (hidden, shown): (Vec<&str>, Vec<&str>) =
            (hidden.lines().collect(), shown.lines().collect());
        assert_eq!(hidden.len(), shown.len(), "{name}: frames");
        for (i, (h, s)) in hidden.iter().zip(&shown).enumerate() {
            assert_eq!(
                h,
                s,
                "{name} frame {}: Info with the tree hidden vs shown",
                i + 1
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Records the capture cut: a pcapng Enhanced Packet Block whose captured length is below the
// original length (what a snaplen writes). Written by hand here, independent of vfu-dump's writer.

fn pcapng_header(linktype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    for v in [0x0A0D_0D0Au32, 28, 0x1A2B_3C4D] {
        f.extend(v.to_le_bytes());
    }
    f.extend(1u16.to_le_bytes());
    f.extend(0u16.to_le_bytes());
    f.extend((-1i64).to_le_bytes());
    f.extend(28u32.to_le_bytes());
    for v in [1u32, 20] {
        f.extend(v.to_le_bytes());
    }
    f.extend(linktype.to_le_bytes());
    f.extend(0u16.to_le_bytes());
    for v in [0u32, 20] {
        f.extend(v.to_le_bytes());
    }
    f
}

/// An EPB holding the exported-PDU tags (dissector name, direction) and the first `keep` bytes of
/// `msg`, with the whole message's length as the original length.
fn cut_epb(f: &mut Vec<u8>, ts_us: u64, proto: &str, dir: u32, msg: &[u8], keep: usize) {
    let mut tags = Vec::new();
    let padded = proto.len().div_ceil(4) * 4;
    tags.extend(12u16.to_be_bytes());
    tags.extend((padded as u16).to_be_bytes());
    tags.extend(proto.as_bytes());
    tags.resize(4 + padded, 0);
    tags.extend(35u16.to_be_bytes());
    tags.extend(4u16.to_be_bytes());
    tags.extend(dir.to_be_bytes());
    tags.extend([0u8; 4]);
    let mut data = tags.clone();
    data.extend(&msg[..keep]);
    let orig = tags.len() + msg.len();
    let pad = data.len().div_ceil(4) * 4;
    let len = 32 + pad as u32;
    for v in [
        6u32,
        len,
        0,
        (ts_us >> 32) as u32,
        ts_us as u32,
        data.len() as u32,
        orig as u32,
    ] {
        f.extend(v.to_le_bytes());
    }
    data.resize(pad, 0);
    f.extend(data);
    f.extend(len.to_le_bytes());
}

/// One record of a message the capture cut.
struct Cut {
    proto: &'static str,
    what: String,
    keep: usize,
    len: usize,
}

/// Every golden message and a VDUSE request and response, each cut at every length from 1 byte to
/// one short of the whole.
fn cut_capture(path: &Path) -> Vec<Cut> {
    let mut f = pcapng_header(252);
    let mut cuts = Vec::new();
    let mut ts = 1_700_000_000_000_000u64;
    let mut msgs: Vec<(&'static str, String, u32, Vec<u8>)> = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus().join("messages"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    for p in files {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let request = name.contains("-request");
        let server_cmd = name.starts_with("dma_read") || name.starts_with("dma_write");
        let dir = u32::from(request == server_cmd);
        msgs.push(("vfio_user", name, dir, std::fs::read(&p).unwrap()));
    }
    let mut buf = [0u8; 152];
    let vq = VduseVqState::new_split(3, 0);
    encode_request(41, &RequestBody::GetVqState(&vq), &mut buf).unwrap();
    msgs.push(("vduse", "vduse request".into(), 0, buf.to_vec()));
    let answer = VduseVqState::new_split(3, 17);
    encode_response(
        41,
        VDUSE_REQ_RESULT_OK,
        &ResponseBody::GetVqState(&answer),
        &mut buf,
    )
    .unwrap();
    msgs.push(("vduse", "vduse response".into(), 1, buf.to_vec()));
    // The first VDUSE ioctl records of a traced daemon.
    let traced = corpus().join("trace/vduse-6.12-qsd.pcapng");
    if traced.exists() {
        let mut r =
            vfu_dump::capture::open(&traced, &vfu_dump::capture::OpenOptions::default()).unwrap();
        let mut n = 0;
        while let Some(rec) = r.next_record().unwrap() {
            if rec.protocol == Protocol::VduseIoctl && n < 4 {
                n += 1;
                let dir = u32::from(rec.direction != Direction::ClientToServer);
                msgs.push((
                    "vduse_ioctl",
                    format!("ioctl record {n}"),
                    dir,
                    rec.data.to_vec(),
                ));
            }
        }
        assert!(n > 0, "no ioctl records in {}", traced.display());
    }
    for (proto, what, dir, m) in &msgs {
        for keep in 1..m.len() {
            ts += 10;
            cut_epb(&mut f, ts, proto, *dir, m, keep);
            cuts.push(Cut {
                proto,
                what: what.clone(),
                keep,
                len: m.len(),
            });
        }
    }
    std::fs::write(path, f).unwrap();
    cuts
}

#[test]
fn cut_records_show_what_the_capture_holds() {
    if !have_tshark("cut_records_show_what_the_capture_holds") {
        return;
    }
    let st = setup("cut");
    let cap = st.dir.join("cut.pcapng");
    let cuts = cut_capture(&cap);
    assert!(cuts.len() > 1000);
    let wanted = [
        "frame.number",
        "_ws.col.Info",
        "_ws.expert.message",
        "_ws.expert.severity",
        "_ws.malformed",
        "vfio_user.captured",
        "vduse.captured",
        "vduse_ioctl.captured",
        "vfio_user.id",
        "vfio_user.flags",
        "vfio_user.dma_map.argsz",
        "vfio_user.dma_map.flags",
        "vfio_user.dma_map.offset",
        "vfio_user.data",
        "vduse.dev_request.req_type",
    ];
    let mut args = vec!["-T", "json"];
    for w in wanted {
        args.extend(["-e", w]);
    }
    let out = tshark(&st.lua, &cap, &args);
    let frames = Parser::parse(&out);
    let frames = frames.arr();
    assert_eq!(frames.len(), cuts.len());
    let layer = |f: &J, k: &str| -> Vec<String> {
        f.get("_source")
            .and_then(|s| s.get("layers"))
            .and_then(|l| l.get(k))
            .map_or(Vec::new(), |v| {
                v.arr().iter().map(|x| x.str().to_owned()).collect()
            })
    };
    let mut infos = Vec::new();
    for (f, c) in frames.iter().zip(&cuts) {
        let at = format!("{} cut to {} of {} bytes", c.what, c.keep, c.len);
        let messages = layer(f, "_ws.expert.message");
        assert!(
            !messages.iter().any(|m| m.contains("Lua Error")
                || m.contains("Exception")
                || m.contains("Malformed")),
            "{at}: {messages:?}"
        );
        assert!(layer(f, "_ws.malformed").is_empty(), "{at}: malformed");
        assert!(
            !layer(f, "_ws.expert.severity")
                .iter()
                .any(|s| s.parse::<i64>().unwrap() >= PI_ERROR),
            "{at}: an error: {messages:?}"
        );
        let note = format!(
            "Message cut by the capture: {} of {} bytes captured",
            c.keep, c.len
        );
        assert!(messages.contains(&note), "{at}: {messages:?}");
        assert_eq!(
            layer(f, &format!("{}.captured", c.proto)),
            vec![c.keep.to_string()],
            "{at}"
        );
        let info = layer(f, "_ws.col.Info").join("");
        let tail = format!(" [cut: {} of {} bytes captured]", c.keep, c.len);
        assert!(info.ends_with(&tail), "{at}: Info {info:?}");
        infos.push(info.clone());
        // What the capture holds is shown: the header fields it holds whole, the body as far as it
        // goes.
        if c.proto == "vfio_user" {
            assert_eq!(
                layer(f, "vfio_user.id").len(),
                usize::from(c.keep >= 2),
                "{at}: msg_id"
            );
            assert_eq!(
                layer(f, "vfio_user.flags").len(),
                usize::from(c.keep >= 12),
                "{at}: flags"
            );
            if c.keep < 16 {
                assert!(
                    info.starts_with("cut inside the header"),
                    "{at}: Info {info:?}"
                );
            } else {
                assert!(info.starts_with("id="), "{at}: Info {info:?}");
            }
            if c.what == "dma_map-request.bin" {
                // DmaMap after the header: argsz, flags (4 bytes each), then offset (8).
                assert_eq!(
                    layer(f, "vfio_user.dma_map.argsz").len(),
                    usize::from(c.keep >= 20),
                    "{at}"
                );
                assert_eq!(
                    layer(f, "vfio_user.dma_map.flags").len(),
                    usize::from(c.keep >= 24),
                    "{at}"
                );
                assert_eq!(
                    layer(f, "vfio_user.dma_map.offset").len(),
                    usize::from(c.keep >= 32),
                    "{at}"
                );
            }
            if c.what == "region_write-request.bin" && c.keep > 32 {
                // RegionAccess (16 bytes) after the header, then the data: what was captured of it.
                let data = layer(f, "vfio_user.data");
                assert_eq!(data.len(), 1, "{at}: data");
                let hex: String = data[0].chars().filter(char::is_ascii_hexdigit).collect();
                assert_eq!(hex.len(), 2 * (c.keep - 32), "{at}: data {data:?}");
            }
        } else if c.what == "vduse request" {
            assert_eq!(
                layer(f, "vduse.dev_request.req_type").len(),
                usize::from(c.keep >= 4),
                "{at}: req_type"
            );
        }
    }
    // The same Info with the tree hidden, and no Lua error with it hidden either.
    let hidden = tshark(&st.lua, &cap, &["-o", "gui.column.format:\"Info\",\"%i\""]);
    let hidden: Vec<&str> = hidden.lines().collect();
    assert_eq!(hidden, infos, "Info with the tree hidden");
    let counter = st.dir.join("count.lua");
    counter_script(
        &counter,
        &[LUA_ERRORS.to_owned(), "vfio_user.captured".to_owned()],
    );
    let n = counts(&st.lua, &counter, &cap, &["-q"]);
    assert_eq!(n[LUA_ERRORS], 0);
    assert_eq!(
        n["vfio_user.captured"],
        cuts.iter().filter(|c| c.proto == "vfio_user").count()
    );
}
