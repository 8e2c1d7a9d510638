//! `vfu-dump replay` with real peers: a session between the rust-vmm `vfio_user` crate's `Client`
//! and `Server`, recorded through the proxy ([`Proxy::start`]), is replayed against a fresh server
//! and served to a fresh client; a server changed on purpose gives exactly the expected
//! divergence. The `vfio_user` crate never sends DMA_READ or DMA_WRITE, so those are exercised with
//! a scripted server and a scripted client written here with the codec. Bad captures are refused
//! before anything is sent.
//!
//! Where `vfio_user` 0.1.7 departs from the spec (the tests work around nothing in the codec; see
//! also `tests/proxy.rs`):
//! - answering the client's first DEVICE_GET_REGION_INFO for a region with a sparse-mmap capability
//!   (`argsz` 32, too small), the server sends the 32-byte fixed part with CAPS set and `cap_offset`
//!   32 pointing past the payload; the spec says such a reply carries no capability (libvfio-user
//!   clears CAPS) and the codec calls it malformed (`region-cap-out-of-bounds`). The replay compares
//!   such a message byte for byte, so it replays fine;
//! - the client asks again with the larger `argsz` under the **same** `msg_id` (legal: ids may be
//!   reused), so `--serve` matches requests by order and command, not by id;
//! - its VERSION JSON carries the legacy `migration` object, and the server answers `max_msg_fds`
//!   1 whatever the client offered;
//! - the client's DEVICE_GET_INFO `argsz` is 32 (the header counted) where it means the reply
//!   payload accepted (16);
//! - the client ignores the ERROR flag of replies, and the server's error replies carry
//!   `error_no` 0 for everything but EINVAL;
//! - its DMA_UNMAP flag bits are `GET_DIRTY_PAGE_INFO = 1 << 1`, `UNMAP_ALL = 1 << 2`, where the
//!   spec's and libvfio-user's are GET_DIRTY_BITMAP 1 and UNMAP_ALL 2 (not exercised here: the
//!   client sends flags 0);
//! - the client always sends a descriptor with DMA_MAP (`send_with_fd`), so a window without one
//!   cannot be made with it (the scripted session below has one).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use vfu_codec::vfio::caps::Version;
use vfu_codec::vfio::{DmaAccess, DmaMap, RegionAccess};
use vfu_codec::{Body, Command, Direction, Header, VersionBody, decode, encode_to_vec};
use vfu_dump::capture::{CaptureReader, OpenOptions, PcapngWriter, Protocol, Record, RecordRef};
use vfu_dump::cmd::replay::{ReplayOpts, run as replay_run};
use vfu_dump::options::{ColorWhen, OutputFormat, OutputOpts};
use vfu_dump::proxy::{Config, Proxy};
use vfu_dump::replay::{self, Options, Output, ReplayError, Report, Serving, Side, Timing, What};
use zerocopy::little_endian::U16;

mod common;

use common::{Checks, Layout};

// ---------------------------------------------------------------------------------------------------
// Harness

fn tmp() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "vfu-rp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn options() -> Options {
    Options {
        timing: Timing::Fast,
        timeout: Duration::from_secs(5),
    }
}

fn read_capture(path: &Path) -> Vec<Record> {
    let mut r = CaptureReader::new(File::open(path).unwrap(), &OpenOptions::default()).unwrap();
    let mut v = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        v.push(rec.to_owned());
    }
    v
}

/// Replays the client side of `capture` against `server`; returns the report and the output.
fn play(capture: &Path, server: &Path) -> (Report, String) {
    let plan = replay::load(capture, None, None, Side::Client).unwrap();
    let mut buf = Vec::new();
    let report = {
        let mut out = Output::new(&mut buf);
        replay::client::play(&plan, server, &options(), &mut out).unwrap()
    };
    (report, String::from_utf8(buf).unwrap())
}

/// The command-line options of `vfu-dump replay CAPTURE --connect SERVER`.
fn cli_opts(capture: &Path, server: &Path) -> ReplayOpts {
    ReplayOpts {
        capture: capture.to_path_buf(),
        connect: Some(server.to_path_buf()),
        serve: None,
        conn: None,
        until: None,
        timing: Timing::Fast,
        timeout: 5.0,
        write: None,
        quiet: false,
        output: OutputOpts {
            format: OutputFormat::Text,
            verbose: false,
            hex: false,
            color: ColorWhen::Never,
            relative: false,
        },
    }
}

