//! Unit tests: DMA windows (DMA_MAP, DMA_UNMAP) and the server's DMA_READ/WRITE.

use super::*;

fn map(s: &mut S, id: u16, flags: u32, addr: u64, size: u64) {
    none(&s.cf(
        &enc(
            cmd(id, Command::DMA_MAP),
            Body::DmaMap(&DmaMap::new(flags, 0, addr, size)),
        ),
        1,
    ));
    none(&s.s(&enc(rep(id, Command::DMA_MAP), Body::Empty)));
}

#[test]
fn dma_map_overlap() {
    let mut s = negotiated(Profile::Spec);
    map(&mut s, 1, 3, 0x10000, 0x2000);
    let over = enc(
        cmd(2, Command::DMA_MAP),
        Body::DmaMap(&DmaMap::new(3, 0, 0x11000, 0x2000)),
    );
    only(&s.cf(&over, 1), "dma-map-overlap", 32);
    // Refused with EEXIST: right.
    none(&s.s(&enc(
        Header::error_reply(2, Command::DMA_MAP, 17),
        Body::Error,
    )));
    // Accepted: wrong.
    only(&s.cf(&over, 1), "dma-map-overlap", 32);
    only(
        &s.s(&enc(rep(2, Command::DMA_MAP), Body::Empty)),
        "dma-map-overlap-reply",
        0,
    );
    // EINVAL: libvfio-user's answer to a partial overlap, accepted under its profile only.
    only(&s.cf(&over, 1), "dma-map-overlap", 32);
    only(
        &s.s(&enc(
            Header::error_reply(2, Command::DMA_MAP, 22),
            Body::Error,
        )),
        "dma-map-overlap-reply",
        12,
    );
    let mut s = negotiated(Profile::LibvfioUser);
    map(&mut s, 1, 3, 0x10000, 0x2000);
    only(&s.cf(&over, 1), "dma-map-overlap", 32);
    none(&s.s(&enc(
        Header::error_reply(2, Command::DMA_MAP, 22),
        Body::Error,
    )));
    // ... as is its no-op success for the very same window.
    map(&mut s, 3, 3, 0x10000, 0x2000);
}

#[test]
fn dma_map_range_alignment_and_limits() {
    let mut s = negotiated(Profile::Spec);
    only(
        &s.c(&enc(
            cmd(1, Command::DMA_MAP),
            Body::DmaMap(&DmaMap::new(3, 0, 0x1000, 0)),
        )),
        "dma-map-range",
        40,
    );
    only(
        &s.c(&enc(
            cmd(2, Command::DMA_MAP),
            Body::DmaMap(&DmaMap::new(3, 0, u64::MAX - 0xfff, 0x2000)),
        )),
        "dma-map-range",
        40,
    );
    only(
        &s.c(&enc(
            cmd(3, Command::DMA_MAP),
            Body::DmaMap(&DmaMap::new(3, 0, 0x1800, 0x1000)),
        )),
        "dma-map-alignment",
        32,
    );
    let big = enc(
        cmd(4, Command::DMA_MAP),
        Body::DmaMap(&DmaMap::new(3, 0, 0x10000, (8 << 40) + 0x1000)),
    );
    none(&s.c(&big));
    only(
        &negotiated(Profile::LibvfioUser).c(&big),
        "dma-map-too-large",
        40,
    );
    let caps: &[u8] = br#"{"capabilities":{"max_dma_maps":1,"pgsizes":65536}}"#;
    let mut s = negotiated_with(Profile::Spec, Some(caps), Some(caps));
    // pgsizes raises the alignment to 64 KiB.
    only(
        &s.c(&enc(
            cmd(1, Command::DMA_MAP),
            Body::DmaMap(&DmaMap::new(3, 0, 0x1000, 0x10000)),
        )),
        "dma-map-alignment",
        32,
    );
    s.s(&enc(
        Header::error_reply(1, Command::DMA_MAP, 22),
        Body::Error,
    ));
    map(&mut s, 2, 3, 0x10000, 0x10000);
    only(
        &s.c(&enc(
            cmd(3, Command::DMA_MAP),
            Body::DmaMap(&DmaMap::new(3, 0, 0x20000, 0x10000)),
        )),
        "dma-map-too-many",
        0,
    );
}

