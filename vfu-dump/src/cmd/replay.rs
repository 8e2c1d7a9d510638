//! `vfu-dump replay`: the command line of the replay (`crate::replay`).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::error::RunError;
use crate::options::{OutputOpts, use_color};
use crate::render::Style;
use crate::replay::{Options, Output, ReplayError, Serving, Side, Timing, client, load};

/// `vfu-dump replay`.
#[derive(Debug, Args)]
pub struct ReplayOpts {
    /// The capture: pcapng, pcap or sockdump; `-` is standard input.
    #[arg(value_name = "CAPTURE")]
    pub capture: PathBuf,
    /// Play the client side against the server listening on this socket.
    #[arg(
        long,
        value_name = "SERVER.sock",
        conflicts_with = "serve",
        required_unless_present = "serve"
    )]
    pub connect: Option<PathBuf>,
    /// Play the server side: listen on this socket and answer one client with the captured replies.
    #[arg(long, value_name = "SERVER.sock")]
    pub serve: Option<PathBuf>,
    /// Which connection of the capture (needed when it has several).
    #[arg(long, value_name = "N")]
    pub conn: Option<u32>,
    /// Stop after the first N messages of the connection (both directions).
    #[arg(long, value_name = "N")]
    pub until: Option<u64>,
    /// original: keep the captured gaps before what the replay sends; fast: no waiting.
    #[arg(long, value_enum, default_value_t = Timing::Fast)]
    pub timing: Timing,
    /// How long to wait for each message the live peer should send, in seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// Write the replayed conversation to this capture (pcapng).
    #[arg(short = 'w', long = "write", value_name = "OUT.pcapng")]
    pub write: Option<PathBuf>,
    /// Print only divergences and the summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Output.
    #[command(flatten)]
    pub output: OutputOpts,
}

fn run_error(e: ReplayError, file: &str) -> RunError {
    match e {
        ReplayError::Capture(f, e) => RunError::Capture(f, e),
        ReplayError::Output(e) => RunError::Io(e),
        e @ ReplayError::BadCapture { .. } => RunError::Usage(format!("{file}: {e}")),
        e => RunError::Usage(e.to_string()),
    }
}

/// Runs `vfu-dump replay`; returns the exit status, 0 when the replay matched the capture and 1
/// when anything diverged.
pub fn run(opts: &ReplayOpts, out: &mut dyn Write) -> Result<u8, RunError> {
    let file = opts.capture.display().to_string();
    let timeout = Duration::try_from_secs_f64(opts.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| {
            RunError::Usage(format!(
                "--timeout {}: not a positive number of seconds",
                opts.timeout
            ))
        })?;
    let mut warnings = opts.output.warnings();
    if opts.quiet {
        warnings.extend(opts.output.line_warnings("--quiet"));
    }
    for w in warnings {
        eprintln!("warning: {w}");
    }
    if opts.until == Some(0) {
        return Err(RunError::Usage("--until 0: nothing to replay".into()));
    }
    let (side, peer) = match (&opts.connect, &opts.serve) {
        (Some(p), None) => (Side::Client, p),
        (None, Some(p)) => (Side::Server, p),
        _ => {
            return Err(RunError::Usage(
                "give one of --connect SERVER.sock (play the client) or --serve SERVER.sock (play the server)"
                    .into(),
            ));
        }
    };
    let plan = load(&opts.capture, opts.conn, opts.until, side).map_err(|e| run_error(e, &file))?;
    let style = Style {
        color: use_color(opts.output.color),
        verbose: opts.output.verbose,
        hex: opts.output.hex,
        relative_to: None,
    };
    let mut output = Output::new(out)
        .format(opts.output.format)
        .style(style)
        .relative(opts.output.relative)
        .messages(!opts.quiet);
    if let Some(w) = &opts.write {
        let name = format!(
            "vfio-user:0:{} (replay of {file} connection {})",
            peer.display(),
            plan.conn
        );
        output = output
            .capture_to(w, &name)
            .map_err(|e| run_error(e, &file))?;
    }
    let options = Options {
        timing: opts.timing,
        timeout,
    };
    let what = format!(
        "connection {} ({}) of {file}, {} message{}",
        plan.conn,
        plan.conn_name,
        plan.steps.len(),
        if plan.steps.len() == 1 { "" } else { "s" }
    );
    let report = match side {
        Side::Client => {
            if !opts.quiet {
                output
                    .note(&format!(
                        "replaying the client side of {what} against {}",
                        peer.display()
                    ))
                    .map_err(|e| run_error(e, &file))?;
            }
            client::play(&plan, peer, &options, &mut output)
        }
        Side::Server => {
            let serving = Serving::bind(peer).map_err(|e| run_error(e, &file))?;
            if !opts.quiet {
                output
                    .note(&format!(
                        "serving the server side of {what} on {}; waiting for a client",
                        peer.display()
                    ))
                    .map_err(|e| run_error(e, &file))?;
                output.flush_now().map_err(|e| run_error(e, &file))?;
            }
            serving.serve(&plan, &options, &mut output)
        }
    }
    .map_err(|e| run_error(e, &file))?;
    output
        .summary(&report, "replay")
        .map_err(|e| run_error(e, &file))?;
    Ok(if report.matched() { 0 } else { 1 })
}