// ---------------------------------------------------------------------------------------------------
// A device on the rust-vmm vfio_user crate

/// Serves one client at `path` with the shared device: a BAR0 of `bar0_size` bytes, an mmap-able
/// BAR1, and no region or IRQ index after BAR1 and IRQ 0 (the recordings here are of that device).
fn serve(path: &Path, bar0_size: u64) -> JoinHandle<Result<(), String>> {
    common::serve(
        path,
        Layout {
            bar0_size,
            bar1_mmap: true,
            pci: false,
        },
    )
}

/// A client session; with `device`, also checks what only a real device does (DMA through the
/// mapping, the interrupt). Returns what the client saw: the lines `serve_to_a_fresh_client`
/// compares, so no interrupt count and no BAR1 contents (a replayed recording's BAR1 descriptor is
/// not the device's memory).
fn session(path: &Path, device: bool) -> Vec<String> {
    common::session(
        path,
        Checks {
            device,
            interrupt_count: false,
            bar1_memory: false,
        },
    )
}

/// The session recorded once through the proxy: the capture and what the client saw.
fn recorded() -> &'static (PathBuf, Vec<String>) {
    static REC: OnceLock<(PathBuf, Vec<String>)> = OnceLock::new();
    REC.get_or_init(|| {
        let d = tmp();
        let server = serve(&d.join("s.sock"), 0x1000);
        let mut config = Config::new(d.join("c.sock"), d.join("s.sock"));
        config.capture = Some(d.join("session.pcapng"));
        let proxy = Proxy::start(config).unwrap();
        let seen = session(&d.join("c.sock"), true);
        server.join().unwrap().unwrap();
        let t = Instant::now();
        while proxy.active_connections() > 0 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "proxy connection did not end"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        proxy.shutdown().unwrap();
        (d.join("session.pcapng"), seen)
    })
}

// ---------------------------------------------------------------------------------------------------
// Replays of the recorded vfio_user session

/// The recorded session replayed against a fresh server: no divergence, every message played,
/// and the device really worked on the replay's descriptors (its DMA through the memfd and its
/// interrupt did not fail, or the server would have answered with errors). `-w` records the
/// replay: the same conversation, the client's commands byte for byte.
#[test]
fn replay_against_a_fresh_server_matches() {
    let (capture, seen) = recorded();
    assert!(
        seen.contains(&"guest memory \"DMA works\"".to_owned()),
        "{seen:#?}"
    );
    let d = tmp();
    let server = serve(&d.join("fresh.sock"), 0x1000);
    let mut opts = cli_opts(capture, &d.join("fresh.sock"));
    opts.write = Some(d.join("replay.pcapng"));
    let mut buf = Vec::new();
    let code = replay_run(&opts, &mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    server.join().unwrap().unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("0 divergences") || text.contains(": matched"),
        "{text}"
    );
    assert!(!text.contains("!!"), "{text}");

    let original = read_capture(capture);
    let again = read_capture(&d.join("replay.pcapng"));
    assert_eq!(again.len(), original.len(), "{text}");
    for (a, b) in original.iter().zip(&again) {
        assert_eq!(a.direction, b.direction);
        assert_eq!(a.fds > 0, b.fds > 0, "#{}", a.index);
        if a.direction == Direction::ClientToServer {
            assert_eq!(a.data, b.data, "client message #{} differs", a.index);
        }
    }
    // The one message the codec calls malformed (the crate's departure) was replayed and matched.
    let malformed = original
        .iter()
        .filter(|r| decode(&r.data, r.direction).is_err())
        .count();
    assert_eq!(malformed, 1);
}

