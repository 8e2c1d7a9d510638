//! `vfu-dump wireshark-dissector`: a Wireshark/tshark Lua plugin generated from the codec's tables.
//!
//! The plugin registers the protocols `vfio_user`, `vduse` and `vduse_ioctl`, which the exported-PDU
//! records of the capture format (`docs/capture-format.md`) name in tag 12. Everything it knows about the wire
//! comes from the codec at generation time:
//!
//! - one `ProtoField` per field of every wire struct ([`vfu_codec::wire::WireStruct::FIELDS`]): abbreviation
//!   `vfio_user.<struct>.<field>` (`vduse.<struct>.<field>`), type from the field's scalar, display base
//!   and value names from its [`Show`]; the header's fields get the short names of
//!   `vfu-dump read --format json` (`vfio_user.id`, `vfio_user.cmd`, …, see [`HEADER_ALIASES`]);
//! - one bit field per [`FlagSpec`] of a flags word (`vfio_user.dma_map.flags.read`), masked by the spec's
//!   mask; one value-name table per [`Named`] table (commands, errnos, migration states, region and IRQ
//!   indices, …);
//! - which structs follow the header, as the table [`VFIO_USER_BODIES`] (mirroring the codec's decode;
//!   [`VDUSE`] for VDUSE), which a fixed Lua interpreter (`dissector/runtime.lua`) walks;
//! - the rule ids of the codec's decode errors, for the expert info of malformed messages.
//!
//! The Lua targets Wireshark 4.0 (Debian 12), which embeds Lua 5.2: bit operations use `bit32` and
//! 64-bit values that a Lua number cannot hold exactly are `UInt64` objects.
//!
//! Speed: when Wireshark shows the tree (the details pane, `tshark -V`, `-T fields`, `-T json`)
//! every item is added; when it does not (`tshark -q`, a display filter without `-V`, the packet
//! list) the runtime adds only the items Wireshark keeps (a field some filter, tap or column
//! references), which it learns per pass from the items Wireshark drops, and builds the Info column
//! only where there is column data. `scripts/bench-read.sh` times it against tshark alone.
//!
//! A record the capture cut (pcapng captured length below the original length) shows the fields it
//! holds whole and the data as far as it goes, with expert info, a `<proto>.captured` field and
//! ` [cut: N of M bytes captured]` in Info; it is not malformed.

mod names;
mod steps;
mod tables;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::{self, Write};

use vfu_codec::errno::ERRNO_NAMES;
use vfu_codec::header::{
    COMMAND_NAMES, VFIO_USER_F_ERROR, VFIO_USER_F_NO_REPLY, VFIO_USER_F_TYPE_COMMAND,
    VFIO_USER_F_TYPE_MASK, VFIO_USER_F_TYPE_REPLY,
};
use vfu_codec::vfio::caps::MAX_DEPTH;
use vfu_codec::wire::{Field, FlagKind, FlagSpec, Layout, Named, Show};
use vfu_codec::{Command, DataKind, Direction, HEADER_SIZE, Rule};

pub use names::{
    COMMENT_FDS, COMMENT_TRUNCATED, P2P_CLIENT_TO_SERVER, P2P_SERVER_TO_CLIENT, PROTO_VDUSE,
    PROTO_VDUSE_IOCTL, PROTO_VFIO_USER, data_abbrev, field_abbrev, ident, snake, struct_key,
};
pub use tables::{
    BodyRule, CapKind, Case, DATA_KINDS, FieldRef, HEADER, HEADER_ALIASES, RegionCaps, Step,
    UNKNOWN_BODY, UNKNOWN_CAP, VDUSE, VFIO_USER_BODIES, VduseRules, data_kind_text,
};

use names::{lua_num, lua_str, scalar_info, show_name};
use steps::{ref_key, steps_lua};

/// The fixed Lua that interprets the generated tables.
const RUNTIME: &str = include_str!("dissector/runtime.lua");

/// Writes the Lua dissector.
pub fn generate(out: &mut dyn Write) -> io::Result<()> {
    let lua = lua_source().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    out.write_all(lua.as_bytes())
}

