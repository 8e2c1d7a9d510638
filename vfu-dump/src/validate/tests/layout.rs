//! Unit tests: file descriptors, argsz, payload lengths and reply echoes.

use super::*;

// ---- file descriptors -------------------------------------------------------------------------------

#[test]
fn fds_per_command() {
    let fds8: &[u8] = br#"{"capabilities":{"max_msg_fds":8}}"#;
    let mut s = negotiated_with(Profile::Spec, Some(fds8), Some(fds8));
    only(
        &s.cf(
            &enc(
                cmd(1, Command::DEVICE_GET_INFO),
                Body::DeviceInfo(&device_info(16, 0, 0, 0)),
            ),
            1,
        ),
        "fds-unexpected",
        0,
    );
    only(
        &s.cf(
            &enc(
                cmd(2, Command::DMA_MAP),
                Body::DmaMap(&DmaMap::new(3, 0, 0, 0x1000)),
            ),
            2,
        ),
        "fds-unexpected",
        0,
    );
}

#[test]
fn version_request_takes_no_fds() {
    let mut s = S::new(Profile::Spec);
    only(
        &s.cf(&enc(cmd(1, Command::VERSION), version(None)), 1),
        "fds-unexpected",
        0,
    );
}

#[test]
fn fds_over_receivers_max() {
    // The server did not advertise max_msg_fds: the spec default is 1, QEMU assumes 8.
    for (p, want) in [(Profile::Spec, true), (Profile::Qemu, false)] {
        let mut s = negotiated(p);
        let msg = enc(
            cmd(1, Command::DEVICE_SET_IRQS),
            Body::SetIrqs {
                set: &irq_set(20, 0x24, 2, 0, 2),
                data: &[],
            },
        );
        let f = s.cf(&msg, 2);
        if want {
            only(&f, "fds-over-max", 0);
        } else {
            none(&f);
        }
    }
}

