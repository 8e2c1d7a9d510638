//! Command-line definitions (clap derive): one struct per subcommand, plus the shared option groups.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Decode, inspect and validate vfio-user and VDUSE sessions.
#[derive(Debug, Parser)]
#[command(
    name = "vfu-dump",
    version,
    about,
    after_help = "Examples:\n  vfu-dump read corpus/lvu-sample-client.pcapng\n  vfu-dump read -v --cmd DMA_MAP,DMA_UNMAP capture.pcapng\n  vfu-dump read --format json capture.pcapng | jq 'select(.cmd_name == \"REGION_READ\")'\n  vfu-dump validate --profile libvfio-user capture.pcapng\n  vfu-dump convert sockdump.pcap out.pcapng"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Print every message of one or more captures, one line each (or JSON), with filters and statistics.
    #[command(
        after_help = "Examples:\n  vfu-dump read corpus/lvu-sample-client.pcapng\n  vfu-dump read -x --id 12 capture.pcapng            (annotated hex of message id 12)\n  vfu-dump read --errors capture.pcapng              (only error replies and malformed messages)\n  vfu-dump read --stats capture.pcapng               (counts, bytes, errnos, round-trip percentiles)\n  vfu-dump read --raw --direction c2s stream.bin     (a raw byte stream of one direction)\n  cat capture.pcapng | vfu-dump read -               (standard input)"
    )]
    Read(ReadOpts),
    /// Check message streams against the protocol's rules; exit 0 clean, 1 findings, 2 unusable input.
    #[command(
        after_help = "Examples:\n  vfu-dump validate capture.pcapng\n  vfu-dump validate --profile libvfio-user corpus/lvu-sample-client.pcapng\n  vfu-dump validate --list-rules"
    )]
    Validate(ValidateOpts),
    /// Convert any readable input (pcapng, pcap, sockdump, raw) to the vfu pcapng capture format.
    #[command(
        after_help = "Examples:\n  vfu-dump convert sockdump.pcap session.pcapng\n  vfu-dump convert --raw --direction c2s client.bin session.pcapng"
    )]
    Convert(ConvertOpts),
    /// Sit between a client and a server as a transparent socket proxy: forward every byte and file
    /// descriptor, decode and print each message live, and optionally write a capture.
    #[command(
        after_help = "Examples:\n  vfu-dump proxy --listen /tmp/vfu-client.sock --connect /run/device.sock\n  vfu-dump proxy --listen /tmp/c.sock --connect /tmp/s.sock -w session.pcapng --validate\n  vfu-dump proxy --spin 0 --listen /tmp/c.sock --connect /tmp/s.sock   (no polling between requests)\n  (then point the VMM, e.g. QEMU's vfio-user-pci socket=, at /tmp/vfu-client.sock)"
    )]
    Proxy(ProxyOpts),
    /// Play one side of a captured connection against a live peer and compare what it sends with
    /// the capture; exit 0 matched, 1 diverged, 2 unusable input.
    #[command(
        after_help = "Examples:\n  vfu-dump replay session.pcapng --connect /run/device.sock          (play the client against a fresh server)\n  vfu-dump replay session.pcapng --serve /tmp/dev.sock              (play the server for a client)\n  vfu-dump replay --conn 2 --until 40 --timing original -w again.pcapng session.pcapng --connect /run/device.sock\n  vfu-dump replay -q --format json session.pcapng --connect /run/device.sock   (divergences only, as JSON)"
    )]
    Replay(ReplayOpts),
    /// Write a Wireshark/tshark Lua dissector for vfio-user and VDUSE, generated from the codec's tables.
    #[command(
        after_help = "Examples:\n  vfu-dump wireshark-dissector > ~/.local/lib/wireshark/plugins/vfio_user.lua\n  tshark -X lua_script:vfio_user.lua -r corpus/lvu-sample-client.pcapng -Y 'vfio_user.cmd == 2'"
    )]
    WiresharkDissector,
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  vfu-dump completions bash > /etc/bash_completion.d/vfu-dump\n  vfu-dump completions zsh > ~/.zfunc/_vfu-dump"
    )]
    Completions(CompletionsOpts),
}

/// When to colour output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// When standard output is a terminal and `NO_COLOR` is not set.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One line per message.
    #[default]
    Text,
    /// One JSON object per line (field names in the README).
    Json,
}

/// A direction filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DirArg {
    /// Client to server (VDUSE: kernel to daemon).
    C2s,
    /// Server to client (VDUSE: daemon to kernel).
    S2c,
}

