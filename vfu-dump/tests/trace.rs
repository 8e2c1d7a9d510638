//! `vfu-dump trace` against real peers: the rust-vmm `vfio_user` crate's `Client` in a process of its
//! own (this test binary run again in a peer mode, see [`peer`]), talking to its `Server` through the
//! proxy, so that the proxy's capture of the same session is the reference the tracer's capture must
//! equal. Also hostile and dying peers, and the tracer's own failure and detaching.
//!
//! The tracer runs as the real binary (`vfu-dump trace`); the peers it traces are separate processes,
//! since a process cannot trace its own threads.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use vfu_codec::Direction;
use vfu_dump::capture::{CaptureReader, OpenOptions, Record};
use vfu_dump::proxy::{Config, Proxy, ProxyHandle};

#[path = "common/cli.rs"]
mod cli;
mod common;

use cli::{Tmp, wait_until};

const PEER_ENV: &str = "VFU_TRACE_TEST_PEER";

fn tmp() -> Tmp {
    Tmp::new("tr")
}

const LAYOUT: common::Layout = common::Layout {
    bar0_size: 0x1000,
    bar1_mmap: true,
    pci: false,
};

const CHECKS: common::Checks = common::Checks {
    device: true,
    interrupt_count: true,
    bar1_memory: true,
};

/// The peer modes: this test binary, run with `PEER_ENV=MODE:ARG` and `--exact peer`, is one of these
/// instead of a test runner.
///
/// - `client:SOCK`: the `vfio_user` client session of `tests/common`, then exit 0 (it asserts what
///   it observes).
/// - `both:SOCK`: the server and that client session in one process (both ends of the socket are
///   traced).
/// - `both-slow:SOCK`: the server and the `slow` session in one process.
/// - `slow:SOCK`: connect, then 60 REGION_WRITE/REGION_READ pairs 20 ms apart (time to attach), and
///   check every read.
/// - `garbage:SOCK`: a VERSION command, then 100 bytes of 0xff, then exit.
/// - `cut:SOCK`: a VERSION command, then the first 20 bytes of a 48-byte DMA_MAP, then exit.
/// - `exec:SOCK`: a VERSION command, then execute itself as `after-exec:FD` with the socket kept
///   open, which sends a DEVICE_RESET on it.
/// - `block:SOCK`: connect and wait in a read forever (to be killed).
/// - `vectored:SOCK`: a client using `writev`, `sendmmsg`, `readv` and `recvmmsg` (see
///   [`vectored_client`]).
/// - `two-sockets:DIR`: JSON lines on `DIR/qmp.sock`, a VERSION on `DIR/dev.sock`.
/// - `split:SOCK`: a message cut by a pause, then a whole one (for attaching mid-message).
/// - `vduse:DIR`: a VDUSE daemon's calls on stand-in nodes `DIR/control` and `DIR/blk0` (see
///   [`vduse_daemon`]).
#[test]
#[ignore = "a peer process for the other tests, run by them"]
fn peer() {
    let Ok(spec) = std::env::var(PEER_ENV) else {
        return;
    };
    let (mode, arg) = spec.split_once(':').unwrap();
    match mode {
        "client" => {
            common::session(Path::new(arg), CHECKS);
        }
        "both" => {
            let sock = Path::new(arg);
            let server = common::serve(sock, LAYOUT);
            common::session(sock, CHECKS);
            assert_eq!(server.join().unwrap(), Ok(()));
        }
        "both-slow" => {
            let sock = Path::new(arg);
            let server = common::serve(sock, LAYOUT);
            slow_session(sock);
            assert_eq!(server.join().unwrap(), Ok(()));
        }
        "slow" => slow_session(Path::new(arg)),
        "split" => {
            // The first 20 bytes of a DMA_MAP, a pause (the test attaches), the other 28 and a
            // DEVICE_RESET.
            let mut s = UnixStream::connect(arg).unwrap();
            let m = dma_map();
            s.write_all(&m[..20]).unwrap();
            std::thread::sleep(Duration::from_millis(700));
            s.write_all(&m[20..]).unwrap();
            s.write_all(&msg(3, 13, 0, &[])).unwrap();
        }
        "garbage" | "cut" | "exec" | "block" => {
            let mut s = UnixStream::connect(arg).unwrap();
            if mode == "block" {
                let mut b = [0u8; 1];
                let _ = s.read(&mut b);
                return;
            }
            s.write_all(&version()).unwrap();
            match mode {
                "garbage" => s.write_all(&[0xff; 100]).unwrap(),
                "cut" => s.write_all(&dma_map()[..20]).unwrap(),
                _ => {
                    use std::os::fd::AsRawFd;
                    use std::os::unix::process::CommandExt;
                    let fd = s.as_raw_fd();
                    // Keep the socket across the exec.
                    rustix::io::fcntl_setfd(&s, rustix::io::FdFlags::empty()).unwrap();
                    let e = Command::new(std::env::current_exe().unwrap())
                        .args(["--exact", "peer", "--ignored", "--nocapture", "-q"])
                        .env(PEER_ENV, format!("after-exec:{fd}"))
                        .exec();
                    panic!("exec: {e}");
                }
            }
        }
        "vduse" => vduse_daemon(Path::new(arg)),
        "vectored" => vectored_client(Path::new(arg)),
        "two-sockets" => {
            // A JSON monitor connection (QMP-like), then a vfio-user one, from the same process.
            let dir = Path::new(arg);
            let mut qmp = UnixStream::connect(dir.join("qmp.sock")).unwrap();
            let mut dev = UnixStream::connect(dir.join("dev.sock")).unwrap();
            for _ in 0..2000 {
                qmp.write_all(b"{\"execute\": \"query-status\"}\r\n")
                    .unwrap();
            }
            dev.write_all(&version()).unwrap();
        }
        "after-exec" => {
            use std::os::fd::FromRawFd;
            let fd: i32 = arg.parse().unwrap();
            // SAFETY: the descriptor was left open across exec by the "exec" mode for this process.
            let mut s = unsafe { UnixStream::from_raw_fd(fd) };
            s.write_all(&msg(2, 13, 0, &[])).unwrap();
        }
        other => panic!("unknown peer mode {other}"),
    }
}

