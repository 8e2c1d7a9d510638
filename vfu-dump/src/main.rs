//! `vfu-dump`: decode, inspect and validate vfio-user and VDUSE sessions.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use vfu_dump::cli::{Cli, Cmd};
use vfu_dump::read::RunError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let result = match &cli.command {
        Cmd::Read(o) => vfu_dump::read::run(o, &mut out).map(|()| ExitCode::SUCCESS),
        Cmd::Validate(o) => vfu_dump::validate_cli::run(o, &mut out).map(|n| {
            if n == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }),
        Cmd::Convert(o) => vfu_dump::convert::run(o).map(|()| ExitCode::SUCCESS),
        Cmd::Proxy(o) => vfu_dump::proxy::run(o, &mut out).map(|()| ExitCode::SUCCESS),
        Cmd::Replay(o) => vfu_dump::replay::run(o, &mut out).map(ExitCode::from),
        Cmd::WiresharkDissector => vfu_dump::dissector::generate(&mut out)
            .map(|()| ExitCode::SUCCESS)
            .map_err(RunError::Io),
        Cmd::Completions(o) => {
            clap_complete::generate(o.shell, &mut Cli::command(), "vfu-dump", &mut out);
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
