//! Unit tests: the device, regions and interrupts.

use super::*;

#[test]
fn region_indices() {
    let rr = |r: u32| {
        enc(
            cmd(2, Command::REGION_READ),
            Body::RegionRw {
                access: &RegionAccess::new(r, 0, 4),
                data: &[],
            },
        )
    };
    // Before DEVICE_GET_INFO an index beyond the PCI regions cannot be checked: Info.
    let f = negotiated(Profile::Spec).c(&rr(0xdeadbeef));
    only(&f, "region-index-unverified", 24);
    assert_eq!(f[0].severity, Severity::Info);
    none(&negotiated(Profile::Spec).c(&rr(8)));
    let mut s = with_device(Profile::Spec);
    only(&s.c(&rr(9)), "region-index", 24);
    only(
        &s.c(&enc(
            cmd(3, Command::DEVICE_GET_REGION_INFO),
            Body::RegionInfo {
                info: &region_info(32, 0, 12, 0, 0),
                caps: &[],
            },
        )),
        "region-index",
        24,
    );
}

#[test]
fn irq_indices() {
    let ii = |i: u32| {
        enc(
            cmd(2, Command::DEVICE_GET_IRQ_INFO),
            Body::IrqInfo(&irq_info(16, 0, i, 0)),
        )
    };
    only(&negotiated(Profile::Spec).c(&ii(5)), "irq-index", 24);
    let mut s = negotiated(Profile::Spec);
    s.ok(
        &enc(
            cmd(1, Command::DEVICE_GET_INFO),
            Body::DeviceInfo(&device_info(16, 0, 0, 0)),
        ),
        &enc(
            rep(1, Command::DEVICE_GET_INFO),
            Body::DeviceInfo(&device_info(16, 0, 9, 3)),
        ),
    );
    only(&s.c(&ii(3)), "irq-index", 24);
}

#[test]
fn device_info_pci() {
    let mut s = negotiated(Profile::Spec);
    none(&s.c(&enc(
        cmd(1, Command::DEVICE_GET_INFO),
        Body::DeviceInfo(&device_info(16, 0, 0, 0)),
    )));
    only(
        &s.s(&enc(
            rep(1, Command::DEVICE_GET_INFO),
            Body::DeviceInfo(&device_info(16, 2, 8, 5)),
        )),
        "device-info-pci",
        24,
    );
}

#[test]
fn region_ranges_and_flags() {
    let mut s = with_device(Profile::Spec);
    s.ok(
        &enc(
            cmd(2, Command::DEVICE_GET_REGION_INFO),
            Body::RegionInfo {
                info: &region_info(32, 0, 0, 0, 0),
                caps: &[],
            },
        ),
        &enc(
            rep(2, Command::DEVICE_GET_REGION_INFO),
            Body::RegionInfo {
                info: &region_info(32, 1, 0, 0, 0x100),
                caps: &[],
            },
        ),
    );
    let rr = |off: u64, c: u32| {
        enc(
            cmd(3, Command::REGION_READ),
            Body::RegionRw {
                access: &RegionAccess::new(0, off, c),
                data: &[],
            },
        )
    };
    none(&s.c(&rr(0xfc, 4)));
    s.s(&enc(
        rep(3, Command::REGION_READ),
        Body::RegionRw {
            access: &RegionAccess::new(0, 0xfc, 4),
            data: &[0; 4],
        },
    ));
    only(&s.c(&rr(0xfe, 4)), "region-range", 16);
    only(&s.c(&rr(u64::MAX - 1, 4)), "region-range", 16);
    // Region 0 is read-only.
    let w = enc(
        cmd(4, Command::REGION_WRITE),
        Body::RegionRw {
            access: &RegionAccess::new(0, 0, 4),
            data: &[0; 4],
        },
    );
    only(&s.c(&w), "region-access-flags", 24);
    // count above the server's max_data_xfer_size (default 1 MiB).
    let big = enc(
        cmd(5, Command::REGION_READ),
        Body::RegionRw {
            access: &RegionAccess::new(1, 0, (1 << 20) + 1),
            data: &[],
        },
    );
    only(&s.c(&big), "xfer-size-over-max", 28);
}

