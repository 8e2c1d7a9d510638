//! `vfu-dump convert`: any readable input to the vfu pcapng capture format.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use crate::capture::{AtomicFile, PcapngWriter};
use crate::error::RunError;
use crate::options::{DirArg, raw_options, snaplen_arg};
use crate::pipeline::{Config, Pipeline, Position, feed_reader, open_input};

/// `vfu-dump convert`.
#[derive(Debug, Args)]
pub struct ConvertOpts {
    /// Input: pcapng, pcap, sockdump or (with --raw) a raw stream; `-` is standard input.
    pub input: PathBuf,
    /// Output pcapng file; `-` is standard output.
    pub output: PathBuf,
    /// Read input without a capture magic as a raw byte stream of one direction.
    #[arg(long, requires = "direction")]
    pub raw: bool,
    /// Direction of a raw stream.
    #[arg(long, value_enum)]
    pub direction: Option<DirArg>,
    /// Cut records to at most N bytes (exported-PDU tags and message; at least 256), each with its
    /// message's whole length, as pcapng marks a cut packet: 262144 makes a capture Wireshark and
    /// tshark open whatever the message sizes (they stop at the first record over 256 KiB).
    /// Default: whole messages.
    #[arg(long, value_name = "N", value_parser = snaplen_arg)]
    pub snaplen: Option<u32>,
}

/// Runs `vfu-dump convert`. The output is written under a temporary name beside it and renamed
/// onto it once complete ([`AtomicFile`]): when the input is damaged or unreadable, or writing fails,
/// no output file is left and the error says so.
pub fn run(opts: &ConvertOpts) -> Result<(), RunError> {
    let copts = raw_options(opts.raw, opts.direction, false)?;
    let mut reader = open_input(&opts.input, &copts)?;
    let to_stdout = opts.output == Path::new("-");
    let (pending, out): (Option<AtomicFile>, Box<dyn Write>) = if to_stdout {
        (None, Box::new(io::stdout().lock()))
    } else {
        let (pending, file) =
            AtomicFile::create(&opts.output).map_err(|e| RunError::Usage(e.to_string()))?;
        (Some(pending), Box::new(file))
    };
    let not_written = |e: RunError| match (&pending, e) {
        (None, e) => e,
        (Some(_), RunError::Io(e)) => RunError::Usage(format!(
            "writing {} failed: {e}; it was not written",
            opts.output.display()
        )),
        (Some(_), e) => RunError::Usage(format!("{e}; {} was not written", opts.output.display())),
    };
    let writer = PcapngWriter::with_snaplen(
        Box::new(BufWriter::with_capacity(1 << 16, out)) as Box<dyn Write>,
        opts.snaplen.unwrap_or(0),
    )
    .map_err(|e| not_written(RunError::Io(e)))?;
    // Nothing is printed: the pipeline only writes the capture (connections as the input names them,
    // in its order, including those without records).
    let cfg = Config {
        messages: false,
        ..Config::default()
    };
    let mut pipeline = Pipeline::new(cfg, io::sink());
    pipeline.capture_to(writer);
    feed_reader(
        &mut reader,
        &opts.input,
        false,
        &mut Position::default(),
        &mut pipeline,
    )
    .and_then(|()| pipeline.finish().map(|_| ()).map_err(RunError::from))
    .map_err(&not_written)?;
    if let Some(w) = pipeline.capture_writer() {
        for note in w.size_notes() {
            eprintln!("convert: {note}");
        }
    }
    drop(pipeline);
    if let Some(p) = pending {
        p.commit().map_err(|e| RunError::Usage(e.to_string()))?;
    }
    Ok(())
}
