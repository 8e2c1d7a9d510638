//! `vfu-dump validate` and the glue between captures, the validator and the output.

use std::io::{self, Write};

use crate::capture::{Protocol, RecordRef};
use crate::cli::{OutputFormat, ProfileArg, ValidateOpts};
use crate::read::{RunError, open_input};
use crate::render::json_str;
use crate::validate::{self, Event, Finding, Profile, RULES, Severity, Validator};

/// The validator profile for a `--profile` value.
pub fn profile(p: ProfileArg) -> Profile {
    match p {
        ProfileArg::Spec => Profile::Spec,
        ProfileArg::LibvfioUser => Profile::LibvfioUser,
        ProfileArg::Qemu => Profile::Qemu,
    }
}

/// The validator's view of a capture record.
pub fn event<'a>(rec: &RecordRef<'a>) -> Event<'a> {
    Event {
        conn: rec.conn,
        index: rec.index,
        direction: rec.direction,
        protocol: if rec.protocol == Protocol::Vduse {
            validate::Protocol::Vduse
        } else {
            validate::Protocol::VfioUser
        },
        fds: rec.fds,
        truncated: rec.truncated,
        bytes: rec.data,
    }
}

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

/// Prints the rule table.
pub fn list_rules(out: &mut dyn Write) -> io::Result<()> {
    for r in RULES {
        writeln!(
            out,
            "{:<40} {:<7} {:<10} {}",
            r.id,
            r.severity.name(),
            r.section,
            r.description
        )?;
    }
    Ok(())
}

/// Runs `vfu-dump validate`; returns the number of findings of severity warning or error.
pub fn run(opts: &ValidateOpts, out: &mut dyn Write) -> Result<u64, RunError> {
    if opts.list_rules {
        list_rules(out)?;
        return Ok(0);
    }
    if opts.input.files.is_empty() {
        return Err(RunError::Usage(
            "no input file given (use - for standard input)".into(),
        ));
    }
    let mut count = 0u64;
    let mut findings = Vec::new();
    let mut emit = |findings: &[Finding], out: &mut dyn Write| -> io::Result<()> {
        for f in findings {
            if f.severity >= Severity::Warning {
                count += 1;
            } else if !opts.info {
                continue;
            }
            write_finding(out, f, opts.format, false)?;
        }
        Ok(())
    };
    let mut conn_base = 0;
    let mut index_base = 0;
    for path in &opts.input.files {
        // Each file is its own set of connections; findings name connections and indices across files.
        let mut v = Validator::new(profile(opts.profile));
        let mut reader = open_input(path, &opts.input)?;
        let mut last = None;
        loop {
            let rec = match reader.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    out.flush()?;
                    return Err(RunError::Capture(path.display().to_string(), e));
                }
            };
            let rec = RecordRef {
                conn: rec.conn + conn_base,
                index: rec.index + index_base,
                ..rec
            };
            last = Some(rec.index);
            findings.clear();
            v.check(&event(&rec), &mut findings);
            emit(&findings, out)?;
        }
        emit(&v.finish(), out)?;
        conn_base += reader.connections().len() as u32;
        index_base = last.map_or(index_base, |i| i + 1);
    }
    out.flush()?;
    Ok(count)
}
