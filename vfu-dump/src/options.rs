//! The option groups that several subcommands share (clap derive): inputs, filters, output, profile.

use std::io::{self, IsTerminal};
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::capture::OpenOptions;
use crate::error::RunError;
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

impl InputOpts {
    /// How to open the files: an error when `--direction` is given without `--raw`, where it would
    /// do nothing (see [`raw_options`]).
    pub fn open_options(&self, has_dir_filter: bool) -> Result<OpenOptions, RunError> {
        raw_options(self.raw, self.direction, has_dir_filter)
    }
}

/// The [`OpenOptions`] of `--raw` and `--direction`: `--direction` without `--raw` is refused, with
/// the `--dir` filter named when the subcommand has one (`has_dir_filter`), since that is what such
/// a user usually wanted. (A pcapng or pcap input opened with `--raw` is read as the capture it is,
/// with a warning: [`crate::pipeline::open_input`].)
pub fn raw_options(
    raw: bool,
    direction: Option<DirArg>,
    has_dir_filter: bool,
) -> Result<OpenOptions, RunError> {
    if let (Some(d), false) = (direction, raw) {
        let name = d
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned());
        return Err(RunError::Usage(format!(
            "--direction {name} gives the direction of a raw byte stream and needs --raw{}",
            if has_dir_filter {
                format!(" (to show one direction of a capture, use --dir {name})")
            } else {
                String::new()
            }
        )));
    }
    Ok(OpenOptions {
        raw,
        direction: direction.map(Into::into),
    })
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

impl FilterOpts {
    /// The filters given, as they were written (`--cmd 9999 --conn 7`); `None` when there are none.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.cmd.is_empty() {
            parts.push(format!("--cmd {}", self.cmd.join(",")));
        }
        if let Some(d) = self.dir.and_then(|d| d.to_possible_value()) {
            parts.push(format!("--dir {}", d.get_name()));
        }
        if !self.conn.is_empty() {
            let c: Vec<String> = self.conn.iter().map(u32::to_string).collect();
            parts.push(format!("--conn {}", c.join(",")));
        }
        if let Some(id) = self.id {
            parts.push(format!("--id {id}"));
        }
        if self.errors {
            parts.push("--errors".to_owned());
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    /// The line for standard error when the filters let no message through: what was asked for,
    /// and what the input had (`messages` records on `connections` connections, numbered from 0).
    pub fn matched_nothing(&self, messages: u64, connections: u64) -> Option<String> {
        let asked = self.describe()?;
        let missing: Vec<String> = self
            .conn
            .iter()
            .filter(|&&c| u64::from(c) >= connections)
            .map(u32::to_string)
            .collect();
        let conns = match connections {
            0 => "no connection".to_owned(),
            1 => "1 connection, numbered 0".to_owned(),
            n => format!("{n} connections, numbered 0 to {}", n - 1),
        };
        let why = if missing.is_empty() {
            String::new()
        } else {
            format!(": there is no connection {}", missing.join(" or "))
        };
        let msgs = if messages == 1 { "message" } else { "messages" };
        Some(format!(
            "no message matched {asked}{why} (the input has {messages} {msgs} on {conns})"
        ))
    }

    /// Whether any filter was given.
    pub fn any(&self) -> bool {
        self.describe().is_some()
    }
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

impl OutputOpts {
    /// Warnings for output options that do nothing with the format chosen.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.format == OutputFormat::Json {
            if self.verbose {
                w.push("-v does nothing with --format json, whose objects hold every field".into());
            }
            if self.hex {
                w.push("-x is a text form: --format json has no hex dump (each body part has its offset and length)".into());
            }
            if self.relative {
                w.push("--relative applies to text lines: --format json gives ts_ns, the wall-clock time".into());
            }
            if self.color == ColorWhen::Always {
                w.push(
                    "--color always does nothing with --format json, which is never coloured"
                        .into(),
                );
            }
        }
        w
    }

    /// Warnings for output options that apply to message lines, when none is printed (`why`:
    /// the option that turned them off, such as `--quiet`).
    pub fn line_warnings(&self, why: &str) -> Vec<String> {
        let mut w = Vec::new();
        for (on, name) in [
            (self.verbose, "-v"),
            (self.hex, "-x"),
            (self.relative, "--relative"),
        ] {
            if on {
                w.push(format!(
                    "{name} applies to message lines, which {why} turns off"
                ));
            }
        }
        w
    }
}

/// What `--stats` cannot go with, for the subcommands that have it (`read`, `trace`): its table is
/// text, with no JSON form.
pub fn stats_refused(stats: bool, output: &OutputOpts) -> Result<(), RunError> {
    if stats && output.format == OutputFormat::Json {
        return Err(RunError::Usage(
            "--stats prints a table of text, which has no JSON form: drop --format json (or --stats)"
                .into(),
        ));
    }
    Ok(())
}

/// Warnings for options that do nothing with the others: the output options' ([`OutputOpts::warnings`])
/// and, when `--stats` alone leaves message lines out, the filters and `-x`.
pub fn stats_warnings(stats: bool, output: &OutputOpts, filter: &FilterOpts) -> Vec<String> {
    let mut w = output.warnings();
    if stats && !output.verbose {
        if let Some(f) = filter.describe() {
            w.push(format!(
                "{f} selects message lines, which --stats leaves out: add -v to print them (the \
                 statistics count every message)"
            ));
        }
        if output.hex {
            w.push("-x dumps message lines, which --stats leaves out: add -v to print them".into());
        }
    }
    w
}

/// Parses `--snaplen N`: a number of bytes, at least [`crate::capture::MIN_SNAPLEN`].
pub fn snaplen_arg(s: &str) -> Result<u32, String> {
    let min = crate::capture::MIN_SNAPLEN;
    match s.parse::<u32>() {
        Ok(n) if n >= min => Ok(n),
        Ok(n) => Err(format!(
            "{n} is below {min}, the least that keeps every header and fixed part whole (262144 suits Wireshark)"
        )),
        Err(_) => Err(format!("not a number of bytes (such as 262144): {s}")),
    }
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
