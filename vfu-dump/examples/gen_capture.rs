//! Writes a synthetic capture of about SIZE bytes with a realistic mix of vfio-user traffic, for the
//! benchmarks: `cargo run --release -p vfu-dump --example gen_capture -- OUT.pcapng SIZE_MIB`.
//!
//! Mix per 100 exchanges (request and reply each): 60 small BAR accesses (REGION_READ/WRITE of 4 or 8
//! bytes), 20 DMA_READ/WRITE of 4 KiB, 8 of 64 KiB, 6 DEVICE_SET_IRQS or GET_IRQ_INFO, 4 DMA_MAP/UNMAP
//! pairs, 2 MIG_DATA_READ of 1 MiB, all on 4 connections, with increasing timestamps.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a failure is a bug to see at once

use std::fs::File;
use std::io::BufWriter;

use vfu_codec::vfio::{DmaAccess, DmaMap, DmaUnmap, IrqInfo, MigData, RegionAccess};
use vfu_codec::{Body, Command, Direction, Header, encode};
use vfu_dump::capture::{PcapngWriter, Protocol, RecordRef};
use zerocopy::little_endian::{U32, U64};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(out), Some(mib)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: gen_capture OUT.pcapng SIZE_MIB");
        std::process::exit(2);
    };
    let target = mib << 20;
    let mut w = PcapngWriter::new(BufWriter::with_capacity(1 << 20, File::create(out)?))?;
    for c in 0..4 {
        w.add_connection(
            &format!("vfio-user:{c}:/run/vfu-bench.sock"),
            Protocol::VfioUser,
        )?;
    }
    let data = vec![0x5au8; 1 << 20];
    let mut buf = vec![0u8; (1 << 20) + 64];
    let mut written = 0u64;
    let mut ts = 1_700_000_000_000_000_000u64;
    let mut i = 0u64;
    let mut index = 0u64;
    let mut emit = |w: &mut PcapngWriter<_>,
                    conn: u32,
                    dir: Direction,
                    h: Header,
                    b: Body<'_>,
                    ts: u64,
                    fds: u32|
     -> std::io::Result<u64> {
        let n = encode(&h, &b, &mut buf).expect("encode");
        let rec = RecordRef {
            conn,
            ts_ns: ts,
            direction: dir,
            protocol: Protocol::VfioUser,
            fds,
            truncated: false,
            data: &buf[..n],
            index,
            file_offset: 0,
        };
        index += 1;
        w.write_record(&rec)?;
        Ok(n as u64 + 64)
    };
    let c2s = Direction::ClientToServer;
    let s2c = Direction::ServerToClient;
    while written < target {
        let conn = (i % 4) as u32;
        let id = (i & 0xffff) as u16;
        let k = i % 100;
        ts += 20_000 + (i * 7919) % 30_000;
        let rtt = 15_000 + (i * 104_729) % 40_000;
        match k {
            0..60 => {
                let count = if k % 2 == 0 { 4 } else { 8 };
                let a = RegionAccess::new((k % 3) as u32, (i * 8) % 0x4000, count);
                let d = &data[..count as usize];
                if k % 3 == 0 {
                    written += emit(
                        &mut w,
                        conn,
                        c2s,
                        Header::command(id, Command::REGION_WRITE),
                        Body::RegionRw {
                            access: &a,
                            data: d,
                        },
                        ts,
                        0,
                    )?;
                    written += emit(
                        &mut w,
                        conn,
                        s2c,
                        Header::reply(id, Command::REGION_WRITE),
                        Body::RegionRw {
                            access: &a,
                            data: &[],
                        },
                        ts + rtt,
                        0,
                    )?;
                } else {
                    written += emit(
                        &mut w,
                        conn,
                        c2s,
                        Header::command(id, Command::REGION_READ),
                        Body::RegionRw {
                            access: &a,
                            data: &[],
                        },
                        ts,
                        0,
                    )?;
                    written += emit(
                        &mut w,
                        conn,
                        s2c,
                        Header::reply(id, Command::REGION_READ),
                        Body::RegionRw {
                            access: &a,
                            data: d,
                        },
                        ts + rtt,
                        0,
                    )?;
                }
            }
            60..88 => {
                let len = if k < 80 { 4096 } else { 65536 };
                let a = DmaAccess::new(0x1_0000_0000 + (i * 4096) % 0x100_0000, len);
                let d = &data[..len as usize];
                if k % 2 == 0 {
                    written += emit(
                        &mut w,
                        conn,
                        s2c,
                        Header::command(id, Command::DMA_READ),
                        Body::DmaRw {
                            access: &a,
                            data: &[],
                        },
                        ts,
                        0,
                    )?;
                    written += emit(
                        &mut w,
                        conn,
                        c2s,
                        Header::reply(id, Command::DMA_READ),
                        Body::DmaRw {
                            access: &a,
                            data: d,
                        },
                        ts + rtt,
                        0,
                    )?;
                } else {
                    written += emit(
                        &mut w,
                        conn,
                        s2c,
                        Header::command(id, Command::DMA_WRITE),
                        Body::DmaRw {
                            access: &a,
                            data: d,
                        },
                        ts,
                        0,
                    )?;
                    written += emit(
                        &mut w,
                        conn,
                        c2s,
                        Header::reply(id, Command::DMA_WRITE),
                        Body::DmaRw {
                            access: &a,
                            data: &[],
                        },
                        ts + rtt,
                        0,
                    )?;
                }
            }
            88..94 => {
                let q = IrqInfo {
                    argsz: U32::new(16),
                    flags: U32::new(0),
                    index: U32::new(2),
                    count: U32::new(0),
                };
                let r = IrqInfo {
                    argsz: U32::new(16),
                    flags: U32::new(1),
                    index: U32::new(2),
                    count: U32::new(32),
                };
                written += emit(
                    &mut w,
                    conn,
                    c2s,
                    Header::command(id, Command::DEVICE_GET_IRQ_INFO),
                    Body::IrqInfo(&q),
                    ts,
                    0,
                )?;
                written += emit(
                    &mut w,
                    conn,
                    s2c,
                    Header::reply(id, Command::DEVICE_GET_IRQ_INFO),
                    Body::IrqInfo(&r),
                    ts + rtt,
                    0,
                )?;
            }
            94..98 => {
                let addr = 0x2_0000_0000 + (i << 12);
                let m = DmaMap::new(3, 0, addr, 0x1000);
                let u = DmaUnmap {
                    argsz: U32::new(24),
                    flags: U32::new(0),
                    address: U64::new(addr),
                    size: U64::new(0x1000),
                };
                written += emit(
                    &mut w,
                    conn,
                    c2s,
                    Header::command(id, Command::DMA_MAP),
                    Body::DmaMap(&m),
                    ts,
                    1,
                )?;
                written += emit(
                    &mut w,
                    conn,
                    s2c,
                    Header::reply(id, Command::DMA_MAP),
                    Body::Empty,
                    ts + rtt,
                    0,
                )?;
                let id2 = id.wrapping_add(1);
                written += emit(
                    &mut w,
                    conn,
                    c2s,
                    Header::command(id2, Command::DMA_UNMAP),
                    Body::DmaUnmap {
                        unmap: &u,
                        bitmap: None,
                        data: &[],
                    },
                    ts + 2 * rtt,
                    0,
                )?;
                written += emit(
                    &mut w,
                    conn,
                    s2c,
                    Header::reply(id2, Command::DMA_UNMAP),
                    Body::DmaUnmap {
                        unmap: &u,
                        bitmap: None,
                        data: &[],
                    },
                    ts + 3 * rtt,
                    0,
                )?;
            }
            _ => {
                let q = MigData {
                    argsz: U32::new(8 + (1 << 20)),
                    size: U32::new(1 << 20),
                };
                let r = MigData {
                    argsz: U32::new(8 + (1 << 20)),
                    size: U32::new(1 << 20),
                };
                written += emit(
                    &mut w,
                    conn,
                    c2s,
                    Header::command(id, Command::MIG_DATA_READ),
                    Body::MigData {
                        head: &q,
                        data: &[],
                    },
                    ts,
                    0,
                )?;
                written += emit(
                    &mut w,
                    conn,
                    s2c,
                    Header::reply(id, Command::MIG_DATA_READ),
                    Body::MigData {
                        head: &r,
                        data: &data,
                    },
                    ts + rtt,
                    0,
                )?;
            }
        }
        i += 1;
    }
    w.flush()?;
    eprintln!("wrote {index} messages, about {} MiB", written >> 20);
    Ok(())
}
