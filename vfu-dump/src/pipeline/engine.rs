//! [`Pipeline`]: what happens to every record after its source, in one place.

use std::collections::HashMap;
use std::io::{self, Write};

use vfu_codec::{Body, DecodeError, Header, Message, decode};

use super::filter::Filter;
use super::pairing::{RoundTrips, observe_vduse};
use super::record::{Event, Record};
use crate::capture::{MAX_RECORD_LEN, PcapngWriter, Protocol};
use crate::error::RunError;
use crate::options::{FilterOpts, OutputFormat, OutputOpts, use_color};
use crate::render::finding::write_finding;
use crate::render::{self, Cut, Meta, Style, event, vduse};
use crate::stats::{Counted, Stats};
use crate::validate::{self, Finding, Profile, Severity, Validator};

/// Where `--relative` times count from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Relative {
    /// Wall-clock times.
    #[default]
    Off,
    /// From the first record of the run, shown or not (`read`, `replay`).
    FirstMessage,
    /// From the first message shown, after the filters (`proxy`).
    FirstShown,
}

/// Which findings are printed, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FindingsOut {
    /// Print findings of severity info (`validate` does only with `--info`).
    pub info: bool,
    /// Print a message's findings, unindented, when message lines are off (`validate`,
    /// `proxy --quiet`); when `false` they are printed only after a message line that is shown.
    pub without_messages: bool,
    /// Indent the findings made at the end of the input (`read`: like those after a message).
    pub indent_final: bool,
    /// Finish the validator at the end of each input and start a fresh one (`validate`: each file
    /// is its own set of connections).
    pub per_input: bool,
}

/// What the pipeline does with each record.
#[derive(Clone, Debug)]
pub struct Config {
    /// Text lines or JSON objects.
    pub format: OutputFormat,
    /// Colour, `-v`, `-x` (its `relative_to` is set from [`Config::relative`]).
    pub style: Style,
    /// `--relative`.
    pub relative: Relative,
    /// Which messages are shown (everything is still decoded, paired, validated, counted and
    /// captured).
    pub filter: Filter,
    /// Print a line per message.
    pub messages: bool,
    /// Print the source's events (connections opened and closed, notes, its summary).
    pub events: bool,
    /// Validate with this profile and print the findings.
    pub validate: Option<Profile>,
    /// How findings are printed.
    pub findings: FindingsOut,
    /// Count for `--stats`, printed by [`Pipeline::finish`].
    pub stats: bool,
}

impl Default for Config {
    /// Every message as a text line; no validation, statistics or events.
    fn default() -> Self {
        Config {
            format: OutputFormat::Text,
            style: Style::default(),
            relative: Relative::Off,
            filter: Filter::default(),
            messages: true,
            events: false,
            validate: None,
            findings: FindingsOut {
                info: true,
                without_messages: false,
                indent_final: true,
                per_input: false,
            },
            stats: false,
        }
    }
}

impl Config {
    /// What `read` and `trace` do with their messages: the output options (`--format`, `-v`, `-x`,
    /// `--color`, `--relative`), the filters, `--stats` (alone, it prints no message line: `-v`
    /// keeps them, and findings then stand on their own) and `--validate`'s profile. No events;
    /// the final findings are indented under the messages when there are message lines.
    pub fn for_messages(
        output: &OutputOpts,
        filter: &FilterOpts,
        stats: bool,
        validate: Option<Profile>,
    ) -> Result<Config, RunError> {
        let messages = !stats || output.verbose;
        Ok(Config {
            format: output.format,
            style: Style {
                color: use_color(output.color),
                verbose: output.verbose,
                hex: output.hex,
                relative_to: None,
            },
            relative: if output.relative {
                Relative::FirstMessage
            } else {
                Relative::Off
            },
            filter: Filter::new(filter)?,
            messages,
            events: false,
            validate,
            findings: FindingsOut {
                info: true,
                without_messages: !messages,
                indent_final: messages,
                per_input: false,
            },
            stats,
        })
    }
}

/// Why the pipeline stopped.
#[derive(Debug)]
pub enum Error {
    /// Writing the output failed.
    Output(io::Error),
    /// Writing the capture failed.
    Capture(io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Output(e) => write!(f, "writing output: {e}"),
            Error::Capture(e) => write!(f, "writing the capture: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Output(e)
    }
}

impl From<Error> for RunError {
    fn from(e: Error) -> Self {
        match e {
            Error::Output(e) | Error::Capture(e) => RunError::Io(e),
        }
    }
}

/// What a run saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Records.
    pub messages: u64,
    /// Connections opened ([`Event::Open`]).
    pub connections: u64,
    /// Findings by severity: info, warning, error (printed or not).
    pub findings: [u64; 3],
    /// Records shown: those that passed the filters while message lines were on.
    pub shown: u64,
}

