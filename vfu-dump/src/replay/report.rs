//! What a replay found ([`Divergence`], [`Report`]) and how it is shown ([`Output`]): each live
//! message as `vfu-dump read` prints it, each divergence as a field-level diff, a summary, and
//! optionally a capture of the replayed conversation (`-w`).

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use owo_colors::OwoColorize;
use vfu_codec::Direction;

use super::compare::{FieldDiff, Side, Skip, compare};
use super::error::ReplayError;
use super::plan::describe;
use crate::capture::{self, AtomicFile, PcapngWriter, Protocol};
use crate::options::OutputFormat;
use crate::pipeline::{Config, Error as PipelineError, Event, Pipeline, Record, Relative};
use crate::render::{Style, json_str};

/// How a live message departs from the capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    /// These fields differ.
    Fields(Vec<FieldDiff>),
    /// The capture has this message but the live peer never sent it; why.
    Missing(String),
    /// The live peer sent a message the capture does not have; why it has no counterpart.
    Unexpected(String),
}

/// One divergence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The captured message concerned: its number in the capture file (`#N` in `vfu-dump read`);
    /// `None` for a live message the capture does not have.
    pub index: Option<u64>,
    /// The live message's number in the replay (as in the `-w` capture); `None` when it never came.
    pub replay_index: Option<u64>,
    /// The message, `DEVICE_GET_REGION_INFO reply id=5`.
    pub message: String,
    /// What differs.
    pub what: What,
}

impl Divergence {
    /// Compares the captured message `captured` with the live message `live` (the replay's message
    /// number `replay_index`) by the comparison rule; a divergence naming every differing field, or
    /// `None` when they match.
    pub(crate) fn of_fields(
        captured: &capture::Record,
        live: Side<'_>,
        skip: Skip,
        replay_index: u64,
    ) -> Option<Divergence> {
        let diffs = compare(
            Side {
                bytes: &captured.data,
                fds: captured.fds,
            },
            live,
            skip,
        );
        (!diffs.is_empty()).then(|| Divergence {
            index: Some(captured.index),
            replay_index: Some(replay_index),
            message: describe(&captured.data),
            what: What::Fields(diffs),
        })
    }

