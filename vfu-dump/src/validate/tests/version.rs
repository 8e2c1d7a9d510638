//! Unit tests: VERSION numbers, capabilities, twin sockets and write_multiple.

use super::*;

#[test]
fn version_numbers() {
    let mut s = S::new(Profile::Spec);
    let v1 = Version {
        major: U16::new(1),
        minor: U16::new(2),
    };
    only(
        &s.c(&enc(
            cmd(1, Command::VERSION),
            Body::Version(VersionBody {
                version: &v1,
                json: None,
            }),
        )),
        "version-major",
        16,
    );
    let v0 = Version {
        major: U16::new(1),
        minor: U16::new(3),
    };
    let f = s.s(&enc(
        rep(1, Command::VERSION),
        Body::Version(VersionBody {
            version: &v0,
            json: None,
        }),
    ));
    only(&f, "version-minor", 18);
    let mut s = S::new(Profile::Spec);
    none(&s.c(&enc(cmd(1, Command::VERSION), version(None))));
    let v = Version {
        major: U16::new(3),
        minor: U16::ZERO,
    };
    only(
        &s.s(&enc(
            rep(1, Command::VERSION),
            Body::Version(VersionBody {
                version: &v,
                json: None,
            }),
        )),
        "version-major",
        16,
    );
}