/// The whole Lua plugin as text, or why it cannot be generated (a table the generator cannot express).
pub fn lua_source() -> Result<String, String> {
    let mut g = Gen::default();
    g.preamble();
    g.constants();
    g.protos();
    let vfio = vfio_user_layouts();
    let ioctl_head = [Layout::of::<crate::capture::ioctl::IoctlRecordHead>()];
    g.value_strings(
        vfio.iter()
            .chain(vfu_codec::vduse::LAYOUTS)
            .chain(ioctl_head.iter()),
    );
    for l in &vfio {
        g.layout(PROTO_VFIO_USER, l)?;
    }
    for l in vfu_codec::vduse::LAYOUTS {
        g.layout(PROTO_VDUSE, l)?;
    }
    g.layout(PROTO_VDUSE_IOCTL, &ioctl_head[0])?;
    g.extras()?;
    g.bodies()?;
    g.vduse()?;
    g.ioctls()?;
    g.out.push_str(RUNTIME);
    Ok(g.out)
}

/// Every vfio-user layout a message can hold: the header, then each struct the body table names, in
/// order of first appearance.
pub fn vfio_user_layouts() -> Vec<Layout> {
    fn add(v: &mut Vec<Layout>, l: Layout) {
        if !v.iter().any(|x| x.name == l.name) {
            v.push(l);
        }
    }
    fn walk(v: &mut Vec<Layout>, steps: &[Step]) {
        for s in steps {
            match *s {
                Step::Struct(l) => add(v, l),
                Step::Array { elem, .. } => add(v, elem),
                Step::IfFlag { then, .. } => walk(v, then),
                Step::IfNonEmpty(then) => walk(v, then),
                Step::Switch { cases, default, .. } => {
                    for c in cases {
                        walk(v, c.steps);
                    }
                    walk(v, default);
                }
                Step::RegionCaps(rc) => {
                    add(v, UNKNOWN_CAP);
                    for k in rc.kinds {
                        add(v, k.head);
                        if let Some((_, area)) = k.areas {
                            add(v, area);
                        }
                    }
                }
                Step::IoFdEntries { entries, .. } => {
                    for &e in entries {
                        add(v, e);
                    }
                }
                Step::Data { .. }
                | Step::Rest(_)
                | Step::StopIfEmpty
                | Step::Json
                | Step::ReportBitmap { .. } => {}
            }
        }
    }
    let mut v = vec![HEADER];
    for b in VFIO_USER_BODIES {
        walk(&mut v, b.request);
        walk(&mut v, b.reply);
    }
    walk(&mut v, UNKNOWN_BODY);
    v
}

