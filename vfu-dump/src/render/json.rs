//! [`write_json`]: one JSON object per vfio-user message (`--format json`); the field names are the
//! README's ("JSON output") and are stable. The helpers it shares with the VDUSE and ioctl renderers
//! (`json_str`, `json_field`, `json_head`, `json_cut`, `json_decode_error`) are in the parent module.

use std::fmt::Write as _;
use std::io::{self, Write};

use vfu_codec::wire::WireStruct;
use vfu_codec::{DataKind, DecodeError, Header, Message, Part, errno};

use super::{Meta, json_decode_error, json_field, json_head, json_str};

/// Writes one JSON object (one line) for a message. The field names are documented in the README
/// ("JSON output") and are stable.
pub fn write_json(
    out: &mut dyn Write,
    meta: &Meta,
    bytes: &[u8],
    decoded: &Result<Message<'_>, DecodeError>,
) -> io::Result<()> {
    let mut s = String::with_capacity(512);
    json_head(meta, None, bytes.len(), &mut s);
    if let Some(h) = vfu_codec::Header::peek(bytes) {
        let _ = write!(
            s,
            ",\"id\":{},\"cmd\":{},\"cmd_name\":{},\"type\":\"{}\",\"size\":{},\"flags\":{},\"no_reply\":{},\"error\":{},\"errno\":{}",
            h.msg_id.get(),
            h.command.get(),
            h.cmd()
                .short_name()
                .map_or("null".to_owned(), |n| format!("\"{n}\"")),
            match h.message_type() {
                Some(vfu_codec::MessageType::Command) => "command",
                Some(vfu_codec::MessageType::Reply) => "reply",
                None => "invalid",
            },
            h.msg_size.get(),
            h.flags.get(),
            h.no_reply(),
            h.is_error(),
            h.error_no.get()
        );
        if h.is_error() {
            s.push_str(",\"errno_name\":");
            match errno::name(h.error_no.get()) {
                Some(n) => json_str(&mut s, n),
                None => s.push_str("null"),
            }
        }
    }
    if let Some(rtt) = meta.rtt_ns {
        let _ = write!(s, ",\"rtt_ns\":{rtt}");
    }
    match decoded {
        Ok(m) => {
            // A cut message's fields beyond what was captured are null.
            let captured = meta.cut.map_or(usize::MAX, |c| c.captured);
            s.push_str(",\"body\":[");
            let mut first = true;
            m.for_each_part(|p| {
                if let Part::Struct { layout, .. } = p
                    && layout.name == Header::NAME
                {
                    return;
                }
                if !first {
                    s.push(',');
                }
                first = false;
                match p {
                    Part::Struct {
                        layout,
                        offset,
                        bytes,
                        index,
                    } => {
                        let _ = write!(s, "{{\"struct\":\"{}\",\"offset\":{offset}", layout.name);
                        if let Some(i) = index {
                            let _ = write!(s, ",\"index\":{i}");
                        }
                        s.push_str(",\"fields\":{");
                        for (i, f) in layout.fields.iter().enumerate() {
                            if i > 0 {
                                s.push(',');
                            }
                            if offset + f.offset + f.size > captured {
                                json_str(&mut s, f.name);
                                s.push_str(":null");
                            } else {
                                json_field(&mut s, f, bytes);
                            }
                        }
                        s.push_str("}}");
                    }
                    Part::Data {
                        kind,
                        offset,
                        bytes,
                    } => {
                        let _ = write!(
                            s,
                            "{{\"data\":\"{kind:?}\",\"offset\":{offset},\"len\":{}",
                            bytes.len()
                        );
                        if kind == DataKind::Json {
                            s.push_str(",\"text\":");
                            json_str(&mut s, &String::from_utf8_lossy(bytes));
                        }
                        s.push('}');
                    }
                }
            });
            s.push(']');
        }
        // Where the capture lacks the bytes that do not decode, there is no body to give.
        Err(e)
            if meta
                .cut
                .is_some_and(|c| e.offset >= c.captured || c.captured < vfu_codec::HEADER_SIZE) =>
        {
            s.push_str(",\"body\":null")
        }
        Err(e) => json_decode_error(&mut s, e),
    }
    s.push_str("}\n");
    out.write_all(s.as_bytes())
}
