//! Writes a synthetic capture of about SIZE bytes with a realistic mix of vfio-user traffic, for the
//! benchmarks: `cargo run --release -p vfu-dump --example gen_capture -- OUT.pcapng SIZE_MIB [MIX]`.
//!
//! Mix per 100 exchanges (a request and its reply each): 60 small BAR accesses (REGION_READ/WRITE of 4
//! or 8 bytes), 20 small and 8 large DMA_READ/WRITE, 6 DEVICE_GET_IRQ_INFO, 4 DMA_MAP with an fd
//! followed by its DMA_UNMAP, 2 MIG_DATA_READ; on 4 connections, with increasing timestamps. MIX sets
//! the transfer sizes:
//!
//! - `session` (the default): DMA of 512 bytes and 4 KiB, MIG_DATA_READ of 4 KiB: about 290 bytes per
//!   message, like the real sessions in `corpus/` (369 bytes per message for libvfio-user's sample
//!   client, 484 with migration), where descriptors and small transfers dominate;
//! - `bulk`: DMA of 4 KiB and 64 KiB, MIG_DATA_READ of 128 KiB: about 4 KiB per message, a device
//!   that moves its data through the socket (tshark refuses records over 256 KiB, so it stays under).
//!
//! Each connection first negotiates VERSION, reads the device and region info, maps a 16 MiB DMA
//! window for the server's DMA and moves the device to PRE_COPY, so the stream validates clean.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a failure is a bug to see at once

use std::fs::File;
use std::io::{self, BufWriter};

use vfu_codec::vfio::caps::Version;
use vfu_codec::vfio::{
    DeviceFeature, DeviceInfo, DmaAccess, DmaMap, DmaUnmap, FeatureMigState, IrqInfo, MigData,
    RegionAccess, RegionInfo, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, VFIO_DEVICE_FEATURE_SET,
};
use vfu_codec::{Body, Command, Direction, FeatureData, Header, VersionBody, encode};
use vfu_dump::capture::{PcapngWriter, Protocol, RecordRef};
use zerocopy::little_endian::{U16, U32, U64};

const CAPS: &str = r#"{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576}}"#;

struct Gen {
    w: PcapngWriter<BufWriter<File>>,
    buf: Vec<u8>,
    index: u64,
    written: u64,
}

impl Gen {
    /// Writes one message.
    fn one(
        &mut self,
        conn: u32,
        dir: Direction,
        h: Header,
        b: &Body<'_>,
        ts: u64,
        fds: u32,
    ) -> io::Result<()> {
        let n = encode(&h, b, &mut self.buf).expect("encode");
        let rec = RecordRef {
            conn,
            ts_ns: ts,
            direction: dir,
            protocol: Protocol::VfioUser,
            fds,
            fd_kinds: &[],
            truncated: false,
            data: &self.buf[..n],
            orig_len: n,
            index: self.index,
            file_offset: 0,
        };
        self.w.write_record(&rec)?;
        self.index += 1;
        self.written += n as u64 + 64;
        Ok(())
    }

    /// Writes a command from `dir`'s sender and its reply `rtt` ns later.
    #[allow(clippy::too_many_arguments)]
    fn exchange(
        &mut self,
        conn: u32,
        dir: Direction,
        id: u16,
        cmd: Command,
        req: Body<'_>,
        rep: Body<'_>,
        ts: u64,
        rtt: u64,
        fds: u32,
    ) -> io::Result<()> {
        self.one(conn, dir, Header::command(id, cmd), &req, ts, fds)?;
        self.one(
            conn,
            dir.reverse(),
            Header::reply(id, cmd),
            &rep,
            ts + rtt,
            0,
        )
    }
}