/// The calls a VDUSE daemon makes, on regular files standing in for `/dev/vduse/control` and
/// `/dev/vduse/blk0` (the host has no VDUSE; the tracer is pointed at `DIR` by
/// `VFU_TRACE_VDUSE_DIR`): the API version and CREATE_DEV ioctls on the control node, then on the
/// device node the read of a request, the write of its response, and a VQ_GET_INFO ioctl. A regular
/// file refuses the ioctls with ENOTTY, which is what the records then say; the read and write
/// move real bytes.
fn vduse_daemon(dir: &Path) {
    use std::os::fd::AsRawFd;
    use vfu_codec::vduse::{
        VDUSE_CREATE_DEV, VDUSE_GET_API_VERSION, VDUSE_VQ_GET_INFO, VduseDevConfig,
    };
    use vfu_codec::wire::WireStruct;
    let control = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("control"))
        .unwrap();
    let mut version = 0u64;
    let mut cfg = vec![0u8; VduseDevConfig::SIZE + 4];
    cfg[..4].copy_from_slice(b"blk0");
    cfg[VduseDevConfig::SIZE - 4..VduseDevConfig::SIZE].copy_from_slice(&4u32.to_ne_bytes());
    cfg[VduseDevConfig::SIZE..].copy_from_slice(&[1, 2, 3, 4]);
    let mut info = [0u8; 48];
    // SAFETY: each argument points at a buffer at least as large as the ioctl's size field says;
    // the kernel refuses these requests on a regular file without touching them.
    let (r1, r2) = unsafe {
        (
            libc::ioctl(
                control.as_raw_fd(),
                VDUSE_GET_API_VERSION as _,
                &mut version,
            ),
            libc::ioctl(control.as_raw_fd(), VDUSE_CREATE_DEV as _, cfg.as_mut_ptr()),
        )
    };
    assert_eq!((r1, r2), (-1, -1));
    let mut dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("blk0"))
        .unwrap();
    let mut req = [0u8; 152];
    dev.read_exact(&mut req).unwrap();
    let mut resp = [0u8; 152];
    resp[..4].copy_from_slice(&req[4..8]); // request_id
    dev.write_all(&resp).unwrap();
    // SAFETY: as above, `info` is the 48 bytes of struct vduse_vq_info.
    let r3 = unsafe { libc::ioctl(dev.as_raw_fd(), VDUSE_VQ_GET_INFO as _, info.as_mut_ptr()) };
    assert_eq!(r3, -1);
}

/// An iovec over `b` (which must outlive its use).
fn iovec(b: &mut [u8]) -> libc::iovec {
    libc::iovec {
        iov_base: b.as_mut_ptr().cast(),
        iov_len: b.len(),
    }
}