#[derive(Default)]
struct Gen {
    out: String,
    /// Value-name tables by content, and their Lua index.
    vs: HashMap<Vec<(u64, &'static str)>, usize>,
    abbrevs: BTreeSet<String>,
}

impl Gen {
    fn line(&mut self, s: &str) {
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn claim(&mut self, abbrev: &str) -> Result<(), String> {
        if self.abbrevs.insert(abbrev.to_owned()) {
            Ok(())
        } else {
            Err(format!("two fields would be called {abbrev}"))
        }
    }

    fn preamble(&mut self) {
        let v = env!("CARGO_PKG_VERSION");
        let _ = write!(
            self.out,
            "\
-- vfio_user.lua: Wireshark/tshark dissectors for vfio-user and VDUSE captures.
--
-- Generated by `vfu-dump wireshark-dissector` (vfu {v}) from the vfu-codec field tables: every
-- field name, layout, flag bit and value name below comes from the codec. Do not edit; regenerate.
--
-- Install: copy to ~/.local/lib/wireshark/plugins/ (Wireshark and tshark load it at start), or run
--   tshark -X lua_script:vfio_user.lua -r capture.pcapng
-- Records must be exported PDUs (link type 252) naming the dissector `vfio_user` or `vduse` (tag 12)
-- with the direction in tag 35, as `vfu-dump` and its recorder write them.
-- Display filters: vfio_user.cmd == 2, vfio_user.errno, vfio_user.dma_map.address == 0x100000000,
--   vfio_user.flags.error == 1, vfio_user.device_feature.flags.feature == 2, vduse.dev_request.req_type == 1
--
-- Written for Wireshark 4.0 (Lua 5.2): bit operations use bit32, 64-bit values are UInt64.

local G = {{}}
"
        );
    }

    fn constants(&mut self) {
        let mut s = String::new();
        let _ = writeln!(s, "G.HEADER_SIZE = {HEADER_SIZE}");
        let _ = writeln!(
            s,
            "G.F = {{ TYPE_MASK = {VFIO_USER_F_TYPE_MASK}, TYPE_COMMAND = {VFIO_USER_F_TYPE_COMMAND}, TYPE_REPLY = {VFIO_USER_F_TYPE_REPLY}, NO_REPLY = {VFIO_USER_F_NO_REPLY}, ERROR = {VFIO_USER_F_ERROR} }}"
        );
        // Exported-PDU tag 35 values (Wireshark's pinfo.p2p_dir) and the names vfu-dump gives them.
        let (c2s, s2c) = (
            Direction::ClientToServer.short(),
            Direction::ServerToClient.short(),
        );
        let _ = writeln!(
            s,
            "G.P2P = {{ {c2s} = {P2P_CLIENT_TO_SERVER}, {s2c} = {P2P_SERVER_TO_CLIENT} }}\nG.DIR = {{ [{P2P_CLIENT_TO_SERVER}] = {}, [{P2P_SERVER_TO_CLIENT}] = {} }}",
            lua_str(c2s),
            lua_str(s2c)
        );
        let _ = writeln!(
            s,
            "G.COMMENT_FDS = {}\nG.COMMENT_TRUNCATED = {}",
            lua_str(COMMENT_FDS),
            lua_str(COMMENT_TRUNCATED)
        );
        let _ = writeln!(s, "G.MAX_JSON_DEPTH = {MAX_DEPTH}");
        let _ = writeln!(
            s,
            "G.COLUMN = {{ {PROTO_VFIO_USER} = {}, {PROTO_VDUSE} = {}, {PROTO_VDUSE_IOCTL} = {} }}",
            lua_str(crate::capture::Protocol::VfioUser.name()),
            lua_str("VDUSE"),
            lua_str("VDUSE")
        );
        // The codec's decode-error rules: id and spec section, keyed by the name the runtime uses.
        let rules: [(&str, Rule); 16] = [
            ("short_header", Rule::ShortHeader { have: 0 }),
            (
                "msg_size_below_header",
                Rule::MsgSizeBelowHeader { msg_size: 0 },
            ),
            (
                "msg_truncated",
                Rule::MsgTruncated {
                    msg_size: 0,
                    have: 0,
                },
            ),
            (
                "msg_overlong",
                Rule::MsgOverlong {
                    msg_size: 0,
                    have: 0,
                },
            ),
            ("bad_message_type", Rule::BadMessageType { bits: 0 }),
            (
                "short_body",
                Rule::ShortBody {
                    what: "",
                    need: 0,
                    have: 0,
                },
            ),
            (
                "count_exceeds_payload",
                Rule::CountExceedsPayload {
                    field: "",
                    count: 0,
                    have: 0,
                },
            ),
            ("json_not_terminated", Rule::JsonNotTerminated),
            ("json_syntax", Rule::JsonSyntax { reason: "" }),
            ("json_too_large", Rule::JsonTooLarge { what: "" }),
            (
                "cap_overlaps_fixed",
                Rule::CapOverlapsFixed { cap_offset: 0 },
            ),
            (
                "cap_out_of_bounds",
                Rule::CapOutOfBounds {
                    cap_offset: 0,
                    payload: 0,
                },
            ),
            (
                "cap_loop",
                Rule::CapLoop {
                    cap_offset: 0,
                    next: 0,
                },
            ),
            (
                "cap_truncated",
                Rule::CapTruncated {
                    id: 0,
                    need: 0,
                    have: 0,
                },
            ),
            (
                "io_fd_stride",
                Rule::IoFdStride {
                    argsz: 0,
                    count: 0,
                    have: 0,
                },
            ),
            ("vduse_size", Rule::VduseSize { have: 0 }),
        ];
        s.push_str("G.RULE = {\n");
        for (k, r) in rules {
            let _ = writeln!(
                s,
                "  {k} = {{ id = {}, spec = {} }},",
                lua_str(r.id()),
                lua_str(r.spec())
            );
        }
        // Not the codec's: the capture format's own rule for ioctl records.
        let _ = writeln!(
            s,
            "  ioctl_record = {{ id = \"ioctl-record\", spec = \"capture\" }},"
        );
        s.push_str("}\n");
        self.out.push_str(&s);
    }

    fn protos(&mut self) {
        self.line(&format!(
            "local P_VFIO = Proto({}, \"vfio-user\")\nlocal P_VDUSE = Proto({}, \"VDUSE\")\nlocal P_IOCTL = Proto({}, \"VDUSE ioctl\")\nG.proto = {{ {PROTO_VFIO_USER} = P_VFIO, {PROTO_VDUSE} = P_VDUSE, {PROTO_VDUSE_IOCTL} = P_IOCTL }}",
            lua_str(PROTO_VFIO_USER),
            lua_str(PROTO_VDUSE),
            lua_str(PROTO_VDUSE_IOCTL)
        ));
    }

    /// Index of a value-name table, interning it.
    fn vs_index(&mut self, table: &'static [Named]) -> usize {
        let key: Vec<(u64, &'static str)> = table.iter().map(|n| (n.value, n.name)).collect();
        let next = self.vs.len() + 1;
        *self.vs.entry(key).or_insert(next)
    }

    fn value_strings<'a>(&mut self, layouts: impl Iterator<Item = &'a Layout>) {
        let mut order: Vec<&'static [Named]> = vec![COMMAND_NAMES, ERRNO_NAMES];
        for l in layouts {
            for f in l.fields {
                match f.show {
                    Show::Enum(t) => order.push(t),
                    Show::Flags(specs) => {
                        for s in specs {
                            if let FlagKind::Value(t) = s.kind {
                                order.push(t);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        self.line("local VS = {}");
        for t in order {
            let before = self.vs.len();
            let i = self.vs_index(t);
            if self.vs.len() == before {
                continue;
            }
            let mut s = format!("VS[{i}] = {{");
            for n in t {
                let _ = write!(s, " [{}] = {},", n.value, lua_str(n.name));
            }
            s.push_str(" }");
            self.line(&s);
        }
        let cmd = self.vs_index(COMMAND_NAMES);
        let errno = self.vs_index(ERRNO_NAMES);
        let mut short = String::from("G.CMD_SHORT = {");
        for n in COMMAND_NAMES {
            if let Some(sn) = Command(n.value as u16).short_name() {
                let _ = write!(short, " [{}] = {},", n.value, lua_str(sn));
            }
        }
        short.push_str(" }");
        self.line(&format!(
            "G.VS_COMMAND = VS[{cmd}]\nG.VS_ERRNO = VS[{errno}]\n{short}"
        ));
        self.line("local S = {}");
    }

    fn flag_part(&mut self, parent: &str, width: u32, spec: &FlagSpec) -> Result<String, String> {
        let abbrev = format!("{parent}.{}", ident(spec.name));
        self.claim(&abbrev)?;
        let mlo = spec.mask & 0xffff_ffff;
        let mhi = spec.mask >> 32;
        let shift = if spec.mask == 0 {
            0
        } else {
            spec.mask.trailing_zeros()
        };
        let (kind, vs) = match spec.kind {
            FlagKind::Bit => ("bit", None),
            FlagKind::Value(t) => ("value", Some(self.vs_index(t))),
            FlagKind::Number => ("number", None),
        };
        // A mask wider than a Lua number cannot be given to ProtoField: the part is then shown only in
        // the summary.
        let pf = match lua_num(spec.mask) {
            Err(_) => "nil".to_owned(),
            Ok(mask) => match spec.kind {
                FlagKind::Bit => format!(
                    "ProtoField.bool({}, {}, {width}, nil, {mask})",
                    lua_str(&abbrev),
                    lua_str(spec.name)
                ),
                _ => format!(
                    "ProtoField.uint{width}({}, {}, base.DEC, {}, {mask})",
                    lua_str(&abbrev),
                    lua_str(spec.name),
                    vs.map_or("nil".to_owned(), |i| format!("VS[{i}]"))
                ),
            },
        };
        Ok(format!(
            "{{ name = {}, kind = \"{kind}\", mlo = {mlo}, mhi = {mhi}, shift = {shift}, vs = {}, pf = {pf} }}",
            lua_str(spec.name),
            vs.map_or("nil".to_owned(), |i| format!("VS[{i}]"))
        ))
    }

    fn field(&mut self, proto: &str, layout: &Layout, f: &Field) -> Result<String, String> {
        let abbrev = field_abbrev(proto, layout, f);
        self.claim(&abbrev)?;
        let key = format!("{}.{}", struct_key(proto, layout), f.name);
        let (kind, ctor, le, width) = scalar_info(f.scalar);
        let doc = f.doc.trim();
        let mut vs = None;
        let pf = match ctor {
            None => {
                if f.show == Show::Text {
                    format!(
                        "ProtoField.stringz({}, {}, nil, {})",
                        lua_str(&abbrev),
                        lua_str(f.name),
                        lua_str(doc)
                    )
                } else {
                    format!(
                        "ProtoField.bytes({}, {}, base.NONE, {})",
                        lua_str(&abbrev),
                        lua_str(f.name),
                        lua_str(doc)
                    )
                }
            }
            Some(ctor) => {
                let base = match f.show {
                    _ if kind == "i32" => "DEC",
                    Show::Dec | Show::Reserved | Show::Enum(_) | Show::Errno | Show::Command => {
                        "DEC"
                    }
                    Show::Hex | Show::Flags(_) | Show::Bytes | Show::Text => "HEX",
                };
                vs = match f.show {
                    Show::Enum(t) => Some(self.vs_index(t)),
                    Show::Errno => Some(self.vs_index(ERRNO_NAMES)),
                    Show::Command => Some(self.vs_index(COMMAND_NAMES)),
                    _ => None,
                };
                format!(
                    "ProtoField.{ctor}({}, {}, base.{base}, {}, nil, {})",
                    lua_str(&abbrev),
                    lua_str(f.name),
                    vs.map_or("nil".to_owned(), |i| format!("VS[{i}]")),
                    lua_str(doc)
                )
            }
        };
        let parts = match f.show {
            Show::Flags(specs) if width > 0 => {
                let mut p = String::from("{ ");
                for s in specs {
                    let part = self.flag_part(&abbrev, width, s)?;
                    p.push_str(&part);
                    p.push_str(", ");
                }
                p.push('}');
                p
            }
            _ => "nil".to_owned(),
        };
        Ok(format!(
            "    {{ key = {}, name = {}, off = {}, size = {}, kind = \"{kind}\", le = {le}, show = \"{}\", summary = {}, reply_only = {}, vs = {}, parts = {parts},\n      pf = {pf} }},",
            lua_str(&key),
            lua_str(f.name),
            f.offset,
            f.size,
            show_name(f.show),
            f.key,
            f.reply_only,
            vs.map_or("nil".to_owned(), |i| format!("VS[{i}]")),
        ))
    }

    fn layout(&mut self, proto: &str, l: &Layout) -> Result<(), String> {
        let key = struct_key(proto, l);
        let abbrev = format!("{proto}.{key}");
        self.claim(&abbrev)?;
        let mut s = format!(
            "S[{}] = {{ name = {}, spec = {}, size = {}, proto = {},\n  pf = ProtoField.none({}, {}, {}),\n  fields = {{\n",
            lua_str(&key),
            lua_str(l.name),
            lua_str(l.spec),
            l.size,
            lua_str(proto),
            lua_str(&abbrev),
            lua_str(l.name),
            lua_str(l.spec)
        );
        for f in l.fields {
            let line = self.field(proto, l, f)?;
            s.push_str(&line);
            s.push('\n');
        }
        s.push_str("  } }");
        self.line(&s);
        Ok(())
    }

    /// Fields that are not in any wire struct: direction, connection, descriptors, pairing, data runs.
    fn extras(&mut self) -> Result<(), String> {
        self.line("G.X = {}");
        for proto in [PROTO_VFIO_USER, PROTO_VDUSE, PROTO_VDUSE_IOCTL] {
            let defs: [(&str, String); 8] = [
                (
                    "dir",
                    format!(
                        "ProtoField.string(\"{proto}.dir\", \"Direction\", base.ASCII, \"c2s: client to server (VDUSE: kernel to daemon); s2c: server to client (VDUSE: daemon to kernel)\")"
                    ),
                ),
                (
                    "conn",
                    format!(
                        "ProtoField.uint32(\"{proto}.conn\", \"Connection\", base.DEC, nil, nil, \"The capture interface: one per socket connection\")"
                    ),
                ),
                (
                    "fds",
                    format!(
                        "ProtoField.uint32(\"{proto}.fds\", \"File descriptors\", base.DEC, nil, nil, \"Descriptors that travelled with the message (SCM_RIGHTS), from the record comment\")"
                    ),
                ),
                (
                    "truncated",
                    format!(
                        "ProtoField.bool(\"{proto}.truncated\", \"Truncated\", base.NONE, nil, nil, \"The stream ended inside this message\")"
                    ),
                ),
                (
                    "response_in",
                    format!(
                        "ProtoField.framenum(\"{proto}.response_in\", \"Response in\", base.NONE, frametype.RESPONSE, nil, \"The frame of the reply\")"
                    ),
                ),
                (
                    "response_to",
                    format!(
                        "ProtoField.framenum(\"{proto}.response_to\", \"Request in\", base.NONE, frametype.REQUEST, nil, \"The frame of the request\")"
                    ),
                ),
                (
                    "time",
                    format!(
                        "ProtoField.relative_time(\"{proto}.time\", \"Time\", \"Time since the request\")"
                    ),
                ),
                (
                    "captured",
                    format!(
                        "ProtoField.uint32(\"{proto}.captured\", \"Captured\", base.DEC, nil, nil, \"Bytes of the message the capture holds, on a message it cut (a record shorter than its original length)\")"
                    ),
                ),
            ];
            let mut s = format!("G.X.{proto} = {{\n");
            for (k, pf) in defs {
                self.claim(&format!("{proto}.{k}"))?;
                let _ = writeln!(s, "  {k} = {pf},");
            }
            if proto == PROTO_VDUSE_IOCTL {
                for (k, what) in [
                    ("arg_in", "The argument before the call"),
                    (
                        "arg_out",
                        "The argument after the call, as the kernel left it",
                    ),
                ] {
                    self.claim(&format!("{proto}.{k}"))?;
                    let _ = writeln!(
                        s,
                        "  {k} = ProtoField.bytes(\"{proto}.{k}\", {}, base.NONE, {}),",
                        lua_str(what),
                        lua_str(what)
                    );
                }
            }
            s.push('}');
            self.line(&s);
        }
        let mut s = String::from("G.DATA = {\n");
        for &kind in DATA_KINDS {
            let abbrev = data_abbrev(kind);
            self.claim(&abbrev)?;
            let key = snake(&format!("{kind:?}"));
            let (doc, word) = data_kind_text(kind);
            let pf = if kind == DataKind::Json {
                format!(
                    "ProtoField.string({}, {}, base.UNICODE, {})",
                    lua_str(&abbrev),
                    lua_str(&format!("{kind:?}")),
                    lua_str(doc)
                )
            } else {
                format!(
                    "ProtoField.bytes({}, {}, base.NONE, {})",
                    lua_str(&abbrev),
                    lua_str(&format!("{kind:?}")),
                    lua_str(doc)
                )
            };
            let _ = writeln!(
                s,
                "  {key} = {{ text = {}, word = {}, pf = {pf} }},",
                kind == DataKind::Json,
                word.map_or("nil".to_owned(), lua_str)
            );
        }
        s.push('}');
        self.line(&s);
        let h = &tables::HEADER_FIELDS;
        let k = |r: &FieldRef| ref_key(PROTO_VFIO_USER, r);
        self.line(&format!(
            "G.HDR = {{ struct = {}, id = {}, cmd = {}, size = {}, flags = {}, errno = {} }}",
            lua_str(&struct_key(PROTO_VFIO_USER, &HEADER)),
            lua_str(&k(&h.id)?),
            lua_str(&k(&h.command)?),
            lua_str(&k(&h.size)?),
            lua_str(&k(&h.flags)?),
            lua_str(&k(&h.errno)?)
        ));
        Ok(())
    }

    fn bodies(&mut self) -> Result<(), String> {
        let mut s = String::from("G.BODIES = {\n");
        for b in VFIO_USER_BODIES {
            let _ = writeln!(
                s,
                "  [{}] = {{ -- {}\n    request = {},\n    reply = {},\n  }},",
                b.command.0,
                b.command.name().unwrap_or("?"),
                steps_lua(b.request)?,
                steps_lua(b.reply)?
            );
        }
        s.push('}');
        self.line(&s);
        self.line(&format!("G.UNKNOWN_BODY = {}", steps_lua(UNKNOWN_BODY)?));
        Ok(())
    }

    fn vduse(&mut self) -> Result<(), String> {
        let v = &VDUSE;
        let p = PROTO_VDUSE;
        let members = |m: &[(u64, Layout)]| {
            let mut s = String::from("{");
            for (t, l) in m {
                let _ = write!(s, " [{t}] = {},", lua_str(&struct_key(p, l)));
            }
            s.push_str(" }");
            s
        };
        self.line(&format!(
            "G.VDUSE = {{ size = {}, request = {}, response = {}, req_type = {}, request_id = {}, response_id = {}, result = {}, result_ok = {}, union = {},\n  request_members = {},\n  response_members = {} }}",
            v.msg_size,
            lua_str(&struct_key(p, &v.request)),
            lua_str(&struct_key(p, &v.response)),
            lua_str(&ref_key(p, &v.req_type)?),
            lua_str(&ref_key(p, &v.request_id)?),
            lua_str(&ref_key(p, &v.response_id)?),
            lua_str(&ref_key(p, &v.result)?),
            v.result_ok,
            v.union_offset,
            members(v.request_members),
            members(v.response_members)
        ));
        let mut s = String::from("G.VIEWS = {");
        for (r, views) in v.views {
            let _ = write!(s, " [{}] = {{", lua_str(&ref_key(p, r)?));
            for l in *views {
                let _ = write!(s, " {},", lua_str(&struct_key(p, l)));
            }
            s.push_str(" },");
        }
        s.push_str(" }");
        self.line(&s);
        Ok(())
    }
}

impl Gen {
    /// The ioctl table: the record head's fields, and per request number its name and the argument's
    /// layout (a VDUSE struct, an integer or a device name) from the codec's
    /// [`vfu_codec::vduse::VDUSE_IOCTLS`].
    fn ioctls(&mut self) -> Result<(), String> {
        use crate::capture::ioctl::IoctlRecordHead;
        use vfu_codec::vduse::{IoctlArg, VDUSE_IOCTLS};
        let head = Layout::of::<IoctlRecordHead>();
        let p = PROTO_VDUSE_IOCTL;
        let k = |offset: usize| {
            ref_key(
                p,
                &FieldRef {
                    layout: head,
                    offset,
                },
            )
        };
        let mut s = format!(
            "G.IOCTL = {{ head = {}, request = {}, result = {}, arg_len = {}, flags = {} }}\nG.IOCTLS = {{\n",
            lua_str(&struct_key(p, &head)),
            lua_str(&k(0)?),
            lua_str(&k(4)?),
            lua_str(&k(8)?),
            lua_str(&k(12)?)
        );
        for i in VDUSE_IOCTLS {
            let arg = match i.arg {
                IoctlArg::Struct { layout, .. } => {
                    format!("s = {}", lua_str(&struct_key(PROTO_VDUSE, &layout)))
                }
                IoctlArg::Int { size, .. } => format!("int = {size}"),
                IoctlArg::Name => "text = true".to_owned(),
                IoctlArg::None => "none = true".to_owned(),
            };
            let _ = writeln!(
                s,
                "  [{}] = {{ name = {}, {arg} }},",
                i.number,
                lua_str(i.name)
            );
        }
        s.push('}');
        self.line(&s);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
