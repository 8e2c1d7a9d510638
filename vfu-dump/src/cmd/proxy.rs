//! `vfu-dump proxy`: the command line of the proxy (`crate::proxy`): options, signals, output.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use clap::Args;

use crate::error::RunError;
use crate::options::{FilterOpts, OutputFormat, OutputOpts, ProfileArg, snaplen_arg, use_color};
use crate::pipeline::Filter;
use crate::proxy::{Config, PrintOptions, Proxy, Sink};
use crate::render::Style;

/// `vfu-dump proxy`.
#[derive(Debug, Args)]
pub struct ProxyOpts {
    /// Socket path to listen on: clients (the VMM) connect here.
    #[arg(long, value_name = "CLIENT.sock")]
    pub listen: PathBuf,
    /// The server's socket path: every accepted client is connected to it.
    #[arg(long, value_name = "SERVER.sock")]
    pub connect: PathBuf,
    /// Write every message to this capture (pcapng, one interface per connection). It is written
    /// as .OUT.pcapng.vfu-PID-N.tmp beside OUT.pcapng and renamed onto it when the proxy stops.
    #[arg(short = 'w', long = "write", value_name = "OUT.pcapng")]
    pub write: Option<PathBuf>,
    /// Cut the capture's records to at most N bytes (exported-PDU tags and message; at least 256),
    /// each with its message's whole length, as pcapng marks a cut packet: 262144 makes a
    /// capture Wireshark and tshark open whatever the message sizes (they stop at the first record
    /// over 256 KiB). Default: whole messages, so that read, validate and replay have every byte;
    /// `vfu-dump convert --snaplen` cuts a copy later.
    #[arg(long, value_name = "N", requires = "write", value_parser = snaplen_arg)]
    pub snaplen: Option<u32>,
    /// How long to keep retrying a server that is not listening yet, in seconds.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub connect_timeout: f64,
    /// Permission bits of the listen socket (octal); whoever can connect gets the device.
    #[arg(long, default_value = "600", value_name = "OCTAL")]
    pub mode: String,
    /// After forwarding a request, keep polling the client this long before sleeping, in
    /// microseconds: the next request is picked up without a wake-up, which makes round trips
    /// faster while requests keep coming, at the cost of a busy processor per such connection (at
    /// most all processors but one; none on a 1-processor machine). 0: never poll.
    #[arg(long, default_value_t = 50, value_name = "MICROSECONDS")]
    pub spin: u64,
    /// Output.
    #[command(flatten)]
    pub output: OutputOpts,
    /// Filters (of what is printed; everything is forwarded and captured).
    #[command(flatten)]
    pub filter: FilterOpts,
    /// Print validation findings live.
    #[arg(long)]
    pub validate: bool,
    /// Validation profile for --validate.
    #[arg(long, value_enum, default_value_t = ProfileArg::Spec, requires = "validate")]
    pub profile: ProfileArg,
    /// Print nothing per message (forward and capture only).
    #[arg(short, long)]
    pub quiet: bool,
}

/// Warnings for options that would do nothing with the others given.
fn warnings(opts: &ProxyOpts) -> Vec<String> {
    let mut w = opts.output.warnings();
    if opts.quiet {
        w.extend(opts.output.line_warnings("--quiet"));
        if let Some(f) = opts.filter.describe().filter(|_| !opts.validate) {
            w.push(format!(
                "{f} selects message lines, which --quiet turns off (everything is forwarded and captured)"
            ));
        }
    }
    w
}

/// Runs `vfu-dump proxy` until SIGINT or SIGTERM; the output goes to `out` (flushed after each batch
/// of messages, so it can be followed live).
pub fn run(opts: &ProxyOpts, out: &mut dyn Write) -> Result<(), RunError> {
    let mode = u32::from_str_radix(opts.mode.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| {
            RunError::Usage(format!(
                "--mode {}: not an octal permission such as 600 or 660",
                opts.mode
            ))
        })?;
    let connect_timeout = Duration::try_from_secs_f64(opts.connect_timeout).map_err(|_| {
        RunError::Usage(format!(
            "--connect-timeout {}: not a number of seconds",
            opts.connect_timeout
        ))
    })?;
    let filter = Filter::new(&opts.filter)?;
    for w in warnings(opts) {
        eprintln!("warning: {w}");
    }
    let (tx, rx): (SyncSender<Vec<u8>>, Receiver<Vec<u8>>) = sync_channel(64);
    let print = PrintOptions {
        sink: Sink::Channel(tx),
        format: opts.output.format,
        style: Style {
            color: use_color(opts.output.color),
            verbose: opts.output.verbose,
            hex: opts.output.hex,
            relative_to: None,
        },
        relative: opts.output.relative,
        filter,
        messages: !opts.quiet,
        validate: opts.validate.then(|| opts.profile.into()),
    };
    let config = Config {
        listen: opts.listen.clone(),
        connect: opts.connect.clone(),
        mode,
        connect_timeout,
        capture: opts.write.clone(),
        snaplen: opts.snaplen.unwrap_or(0),
        print: Some(print),
        spin: Duration::from_micros(opts.spin),
        splice: true,
    };
    // The handlers are in place before the listen socket appears: a client (or a supervisor) that
    // sees the socket may signal at once, and a signal before the handlers would kill the proxy with
    // its capture unfinished. They write into a pipe of ours; a thread passes a stop on.
    let (signal_rx, signal_tx) = UnixStream::pair()?;
    let mut ids = Vec::new();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        ids.push(signal_hook::low_level::pipe::register(
            sig,
            signal_tx.try_clone()?,
        )?);
    }
    drop(signal_tx);
    let handle = match Proxy::start(config) {
        Ok(h) => h,
        Err(e) => {
            for id in ids {
                signal_hook::low_level::unregister(id);
            }
            return Err(RunError::Usage(format!(
                "proxy on {}: {e}",
                opts.listen.display()
            )));
        }
    };
    let stopper = handle.stopper()?;
    // Ends when the handlers are unregistered (their ends of the pipe closed): a read of 0.
    std::thread::spawn(move || {
        let mut b = [0u8; 1];
        if matches!((&signal_rx).read(&mut b), Ok(n) if n > 0) {
            let _ = (&stopper).write(&[1]);
        }
    });
    if opts.output.format == OutputFormat::Text && !opts.quiet {
        writeln!(
            out,
            "-- listening on {} (mode {mode:04o}), server {}{}",
            opts.listen.display(),
            opts.connect.display(),
            opts.write
                .as_ref()
                .map_or(String::new(), |w| format!(", capture {}", w.display()))
        )?;
        out.flush()?;
    }
    // The printer's batches, until it ends (after a stop). A closed standard output does not stop
    // the proxy: the VMM's device must keep working; printing stops.
    let mut out_error = None;
    for batch in rx {
        if out_error.is_none()
            && let Err(e) = out.write_all(&batch).and_then(|()| out.flush())
        {
            if e.kind() != io::ErrorKind::BrokenPipe {
                eprintln!("vfu-dump proxy: writing output: {e}; still forwarding and capturing");
            }
            out_error = Some(e);
        }
    }
    for id in ids {
        signal_hook::low_level::unregister(id);
    }
    let summary = handle.wait();
    match summary {
        Ok(_) => Ok(()),
        Err(e) => Err(RunError::Usage(format!(
            "the capture failed: {e}; {} was not written",
            opts.write
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string())
        ))),
    }
}
