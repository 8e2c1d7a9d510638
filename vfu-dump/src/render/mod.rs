//! Rendering decoded messages as text lines, verbose field trees, annotated hex dumps and JSON.
//!
//! Everything here is driven by the codec's field tables ([`vfu_codec::wire::WireStruct::FIELDS`]) and
//! [`vfu_codec::Message::for_each_part`]: no field name is spelled out in this module. VDUSE records
//! ([`vduse`]), findings ([`finding`]) and a live source's events ([`event`]) are rendered beside.

pub mod event;
pub mod finding;
pub mod ioctl;
pub mod json;
pub mod vduse;

use std::fmt::Write as _;
use std::io::{self, Write};

use owo_colors::OwoColorize;
use vfu_codec::wire::{Field, FlagKind, Named, Scalar, Show, WireStruct};
use vfu_codec::{DataKind, DecodeError, Direction, Header, Message, Part, errno};

/// Facts about one message that do not come from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Message number in the input (0-based).
    pub index: u64,
    /// Wall-clock time in nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Connection number.
    pub conn: u32,
    /// Which way it travelled.
    pub direction: Direction,
    /// File descriptors that travelled with it.
    pub fds: u32,
    /// Whether the stream ended inside this message.
    pub truncated: bool,
    /// When the capture holds only the first bytes of the message (a snap length): how many, of
    /// how many. The bytes rendered are then the whole message with zeros after the captured ones;
    /// the renderers show only what was captured of its data.
    pub cut: Option<Cut>,
    /// Round-trip time from its request, for replies whose request was seen.
    pub rtt_ns: Option<u64>,
}

/// A message a capture cut to its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Bytes the capture holds.
    pub captured: usize,
    /// The message's length.
    pub orig_len: usize,
}

/// How to render.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours.
    pub color: bool,
    /// Print every field (`-v`).
    pub verbose: bool,
    /// Add an annotated hex dump (`-x`).
    pub hex: bool,
    /// Print times relative to the first message instead of wall-clock.
    pub relative_to: Option<u64>,
}

/// Looks a value up in a name table.
fn name_of(table: &[Named], v: u64) -> Option<&'static str> {
    table.iter().find(|n| n.value == v).map(|n| n.name)
}

/// Writes a flags word as `NAME|NAME|0x100`, with multi-bit parts as `part=VALUE`.
pub fn flags_text(specs: &[vfu_codec::wire::FlagSpec], raw: u64, out: &mut String) {
    let mut covered = 0u64;
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !first {
            out.push('|');
        }
        first = false;
    };
    for s in specs {
        covered |= s.mask;
        match s.kind {
            FlagKind::Bit => {
                if raw & s.mask == s.mask {
                    sep(out);
                    out.push_str(s.name);
                }
            }
            FlagKind::Value(values) => {
                let v = s.extract(raw);
                sep(out);
                match name_of(values, v) {
                    Some(n) => out.push_str(n),
                    None => {
                        let _ = write!(out, "{}={v}", s.name);
                    }
                }
            }
            FlagKind::Number => {
                sep(out);
                let _ = write!(out, "{}={}", s.name, s.extract(raw));
            }
        }
    }
    let rest = raw & !covered;
    if rest != 0 {
        sep(out);
        let _ = write!(out, "{rest:#x}");
    }
    if first {
        out.push('0');
    }
}

/// The text form of one field's value: `0x1000`, `READ|WRITE`, `EINVAL (22)`, `RUNNING (2)`.
pub fn value_text(field: &Field, bytes: &[u8], out: &mut String) {
    let Some(v) = field.read_u64(bytes) else {
        match field.show {
            Show::Text => {
                let raw = field.bytes(bytes).unwrap_or(&[]);
                let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                let _ = write!(out, "{:?}", String::from_utf8_lossy(&raw[..end]));
            }
            _ => hex_bytes(field.bytes(bytes).unwrap_or(&[]), out),
        }
        return;
    };
    match field.show {
        Show::Dec | Show::Reserved => {
            let _ = write!(out, "{}", signed(field, v));
        }
        Show::Hex | Show::Bytes | Show::Text => {
            let _ = write!(out, "{v:#x}");
        }
        Show::Flags(specs) => flags_text(specs, v, out),
        Show::Enum(table) => match name_of(table, v) {
            Some(n) => {
                let _ = write!(out, "{n} ({v})");
            }
            None => {
                let _ = write!(out, "{v}");
            }
        },
        Show::Errno => match errno::name(v as u32) {
            Some(n) => {
                let _ = write!(out, "{n} ({v})");
            }
            None => {
                let _ = write!(out, "{v}");
            }
        },
        Show::Command => {
            let c = vfu_codec::Command(v as u16);
            match c.short_name() {
                Some(n) => {
                    let _ = write!(out, "{n} ({v})");
                }
                None => {
                    let _ = write!(out, "{v}");
                }
            }
        }
    }
}