#[test]
fn dma_unmap_matches_live_windows() {
    let mut s = negotiated(Profile::Spec);
    let um = |id: u16, addr: u64, size: u64| {
        enc(
            cmd(id, Command::DMA_UNMAP),
            Body::DmaUnmap {
                unmap: &unmap(24, 0, addr, size),
                bitmap: None,
                data: &[],
            },
        )
    };
    only(&s.c(&um(1, 0x10000, 0x1000)), "dma-unmap-no-match", 24);
    // A refused DMA_MAP does not enter the table.
    none(&s.c(&enc(
        cmd(2, Command::DMA_MAP),
        Body::DmaMap(&DmaMap::new(3, 0, 0x10000, 0x1000)),
    )));
    only(
        &s.s(&enc(
            Header::error_reply(2, Command::DMA_MAP, 12),
            Body::Error,
        )),
        "request-rejected",
        12,
    );
    only(&s.c(&um(3, 0x10000, 0x1000)), "dma-unmap-no-match", 24);
    s.s(&enc(
        Header::error_reply(3, Command::DMA_UNMAP, 2),
        Body::Error,
    ));
    map(&mut s, 4, 3, 0x10000, 0x2000);
    // Part of a window is no match.
    only(&s.c(&um(5, 0x10000, 0x1000)), "dma-unmap-no-match", 24);
    s.s(&enc(
        Header::error_reply(5, Command::DMA_UNMAP, 2),
        Body::Error,
    ));
    s.ok(
        &um(6, 0x10000, 0x2000),
        &enc(
            rep(6, Command::DMA_UNMAP),
            Body::DmaUnmap {
                unmap: &unmap(24, 0, 0x10000, 0x2000),
                bitmap: None,
                data: &[],
            },
        ),
    );
    // Gone after a successful unmap.
    only(&s.c(&um(7, 0x10000, 0x2000)), "dma-unmap-no-match", 24);
}

#[test]
fn dma_unmap_flags() {
    let all = |a: u64| {
        enc(
            cmd(1, Command::DMA_UNMAP),
            Body::DmaUnmap {
                unmap: &unmap(24, 2, a, 0),
                bitmap: None,
                data: &[],
            },
        )
    };
    only(&negotiated(Profile::Spec).c(&all(0)), "flags-reserved", 20);
    none(&negotiated(Profile::Qemu).c(&all(0)));
    none(&negotiated(Profile::LibvfioUser).c(&all(0)));
    only(
        &negotiated(Profile::LibvfioUser).c(&all(0x1000)),
        "dma-unmap-all",
        24,
    );
    let f4 = enc(
        cmd(1, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &unmap(24, 4, 0, 0),
            bitmap: None,
            data: &[],
        },
    );
    has(
        &negotiated(Profile::LibvfioUser).c(&f4),
        "flags-reserved",
        20,
    );
    // UNMAP_ALL empties the table.
    let mut s = negotiated(Profile::LibvfioUser);
    map(&mut s, 2, 3, 0x10000, 0x1000);
    s.ok(
        &all(0),
        &enc(
            rep(1, Command::DMA_UNMAP),
            Body::DmaUnmap {
                unmap: &unmap(24, 2, 0, 0),
                bitmap: None,
                data: &[],
            },
        ),
    );
    only(
        &s.s(&enc(
            cmd(1, Command::DMA_READ),
            Body::DmaRw {
                access: &DmaAccess::new(0x10000, 4),
                data: &[],
            },
        )),
        "dma-rw-outside-window",
        16,
    );
}

