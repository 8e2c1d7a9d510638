//! [`FileSource`]: the records of one or more capture files, fed to a [`Pipeline`].

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::engine::Pipeline;
use super::record::{Event, Record};
use crate::capture::{self, CaptureReader, Connection, Format, OpenOptions, RecordRef};
use crate::error::RunError;
use crate::options::InputOpts;

/// Capture files read one after the other as one run: connections and message numbers run on
/// across files (the second file's connection 0 follows the first file's last connection).
#[derive(Clone, Debug)]
pub struct FileSource<'a> {
    files: &'a [PathBuf],
    opts: OpenOptions,
    progress: bool,
}

impl<'a> FileSource<'a> {
    /// The files of `--raw`, `--direction` and the positional arguments; an error when there are
    /// none, or when `--direction` comes without `--raw` (`has_dir_filter`: the subcommand has the
    /// `--dir` filter, which the error then suggests).
    pub fn new(input: &'a InputOpts, has_dir_filter: bool) -> Result<Self, RunError> {
        let opts = input.open_options(has_dir_filter)?;
        if input.files.is_empty() {
            return Err(RunError::Usage(
                "no input file given (use - for standard input)".into(),
            ));
        }
        Ok(FileSource {
            files: &input.files,
            opts,
            progress: false,
        })
    }

    /// Show a progress line on standard error while reading a large file (only when it is a
    /// terminal).
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Feeds every record to `p`: an [`Event::Open`] before each connection's first record (and at
    /// the end of a file for connections without records), an [`Event::EndOfInput`] after each file.
    /// On an error, what came before it was fed and the output is flushed.
    pub fn feed<W: Write>(&self, p: &mut Pipeline<W>) -> Result<(), RunError> {
        let mut at = Position::default();
        for path in self.files {
            let mut reader = open_input(path, &self.opts)?;
            feed_reader(&mut reader, path, self.progress, &mut at, p)?;
        }
        Ok(())
    }
}

/// Where the next input's numbering starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Its connection 0 is this connection of the run.
    pub conn_base: u32,
    /// Its first record is this message of the run.
    pub index_base: u64,
}

/// Feeds one opened capture (named `path` in errors) to `p`, as [`FileSource::feed`] does each of
/// its files, numbering from `at` and moving `at` past it.
pub fn feed_reader<R: Read, W: Write>(
    reader: &mut CaptureReader<R>,
    path: &Path,
    progress: bool,
    at: &mut Position,
    p: &mut Pipeline<W>,
) -> Result<(), RunError> {
    let mut progress = Progress::new(path, progress);
    let mut last_index = None;
    let mut opened = 0usize;
    loop {
        let rec = match reader.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                progress.done();
                p.flush()?;
                return Err(RunError::Capture(path.display().to_string(), e));
            }
        };
        progress.tick(rec.file_offset);
        if rec.conn as usize >= opened {
            // The first record of a connection (rare): copied, so that the reader's connection list,
            // which now names it, can be read before the record is fed.
            let owned = rec.to_owned();
            open_new(reader.connections(), &mut opened, at, p)?;
            feed_one(&owned.as_ref(), at, &mut last_index, p)?;
        } else {
            feed_one(&rec, at, &mut last_index, p)?;
        }
    }
    progress.done();
    let conns = reader.connections();
    open_new(conns, &mut opened, at, p)?;
    p.event(&Event::EndOfInput)?;
    at.conn_base += conns.len() as u32;
    at.index_base = last_index.map_or(at.index_base, |i| i + 1);
    Ok(())
}

/// One record, numbered in the run.
#[inline(always)]
fn feed_one<W: Write>(
    rec: &RecordRef<'_>,
    at: &Position,
    last_index: &mut Option<u64>,
    p: &mut Pipeline<W>,
) -> Result<(), RunError> {
    let rec = Record {
        conn: rec.conn + at.conn_base,
        index: rec.index + at.index_base,
        ..Record::from(*rec)
    };
    *last_index = Some(rec.index);
    p.record(rec)?;
    Ok(())
}

/// [`Event::Open`] for each connection of `conns` from `*opened` on.
fn open_new<W: Write>(
    conns: &[Connection],
    opened: &mut usize,
    at: &Position,
    p: &mut Pipeline<W>,
) -> Result<(), RunError> {
    for c in &conns[(*opened).min(conns.len())..] {
        p.event(&Event::Open {
            conn: at.conn_base + *opened as u32,
            name: &c.name,
            protocol: c.protocol,
            twin_of: None,
        })?;
        *opened += 1;
    }
    Ok(())
}

/// Opens one input. A pcapng or pcap capture opened with `--raw` is read as the capture it is, and
/// a warning on standard error says so.
pub fn open_input(path: &Path, opts: &OpenOptions) -> Result<CaptureReader, RunError> {
    let reader =
        capture::open(path, opts).map_err(|e| RunError::Capture(path.display().to_string(), e))?;
    if let Some(w) = raw_warning(path, opts, reader.format()) {
        eprintln!("{w}");
    }
    Ok(reader)
}

/// The warning for `--raw` on an input that has a capture magic.
fn raw_warning(path: &Path, opts: &OpenOptions, format: Format) -> Option<String> {
    let name = match format {
        Format::Raw => return None,
        _ if !opts.raw => return None,
        Format::Pcapng => "pcapng",
        Format::Pcap => "pcap",
    };
    Some(format!(
        "warning: {}: a {name} capture, read as one: --raw applies only to input without a capture magic",
        path.display()
    ))
}

/// A progress line on standard error, only when it is a terminal.
struct Progress {
    on: bool,
    total: u64,
    last: Instant,
}

impl Progress {
    fn new(path: &Path, wanted: bool) -> Self {
        let total = if wanted {
            std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
        } else {
            0
        };
        Progress {
            on: wanted && io::stderr().is_terminal() && total > 64 << 20,
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