#[test]
fn capability_types_values_and_keys() {
    let mut s = S::new(Profile::Spec);
    // The key's opening quote is byte 17 of the JSON, which starts at message offset 20.
    let json = br#"{"capabilities":{"max_msg_fds":"8"}}"#;
    only(
        &s.c(&enc(cmd(1, Command::VERSION), version(Some(json)))),
        "version-cap-type",
        37,
    );
    let mut s = S::new(Profile::Spec);
    let json = br#"{"capabilities":{"migration":{"pgsize":4095}}}"#;
    let f = s.c(&enc(cmd(1, Command::VERSION), version(Some(json))));
    assert_eq!(
        pairs(&f),
        vec![("version-cap-value", 20), ("version-legacy-migration", 20)]
    );
    let mut s = S::new(Profile::Spec);
    let f = s.c(&enc(
        cmd(1, Command::VERSION),
        version(Some(br#"{"capabilities":{"vendor_x":1}}"#)),
    ));
    only(&f, "version-cap-unknown", 37);
    assert_eq!(f[0].severity, Severity::Info);
    let mut s = S::new(Profile::Spec);
    let json = br#"{"capabilities":{"max_msg_fds":1,"max_msg_fds":2}}"#;
    only(
        &s.c(&enc(cmd(1, Command::VERSION), version(Some(json)))),
        "version-cap-duplicate",
        20,
    );
    // libvfio-user accepts at most 1024 fds per message from its client.
    let json = br#"{"capabilities":{"max_msg_fds":1025}}"#;
    none(&S::new(Profile::Spec).c(&enc(cmd(1, Command::VERSION), version(Some(json)))));
    only(
        &S::new(Profile::LibvfioUser).c(&enc(cmd(1, Command::VERSION), version(Some(json)))),
        "version-cap-value",
        20,
    );
    // A JSON syntax error is the codec's.
    only(
        &S::new(Profile::Spec).c(&enc(cmd(1, Command::VERSION), version(Some(b"{")))),
        "decode/version-json-syntax",
        21,
    );
}

#[test]
fn reply_capabilities_must_have_been_offered() {
    let lvu = br#"{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,"migration":{"pgsize":4096}}}"#;
    for p in Profile::ALL {
        let mut s = S::new(p);
        none(&s.c(&enc(cmd(1, Command::VERSION), version(None))));
        let f = s.s(&enc(rep(1, Command::VERSION), version(Some(lvu))));
        match p {
            Profile::Spec => assert_eq!(
                pairs(&f),
                vec![
                    ("version-reply-extra-cap", 20),
                    ("version-reply-extra-cap", 20),
                    ("version-reply-extra-cap", 20),
                    ("version-legacy-migration", 20)
                ]
            ),
            // QEMU offers migration itself; here it was not offered, and the reply is longer than the
            // request.
            Profile::Qemu => assert_eq!(
                pairs(&f),
                vec![
                    ("version-reply-extra-cap", 20),
                    ("version-reply-extra-cap", 20),
                    ("version-reply-extra-cap", 20),
                    ("qemu-reply-buffer", 4)
                ]
            ),
            Profile::LibvfioUser => none(&f),
        }
    }
}

#[test]
fn twin_socket_rules() {
    let twin =
        br#"{"capabilities":{"max_msg_fds":8,"twin_socket":{"supported":true,"fd_index":0}}}"#;
    let offer = br#"{"capabilities":{"max_msg_fds":8,"twin_socket":{"supported":true}}}"#;
    // Not offered.
    let mut s = S::new(Profile::Spec);
    none(&s.c(&enc(
        cmd(1, Command::VERSION),
        version(Some(br#"{"capabilities":{"max_msg_fds":8}}"#)),
    )));
    let f = s.sf(&enc(rep(1, Command::VERSION), version(Some(twin))), 1);
    assert!(
        pairs(&f).contains(&("twin-socket-not-offered", 20)),
        "{f:#?}"
    );
    // Offered, but the fd is missing.
    let mut s = S::new(Profile::Spec);
    none(&s.c(&enc(cmd(1, Command::VERSION), version(Some(offer)))));
    has(
        &s.sf(&enc(rep(1, Command::VERSION), version(Some(twin))), 0),
        "twin-socket-fd-index",
        20,
    );
    // Done right: DMA must then use the twin socket.
    let mut s = S::new(Profile::Spec);
    none(&s.c(&enc(cmd(1, Command::VERSION), version(Some(offer)))));
    none(&s.sf(&enc(rep(1, Command::VERSION), version(Some(twin))), 1));
    has(
        &s.s(&enc(
            cmd(1, Command::DMA_READ),
            Body::DmaRw {
                access: &DmaAccess::new(0, 8),
                data: &[],
            },
        )),
        "twin-socket-dma-on-main",
        2,
    );
    // A connection that starts with a server DMA command is a twin socket: no VERSION expected.
    let mut v = Validator::new(Profile::Spec);
    let msg = enc(
        cmd(1, Command::DMA_READ),
        Body::DmaRw {
            access: &DmaAccess::new(0, 8),
            data: &[],
        },
    );
    let ev = Event {
        conn: 1,
        index: 0,
        direction: S2C,
        protocol: Protocol::VfioUser,
        fds: 0,
        truncated: false,
        bytes: &msg,
    };
    none(&v.check_event(&ev));
}

#[test]
fn write_multiple_needs_the_capability() {
    let entry = RegionWriteEntry {
        region: U32::new(0),
        count: U32::new(4),
        ..Default::default()
    };
    let body = Body::WriteMulti {
        head: &RegionWriteMulti {
            wr_cnt: U64::new(1),
        },
        entries: &[entry],
    };
    let mut s = negotiated(Profile::Spec);
    only(
        &s.c(&enc(cmd(1, Command::REGION_WRITE_MULTI), body)),
        "write-multi-not-negotiated",
        2,
    );
    let mut s = negotiated_with(
        Profile::Spec,
        Some(br#"{"capabilities":{"write_multiple":true}}"#),
        Some(br#"{"capabilities":{"write_multiple":true}}"#),
    );
    none(&s.c(&enc(cmd(1, Command::REGION_WRITE_MULTI), body)));
    none(&s.s(&enc(
        rep(1, Command::REGION_WRITE_MULTI),
        Body::WriteMulti {
            head: &RegionWriteMulti {
                wr_cnt: U64::new(1),
            },
            entries: &[],
        },
    )));
    let bad = RegionWriteEntry {
        count: U32::new(9),
        ..entry
    };
    only(
        &s.c(&enc(
            cmd(2, Command::REGION_WRITE_MULTI),
            Body::WriteMulti {
                head: &RegionWriteMulti {
                    wr_cnt: U64::new(1),
                },
                entries: &[bad],
            },
        )),
        "region-range",
        16 + 8 + 12,
    );
}