/// VERSION, DEVICE_GET_INFO, region info for BAR0–2, a DMA window, and the migration state PRE_COPY.
fn preamble(g: &mut Gen, conn: u32, ts: &mut u64) -> io::Result<()> {
    let (c2s, rtt) = (Direction::ClientToServer, 30_000);
    let v = Version {
        major: U16::new(0),
        minor: U16::new(2),
    };
    let vb = Body::Version(VersionBody {
        version: &v,
        json: Some(CAPS.as_bytes()),
    });
    g.exchange(conn, c2s, 0, Command::VERSION, vb, vb, *ts, rtt, 0)?;
    let q = DeviceInfo {
        argsz: U32::new(16),
        ..Default::default()
    };
    let r = DeviceInfo {
        flags: U32::new(3),
        num_regions: U32::new(9),
        num_irqs: U32::new(5),
        ..q
    };
    g.exchange(
        conn,
        c2s,
        1,
        Command::DEVICE_GET_INFO,
        Body::DeviceInfo(&q),
        Body::DeviceInfo(&r),
        *ts + 100_000,
        rtt,
        0,
    )?;
    for region in 0..3u32 {
        let q = RegionInfo {
            argsz: U32::new(32),
            index: U32::new(region),
            ..Default::default()
        };
        let r = RegionInfo {
            flags: U32::new(3),
            size: U64::new(0x4000),
            ..q
        };
        let (qb, rb) = (
            Body::RegionInfo {
                info: &q,
                caps: &[],
            },
            Body::RegionInfo {
                info: &r,
                caps: &[],
            },
        );
        g.exchange(
            conn,
            c2s,
            2 + region as u16,
            Command::DEVICE_GET_REGION_INFO,
            qb,
            rb,
            *ts + 200_000,
            rtt,
            0,
        )?;
    }
    let m = DmaMap::new(3, 0, 0x1_0000_0000, 0x100_0000);
    g.exchange(
        conn,
        c2s,
        5,
        Command::DMA_MAP,
        Body::DmaMap(&m),
        Body::Empty,
        *ts + 300_000,
        rtt,
        1,
    )?;
    let f = DeviceFeature::new(
        VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
        VFIO_DEVICE_FEATURE_SET,
    );
    let st = FeatureMigState {
        device_state: U32::new(6),
        data_fd: 0.into(),
    };
    let fb = Body::DeviceFeature {
        head: &f,
        data: FeatureData::MigState(&st),
    };
    g.exchange(
        conn,
        c2s,
        6,
        Command::DEVICE_FEATURE,
        fb,
        fb,
        *ts + 400_000,
        rtt,
        0,
    )?;
    *ts += 500_000;
    Ok(())
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(out), Some(mib)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: gen_capture OUT.pcapng SIZE_MIB [session|bulk]");
        std::process::exit(2);
    };
    // (small DMA, large DMA, MIG_DATA_READ) sizes.
    let (dma_small, dma_large, mig) = match args.get(3).map(String::as_str) {
        None | Some("session") => (512u64, 4096u64, 4096u32),
        Some("bulk") => (4096, 65536, 128 << 10),
        Some(other) => {
            eprintln!("gen_capture: unknown mix '{other}' (session or bulk)");
            std::process::exit(2);
        }
    };
    let mut w = PcapngWriter::new(BufWriter::with_capacity(1 << 20, File::create(out)?))?;
    for c in 0..4 {
        w.add_connection(
            &format!("vfio-user:{c}:/run/vfu-bench.sock"),
            Protocol::VfioUser,
        )?;
    }
    let mut g = Gen {
        w,
        buf: vec![0u8; (1 << 20) + 64],
        index: 0,
        written: 0,
    };
    let data = vec![0x5au8; 1 << 20];
    let (c2s, s2c) = (Direction::ClientToServer, Direction::ServerToClient);
    let mut ts = 1_700_000_000_000_000_000u64;
    for conn in 0..4u32 {
        preamble(&mut g, conn, &mut ts)?;
    }
    let mut i = 0u64;
    while g.written < mib << 20 {
        let conn = (i % 4) as u32;
        let id = (i & 0xffff) as u16;
        let k = i % 100;
        ts += 20_000 + (i * 7919) % 30_000;
        let rtt = 15_000 + (i * 104_729) % 40_000;
        match k {
            0..60 => {
                let count = if k % 2 == 0 { 4 } else { 8 };
                let a = RegionAccess::new((k % 3) as u32, (i * 8) % 0x4000, count);
                let (d, none) = (&data[..count as usize], &[][..]);
                if k % 3 == 0 {
                    let (q, r) = (
                        Body::RegionRw {
                            access: &a,
                            data: d,
                        },
                        Body::RegionRw {
                            access: &a,
                            data: none,
                        },
                    );
                    g.exchange(conn, c2s, id, Command::REGION_WRITE, q, r, ts, rtt, 0)?;
                } else {
                    let (q, r) = (
                        Body::RegionRw {
                            access: &a,
                            data: none,
                        },
                        Body::RegionRw {
                            access: &a,
                            data: d,
                        },
                    );
                    g.exchange(conn, c2s, id, Command::REGION_READ, q, r, ts, rtt, 0)?;
                }
            }
            60..88 => {
                let len = if k < 80 { dma_small } else { dma_large };
                let a = DmaAccess::new(0x1_0000_0000 + (i * 4096) % (0x100_0000 - 0x10000), len);
                let (d, none) = (&data[..len as usize], &[][..]);
                if k % 2 == 0 {
                    let (q, r) = (
                        Body::DmaRw {
                            access: &a,
                            data: none,
                        },
                        Body::DmaRw {
                            access: &a,
                            data: d,
                        },
                    );
                    g.exchange(conn, s2c, id, Command::DMA_READ, q, r, ts, rtt, 0)?;
                } else {
                    let (q, r) = (
                        Body::DmaRw {
                            access: &a,
                            data: d,
                        },
                        Body::DmaRw {
                            access: &a,
                            data: none,
                        },
                    );
                    g.exchange(conn, s2c, id, Command::DMA_WRITE, q, r, ts, rtt, 0)?;
                }
            }
            88..94 => {
                let q = IrqInfo {
                    argsz: U32::new(16),
                    index: U32::new(2),
                    ..Default::default()
                };
                let r = IrqInfo {
                    flags: U32::new(1),
                    count: U32::new(32),
                    ..q
                };
                g.exchange(
                    conn,
                    c2s,
                    id,
                    Command::DEVICE_GET_IRQ_INFO,
                    Body::IrqInfo(&q),
                    Body::IrqInfo(&r),
                    ts,
                    rtt,
                    0,
                )?;
            }
            94..98 => {
                let addr = 0x2_0000_0000 + (i << 12);
                let m = DmaMap::new(3, 0, addr, 0x1000);
                g.exchange(
                    conn,
                    c2s,
                    id,
                    Command::DMA_MAP,
                    Body::DmaMap(&m),
                    Body::Empty,
                    ts,
                    rtt,
                    1,
                )?;
                let u = DmaUnmap {
                    argsz: U32::new(24),
                    flags: U32::new(0),
                    address: U64::new(addr),
                    size: U64::new(0x1000),
                };
                let un = Body::DmaUnmap {
                    unmap: &u,
                    bitmap: None,
                    data: &[],
                };
                g.exchange(
                    conn,
                    c2s,
                    id.wrapping_add(1),
                    Command::DMA_UNMAP,
                    un,
                    un,
                    ts + 2 * rtt,
                    rtt,
                    0,
                )?;
            }
            _ => {
                let q = MigData {
                    argsz: U32::new(8 + mig),
                    size: U32::new(mig),
                };
                let (qb, rb) = (
                    Body::MigData {
                        head: &q,
                        data: &[],
                    },
                    Body::MigData {
                        head: &q,
                        data: &data[..mig as usize],
                    },
                );
                g.exchange(conn, c2s, id, Command::MIG_DATA_READ, qb, rb, ts, rtt, 0)?;
            }
        }
        i += 1;
    }
    g.w.flush()?;
    eprintln!("wrote {} messages, about {} MiB", g.index, g.written >> 20);
    Ok(())
}
