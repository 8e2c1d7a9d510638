//! Benchmark of `vfu-dump proxy` (figures in BENCHMARKS.md, "## vfu-dump proxy"; run it with
//! `scripts/bench-proxy.sh`).
//!
//! In one run, alternating between the set-ups round by round so that drift in the machine's speed
//! falls on all of them alike:
//!
//! 1. synchronous DEVICE_GET_INFO round trips: direct, through `vfu-dump proxy` (decoding and
//!    printing to /dev/null), the same with `-w` (capture), the same with `--spin 0` (never
//!    polling), with `-q` (forwarding only), and through `socat UNIX-LISTEN:…,fork UNIX-CONNECT:…`;
//!    with the processor time the proxy (or socat, its children included) spent per round trip;
//! 2. 1 MiB REGION_WRITE throughput over the same paths;
//! 3. the proxy process's peak RSS (VmHWM) after 10,000 and after 1,000,000 messages (with `-w`);
//! 4. heap allocations per message in an in-process proxy (capture on, printing off: the forwarding
//!    and recording path), counted by a global allocator.
//!
//! The server and client are minimal hand-written vfio-user peers that allocate nothing per message,
//! so every figure is the transport's. `VFU_BENCH_QUICK=1` shortens everything (a smoke run).

#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vfu_dump::proxy::{Config, Proxy};

// ---------------------------------------------------------------------------------------------------
// Allocation counting

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---------------------------------------------------------------------------------------------------
// Peers

const MIB: usize = 1 << 20;

fn header(id: u16, cmd: u16, size: usize, flags: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..2].copy_from_slice(&id.to_le_bytes());
    h[2..4].copy_from_slice(&cmd.to_le_bytes());
    h[4..8].copy_from_slice(&(size as u32).to_le_bytes());
    h[8..12].copy_from_slice(&flags.to_le_bytes());
    h
}

