//! `vfu-dump read`: decode every record of the inputs, filter, render, count.

use std::io::Write;

use clap::Args;

use crate::error::RunError;
use crate::options::{FilterOpts, InputOpts, OutputOpts, ProfileArg, use_color};
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
    #[arg(long, value_enum, default_value_t = ProfileArg::Spec)]
    pub profile: ProfileArg,
}

/// Runs `vfu-dump read` writing to `out`.
pub fn run(opts: &ReadOpts, out: &mut dyn Write) -> Result<(), RunError> {
    let source = FileSource::new(&opts.input)?.progress(true);
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
        messages: !opts.stats || opts.output.verbose,
        events: false,
        validate: opts.validate.then(|| opts.profile.into()),
        findings: FindingsOut {
            info: true,
            without_messages: false,
            indent_final: true,
            per_input: false,
        },
        stats: opts.stats,
    };
    let mut pipeline = Pipeline::new(cfg, out);
    source.feed(&mut pipeline)?;
    pipeline.finish()?;
    Ok(())
}
