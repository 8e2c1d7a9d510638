//! Rendering VDUSE ioctl records ([`crate::capture::ioctl`]) from the codec's ioctl table
//! ([`vfu_codec::vduse::VDUSE_IOCTLS`]) and field tables: text (a line, every field with `-v`, hex
//! with `-x`) and JSON.

use std::io::{self, Write};

use vfu_codec::vduse::{IoctlArg, vduse_ioctl};
use vfu_codec::wire::{Layout, Show};

use super::{Meta, Style, arrow, fmt_time, json_str, value_text, write_hex_plain};
use crate::capture::ioctl::IoctlRecord;
use crate::options::OutputFormat;

/// Whether a record is worth showing under `--errors`: malformed, truncated or a failed call.
pub fn is_bad(data: &[u8], truncated: bool) -> bool {
    truncated || IoctlRecord::parse(data).map_or(true, |r| r.result < 0)
}

/// The ioctl's name (`VDUSE_VQ_GET_INFO`), or its number in hex.
fn name(request: u32) -> String {
    vduse_ioctl(request).map_or_else(|| format!("ioctl {request:#010x}"), |i| i.name.to_owned())
}

/// `= 0`, `= 7` or `= -22 EINVAL`.
fn result_text(result: i32) -> String {
    if result < 0 {
        let e = result.unsigned_abs();
        match vfu_codec::errno::name(e) {
            Some(n) => format!("= -{e} {n}"),
            None => format!("= -{e}"),
        }
    } else {
        format!("= {result}")
    }
}

/// The argument's fields as (name, text), reserved ones left out unless `all`.
fn fields(request: u32, arg: &[u8], all: bool) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    match vduse_ioctl(request).map(|i| i.arg) {
        Some(IoctlArg::Struct { layout, tail_len }) => {
            v.extend(struct_fields(&layout, arg, all));
            // The variable tail (config space bytes), in hex.
            if tail_len.is_some() && arg.len() > layout.size {
                let mut s = String::new();
                for b in &arg[layout.size..] {
                    s.push_str(&format!("{b:02x}"));
                }
                v.push(("tail", s));
            }
        }
        Some(IoctlArg::Int { size, .. }) => {
            let mut b = [0u8; 8];
            let n = size.min(arg.len()).min(8);
            b[..n].copy_from_slice(&arg[..n]);
            v.push(("value", u64::from_ne_bytes(b).to_string()));
        }
        Some(IoctlArg::Name) => {
            let end = arg.iter().position(|&c| c == 0).unwrap_or(arg.len());
            v.push((
                "name",
                format!("{:?}", String::from_utf8_lossy(&arg[..end])),
            ));
        }
        Some(IoctlArg::None) => {}
        None if !arg.is_empty() => {
            let mut s = String::new();
            for b in arg {
                s.push_str(&format!("{b:02x}"));
            }
            v.push(("bytes", s));
        }
        None => {}
    }
    v
}

fn struct_fields(layout: &Layout, arg: &[u8], all: bool) -> Vec<(&'static str, String)> {
    layout
        .fields
        .iter()
        .filter(|f| all || !matches!(f.show, Show::Reserved))
        .filter(|f| f.offset + f.size <= arg.len())
        .map(|f| {
            let mut s = String::new();
            value_text(f, arg, &mut s);
            (f.name, s)
        })
        .collect()
}

