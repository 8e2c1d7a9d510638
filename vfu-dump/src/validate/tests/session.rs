//! Unit tests: a well-formed session under every profile, the header, pairing and framing rules.

use super::*;

// ---- a well-formed session --------------------------------------------------------------------------

/// Every command of the spec, well formed and answered correctly, raises nothing, under every profile.
#[test]
fn well_formed_session_raises_nothing() {
    for p in Profile::ALL {
        well_formed_session(p);
    }
}

fn well_formed_session(p: Profile) {
    let mut s = negotiated_with(
        p,
        Some(br#"{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":65536}}"#),
        Some(br#"{"capabilities":{"max_msg_fds":4,"max_data_xfer_size":8192}}"#),
    );
    // Device, regions, interrupts.
    s.ok(
        &enc(
            cmd(1, Command::DEVICE_GET_INFO),
            Body::DeviceInfo(&device_info(16, 0, 0, 0)),
        ),
        &enc(
            rep(1, Command::DEVICE_GET_INFO),
            Body::DeviceInfo(&device_info(16, 3, 9, 5)),
        ),
    );
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
                info: &region_info(32, 3, 0, 0, 0x1000),
                caps: &[],
            },
        ),
    );
    let mut caps = vec![1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
    caps.extend_from_slice(&0u64.to_le_bytes());
    caps.extend_from_slice(&0x2000u64.to_le_bytes());
    let f = s.c(&enc(
        cmd(3, Command::DEVICE_GET_REGION_INFO),
        Body::RegionInfo {
            info: &region_info(80, 0, 1, 0, 0),
            caps: &[],
        },
    ));
    none(&f);
    let f = s.sf(
        &enc(
            rep(3, Command::DEVICE_GET_REGION_INFO),
            Body::RegionInfo {
                info: &region_info(64, 0xf, 1, 32, 0x2000),
                caps: &caps,
            },
        ),
        1,
    );
    none(&f);
    s.ok(
        &enc(
            cmd(4, Command::DEVICE_GET_IRQ_INFO),
            Body::IrqInfo(&irq_info(16, 0, 2, 0)),
        ),
        &enc(
            rep(4, Command::DEVICE_GET_IRQ_INFO),
            Body::IrqInfo(&irq_info(16, 1, 2, 4)),
        ),
    );
    let f = s.cf(
        &enc(
            cmd(5, Command::DEVICE_SET_IRQS),
            Body::SetIrqs {
                set: &irq_set(20, 0x24, 2, 0, 2),
                data: &[],
            },
        ),
        2,
    );
    none(&f);
    none(&s.s(&enc(rep(5, Command::DEVICE_SET_IRQS), Body::Empty)));
    s.ok(
        &enc(
            cmd(6, Command::DEVICE_SET_IRQS),
            Body::SetIrqs {
                set: &irq_set(22, 0x22, 2, 0, 2),
                data: &[1, 0],
            },
        ),
        &enc(rep(6, Command::DEVICE_SET_IRQS), Body::Empty),
    );
    s.ok(
        &enc(
            cmd(6, Command::DEVICE_SET_IRQS),
            Body::SetIrqs {
                set: &irq_set(20, 0x21, 2, 0, 0),
                data: &[],
            },
        ),
        &enc(rep(6, Command::DEVICE_SET_IRQS), Body::Empty),
    );
    // DMA windows and server DMA.
    none(&s.cf(
        &enc(
            cmd(7, Command::DMA_MAP),
            Body::DmaMap(&DmaMap::new(3, 0, 0x10000, 0x4000)),
        ),
        1,
    ));
    none(&s.s(&enc(rep(7, Command::DMA_MAP), Body::Empty)));
    s.ok(
        &enc(
            cmd(8, Command::DMA_MAP),
            Body::DmaMap(&DmaMap::new(1, 0, 0x20000, 0x1000)),
        ),
        &enc(rep(8, Command::DMA_MAP), Body::Empty),
    );
    none(&s.s(&enc(
        cmd(1, Command::DMA_WRITE),
        Body::DmaRw {
            access: &DmaAccess::new(0x13ff0, 16),
            data: &[0xaa; 16],
        },
    )));
    none(&s.c(&enc(
        rep(1, Command::DMA_WRITE),
        Body::DmaRw {
            access: &DmaAccess::new(0x13ff0, 16),
            data: &[],
        },
    )));
    none(&s.s(&enc(
        cmd(2, Command::DMA_READ),
        Body::DmaRw {
            access: &DmaAccess::new(0x20000, 8),
            data: &[],
        },
    )));
    none(&s.c(&enc(
        rep(2, Command::DMA_READ),
        Body::DmaRw {
            access: &DmaAccess::new(0x20000, 8),
            data: &[7; 8],
        },
    )));
    // Region access, including a posted write.
    s.ok(
        &enc(
            cmd(9, Command::REGION_WRITE),
            Body::RegionRw {
                access: &RegionAccess::new(0, 4, 4),
                data: &[1, 2, 3, 4],
            },
        ),
        &enc(
            rep(9, Command::REGION_WRITE),
            Body::RegionRw {
                access: &RegionAccess::new(0, 4, 4),
                data: &[],
            },
        ),
    );
    s.ok(
        &enc(
            cmd(10, Command::REGION_READ),
            Body::RegionRw {
                access: &RegionAccess::new(1, 0x1000, 8),
                data: &[],
            },
        ),
        &enc(
            rep(10, Command::REGION_READ),
            Body::RegionRw {
                access: &RegionAccess::new(1, 0x1000, 8),
                data: &[9; 8],
            },
        ),
    );
    let posted = Header::new(11, Command::REGION_WRITE, VFIO_USER_F_NO_REPLY, 0);
    none(&s.c(&enc(
        posted,
        Body::RegionRw {
            access: &RegionAccess::new(0, 0, 4),
            data: &[0; 4],
        },
    )));
    // IO_FDS in the spec's 40-byte layout.
    let entry = IoFdEntry {
        size: U64::new(4),
        ..Default::default()
    };
    let head = RegionIoFds {
        argsz: U32::new(56),
        flags: U32::ZERO,
        index: U32::new(1),
        count: U32::ZERO,
    };
    none(&s.c(&enc(
        cmd(12, Command::DEVICE_GET_REGION_IO_FDS),
        Body::RegionIoFds {
            head: &head,
            entries: IoFdEntries::Spec(&[]),
        },
    )));
    let head = RegionIoFds {
        count: U32::new(1),
        ..head
    };
    let reply = exact(
        rep(12, Command::DEVICE_GET_REGION_IO_FDS),
        Body::RegionIoFds {
            head: &head,
            entries: IoFdEntries::Spec(&[entry]),
        },
        &[],
    );
    none(&s.sf(&reply, 1));
    // Migration: MIGRATION GET, dirty logging, the saving and the resuming states.
    s.ok(
        &enc(
            cmd(13, Command::DEVICE_FEATURE),
            Body::DeviceFeature {
                head: &feature(16, GET | F_MIGRATION),
                data: FeatureData::None,
            },
        ),
        &enc(
            rep(13, Command::DEVICE_FEATURE),
            Body::DeviceFeature {
                head: &feature(16, GET | F_MIGRATION),
                data: FeatureData::Migration(&FeatureMigration { flags: U64::new(5) }),
            },
        ),
    );
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
        &enc(cmd(14, Command::DEVICE_FEATURE), start),
        &enc(rep(14, Command::DEVICE_FEATURE), start),
    );
    let report = DmaLoggingReport {
        iova: U64::new(0x10000),
        length: U64::new(0x4000),
        page_size: U64::new(0x1000),
    };
    s.ok(
        &enc(
            cmd(15, Command::DEVICE_FEATURE),
            Body::DeviceFeature {
                head: &feature(40, GET | F_LOG_REPORT),
                data: FeatureData::LoggingReport {
                    report: &report,
                    bitmap: &[],
                },
            },
        ),
        &enc(
            rep(15, Command::DEVICE_FEATURE),
            Body::DeviceFeature {
                head: &feature(40, GET | F_LOG_REPORT),
                data: FeatureData::LoggingReport {
                    report: &report,
                    bitmap: &[0x0f, 0, 0, 0, 0, 0, 0, 0],
                },
            },
        ),
    );
    let stop = Body::DeviceFeature {
        head: &feature(8, SET | F_LOG_STOP),
        data: FeatureData::None,
    };
    s.ok(
        &enc(cmd(16, Command::DEVICE_FEATURE), stop),
        &enc(rep(16, Command::DEVICE_FEATURE), stop),
    );
    let set_state = |s: &mut S, id: u16, state: u32| {
        let st = mig_state(state, 0);
        let body = Body::DeviceFeature {
            head: &feature(16, SET | F_STATE),
            data: FeatureData::MigState(&st),
        };
        s.ok(
            &enc(cmd(id, Command::DEVICE_FEATURE), body),
            &enc(rep(id, Command::DEVICE_FEATURE), body),
        );
    };
    set_state(&mut s, 17, 6); // RUNNING -> PRE_COPY
    s.ok(
        &enc(
            cmd(18, Command::MIG_DATA_READ),
            Body::MigData {
                head: &mig_data(72, 64),
                data: &[],
            },
        ),
        &enc(
            rep(18, Command::MIG_DATA_READ),
            Body::MigData {
                head: &mig_data(72, 64),
                data: &[5; 64],
            },
        ),
    );
    set_state(&mut s, 19, 3); // PRE_COPY -> STOP_COPY
    s.ok(
        &enc(
            cmd(20, Command::MIG_DATA_READ),
            Body::MigData {
                head: &mig_data(72, 64),
                data: &[],
            },
        ),
        &enc(
            rep(20, Command::MIG_DATA_READ),
            Body::MigData {
                head: &mig_data(8, 0),
                data: &[],
            },
        ),
    );
    set_state(&mut s, 21, 1); // STOP_COPY -> STOP
    set_state(&mut s, 22, 4); // STOP -> RESUMING
    s.ok(
        &enc(
            cmd(23, Command::MIG_DATA_WRITE),
            Body::MigData {
                head: &mig_data(24, 16),
                data: &[1; 16],
            },
        ),
        &enc(rep(23, Command::MIG_DATA_WRITE), Body::Empty),
    );
    set_state(&mut s, 24, 2); // RESUMING -> STOP -> RUNNING
    // Unmap, reset.
    s.ok(
        &enc(
            cmd(25, Command::DMA_UNMAP),
            Body::DmaUnmap {
                unmap: &unmap(24, 0, 0x20000, 0x1000),
                bitmap: None,
                data: &[],
            },
        ),
        &enc(
            rep(25, Command::DMA_UNMAP),
            Body::DmaUnmap {
                unmap: &unmap(24, 0, 0x20000, 0x1000),
                bitmap: None,
                data: &[],
            },
        ),
    );
    s.ok(
        &enc(cmd(26, Command::DEVICE_RESET), Body::Empty),
        &enc(rep(26, Command::DEVICE_RESET), Body::Empty),
    );
    // Ids may be reused once answered.
    s.ok(
        &enc(cmd(26, Command::DEVICE_RESET), Body::Empty),
        &enc(rep(26, Command::DEVICE_RESET), Body::Empty),
    );
    none(&s.v.finish());
}