/// `mmsghdr`s over one buffer each, for `sendmmsg`/`recvmmsg`.
fn mmsgs(iovs: &mut [libc::iovec]) -> Vec<libc::mmsghdr> {
    iovs.iter_mut()
        .map(|iov| {
            // SAFETY: all-zero is a valid `mmsghdr` (null pointers, zero lengths).
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect()
}

/// A VERSION in two iovecs with `writev`, a DEVICE_RESET and a DEVICE_GET_INFO in one `sendmmsg`;
/// then a `MSG_PEEK` at the VERSION reply's header, the reply read with `readv` into two iovecs,
/// and the two other replies with `recvmmsg`.
fn vectored_client(sock: &Path) {
    use std::io::{IoSlice, IoSliceMut};
    use std::os::fd::AsRawFd;
    let mut s = UnixStream::connect(sock).unwrap();
    let v = version();
    assert_eq!(
        s.write_vectored(&[IoSlice::new(&v[..16]), IoSlice::new(&v[16..])])
            .unwrap(),
        v.len()
    );
    let (mut reset, mut info) = (
        msg(2, 13, 0, &[]),
        msg(3, 4, 0, &[32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    );
    let mut iovs = [iovec(&mut reset), iovec(&mut info)];
    let mut m = mmsgs(&mut iovs);
    // SAFETY: `m` holds 2 valid mmsghdrs whose iovecs point at live buffers.
    let n = unsafe { libc::sendmmsg(s.as_raw_fd(), m.as_mut_ptr(), 2, 0) };
    assert_eq!(n, 2);
    // A peek at the reply's header (as receivers that size their buffer do): not a read.
    let mut peek = [0u8; 16];
    let (n, _) = rustix::net::recv(&s, &mut peek[..], rustix::net::RecvFlags::PEEK).unwrap();
    assert_eq!(n, 16);
    // The VERSION reply is 28 bytes: its header and 12 bytes of payload.
    let (mut a, mut b) = ([0u8; 16], [0u8; 12]);
    let mut got = 0;
    while got < 28 {
        let n = if got < 16 {
            s.read_vectored(&mut [IoSliceMut::new(&mut a[got..]), IoSliceMut::new(&mut b)])
        } else {
            s.read_vectored(&mut [IoSliceMut::new(&mut b[got - 16..])])
        };
        got += n.unwrap();
    }
    let (mut r1, mut r2) = ([0u8; 16], [0u8; 32]);
    let mut iovs = [iovec(&mut r1), iovec(&mut r2)];
    let mut m = mmsgs(&mut iovs);
    let mut done = 0;
    while done < 2 {
        // SAFETY: as above; `done` of the 2 headers are filled, the rest are offered.
        let n = unsafe {
            libc::recvmmsg(
                s.as_raw_fd(),
                m.as_mut_ptr().add(done),
                (2 - done) as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        assert!(n > 0, "recvmmsg: {}", std::io::Error::last_os_error());
        done += n as usize;
    }
    assert_eq!((m[0].msg_len, m[1].msg_len), (16, 32));
}

/// 60 REGION_WRITE/REGION_READ pairs 20 ms apart, each read checked.
fn slow_session(sock: &Path) {
    let mut c = vfio_user::Client::new(sock).unwrap();
    for i in 0..60u32 {
        let v = i.to_le_bytes();
        c.region_write(0, 0x20, &v).unwrap();
        let mut b = [0u8; 4];
        c.region_read(0, 0x20, &mut b).unwrap();
        assert_eq!(b, v);
        std::thread::sleep(Duration::from_millis(20));
    }
    c.shutdown().unwrap();
}

fn msg(id: u16, cmd: u16, flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&cmd.to_le_bytes());
    m.extend_from_slice(&((16 + payload.len()) as u32).to_le_bytes());
    m.extend_from_slice(&flags.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(payload);
    m
}

fn version() -> Vec<u8> {
    let mut p = vec![0u8, 0, 0, 0];
    p.extend_from_slice(b"{\"capabilities\":{}}\0");
    msg(1, 1, 0, &p)
}

fn dma_map() -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&32u32.to_le_bytes());
    p.extend_from_slice(&3u32.to_le_bytes());
    p.extend_from_slice(&0u64.to_le_bytes());
    p.extend_from_slice(&0x10000u64.to_le_bytes());
    p.extend_from_slice(&0x1000u64.to_le_bytes());
    msg(2, 2, 0, &p)
}

/// This test binary as a peer in `mode`.
fn peer_command(mode: &str, arg: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "peer", "--ignored", "--nocapture", "-q"])
        .env(PEER_ENV, format!("{mode}:{}", arg.display()));
    c
}

fn vfu_dump() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vfu-dump"))
}

/// `vfu-dump trace ARGS -- sh -c 'exec PEER > /dev/null'`, to its end: the peer (a test harness,
/// which prints) runs with its standard output away from the tracer's, after an exec the tracer
/// follows.
fn trace_launch(args: &[&str], mode: &str, arg: &Path) -> Output {
    trace_launch_env(args, mode, arg, &[])
}

fn trace_launch_env(args: &[&str], mode: &str, arg: &Path, env: &[(&str, &Path)]) -> Output {
    let peer = peer_command(mode, arg);
    let mut c = vfu_dump();
    c.arg("trace")
        .args(args)
        .args(["--", "/bin/sh", "-c", "exec \"$0\" \"$@\" > /dev/null"])
        .arg(peer.get_program());
    c.args(peer.get_args());
    for (k, v) in peer.get_envs() {
        c.env(k, v.unwrap());
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn records(path: &Path) -> Vec<Record> {
    let mut r = CaptureReader::new(File::open(path).unwrap(), &OpenOptions::default()).unwrap();
    let mut v = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        v.push(rec.to_owned());
    }
    v
}

/// What must agree between two captures of one session: direction, bytes, descriptor count,
/// truncation (not times, indices or connection numbers).
fn essence(recs: &[Record]) -> Vec<(Direction, Vec<u8>, u32, bool)> {
    recs.iter()
        .map(|r| (r.direction, r.data.clone(), r.fds, r.truncated))
        .collect()
}

/// Asserts two captures have the same [`essence`], naming the first record that differs.
fn assert_same(got: &[Record], want: &[Record], context: &str) {
    let (a, b) = (essence(got), essence(want));
    if a == b {
        return;
    }
    let i = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let show = |v: &[(Direction, Vec<u8>, u32, bool)]| {
        v.get(i).map(|(d, data, fds, t)| {
            format!(
                "{d:?} {} bytes fds={fds} truncated={t} {:02x?}",
                data.len(),
                &data[..data.len().min(24)]
            )
        })
    };
    panic!(
        "{} and {} records; first difference at {i}: got {:?}, want {:?}\n{context}",
        a.len(),
        b.len(),
        show(&a),
        show(&b)
    );
}

/// The device server and a proxy in front of it, capturing.
struct Bench {
    dir: Tmp,
    proxy: Option<ProxyHandle>,
    server: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Bench {
    fn new() -> Bench {
        let dir = tmp();
        let server = common::serve(&dir.join("s.sock"), LAYOUT);
        let mut c = Config::new(dir.join("c.sock"), dir.join("s.sock"));
        c.capture = Some(dir.join("proxy.pcapng"));
        c.connect_timeout = Duration::from_secs(5);
        let proxy = Proxy::start(c).unwrap();
        Bench {
            dir,
            proxy: Some(proxy),
            server: Some(server),
        }
    }

    fn client_sock(&self) -> PathBuf {
        self.dir.join("c.sock")
    }

    /// Stops the proxy (once the session is over) and returns its capture.
    fn finish(&mut self) -> Vec<Record> {
        let s = self.server.take().unwrap().join().unwrap();
        assert_eq!(s, Ok(()), "server");
        self.proxy.take().unwrap().shutdown().unwrap();
        records(&self.dir.join("proxy.pcapng"))
    }
}

/// REGION_READ replies in a capture (the `slow` session has 60).
fn region_reads(recs: &[Record]) -> usize {
    recs.iter()
        .filter(|r| r.direction == Direction::ServerToClient && r.data.get(2..4) == Some(&[9, 0]))
        .count()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn launch_mode_gives_the_proxys_messages_and_says_what_descriptors_are() {
    let mut b = Bench::new();
    let cap = b.dir.join("trace.pcapng");
    let out = trace_launch(
        &["-w", cap.to_str().unwrap(), "--validate"],
        "client",
        &b.client_sock(),
    );
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let proxy = b.finish();
    let traced = records(&cap);
    assert!(proxy.len() > 20, "{} messages", proxy.len());
    assert_same(&traced, &proxy, &stderr(&out));
    // The descriptors: the client's guest-memory memfd (DMA_MAP), its eventfd (SET_IRQS), and the
    // server's BAR1 memfd (region info reply).
    let text = stdout(&out);
    assert!(
        text.contains("    fds: [0] /memfd:guest-ram (deleted)"),
        "{text}"
    );
    assert!(text.contains("    fds: [0] anon_inode:[eventfd]"), "{text}");
    assert!(text.contains("    fds: [0] /memfd:bar1"), "{text}");
    assert!(text.contains("-- c0 open: vfio-user:0:"), "{text}");
    // The printed lines are read's: the same as reading the capture written, findings and what the
    // descriptors are (the capture's `fd=` words) included, besides the events (`-- `) that only
    // the live source knows (the crate's server answers the first BAR1 region info with a reply
    // cut to the client's argsz, whose capability lies beyond it: a departure of the crate, which
    // the client retries).
    let read = vfu_dump()
        .args(["read", "--validate"])
        .arg(&cap)
        .output()
        .unwrap();
    // Descriptor lines whole; message lines without their number and time.
    let key = |l: &str| {
        if l.starts_with("    fds: ") {
            l.to_string()
        } else {
            l.split_whitespace().skip(2).collect::<Vec<_>>().join(" ")
        }
    };
    let printed: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("-- "))
        .map(key)
        .collect();
    let wanted: Vec<String> = stdout(&read).lines().map(key).collect();
    assert_eq!(printed, wanted);
    let fd_lines = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("    fds: "))
            .map(str::to_string)
            .collect()
    };
    let live = fd_lines(&text);
    assert!(live.len() >= 3, "{live:?}");
    assert_eq!(fd_lines(&stdout(&read)), live);
    // Every traced descriptor count has its descriptions in the capture.
    for r in &traced {
        assert_eq!(r.fd_kinds.len(), r.fds as usize, "{r:?}");
    }
    // The proxy does not know what descriptors are: its capture has the counts only.
    assert!(proxy.iter().all(|r| r.fd_kinds.is_empty()));
}

#[test]
fn json_and_stats_are_reads() {
    let mut b = Bench::new();
    let cap = b.dir.join("trace.pcapng");
    let out = trace_launch(
        &[
            "--format",
            "json",
            "--cmd",
            "DMA_MAP",
            "-w",
            cap.to_str().unwrap(),
        ],
        "client",
        &b.client_sock(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    b.finish();
    // `read` of the capture gives the same descriptor events as the live trace.
    let read = vfu_dump()
        .args(["read", "--format", "json", "--cmd", "DMA_MAP"])
        .arg(&cap)
        .output()
        .unwrap();
    let fd_events = |o: &Output| -> Vec<String> {
        stdout(o)
            .lines()
            .filter(|l| l.starts_with("{\"event\":\"fds\""))
            .map(str::to_string)
            .collect()
    };
    assert!(!fd_events(&out).is_empty());
    assert_eq!(fd_events(&read), fd_events(&out));
    let all: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    // Message objects (and, after the DMA_MAP, what its descriptor is), and the events.
    let lines: Vec<&str> = all
        .iter()
        .copied()
        .filter(|l| !l.starts_with("{\"event\""))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("\"cmd_name\":\"DMA_MAP\"") && lines[0].contains("\"fds\":1"));
    assert!(
        all.iter()
            .any(|l| l.starts_with("{\"event\":\"fds\",\"conn\":0")
                && l.contains("/memfd:guest-ram")),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|l| l.starts_with("{\"event\":\"open\",\"conn\":0")),
        "{all:?}"
    );
    let mut b = Bench::new();
    let out = trace_launch(&["--stats"], "client", &b.client_sock());
    assert!(out.status.success(), "{}", stderr(&out));
    b.finish();
    assert!(stdout(&out).contains("DMA_MAP"), "{}", stdout(&out));
}

/// The file a capture is written to while the trace runs: `.NAME.vfu-PID-N.tmp` beside `path`,
/// renamed onto `path` when the trace ends (`vfu_dump::capture::AtomicFile`); `path` once it has.
fn being_written(path: &Path) -> PathBuf {
    let prefix = format!(".{}.vfu-", path.file_name().unwrap().to_string_lossy());
    std::fs::read_dir(path.parent().unwrap())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(".tmp")
        })
        .unwrap_or_else(|| path.to_path_buf())
}

