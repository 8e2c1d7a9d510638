//! Rendering VDUSE records (152-byte requests and responses) from the codec's field tables.

use std::io::{self, Write};

use std::fmt::Write as _;

use vfu_codec::Direction;
use vfu_codec::vduse::{
    self, RequestBody, ResponseBody, VDUSE_PAYLOAD_OFFSET, VDUSE_PAYLOAD_SIZE, VDUSE_REQ_RESULT_OK,
    VduseDevRequest, VduseDevResponse,
};
use vfu_codec::wire::Layout;

use super::{
    Meta, Style, arrow, fmt_duration, fmt_time, hex_field, json_decode_error, json_field, json_str,
    value_text, write_hex_plain,
};
use crate::options::OutputFormat;

/// The parts of a VDUSE message: the whole struct, then the union member in use (at offset 24).
fn parts(direction: Direction, d: &[u8], req_type: Option<u32>) -> Vec<(Layout, usize, &[u8])> {
    let mut v = Vec::new();
    match direction {
        Direction::ClientToServer => {
            if let Ok(r) = vduse::decode_request(d) {
                v.push((Layout::of::<VduseDevRequest>(), 0, d));
                let member: Option<(Layout, &[u8])> = match r.body {
                    RequestBody::GetVqState(m) => {
                        Some((Layout::of_val(m), zerocopy::IntoBytes::as_bytes(m)))
                    }
                    RequestBody::SetStatus(m) => {
                        Some((Layout::of_val(m), zerocopy::IntoBytes::as_bytes(m)))
                    }
                    RequestBody::UpdateIotlb(m) => {
                        Some((Layout::of_val(m), zerocopy::IntoBytes::as_bytes(m)))
                    }
                    RequestBody::SetVqGroupAsid(m) => {
                        Some((Layout::of_val(m), zerocopy::IntoBytes::as_bytes(m)))
                    }
                    _ => None,
                };
                if let Some((l, b)) = member {
                    v.push((l, 24, b));
                }
            }
        }
        Direction::ServerToClient => {
            if let Ok(r) = vduse::decode_response(d) {
                v.push((Layout::of::<VduseDevResponse>(), 0, d));
                if let Some(ResponseBody::GetVqState(m)) = req_type.map(|t| r.body(t)) {
                    v.push((Layout::of_val(m), 24, zerocopy::IntoBytes::as_bytes(m)));
                }
            }
        }
    }
    v
}

/// Writes one VDUSE record as a line (and verbose fields, an annotated hex dump), or as JSON.
/// `req_type` is the type of the request a response answers, when its request was seen (it says
/// which union member a response carries, and is the response's `cmd` in JSON); the round trip is
/// `meta.rtt_ns`.
pub fn write(
    out: &mut dyn Write,
    meta: &Meta,
    data: &[u8],
    req_type: Option<u32>,
    format: OutputFormat,
    style: &Style,
) -> io::Result<()> {
    let parts = parts(meta.direction, data, req_type);
    match format {
        OutputFormat::Text => write_text(out, meta, data, &parts, style),
        OutputFormat::Json => write_json(out, meta, data, req_type, &parts),
    }
}

fn write_text(
    out: &mut dyn Write,
    meta: &Meta,
    data: &[u8],
    parts: &[(Layout, usize, &[u8])],
    style: &Style,
) -> io::Result<()> {
    let mut line = format!(
        "#{:<5} {} c{} {} VDUSE ",
        meta.index,
        fmt_time(meta.ts_ns, style),
        meta.conn,
        arrow(meta.direction)
    );
    match meta.direction {
        Direction::ClientToServer => match vduse::decode_request(data) {
            Ok(r) => line.push_str(&r.to_string()),
            Err(e) => line.push_str(&format!("malformed request: {e}")),
        },
        Direction::ServerToClient => match vduse::decode_response(data) {
            Ok(r) => line.push_str(&format!(
                "response id {} {}",
                r.request_id.get(),
                if r.is_ok() {
                    "OK".to_owned()
                } else {
                    format!("FAILED ({})", r.result.get())
                }
            )),
            Err(e) => line.push_str(&format!("malformed response: {e}")),
        },
    }
    if meta.fds > 0 {
        line.push_str(&format!(" fds={}", meta.fds));
    }
    if let Some(rtt) = meta.rtt_ns {
        line.push_str(&format!(" rtt={}", fmt_duration(rtt)));
    }
    if meta.truncated {
        line.push_str(" [truncated]");
    }
    super::cut_text(meta, &mut line);
    writeln!(out, "{line}")?;
    if parts.is_empty() {
        // Malformed: the bytes as they are.
        if style.verbose || style.hex {
            write_hex_plain(out, data, 0)?;
        }
        return Ok(());
    }
    if style.verbose {
        for (l, off, b) in parts {
            writeln!(out, "    {} @{off:#x} ({})", l.name, l.spec)?;
            for f in l.fields {
                let mut s = String::new();
                value_text(f, b, &mut s);
                writeln!(out, "      {:<20} {s}", f.name)?;
            }
        }
    }
    if style.hex {
        write_hex_annotated(out, data, parts)?;
    }
    Ok(())
}