/// A server whose BAR0 is twice as large: exactly one divergence, the size in the reply to BAR0's
/// DEVICE_GET_REGION_INFO, printed as a field diff with the captured message's number; exit 1.
#[test]
fn a_changed_server_gives_exactly_the_expected_divergence() {
    let (capture, _) = recorded();
    let original = read_capture(capture);
    let bar0_reply = original
        .iter()
        .find(|r| {
            decode(&r.data, r.direction).is_ok_and(|m| {
                m.is_reply()
                    && matches!(m.body, Body::RegionInfo { info, .. } if info.index.get() == 0)
            })
        })
        .unwrap()
        .index;

    let d = tmp();
    let server = serve(&d.join("big.sock"), 0x2000);
    let (report, text) = play(capture, &d.join("big.sock"));
    server.join().unwrap().unwrap();
    assert!(report.completed, "{text}");
    assert_eq!(report.divergences.len(), 1, "{text}");
    let div = &report.divergences[0];
    assert_eq!(div.index, Some(bar0_reply));
    assert_eq!(div.fields(), ["RegionInfo.size"]);
    let What::Fields(f) = &div.what else {
        panic!("{div:?}")
    };
    assert_eq!(
        (f[0].captured.as_str(), f[0].replayed.as_str()),
        ("0x1000", "0x2000")
    );
    assert!(
        text.contains(&format!(
            "!! #{bar0_reply} DEVICE_GET_REGION_INFO reply id=2 (replay #"
        )),
        "{text}"
    );
    assert!(
        text.contains("   - RegionInfo.size = 0x1000\n   + RegionInfo.size = 0x2000\n"),
        "{text}"
    );

    // The command line's exit status.
    let server = serve(&d.join("big2.sock"), 0x2000);
    let mut opts = cli_opts(capture, &d.join("big2.sock"));
    opts.quiet = true;
    let mut buf = Vec::new();
    assert_eq!(replay_run(&opts, &mut buf).unwrap(), 1);
    server.join().unwrap().unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(
        text.ends_with(&format!("1 divergence (#{bar0_reply})\n")),
        "{text}"
    );
    assert_eq!(
        text.lines().count(),
        4,
        "quiet: the diff and the summary only\n{text}"
    );

    // JSON, with the original timing: one object per message, the divergence, the summary.
    let server = serve(&d.join("big3.sock"), 0x2000);
    let mut opts = cli_opts(capture, &d.join("big3.sock"));
    opts.output.format = OutputFormat::Json;
    opts.timing = Timing::Original;
    let mut buf = Vec::new();
    assert_eq!(replay_run(&opts, &mut buf).unwrap(), 1);
    server.join().unwrap().unwrap();
    let text = String::from_utf8(buf).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), original.len() + 2, "{text}");
    assert!(
        lines.iter().all(|l| l.starts_with('{') && l.ends_with('}')),
        "{text}"
    );
    let want = format!(
        r#"{{"divergence":{{"index":{bar0_reply},"replay_index":{bar0_reply},"message":"DEVICE_GET_REGION_INFO reply id=2","fields":[{{"field":"RegionInfo.size","captured":"0x1000","replayed":"0x2000"}}]}}}}"#
    );
    assert!(lines.contains(&want.as_str()), "{text}");
    assert!(
        lines[lines.len() - 1].contains(r#""divergences":1,"completed":true,"matched":false"#),
        "{text}"
    );
}

/// The recorded session served to a fresh client: the client completes and sees the recorded
/// server's answers (the regions, BAR0's contents, a descriptor with BAR1's info); its requests
/// match the capture's.
#[test]
fn serve_to_a_fresh_client() {
    let (capture, seen) = recorded();
    let d = tmp();
    let plan = replay::load(capture, None, None, Side::Server).unwrap();
    let serving = Serving::bind(&d.join("srv.sock")).unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let report = {
            let mut out = Output::new(&mut buf);
            serving.serve(&plan, &options(), &mut out).unwrap()
        };
        (report, String::from_utf8(buf).unwrap())
    });
    let live = session(&d.join("srv.sock"), false);
    let (report, text) = t.join().unwrap();
    assert!(report.matched(), "{text}");
    assert!(report.completed, "{text}");
    let without_device: Vec<&String> = seen
        .iter()
        .filter(|s| !s.starts_with("guest memory"))
        .collect();
    assert_eq!(live.iter().collect::<Vec<_>>(), without_device);
    assert!(live[1].ends_with("fd true"), "{live:?}");
    assert!(!d.join("srv.sock").exists(), "the socket file is removed");
}

// ---------------------------------------------------------------------------------------------------
// DMA_READ and DMA_WRITE, with scripted peers

const WIN_FD: u64 = 0x10_0000; // a window backed by the client's memfd, at file offset 0x1000
const WIN_BUF: u64 = 0x20_0000; // a window without a descriptor
const UNMAPPED: u64 = 0x90_0000;

fn version_body(json: &[u8]) -> (Version, Vec<u8>) {
    (
        Version {
            major: U16::new(0),
            minor: U16::new(2),
        },
        json.to_vec(),
    )
}