#[test]
fn dma_unmap_dirty_bitmap() {
    let mut s = negotiated(Profile::LibvfioUser);
    map(&mut s, 1, 3, 0x10000, 0x1000);
    let bm = |size: u64| DirtyBitmap {
        pgsize: U64::new(0x1000),
        size: U64::new(size),
    };
    let b = bm(100);
    let msg = exact(
        cmd(2, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &unmap(48, 1, 0x10000, 0x1000),
            bitmap: Some(&b),
            data: &[],
        },
        &[],
    );
    let f = s.c(&msg);
    assert_eq!(
        pairs(&f),
        vec![("dma-unmap-bitmap", 48), ("logging-not-started", 20)]
    );
    s.s(&enc(
        Header::error_reply(2, Command::DMA_UNMAP, 22),
        Body::Error,
    ));
    // With logging on and the right bitmap size: clean.
    let control = DmaLoggingControl {
        page_size: U64::new(4096),
        ..Default::default()
    };
    let start = Body::DeviceFeature {
        head: &feature(24, SET | F_LOG_START),
        data: FeatureData::LoggingControl {
            control: &control,
            ranges: &[],
        },
    };
    s.ok(
        &enc(cmd(3, Command::DEVICE_FEATURE), start),
        &enc(rep(3, Command::DEVICE_FEATURE), start),
    );
    let b = bm(8);
    let msg = exact(
        cmd(4, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &unmap(48, 1, 0x10000, 0x1000),
            bitmap: Some(&b),
            data: &[],
        },
        &[],
    );
    none(&s.c(&msg));
    let reply = enc(
        rep(4, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &unmap(48, 1, 0x10000, 0x1000),
            bitmap: Some(&b),
            data: &[0; 8],
        },
    );
    none(&s.s(&reply));
}

#[test]
fn dma_read_write_windows_and_permissions() {
    let mut s = negotiated_with(
        Profile::Spec,
        Some(br#"{"capabilities":{"max_data_xfer_size":1024}}"#),
        None,
    );
    map(&mut s, 1, 1, 0x10000, 0x1000); // READ only
    map(&mut s, 2, 3, 0x11000, 0x1000); // adjacent, READ|WRITE
    let dr = |addr: u64, count: u64| {
        enc(
            cmd(1, Command::DMA_READ),
            Body::DmaRw {
                access: &DmaAccess::new(addr, count),
                data: &[],
            },
        )
    };
    let dw = |addr: u64, count: usize| {
        enc(
            cmd(2, Command::DMA_WRITE),
            Body::DmaRw {
                access: &DmaAccess::new(addr, count as u64),
                data: &vec![0; count],
            },
        )
    };
    // Across the two adjacent windows: fine.
    none(&s.s(&dr(0x10f00, 0x200)));
    none(&s.c(&enc(
        rep(1, Command::DMA_READ),
        Body::DmaRw {
            access: &DmaAccess::new(0x10f00, 0x200),
            data: &[0; 0x200],
        },
    )));
    only(&s.s(&dr(0x11f00, 0x200)), "dma-rw-outside-window", 16);
    only(&s.s(&dw(0x10000, 16)), "dma-rw-permission", 16);
    none(&s.s(&dw(0x11000, 16)));
    only(&s.s(&dr(0x11000, 2048)), "xfer-size-over-max", 24);
}

#[test]
fn dma_unmap_flags_are_checked_when_the_body_does_not_decode() {
    // ALL | GET_DIRTY_BITMAP: the bitmap header GET_DIRTY_BITMAP announces is missing too.
    let msg = exact(
        cmd(1, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &unmap(24, 3, 0, 0),
            bitmap: None,
            data: &[],
        },
        &[],
    );
    let f = negotiated(Profile::LibvfioUser).c(&msg);
    assert_eq!(
        pairs(&f),
        vec![("decode/short-body", 40), ("flags-reserved", 20)]
    );
}

#[test]
fn pipelined_overlapping_maps() {
    let mut s = negotiated(Profile::Spec);
    let m = |id: u16, addr: u64| {
        enc(
            cmd(id, Command::DMA_MAP),
            Body::DmaMap(&DmaMap::new(3, 0, addr, 0x2000)),
        )
    };
    none(&s.c(&m(1, 0x10000)));
    // The server maps message 1 before it reads message 2: the second one overlaps, answered or not.
    only(&s.c(&m(2, 0x11000)), "dma-map-overlap", 32);
    none(&s.s(&enc(rep(1, Command::DMA_MAP), Body::Empty)));
    only(
        &s.s(&enc(rep(2, Command::DMA_MAP), Body::Empty)),
        "dma-map-overlap-reply",
        0,
    );
}