// ---- header and session -----------------------------------------------------------------------------

#[test]
fn version_first() {
    let mut s = S::new(Profile::Spec);
    only(
        &s.c(&enc(cmd(1, Command::DEVICE_RESET), Body::Empty)),
        "version-not-first",
        2,
    );
    // Reported once per connection.
    none(&s.s(&enc(rep(1, Command::DEVICE_RESET), Body::Empty)));
    none(&s.c(&enc(cmd(2, Command::DEVICE_RESET), Body::Empty)));
}

#[test]
fn version_only_once() {
    let mut s = negotiated(Profile::Spec);
    only(
        &s.c(&enc(cmd(1, Command::VERSION), version(None))),
        "version-repeated",
        2,
    );
    let mut s = S::new(Profile::Spec);
    none(&s.c(&enc(cmd(1, Command::VERSION), version(None))));
    only(
        &s.c(&enc(cmd(2, Command::VERSION), version(None))),
        "version-repeated",
        2,
    );
    // A repeat refused after negotiation leaves the session negotiated.
    let mut s = negotiated(Profile::Spec);
    only(
        &s.c(&enc(cmd(1, Command::VERSION), version(None))),
        "version-repeated",
        2,
    );
    none(&s.s(&enc(
        Header::error_reply(1, Command::VERSION, 22),
        Body::Error,
    )));
    s.ok(
        &enc(cmd(2, Command::DEVICE_RESET), Body::Empty),
        &enc(rep(2, Command::DEVICE_RESET), Body::Empty),
    );
}

