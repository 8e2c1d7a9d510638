//! `vfu-dump read`: decode every record of the inputs, filter, render, count.

use std::io::Write;

use clap::Args;

use crate::error::RunError;
use crate::options::{
    FilterOpts, InputOpts, OutputOpts, ProfileArg, stats_refused, stats_warnings,
};
use crate::pipeline::{Config, FileSource, Pipeline};

/// `vfu-dump read`.
#[derive(Debug, Args)]
pub struct ReadOpts {
    /// Inputs.
    #[command(flatten)]
    pub input: InputOpts,
    /// Output.
    #[command(flatten)]
    pub output: OutputOpts,
    /// Filters.
    #[command(flatten)]
    pub filter: FilterOpts,
    /// Print statistics after the messages (with --stats only, no message lines: add -v to keep them).
    #[arg(long)]
    pub stats: bool,
    /// Interleave validation findings after the message they concern.
    #[arg(long)]
    pub validate: bool,
    /// Validation profile for --validate.
    #[arg(long, value_enum, default_value_t = ProfileArg::Spec, requires = "validate")]
    pub profile: ProfileArg,
}

/// Runs `vfu-dump read` writing to `out`.
pub fn run(opts: &ReadOpts, out: &mut dyn Write) -> Result<(), RunError> {
    stats_refused(opts.stats, &opts.output)?;
    let source = FileSource::new(&opts.input, true)?.progress(true);
    for w in stats_warnings(opts.stats, &opts.output, &opts.filter) {
        eprintln!("warning: {w}");
    }
    let cfg = Config::for_messages(
        &opts.output,
        &opts.filter,
        opts.stats,
        opts.validate.then(|| opts.profile.into()),
    )?;
    let messages = cfg.messages;
    let mut pipeline = Pipeline::new(cfg, out);
    source.feed(&mut pipeline)?;
    let totals = pipeline.finish()?;
    if messages
        && totals.shown == 0
        && let Some(line) = opts
            .filter
            .matched_nothing(totals.messages, totals.connections)
    {
        eprintln!("read: {line}");
    }
    Ok(())
}