fn version(id: u16, reply: bool, json: &[u8]) -> Vec<u8> {
    let (v, j) = version_body(json);
    let h = if reply {
        Header::reply(id, Command::VERSION)
    } else {
        Header::command(id, Command::VERSION)
    };
    encode_to_vec(
        &h,
        &Body::Version(VersionBody {
            version: &v,
            json: Some(&j),
        }),
    )
    .unwrap()
}

fn m(h: Header, body: Body<'_>) -> Vec<u8> {
    encode_to_vec(&h, &body).unwrap()
}

fn dma(id: u16, cmd: Command, reply: bool, address: u64, count: u64, data: &[u8]) -> Vec<u8> {
    let h = if reply {
        Header::reply(id, cmd)
    } else {
        Header::command(id, cmd)
    };
    m(
        h,
        Body::DmaRw {
            access: &DmaAccess::new(address, count),
            data,
        },
    )
}

const DEVICE_DATA: &[u8] = b"written by the device";

/// The conversation of the scripted peers: (direction, message, descriptors). The device, on a
/// REGION_WRITE, writes into both windows with DMA_WRITE, reads back with DMA_READ (the fd-backed
/// window after writing to it through its own descriptor), reads an unmapped address (EFAULT), and
/// only then replies.
fn dma_conversation() -> Vec<(Direction, Vec<u8>, u32)> {
    use Direction::{ClientToServer as C, ServerToClient as S};
    let region = RegionAccess::new(0, 0, 2);
    vec![
        (
            C,
            version(
                0,
                false,
                br#"{"capabilities":{"max_data_xfer_size":65536}}"#,
            ),
            0,
        ),
        (
            S,
            version(0, true, br#"{"capabilities":{"max_msg_fds":8}}"#),
            0,
        ),
        (
            C,
            m(
                Header::command(1, Command::DMA_MAP),
                Body::DmaMap(&DmaMap::new(3, 0x1000, WIN_FD, 0x2000)),
            ),
            1,
        ),
        (S, m(Header::reply(1, Command::DMA_MAP), Body::Empty), 0),
        (
            C,
            m(
                Header::command(2, Command::DMA_MAP),
                Body::DmaMap(&DmaMap::new(3, 0, WIN_BUF, 0x1000)),
            ),
            0,
        ),
        (S, m(Header::reply(2, Command::DMA_MAP), Body::Empty), 0),
        (
            C,
            m(
                Header::command(3, Command::REGION_WRITE),
                Body::RegionRw {
                    access: &region,
                    data: b"go",
                },
            ),
            0,
        ),
        (
            S,
            dma(
                1,
                Command::DMA_WRITE,
                false,
                WIN_BUF + 0x10,
                DEVICE_DATA.len() as u64,
                DEVICE_DATA,
            ),
            0,
        ),
        (
            C,
            dma(
                1,
                Command::DMA_WRITE,
                true,
                WIN_BUF + 0x10,
                DEVICE_DATA.len() as u64,
                b"",
            ),
            0,
        ),
        (
            S,
            dma(2, Command::DMA_WRITE, false, WIN_FD + 0x200, 8, b"via-msg!"),
            0,
        ),
        (
            C,
            dma(2, Command::DMA_WRITE, true, WIN_FD + 0x200, 8, b""),
            0,
        ),
        (
            S,
            dma(3, Command::DMA_READ, false, WIN_FD + 0x100, 8, b""),
            0,
        ),
        (
            C,
            dma(3, Command::DMA_READ, true, WIN_FD + 0x100, 8, b"devwrite"),
            0,
        ),
        (
            S,
            dma(
                4,
                Command::DMA_READ,
                false,
                WIN_BUF + 0x10,
                DEVICE_DATA.len() as u64,
                b"",
            ),
            0,
        ),
        (
            C,
            dma(
                4,
                Command::DMA_READ,
                true,
                WIN_BUF + 0x10,
                DEVICE_DATA.len() as u64,
                DEVICE_DATA,
            ),
            0,
        ),
        (S, dma(5, Command::DMA_READ, false, UNMAPPED, 4, b""), 0),
        (
            C,
            m(Header::error_reply(5, Command::DMA_READ, 14), Body::Empty),
            0,
        ),
        (
            S,
            m(
                Header::reply(3, Command::REGION_WRITE),
                Body::RegionRw {
                    access: &region,
                    data: b"",
                },
            ),
            0,
        ),
        (
            C,
            m(Header::command(4, Command::DEVICE_RESET), Body::Empty),
            0,
        ),
        (
            S,
            m(Header::reply(4, Command::DEVICE_RESET), Body::Empty),
            0,
        ),
    ]
}

fn write_capture(path: &Path, msgs: &[(Direction, Vec<u8>, u32, bool)]) {
    let mut w = PcapngWriter::new(File::create(path).unwrap()).unwrap();
    w.add_connection("vfio-user:0:/run/scripted.sock", Protocol::VfioUser)
        .unwrap();
    for (i, (direction, data, fds, truncated)) in msgs.iter().enumerate() {
        w.write_record(&RecordRef {
            conn: 0,
            ts_ns: 1_700_000_000_000_000_000 + i as u64 * 1000,
            direction: *direction,
            protocol: Protocol::VfioUser,
            fds: *fds,
            fd_kinds: &[],
            truncated: *truncated,
            data,
            orig_len: data.len(),
            index: 0,
            file_offset: 0,
        })
        .unwrap();
    }
    w.into_inner().unwrap();
}

fn dma_capture(dir: &Path) -> PathBuf {
    let path = dir.join("dma.pcapng");
    let msgs: Vec<_> = dma_conversation()
        .into_iter()
        .map(|(d, m, f)| (d, m, f, false))
        .collect();
    write_capture(&path, &msgs);
    path
}

fn send_msg(s: &UnixStream, data: &[u8], fds: &[BorrowedFd<'_>]) {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut ctl = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        assert!(ctl.push(SendAncillaryMessage::ScmRights(fds)));
    }
    let n =
        rustix::net::sendmsg(s, &[io::IoSlice::new(data)], &mut ctl, SendFlags::NOSIGNAL).unwrap();
    assert_eq!(n, data.len());
}

/// One whole message and the descriptors that came with its header; `None` at the end.
fn recv_msg(s: &mut UnixStream) -> Option<(Vec<u8>, Vec<OwnedFd>)> {
    let mut head = [0u8; 16];
    let mut fds = Vec::new();
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(8))];
    let mut ctl = RecvAncillaryBuffer::new(&mut space);
    let r = rustix::net::recvmsg(
        &*s,
        &mut [IoSliceMut::new(&mut head)],
        &mut ctl,
        RecvFlags::CMSG_CLOEXEC,
    )
    .unwrap();
    for m in ctl.drain() {
        if let RecvAncillaryMessage::ScmRights(it) = m {
            fds.extend(it);
        }
    }
    if r.bytes == 0 {
        return None;
    }
    s.read_exact(&mut head[r.bytes..]).unwrap();
    let size = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
    let mut data = head.to_vec();
    data.resize(size, 0);
    s.read_exact(&mut data[16..]).unwrap();
    Some((data, fds))
}