#[test]
fn failed_version_can_be_retried() {
    let mut s = S::new(Profile::Spec);
    none(&s.c(&enc(cmd(1, Command::VERSION), version(None))));
    only(
        &s.s(&enc(
            Header::error_reply(1, Command::VERSION, 22),
            Body::Error,
        )),
        "request-rejected",
        12,
    );
    none(&s.c(&enc(cmd(2, Command::VERSION), version(None))));
}

#[test]
fn header_flag_rules() {
    let mut s = negotiated(Profile::Spec);
    let h = Header::new(1, Command::DEVICE_RESET, 0x40, 0);
    only(&s.c(&enc(h, Body::Empty)), "header-flags-reserved", 8);
    let h = Header::new(1, Command::DEVICE_RESET, 0x1 | VFIO_USER_F_NO_REPLY, 0);
    only(&s.s(&enc(h, Body::Empty)), "no-reply-on-reply", 8);
    let h = Header::new(2, Command::DEVICE_RESET, 0x20, 0);
    only(&s.c(&enc(h, Body::Empty)), "error-on-command", 8);
    let h = Header::new(2, Command::DEVICE_RESET, 0x1, 5);
    only(&s.s(&enc(h, Body::Empty)), "header-errno-reserved", 12);
}

#[test]
fn bad_type_bits_are_a_decode_error() {
    let mut s = negotiated(Profile::Spec);
    let h = Header::new(1, Command::DEVICE_RESET, 0x2, 0);
    only(&s.c(&enc(h, Body::Empty)), "decode/bad-message-type", 8);
}

