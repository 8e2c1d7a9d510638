//! The traffic of `scripts/bench-trace.sh`: a vfio-user server on the rust-vmm `vfio_user` crate, and
//! a client that times round trips against it.
//!
//! ```text
//! cargo run --release -p vfu-dump --example trace_load -- server SOCK        (serves one client)
//! cargo run --release -p vfu-dump --example trace_load -- client SOCK N      (N REGION_READs of 4 bytes)
//! ```
//!
//! The client connects (VERSION and the device, region and IRQ info), does 1,000 round trips to warm
//! up, then N timed ones, and prints one line: `n=N median_us=… p99_us=… mean_us=…`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark tool: a failure is a bug to see at once

use std::io;
use std::path::Path;
use std::time::Instant;

use vfio_bindings::bindings::vfio::{
    VFIO_IRQ_INFO_EVENTFD, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
    vfio_region_info,
};
use vfio_user::{Client, IrqInfo, Server, ServerBackend, ServerRegion};

struct Bar(Vec<u8>);

impl ServerBackend for Bar {
    fn region_read(&mut self, _region: u32, offset: u64, data: &mut [u8]) -> io::Result<()> {
        let o = offset as usize;
        data.copy_from_slice(&self.0[o..o + data.len()]);
        Ok(())
    }

    fn region_write(&mut self, _region: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        let o = offset as usize;
        self.0[o..o + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn dma_map(
        &mut self,
        _: vfio_user::DmaMapFlags,
        _: u64,
        _: u64,
        _: u64,
        _: Option<std::fs::File>,
    ) -> io::Result<()> {
        Ok(())
    }

    fn dma_unmap(&mut self, _: vfio_user::DmaUnmapFlags, _: u64, _: u64) -> io::Result<()> {
        Ok(())
    }

    fn reset(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn set_irqs(
        &mut self,
        _: u32,
        _: u32,
        _: u32,
        _: u32,
        _: Vec<std::fs::File>,
    ) -> io::Result<()> {
        Ok(())
    }
}

fn serve(path: &Path) {
    let regions = vec![ServerRegion {
        region_info: vfio_region_info {
            argsz: 32,
            flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE,
            index: 0,
            cap_offset: 0,
            size: 0x1000,
            offset: 0,
        },
        sparse_areas: vec![],
        mmap_fd: None,
    }];
    let irqs = vec![IrqInfo {
        index: 0,
        flags: VFIO_IRQ_INFO_EVENTFD,
        count: 1,
    }];
    let server = Server::new(path, true, irqs, regions).unwrap();
    server.run(&mut Bar(vec![0; 0x1000])).unwrap();
}

fn client(path: &Path, n: usize) {
    // The socket file exists from the server's bind(2), a moment before its listen(2): a connect
    // in between is refused, so retry for a while.
    let mut tries = 0;
    let mut c = loop {
        match Client::new(path) {
            Ok(c) => break c,
            Err(e) if tries < 500 => {
                tries += 1;
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("cannot connect to {}: {e:?}", path.display()),
        }
    };
    let mut b = [0u8; 4];
    for _ in 0..1000 {
        c.region_read(0, 0x10, &mut b).unwrap();
    }
    let mut t = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Instant::now();
        c.region_read(0, 0x10, &mut b).unwrap();
        t.push(s.elapsed().as_nanos() as f64 / 1000.0);
    }
    c.shutdown().unwrap();
    let mean = t.iter().sum::<f64>() / n as f64;
    t.sort_by(f64::total_cmp);
    println!(
        "n={n} median_us={:.2} p99_us={:.2} mean_us={mean:.2}",
        t[n / 2],
        t[n * 99 / 100]
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("server") => serve(Path::new(&args[2])),
        Some("client") => client(Path::new(&args[2]), args[3].parse().unwrap()),
        _ => {
            eprintln!("usage: trace_load server SOCK | trace_load client SOCK N");
            std::process::exit(2);
        }
    }
}