/// A scripted server playing the server side of [`dma_conversation`]; it checks what the client
/// answers and that the fd-backed window is the client's memfd at the DMA_MAP's offset. With
/// `changed`, its DMA_WRITE into the buffer window carries other bytes and its REGION_WRITE reply
/// another count.
fn dma_server(path: &Path, changed: bool) -> JoinHandle<Result<(), String>> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut memfd: Option<OwnedFd> = None;
        let device_data: Vec<u8> = if changed {
            DEVICE_DATA.to_ascii_uppercase()
        } else {
            DEVICE_DATA.to_vec()
        };
        let expect = |s: &mut UnixStream, want: &[u8]| -> Result<(), String> {
            let (got, _) = recv_msg(s).ok_or("the client closed")?;
            if got != want {
                return Err(format!("got {got:02x?}, want {want:02x?}"));
            }
            Ok(())
        };
        while let Some((msg, fds)) = recv_msg(&mut s) {
            let h = *Header::peek(&msg).unwrap();
            let id = h.msg_id.get();
            match h.cmd() {
                Command::VERSION => send_msg(
                    &s,
                    &version(id, true, br#"{"capabilities":{"max_msg_fds":8}}"#),
                    &[],
                ),
                Command::DMA_MAP => {
                    let Ok(Body::DmaMap(map)) =
                        decode(&msg, Direction::ClientToServer).map(|m| m.body)
                    else {
                        return Err("bad DMA_MAP".into());
                    };
                    match (map.address.get(), fds.len()) {
                        (WIN_FD, 1) => {
                            let size = rustix::fs::fstat(&fds[0]).unwrap().st_size;
                            if size < 0x3000 {
                                return Err(format!(
                                    "memfd of {size} bytes, want offset + size = 0x3000"
                                ));
                            }
                            memfd = fds.into_iter().next();
                        }
                        (WIN_BUF, 0) => {}
                        other => return Err(format!("DMA_MAP {other:?}")),
                    }
                    send_msg(
                        &s,
                        &m(Header::reply(id, Command::DMA_MAP), Body::Empty),
                        &[],
                    );
                }
                Command::REGION_WRITE => {
                    let n = device_data.len() as u64;
                    send_msg(
                        &s,
                        &dma(
                            1,
                            Command::DMA_WRITE,
                            false,
                            WIN_BUF + 0x10,
                            n,
                            &device_data,
                        ),
                        &[],
                    );
                    expect(
                        &mut s,
                        &dma(1, Command::DMA_WRITE, true, WIN_BUF + 0x10, n, b""),
                    )?;
                    send_msg(
                        &s,
                        &dma(2, Command::DMA_WRITE, false, WIN_FD + 0x200, 8, b"via-msg!"),
                        &[],
                    );
                    expect(
                        &mut s,
                        &dma(2, Command::DMA_WRITE, true, WIN_FD + 0x200, 8, b""),
                    )?;
                    let fd = memfd.as_ref().ok_or("no memfd")?;
                    let mut b = [0u8; 8];
                    rustix::io::pread(fd, &mut b, 0x1200).unwrap();
                    if &b != b"via-msg!" {
                        return Err(format!("the DMA_WRITE did not land in the memfd: {b:?}"));
                    }
                    rustix::io::pwrite(fd, b"devwrite", 0x1100).unwrap();
                    send_msg(
                        &s,
                        &dma(3, Command::DMA_READ, false, WIN_FD + 0x100, 8, b""),
                        &[],
                    );
                    expect(
                        &mut s,
                        &dma(3, Command::DMA_READ, true, WIN_FD + 0x100, 8, b"devwrite"),
                    )?;
                    send_msg(
                        &s,
                        &dma(4, Command::DMA_READ, false, WIN_BUF + 0x10, n, b""),
                        &[],
                    );
                    expect(
                        &mut s,
                        &dma(4, Command::DMA_READ, true, WIN_BUF + 0x10, n, &device_data),
                    )?;
                    send_msg(&s, &dma(5, Command::DMA_READ, false, UNMAPPED, 4, b""), &[]);
                    expect(
                        &mut s,
                        &m(Header::error_reply(5, Command::DMA_READ, 14), Body::Empty),
                    )?;
                    let region = RegionAccess::new(0, 0, if changed { 3 } else { 2 });
                    send_msg(
                        &s,
                        &m(
                            Header::reply(id, Command::REGION_WRITE),
                            Body::RegionRw {
                                access: &region,
                                data: b"",
                            },
                        ),
                        &[],
                    );
                }
                Command::DEVICE_RESET => {
                    send_msg(
                        &s,
                        &m(Header::reply(id, Command::DEVICE_RESET), Body::Empty),
                        &[],
                    );
                }
                other => return Err(format!("unexpected {other}")),
            }
        }
        Ok(())
    })
}