/// The annotated hex dump: a line per field of the struct, the union's member (when there is one) in
/// place of the union's bytes (`payload`), then what the member leaves of the union, in hex when it
/// is not zero.
fn write_hex_annotated(
    out: &mut dyn Write,
    data: &[u8],
    parts: &[(Layout, usize, &[u8])],
) -> io::Result<()> {
    let mut s = String::new();
    let member = parts.get(1);
    if let Some((outer, _, b)) = parts.first() {
        for f in outer.fields {
            if f.offset == VDUSE_PAYLOAD_OFFSET {
                continue;
            }
            hex_field(&mut s, 0, &format!("{}.{}", outer.name, f.name), f, b);
        }
    }
    let mut rest = VDUSE_PAYLOAD_OFFSET;
    if let Some((l, off, b)) = member {
        for f in l.fields {
            hex_field(&mut s, *off, &format!("{}.{}", l.name, f.name), f, b);
        }
        rest = off + l.size;
    }
    let end = VDUSE_PAYLOAD_OFFSET + VDUSE_PAYLOAD_SIZE;
    if rest < end && end <= data.len() {
        let tail = &data[rest..end];
        let zero = tail.iter().all(|&x| x == 0);
        s.push_str(&format!(
            "    {rest:06x} | payload{}, {} bytes{}\n",
            if member.is_some() {
                " after the member"
            } else {
                ""
            },
            tail.len(),
            if zero { ", all zero" } else { "" }
        ));
        out.write_all(s.as_bytes())?;
        s.clear();
        if !zero {
            write_hex_plain(out, tail, rest)?;
        }
    }
    out.write_all(s.as_bytes())
}

fn write_json(
    out: &mut dyn Write,
    meta: &Meta,
    data: &[u8],
    req_type: Option<u32>,
    parts: &[(Layout, usize, &[u8])],
) -> io::Result<()> {
    let mut s = String::new();
    super::json_head(meta, Some("vduse"), data.len(), &mut s);
    // The head, as for vfio-user: id (request_id), cmd (request type) and its name, type.
    let decoded = match meta.direction {
        Direction::ClientToServer => {
            vduse::decode_request(data).map(|r| (r.request_id(), Some(r.req_type()), None))
        }
        Direction::ServerToClient => vduse::decode_response(data)
            .map(|r| (r.request_id.get(), req_type, Some(r.result.get()))),
    };
    if let Ok((id, ty, result)) = &decoded {
        let _ = write!(s, ",\"id\":{id}");
        match ty {
            Some(t) => {
                let _ = write!(s, ",\"cmd\":{t},\"cmd_name\":");
                match vduse::request_type_name(*t) {
                    Some(n) => json_str(&mut s, n),
                    None => s.push_str("null"),
                }
            }
            None => s.push_str(",\"cmd\":null,\"cmd_name\":null"),
        }
        let kind = if result.is_some() {
            "response"
        } else {
            "request"
        };
        let _ = write!(s, ",\"type\":\"{kind}\"");
        if let Some(r) = result {
            let _ = write!(s, ",\"result\":{r},\"error\":{}", *r != VDUSE_REQ_RESULT_OK);
        }
    }
    if let Some(rtt) = meta.rtt_ns {
        let _ = write!(s, ",\"rtt_ns\":{rtt}");
    }
    match &decoded {
        Ok(_) => {
            s.push_str(",\"body\":[");
            for (i, (l, off, b)) in parts.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(
                    s,
                    "{{\"struct\":\"{}\",\"offset\":{off},\"fields\":{{",
                    l.name
                );
                for (j, f) in l.fields.iter().enumerate() {
                    if j > 0 {
                        s.push(',');
                    }
                    json_field(&mut s, f, b);
                }
                s.push_str("}}");
            }
            s.push(']');
        }
        Err(e) => json_decode_error(&mut s, e),
    }
    s.push_str("}\n");
    out.write_all(s.as_bytes())
}