/// Waits until `path` (a capture being written) holds at least `n` records.
fn wait_records(path: &Path, n: usize) {
    wait_until(&format!("the capture to hold {n} records"), || {
        let Ok(f) = File::open(being_written(path)) else {
            return false;
        };
        let Ok(mut r) = CaptureReader::new(f, &OpenOptions::default()) else {
            return false;
        };
        let mut k = 0;
        while let Ok(Some(_)) = r.next_record() {
            k += 1;
        }
        k >= n
    });
}

fn spawn_trace(args: &[&str]) -> Child {
    vfu_dump()
        .arg("trace")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Attaches `vfu-dump trace -p` to the running `peer`, capturing into `cap`, until the peer exits
/// (successfully); the trace must end successfully too.
fn attach_until_exit(peer: &mut Child, cap: &Path) -> std::process::Output {
    let tracer = spawn_trace(&["-p", &peer.id().to_string(), "-w", cap.to_str().unwrap()]);
    assert!(peer.wait().unwrap().success());
    let out = tracer.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

#[test]
fn attached_mid_session_gives_the_proxys_messages_from_there_on() {
    let mut b = Bench::new();
    let mut client = peer_command("slow", &b.client_sock())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The proxy flushes its capture every 100 ms; wait for a good part of the session.
    wait_records(&b.dir.join("proxy.pcapng"), 30);
    let cap = b.dir.join("trace.pcapng");
    let pid = client.id().to_string();
    let tracer = spawn_trace(&["-p", &pid, "-w", cap.to_str().unwrap()]);
    assert!(client.wait().unwrap().success(), "the client failed");
    let out = tracer.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let proxy = b.finish();
    let traced = records(&cap);
    assert!(
        traced.len() >= 10 && traced.len() < proxy.len(),
        "{} of {}",
        traced.len(),
        proxy.len()
    );
    // The client was between messages or in one; either way the trace is the proxy's from some
    // message on (a cut first message would have been resynchronised away, not invented).
    let from = proxy.len() - traced.len();
    assert_eq!(
        essence(&traced),
        essence(&proxy[from..]),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains(&format!("-- attached to pid {pid}")));
}

/// A listener that accepts one connection and reads everything until EOF.
fn sink_server(path: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    let l = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        all
    })
}