/// The replay answers the server's DMA_WRITE and DMA_READ from its memory: the memfd it passed
/// (at the DMA_MAP's offset) and its own buffer; an unmapped address gets EFAULT. Nothing diverges.
#[test]
fn dma_requests_are_answered_from_the_replay_memory() {
    let d = tmp();
    let capture = dma_capture(&d);
    let server = dma_server(&d.join("dma.sock"), false);
    let (report, text) = play(&capture, &d.join("dma.sock"));
    server.join().unwrap().unwrap();
    assert!(report.matched(), "{text}");
    assert!(report.completed);
    assert_eq!((report.sent, report.received), (10, 10), "{text}");
}

/// A server that writes other bytes with DMA_WRITE and replies with another count: the count is a
/// divergence; the DMA_WRITE data is not compared (a descriptor-backed window exists, so the
/// server may have computed it from memory the replay cannot reproduce), and the server reads back
/// its own bytes, not the captured ones.
#[test]
fn dma_write_data_is_not_compared_once_memory_is_shared() {
    let d = tmp();
    let capture = dma_capture(&d);
    let server = dma_server(&d.join("dma.sock"), true);
    let (report, text) = play(&capture, &d.join("dma.sock"));
    server.join().unwrap().unwrap();
    assert_eq!(report.divergences.len(), 1, "{text}");
    assert_eq!(
        report.divergences[0].fields(),
        ["RegionAccess.count"],
        "{text}"
    );
    assert_eq!(report.divergences[0].index, Some(17));
}

