//! Rendering what a live source says besides messages: a connection opened or closed, a note, a
//! summary. Text lines start with `--`; JSON objects have an `"event"` member.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::{count_of, json_str};
use crate::options::OutputFormat;

/// A note, about one connection or (`conn` `None`) the whole run: `-- c3 text`, `-- text`.
pub fn note(
    out: &mut dyn Write,
    format: OutputFormat,
    conn: Option<u32>,
    text: &str,
) -> io::Result<()> {
    match format {
        OutputFormat::Text => match conn {
            Some(c) => writeln!(out, "-- c{c} {text}"),
            None => writeln!(out, "-- {text}"),
        },
        OutputFormat::Json => {
            let mut s = String::from("{\"event\":\"note\"");
            if let Some(c) = conn {
                let _ = write!(s, ",\"conn\":{c}");
            }
            s.push_str(",\"text\":");
            json_str(&mut s, text);
            s.push_str("}\n");
            out.write_all(s.as_bytes())
        }
    }
}

/// A connection opened: `-- c0 open: NAME`.
pub fn open(
    out: &mut dyn Write,
    format: OutputFormat,
    conn: u32,
    name: &str,
    twin_of: Option<u32>,
) -> io::Result<()> {
    match format {
        OutputFormat::Text => note(out, format, Some(conn), &format!("open: {name}")),
        OutputFormat::Json => {
            let mut s = format!("{{\"event\":\"open\",\"conn\":{conn},\"name\":");
            json_str(&mut s, name);
            if let Some(m) = twin_of {
                let _ = write!(s, ",\"twin_of\":{m}");
            }
            s.push_str("}\n");
            out.write_all(s.as_bytes())
        }
    }
}

/// A connection closed after `messages` messages.
pub fn close(
    out: &mut dyn Write,
    format: OutputFormat,
    conn: u32,
    messages: u64,
) -> io::Result<()> {
    match format {
        OutputFormat::Text => note(
            out,
            format,
            Some(conn),
            &format!("closed after {}", count_of(messages, "message", "messages")),
        ),
        OutputFormat::Json => writeln!(
            out,
            "{{\"event\":\"close\",\"conn\":{conn},\"messages\":{messages}}}"
        ),
    }
}

/// A run's summary: the text line `-- TEXT`, or `{"event":"summary","NAME":VALUE,…}`.
pub fn summary(
    out: &mut dyn Write,
    format: OutputFormat,
    text: &str,
    fields: &[(&str, u64)],
) -> io::Result<()> {
    match format {
        OutputFormat::Text => note(out, format, None, text),
        OutputFormat::Json => {
            let mut s = String::from("{\"event\":\"summary\"");
            for (name, v) in fields {
                s.push(',');
                json_str(&mut s, name);
                let _ = write!(s, ":{v}");
            }
            s.push_str("}\n");
            out.write_all(s.as_bytes())
        }
    }
}

/// What each descriptor that came with message `index` is (a source that knows, `vfu-dump trace`,
/// says): `    fds: [0] /memfd:guest-ram (deleted), [1] anon_inode:[eventfd]` after the message's
/// line, or `{"event":"fds","conn":0,"index":16,"fds":["/memfd:guest-ram (deleted)"]}`.
pub fn fd_kinds(
    out: &mut dyn Write,
    format: OutputFormat,
    conn: u32,
    index: u64,
    kinds: &[String],
) -> io::Result<()> {
    match format {
        OutputFormat::Text => {
            let what: Vec<String> = kinds
                .iter()
                .enumerate()
                .map(|(i, k)| format!("[{i}] {k}"))
                .collect();
            writeln!(out, "    fds: {}", what.join(", "))
        }
        OutputFormat::Json => {
            let mut s = format!("{{\"event\":\"fds\",\"conn\":{conn},\"index\":{index},\"fds\":[");
            for (i, k) in kinds.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                json_str(&mut s, k);
            }
            s.push_str("]}\n");
            out.write_all(s.as_bytes())
        }
    }
}