#[test]
fn unknown_and_misdirected_commands() {
    let mut s = negotiated(Profile::Spec);
    only(
        &s.c(&enc(cmd(1, Command(999)), Body::Unknown(&[1, 2, 3]))),
        "unknown-command",
        2,
    );
    only(
        &s.c(&enc(cmd(2, Command::DIRTY_PAGES), Body::Unknown(&[0; 8]))),
        "unknown-command",
        2,
    );
    only(
        &s.c(&enc(
            cmd(3, Command::DMA_READ),
            Body::DmaRw {
                access: &DmaAccess::new(0, 0),
                data: &[],
            },
        )),
        "wrong-direction",
        2,
    );
    only(
        &s.s(&enc(cmd(4, Command::DEVICE_RESET), Body::Empty)),
        "wrong-direction",
        2,
    );
}

#[test]
fn reply_pairing() {
    let mut s = negotiated(Profile::Spec);
    only(
        &s.s(&enc(rep(9, Command::DEVICE_RESET), Body::Empty)),
        "reply-unexpected",
        0,
    );
    none(&s.c(&enc(cmd(1, Command::DEVICE_RESET), Body::Empty)));
    none(&s.s(&enc(rep(1, Command::DEVICE_RESET), Body::Empty)));
    // Answered exactly once.
    only(
        &s.s(&enc(rep(1, Command::DEVICE_RESET), Body::Empty)),
        "reply-unexpected",
        0,
    );
    // A reply from the same side as the command does not answer it.
    none(&s.c(&enc(cmd(2, Command::DEVICE_RESET), Body::Empty)));
    only(
        &s.c(&enc(rep(2, Command::DEVICE_RESET), Body::Empty)),
        "reply-unexpected",
        0,
    );
    none(&s.s(&enc(rep(2, Command::DEVICE_RESET), Body::Empty)));
}

#[test]
fn reply_command_must_match_except_under_qemu() {
    for (p, want) in [(Profile::Spec, true), (Profile::Qemu, false)] {
        let mut s = negotiated(p);
        none(&s.c(&enc(cmd(1, Command::DEVICE_RESET), Body::Empty)));
        let f = s.s(&enc(rep(1, Command::DMA_MAP), Body::Empty));
        if want {
            only(&f, "reply-command-mismatch", 2);
        } else {
            none(&f);
        }
        none(&s.v.finish());
    }
}