#[test]
fn region_info_capabilities() {
    let mut s = with_device(Profile::Spec);
    none(&s.c(&enc(
        cmd(2, Command::DEVICE_GET_REGION_INFO),
        Body::RegionInfo {
            info: &region_info(80, 0, 1, 0, 0),
            caps: &[],
        },
    )));
    // One sparse area reaching past the 0x1000-byte region.
    let mut caps = vec![1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
    caps.extend_from_slice(&0x800u64.to_le_bytes());
    caps.extend_from_slice(&0x1000u64.to_le_bytes());
    let reply = enc(
        rep(2, Command::DEVICE_GET_REGION_INFO),
        Body::RegionInfo {
            info: &region_info(64, 0xf, 1, 32, 0x1000),
            caps: &caps,
        },
    );
    only(&s.sf(&reply, 1), "region-info-caps", 16 + 32 + 16);
    // A cut-short reply must not set CAPS.
    none(&s.c(&enc(
        cmd(3, Command::DEVICE_GET_REGION_INFO),
        Body::RegionInfo {
            info: &region_info(32, 0, 1, 0, 0),
            caps: &[],
        },
    )));
    let cut = exact(
        rep(3, Command::DEVICE_GET_REGION_INFO),
        Body::RegionInfo {
            info: &region_info(64, 0xb, 1, 0, 0x1000),
            caps: &[],
        },
        &[],
    );
    only(&s.s(&cut), "region-info-caps", 20);
}

#[test]
fn io_fds_layout_and_entries() {
    let head = RegionIoFds {
        argsz: U32::new(64),
        flags: U32::ZERO,
        index: U32::new(1),
        count: U32::ZERO,
    };
    let req = enc(
        cmd(1, Command::DEVICE_GET_REGION_IO_FDS),
        Body::RegionIoFds {
            head: &head,
            entries: IoFdEntries::Spec(&[]),
        },
    );
    let shadow = IoFdShadowEntry {
        size: U64::new(4),
        ..Default::default()
    };
    let rhead = RegionIoFds {
        count: U32::new(1),
        ..head
    };
    let reply = exact(
        rep(1, Command::DEVICE_GET_REGION_IO_FDS),
        Body::RegionIoFds {
            head: &rhead,
            entries: IoFdEntries::Shadow(&[shadow]),
        },
        &[],
    );
    for (p, want) in [(Profile::Spec, true), (Profile::LibvfioUser, false)] {
        let mut s = negotiated(p);
        none(&s.c(&req));
        let f = s.sf(&reply, 1);
        if want {
            only(&f, "io-fds-stride-48", 32);
        } else {
            none(&f);
        }
    }
    let mut s = negotiated(Profile::LibvfioUser);
    none(&s.c(&req));
    let bad = IoFdShadowEntry {
        fd_index: U32::new(1),
        ..shadow
    };
    only(
        &s.sf(
            &exact(
                rep(1, Command::DEVICE_GET_REGION_IO_FDS),
                Body::RegionIoFds {
                    head: &rhead,
                    entries: IoFdEntries::Shadow(&[bad]),
                },
                &[],
            ),
            1,
        ),
        "io-fds-entry",
        48,
    );
    none(&s.c(&req));
    only(
        &s.s(&exact(
            rep(1, Command::DEVICE_GET_REGION_IO_FDS),
            Body::RegionIoFds {
                head: &rhead,
                entries: IoFdEntries::Shadow(&[shadow]),
            },
            &[],
        )),
        "fds-missing",
        0,
    );
}

fn set_irqs(flags: u32, index: u32, start: u32, count: u32) -> Vec<u8> {
    enc(
        cmd(1, Command::DEVICE_SET_IRQS),
        Body::SetIrqs {
            set: &irq_set(0, flags, index, start, count),
            data: &[],
        },
    )
}

#[test]
fn set_irqs_flags_and_count_zero() {
    let mut s = negotiated(Profile::Spec);
    only(&s.c(&set_irqs(0x18, 2, 0, 1)), "set-irqs-flags", 20);
    only(&s.c(&set_irqs(0x0b, 2, 0, 0)), "set-irqs-flags", 20);
    only(&s.c(&set_irqs(0x61, 2, 0, 1)), "set-irqs-flags", 20);
    only(&s.c(&set_irqs(0x09, 2, 1, 0)), "set-irqs-count-zero", 28);
    only(&s.c(&set_irqs(0x09, 2, 0, 0)), "set-irqs-count-zero", 20);
    none(&s.c(&set_irqs(0x21, 2, 0, 0)));
}

#[test]
fn set_irqs_ranges() {
    let mut s = negotiated(Profile::Spec);
    only(
        &s.c(&set_irqs(0x24, 2, 284, u32::MAX)),
        "set-irqs-range",
        28,
    );
    only(&s.c(&set_irqs(0x21, 5, 0, 1)), "irq-index", 24);
    // Without GET_IRQ_INFO the vector count is unknown; with it, checked.
    none(&s.c(&set_irqs(0x09, 2, 2047, 2)));
    s.ok(
        &enc(
            cmd(2, Command::DEVICE_GET_IRQ_INFO),
            Body::IrqInfo(&irq_info(16, 0, 2, 0)),
        ),
        &enc(
            rep(2, Command::DEVICE_GET_IRQ_INFO),
            Body::IrqInfo(&irq_info(16, 1, 2, 2048)),
        ),
    );
    only(&s.c(&set_irqs(0x09, 2, 2047, 2)), "set-irqs-range", 28);
}

#[test]
fn set_irqs_err_and_req() {
    let mut s = negotiated(Profile::Spec);
    only(&s.c(&set_irqs(0x09, 3, 0, 1)), "set-irqs-err-req", 20);
    only(&s.c(&set_irqs(0x21, 4, 0, 2)), "set-irqs-err-req", 32);
    none(&s.c(&set_irqs(0x21, 4, 0, 1)));
}

#[test]
fn set_irqs_bool_payload_and_fds() {
    let fds8: &[u8] = br#"{"capabilities":{"max_msg_fds":8}}"#;
    let mut s = negotiated_with(Profile::Spec, Some(fds8), Some(fds8));
    let bool3 = exact(
        cmd(1, Command::DEVICE_SET_IRQS),
        Body::SetIrqs {
            set: &irq_set(23, 0x22, 2, 0, 2),
            data: &[0, 0],
        },
        &[0],
    );
    only(&s.c(&bool3), "set-irqs-bool-payload", 16 + 20 + 2);
    let bool1 = exact(
        cmd(1, Command::DEVICE_SET_IRQS),
        Body::SetIrqs {
            set: &irq_set(21, 0x22, 2, 0, 1),
            data: &[0],
        },
        &[],
    );
    only(&s.cf(&bool1, 1), "set-irqs-fds", 0);
    only(&s.cf(&set_irqs(0x21, 2, 0, 1), 1), "set-irqs-fds", 0);
    only(&s.cf(&set_irqs(0x24, 2, 0, 2), 1), "set-irqs-fds", 0);
    none(&s.cf(&set_irqs(0x24, 2, 0, 2), 2));
    none(&s.cf(&set_irqs(0x24, 2, 0, 2), 0));
}

/// A libvfio-user device has exactly 9 regions: under its profile a higher index is an error before
/// DEVICE_GET_INFO too, for every command that names a region; under the others it cannot be checked.
#[test]
fn libvfio_user_has_nine_regions_before_device_get_info() {
    let region = 9;
    let commands = [
        enc(
            cmd(1, Command::REGION_READ),
            Body::RegionRw {
                access: &RegionAccess::new(region, 0, 4),
                data: &[],
            },
        ),
        enc(
            cmd(2, Command::REGION_WRITE),
            Body::RegionRw {
                access: &RegionAccess::new(region, 0, 4),
                data: &[0; 4],
            },
        ),
        enc(
            cmd(3, Command::DEVICE_GET_REGION_INFO),
            Body::RegionInfo {
                info: &region_info(32, 0, region, 0, 0),
                caps: &[],
            },
        ),
        enc(
            cmd(4, Command::DEVICE_GET_REGION_IO_FDS),
            Body::RegionIoFds {
                head: &RegionIoFds {
                    argsz: U32::new(64),
                    flags: U32::ZERO,
                    index: U32::new(region),
                    count: U32::ZERO,
                },
                entries: IoFdEntries::Spec(&[]),
            },
        ),
    ];
    for c in &commands {
        let f = negotiated(Profile::LibvfioUser).c(c);
        only(&f, "region-index", 24);
        assert!(f[0].message.contains("libvfio-user"), "{f:#?}");
        for p in [Profile::Spec, Profile::Qemu] {
            only(&negotiated(p).c(c), "region-index-unverified", 24);
        }
    }
    // Region 8 (VGA) is one of the nine.
    none(&negotiated(Profile::LibvfioUser).c(&enc(
        cmd(5, Command::REGION_READ),
        Body::RegionRw {
            access: &RegionAccess::new(8, 0, 4),
            data: &[],
        },
    )));
}

/// offset + count past 2^64 is wrong whatever the region's size, known or not.
#[test]
fn region_access_overflow_needs_no_region_info() {
    for p in Profile::ALL {
        let mut s = negotiated(p);
        let read = enc(
            cmd(1, Command::REGION_READ),
            Body::RegionRw {
                access: &RegionAccess::new(0, u64::MAX - 1, 4),
                data: &[],
            },
        );
        only(&s.c(&read), "region-range", 16);
        let write = enc(
            cmd(2, Command::REGION_WRITE),
            Body::RegionRw {
                access: &RegionAccess::new(1, u64::MAX, 1),
                data: &[0],
            },
        );
        only(&s.c(&write), "region-range", 16);
        // The last byte of the address space is fine.
        let last = enc(
            cmd(3, Command::REGION_READ),
            Body::RegionRw {
                access: &RegionAccess::new(0, u64::MAX - 4, 4),
                data: &[],
            },
        );
        none(&s.c(&last));
    }
}

/// libvfio-user answers an ioeventfd registered with fd -1 with fd_index 0xFFFFFFFF (its test
/// `test_device_get_region_io_fds_invalid_fd` calls that legitimate): an Info under its profile, an
/// error under spec.
#[test]
fn io_fds_entry_without_a_descriptor() {
    let head = RegionIoFds {
        argsz: U32::new(16 + 2 * 48),
        flags: U32::ZERO,
        index: U32::new(0),
        count: U32::ZERO,
    };
    let req = enc(
        cmd(1, Command::DEVICE_GET_REGION_IO_FDS),
        Body::RegionIoFds {
            head: &head,
            entries: IoFdEntries::Spec(&[]),
        },
    );
    let with_fd = IoFdShadowEntry {
        size: U64::new(8),
        ..Default::default()
    };
    let without = IoFdShadowEntry {
        gpa_offset: U64::new(8),
        size: U64::new(8),
        fd_index: U32::new(u32::MAX),
        ..Default::default()
    };
    let rhead = RegionIoFds {
        count: U32::new(2),
        ..head
    };
    let reply = |entries: &[IoFdShadowEntry]| {
        let rhead = RegionIoFds {
            count: U32::new(entries.len() as u32),
            argsz: U32::new(16 + 48 * entries.len() as u32),
            ..rhead
        };
        exact(
            rep(1, Command::DEVICE_GET_REGION_IO_FDS),
            Body::RegionIoFds {
                head: &rhead,
                entries: IoFdEntries::Shadow(entries),
            },
            &[],
        )
    };
    let mut s = negotiated(Profile::LibvfioUser);
    none(&s.c(&req));
    let f = s.sf(&reply(&[with_fd, without]), 1);
    only(&f, "io-fds-no-fd", 32 + 48 + 16);
    assert_eq!(f[0].severity, Severity::Info);
    // Only entries without a descriptor: no fd travels, and none is missing.
    none(&s.c(&req));
    only(&s.s(&reply(&[without])), "io-fds-no-fd", 48);
    // Under spec fd_index names a descriptor the reply must carry.
    let mut s = negotiated(Profile::Spec);
    none(&s.c(&req));
    let f = s.sf(&reply(&[with_fd, without]), 1);
    has(&f, "io-fds-entry", 32 + 48 + 16);
    assert!(!pairs(&f).iter().any(|x| x.0 == "io-fds-no-fd"), "{f:#?}");
    none(&s.c(&req));
    has(&s.s(&reply(&[without])), "fds-missing", 0);
}
