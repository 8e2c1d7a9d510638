//! Rendering VDUSE records (152-byte requests and responses) from the codec's field tables.

use std::io::{self, Write};

use vfu_codec::Direction;
use vfu_codec::vduse::{self, RequestBody, ResponseBody, VduseDevRequest, VduseDevResponse};
use vfu_codec::wire::{Layout, WireStruct};

use super::{Meta, Style, fmt_duration, json_str, value_text, write_hex_plain};
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

/// Writes one VDUSE record as a line (and verbose fields), or as JSON. `req_type` is the type of the
/// request a response answers, when its request was seen (it says which union member a response
/// carries); the round trip is `meta.rtt_ns`.
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
        OutputFormat::Text => {
            let arrow = if meta.direction == Direction::ClientToServer {
                "→"
            } else {
                "←"
            };
            let mut line = format!("#{:<5} c{} {arrow} VDUSE ", meta.index, meta.conn);
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
            if let Some(rtt) = meta.rtt_ns {
                line.push_str(&format!(" rtt={}", fmt_duration(rtt)));
            }
            if meta.truncated {
                line.push_str(" [truncated]");
            }
            writeln!(out, "{line}")?;
            if style.verbose {
                for (l, off, b) in &parts {
                    writeln!(out, "    {} @{off:#x} ({})", l.name, l.spec)?;
                    for f in l.fields {
                        let mut s = String::new();
                        value_text(f, b, &mut s);
                        writeln!(out, "      {:<20} {s}", f.name)?;
                    }
                }
            }
            if style.hex {
                write_hex_plain(out, data, 0)?;
            }
            Ok(())
        }
        OutputFormat::Json => {
            let mut s = format!(
                "{{\"index\":{},\"ts_ns\":{},\"conn\":{},\"dir\":\"{}\",\"protocol\":\"vduse\",\"truncated\":{},\"len\":{}",
                meta.index,
                meta.ts_ns,
                meta.conn,
                meta.direction.short(),
                meta.truncated,
                data.len()
            );
            if let Some(rtt) = meta.rtt_ns {
                s.push_str(&format!(",\"rtt_ns\":{rtt}"));
            }
            s.push_str(",\"body\":[");
            for (i, (l, off, b)) in parts.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(&format!(
                    "{{\"struct\":\"{}\",\"offset\":{off},\"fields\":{{",
                    l.name
                ));
                for (j, f) in l.fields.iter().enumerate() {
                    if j > 0 {
                        s.push(',');
                    }
                    json_str(&mut s, f.name);
                    s.push(':');
                    match f.read_u64(b) {
                        Some(v) => s.push_str(&v.to_string()),
                        None => {
                            let mut t = String::new();
                            value_text(f, b, &mut t);
                            json_str(&mut s, t.trim_matches('"'));
                        }
                    }
                }
                s.push_str("}}");
            }
            s.push_str("]}\n");
            out.write_all(s.as_bytes())
        }
    }
}

/// Keeps the struct tables' trait in scope for `Layout::of_val`.
#[allow(dead_code)]
fn _uses<T: WireStruct>() {}