#[test]
fn no_reply_commands_get_no_reply() {
    let mut s = negotiated(Profile::Spec);
    let posted = Header::new(5, Command::REGION_WRITE, VFIO_USER_F_NO_REPLY, 0);
    none(&s.c(&enc(
        posted,
        Body::RegionRw {
            access: &RegionAccess::new(0, 0, 1),
            data: &[0],
        },
    )));
    only(
        &s.s(&enc(
            Header::error_reply(5, Command::REGION_WRITE, 22),
            Body::Error,
        )),
        "reply-to-no-reply",
        0,
    );
    none(&s.v.finish());
}

#[test]
fn unanswered_at_finish() {
    let mut s = negotiated(Profile::Spec);
    none(&s.c(&enc(cmd(1, Command::DEVICE_RESET), Body::Empty)));
    let f = s.v.finish();
    only(&f, "request-unanswered", 0);
    assert_eq!(
        (f[0].index, f[0].conn, f[0].severity),
        (2, 7, Severity::Info)
    );
    // finish forgets what it reported.
    none(&s.v.finish());
}

#[test]
fn pending_is_bounded() {
    let mut s = negotiated(Profile::Spec);
    let msg = enc(cmd(1, Command::DEVICE_RESET), Body::Empty);
    let mut overflow = Vec::new();
    for _ in 0..=MAX_PENDING {
        overflow.extend(s.c(&msg));
    }
    only(&overflow, "pending-overflow", 0);
    assert_eq!(s.v.finish().len(), MAX_PENDING);
}

#[test]
fn error_replies_are_header_only() {
    for (p, want) in [(Profile::Spec, true), (Profile::LibvfioUser, false)] {
        let mut s = negotiated(p);
        none(&s.c(&enc(
            cmd(1, Command::REGION_READ),
            Body::RegionRw {
                access: &RegionAccess::new(0, 0, 4),
                data: &[],
            },
        )));
        let reply = exact(
            Header::error_reply(1, Command::REGION_READ, 5),
            Body::Error,
            &[0; 16],
        );
        let f = s.s(&reply);
        if want {
            has(&f, "error-reply-payload", 16);
        } else {
            assert!(!pairs(&f).contains(&("error-reply-payload", 16)));
        }
    }
}

#[test]
fn error_reply_to_a_faultless_command_is_info() {
    let mut s = negotiated(Profile::Spec);
    none(&s.c(&enc(cmd(1, Command::DEVICE_RESET), Body::Empty)));
    let f = s.s(&enc(
        Header::error_reply(1, Command::DEVICE_RESET, 16),
        Body::Error,
    ));
    only(&f, "request-rejected", 12);
    assert_eq!(f[0].severity, Severity::Info);
    // A command that raised a finding expects its error reply: nothing more.
    has(
        &s.c(&enc(cmd(2, Command(40)), Body::Unknown(&[]))),
        "unknown-command",
        2,
    );
    none(&s.s(&enc(Header::error_reply(2, Command(40), 22), Body::Error)));
}

#[test]
fn truncated_final_message() {
    let mut s = negotiated(Profile::Spec);
    let msg = enc(
        cmd(1, Command::DMA_MAP),
        Body::DmaMap(&DmaMap::new(3, 0, 0, 0x1000)),
    );
    only(&s.event(C2S, 0, true, &msg[..20]), "truncated-message", 20);
    only(&s.event(C2S, 0, true, &msg[..6]), "truncated-message", 6);
    // A truncated command is not waiting for a reply.
    none(&s.v.finish());
}

#[test]
fn libvfio_user_message_size_limit() {
    let mut s = S::new(Profile::LibvfioUser);
    let mut msg = enc(cmd(1, Command::VERSION), version(None));
    msg[4..8].copy_from_slice(&1_048_625u32.to_le_bytes());
    let f = s.event(C2S, 0, true, &msg[..16]);
    assert_eq!(
        pairs(&f),
        vec![("truncated-message", 16), ("msg-size-over-limit", 4)]
    );
    // The spec has no such limit.
    let mut s = S::new(Profile::Spec);
    only(&s.event(C2S, 0, true, &msg[..16]), "truncated-message", 16);
}

