//! `vfu-dump trace`: the command line of the tracer ([`crate::trace`]), a source of messages for the
//! pipeline.
//!
//! The tracer runs on this thread and hands each message, ioctl record and event to the
//! [`Pipeline`] as it happens, so the output is `read`'s (text, `-v`, `-x`, `--format json`,
//! filters, `--validate --profile`, `--stats`), with the connection events and notes the proxy
//! prints too, and a line saying what each passed descriptor is; `-w FILE` is the pipeline's
//! capture. Output is flushed whenever the tracer is about to wait for the tracees.

use std::ffi::OsString;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use clap::Args;

use crate::capture::{AtomicFile, PcapngWriter, Protocol};
use crate::error::RunError;
use crate::options::{
    FilterOpts, OutputOpts, ProfileArg, snaplen_arg, stats_refused, stats_warnings,
};
use crate::pipeline::{self, Config, Pipeline, Record};
use crate::trace::{Event, Sink, Target};

/// `vfu-dump trace`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["pids", "command"])))]
pub struct TraceOpts {
    /// Attach to these running processes (comma-separated pids) and their threads and children,
    /// instead of starting a program; detach on SIGINT/SIGTERM or when they exit.
    #[arg(
        short = 'p',
        long = "pid",
        value_delimiter = ',',
        value_name = "PID",
        conflicts_with = "command"
    )]
    pub pids: Vec<i32>,
    /// Also write every message and ioctl to this capture (pcapng, one interface per connection).
    /// It is written as .OUT.pcapng.vfu-PID-N.tmp beside OUT.pcapng and renamed onto it when the
    /// trace ends (a trace that fails leaves none).
    #[arg(short = 'w', long = "write", value_name = "OUT.pcapng")]
    pub write: Option<PathBuf>,
    /// Cut the capture's records to at most N bytes (exported-PDU tags and message; at least 256),
    /// each with its message's whole length, as pcapng marks a cut packet: 262144 makes a
    /// capture Wireshark and tshark open whatever the message sizes. Default: whole messages.
    #[arg(long, value_name = "N", requires = "write", value_parser = snaplen_arg)]
    pub snaplen: Option<u32>,
    /// Output.
    #[command(flatten)]
    pub output: OutputOpts,
    /// Filters (of what is printed; everything is captured with -w).
    #[command(flatten)]
    pub filter: FilterOpts,
    /// Print statistics at the end (with --stats only, no message lines: add -v to keep them).
    #[arg(long)]
    pub stats: bool,
    /// Interleave validation findings after the message they concern.
    #[arg(long)]
    pub validate: bool,
    /// Validation profile for --validate.
    #[arg(long, value_enum, default_value_t = ProfileArg::Spec, requires = "validate")]
    pub profile: ProfileArg,
    /// The program to start and follow, with its arguments (after --). Its exit status becomes
    /// vfu-dump's.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Help text examples.
pub const EXAMPLES: &str = "Examples:
  Start a device and follow it (and its threads and children):
    vfu-dump trace -- ./server /tmp/dev.sock
  Attach to a running QEMU, write a capture; Ctrl-C detaches, QEMU runs on:
    vfu-dump trace -p $(pidof qemu-system-x86_64) -w vm.pcapng
  Attach to a VDUSE daemon: its requests, responses and ioctls, validated:
    vfu-dump trace -p $(pidof qemu-storage-daemon) --validate
  Attach to QEMU and print only its DMA_MAPs, as JSON:
    vfu-dump trace --format json --cmd DMA_MAP -p $(pidof qemu-system-x86_64)
  Counts and round trips, printed when detached:
    vfu-dump trace --stats -p 4242

Messages are printed as `vfu-dump read` prints them, with `-- ` lines for connections and notes
(JSON objects with --format json) and, after a message that carried descriptors, what each one is.
Attaching needs the right to ptrace the process (the same user and
/proc/sys/kernel/yama/ptrace_scope 0, or CAP_SYS_PTRACE).";

/// Feeds the tracer's events to the pipeline.
struct Feed<'p, W: Write> {
    pipeline: &'p mut Pipeline<W>,
    index: u64,
}

fn io_error(e: pipeline::Error) -> io::Error {
    match e {
        pipeline::Error::Output(e) | pipeline::Error::Capture(e) => e,
    }
}

