//! The subcommands, one module each: its options (clap derive) and its `run`. [`Cli`] and [`Cmd`]
//! gather them for the command line; the option groups several share are in [`crate::options`].
//!
//! No subcommand module imports another, nor this one: what two of them share lives in a layer
//! below (see `docs/architecture.md`).

pub mod completions;
pub mod convert;
pub mod dissector;
pub mod proxy;
pub mod read;
pub mod replay;
pub mod trace;
pub mod validate;

use clap::{Parser, Subcommand};

use completions::CompletionsOpts;
use convert::ConvertOpts;
use proxy::ProxyOpts;
use read::ReadOpts;
use replay::ReplayOpts;
use trace::TraceOpts;
use validate::ValidateOpts;

/// Decode, inspect and validate vfio-user and VDUSE sessions.
#[derive(Debug, Parser)]
#[command(
    name = "vfu-dump",
    version,
    about,
    after_help = concat!(
        "Examples:\n",
        "  vfu-dump read corpus/lvu-sample-client.pcapng\n",
        "  vfu-dump read -v --cmd DMA_MAP,DMA_UNMAP corpus/lvu-sample-client.pcapng\n",
        "  vfu-dump read --format json corpus/lvu-sample-client.pcapng | jq .cmd_name\n",
        "  vfu-dump validate --profile qemu corpus/qemu-10.1-seabios.pcapng\n",
        "  vfu-dump convert sockdump.pcap session.pcapng",
        "\n\nEvery subcommand's --help has examples; those on corpus/ run in the repository."
    )
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
        after_help = concat!(
        "Examples:\n",
        "  vfu-dump read corpus/lvu-sample-client.pcapng\n",
        "  vfu-dump read -x --id 4660 corpus/lvu-sample-client.pcapng  # one DMA_MAP, hex\n",
        "  vfu-dump read --errors corpus/lvu-sample-client.pcapng  # error replies only\n",
        "  vfu-dump read --stats corpus/lvu-sample-client.pcapng\n",
        "  vfu-dump read --validate corpus/lvu-sample-client.pcapng  # with findings\n",
        "  vfu-dump read --raw --direction c2s corpus/messages/dma_map-request.bin\n",
        "  cat corpus/lvu-sample-client.pcapng | vfu-dump read -"
    )
    )]
    Read(ReadOpts),
    /// Check message streams against the protocol's rules; exit 0 clean, 1 findings, 2 unusable input.
    #[command(
        after_help = concat!(
        "Examples:\n",
        "  vfu-dump validate --profile qemu corpus/qemu-10.1-seabios.pcapng\n",
        "  vfu-dump validate --format json corpus/vduse-6.12-blk.pcapng\n",
        "  vfu-dump validate capture.pcapng  # exit 1 when anything is found\n",
        "  vfu-dump validate --list-rules"
    )
    )]
    Validate(ValidateOpts),
    /// Convert any readable input (pcapng, pcap, sockdump, raw) to the vfu pcapng capture format.
    #[command(
        after_help = concat!(
        "Examples:\n",
        "  vfu-dump convert sockdump.pcap session.pcapng\n",
        "  vfu-dump convert --raw --direction c2s stream.bin session.pcapng\n",
        "  vfu-dump convert corpus/lvu-pytest-subset.pcapng /tmp/copy.pcapng"
    )
    )]
    Convert(ConvertOpts),
    /// Sit between a client and a server as a transparent socket proxy: forward every byte and file
    /// descriptor, decode and print each message live, and optionally write a capture.
    #[command(
        after_help = concat!(
        "Examples:\n",
        "  vfu-dump proxy --listen /tmp/vfu-client.sock --connect /run/device.sock\n",
        "  vfu-dump proxy --listen c.sock --connect s.sock -w session.pcapng --validate\n",
        "  vfu-dump proxy --spin 0 --listen /tmp/c.sock --connect /tmp/s.sock\n",
        "  (then point the VMM, QEMU's vfio-user-pci socket=, at the --listen socket)"
    )
    )]
    Proxy(ProxyOpts),
    /// Play one side of a captured connection against a live peer and compare what it sends with
    /// the capture; exit 0 matched, 1 diverged, 2 unusable input.
    #[command(
        after_help = concat!(
        "Examples:\n",
        "  vfu-dump replay session.pcapng --connect /run/device.sock  # play the client\n",
        "  vfu-dump replay session.pcapng --serve /tmp/dev.sock  # play the server\n",
        "  vfu-dump replay --conn 2 --until 40 -w again.pcapng s.pcapng --connect d.sock\n",
        "  vfu-dump replay -q --format json session.pcapng --connect device.sock"
    )
    )]
    Replay(ReplayOpts),
    /// Follow a program's (or running processes') vfio-user and VDUSE traffic with ptrace, without a
    /// proxy: print it as `read` does, and optionally write a capture.
    #[command(after_help = trace::EXAMPLES)]
    Trace(TraceOpts),
    /// Write a Wireshark/tshark Lua dissector for vfio-user and VDUSE, generated from the codec's tables.
    #[command(
        after_help = concat!(
        "Examples:\n",
        "  mkdir -p ~/.local/lib/wireshark/plugins\n",
        "  vfu-dump wireshark-dissector > ~/.local/lib/wireshark/plugins/vfio_user.lua\n",
        "  tshark -r corpus/lvu-sample-client.pcapng -Y 'vfio_user.cmd == 2'"
    )
    )]
    WiresharkDissector,
    /// Print a shell completion script.
    #[command(
        after_help = concat!(
        "Examples:\n",
        "  vfu-dump completions bash >> ~/.bash_completion  # read by bash-completion\n",
        "  mkdir -p ~/.zfunc && vfu-dump completions zsh > ~/.zfunc/_vfu-dump"
    )
    )]
    Completions(CompletionsOpts),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::DirArg;
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