fn signed(field: &Field, v: u64) -> i128 {
    match field.scalar {
        Scalar::I32(_) => i128::from(v as i64),
        _ => i128::from(v),
    }
}

/// The symbolic name of a value, when its field has one (flags, enums, errnos, commands).
pub fn value_name(field: &Field, v: u64) -> Option<String> {
    match field.show {
        Show::Flags(specs) => {
            let mut s = String::new();
            flags_text(specs, v, &mut s);
            Some(s)
        }
        Show::Enum(t) => name_of(t, v).map(str::to_owned),
        Show::Errno => errno::name(v as u32).map(str::to_owned),
        Show::Command => vfu_codec::Command(v as u16).short_name().map(str::to_owned),
        _ => None,
    }
}

fn hex_bytes(b: &[u8], out: &mut String) {
    for x in b {
        let _ = write!(out, "{x:02x}");
    }
}

/// A timestamp: wall-clock `14:20:40.595911717`, or seconds since `style.relative_to`.
pub fn fmt_time(ns: u64, style: &Style) -> String {
    match style.relative_to {
        Some(t0) => {
            let d = ns.saturating_sub(t0);
            format!("{}.{:09}", d / 1_000_000_000, d % 1_000_000_000)
        }
        None => {
            let secs = ns / 1_000_000_000;
            let day = secs % 86_400;
            format!(
                "{:02}:{:02}:{:02}.{:09}",
                day / 3600,
                day / 60 % 60,
                day % 60,
                ns % 1_000_000_000
            )
        }
    }
}

/// `1 connection`, `2 connections`: a count and its noun, the noun in the plural (`plural`) unless
/// the count is 1.
pub fn count_of(n: u64, one: &str, plural: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {plural}")
    }
}

/// Formats a duration in nanoseconds for people: `850ns`, `12.3µs`, `4.56ms`, `1.20s`.
pub fn fmt_duration(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", ns as f64 / 1e6)
    } else {
        format!("{:.2}s", ns as f64 / 1e9)
    }
}

/// The key fields of a message, `name=value` separated by spaces, from the fields marked `key` in the
/// tables; arrays are summarised by their count and data by its length.
pub fn key_fields(msg: &Message<'_>) -> String {
    key_fields_captured(msg, usize::MAX)
}

/// [`key_fields`] of a message a capture holds only the first `captured` bytes of: the fields it
/// lacks are left out, and capabilities text it holds only part of is not shown.
pub fn key_fields_captured(msg: &Message<'_>, captured: usize) -> String {
    let mut s = String::new();
    let mut last_array: Option<(&'static str, usize)> = None;
    let reply = msg.is_reply();
    let flush_array = |s: &mut String, a: &mut Option<(&'static str, usize)>| {
        if let Some((name, n)) = a.take() {
            let _ = write!(s, " {}[{n}]", name);
        }
    };
    msg.for_each_part(|p| match p {
        Part::Struct {
            layout,
            bytes,
            index,
            offset,
        } => {
            if layout.name == Header::NAME {
                return;
            }
            if let Some(i) = index {
                match &mut last_array {
                    Some((name, n)) if *name == layout.name => *n = i + 1,
                    _ => {
                        flush_array(&mut s, &mut last_array);
                        last_array = Some((layout.name, i + 1));
                    }
                }
                return;
            }
            flush_array(&mut s, &mut last_array);
            for f in layout
                .fields
                .iter()
                .filter(|f| f.key && (reply || !f.reply_only))
                .filter(|f| offset + f.offset + f.size <= captured)
            {
                let _ = write!(s, " {}=", f.name);
                value_text(f, bytes, &mut s);
            }
        }
        Part::Data {
            kind,
            bytes,
            offset,
        } => {
            flush_array(&mut s, &mut last_array);
            match kind {
                DataKind::Json if offset + bytes.len() > captured => {}
                DataKind::Json => {
                    let _ = write!(s, " caps={}", String::from_utf8_lossy(bytes));
                }
                DataKind::Nul => {}
                DataKind::Data => {
                    let _ = write!(s, " data={}B", bytes.len());
                }
                DataKind::Bitmap => {
                    let _ = write!(s, " bitmap={}B", bytes.len());
                }
                DataKind::CapArea => {
                    let _ = write!(s, " cap_area={}B", bytes.len());
                }
                DataKind::Raw => {
                    let _ = write!(s, " raw={}B", bytes.len());
                }
                DataKind::Trailing => {
                    let _ = write!(s, " trailing={}B", bytes.len());
                }
            }
        }
    });
    flush_array(&mut s, &mut last_array);
    s.trim_start().to_owned()
}

/// `→` client to server, `←` server to client.
pub fn arrow(d: Direction) -> &'static str {
    match d {
        Direction::ClientToServer => "→",
        Direction::ServerToClient => "←",
    }
}