impl<W: Write> Sink for Feed<'_, W> {
    fn event(&mut self, ev: &Event<'_>) -> io::Result<()> {
        let p = &mut *self.pipeline;
        match *ev {
            Event::Open {
                conn,
                name,
                protocol,
                detail,
            } => {
                let protocol = if protocol == Protocol::VduseIoctl {
                    Protocol::Vduse
                } else {
                    protocol
                };
                p.event(&pipeline::Event::Open {
                    conn,
                    name,
                    protocol,
                    twin_of: None,
                })
                .map_err(io_error)?;
                if !detail.is_empty() {
                    p.event(&pipeline::Event::Note {
                        conn: Some(conn),
                        text: detail,
                    })
                    .map_err(io_error)?;
                }
            }
            Event::Message {
                conn,
                direction,
                protocol,
                ts_ns,
                data,
                fds,
                truncated,
            } => {
                p.record(Record {
                    conn,
                    index: self.index,
                    ts_ns,
                    direction,
                    protocol,
                    fds: fds.len() as u32,
                    fd_kinds: fds,
                    truncated,
                    data,
                    orig_len: data.len(),
                })
                .map_err(io_error)?;
                self.index += 1;
            }
            Event::Note { conn, text } => p
                .event(&pipeline::Event::Note { conn, text })
                .map_err(io_error)?,
            Event::Close { conn, messages } => p
                .event(&pipeline::Event::Close { conn, messages })
                .map_err(io_error)?,
        }
        Ok(())
    }

    fn idle(&mut self) -> io::Result<()> {
        self.pipeline.flush().map_err(io_error)
    }
}

/// Runs `vfu-dump trace`, printing to `out`. Returns the launched program's exit status (128 + the
/// signal that killed it), 0 in attach mode.
pub fn run(opts: &TraceOpts, out: &mut dyn Write) -> Result<u8, RunError> {
    stats_refused(opts.stats, &opts.output)?;
    for w in stats_warnings(opts.stats, &opts.output, &opts.filter) {
        eprintln!("warning: {w}");
    }
    let target = if opts.pids.is_empty() {
        Target::Launch(opts.command.clone())
    } else {
        Target::Attach(opts.pids.clone())
    };
    let mut cfg = Config::for_messages(
        &opts.output,
        &opts.filter,
        opts.stats,
        opts.validate.then(|| opts.profile.into()),
    )?;
    // Beside read's: the connections, notes and summary of the trace, and the final findings
    // indented also after --stats alone.
    cfg.events = true;
    cfg.findings.indent_final = true;
    let messages = cfg.messages;
    let mut pipeline = Pipeline::new(cfg, out);
    let mut pending = None;
    if let Some(p) = &opts.write {
        let (file, f) = AtomicFile::create(p).map_err(|e| RunError::Usage(e.to_string()))?;
        let w: Box<dyn Write> = Box::new(BufWriter::with_capacity(1 << 20, f));
        pipeline.capture_to(PcapngWriter::with_snaplen(w, opts.snaplen.unwrap_or(0))?);
        pending = Some(file);
    }
    let mut feed = Feed {
        pipeline: &mut pipeline,
        index: 0,
    };
    let traced = crate::trace::run(&target, &mut feed);
    // What was recorded is flushed, and kept when the trace ended as traces end: the tracees exited
    // or were detached (a signal, or the output went away); after a failure, it is not.
    let finished = pipeline.finish();
    for note in pipeline
        .capture_writer()
        .map(|w| w.size_notes())
        .unwrap_or_default()
    {
        eprintln!("trace: {note}");
    }
    let ended = traced
        .as_ref()
        .map_or_else(|e| e.kind() == io::ErrorKind::BrokenPipe, |_| true);
    if let Some(file) = pending
        && ended
        && finished.is_ok()
    {
        file.commit().map_err(|e| RunError::Usage(e.to_string()))?;
    }
    if let Ok(t) = &finished
        && messages
        && t.shown == 0
        && t.messages > 0
        && let Some(line) = opts.filter.matched_nothing(t.messages, t.connections)
    {
        eprintln!("trace: {line}");
    }
    let summary = traced.map_err(|e| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            // The output went away (`| head`): the tracees were detached; not an error to report.
            RunError::Io(e)
        } else {
            RunError::Usage(format!("trace: {e}"))
        }
    })?;
    finished?;
    Ok(summary.exit.map_or(0, |c| c.clamp(0, 255) as u8))
}
