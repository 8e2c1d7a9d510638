//! Rendering VDUSE records (152-byte requests and responses) from the codec's field tables.

use std::io::{self, Write};

use vfu_codec::Direction;
use vfu_codec::vduse::{self, RequestBody, ResponseBody, VduseDevRequest, VduseDevResponse};
use vfu_codec::wire::{Layout, WireStruct};

use crate::capture::RecordRef;
use crate::cli::OutputFormat;
use crate::read::RoundTrips;
use crate::render::{self, Style, json_str, value_text};

/// What pairing told us about a VDUSE record.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pairing {
    /// Round trip, for a response whose request was seen.
    pub rtt_ns: Option<u64>,
    /// The type of the request a response answers.
    pub req_type: Option<u32>,
}

/// Whether a record is worth showing under `--errors`: malformed, truncated or a FAILED result.
pub fn is_bad(rec: &RecordRef<'_>) -> bool {
    rec.truncated
        || match rec.direction {
            Direction::ClientToServer => vduse::decode_request(rec.data).is_err(),
            Direction::ServerToClient => {
                vduse::decode_response(rec.data).map_or(true, |r| !r.is_ok())
            }
        }
}

/// Pairs requests and responses by `request_id`.
pub fn observe(rec: &RecordRef<'_>, rtts: &mut RoundTrips) -> Pairing {
    match rec.direction {
        Direction::ClientToServer => {
            if let Ok(r) = vduse::decode_request(rec.data) {
                rtts.observe_vduse(rec.conn, r.request_id(), rec.ts_ns, Some(r.req_type()));
            }
            Pairing::default()
        }
        Direction::ServerToClient => match vduse::decode_response(rec.data) {
            Ok(r) => match rtts.observe_vduse(rec.conn, r.request_id.get(), rec.ts_ns, None) {
                Some((rtt, ty)) => Pairing {
                    rtt_ns: Some(rtt),
                    req_type: Some(ty),
                },
                None => Pairing::default(),
            },
            Err(_) => Pairing::default(),
        },
    }
}

/// The parts of a VDUSE message: the whole struct, then the union member in use (at offset 24).
fn parts<'a>(rec: &RecordRef<'a>, pairing: &Pairing) -> Vec<(Layout, usize, &'a [u8])> {
    let mut v = Vec::new();
    let d = rec.data;
    match rec.direction {
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
                if let Some(ResponseBody::GetVqState(m)) = pairing.req_type.map(|t| r.body(t)) {
                    v.push((Layout::of_val(m), 24, zerocopy::IntoBytes::as_bytes(m)));
                }
            }
        }
    }
    v
}

/// Writes one VDUSE record as a line (and verbose fields), or as JSON.
pub fn write(
    out: &mut dyn Write,
    rec: &RecordRef<'_>,
    pairing: &Pairing,
    format: OutputFormat,
    style: &Style,
) -> io::Result<()> {
    let parts = parts(rec, pairing);
    match format {
        OutputFormat::Text => {
            let arrow = if rec.direction == Direction::ClientToServer {
                "→"
            } else {
                "←"
            };
            let mut line = format!("#{:<5} c{} {arrow} VDUSE ", rec.index, rec.conn);
            match rec.direction {
                Direction::ClientToServer => match vduse::decode_request(rec.data) {
                    Ok(r) => line.push_str(&r.to_string()),
                    Err(e) => line.push_str(&format!("malformed request: {e}")),
                },
                Direction::ServerToClient => match vduse::decode_response(rec.data) {
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
            if let Some(rtt) = pairing.rtt_ns {
                line.push_str(&format!(" rtt={}", render::fmt_duration(rtt)));
            }
            if rec.truncated {
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
                render::write_hex_plain(out, rec.data, 0)?;
            }
            Ok(())
        }
        OutputFormat::Json => {
            let mut s = format!(
                "{{\"index\":{},\"ts_ns\":{},\"conn\":{},\"dir\":\"{}\",\"protocol\":\"vduse\",\"truncated\":{},\"len\":{}",
                rec.index,
                rec.ts_ns,
                rec.conn,
                rec.direction.short(),
                rec.truncated,
                rec.data.len()
            );
            if let Some(rtt) = pairing.rtt_ns {
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