/// `--serve` of the DMA conversation to a scripted client: the captured DMA requests reach the
/// client before the REGION_WRITE reply, in order, and their replies are compared (the data of a
/// DMA_READ reply excepted: the live client's memory is its own).
#[test]
fn serve_sends_the_server_requests_in_order() {
    let d = tmp();
    let capture = dma_capture(&d);
    let plan = replay::load(&capture, Some(0), None, Side::Server).unwrap();
    let serving = Serving::bind(&d.join("srv.sock")).unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let report = {
            let mut out = Output::new(&mut buf);
            serving.serve(&plan, &options(), &mut out).unwrap()
        };
        (report, String::from_utf8(buf).unwrap())
    });
    let mut s = UnixStream::connect(d.join("srv.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conv = dma_conversation();
    let memfd = rustix::fs::memfd_create("ram", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&memfd, 0x3000).unwrap();
    let mut memory: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut order = Vec::new();
    for (dir, msg, fds) in &conv {
        if *dir != Direction::ClientToServer || Header::peek(msg).unwrap().is_reply() {
            continue;
        }
        let fds: Vec<BorrowedFd<'_>> = if *fds > 0 {
            vec![memfd.as_fd()]
        } else {
            vec![]
        };
        send_msg(&s, msg, &fds);
        // Serve the server's requests until our command's reply comes.
        loop {
            let (got, _) = recv_msg(&mut s).unwrap();
            let h = *Header::peek(&got).unwrap();
            order.push(format!(
                "{} {}",
                h.cmd(),
                if h.is_reply() { "reply" } else { "cmd" }
            ));
            if h.is_reply() {
                break;
            }
            let Ok(Body::DmaRw { access, data }) =
                decode(&got, Direction::ServerToClient).map(|m| m.body)
            else {
                panic!("not a DMA request");
            };
            let (a, n) = (access.address.get(), access.count.get());
            let reply = if h.cmd() == Command::DMA_WRITE {
                memory.insert(a, data.to_vec());
                dma(h.msg_id.get(), h.cmd(), true, a, n, b"")
            } else if a == UNMAPPED {
                m(
                    Header::error_reply(h.msg_id.get(), h.cmd(), 14),
                    Body::Empty,
                )
            } else {
                let data = memory
                    .get(&a)
                    .cloned()
                    .unwrap_or_else(|| vec![0; n as usize]);
                dma(h.msg_id.get(), h.cmd(), true, a, n, &data)
            };
            send_msg(&s, &reply, &[]);
        }
    }
    drop(s);
    let (report, text) = t.join().unwrap();
    assert!(report.matched(), "{text}");
    assert_eq!(
        order,
        [
            "VERSION reply",
            "DMA_MAP reply",
            "DMA_MAP reply",
            "DMA_WRITE cmd",
            "DMA_WRITE cmd",
            "DMA_READ cmd",
            "DMA_READ cmd",
            "DMA_READ cmd",
            "REGION_WRITE reply",
            "DEVICE_RESET reply"
        ]
    );
    assert_eq!(
        memory.get(&(WIN_BUF + 0x10)).map(Vec::as_slice),
        Some(DEVICE_DATA)
    );
}

// ---------------------------------------------------------------------------------------------------
// Bad captures: refused before anything is sent

/// Runs `replay` on `capture` with a listener at the server path; asserts it fails without
/// connecting, and returns the error text.
fn refused(capture: &Path, dir: &Path) -> String {
    let sock = dir.join(format!(
        "{}.sock",
        capture.file_stem().unwrap().to_string_lossy()
    ));
    let listener = UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let err = replay_run(&cli_opts(capture, &sock), &mut Vec::new()).unwrap_err();
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(io::ErrorKind::WouldBlock),
        "the replay connected"
    );
    err.to_string()
}

fn conv_with(
    f: impl FnOnce(&mut Vec<(Direction, Vec<u8>, u32, bool)>),
) -> Vec<(Direction, Vec<u8>, u32, bool)> {
    let mut v: Vec<_> = dma_conversation()
        .into_iter()
        .map(|(d, m, f)| (d, m, f, false))
        .collect();
    f(&mut v);
    v
}