/// Writes the one-line summary of a message (or of the bytes that failed to decode).
pub fn write_line(
    out: &mut dyn Write,
    meta: &Meta,
    bytes: &[u8],
    decoded: &Result<Message<'_>, DecodeError>,
    style: &Style,
) -> io::Result<()> {
    let time = fmt_time(meta.ts_ns, style);
    let mut line = String::with_capacity(160);
    let _ = write!(
        line,
        "#{:<5} {} c{} {} ",
        meta.index,
        time,
        meta.conn,
        arrow(meta.direction)
    );
    let hdr = vfu_codec::Header::peek(bytes);
    match (decoded, hdr) {
        (Ok(m), _) => {
            let h = m.header;
            let cmd = m.command();
            let name = cmd
                .short_name()
                .map_or_else(|| format!("UNKNOWN({})", cmd.0), str::to_owned);
            let kind = if m.is_reply() {
                if h.is_error() {
                    let e = h.error_no.get();
                    let en = errno::name(e).unwrap_or("?");
                    if style.color {
                        format!("{}", format!("{en}({e})").red().bold())
                    } else {
                        format!("{en}({e})")
                    }
                } else if style.color {
                    format!("{}", "ok".green())
                } else {
                    "ok".to_owned()
                }
            } else if h.no_reply() {
                "cmd,no-reply".to_owned()
            } else {
                "cmd".to_owned()
            };
            let name = if style.color {
                format!("{}", name.bold())
            } else {
                name
            };
            let _ = write!(
                line,
                "id={} {} {} {}B",
                h.msg_id.get(),
                name,
                kind,
                h.msg_size.get()
            );
            let keys = key_fields_captured(m, meta.cut.map_or(usize::MAX, |c| c.captured));
            if !keys.is_empty() {
                line.push(' ');
                line.push_str(&keys);
            }
        }
        // A capture cut inside the header: nothing to decode, and nothing malformed.
        (Err(_), _)
            if meta
                .cut
                .is_some_and(|c| c.captured < vfu_codec::HEADER_SIZE) =>
        {
            line.push_str("cut inside the header");
        }
        // A body that does not decode where the capture lacks its bytes: the header alone.
        (Err(e), Some(h)) if meta.cut.is_some_and(|c| e.offset >= c.captured) => {
            let _ = write!(
                line,
                "id={} {} {}B",
                h.msg_id.get(),
                h.cmd(),
                h.msg_size.get()
            );
        }
        (Err(e), hdr) => {
            if let Some(h) = hdr {
                let _ = write!(
                    line,
                    "id={} {} {}B ",
                    h.msg_id.get(),
                    h.cmd(),
                    h.msg_size.get()
                );
            }
            let msg = format!("malformed: {e}");
            if style.color {
                let _ = write!(line, "{}", msg.red());
            } else {
                line.push_str(&msg);
            }
        }
    }
    if meta.fds > 0 {
        let _ = write!(line, " fds={}", meta.fds);
    }
    if meta.truncated {
        line.push_str(" [truncated]");
    }
    cut_text(meta, &mut line);
    if let Some(rtt) = meta.rtt_ns {
        let _ = write!(line, " rtt={}", fmt_duration(rtt));
    }
    line.push('\n');
    out.write_all(line.as_bytes())?;
    let captured = &bytes[..meta
        .cut
        .map_or(bytes.len(), |c| c.captured.min(bytes.len()))];
    if let Ok(m) = decoded {
        if style.verbose {
            write_verbose_captured(out, m, captured.len(), style)?;
        }
        if style.hex {
            write_hex(out, m, captured, style)?;
        }
    } else if style.hex || style.verbose {
        write_hex_plain(out, captured, 0)?;
    }
    Ok(())
}