#[test]
fn decode_errors_become_findings() {
    let mut s = negotiated(Profile::Spec);
    let mut msg = enc(
        cmd(1, Command::DEVICE_GET_INFO),
        Body::DeviceInfo(&device_info(16, 0, 0, 0)),
    );
    msg.truncate(24);
    msg[4..8].copy_from_slice(&24u32.to_le_bytes());
    only(&s.c(&msg), "decode/short-body", 16);
    // Still paired: the error reply is expected.
    none(&s.s(&enc(
        Header::error_reply(1, Command::DEVICE_GET_INFO, 22),
        Body::Error,
    )));
    only(&s.c(&[0u8; 10]), "decode/short-header", 0);
    let mut h = enc(cmd(2, Command::DEVICE_RESET), Body::Empty);
    h[4] = 8;
    only(&s.c(&h), "decode/msg-size-below-header", 4);
    // A VERSION with no payload at all.
    let mut s = S::new(Profile::Spec);
    let mut v = enc(cmd(1, Command::VERSION), version(None));
    v.truncate(16);
    v[4] = 16;
    only(&s.c(&v), "decode/short-body", 16);
}

#[test]
fn every_codec_rule_has_its_decode_rule() {
    use vfu_codec::Rule as C;
    let all = [
        C::ShortHeader { have: 0 },
        C::MsgSizeBelowHeader { msg_size: 0 },
        C::MsgTruncated {
            msg_size: 0,
            have: 0,
        },
        C::MsgOverlong {
            msg_size: 0,
            have: 0,
        },
        C::BadMessageType { bits: 2 },
        C::ShortBody {
            what: "",
            need: 0,
            have: 0,
        },
        C::CountExceedsPayload {
            field: "",
            count: 0,
            have: 0,
        },
        C::JsonNotTerminated,
        C::JsonSyntax { reason: "" },
        C::JsonTooLarge { what: "" },
        C::CapOverlapsFixed { cap_offset: 0 },
        C::CapOutOfBounds {
            cap_offset: 0,
            payload: 0,
        },
        C::CapLoop {
            cap_offset: 0,
            next: 0,
        },
        C::CapTruncated {
            id: 0,
            need: 0,
            have: 0,
        },
        C::IoFdStride {
            argsz: 0,
            count: 0,
            have: 0,
        },
        C::VduseSize { have: 0 },
    ];
    for r in all {
        assert_eq!(Rule::for_decode(&r).id(), format!("decode/{}", r.id()));
    }
}