#[test]
fn garbage_and_a_message_cut_by_the_peers_exit_are_recorded_without_panic() {
    for (mode, last_len) in [("garbage", 100usize), ("cut", 20)] {
        let dir = tmp();
        let sock = dir.join("s.sock");
        let srv = sink_server(&sock);
        let cap = dir.join("t.pcapng");
        let out = trace_launch(&["-w", cap.to_str().unwrap()], mode, &sock);
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
        let got = srv.join().unwrap();
        let recs = records(&cap);
        assert_eq!(recs.len(), 2, "{mode}: {recs:?}");
        assert_eq!(recs[0].data, version());
        assert!(!recs[0].truncated);
        assert_eq!(recs[1].data.len(), last_len);
        assert!(recs[1].truncated, "{mode}");
        // What the tracer recorded is what the server received.
        let all: Vec<u8> = recs.iter().flat_map(|r| r.data.clone()).collect();
        assert_eq!(all, got);
        assert!(stdout(&out).contains("[truncated]"), "{}", stdout(&out));
    }
}

#[test]
fn a_tracee_that_execs_is_followed_on_the_same_connection() {
    let dir = tmp();
    let sock = dir.join("s.sock");
    let srv = sink_server(&sock);
    let cap = dir.join("t.pcapng");
    let out = trace_launch(&["-w", cap.to_str().unwrap()], "exec", &sock);
    assert!(out.status.success(), "{}", stderr(&out));
    srv.join().unwrap();
    let recs = records(&cap);
    assert_eq!(recs.len(), 2, "{recs:?}\n{}", stderr(&out));
    assert_eq!(recs[0].conn, recs[1].conn);
    assert_eq!(recs[1].data, msg(2, 13, 0, &[]));
}

#[test]
fn a_tracee_killed_in_a_traced_call_ends_the_trace_cleanly() {
    let dir = tmp();
    let sock = dir.join("s.sock");
    let l = UnixListener::bind(&sock).unwrap();
    let mut peer = peer_command("block", &sock)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (_conn, _) = l.accept().unwrap();
    let pid = peer.id().to_string();
    let tracer = spawn_trace(&["-p", &pid]);
    // Let it attach and the peer sit in its read under the tracer.
    std::thread::sleep(Duration::from_millis(300));
    peer.kill().unwrap();
    peer.wait().unwrap();
    let out = tracer.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("killed by signal 9"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn sigint_and_sigterm_detach_and_the_session_goes_on() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mut b = Bench::new();
        let mut client = peer_command("slow", &b.client_sock())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_records(&b.dir.join("proxy.pcapng"), 10);
        let tracer = spawn_trace(&["-p", &client.id().to_string()]);
        std::thread::sleep(Duration::from_millis(300));
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&tracer),
            rustix::process::Signal::from_named_raw(sig).unwrap(),
        )
        .unwrap();
        let out = tracer.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        // The client is no longer traced and finishes its session.
        let status = std::fs::read_to_string(format!("/proc/{}/status", client.id())).unwrap();
        assert!(status.contains("TracerPid:\t0"), "{status}");
        assert!(client.wait().unwrap().success());
        let proxy = b.finish();
        assert_eq!(region_reads(&proxy), 60, "the whole session went through");
        assert!(stdout(&out).lines().count() >= 2, "{}", stdout(&out));
    }
}

#[test]
fn the_tracers_own_failure_detaches_and_the_session_goes_on() {
    let mut b = Bench::new();
    let mut client = peer_command("slow", &b.client_sock())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_records(&b.dir.join("proxy.pcapng"), 10);
    // Standard output is a pipe closed after its first bytes: writing fails, which fails the sink.
    let mut tracer = spawn_trace(&["-p", &client.id().to_string()]);
    let mut first = [0u8; 1];
    tracer
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(tracer.stdout.take());
    let status = tracer.wait().unwrap();
    let _ = status;
    assert!(
        client.wait().unwrap().success(),
        "the client failed after the tracer's failure"
    );
    let proxy = b.finish();
    assert_eq!(region_reads(&proxy), 60, "the whole session went through");
}

