//! `vfu-dump convert`: any readable input to the vfu pcapng capture format.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;

use crate::capture::{OpenOptions, PcapngWriter};
use crate::error::RunError;
use crate::options::DirArg;
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
}

/// Runs `vfu-dump convert`.
pub fn run(opts: &ConvertOpts) -> Result<(), RunError> {
    let copts = OpenOptions {
        raw: opts.raw,
        direction: opts.direction.map(Into::into),
    };
    let mut reader = open_input(&opts.input, &copts)?;
    let out: Box<dyn Write> = if opts.output == Path::new("-") {
        Box::new(io::stdout().lock())
    } else {
        Box::new(
            File::create(&opts.output)
                .map_err(|e| RunError::Usage(format!("{}: {e}", opts.output.display())))?,
        )
    };
    let writer =
        PcapngWriter::new(Box::new(BufWriter::with_capacity(1 << 16, out)) as Box<dyn Write>)?;
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
    )?;
    pipeline.finish()?;
    Ok(())
}
