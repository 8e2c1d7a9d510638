//! `vfu-dump read`: decode every record of the inputs, filter, render, count.

use std::io::Write;

use clap::Args;

use crate::error::RunError;
use crate::options::{
    FilterOpts, InputOpts, OutputOpts, ProfileArg, stats_refused, stats_warnings, use_color,
};
use crate::pipeline::{Config, FileSource, Filter, FindingsOut, Pipeline, Relative};
use crate::render::Style;

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
    let messages = !opts.stats || opts.output.verbose;
    let cfg = Config {
        format: opts.output.format,
        style: Style {
            color: use_color(opts.output.color),
            verbose: opts.output.verbose,
            hex: opts.output.hex,
            relative_to: None,
        },
        relative: if opts.output.relative {
            Relative::FirstMessage
        } else {
            Relative::Off
        },
        filter: Filter::new(&opts.filter)?,
        messages,
        events: false,
        validate: opts.validate.then(|| opts.profile.into()),
        findings: FindingsOut {
            info: true,
            // With --stats alone no message line is printed: the findings stand on their own.
            without_messages: !messages,
            indent_final: messages,
            per_input: false,
        },
        stats: opts.stats,
    };
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