    /// The names of the fields that differ (empty for a missing or unexpected message).
    pub fn fields(&self) -> Vec<&str> {
        match &self.what {
            What::Fields(f) => f.iter().map(|d| d.field.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

/// The outcome of a replay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Every divergence, in the order found.
    pub divergences: Vec<Divergence>,
    /// Messages the replay sent.
    pub sent: u64,
    /// Messages the live peer sent.
    pub received: u64,
    /// Every captured message was played; `false` when the replay stopped early (the peer went
    /// away, or an expected message did not come in time).
    pub completed: bool,
}

impl Report {
    /// No divergence: the exit status is 0.
    pub fn matched(&self) -> bool {
        self.divergences.is_empty()
    }
}

/// Where and how a replay prints: every live message goes through the pipeline
/// (`crate::pipeline`), which renders it as `vfu-dump read` does and writes the `-w` capture.
pub struct Output<'a> {
    pipeline: Pipeline<&'a mut dyn Write>,
    conn: u32,
    seq: u64,
    /// The `-w` capture's path and connection name, until the connection is opened in it.
    capture: Option<(String, Option<String>)>,
    /// The `-w` capture's temporary file, renamed onto its path by [`Output::summary`].
    pending: Option<AtomicFile>,
}

impl<'a> Output<'a> {
    /// Text lines without colour, every message printed.
    pub fn new(out: &'a mut dyn Write) -> Self {
        let cfg = Config {
            relative: Relative::Off,
            ..Config::default()
        };
        Output {
            pipeline: Pipeline::new(cfg, out),
            conn: 0,
            seq: 0,
            capture: None,
            pending: None,
        }
    }

    /// Text or JSON.
    pub fn format(mut self, format: OutputFormat) -> Self {
        self.pipeline.config_mut().format = format;
        self
    }

    /// Colour, `-v`, `-x` (`relative_to` is set by [`Output::relative`]).
    pub fn style(mut self, style: Style) -> Self {
        self.pipeline.config_mut().style = style;
        self
    }

    /// Times relative to the first live message.
    pub fn relative(mut self, on: bool) -> Self {
        self.pipeline.config_mut().relative = if on {
            Relative::FirstMessage
        } else {
            Relative::Off
        };
        self
    }

    /// Whether to print a line per message (`false` is `--quiet`: divergences and the summary).
    pub fn messages(mut self, on: bool) -> Self {
        self.pipeline.config_mut().messages = on;
        self
    }

    /// Also writes every live message to a pcapng capture at `path`, as connection 0 named `name`.
    /// The capture appears at `path`, whole, once the replay's summary is written; a replay that
    /// stops with an error leaves none (see [`AtomicFile`]).
    pub fn capture_to(mut self, path: &Path, name: &str) -> Result<Self, ReplayError> {
        let (pending, f) =
            AtomicFile::create(path).map_err(|e| ReplayError::Usage(e.to_string()))?;
        let w = PcapngWriter::new(Box::new(BufWriter::new(f)) as Box<dyn Write>)
            .map_err(|e| ReplayError::Usage(format!("{}: {e}", path.display())))?;
        self.pipeline.capture_to(w);
        self.capture = Some((path.display().to_string(), Some(name.to_owned())));
        self.pending = Some(pending);
        Ok(self)
    }

    /// The connection number printed on message lines.
    pub(crate) fn set_conn(&mut self, conn: u32) {
        self.conn = conn;
    }

    fn text(&self) -> bool {
        self.pipeline.config().format == OutputFormat::Text
    }

    /// Opens the connection in the `-w` capture, once, before its first message (or at the end).
    fn open_capture(&mut self) -> Result<(), ReplayError> {
        if let Some((path, name @ Some(_))) = &mut self.capture {
            let name = name.take().unwrap_or_default();
            self.pipeline
                .event(&Event::Open {
                    conn: self.conn,
                    name: &name,
                    protocol: Protocol::VfioUser,
                    twin_of: None,
                })
                .map_err(|e| pipeline_error(e, path))?;
        }
        Ok(())
    }

    /// Notes a live message: records it, prints it; returns its number in the replay.
    pub(crate) fn message(
        &mut self,
        direction: Direction,
        bytes: &[u8],
        fds: u32,
    ) -> Result<u64, ReplayError> {
        let ts_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let index = self.seq;
        self.seq += 1;
        self.open_capture()?;
        let rec = Record {
            conn: self.conn,
            index,
            ts_ns,
            direction,
            protocol: Protocol::VfioUser,
            fds,
            fd_kinds: &[],
            truncated: false,
            data: bytes,
            orig_len: bytes.len(),
        };
        let path = self.capture.as_ref().map_or("", |(p, _)| p.as_str());
        self.pipeline
            .record(rec)
            .map_err(|e| pipeline_error(e, path))?;
        Ok(index)
    }
    /// Prints a divergence.
    pub(crate) fn divergence(&mut self, d: &Divergence) -> Result<(), ReplayError> {
        let mut s = String::new();
        if self.text() {
            let bang = if self.pipeline.config().style.color {
                format!("{}", "!!".red().bold())
            } else {
                "!!".to_owned()
            };
            let at = match (d.index, d.replay_index) {
                (Some(i), Some(r)) => format!("#{i} {} (replay #{r})", d.message),
                (Some(i), None) => format!("#{i} {}", d.message),
                (None, Some(r)) => format!("replay #{r} {}", d.message),
                (None, None) => d.message.clone(),
            };
            match &d.what {
                What::Fields(fields) => {
                    let _ = writeln!(s, "{bang} {at} differs from the capture:");
                    for f in fields {
                        let _ = writeln!(s, "   - {} = {}", f.field, f.captured);
                        let _ = writeln!(s, "   + {} = {}", f.field, f.replayed);
                    }
                }
                What::Missing(why) => {
                    let _ = writeln!(s, "{bang} {at} missing: {why}");
                }
                What::Unexpected(why) => {
                    let _ = writeln!(s, "{bang} {at} unexpected: {why}");
                }
            }
        } else {
            s.push_str("{\"divergence\":{\"index\":");
            opt(&mut s, d.index);
            s.push_str(",\"replay_index\":");
            opt(&mut s, d.replay_index);
            s.push_str(",\"message\":");
            json_str(&mut s, &d.message);
            match &d.what {
                What::Fields(fields) => {
                    s.push_str(",\"fields\":[");
                    for (i, f) in fields.iter().enumerate() {
                        if i > 0 {
                            s.push(',');
                        }
                        s.push_str("{\"field\":");
                        json_str(&mut s, &f.field);
                        s.push_str(",\"captured\":");
                        json_str(&mut s, &f.captured);
                        s.push_str(",\"replayed\":");
                        json_str(&mut s, &f.replayed);
                        s.push('}');
                    }
                    s.push(']');
                }
                What::Missing(why) => {
                    s.push_str(",\"missing\":");
                    json_str(&mut s, why);
                }
                What::Unexpected(why) => {
                    s.push_str(",\"unexpected\":");
                    json_str(&mut s, why);
                }
            }
            s.push_str("}}\n");
        }
        self.pipeline.out().write_all(s.as_bytes())?;
        Ok(())
    }

    /// Flushes what was printed so far.
    pub(crate) fn flush_now(&mut self) -> Result<(), ReplayError> {
        self.pipeline.out().flush()?;
        Ok(())
    }

    /// A line about the replay itself (text only).
    pub(crate) fn note(&mut self, text: &str) -> Result<(), ReplayError> {
        if self.text() {
            writeln!(self.pipeline.out(), "-- {text}")?;
        }
        Ok(())
    }

    /// The closing summary; flushes the output and the capture.
    pub(crate) fn summary(&mut self, r: &Report, what: &str) -> Result<(), ReplayError> {
        self.open_capture()?;
        let path = self.capture.as_ref().map_or("", |(p, _)| p.as_str());
        self.pipeline
            .finish()
            .map_err(|e| pipeline_error(e, path))?;
        if let Some(pending) = self.pending.take() {
            pending
                .commit()
                .map_err(|e| ReplayError::Usage(e.to_string()))?;
        }
        if self.text() {
            let n = r.divergences.len();
            let outcome = if n == 0 {
                "matched".to_owned()
            } else {
                let mut at: Vec<String> = r
                    .divergences
                    .iter()
                    .take(8)
                    .map(|d| match (d.index, d.replay_index) {
                        (Some(i), _) => format!("#{i}"),
                        (None, Some(j)) => format!("replay #{j}"),
                        (None, None) => "?".to_owned(),
                    })
                    .collect();
                if n > 8 {
                    at.push("…".to_owned());
                }
                format!(
                    "{n} divergence{} ({})",
                    if n == 1 { "" } else { "s" },
                    at.join(", ")
                )
            };
            writeln!(
                self.pipeline.out(),
                "-- {what}: {} sent, {} received{}: {outcome}",
                r.sent,
                r.received,
                if r.completed { "" } else { ", stopped early" }
            )?;
        } else {
            writeln!(
                self.pipeline.out(),
                "{{\"summary\":{{\"sent\":{},\"received\":{},\"divergences\":{},\"completed\":{},\"matched\":{}}}}}",
                r.sent,
                r.received,
                r.divergences.len(),
                r.completed,
                r.matched()
            )?;
        }
        self.pipeline.out().flush()?;
        Ok(())
    }
}

/// A pipeline error as the replay reports it: the capture's path with a capture error.
fn pipeline_error(e: PipelineError, path: &str) -> ReplayError {
    match e {
        PipelineError::Capture(e) => ReplayError::Usage(format!("{path}: {e}")),
        PipelineError::Output(e) => ReplayError::Output(e),
    }
}

fn opt(s: &mut String, v: Option<u64>) {
    match v {
        Some(v) => {
            let _ = write!(s, "{v}");
        }
        None => s.push_str("null"),
    }
}