/// ` [cut: 262116 of 1048608 bytes captured]` for a message the capture cut.
pub fn cut_text(meta: &Meta, line: &mut String) {
    if let Some(c) = meta.cut {
        let _ = write!(
            line,
            " [cut: {} of {} bytes captured]",
            c.captured, c.orig_len
        );
    }
}

/// Writes every field of every part, one per line.
pub fn write_verbose(out: &mut dyn Write, msg: &Message<'_>, style: &Style) -> io::Result<()> {
    write_verbose_captured(out, msg, usize::MAX, style)
}

/// [`write_verbose`] of a message a capture holds only the first `captured` bytes of: fields
/// beyond them say `(not captured)`, and data runs say how much of them was captured.
pub fn write_verbose_captured(
    out: &mut dyn Write,
    msg: &Message<'_>,
    captured: usize,
    style: &Style,
) -> io::Result<()> {
    let mut s = String::new();
    msg.for_each_part(|p| match p {
        Part::Struct {
            layout,
            bytes,
            index,
            offset,
        } => {
            let title = match index {
                Some(i) => format!("{}[{i}]", layout.name),
                None => layout.name.to_owned(),
            };
            let _ = writeln!(
                s,
                "    {} @{offset:#x} ({})",
                if style.color {
                    format!("{}", title.cyan())
                } else {
                    title
                },
                layout.spec
            );
            for f in layout.fields {
                let _ = write!(s, "      {:<20} ", f.name);
                if offset + f.offset + f.size > captured {
                    s.push_str("(not captured)");
                } else {
                    value_text(f, bytes, &mut s);
                }
                s.push('\n');
            }
        }
        Part::Data {
            kind,
            offset,
            bytes,
        } => {
            let _ = write!(s, "    {kind:?} @{offset:#x} {} bytes", bytes.len());
            if offset + bytes.len() > captured {
                let _ = write!(s, " ({} captured)", captured.saturating_sub(offset));
            }
            if kind == DataKind::Json {
                let _ = write!(s, ": {}", String::from_utf8_lossy(bytes));
            }
            s.push('\n');
        }
    });
    out.write_all(s.as_bytes())
}

/// One line of an annotated hex dump: `offset | bytes (16 at most) | label = value`, for field `f`
/// of a struct at `offset` whose bytes are `b`.
pub fn hex_field(s: &mut String, offset: usize, label: &str, f: &Field, b: &[u8]) {
    let fb = f.bytes(b).unwrap_or(&[]);
    let mut hx = String::new();
    for (i, x) in fb.iter().enumerate() {
        if i == 16 {
            hx.push('…');
            break;
        }
        let _ = write!(hx, "{x:02x} ");
    }
    let _ = write!(
        s,
        "    {:06x} | {:<49}| {} = ",
        offset + f.offset,
        hx,
        label
    );
    value_text(f, b, s);
    s.push('\n');
}

/// Writes an annotated hex dump: one line per field (`offset | bytes | name = value`), and plain hex
/// for variable data. `captured` is the message's bytes as the capture holds them: all of them, or
/// (a message cut to a snap length) its first bytes, beyond which nothing is dumped.
pub fn write_hex(
    out: &mut dyn Write,
    msg: &Message<'_>,
    captured: &[u8],
    style: &Style,
) -> io::Result<()> {
    let cap = captured.len();
    let mut s = String::new();
    let mut err = Ok(());
    msg.for_each_part(|p| match p {
        Part::Struct {
            layout,
            bytes: b,
            offset,
            index,
        } => {
            for f in layout.fields {
                let label = match index {
                    Some(i) => format!("{}[{i}].{}", layout.name, f.name),
                    None => format!("{}.{}", layout.name, f.name),
                };
                if offset + f.offset + f.size > cap {
                    let _ = writeln!(
                        s,
                        "    {:06x} | {:<49}| {label} (not captured)",
                        offset + f.offset,
                        ""
                    );
                } else {
                    hex_field(&mut s, offset, &label, f, b);
                }
            }
        }
        Part::Data {
            kind,
            offset,
            bytes: b,
        } => {
            let _ = writeln!(s, "    {offset:06x} | {kind:?}, {} bytes", b.len());
            let shown = &b[..b.len().min(cap.saturating_sub(offset))];
            if err.is_ok() {
                out.write_all(s.as_bytes()).unwrap_or_else(|e| err = Err(e));
                s.clear();
                if let Err(e) = write_hex_plain(out, shown, offset) {
                    err = Err(e);
                }
            }
            if shown.len() < b.len() {
                let _ = writeln!(
                    s,
                    "    … {} bytes not in the capture",
                    b.len() - shown.len()
                );
            }
        }
    });
    err?;
    let _ = style;
    out.write_all(s.as_bytes())
}

