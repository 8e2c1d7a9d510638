//! The names the dissector gives things (protocols, fields, value tables) and how values are
//! written in Lua.

use std::fmt::Write as _;

use vfu_codec::DataKind;
use vfu_codec::wire::{Endian, Field, Layout, Scalar, Show};

use super::tables::{HEADER, HEADER_ALIASES};

/// The protocol (and dissector) name of vfio-user records: exported-PDU tag 12 of the capture format.
pub const PROTO_VFIO_USER: &str = "vfio_user";
/// The protocol (and dissector) name of VDUSE records.
pub const PROTO_VDUSE: &str = "vduse";
/// The protocol (and dissector) name of VDUSE ioctl records ([`crate::capture::ioctl`]).
pub const PROTO_VDUSE_IOCTL: &str = "vduse_ioctl";
/// The EPB comment words of the capture format: descriptor count and truncated record.
pub const COMMENT_FDS: &str = "fds=";
/// See [`COMMENT_FDS`].
pub const COMMENT_TRUNCATED: &str = "truncated";
/// Exported-PDU tag 35 (P2P direction, `pinfo.p2p_dir` in Wireshark) of a client-to-server record
/// (VDUSE: a request, kernel to daemon).
pub const P2P_CLIENT_TO_SERVER: u32 = 0;
/// Tag 35 of a server-to-client record (VDUSE: a response).
pub const P2P_SERVER_TO_CLIENT: u32 = 1;

/// `DmaMap` → `dma_map`.
pub fn snake(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 4);
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

/// A name as a display-filter label: lower case, runs of other characters as one `_`.
pub fn ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('_') {
            s.push('_');
        }
    }
    s.trim_matches('_').to_owned()
}

/// The key of a struct within its protocol: `DmaMap` → `dma_map`, `VduseDevRequest` → `dev_request`.
pub fn struct_key(proto: &str, layout: &Layout) -> String {
    let s = snake(layout.name);
    match s.strip_prefix(proto).and_then(|r| r.strip_prefix('_')) {
        Some(rest) if !rest.is_empty() => rest.to_owned(),
        _ => s,
    }
}

/// The display-filter name of a struct field: `vfio_user.dma_map.address`, or the header's short names.
pub fn field_abbrev(proto: &str, layout: &Layout, field: &Field) -> String {
    if proto == PROTO_VFIO_USER && layout.name == HEADER.name {
        for (r, alias) in HEADER_ALIASES {
            if r.offset == field.offset {
                return format!("{proto}.{alias}");
            }
        }
    }
    format!("{proto}.{}.{}", struct_key(proto, layout), field.name)
}

/// The display-filter name of a run of data bytes: `vfio_user.data`, `vfio_user.json`, `vfio_user.cap_area`.
pub fn data_abbrev(kind: DataKind) -> String {
    format!("{PROTO_VFIO_USER}.{}", snake(&format!("{kind:?}")))
}

/// A Lua string literal.
pub(super) fn lua_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(o, "\\{:03}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Largest integer a Lua 5.2 number (a double) holds exactly.
pub(super) const LUA_EXACT: u64 = 1 << 53;

/// A non-negative integer as a Lua number literal, if exact.
pub(super) fn lua_num(v: u64) -> Result<String, String> {
    if v <= LUA_EXACT {
        Ok(v.to_string())
    } else {
        Err(format!("{v:#x} does not fit a Lua 5.2 number"))
    }
}

pub(super) fn scalar_info(s: Scalar) -> (&'static str, Option<&'static str>, bool, u32) {
    // (kind, ProtoField constructor, little-endian, bit width)
    match s {
        Scalar::U8 => ("u8", Some("uint8"), true, 8),
        Scalar::U16(e) => ("u16", Some("uint16"), e == Endian::Little, 16),
        Scalar::U32(e) => ("u32", Some("uint32"), e == Endian::Little, 32),
        Scalar::I32(e) => ("i32", Some("int32"), e == Endian::Little, 32),
        Scalar::U64(e) => ("u64", Some("uint64"), e == Endian::Little, 64),
        Scalar::Bytes => ("bytes", None, true, 0),
    }
}

pub(super) fn show_name(s: Show) -> &'static str {
    match s {
        Show::Dec => "dec",
        Show::Hex => "hex",
        Show::Flags(_) => "flags",
        Show::Enum(_) => "enum",
        Show::Errno => "errno",
        Show::Command => "command",
        Show::Bytes => "bytes",
        Show::Text => "text",
        Show::Reserved => "reserved",
    }
}