#[test]
fn vduse_requests_responses_and_ioctls_are_recorded() {
    let dir = tmp();
    std::fs::write(dir.join("control"), b"").unwrap();
    // A SET_STATUS request (type 1, id 5, status 0x0f) for the daemon to read.
    let mut req = [0u8; 152];
    req[0..4].copy_from_slice(&1u32.to_ne_bytes());
    req[4..8].copy_from_slice(&5u32.to_ne_bytes());
    req[24] = 0x0f;
    std::fs::write(dir.join("blk0"), req).unwrap();
    let cap = dir.join("t.pcapng");
    let out = trace_launch_env(
        &["-w", cap.to_str().unwrap()],
        "vduse",
        &dir,
        &[("VFU_TRACE_VDUSE_DIR", &dir)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut r = CaptureReader::new(File::open(&cap).unwrap(), &OpenOptions::default()).unwrap();
    let mut recs = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        recs.push(rec.to_owned());
    }
    let names: Vec<String> = r.connections().iter().map(|c| c.name.clone()).collect();
    assert_eq!(
        names,
        ["vduse:0:/dev/vduse/control", "vduse:1:/dev/vduse/blk0"]
    );
    use vfu_dump::capture::Protocol;
    let kinds: Vec<(u32, Protocol, Direction, usize)> = recs
        .iter()
        .map(|r| (r.conn, r.protocol, r.direction, r.data.len()))
        .collect();
    assert_eq!(
        kinds,
        [
            (0, Protocol::VduseIoctl, Direction::ServerToClient, 16),
            (1, Protocol::VduseIoctl, Direction::ServerToClient, 16 + 340),
            (1, Protocol::Vduse, Direction::ClientToServer, 152),
            (1, Protocol::Vduse, Direction::ServerToClient, 152),
            (1, Protocol::VduseIoctl, Direction::ServerToClient, 16 + 48),
        ]
    );
    assert_eq!(recs[2].data, req);
    let text = stdout(&out);
    assert!(
        text.contains("VDUSE VDUSE_GET_API_VERSION = -25 ENOTTY"),
        "{text}"
    );
    assert!(
        text.contains("VDUSE VDUSE_CREATE_DEV = -25 ENOTTY name=\"blk0\""),
        "{text}"
    );
    assert!(text.contains("tail=01020304"), "{text}");
    assert!(
        text.contains("VDUSE VDUSE_SET_STATUS (1) id 5 status"),
        "{text}"
    );
    assert!(text.contains("VDUSE response id 5 OK"), "{text}");
    assert!(
        text.contains("VDUSE VDUSE_VQ_GET_INFO = -25 ENOTTY index=0"),
        "{text}"
    );

    // The generated Wireshark dissector decodes the ioctl records too.
    let lua = dir.join("vfu.lua");
    let generated = vfu_dump().arg("wireshark-dissector").output().unwrap();
    std::fs::write(&lua, &generated.stdout).unwrap();
    let tshark = |extra: &[&str]| {
        Command::new("tshark")
            .arg("-X")
            .arg(format!("lua_script:{}", lua.display()))
            .arg("-r")
            .arg(&cap)
            .args(extra)
            .output()
            .expect("tshark (the tests need it, see the README)")
    };
    let shown = stdout(&tshark(&[
        "-Y",
        "vduse_ioctl.ioctl_record_head.result == -25",
    ]));
    assert_eq!(shown.lines().count(), 3, "{shown}");
    assert!(shown.contains("VDUSE_CREATE_DEV = -25 ENOTTY"), "{shown}");
    let tree = stdout(&tshark(&["-V", "-Y", "frame.number == 2"]));
    assert!(tree.contains("request: VDUSE_CREATE_DEV"), "{tree}");
    assert!(
        tree.contains("VduseDevConfig") && tree.contains("name: blk0"),
        "{tree}"
    );
    assert!(!tree.contains("Lua Error"), "{tree}");
}

#[test]
fn both_ends_traced_give_each_message_once() {
    // The reference: the same session through the proxy, client and server in this process.
    let mut b = Bench::new();
    common::session(&b.client_sock(), CHECKS);
    let proxy = b.finish();
    // Traced: server and client in one traced process, so every message is both sent and received
    // under the tracer.
    let dir = tmp();
    let cap = dir.join("t.pcapng");
    let out = trace_launch(&["-w", cap.to_str().unwrap()], "both", &dir.join("s.sock"));
    assert!(out.status.success(), "{}", stderr(&out));
    let traced = records(&cap);
    assert_same(&traced, &proxy, &stderr(&out));
    assert!(traced.iter().all(|r| r.conn == 0));
}

#[test]
fn help_errors_and_the_programs_exit_status() {
    let help = vfu_dump().args(["trace", "--help"]).output().unwrap();
    let h = stdout(&help);
    assert!(h.contains("-p $(pidof qemu-system-x86_64)"), "{h}");
    assert!(
        h.contains("qemu-storage-daemon") && h.contains("VDUSE"),
        "{h}"
    );
    for (args, want) in [
        (&["trace", "-p", "999999"][..], "no process 999999"),
        (
            &["trace", "--", "no-such-program-here"][..],
            "not found in PATH",
        ),
        (
            &["trace", "--", "/etc/hostname"][..],
            "cannot execute the program",
        ),
        (&["trace"][..], "required"),
    ] {
        let o = vfu_dump().args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    let o = vfu_dump()
        .args(["trace", "--", "/bin/sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn a_job_control_stop_of_an_attached_process_is_kept() {
    let mut b = Bench::new();
    let mut client = peer_command("slow", &b.client_sock())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_records(&b.dir.join("proxy.pcapng"), 10);
    let pid = client.id();
    let tracer = spawn_trace(&["-p", &pid.to_string()]);
    std::thread::sleep(Duration::from_millis(200));
    let p = rustix::process::Pid::from_child(&client);
    rustix::process::kill_process(p, rustix::process::Signal::STOP).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let state = || {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        s.rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    // Stopped, and it stays stopped: the tracer keeps it in its group-stop (PTRACE_LISTEN; a
    // traced process in a stop shows "t") instead of letting it run on.
    assert!(matches!(state().as_str(), "T" | "t"), "{}", state());
    // The proxy is still writing its capture: it is under its temporary name.
    let proxy_cap = being_written(&b.dir.join("proxy.pcapng"));
    let before = records(&proxy_cap).len();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        records(&proxy_cap).len(),
        before,
        "the stopped client went on"
    );
    rustix::process::kill_process(p, rustix::process::Signal::CONT).unwrap();
    assert!(client.wait().unwrap().success());
    let out = tracer.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(region_reads(&b.finish()), 60);
}

#[test]
fn sigterm_in_launch_mode_passes_the_program_through_to_its_end() {
    let mut b = Bench::new();
    let peer = peer_command("slow", &b.client_sock());
    let mut c = vfu_dump();
    c.args([
        "trace",
        "--",
        "/bin/sh",
        "-c",
        "exec \"$0\" \"$@\" > /dev/null",
    ])
    .arg(peer.get_program())
    .args(peer.get_args())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in peer.get_envs() {
        c.env(k, v.unwrap());
    }
    let tracer = c.spawn().unwrap();
    wait_records(&b.dir.join("proxy.pcapng"), 20);
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&tracer),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    // The program's seccomp filter needs a tracer: the tracer stays, passing its calls through, and
    // ends with it (with its exit status: every call worked, none failed with ENOSYS).
    let out = tracer.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("stop requested"), "{}", stdout(&out));
    assert_eq!(region_reads(&b.finish()), 60);
}

#[test]
fn both_ends_attached_keep_every_reply_after_its_request() {
    let dir = tmp();
    let sock = dir.join("s.sock");
    let mut peer = peer_command("both-slow", &sock)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let cap = dir.join("t.pcapng");
    attach_until_exit(&mut peer, &cap);
    let recs = records(&cap);
    assert!(recs.len() > 20, "{}", recs.len());
    // Each message once (both ends are in the traced process), and from the first request on,
    // every reply after its request.
    let mut asked = std::collections::HashSet::new();
    let mut replies = 0;
    for r in &recs {
        let id = u16::from_le_bytes([r.data[0], r.data[1]]);
        let reply = r.data[8] & 0xf == 1;
        if r.direction == Direction::ClientToServer {
            assert!(!reply);
            assert!(asked.insert(id), "request {id} twice");
        } else if !asked.is_empty() {
            assert!(
                reply && asked.contains(&id),
                "reply {id} before its request"
            );
            replies += 1;
        }
    }
    assert!(
        replies + 1 >= asked.len(),
        "{replies} replies to {} requests",
        asked.len()
    );
}

/// Per command and type, how many messages connection `conn` of a capture has.
fn counts(path: &Path, conn: u32) -> std::collections::BTreeMap<(u16, bool), usize> {
    let mut m = std::collections::BTreeMap::new();
    for r in records(path).iter().filter(|r| r.conn == conn) {
        let cmd = u16::from_le_bytes([r.data[2], r.data[3]]);
        *m.entry((cmd, r.data[8] & 0xf == 1)).or_insert(0) += 1;
    }
    m
}

#[test]
fn a_traced_libvfio_user_client_equals_the_relays_recording() {
    // corpus/trace/lvu-sample-client.pcapng: libvfio-user's sample client launched under
    // `vfu-dump trace -w` (its fork and its exec of the migration destination server followed);
    // corpus/lvu-sample-client*.pcapng: the same programs recorded by a relay on the socket path.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let traced = corpus.join("trace/lvu-sample-client.pcapng");
    // The sample client's background thread writes BAR1 during pre-copy, so REGION_WRITE and
    // MIG_DATA_READ counts change from run to run (corpus/README.md); every other count is the same.
    let varying = |m: &mut std::collections::BTreeMap<(u16, bool), usize>| {
        m.retain(|(cmd, _), _| *cmd != 10 && *cmd != 17);
    };
    for (conn, relay) in [
        (0, "lvu-sample-client.pcapng"),
        (1, "lvu-sample-client-migrated.pcapng"),
    ] {
        let (mut a, mut b) = (counts(&traced, conn), counts(&corpus.join(relay), 0));
        varying(&mut a);
        varying(&mut b);
        assert_eq!(a, b, "connection {conn} against {relay}");
    }
    // And it validates as the relay's recording does: the one deliberate bad region index.
    let v = |p: &Path| {
        let o = vfu_dump()
            .args(["validate", "--profile", "libvfio-user"])
            .arg(p)
            .output()
            .unwrap();
        let s = stdout(&o);
        let rules: Vec<String> = s
            .lines()
            .map(|l| l.split_whitespace().nth(5).unwrap_or("").to_owned())
            .collect();
        rules
    };
    assert_eq!(v(&traced), ["region-index"]);
    assert_eq!(v(&traced), v(&corpus.join("lvu-sample-client.pcapng")));
}

#[test]
fn vectored_and_multi_message_calls_are_recorded() {
    let dir = tmp();
    let sock = dir.join("s.sock");
    let l = UnixListener::bind(&sock).unwrap();
    let version_reply = {
        let mut p = vec![0u8, 0, 0, 0];
        p.extend_from_slice(b"{\"x\":1}\0");
        msg(1, 1, 1, &p)
    };
    let (reset_reply, info_reply) = (
        msg(2, 13, 1, &[]),
        msg(3, 4, 1, &[16, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0]),
    );
    let replies = [
        version_reply.clone(),
        reset_reply.clone(),
        info_reply.clone(),
    ];
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut got = vec![0u8; version().len() + 16 + 32];
        s.read_exact(&mut got).unwrap();
        s.write_all(&replies[0]).unwrap();
        s.write_all(&[replies[1].clone(), replies[2].clone()].concat())
            .unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        got
    });
    let cap = dir.join("t.pcapng");
    let out = trace_launch(&["-w", cap.to_str().unwrap()], "vectored", &sock);
    assert!(out.status.success(), "{}", stderr(&out));
    let sent = server.join().unwrap();
    let recs = records(&cap);
    let got: Vec<(Direction, Vec<u8>)> =
        recs.iter().map(|r| (r.direction, r.data.clone())).collect();
    let info = msg(3, 4, 0, &[32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        got,
        [
            (Direction::ClientToServer, version()),
            (Direction::ClientToServer, msg(2, 13, 0, &[])),
            (Direction::ClientToServer, info.clone()),
            (Direction::ServerToClient, version_reply),
            (Direction::ServerToClient, reset_reply),
            (Direction::ServerToClient, info_reply),
        ],
        "{}",
        stderr(&out)
    );
    assert_eq!(sent, [version(), msg(2, 13, 0, &[]), info].concat());
}

#[test]
fn other_sockets_are_ignored() {
    let dir = tmp();
    let qmp = sink_server(&dir.join("qmp.sock"));
    let dev = sink_server(&dir.join("dev.sock"));
    let cap = dir.join("t.pcapng");
    let out = trace_launch(&["-w", cap.to_str().unwrap()], "two-sockets", &dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(qmp.join().unwrap().len(), 2000 * 29);
    dev.join().unwrap();
    let mut r = CaptureReader::new(File::open(&cap).unwrap(), &OpenOptions::default()).unwrap();
    let mut recs = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        recs.push(rec.to_owned());
    }
    let names: Vec<String> = r.connections().iter().map(|c| c.name.clone()).collect();
    assert_eq!(
        names,
        [format!("vfio-user:0:{}", dir.join("dev.sock").display())]
    );
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].data, version());
}