#[test]
fn a_truncated_message_is_named() {
    let d = tmp();
    let msgs = conv_with(|v| {
        v.truncate(7);
        v[6].1.truncate(20);
        v[6].3 = true;
    });
    write_capture(&d.join("cut.pcapng"), &msgs);
    let e = refused(&d.join("cut.pcapng"), &d);
    assert!(
        e.contains("#6: truncated: REGION_WRITE cmd id=3 c2s has 20 of its 34 bytes"),
        "{e}"
    );
    assert!(e.contains("nothing was sent"), "{e}");

    // A file cut inside a block: the error names the message after the last whole one.
    write_capture(&d.join("whole.pcapng"), &conv_with(|_| {}));
    let bytes = std::fs::read(d.join("whole.pcapng")).unwrap();
    std::fs::write(d.join("short.pcapng"), &bytes[..bytes.len() - 10]).unwrap();
    let e = refused(&d.join("short.pcapng"), &d);
    assert!(e.contains("#19") && e.contains("after message #18"), "{e}");
}

#[test]
fn a_reply_without_a_request_is_named() {
    let d = tmp();
    let msgs = conv_with(|v| {
        v.insert(
            2,
            (
                Direction::ServerToClient,
                m(Header::reply(99, Command::DMA_MAP), Body::Empty),
                0,
                false,
            ),
        );
    });
    write_capture(&d.join("orphan.pcapng"), &msgs);
    let e = refused(&d.join("orphan.pcapng"), &d);
    assert!(
        e.contains("#2: a reply without a request: no earlier client command DMA_MAP with id 99"),
        "{e}"
    );

    // A reply to a NO_REPLY command is one too.
    let msgs = conv_with(|v| {
        v[18].1[8] |= 0x10; // DEVICE_RESET, NO_REPLY
    });
    write_capture(&d.join("noreply.pcapng"), &msgs);
    let e = refused(&d.join("noreply.pcapng"), &d);
    assert!(e.contains("#19: a reply without a request"), "{e}");
}

#[test]
fn a_connection_that_never_negotiated_is_refused() {
    let d = tmp();
    let msgs = conv_with(|v| {
        v.drain(..2);
    });
    write_capture(&d.join("midway.pcapng"), &msgs);
    let e = refused(&d.join("midway.pcapng"), &d);
    assert!(
        e.contains("connection 0 never negotiated: its first client message, #0, is DMA_MAP cmd id=1, not a VERSION command"),
        "{e}"
    );

    let msgs = conv_with(|v| {
        v[1].1 = m(Header::error_reply(0, Command::VERSION, 22), Body::Empty);
    });
    write_capture(&d.join("refused.pcapng"), &msgs);
    let e = refused(&d.join("refused.pcapng"), &d);
    assert!(
        e.contains("the server refused VERSION #0 (#1: EINVAL (22))"),
        "{e}"
    );
}

#[test]
fn a_twin_socket_session_is_refused() {
    let d = tmp();
    let msgs = conv_with(|v| {
        v[1].1 = version(
            0,
            true,
            br#"{"capabilities":{"twin_socket":{"supported":true,"fd_index":0}}}"#,
        );
        v[1].2 = 1;
    });
    write_capture(&d.join("twin.pcapng"), &msgs);
    let e = refused(&d.join("twin.pcapng"), &d);
    assert!(
        e.contains("#1: connection 0 negotiated a twin socket"),
        "{e}"
    );
}

/// `--until` stops after N messages: a capture truncated after them replays; the replay does not
/// wait for what comes later.
#[test]
fn until_stops_after_n_messages() {
    let d = tmp();
    let msgs = conv_with(|v| {
        v[7].1.truncate(20);
        v[7].3 = true;
    });
    write_capture(&d.join("cut.pcapng"), &msgs);
    assert!(matches!(
        replay::load(&d.join("cut.pcapng"), None, None, Side::Client),
        Err(ReplayError::BadCapture { index: Some(7), .. })
    ));
    let plan = replay::load(&d.join("cut.pcapng"), None, Some(6), Side::Client).unwrap();
    assert_eq!(plan.steps.len(), 6);
    assert!(plan.cut);
    let server = dma_server(&d.join("dma.sock"), false);
    let mut buf = Vec::new();
    let report = {
        let mut out = Output::new(&mut buf);
        replay::client::play(&plan, &d.join("dma.sock"), &options(), &mut out).unwrap()
    };
    server.join().unwrap().unwrap();
    assert!(
        report.matched() && report.completed,
        "{}",
        String::from_utf8_lossy(&buf)
    );
    assert_eq!((report.sent, report.received), (3, 3));
}
