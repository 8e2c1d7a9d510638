//! Measures what a direct UNIX stream connection does to a receiver that reads a message's body with
//! one `recv` (libvfio-user's `tran_sock_recv_body`): how often that read returns less than the body,
//! per message size, with one message in flight at a time (a request and its reply) and back to back,
//! with every processor kept busy by a spinning thread or not. It is the baseline the proxy's
//! `strict_receiver_*` tests hold it to (issue 13; figures in BENCHMARKS.md).
//!
//! `cargo run --release -p vfu-dump --example short_reads -- [TRIALS] [busy|idle] [sync|stream]`
//!
//! Linux queues one `sendmsg` in pieces of at most `min(sk_sndbuf / 2 - 64, SKB_MAX_HEAD(0) + 32
//! KiB)` bytes and wakes the receiver after each (`unix_stream_sendmsg`); the smallest short read
//! printed is the first piece's body.

#![allow(clippy::unwrap_used)] // a measuring tool: a failure is a bug to see at once

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let trials: usize = args.get(1).map_or(300, |s| s.parse().unwrap());
    let busy = args.get(2).is_none_or(|s| s == "busy");
    let sync = args.get(3).is_none_or(|s| s == "sync");
    let (a, b) = UnixStream::pair().unwrap();
    let sndbuf = rustix::net::sockopt::socket_send_buffer_size(&a).unwrap();
    let mut sizes = vec![
        8 << 10,
        16416,
        32 << 10,
        36544,
        36545,
        64 << 10,
        100 << 10,
        150 << 10,
        200 << 10,
    ];
    sizes.extend([sndbuf - 2048, sndbuf, sndbuf + 1, 1 << 20]);
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..if busy {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        0
    })
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut x = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    println!(
        "SO_SNDBUF {sndbuf}, {}, {}, {trials} messages of each size",
        if busy { "every processor busy" } else { "idle" },
        if sync {
            "one message in flight"
        } else {
            "back to back"
        }
    );
    let sender = {
        let sizes = sizes.clone();
        let mut acks = a.try_clone().unwrap();
        let mut a = a;
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 2 << 20];
            let mut ack = [0u8; 1];
            for &s in &sizes {
                buf[4..8].copy_from_slice(&(s as u32).to_le_bytes());
                for _ in 0..trials {
                    a.write_all(&buf[..s]).unwrap();
                    if sync {
                        acks.read_exact(&mut ack).unwrap();
                    }
                }
            }
        })
    };
    let mut b = b;
    let mut body = vec![0u8; 2 << 20];
    for &s in &sizes {
        let (mut short, mut least) = (0, usize::MAX);
        for _ in 0..trials {
            let mut h = [0u8; 16];
            b.read_exact(&mut h).unwrap();
            let want = s - 16;
            let (n, _) =
                rustix::net::recv(&b, &mut body[..want], rustix::net::RecvFlags::empty()).unwrap();
            if n < want {
                short += 1;
                least = least.min(n);
                b.read_exact(&mut body[n..want]).unwrap();
            }
            if sync {
                b.write_all(&[1]).unwrap();
            }
        }
        let least = if short > 0 {
            format!(" (smallest read {least})")
        } else {
            String::new()
        };
        println!("{s:>8} bytes: {short:>4} short reads of the body{least}");
    }
    sender.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    for h in hogs {
        h.join().unwrap();
    }
}
