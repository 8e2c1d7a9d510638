//! The option groups that several subcommands share (clap derive): inputs, filters, output, profile.

use std::io::{self, IsTerminal};
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::validate::Profile;

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
    /// Only these commands (names such as DMA_MAP or numbers; VDUSE request types such as SET_STATUS),
    /// comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "CMD")]
    pub cmd: Vec<String>,
    /// Only one direction.
    #[arg(long = "dir", value_enum)]
    pub dir: Option<DirArg>,
    /// Only these connections, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "N")]
    pub conn: Vec<u32>,
    /// Only messages with this msg_id (VDUSE: request_id): a request and its reply.
    #[arg(long)]
    pub id: Option<u32>,
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

impl From<ProfileArg> for Profile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Spec => Profile::Spec,
            ProfileArg::LibvfioUser => Profile::LibvfioUser,
            ProfileArg::Qemu => Profile::Qemu,
        }
    }
}

/// Whether to colour, from `--color` and the environment.
pub fn use_color(when: ColorWhen) -> bool {
    match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}