/// A minimal device: VERSION, DEVICE_GET_INFO and REGION_WRITE, one thread per connection, one
/// buffer reused for every message.
fn serve(path: &Path) {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 2 * MIB];
                // BAR0: REGION_WRITE data lands here, as in a device.
                let mut bar0 = vec![0u8; 2 * MIB];
                let mut reply = [0u8; 256];
                loop {
                    if s.read_exact(&mut buf[..16]).is_err() {
                        return;
                    }
                    let size = u32::from_le_bytes(buf[4..8].try_into().unwrap()) as usize;
                    if !(16..=buf.len()).contains(&size)
                        || s.read_exact(&mut buf[16..size]).is_err()
                    {
                        return;
                    }
                    let id = u16::from_le_bytes([buf[0], buf[1]]);
                    let cmd = u16::from_le_bytes([buf[2], buf[3]]);
                    let n = match cmd {
                        1 => {
                            let json = b"{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576}}\0";
                            let n = 20 + json.len();
                            reply[..16].copy_from_slice(&header(id, 1, n, 1));
                            reply[16..20].fill(0);
                            reply[20..n].copy_from_slice(json);
                            n
                        }
                        4 => {
                            reply[..16].copy_from_slice(&header(id, 4, 32, 1));
                            for (i, v) in [16u32, 3, 9, 5].iter().enumerate() {
                                reply[16 + 4 * i..20 + 4 * i].copy_from_slice(&v.to_le_bytes());
                            }
                            32
                        }
                        10 => {
                            let count =
                                u32::from_le_bytes(buf[28..32].try_into().unwrap()) as usize;
                            let count = count.min(size - 32).min(bar0.len());
                            bar0[..count].copy_from_slice(&buf[32..32 + count]);
                            reply[..16].copy_from_slice(&header(id, 10, 32, 1));
                            reply[16..32].copy_from_slice(&buf[16..32]);
                            32
                        }
                        _ => {
                            reply[..16].copy_from_slice(&header(id, cmd, 16, 1 | 0x20));
                            reply[12..16].copy_from_slice(&38u32.to_le_bytes());
                            16
                        }
                    };
                    if s.write_all(&reply[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// A client after VERSION.
fn client(path: &Path) -> UnixStream {
    let mut s = UnixStream::connect(path).unwrap();
    let json = b"{\"capabilities\":{\"max_msg_fds\":8}}\0";
    let mut v = header(0, 1, 20 + json.len(), 0).to_vec();
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(json);
    s.write_all(&v).unwrap();
    let mut h = [0u8; 16];
    s.read_exact(&mut h).unwrap();
    let size = u32::from_le_bytes(h[4..8].try_into().unwrap()) as usize;
    let mut rest = vec![0u8; size - 16];
    s.read_exact(&mut rest).unwrap();
    s
}

fn get_info() -> [u8; 32] {
    let mut m = [0u8; 32];
    m[..16].copy_from_slice(&header(1, 4, 32, 0));
    m[16..20].copy_from_slice(&16u32.to_le_bytes());
    m
}

/// `n` synchronous DEVICE_GET_INFO round trips on `s`; mean time per round trip.
fn round_trips(s: &mut UnixStream, n: u32) -> Duration {
    let req = get_info();
    let mut rep = [0u8; 32];
    let t = Instant::now();
    for _ in 0..n {
        s.write_all(&req).unwrap();
        s.read_exact(&mut rep).unwrap();
    }
    t.elapsed() / n
}

/// `n` synchronous REGION_WRITEs of `size` bytes; bytes per second.
fn region_writes(s: &mut UnixStream, n: u32, size: usize) -> f64 {
    let mut m = vec![0xA5u8; 32 + size];
    m[..16].copy_from_slice(&header(2, 10, 32 + size, 0));
    m[16..32].fill(0);
    m[28..32].copy_from_slice(&(size as u32).to_le_bytes());
    let mut rep = [0u8; 32];
    let t = Instant::now();
    for _ in 0..n {
        s.write_all(&m).unwrap();
        s.read_exact(&mut rep).unwrap();
    }
    (size as f64 * f64::from(n)) / t.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------------
// The set-ups

struct Path4 {
    name: &'static str,
    path: PathBuf,
    child: Option<Child>,
}

/// Stops the child when dropped (also when the benchmark panics).
impl Drop for Path4 {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            stop(c);
        }
    }
}

fn wait_for(path: &Path) {
    let t = Instant::now();
    while UnixStream::connect(path).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{} never came up",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn spawn_proxy(dir: &Path, name: &str, server: &Path, capture: bool) -> Child {
    spawn_proxy_with(dir, name, server, capture, &[])
}

fn spawn_proxy_with(dir: &Path, name: &str, server: &Path, capture: bool, extra: &[&str]) -> Child {
    spawn_bin(this_build(), dir, name, server, capture, extra, &[])
}

/// This build's vfu-dump.
fn this_build() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vfu-dump"))
}

/// The proxy of the binary `bin` (this build's, or `VFU_BENCH_BASE_BIN`'s for the A/B rows).
fn spawn_bin(
    bin: &Path,
    dir: &Path,
    name: &str,
    server: &Path,
    capture: bool,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Child {
    let listen = dir.join(format!("{name}.sock"));
    let mut cmd = Command::new(bin);
    cmd.envs(env.iter().copied());
    cmd.arg("proxy")
        .arg("--listen")
        .arg(&listen)
        .arg("--connect")
        .arg(server)
        .args(extra);
    if capture {
        cmd.arg("-w").arg(dir.join(format!("{name}.pcapng")));
    }
    let child = cmd
        .stdout(Stdio::from(File::create("/dev/null").unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&listen);
    child
}

fn spawn_socat(dir: &Path, server: &Path) -> Option<Child> {
    let listen = dir.join("socat.sock");
    let child = Command::new("socat")
        .arg(format!("UNIX-LISTEN:{},fork", listen.display()))
        .arg(format!("UNIX-CONNECT:{}", server.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    wait_for(&listen);
    Some(child)
}

fn stop(child: &mut Child) {
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(child),
        rustix::process::Signal::TERM,
    );
    let _ = child.wait();
}

/// Nanoseconds on a processor of every thread of a process and of its children still running (socat
/// serves each connection in a child), from `/proc/<pid>/task/<tid>/schedstat`.
fn cpu_ns(pid: u32) -> u64 {
    fn threads(pid: &str) -> u64 {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return 0;
        };
        dir.filter_map(Result::ok)
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    threads(&pid.to_string()) + children.split_whitespace().map(threads).sum::<u64>()
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `VFU_BENCH_THROUGHPUT=1`: 1 MiB REGION_WRITE throughput only, direct, forwarding only, with a
/// capture, with a capture cut to 256 KiB records, and with a capture the way it was taken before
/// the tee path (`VFU_PROXY_SPLICE=0`:
/// every byte read into the proxy, sent on, reassembled and written), alternating round by round.
fn throughput_only(dir: &Path, server: &Path, rounds: u32, writes: u32) {
    let mut setups = vec![
        Path4 {
            name: "direct",
            path: server.to_path_buf(),
            child: None,
        },
        Path4 {
            name: "vfu-dump proxy -q (forward only)",
            path: dir.join("proxy-q.sock"),
            child: Some(spawn_proxy_with(dir, "proxy-q", server, false, &["-q"])),
        },
        Path4 {
            name: "vfu-dump proxy -w (decode + capture)",
            path: dir.join("proxy-w.sock"),
            child: Some(spawn_proxy(dir, "proxy-w", server, true)),
        },
        Path4 {
            name: "vfu-dump proxy -w --snaplen 262144 (records cut)",
            path: dir.join("proxy-ws.sock"),
            child: Some(spawn_proxy_with(
                dir,
                "proxy-ws",
                server,
                true,
                &["--snaplen", "262144"],
            )),
        },
        Path4 {
            name: "vfu-dump proxy -w, VFU_PROXY_SPLICE=0 (copying)",
            path: dir.join("proxy-w0.sock"),
            child: Some(spawn_bin(
                this_build(),
                dir,
                "proxy-w0",
                server,
                true,
                &[],
                &[("VFU_PROXY_SPLICE", "0")],
            )),
        },
    ];
    // A/B against another build (e.g. an older commit's `target/release/vfu-dump`), interleaved in
    // the same rounds: its forwarding-only and decoding rows.
    if let Some(base) = std::env::var_os("VFU_BENCH_BASE_BIN") {
        let base = PathBuf::from(base);
        setups.push(Path4 {
            name: "base build: proxy -q (forward only)",
            path: dir.join("base-q.sock"),
            child: Some(spawn_bin(&base, dir, "base-q", server, false, &["-q"], &[])),
        });
        setups.push(Path4 {
            name: "base build: proxy -w (decode + capture)",
            path: dir.join("base-w.sock"),
            child: Some(spawn_bin(&base, dir, "base-w", server, true, &[], &[])),
        });
    }
    let mut tput: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    let mut cpu = vec![0u64; setups.len()];
    for round in 0..=rounds {
        for (i, s) in setups.iter().enumerate() {
            let mut c = client(&s.path);
            let pid = s.child.as_ref().map(Child::id);
            let before = pid.map_or(0, cpu_ns);
            let bps = region_writes(&mut c, writes, MIB);
            let after = pid.map_or(0, cpu_ns);
            if round > 0 {
                tput[i].push(bps);
                cpu[i] += after.saturating_sub(before);
            }
        }
    }
    let direct = median(&mut tput[0].clone());
    println!(
        "| path | 1 MiB REGION_WRITE (median of {rounds} × {writes}) | vs direct | range | proxy CPU per MiB |"
    );
    println!("|---|---|---|---|---|");
    for (i, s) in setups.iter().enumerate() {
        let lo = tput[i].iter().copied().fold(f64::INFINITY, f64::min);
        let hi = tput[i].iter().copied().fold(0.0, f64::max);
        let t = median(&mut tput[i]);
        let used = cpu_per(s, cpu[i], f64::from(rounds) * f64::from(writes), 0);
        println!(
            "| {} | {:.0} MiB/s | {:.0} % | {:.0}–{:.0} % | {used} |",
            s.name,
            t / MIB as f64,
            100.0 * t / direct,
            100.0 * lo / direct,
            100.0 * hi / direct,
        );
    }
}

/// The proxy's (or socat's) processor time per measured item, in µs with `decimals` places; "–"
/// for the direct path, which has no process of its own.
fn cpu_per(s: &Path4, cpu_ns: u64, items: f64, decimals: usize) -> String {
    if s.child.is_some() {
        format!("{:.*} µs", decimals, cpu_ns as f64 / items / 1e3)
    } else {
        "–".to_string()
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we need: both run the same.
    let quick = std::env::var_os("VFU_BENCH_QUICK").is_some_and(|v| v != "0");
    let (rounds, rtts, writes, rss_total) = if quick {
        (2, 2_000, 20, 50_000)
    } else {
        (7, 20_000, 300, 1_000_000)
    };

    let dir = std::env::temp_dir().join(format!("vfu-bench-proxy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = dir.join("server.sock");
    serve(&server);
    wait_for(&server);
    if std::env::var_os("VFU_BENCH_THROUGHPUT").is_some_and(|v| v != "0") {
        throughput_only(&dir, &server, rounds, writes);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }

    let mut setups = vec![
        Path4 {
            name: "direct",
            path: server.clone(),
            child: None,
        },
        Path4 {
            name: "vfu-dump proxy (decode to /dev/null)",
            path: dir.join("proxy.sock"),
            child: Some(spawn_proxy(&dir, "proxy", &server, false)),
        },
        Path4 {
            name: "vfu-dump proxy -w (decode + capture)",
            path: dir.join("proxy-w.sock"),
            child: Some(spawn_proxy(&dir, "proxy-w", &server, true)),
        },
    ];
    setups.push(Path4 {
        name: "vfu-dump proxy --spin 0 (decode, never poll)",
        path: dir.join("proxy-s0.sock"),
        child: Some(spawn_proxy_with(
            &dir,
            "proxy-s0",
            &server,
            false,
            &["--spin", "0"],
        )),
    });
    setups.push(Path4 {
        name: "vfu-dump proxy -q (forward only)",
        path: dir.join("proxy-q.sock"),
        child: Some(spawn_proxy_with(&dir, "proxy-q", &server, false, &["-q"])),
    });
    match spawn_socat(&dir, &server) {
        Some(c) => setups.push(Path4 {
            name: "socat",
            path: dir.join("socat.sock"),
            child: Some(c),
        }),
        None => eprintln!("socat not found: its rows are left out (apt-get install socat)"),
    }

    // 1 and 2, alternating.
    let mut rtt: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    let mut tput: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    // Processor time the proxy (or socat) spent during the measured round trips.
    let mut cpu = vec![0u64; setups.len()];
    for round in 0..=rounds {
        for (i, s) in setups.iter().enumerate() {
            let mut c = client(&s.path);
            let pid = s.child.as_ref().map(Child::id);
            let before = pid.map_or(0, cpu_ns);
            let per = round_trips(&mut c, rtts);
            let after = pid.map_or(0, cpu_ns);
            let bps = region_writes(&mut c, writes, MIB);
            // Round 0 warms up (page cache, CPU frequency, the proxy's buffer pool).
            if round > 0 {
                rtt[i].push(per.as_nanos() as f64);
                tput[i].push(bps);
                cpu[i] += after.saturating_sub(before);
            }
        }
    }
    let direct_rtt = median(&mut rtt[0].clone());
    let direct_tput = median(&mut tput[0].clone());
    println!(
        "| path | round trip (median of {rounds} rounds × {rtts}) | vs direct | proxy CPU per round trip | 1 MiB REGION_WRITE (median of {rounds} × {writes}) | vs direct |"
    );
    println!("|---|---|---|---|---|---|");
    for (i, s) in setups.iter().enumerate() {
        let r = median(&mut rtt[i]);
        let t = median(&mut tput[i]);
        let used = cpu_per(s, cpu[i], f64::from(rounds) * f64::from(rtts), 1);
        println!(
            "| {} | {:.1} µs | {:.2}× | {used} | {:.0} MiB/s | {:.0} % |",
            s.name,
            r / 1e3,
            r / direct_rtt,
            t / MIB as f64,
            100.0 * t / direct_tput
        );
    }
    drop(setups);

    // 3. Peak RSS of a proxy process with capture, 10,000 then `rss_total` messages.
    let mut p = Path4 {
        name: "rss",
        path: dir.join("rss.sock"),
        child: Some(spawn_proxy(&dir, "rss", &server, true)),
    };
    let pid = p.child.as_ref().unwrap().id();
    let mut c = client(&p.path);
    round_trips(&mut c, 5_000 - 1);
    let at_10k = vm_hwm_kib(pid);
    round_trips(&mut c, (rss_total / 2 - 5_000) as u32);
    let at_end = vm_hwm_kib(pid);
    drop(c);
    if let Some(mut c) = p.child.take() {
        stop(&mut c);
    }
    println!();
    println!(
        "peak RSS (VmHWM) of `vfu-dump proxy -w`: {at_10k} KiB after 10,000 messages, {at_end} KiB after {rss_total} messages ({:+} KiB)",
        at_end as i64 - at_10k as i64
    );

    // 4. Allocations per message, in-process, capture on and printing off.
    let mut cfg = Config::new(dir.join("inproc.sock"), &server);
    cfg.capture = Some(dir.join("inproc.pcapng"));
    let proxy = Proxy::start(cfg).unwrap();
    let mut c = client(&dir.join("inproc.sock"));
    round_trips(&mut c, 10_000);
    std::thread::sleep(Duration::from_millis(50));
    let n = 100_000u32;
    let before = ALLOCS.load(Ordering::Relaxed);
    round_trips(&mut c, n);
    std::thread::sleep(Duration::from_millis(50));
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    drop(c);
    let s = proxy.shutdown().unwrap();
    println!(
        "heap allocations in the whole process (client, server, proxy with capture) over {} messages: {allocs} ({:.5} per message); {} messages recorded",
        2 * n,
        allocs as f64 / f64::from(2 * n),
        s.messages
    );
    let _ = std::fs::remove_dir_all(&dir);
}