#[test]
fn framing_decode_errors() {
    let mut s = negotiated(Profile::Spec);
    let mut long = enc(cmd(1, Command::DEVICE_RESET), Body::Empty);
    long.extend_from_slice(&[0; 4]);
    only(&s.c(&long), "decode/msg-overlong", 16);
    let mut short = enc(cmd(2, Command::DEVICE_RESET), Body::Empty);
    short[4] = 24;
    only(&s.c(&short), "decode/msg-truncated", 16);
    // A DATA_BOOL count beyond the bytes present.
    let b = exact(
        cmd(3, Command::DEVICE_SET_IRQS),
        Body::SetIrqs {
            set: &irq_set(21, 0x22, 2, 0, 1),
            data: &[0],
        },
        &[],
    );
    let mut b = b;
    b[32..36].copy_from_slice(&2u32.to_le_bytes());
    only(&s.c(&b), "decode/count-exceeds-payload", 36);
    // A region capability inside the fixed part.
    none(&s.c(&enc(
        cmd(4, Command::DEVICE_GET_REGION_INFO),
        Body::RegionInfo {
            info: &region_info(80, 0, 1, 0, 0),
            caps: &[],
        },
    )));
    let caps = [2u8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let bad = enc(
        rep(4, Command::DEVICE_GET_REGION_INFO),
        Body::RegionInfo {
            info: &region_info(48, 0xb, 1, 16, 0x1000),
            caps: &caps,
        },
    );
    only(&s.s(&bad), "decode/region-cap-overlaps-fixed", 28); // at the cap_offset field
}

/// A command whose header says msg_size below 16 still has an id: libvfio-user reads its 16 bytes and
/// answers EINVAL under that id. The answer is expected, and no answer is reported at the end.
#[test]
fn a_command_with_msg_size_below_the_header_is_answered_under_its_id() {
    let short = |id: u16| {
        let mut m = enc(cmd(id, Command::DEVICE_RESET), Body::Empty);
        m[4..8].copy_from_slice(&8u32.to_le_bytes());
        m
    };
    for p in Profile::ALL {
        let mut s = negotiated(p);
        let f = s.c(&short(7));
        assert_eq!(
            f.iter().map(|x| x.rule.id).collect::<Vec<_>>(),
            ["decode/msg-size-below-header"]
        );
        none(&s.s(&enc(
            Header::error_reply(7, Command::DEVICE_RESET, 22),
            Body::Error,
        )));
        // Unanswered, it is left unanswered.
        s.c(&short(8));
        let f = s.v.finish();
        only(&f, "request-unanswered", 0);
        assert_eq!(f[0].index, 4);
    }
    // A reply header with msg_size below 16 is nothing to wait for.
    let mut s = negotiated(Profile::Spec);
    let mut r = enc(rep(9, Command::DEVICE_RESET), Body::Empty);
    r[4..8].copy_from_slice(&8u32.to_le_bytes());
    s.s(&r);
    none(&s.v.finish());
}

/// A command cut off by the end of the stream is written last, after the error reply the server sent
/// when it rejected its header: that reply answers it. An unmatched error reply is reported at the
/// connection's next message, or at the end.
#[test]
fn an_error_reply_to_the_truncated_tail_is_not_unexpected() {
    // A header claiming 1 MiB + 49 bytes (libvfio-user refuses more than 1 MiB + 32), then the end.
    let mut big = enc(cmd(0x4d2, Command::DEVICE_RESET), Body::Empty);
    big[4..8].copy_from_slice(&1_048_625u32.to_le_bytes());
    big.extend_from_slice(&[0; 8]);
    let refusal = enc(
        Header::error_reply(0x4d2, Command::DEVICE_RESET, 22),
        Body::Error,
    );
    for p in Profile::ALL {
        let mut s = negotiated(p);
        none(&s.s(&refusal));
        has(&s.event(C2S, 0, true, &big), "truncated-message", 24);
        none(&s.v.finish());
    }
    // The tail has another id: the reply answered nothing.
    let mut s = negotiated(Profile::LibvfioUser);
    none(&s.s(&refusal));
    let mut other = big.clone();
    other[0..2].copy_from_slice(&7u16.to_le_bytes());
    let f = s.event(C2S, 0, true, &other);
    assert!(!pairs(&f).contains(&("reply-unexpected", 0)), "{f:#?}");
    let f = s.v.finish();
    only(&f, "reply-unexpected", 0);
    assert_eq!(f[0].index, 2);
    // Any whole message after it shows it answers nothing; the finding names the reply.
    let mut s = negotiated(Profile::Spec);
    none(&s.s(&refusal));
    let f = s.c(&enc(cmd(1, Command::DEVICE_RESET), Body::Empty));
    only(&f, "reply-unexpected", 0);
    assert_eq!(f[0].index, 2);
    // A success reply that matches nothing is reported at once, as before.
    only(
        &s.s(&enc(rep(0x4d2, Command::DEVICE_RESET), Body::Empty)),
        "reply-unexpected",
        0,
    );
}

/// libvfio-user answers a client's unsolicited reply with EINVAL under its msg_id
/// (test_unsolicited_reply): under its profile that answer is its refusal of the stray reply, which
/// is the one violation; under spec a reply to a reply is one more.
#[test]
fn libvfio_user_refuses_an_unsolicited_reply() {
    let stray = enc(rep(0xbad2, Command::DEVICE_SET_IRQS), Body::Empty);
    let refusal = enc(
        Header::error_reply(0xbad2, Command::DEVICE_SET_IRQS, 22),
        Body::Error,
    );
    let mut s = negotiated(Profile::LibvfioUser);
    only(&s.c(&stray), "reply-unexpected", 0);
    none(&s.s(&refusal));
    none(&s.v.finish());
    let mut s = negotiated(Profile::Spec);
    only(&s.c(&stray), "reply-unexpected", 0);
    none(&s.s(&refusal));
    only(&s.v.finish(), "reply-unexpected", 0);
}