/// Writes one ioctl record as a line (and verbose fields, hex), or as JSON.
pub fn write(
    out: &mut dyn Write,
    meta: &Meta,
    data: &[u8],
    format: OutputFormat,
    style: &Style,
) -> io::Result<()> {
    let parsed = IoctlRecord::parse(data);
    match format {
        OutputFormat::Text => {
            let mut line = format!(
                "#{:<5} {} c{} {} VDUSE ",
                meta.index,
                fmt_time(meta.ts_ns, style),
                meta.conn,
                arrow(meta.direction)
            );
            match &parsed {
                Ok(r) => {
                    line.push_str(&format!("{} {}", name(r.request), result_text(r.result)));
                    // The argument as the kernel left it when it wrote one back, else as it went in.
                    if let Some(arg) = r.arg_out.or(r.arg_in) {
                        for (n, v) in fields(r.request, arg, false) {
                            line.push_str(&format!(" {n}={v}"));
                        }
                    }
                    if meta.fds > 0 {
                        line.push_str(&format!(" fds={}", meta.fds));
                    }
                }
                Err(e) => line.push_str(&format!("malformed ioctl record: {e}")),
            }
            if meta.truncated {
                line.push_str(" [truncated]");
            }
            super::cut_text(meta, &mut line);
            writeln!(out, "{line}")?;
            if style.verbose
                && let Ok(r) = &parsed
            {
                for (which, arg) in [("in", r.arg_in), ("out", r.arg_out)] {
                    if let Some(arg) = arg {
                        writeln!(out, "    argument {which} ({} bytes)", arg.len())?;
                        for (n, v) in fields(r.request, arg, true) {
                            writeln!(out, "      {n:<20} {v}")?;
                        }
                    }
                }
            }
            if style.hex {
                write_hex_plain(out, data, 0)?;
            }
            Ok(())
        }
        OutputFormat::Json => {
            let mut s = String::new();
            super::json_head(meta, Some("vduse-ioctl"), data.len(), &mut s);
            match &parsed {
                Ok(r) => {
                    s.push_str(&format!(",\"request\":{},\"ioctl\":", r.request));
                    match vduse_ioctl(r.request) {
                        Some(i) => json_str(&mut s, i.name),
                        None => s.push_str("null"),
                    }
                    s.push_str(&format!(",\"result\":{}", r.result));
                    if r.result < 0
                        && let Some(n) = vfu_codec::errno::name(r.result.unsigned_abs())
                    {
                        s.push_str(",\"errno_name\":");
                        json_str(&mut s, n);
                    }
                    for (which, arg) in [("in", r.arg_in), ("out", r.arg_out)] {
                        if let Some(arg) = arg {
                            s.push_str(&format!(",\"{which}\":{{"));
                            for (j, (n, v)) in fields(r.request, arg, true).iter().enumerate() {
                                if j > 0 {
                                    s.push(',');
                                }
                                json_str(&mut s, n);
                                s.push(':');
                                json_str(&mut s, v.trim_matches('"'));
                            }
                            s.push('}');
                        }
                    }
                }
                Err(e) => {
                    s.push_str(&format!(
                        ",\"decode_error\":{{\"rule\":\"ioctl-record\",\"offset\":{},\"message\":",
                        e.offset
                    ));
                    json_str(&mut s, &e.message);
                    s.push('}');
                }
            }
            s.push_str("}\n");
            out.write_all(s.as_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vfu_codec::Direction;
    use vfu_codec::vduse::{VDUSE_CREATE_DEV, VDUSE_GET_API_VERSION};

    fn render(data: &[u8], format: OutputFormat, verbose: bool) -> String {
        let meta = Meta {
            index: 3,
            ts_ns: 5,
            conn: 1,
            direction: Direction::ServerToClient,
            fds: 0,
            truncated: false,
            cut: None,
            rtt_ns: None,
        };
        let mut out = Vec::new();
        let style = Style {
            verbose,
            ..Style::default()
        };
        write(&mut out, &meta, data, format, &style).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn create_dev_and_errors() {
        let mut cfg = vec![0u8; 336 + 2];
        cfg[..4].copy_from_slice(b"blk0");
        cfg[260..264].copy_from_slice(&2u32.to_ne_bytes()); // device_id
        cfg[272..276].copy_from_slice(&1u32.to_ne_bytes()); // vq_num
        cfg[332..336].copy_from_slice(&2u32.to_ne_bytes()); // config_size
        cfg[336] = 0xab;
        let mut b = Vec::new();
        IoctlRecord {
            request: VDUSE_CREATE_DEV,
            result: 0,
            arg_in: Some(&cfg),
            arg_out: None,
        }
        .encode(&mut b);
        let t = render(&b, OutputFormat::Text, false);
        assert!(
            t.starts_with("#3     00:00:00.000000005 c1 ← VDUSE VDUSE_CREATE_DEV = 0 name="),
            "{t}"
        );
        assert!(
            t.contains("device_id=2") && t.contains("vq_num=1") && t.contains("tail=ab00"),
            "{t}"
        );
        let j = render(&b, OutputFormat::Json, false);
        assert!(
            j.contains("\"ioctl\":\"VDUSE_CREATE_DEV\"") && j.contains("\"vq_num\":\"1\""),
            "{j}"
        );
        let mut e = Vec::new();
        IoctlRecord {
            request: VDUSE_GET_API_VERSION,
            result: -25,
            arg_in: None,
            arg_out: None,
        }
        .encode(&mut e);
        assert!(render(&e, OutputFormat::Text, true).contains("= -25 ENOTTY"));
        assert!(render(&e[..9], OutputFormat::Text, false).contains("malformed ioctl record"));
        assert!(render(&e[..9], OutputFormat::Json, false).contains("\"decode_error\""));
    }
}