#[test]
fn verbose_and_hex_are_reads() {
    let mut b = Bench::new();
    let out = trace_launch(
        &["-v", "-x", "--cmd", "DMA_MAP"],
        "client",
        &b.client_sock(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    b.finish();
    let text = stdout(&out);
    // -v: every field of DmaMap; -x: the annotated hex dump (offset | bytes | field = value).
    assert!(text.contains("DmaMap") && text.contains("argsz"), "{text}");
    assert!(text.contains("| DmaMap.address"), "{text}");
}

#[test]
fn attached_in_the_middle_of_a_message_resynchronises_and_says_so() {
    let dir = tmp();
    let sock = dir.join("s.sock");
    let srv = sink_server(&sock);
    let mut peer = peer_command("split", &sock)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(250));
    let cap = dir.join("t.pcapng");
    let out = attach_until_exit(&mut peer, &cap);
    srv.join().unwrap();
    // The DMA_MAP's tail is skipped, not invented into a message; the DEVICE_RESET is recorded.
    let recs = records(&cap);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].data, msg(3, 13, 0, &[]));
    assert!(
        stdout(&out).contains("resynchronised at stream offset 28 after skipping 28 bytes"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn traced_vduse_daemons_under_the_real_kernel_validate_clean() {
    // corpus/trace/vduse-6.12-*.pcapng: the vduse-blk example and qemu-storage-daemon launched under
    // `vfu-dump trace` in the VM harness (scripts/vm/guest/trace-vduse.sh, corpus/README.md).
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    for (file, count) in [
        ("trace/vduse-6.12-blk-example.pcapng", 65),
        ("trace/vduse-6.12-qsd.pcapng", 37),
    ] {
        let path = corpus.join(file);
        let v = vfu_dump().arg("validate").arg(&path).output().unwrap();
        assert!(v.status.success(), "{file}: {}", stdout(&v));
        let recs = records(&path);
        assert_eq!(recs.len(), count, "{file}");
        use vfu_dump::capture::Protocol;
        let ioctl = |r: &&Record| r.protocol == Protocol::VduseIoctl;
        let create = recs
            .iter()
            .filter(ioctl)
            .any(|r| r.data[..4] == vfu_codec::vduse::VDUSE_CREATE_DEV.to_le_bytes());
        assert!(create, "{file}: no CREATE_DEV");
        let requests = recs
            .iter()
            .filter(|r| r.protocol == Protocol::Vduse && r.direction == Direction::ClientToServer)
            .count();
        let responses = recs
            .iter()
            .filter(|r| r.protocol == Protocol::Vduse && r.direction == Direction::ServerToClient)
            .count();
        assert!(
            requests > 0 && requests == responses,
            "{file}: {requests} requests, {responses} responses"
        );
    }
}
