//! `vfu-dump`: decode, inspect and validate vfio-user and VDUSE sessions. This file only dispatches
//! to the subcommands (`vfu_dump::cmd`).

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use vfu_dump::cmd::{self, Cli, Cmd};
use vfu_dump::error::RunError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let result = match &cli.command {
        Cmd::Read(o) => cmd::read::run(o, &mut out).map(|()| ExitCode::SUCCESS),
        Cmd::Validate(o) => cmd::validate::run(o, &mut out).map(|n| {
            if n == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }),
        Cmd::Convert(o) => cmd::convert::run(o).map(|()| ExitCode::SUCCESS),
        Cmd::Proxy(o) => cmd::proxy::run(o, &mut out).map(|()| ExitCode::SUCCESS),
        Cmd::Replay(o) => cmd::replay::run(o, &mut out).map(ExitCode::from),
        Cmd::Trace(o) => cmd::trace::run(o, &mut out).map(ExitCode::from),
        Cmd::WiresharkDissector => cmd::dissector::run(&mut out).map(|()| ExitCode::SUCCESS),
        Cmd::Completions(o) => {
            cmd::completions::run(o, &mut Cli::command(), &mut out);
            Ok(ExitCode::SUCCESS)
        }
    };
    let flushed = out.flush();
    match (result, flushed) {
        (Err(RunError::Io(e)), _) | (Ok(_), Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        (Ok(code), Ok(())) => code,
        (Ok(_), Err(e)) | (Err(RunError::Io(e)), _) => {
            eprintln!("error: writing output: {e}");
            ExitCode::from(2)
        }
        (Err(e), _) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