impl From<DirArg> for vfu_codec::Direction {
    fn from(d: DirArg) -> Self {
        match d {
            DirArg::C2s => vfu_codec::Direction::ClientToServer,
            DirArg::S2c => vfu_codec::Direction::ServerToClient,
        }
    }
}

/// Inputs shared by the subcommands that read captures.
#[derive(Debug, Args, Clone)]
pub struct InputOpts {
    /// Capture files: pcapng, pcap or sockdump (detected from the magic); `-` is standard input.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Read input without a capture magic as a raw byte stream of one direction (needs --direction).
    #[arg(long, requires = "direction")]
    pub raw: bool,
    /// Direction of a raw stream.
    #[arg(long, value_enum)]
    pub direction: Option<DirArg>,
}

/// Filters; combined, a message must pass all of them.
#[derive(Debug, Args, Clone, Default)]
pub struct FilterOpts {
    /// Only these commands (names such as DMA_MAP or numbers), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "CMD")]
    pub cmd: Vec<String>,
    /// Only one direction.
    #[arg(long = "dir", value_enum)]
    pub dir: Option<DirArg>,
    /// Only these connections, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "N")]
    pub conn: Vec<u32>,
    /// Only messages with this msg_id (a request and its reply).
    #[arg(long)]
    pub id: Option<u16>,
    /// Only error replies, malformed and truncated messages (and, with --validate, messages with findings).
    #[arg(long)]
    pub errors: bool,
}

/// Output options shared by read, and later proxy and replay.
#[derive(Debug, Args, Clone)]
pub struct OutputOpts {
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
    /// Print every field of every message.
    #[arg(short, long)]
    pub verbose: bool,
    /// Add an annotated hex dump (offset | bytes | field = value).
    #[arg(short = 'x', long)]
    pub hex: bool,
    /// Colour: auto (a terminal and no NO_COLOR), always or never.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
    /// Print times relative to the first message.
    #[arg(long)]
    pub relative: bool,
}

/// Validation profile: which documented implementation departures are accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// The spec as written.
    #[default]
    Spec,
    /// Accept libvfio-user's documented departures.
    #[value(name = "libvfio-user")]
    LibvfioUser,
    /// Accept QEMU's documented departures.
    Qemu,
}

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

/// `vfu-dump convert`.
#[derive(Debug, Args)]
pub struct ConvertOpts {
    /// Input: pcapng, pcap, sockdump or (with --raw) a raw stream; `-` is standard input.
    pub input: PathBuf,
    /// Output pcapng file; `-` is standard output.
    pub output: PathBuf,
    /// Read input without a capture magic as a raw byte stream of one direction.
    #[arg(long, requires = "direction")]
    pub raw: bool,
    /// Direction of a raw stream.
    #[arg(long, value_enum)]
    pub direction: Option<DirArg>,
}

/// `vfu-dump proxy`.
#[derive(Debug, Args)]
pub struct ProxyOpts {
    /// Socket path to listen on: clients (the VMM) connect here.
    #[arg(long, value_name = "CLIENT.sock")]
    pub listen: PathBuf,
    /// The server's socket path: every accepted client is connected to it.
    #[arg(long, value_name = "SERVER.sock")]
    pub connect: PathBuf,
    /// Write every message to this capture (pcapng, one interface per connection).
    #[arg(short = 'w', long = "write", value_name = "OUT.pcapng")]
    pub write: Option<PathBuf>,
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
    #[arg(long, value_enum, default_value_t = ProfileArg::Spec)]
    pub profile: ProfileArg,
    /// Print nothing per message (forward and capture only).
    #[arg(short, long)]
    pub quiet: bool,
}

/// Pacing of what `replay` sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Timing {
    /// Keep the captured gaps: each message goes no earlier than it did in the capture.
    Original,
    /// Send each message as soon as the conversation allows.
    #[default]
    Fast,
}

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

/// `vfu-dump completions`.
#[derive(Debug, Args)]
pub struct CompletionsOpts {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn filters_parse() {
        let cli = Cli::try_parse_from([
            "vfu-dump",
            "read",
            "--cmd",
            "DMA_MAP,9",
            "--dir",
            "s2c",
            "--conn",
            "0,2",
            "f.pcapng",
        ])
        .unwrap();
        let Cmd::Read(r) = cli.command else {
            panic!("not read")
        };
        assert_eq!(r.filter.cmd, ["DMA_MAP", "9"]);
        assert_eq!(r.filter.conn, [0, 2]);
        assert_eq!(r.filter.dir, Some(DirArg::S2c));
    }

    #[test]
    fn raw_needs_direction() {
        assert!(Cli::try_parse_from(["vfu-dump", "read", "--raw", "f.bin"]).is_err());
    }
}
