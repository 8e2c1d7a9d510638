//! `vfu-dump validate`: check message streams against the protocol's rules, print the findings.

use std::io::{self, Write};

use clap::{Args, ValueEnum};

use crate::error::RunError;
use crate::options::{InputOpts, OutputFormat, ProfileArg};
use crate::pipeline::{Config, FileSource, FindingsOut, Pipeline, Totals};
use crate::render::count_of;
use crate::validate::{Profile, RULES};

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
    #[arg(long, conflicts_with_all = ["files", "raw", "direction", "info", "profile", "format"])]
    pub list_rules: bool,
    /// Output format of the findings.
    #[arg(long, value_enum, default_value_t = FindingsFormat::Text)]
    pub format: FindingsFormat,
    /// Also report findings of severity info.
    #[arg(long)]
    pub info: bool,
}

/// How `validate` prints its findings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum FindingsFormat {
    /// One line per finding (`conn 0 #41 +0x18 error rule-id: …`); the summary line goes to
    /// standard error.
    #[default]
    Text,
    /// One JSON object per finding, a line each; the summary line goes to standard error.
    Json,
}

impl From<FindingsFormat> for OutputFormat {
    fn from(f: FindingsFormat) -> Self {
        match f {
            FindingsFormat::Text => OutputFormat::Text,
            FindingsFormat::Json => OutputFormat::Json,
        }
    }
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
    let source = FileSource::new(&opts.input, false)?;
    let cfg = Config {
        format: opts.format.into(),
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
    eprintln!("{}", summary(&totals, opts));
    Ok(totals.problems())
}

/// The closing line on standard error: `validate: 224 messages, 1 connection; 0 errors, 0 warnings,
/// 2 info (shown with --info); profile spec`.
pub fn summary(t: &Totals, opts: &ValidateOpts) -> String {
    let [info, warnings, errors] = t.findings;
    format!(
        "validate: {}, {}; {}, {}, {}{}; profile {}",
        count_of(t.messages, "message", "messages"),
        count_of(t.connections, "connection", "connections"),
        count_of(errors, "error", "errors"),
        count_of(warnings, "warning", "warnings"),
        info,
        if opts.info || info == 0 {
            " info"
        } else {
            " info (shown with --info)"
        },
        Profile::from(opts.profile).name()
    )
}