/// A classic 16-bytes-per-line hex dump with offsets starting at `base`. Long runs are cut after
/// 64 KiB with a note, so a 1 MiB transfer does not flood the terminal.
pub fn write_hex_plain(out: &mut dyn Write, b: &[u8], base: usize) -> io::Result<()> {
    const LIMIT: usize = 64 * 1024;
    let mut s = String::new();
    for (i, chunk) in b[..b.len().min(LIMIT)].chunks(16).enumerate() {
        let _ = write!(s, "    {:06x} | ", base + i * 16);
        for x in chunk {
            let _ = write!(s, "{x:02x} ");
        }
        for _ in chunk.len()..16 {
            s.push_str("   ");
        }
        s.push_str("| ");
        for &x in chunk {
            s.push(if x.is_ascii_graphic() || x == b' ' {
                x as char
            } else {
                '.'
            });
        }
        s.push('\n');
    }
    if b.len() > LIMIT {
        let _ = writeln!(s, "    … {} more bytes", b.len() - LIMIT);
    }
    out.write_all(s.as_bytes())
}

/// Appends `v` as a JSON string literal.
pub fn json_str(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends the fields every JSON record object opens with: `{"index":…,"ts_ns":…,"conn":…,
/// "dir":…` (then `"protocol":…` when given: VDUSE and its ioctl records), `"fds":…,
/// "truncated":…,"len":…` (the bytes the record holds) and [`json_cut`]'s. `len` is the message's
/// length as it is laid out (`data.len()`).
pub fn json_head(meta: &Meta, protocol: Option<&str>, len: usize, s: &mut String) {
    let _ = write!(
        s,
        "{{\"index\":{},\"ts_ns\":{},\"conn\":{},\"dir\":\"{}\"",
        meta.index,
        meta.ts_ns,
        meta.conn,
        meta.direction.short()
    );
    if let Some(p) = protocol {
        let _ = write!(s, ",\"protocol\":\"{p}\"");
    }
    let _ = write!(
        s,
        ",\"fds\":{},\"truncated\":{},\"len\":{}",
        meta.fds,
        meta.truncated,
        meta.cut.map_or(len, |c| c.captured)
    );
    json_cut(meta, len, s);
}

/// Appends `,"cut":…,"orig_len":…` (after `len`, the bytes the record holds): whether the capture
/// cut the message to its first bytes, and the message's length.
pub fn json_cut(meta: &Meta, len: usize, s: &mut String) {
    let _ = write!(
        s,
        ",\"cut\":{},\"orig_len\":{}",
        meta.cut.is_some(),
        meta.cut.map_or(len, |c| c.orig_len)
    );
}

/// Appends `,"decode_error":{"rule":…,"offset":…,"message":…[,"needed":…]}`.
pub fn json_decode_error(s: &mut String, e: &DecodeError) {
    let _ = write!(
        s,
        ",\"decode_error\":{{\"rule\":\"{}\",\"offset\":{},\"message\":",
        e.rule.id(),
        e.offset
    );
    json_str(s, &e.rule.to_string());
    if let Some(n) = e.needed() {
        let _ = write!(s, ",\"needed\":{n}");
    }
    s.push('}');
}

/// Appends `"name":value` for one field (and `"name_name":"…"` for a named value).
pub fn json_field(out: &mut String, f: &Field, bytes: &[u8]) {
    json_str(out, f.name);
    out.push(':');
    match f.read_u64(bytes) {
        Some(v) => {
            let _ = write!(out, "{}", signed(f, v));
            if let Some(n) = value_name(f, v) {
                out.push(',');
                json_str(out, &format!("{}_name", f.name));
                out.push(':');
                json_str(out, &n);
            }
        }
        None => {
            let mut h = String::new();
            match f.show {
                Show::Text => value_text(f, bytes, &mut h),
                _ => hex_bytes(f.bytes(bytes).unwrap_or(&[]), &mut h),
            }
            let h = h.trim_matches('"').to_owned();
            json_str(out, &h);
        }
    }
}
