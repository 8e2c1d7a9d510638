//! `vfu-dump read`: decode every record of the inputs, filter, render, count.

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use vfu_codec::{Command, Direction, Message, decode};

use crate::capture::{self, CaptureError, OpenOptions, Protocol, RecordRef};
use crate::cli::{ColorWhen, FilterOpts, InputOpts, OutputFormat, ReadOpts};
use crate::render::{self, Meta, Style};
use crate::stats::Stats;
use crate::vduse_render;

/// Why a run stopped early.
#[derive(Debug)]
pub enum RunError {
    /// Writing the output failed (a closed pipe is handled by the caller).
    Io(io::Error),
    /// An input could not be opened or read; earlier records were processed.
    Capture(String, CaptureError),
    /// The arguments cannot be used.
    Usage(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Io(e) => write!(f, "{e}"),
            RunError::Capture(file, e) => write!(f, "{file}: {e}"),
            RunError::Usage(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for RunError {}

impl From<io::Error> for RunError {
    fn from(e: io::Error) -> Self {
        RunError::Io(e)
    }
}

/// Whether to colour, from `--color` and the environment.
pub fn use_color(when: ColorWhen) -> bool {
    match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// Compiled filters.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    cmds: Vec<Command>,
    dir: Option<Direction>,
    conns: Vec<u32>,
    id: Option<u16>,
    errors: bool,
}

impl Filter {
    /// Compiles `--cmd` names and the other filters.
    pub fn new(f: &FilterOpts) -> Result<Self, RunError> {
        let mut cmds = Vec::new();
        for c in &f.cmd {
            cmds.push(Command::parse(c).ok_or_else(|| {
                RunError::Usage(format!(
                    "--cmd {c}: not a command name or number (try DMA_MAP, REGION_READ or 9)"
                ))
            })?);
        }
        Ok(Filter {
            cmds,
            dir: f.dir.map(Into::into),
            conns: f.conn.clone(),
            id: f.id,
            errors: f.errors,
        })
    }

    /// Whether a record passes; `bad` says it is an error reply, malformed or truncated.
    pub fn pass(&self, rec: &RecordRef<'_>, bad: bool) -> bool {
        if self.dir.is_some_and(|d| d != rec.direction)
            || (!self.conns.is_empty() && !self.conns.contains(&rec.conn))
        {
            return false;
        }
        if self.errors && !bad {
            return false;
        }
        let hdr = vfu_codec::Header::peek(rec.data).filter(|_| rec.protocol != Protocol::Vduse);
        if !self.cmds.is_empty() && !hdr.is_some_and(|h| self.cmds.contains(&h.cmd())) {
            return false;
        }
        if let Some(id) = self.id
            && hdr.is_none_or(|h| h.msg_id.get() != id)
        {
            return false;
        }
        true
    }
}

/// Pairs replies with their requests to measure round trips.
///
/// Outstanding requests sit in a direct-mapped table by (connection, direction, id), since a reply
/// nearly always comes within a few messages of its request; a request whose slot is taken by another
/// outstanding one moves that one to a map. The map uses foldhash (seeded per process): SipHash,
/// std's default, was a fifth of `read --stats`'s time on a capture of small messages.
#[derive(Debug, Default)]
pub struct RoundTrips {
    recent: Vec<Option<(PendingKey, u64)>>,
    pending: HashMap<PendingKey, u64, foldhash::fast::RandomState>,
    vduse: HashMap<(u32, u32), (u64, u32), foldhash::fast::RandomState>,
}

/// (connection, request sent client to server, message id).
type PendingKey = (u32, bool, u16);

/// Slots of [`RoundTrips::recent`].
const RECENT_SLOTS: usize = 4096;

impl RoundTrips {
    fn slot(key: PendingKey) -> usize {
        let (conn, c2s, id) = key;
        let mix = (u64::from(conn) << 17 | u64::from(c2s) << 16 | u64::from(id))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (mix >> 52) as usize % RECENT_SLOTS
    }

    fn remember(&mut self, key: PendingKey, ts_ns: u64) {
        if self.recent.is_empty() {
            self.recent.resize(RECENT_SLOTS, None);
        }
        if !self.pending.is_empty() {
            self.pending.remove(&key);
        }
        let slot = &mut self.recent[Self::slot(key)];
        if let Some((other, t)) = slot.replace((key, ts_ns))
            && other != key
        {
            self.pending.insert(other, t);
        }
    }

    fn take(&mut self, key: PendingKey) -> Option<u64> {
        if let Some(slot) = self.recent.get_mut(Self::slot(key))
            && slot.is_some_and(|(k, _)| k == key)
        {
            return slot.take().map(|(_, t)| t);
        }
        if self.pending.is_empty() {
            return None;
        }
        self.pending.remove(&key)
    }

    /// Notes a vfio-user message; returns the round-trip time when it is a reply to a request seen.
    pub fn observe(
        &mut self,
        conn: u32,
        direction: Direction,
        ts_ns: u64,
        msg: &Message<'_>,
    ) -> Option<u64> {
        let id = msg.header.msg_id.get();
        let c2s = direction == Direction::ClientToServer;
        if msg.is_reply() {
            self.take((conn, !c2s, id)).map(|t| ts_ns.saturating_sub(t))
        } else {
            if !msg.header.no_reply() {
                self.remember((conn, c2s, id), ts_ns);
            }
            None
        }
    }

    /// Notes a VDUSE request (remembering its type) or response; returns (rtt, request type) for a
    /// response whose request was seen.
    pub fn observe_vduse(
        &mut self,
        conn: u32,
        request_id: u32,
        ts_ns: u64,
        req_type: Option<u32>,
    ) -> Option<(u64, u32)> {
        match req_type {
            Some(t) => {
                self.vduse.insert((conn, request_id), (ts_ns, t));
                None
            }
            None => self
                .vduse
                .remove(&(conn, request_id))
                .map(|(t, ty)| (ts_ns.saturating_sub(t), ty)),
        }
    }
}

/// Opens one input.
pub fn open_input(path: &Path, input: &InputOpts) -> Result<capture::CaptureReader, RunError> {
    let opts = OpenOptions {
        raw: input.raw,
        direction: input.direction.map(Into::into),
    };
    capture::open(path, &opts).map_err(|e| RunError::Capture(path.display().to_string(), e))
}

/// A progress line on standard error, only when it is a terminal.
struct Progress {
    on: bool,
    total: u64,
    last: Instant,
}

impl Progress {
    fn new(path: &Path) -> Self {
        let total = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Progress {
            on: io::stderr().is_terminal() && total > 64 << 20,
            total,
            last: Instant::now(),
        }
    }

    fn tick(&mut self, offset: u64) {
        if self.on && self.last.elapsed() > Duration::from_millis(250) {
            self.last = Instant::now();
            eprint!(
                "\r{:5.1}% ({} MiB of {} MiB)",
                offset as f64 * 100.0 / self.total as f64,
                offset >> 20,
                self.total >> 20
            );
        }
    }

    fn done(&self) {
        if self.on {
            eprint!("\r{:40}\r", "");
        }
    }
}

/// Runs `vfu-dump read` writing to `out`. Returns whether every input was read to its end.
pub fn run(opts: &ReadOpts, out: &mut dyn Write) -> Result<(), RunError> {
    if opts.input.files.is_empty() {
        return Err(RunError::Usage(
            "no input file given (use - for standard input)".into(),
        ));
    }
    let filter = Filter::new(&opts.filter)?;
    let style = Style {
        color: use_color(opts.output.color),
        verbose: opts.output.verbose,
        hex: opts.output.hex,
        relative_to: None,
    };
    let print = !opts.stats || opts.output.verbose;
    let mut stats = Stats::default();
    let mut rtts = RoundTrips::default();
    let mut validator = opts
        .validate
        .then(|| crate::validate::Validator::new(crate::validate_cli::profile(opts.profile)));
    let mut findings = Vec::new();
    let mut conn_base = 0u32;
    let mut index_base = 0u64;
    let mut first_ts = None;
    for path in &opts.input.files {
        let mut reader = open_input(path, &opts.input)?;
        let mut progress = Progress::new(path);
        let mut last_index = None;
        loop {
            let rec = match reader.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    progress.done();
                    out.flush()?;
                    return Err(RunError::Capture(path.display().to_string(), e));
                }
            };
            progress.tick(rec.file_offset);
            let rec = RecordRef {
                conn: rec.conn + conn_base,
                index: rec.index + index_base,
                ..rec
            };
            last_index = Some(rec.index);
            let relative_to = if opts.output.relative {
                Some(*first_ts.get_or_insert(rec.ts_ns))
            } else {
                None
            };
            let style = Style {
                relative_to,
                ..style
            };
            if let Some(v) = validator.as_mut() {
                findings.clear();
                v.check(&crate::validate_cli::event(&rec), &mut findings);
            }
            if rec.protocol == Protocol::Vduse {
                let bad = vduse_render::is_bad(&rec);
                let line = vduse_render::observe(&rec, &mut rtts);
                if print && filter.pass(&rec, bad || !findings.is_empty()) {
                    vduse_render::write(out, &rec, &line, opts.output.format, &style)?;
                    write_findings(out, &findings, opts.output.format)?;
                }
                continue;
            }
            let decoded = decode(rec.data, rec.direction);
            let rtt = match &decoded {
                Ok(m) => rtts.observe(rec.conn, rec.direction, rec.ts_ns, m),
                Err(_) => None,
            };
            match &decoded {
                Ok(m) => {
                    let errno = m.header.is_error().then(|| m.header.error_no.get());
                    stats.add(
                        Some(m.command()),
                        rec.direction,
                        m.is_reply(),
                        rec.data.len(),
                        errno,
                        rtt,
                    );
                    if let vfu_codec::Body::Version(v) = m.body
                        && let Some(j) = v.json
                    {
                        stats.add_caps(rec.conn, rec.direction, j);
                    }
                }
                Err(_) => stats.add_malformed(rec.data.len()),
            }
            let bad = rec.truncated
                || decoded.as_ref().map_or(true, |m| m.header.is_error())
                || !findings.is_empty();
            if !print || !filter.pass(&rec, bad) {
                continue;
            }
            let meta = Meta {
                index: rec.index,
                ts_ns: rec.ts_ns,
                conn: rec.conn,
                direction: rec.direction,
                fds: rec.fds,
                truncated: rec.truncated,
                rtt_ns: rtt,
            };
            match opts.output.format {
                OutputFormat::Text => render::write_line(out, &meta, rec.data, &decoded, &style)?,
                OutputFormat::Json => render::write_json(out, &meta, rec.data, &decoded)?,
            }
            write_findings(out, &findings, opts.output.format)?;
        }
        progress.done();
        conn_base += reader.connections().len() as u32;
        index_base = last_index.map_or(index_base, |i| i + 1);
    }
    if let Some(v) = validator.as_mut() {
        findings = v.finish();
        write_findings(out, &findings, opts.output.format)?;
    }
    if opts.stats {
        stats.write(out)?;
    }
    out.flush()?;
    Ok(())
}

fn write_findings(
    out: &mut dyn Write,
    findings: &[crate::validate::Finding],
    format: OutputFormat,
) -> io::Result<()> {
    for f in findings {
        crate::validate_cli::write_finding(out, f, format, true)?;
    }
    Ok(())
}