impl Totals {
    /// Findings of severity warning or error.
    pub fn problems(&self) -> u64 {
        self.findings[1] + self.findings[2]
    }
}

/// Everything after a source: decoding, round-trip matching, filters, validation, rendering (text,
/// `-v`, `-x`, JSON), statistics and writing a capture. A source calls [`record`](Self::record)
/// for each message and [`event`](Self::event) for the rest, then [`finish`](Self::finish).
pub struct Pipeline<W: Write> {
    cfg: Config,
    out: W,
    rtts: RoundTrips,
    validator: Option<Validator>,
    findings: Vec<Finding>,
    stats: Option<Stats>,
    first_ts: Option<u64>,
    capture: Option<Capture>,
    totals: Totals,
    /// A capture is written or `--relative` counts from the first message (see `unusual_steps`).
    unusual: bool,
    /// While a record the capture cut is handled: its captured and original lengths.
    cut: Option<Cut>,
    /// Where cut records are laid out at their whole length.
    pad: ZeroPad,
}

/// The longest cut message laid out at its whole length: the longest a capture record holds.
const MAX_LAID_OUT: usize = MAX_RECORD_LEN;

/// A buffer that is zero beyond the bytes last copied into its front, so that laying out a cut
/// message costs a copy of what was captured, not a fill of its whole length.
#[derive(Default)]
struct ZeroPad {
    buf: Vec<u8>,
    /// `buf[dirty..]` is all zeros.
    dirty: usize,
}

impl ZeroPad {
    /// `head` followed by zeros up to `total` bytes (`total` at least `head.len()`).
    fn with(&mut self, head: &[u8], total: usize) -> &[u8] {
        if self.buf.len() < total {
            self.buf.resize(total, 0);
        }
        if self.dirty > head.len() {
            self.buf[head.len()..self.dirty].fill(0);
        }
        self.buf[..head.len()].copy_from_slice(head);
        self.dirty = head.len();
        &self.buf[..total]
    }
}

/// A capture being written: the writer, and each source connection's number in it.
struct Capture {
    writer: PcapngWriter<Box<dyn Write>>,
    conns: HashMap<u32, u32, foldhash::fast::RandomState>,
}

impl<W: Write> Pipeline<W> {
    /// A pipeline writing its output to `out`.
    pub fn new(cfg: Config, out: W) -> Self {
        Pipeline {
            validator: cfg.validate.map(Validator::new),
            stats: cfg.stats.then(Stats::default),
            cfg,
            out,
            rtts: RoundTrips::default(),
            findings: Vec::new(),
            first_ts: None,
            capture: None,
            totals: Totals::default(),
            unusual: false,
            cut: None,
            pad: ZeroPad::default(),
        }
        .with_unusual()
    }

    fn with_unusual(mut self) -> Self {
        self.unusual = self.capture.is_some() || self.cfg.relative == Relative::FirstMessage;
        self
    }

    /// Also writes every record to this capture; each [`Event::Open`] adds its connection.
    pub fn capture_to(&mut self, writer: PcapngWriter<Box<dyn Write>>) {
        self.capture = Some(Capture {
            writer,
            conns: HashMap::default(),
        });
        self.unusual = true;
    }

