//! `vfu-dump completions`: a shell completion script.

use std::io::Write;

use clap::Args;

/// `vfu-dump completions`.
#[derive(Debug, Args)]
pub struct CompletionsOpts {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Writes the completion script of `command` (the whole command line, from `Cli::command()`).
pub fn run(opts: &CompletionsOpts, command: &mut clap::Command, out: &mut dyn Write) {
    clap_complete::generate(opts.shell, command, "vfu-dump", out);
}