#[test]
fn region_info_reply_fds() {
    let mut s = negotiated_with(
        Profile::Spec,
        Some(br#"{"capabilities":{"max_msg_fds":4}}"#),
        None,
    );
    // MMAP without an fd.
    none(&s.c(&enc(
        cmd(1, Command::DEVICE_GET_REGION_INFO),
        Body::RegionInfo {
            info: &region_info(32, 0, 1, 0, 0),
            caps: &[],
        },
    )));
    only(
        &s.s(&enc(
            rep(1, Command::DEVICE_GET_REGION_INFO),
            Body::RegionInfo {
                info: &region_info(32, 7, 1, 0, 0x1000),
                caps: &[],
            },
        )),
        "fds-missing",
        0,
    );
    // A cut-short reply (argsz above the request's) carries no fd even with MMAP.
    none(&s.c(&enc(
        cmd(2, Command::DEVICE_GET_REGION_INFO),
        Body::RegionInfo {
            info: &region_info(32, 0, 1, 0, 0),
            caps: &[],
        },
    )));
    only(
        &s.sf(
            &exact(
                rep(2, Command::DEVICE_GET_REGION_INFO),
                Body::RegionInfo {
                    info: &region_info(80, 7, 1, 0, 0x1000),
                    caps: &[],
                },
                &[],
            ),
            1,
        ),
        "fds-unexpected",
        0,
    );
    // No MMAP, yet an fd.
    none(&s.c(&enc(
        cmd(3, Command::DEVICE_GET_REGION_INFO),
        Body::RegionInfo {
            info: &region_info(32, 0, 0, 0, 0),
            caps: &[],
        },
    )));
    only(
        &s.sf(
            &enc(
                rep(3, Command::DEVICE_GET_REGION_INFO),
                Body::RegionInfo {
                    info: &region_info(32, 3, 0, 0, 0x1000),
                    caps: &[],
                },
            ),
            1,
        ),
        "fds-unexpected",
        0,
    );
}

// ---- argsz, layout, echoes --------------------------------------------------------------------------

#[test]
fn argsz_rules() {
    let mut s = negotiated(Profile::Spec);
    let u = unmap(8, 0, 0, 0x1000);
    has(
        &s.c(&exact(
            cmd(1, Command::DMA_UNMAP),
            Body::DmaUnmap {
                unmap: &u,
                bitmap: None,
                data: &[],
            },
            &[],
        )),
        "argsz-too-small",
        16,
    );
    let m = DmaMap {
        argsz: U32::new(31),
        ..DmaMap::new(3, 0, 0, 0x1000)
    };
    only(
        &s.c(&exact(cmd(2, Command::DMA_MAP), Body::DmaMap(&m), &[])),
        "argsz-mismatch",
        16,
    );
    only(
        &s.c(&exact(
            cmd(3, Command::DEVICE_GET_INFO),
            Body::DeviceInfo(&device_info(8, 0, 0, 0)),
            &[],
        )),
        "argsz-too-small",
        16,
    );
    only(
        &s.c(&exact(
            cmd(4, Command::DEVICE_GET_REGION_INFO),
            Body::RegionInfo {
                info: &region_info(24, 0, 0, 0, 0),
                caps: &[],
            },
            &[],
        )),
        "argsz-too-small",
        16,
    );
    only(
        &s.c(&exact(
            cmd(5, Command::DEVICE_GET_IRQ_INFO),
            Body::IrqInfo(&irq_info(8, 0, 0, 0)),
            &[],
        )),
        "argsz-too-small",
        16,
    );
    only(
        &s.c(&exact(
            cmd(6, Command::DEVICE_SET_IRQS),
            Body::SetIrqs {
                set: &irq_set(3, 0x21, 0, 0, 0),
                data: &[],
            },
            &[],
        )),
        "argsz-mismatch",
        16,
    );
    // A reply's argsz is its payload size.
    none(&s.c(&enc(
        cmd(7, Command::DEVICE_GET_IRQ_INFO),
        Body::IrqInfo(&irq_info(16, 0, 0, 0)),
    )));
    only(
        &s.s(&exact(
            rep(7, Command::DEVICE_GET_IRQ_INFO),
            Body::IrqInfo(&irq_info(20, 1, 0, 1)),
            &[],
        )),
        "argsz-mismatch",
        16,
    );
}

#[test]
fn libvfio_user_argsz_limit() {
    let u = unmap(1_048_584, 0, 0, 0x1000);
    let msg = exact(
        cmd(1, Command::DMA_UNMAP),
        Body::DmaUnmap {
            unmap: &u,
            bitmap: None,
            data: &[],
        },
        &[],
    );
    has(
        &negotiated(Profile::LibvfioUser).c(&msg),
        "argsz-too-large",
        16,
    );
    assert!(!pairs(&negotiated(Profile::Spec).c(&msg)).contains(&("argsz-too-large", 16)));
}

#[test]
fn reply_longer_than_argsz() {
    let mut s = negotiated(Profile::Spec);
    has(
        &s.c(&exact(
            cmd(1, Command::MIG_DATA_READ),
            Body::MigData {
                head: &mig_data(20, 16),
                data: &[],
            },
            &[],
        )),
        "argsz-too-small",
        16,
    );
    // (The device is RUNNING: mig-data-state too; the reply is what this test is about.)
    only(
        &s.s(&enc(
            rep(1, Command::MIG_DATA_READ),
            Body::MigData {
                head: &mig_data(24, 16),
                data: &[0; 16],
            },
        )),
        "reply-exceeds-argsz",
        16,
    );
}

#[test]
fn payload_length() {
    let mut s = negotiated(Profile::Spec);
    let w = exact(
        cmd(1, Command::REGION_WRITE),
        Body::RegionRw {
            access: &RegionAccess::new(0, 0, 4),
            data: &[1; 4],
        },
        &[0; 2],
    );
    only(&s.c(&w), "payload-length", 16 + 16 + 4);
    only(
        &s.s(&exact(
            rep(1, Command::REGION_WRITE),
            Body::RegionRw {
                access: &RegionAccess::new(0, 0, 4),
                data: &[],
            },
            &[0],
        )),
        "payload-length",
        32,
    );
    // A DMA_MAP reply has no payload.
    none(&s.c(&enc(
        cmd(2, Command::DMA_MAP),
        Body::DmaMap(&DmaMap::new(3, 0, 0, 0x1000)),
    )));
    only(
        &s.s(&exact(rep(2, Command::DMA_MAP), Body::Empty, &[0; 4])),
        "payload-length",
        16,
    );
}

#[test]
fn libvfio_user_pads_info_requests_to_argsz() {
    let msg = exact(
        cmd(1, Command::DEVICE_GET_REGION_INFO),
        Body::RegionInfo {
            info: &region_info(80, 0, 1, 0, 0),
            caps: &[0; 48],
        },
        &[],
    );
    only(&negotiated(Profile::Spec).c(&msg), "payload-length", 48);
    none(&negotiated(Profile::LibvfioUser).c(&msg));
}

#[test]
fn header_only_replies() {
    let read = |c: u32| {
        enc(
            cmd(1, Command::REGION_READ),
            Body::RegionRw {
                access: &RegionAccess::new(0, 0, c),
                data: &[],
            },
        )
    };
    let empty = enc(rep(1, Command::REGION_READ), Body::Empty);
    let mut s = negotiated(Profile::Spec);
    none(&s.c(&read(0)));
    only(&s.s(&empty), "reply-header-only", 0);
    // libvfio-user answers count 0 this way, and only that.
    let mut s = negotiated(Profile::LibvfioUser);
    s.ok(&read(0), &empty);
    none(&s.c(&read(4)));
    only(&s.s(&empty), "reply-header-only", 0);
    // QEMU 10.1 answers DMA_WRITE with a header.
    let dw = enc(
        cmd(1, Command::DMA_WRITE),
        Body::DmaRw {
            access: &DmaAccess::new(0, 4),
            data: &[0; 4],
        },
    );
    let empty = enc(rep(1, Command::DMA_WRITE), Body::Empty);
    for (p, want) in [(Profile::Spec, true), (Profile::Qemu, false)] {
        let mut s = negotiated(p);
        none(&s.cf(
            &enc(
                cmd(9, Command::DMA_MAP),
                Body::DmaMap(&DmaMap::new(3, 0, 0, 0x1000)),
            ),
            1,
        ));
        none(&s.s(&enc(rep(9, Command::DMA_MAP), Body::Empty)));
        none(&s.s(&dw));
        let f = s.c(&empty);
        if want {
            only(&f, "reply-header-only", 0);
        } else {
            none(&f);
        }
    }
}

#[test]
fn qemu_dma_read_reply_with_u32_count() {
    let mut s = negotiated(Profile::Qemu);
    none(&s.cf(
        &enc(
            cmd(9, Command::DMA_MAP),
            Body::DmaMap(&DmaMap::new(3, 0, 0, 0x1000)),
        ),
        1,
    ));
    none(&s.s(&enc(rep(9, Command::DMA_MAP), Body::Empty)));
    none(&s.s(&enc(
        cmd(1, Command::DMA_READ),
        Body::DmaRw {
            access: &DmaAccess::new(0x100, 4),
            data: &[],
        },
    )));
    let mut reply = enc(rep(1, Command::DMA_READ), Body::Unknown(&[0; 16]));
    reply[16..24].copy_from_slice(&0x100u64.to_le_bytes());
    reply[24..28].copy_from_slice(&4u32.to_le_bytes());
    none(&s.c(&reply));
}

#[test]
fn echoes() {
    let mut s = negotiated(Profile::Spec);
    none(&s.c(&enc(
        cmd(1, Command::REGION_READ),
        Body::RegionRw {
            access: &RegionAccess::new(0, 0x10, 4),
            data: &[],
        },
    )));
    only(
        &s.s(&enc(
            rep(1, Command::REGION_READ),
            Body::RegionRw {
                access: &RegionAccess::new(0, 0x14, 4),
                data: &[0; 4],
            },
        )),
        "reply-echo-mismatch",
        16,
    );
    none(&s.c(&enc(
        cmd(2, Command::REGION_READ),
        Body::RegionRw {
            access: &RegionAccess::new(0, 0x10, 4),
            data: &[],
        },
    )));
    only(
        &s.s(&enc(
            rep(2, Command::REGION_READ),
            Body::RegionRw {
                access: &RegionAccess::new(0, 0x10, 8),
                data: &[0; 8],
            },
        )),
        "reply-echo-mismatch",
        28,
    );
    none(&s.c(&enc(
        cmd(3, Command::DEVICE_GET_IRQ_INFO),
        Body::IrqInfo(&irq_info(16, 0, 1, 0)),
    )));
    only(
        &s.s(&enc(
            rep(3, Command::DEVICE_GET_IRQ_INFO),
            Body::IrqInfo(&irq_info(16, 1, 2, 1)),
        )),
        "reply-echo-mismatch",
        24,
    );
}

#[test]
fn reserved_flags_and_request_fields() {
    let mut s = negotiated(Profile::Spec);
    only(
        &s.c(&enc(
            cmd(1, Command::DMA_MAP),
            Body::DmaMap(&DmaMap::new(0x13, 0, 0, 0x1000)),
        )),
        "flags-reserved",
        20,
    );
    // The pending access-mode bits: reserved in the spec, implemented by libvfio-user.
    let mmap = enc(
        cmd(2, Command::DMA_MAP),
        Body::DmaMap(&DmaMap::new(0x7, 0, 0x2000, 0x1000)),
    );
    only(&s.cf(&mmap, 1), "flags-reserved", 20);
    none(&negotiated(Profile::LibvfioUser).cf(&mmap, 1));
    only(&negotiated(Profile::LibvfioUser).c(&mmap), "fds-missing", 0);
    only(
        &s.c(&enc(
            cmd(3, Command::DEVICE_GET_INFO),
            Body::DeviceInfo(&device_info(16, 0, 9, 0)),
        )),
        "request-field-nonzero",
        24,
    );
    let head = RegionIoFds {
        argsz: U32::new(16),
        flags: U32::new(1),
        index: U32::ZERO,
        count: U32::ZERO,
    };
    only(
        &s.c(&enc(
            cmd(4, Command::DEVICE_GET_REGION_IO_FDS),
            Body::RegionIoFds {
                head: &head,
                entries: IoFdEntries::Spec(&[]),
            },
        )),
        "flags-reserved",
        20,
    );
}
