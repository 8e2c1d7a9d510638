//! `vfu-dump validate`: check message streams against the protocol's rules, print the findings.

use std::io::{self, Write};

use clap::Args;

use crate::error::RunError;
use crate::options::{InputOpts, OutputFormat, ProfileArg};
use crate::pipeline::{Config, FileSource, FindingsOut, Pipeline};
use crate::validate::RULES;

/// `vfu-dump validate`.
#[derive(Debug, Args)]
pub struct ValidateOpts {
    /// Inputs.
    #[command(flatten)]
    pub input: InputOpts,
    /// Which implementation departures are accepted.
    #[arg(long, value_enum, default_value_t = ProfileArg::Spec)]
    pub profile: ProfileArg,
    /// Print every rule (id, severity, spec section, description) and exit.
    #[arg(long)]
    pub list_rules: bool,
    /// Output format of the findings.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Also report findings of severity info.
    #[arg(long)]
    pub info: bool,
}

/// Prints the rule table.
pub fn list_rules(out: &mut dyn Write) -> io::Result<()> {
    for r in RULES {
        writeln!(
            out,
            "{:<40} {:<7} {:<10} {}",
            r.id,
            r.severity.name(),
            r.section,
            r.description
        )?;
    }
    Ok(())
}

/// Runs `vfu-dump validate`; returns the number of findings of severity warning or error.
pub fn run(opts: &ValidateOpts, out: &mut dyn Write) -> Result<u64, RunError> {
    if opts.list_rules {
        list_rules(out)?;
        return Ok(0);
    }
    let source = FileSource::new(&opts.input)?;
    let cfg = Config {
        format: opts.format,
        messages: false,
        validate: Some(opts.profile.into()),
        findings: FindingsOut {
            info: opts.info,
            without_messages: true,
            indent_final: false,
            per_input: true,
        },
        ..Config::default()
    };
    let mut pipeline = Pipeline::new(cfg, out);
    source.feed(&mut pipeline)?;
    let totals = pipeline.finish()?;
    Ok(totals.problems())
}
