//! Rendering validation findings: a text line (indented when it follows the message it concerns) or
//! a JSON object.

use std::io::{self, Write};

use super::json_str;
use crate::options::OutputFormat;
use crate::validate::Finding;

/// Writes one finding as a text line (indented when interleaved with messages) or a JSON object.
pub fn write_finding(
    out: &mut dyn Write,
    f: &Finding,
    format: OutputFormat,
    indent: bool,
) -> io::Result<()> {
    match format {
        OutputFormat::Text => {
            let pad = if indent { "    ! " } else { "" };
            writeln!(
                out,
                "{pad}{} conn {} #{} +{:#x} {} [{}]: {}",
                f.severity, f.conn, f.index, f.offset, f.rule.id, f.rule.section, f.message
            )
        }
        OutputFormat::Json => {
            let mut s = String::new();
            s.push_str("{\"finding\":");
            json_str(&mut s, f.rule.id);
            s.push_str(",\"severity\":");
            json_str(&mut s, f.severity.name());
            s.push_str(&format!(
                ",\"conn\":{},\"index\":{},\"offset\":{},\"section\":",
                f.conn, f.index, f.offset
            ));
            json_str(&mut s, f.rule.section);
            s.push_str(",\"message\":");
            json_str(&mut s, &f.message);
            s.push_str("}\n");
            out.write_all(s.as_bytes())
        }
    }
}