    /// The capture being written, if any (for its counts once the run is over).
    pub fn capture_writer(&self) -> Option<&PcapngWriter<Box<dyn Write>>> {
        self.capture.as_ref().map(|c| &c.writer)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The configuration, to change. Changes to the output settings (format, style, relative times, what is
    /// printed) apply from the next record; validation and statistics are set up by [`new`](Self::new).
    pub fn config_mut(&mut self) -> &mut Config {
        // Whatever is changed, the record path checks the rare steps again.
        self.unusual = true;
        &mut self.cfg
    }

    /// The output, for a caller's own lines between records.
    pub fn out(&mut self) -> &mut W {
        &mut self.out
    }

    /// What the run has seen so far.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Handles one message.
    #[inline(always)]
    pub fn record(&mut self, rec: Record<'_>) -> Result<(), Error> {
        if rec.orig_len > rec.data.len() {
            return self.record_cut(&rec);
        }
        self.record_whole(&rec)
    }

    /// A message the capture that was read cut to its first bytes: written to a capture as it
    /// came (cut, with its original length), and otherwise decoded, paired, counted and validated
    /// at its whole length, laid out with zeros after what was captured; shown as cut.
    #[inline(never)]
    fn record_cut(&mut self, rec: &Record<'_>) -> Result<(), Error> {
        if self.capture.is_some() {
            self.write_capture(rec)?;
        }
        let capture = self.capture.take();
        let mut pad = std::mem::take(&mut self.pad);
        // Laid out at its whole length when what says how to read it was captured: a vfio-user
        // header, a VDUSE message's type and id (an ioctl record's lengths describe its own bytes).
        let head = match rec.protocol {
            Protocol::VfioUser => vfu_codec::HEADER_SIZE,
            Protocol::Vduse => 8,
            _ => usize::MAX,
        };
        let whole = if rec.orig_len <= MAX_LAID_OUT && rec.data.len() >= head {
            pad.with(rec.data, rec.orig_len)
        } else {
            rec.data
        };
        self.cut = Some(Cut {
            captured: rec.data.len(),
            orig_len: rec.orig_len,
        });
        let done = self.record_whole(&Record {
            data: whole,
            orig_len: whole.len(),
            ..*rec
        });
        self.cut = None;
        self.pad = pad;
        self.capture = capture;
        done
    }

    #[inline(always)]
    fn record_whole(&mut self, rec: &Record<'_>) -> Result<(), Error> {
        self.totals.messages += 1;
        if self.unusual {
            self.unusual_steps(rec)?;
        }
        // Decided before validating, so that a run that only validates (`validate`) keeps nothing
        // of the record across the validator.
        let more = rec.protocol != Protocol::VfioUser || self.cfg.messages || self.stats.is_some();
        self.validate(rec);
        if more {
            return self.decoded(rec);
        }
        self.findings_alone()
    }

    #[inline(always)]
    fn validate(&mut self, rec: &Record<'_>) {
        if let Some(v) = self.validator.as_mut() {
            self.findings.clear();
            match self.cut {
                None => v.check(&validator_event(rec), &mut self.findings),
                Some(c) => v.check_cut(
                    &validator_event(rec),
                    c.captured,
                    c.orig_len,
                    &mut self.findings,
                ),
            }
            if !self.findings.is_empty() {
                count(&mut self.totals, &self.findings);
            }
        }
    }

    /// What few runs need before the validator: the capture, the first time for --relative.
    #[inline(never)]
    fn unusual_steps(&mut self, rec: &Record<'_>) -> Result<(), Error> {
        if self.capture.is_some() {
            self.write_capture(rec)?;
        }
        if self.cfg.relative == Relative::FirstMessage && self.first_ts.is_none() {
            self.first_ts = Some(rec.ts_ns);
        }
        Ok(())
    }

    /// Everything after validation that needs the message decoded.
    #[inline(always)]
    fn decoded(&mut self, rec: &Record<'_>) -> Result<(), Error> {
        if rec.protocol == Protocol::Vduse {
            return self.vduse(rec);
        }
        if rec.protocol == Protocol::VduseIoctl {
            return self.ioctl(rec);
        }
        if !self.cfg.messages && self.stats.is_none() {
            return self.findings_alone();
        }
        self.vfio_user(rec)
    }

    #[inline(never)]
    fn write_capture(&mut self, rec: &Record<'_>) -> Result<(), Error> {
        if let Some(c) = &mut self.capture {
            let conn = c.conns.get(&rec.conn).copied().ok_or_else(|| {
                Error::Capture(io::Error::other(format!(
                    "connection {} was never opened",
                    rec.conn
                )))
            })?;
            c.writer
                .write_record(&rec.to_capture(conn))
                .map_err(Error::Capture)?;
        }
        Ok(())
    }

    /// A vfio-user message (or a record of another protocol, decoded as one).
    #[inline(always)]
    fn vfio_user(&mut self, rec: &Record<'_>) -> Result<(), Error> {
        let decoded = decode(rec.data, rec.direction);
        // A message whose body does not decode is paired (and counted) by its header when it has one.
        let header = match &decoded {
            Ok(m) => Some(m.header),
            Err(_) => Header::peek(rec.data),
        };
        let rtt = header.and_then(|h| {
            self.rtts
                .observe_header(rec.conn, rec.direction, rec.ts_ns, h)
        });
        if let Some(stats) = self.stats.as_mut() {
            count_stats(stats, rec, &decoded, header, rtt);
        }
        if !self.cfg.messages {
            return self.findings_alone();
        }
        let bad = rec.truncated
            || decoded.as_ref().map_or(true, |m| m.header.is_error())
            || self.has_findings();
        if !self.cfg.filter.pass(rec, bad) {
            return Ok(());
        }
        self.show(rec, &decoded, rtt)
    }

    /// Renders a vfio-user message that passed the filters, and its findings.
    #[inline(never)]
    fn show(
        &mut self,
        rec: &Record<'_>,
        decoded: &Result<Message<'_>, DecodeError>,
        rtt: Option<u64>,
    ) -> Result<(), Error> {
        self.totals.shown += 1;
        let (meta, style) = self.meta(rec, rtt);
        match self.cfg.format {
            OutputFormat::Text => {
                render::write_line(&mut self.out, &meta, rec.data, decoded, &style)?
            }
            OutputFormat::Json => {
                render::json::write_json(&mut self.out, &meta, rec.data, decoded)?
            }
        }
        self.after_line(rec)
    }

    /// A VDUSE ioctl record (`vfu-dump trace` writes them): shown, validated, never counted in
    /// `--stats` (it is not a message).
    #[inline(never)]
    fn ioctl(&mut self, rec: &Record<'_>) -> Result<(), Error> {
        if !self.cfg.messages {
            return self.findings_alone();
        }
        let bad = render::ioctl::is_bad(rec.data, rec.truncated) || self.has_findings();
        if !self.cfg.filter.pass_vduse(rec, bad, None, None) {
            return Ok(());
        }
        let (meta, style) = self.meta(rec, None);
        render::ioctl::write(&mut self.out, &meta, rec.data, self.cfg.format, &style)?;
        self.after_line(rec)
    }

    #[inline(never)]
    fn vduse(&mut self, rec: &Record<'_>) -> Result<(), Error> {
        if !self.cfg.messages && self.stats.is_none() {
            return self.findings_alone();
        }
        let info = observe_vduse(rec, &mut self.rtts);
        if let Some(stats) = self.stats.as_mut() {
            if info.decodes {
                stats.add_vduse(info.req_type, info.result, rec.data.len(), info.rtt_ns);
            } else {
                stats.add_malformed(rec.data.len());
            }
        }
        if !self.cfg.messages {
            return self.findings_alone();
        }
        let bad = info.is_bad(rec.truncated) || self.has_findings();
        if !self
            .cfg
            .filter
            .pass_vduse(rec, bad, info.req_type, info.request_id)
        {
            return Ok(());
        }
        self.totals.shown += 1;
        let (meta, style) = self.meta(rec, info.rtt_ns);
        vduse::write(
            &mut self.out,
            &meta,
            rec.data,
            info.req_type,
            self.cfg.format,
            &style,
        )?;
        self.write_findings(true)
    }

    /// What follows a shown message's line: what its descriptors are (when the source knows) and
    /// its findings.
    fn after_line(&mut self, rec: &Record<'_>) -> Result<(), Error> {
        if !rec.fd_kinds.is_empty() {
            event::fd_kinds(
                &mut self.out,
                self.cfg.format,
                rec.conn,
                rec.index,
                rec.fd_kinds,
            )?;
        }
        self.write_findings(true)
    }

    /// The facts and style a shown record is rendered with.
    fn meta(&mut self, rec: &Record<'_>, rtt_ns: Option<u64>) -> (Meta, Style) {
        let relative_to = match self.cfg.relative {
            Relative::Off => None,
            Relative::FirstMessage => self.first_ts,
            Relative::FirstShown => Some(*self.first_ts.get_or_insert(rec.ts_ns)),
        };
        let meta = Meta {
            index: rec.index,
            ts_ns: rec.ts_ns,
            conn: rec.conn,
            direction: rec.direction,
            fds: rec.fds,
            truncated: rec.truncated,
            cut: self.cut,
            rtt_ns,
        };
        let style = Style {
            relative_to,
            ..self.cfg.style
        };
        (meta, style)
    }

    fn has_findings(&self) -> bool {
        self.validator.is_some() && !self.findings.is_empty()
    }

    /// The findings of a message whose line is not printed.
    #[inline]
    fn findings_alone(&mut self) -> Result<(), Error> {
        if !self.findings.is_empty() && self.cfg.findings.without_messages && self.has_findings() {
            self.write_findings(false)?;
        }
        Ok(())
    }

    #[inline(never)]
    fn write_findings(&mut self, indent: bool) -> Result<(), Error> {
        if self.validator.is_none() {
            return Ok(());
        }
        for f in &self.findings {
            if (f.severity >= Severity::Warning || self.cfg.findings.info)
                && self.cfg.filter.pass_conn(f.conn)
            {
                write_finding(&mut self.out, f, self.cfg.format, indent)?;
            }
        }
        Ok(())
    }

    /// The validator's findings at the end of its input.
    fn finish_validator(&mut self) -> Result<(), Error> {
        if let Some(v) = self.validator.as_mut() {
            self.findings = v.finish();
            count(&mut self.totals, &self.findings);
            self.write_findings(self.cfg.findings.indent_final)?;
            self.findings.clear();
        }
        Ok(())
    }

    /// Handles an event of the source.
    pub fn event(&mut self, ev: &Event<'_>) -> Result<(), Error> {
        if let Event::Open {
            conn,
            name,
            protocol,
            ..
        } = *ev
        {
            self.totals.connections += 1;
            if let Some(c) = &mut self.capture {
                let id = c
                    .writer
                    .add_connection(name, protocol)
                    .map_err(Error::Capture)?;
                c.conns.insert(conn, id);
            }
        }
        if *ev == Event::EndOfInput && self.cfg.findings.per_input {
            self.finish_validator()?;
            self.validator = self.cfg.validate.map(Validator::new);
        }
        if !self.cfg.events {
            return Ok(());
        }
        let format = self.cfg.format;
        match *ev {
            Event::Open {
                conn,
                name,
                twin_of,
                ..
            } => event::open(&mut self.out, format, conn, name, twin_of)?,
            Event::Close { conn, messages } => event::close(&mut self.out, format, conn, messages)?,
            Event::Note { conn, text } => event::note(&mut self.out, format, conn, text)?,
            Event::Summary { text, fields } => event::summary(&mut self.out, format, text, fields)?,
            Event::EndOfInput => {}
        }
        Ok(())
    }

    /// Flushes the output and the capture (a source calls this before it reports an error).
    pub fn flush(&mut self) -> Result<(), Error> {
        if let Some(c) = &mut self.capture {
            c.writer.flush().map_err(Error::Capture)?;
        }
        self.out.flush()?;
        Ok(())
    }

    /// Ends the run: the validator's last findings, the statistics, and flushes; returns what the
    /// run saw.
    pub fn finish(&mut self) -> Result<Totals, Error> {
        if !self.cfg.findings.per_input {
            self.finish_validator()?;
        }
        if let Some(s) = &self.stats {
            s.write(&mut self.out)?;
        }
        self.flush()?;
        Ok(self.totals)
    }
}

fn count(totals: &mut Totals, findings: &[Finding]) {
    for f in findings {
        let i = match f.severity {
            Severity::Info => 0,
            Severity::Warning => 1,
            Severity::Error => 2,
        };
        totals.findings[i] += 1;
    }
}

#[inline]
fn count_stats(
    stats: &mut Stats,
    rec: &Record<'_>,
    decoded: &Result<Message<'_>, DecodeError>,
    header: Option<&Header>,
    rtt: Option<u64>,
) {
    let counted = |h: &Header| Counted {
        direction: rec.direction,
        reply: h.is_reply(),
        len: rec.data.len(),
        errno: h.is_error().then(|| h.error_no.get()),
        rtt,
    };
    match (decoded, header) {
        (Ok(m), _) => {
            stats.add(Some(m.command()), counted(m.header));
            if let Body::Version(v) = m.body
                && let Some(j) = v.json
            {
                stats.add_caps(rec.conn, rec.direction, j);
            }
        }
        // Malformed, with a header that says which command and which way: counted in that row too.
        (Err(_), Some(h)) if h.message_type().is_some() => {
            stats.add_malformed_in(h.cmd(), counted(h))
        }
        (Err(_), _) => stats.add_malformed(rec.data.len()),
    }
}

/// The validator's view of a record.
#[inline]
pub fn validator_event<'a>(rec: &Record<'a>) -> validate::Event<'a> {
    validate::Event {
        conn: rec.conn,
        index: rec.index,
        direction: rec.direction,
        protocol: match rec.protocol {
            Protocol::Vduse => validate::Protocol::Vduse,
            Protocol::VduseIoctl => validate::Protocol::VduseIoctl,
            Protocol::VfioUser | Protocol::Other => validate::Protocol::VfioUser,
        },
        fds: rec.fds,
        truncated: rec.truncated,
        bytes: rec.data,
    }
}
