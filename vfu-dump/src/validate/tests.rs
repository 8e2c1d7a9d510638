//! Unit tests: crafted messages (built with the codec's encoders) fed to a validator; each test names the
//! rule id and the offset it expects.

use zerocopy::little_endian::{U16, U32, U64};

use vfu_codec::header::VFIO_USER_F_NO_REPLY;
use vfu_codec::message::{Body, FeatureData, VersionBody, encode, encode_exact};
use vfu_codec::vduse::{
    RequestBody, ResponseBody, VduseDevStatus, VduseVqState, encode_request, encode_response,
};
use vfu_codec::vfio::caps::Version;
use vfu_codec::vfio::{
    DeviceFeature, DeviceInfo, DirtyBitmap, DmaAccess, DmaLoggingControl, DmaLoggingReport, DmaMap,
    DmaUnmap, FeatureMigState, FeatureMigration, IoFdEntries, IoFdEntry, IoFdShadowEntry, IrqInfo,
    IrqSet, MigData, RegionAccess, RegionInfo, RegionIoFds, RegionWriteEntry, RegionWriteMulti,
};
use vfu_codec::{Command, Direction, Header};

use super::*;

const C2S: Direction = Direction::ClientToServer;
const S2C: Direction = Direction::ServerToClient;

// ---- building messages ----------------------------------------------------------------------------

/// Encodes with the spec's argsz rules (the encoder fills in argsz and msg_size).
fn enc(h: Header, body: Body<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 16];
    let n = encode(&h, &body, &mut buf).expect("encode");
    buf.truncate(n);
    buf
}

/// Encodes every field as given (argsz included), with `trailing` bytes after the body.
fn exact(h: Header, body: Body<'_>, trailing: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 16];
    let n = encode_exact(&h, &body, trailing, &mut buf).expect("encode");
    buf.truncate(n);
    buf
}

fn cmd(id: u16, c: Command) -> Header {
    Header::command(id, c)
}

fn rep(id: u16, c: Command) -> Header {
    Header::reply(id, c)
}

fn version(json: Option<&[u8]>) -> Body<'_> {
    static V: Version = Version {
        major: U16::ZERO,
        minor: U16::ZERO,
    };
    Body::Version(VersionBody { version: &V, json })
}

fn device_info(argsz: u32, flags: u32, regions: u32, irqs: u32) -> DeviceInfo {
    DeviceInfo {
        argsz: U32::new(argsz),
        flags: U32::new(flags),
        num_regions: U32::new(regions),
        num_irqs: U32::new(irqs),
    }
}

fn region_info(argsz: u32, flags: u32, index: u32, cap_offset: u32, size: u64) -> RegionInfo {
    RegionInfo {
        argsz: U32::new(argsz),
        flags: U32::new(flags),
        index: U32::new(index),
        cap_offset: U32::new(cap_offset),
        size: U64::new(size),
        offset: U64::ZERO,
    }
}

fn irq_info(argsz: u32, flags: u32, index: u32, count: u32) -> IrqInfo {
    IrqInfo {
        argsz: U32::new(argsz),
        flags: U32::new(flags),
        index: U32::new(index),
        count: U32::new(count),
    }
}

fn irq_set(argsz: u32, flags: u32, index: u32, start: u32, count: u32) -> IrqSet {
    IrqSet {
        argsz: U32::new(argsz),
        flags: U32::new(flags),
        index: U32::new(index),
        start: U32::new(start),
        count: U32::new(count),
    }
}

fn unmap(argsz: u32, flags: u32, addr: u64, size: u64) -> DmaUnmap {
    DmaUnmap {
        argsz: U32::new(argsz),
        flags: U32::new(flags),
        address: U64::new(addr),
        size: U64::new(size),
    }
}

fn feature(argsz: u32, flags: u32) -> DeviceFeature {
    DeviceFeature {
        argsz: U32::new(argsz),
        flags: U32::new(flags),
    }
}

fn mig_state(state: u32, data_fd: i32) -> FeatureMigState {
    FeatureMigState {
        device_state: U32::new(state),
        data_fd: data_fd.into(),
    }
}

fn mig_data(argsz: u32, size: u32) -> MigData {
    MigData {
        argsz: U32::new(argsz),
        size: U32::new(size),
    }
}

const GET: u32 = 0x10000;
const SET: u32 = 0x20000;
const PROBE: u32 = 0x40000;
const F_MIGRATION: u32 = 1;
const F_STATE: u32 = 2;
const F_LOG_START: u32 = 6;
const F_LOG_STOP: u32 = 7;
const F_LOG_REPORT: u32 = 8;

// ---- driving a validator ----------------------------------------------------------------------------

struct S {
    v: Validator,
    next: u64,
}

impl S {
    fn new(p: Profile) -> Self {
        S {
            v: Validator::new(p),
            next: 0,
        }
    }

    fn event(
        &mut self,
        direction: Direction,
        fds: u32,
        truncated: bool,
        bytes: &[u8],
    ) -> Vec<Finding> {
        let ev = Event {
            conn: 7,
            index: self.next,
            direction,
            protocol: Protocol::VfioUser,
            fds,
            truncated,
            bytes,
        };
        self.next += 1;
        self.v.check_event(&ev)
    }

    /// A client-to-server message.
    fn c(&mut self, bytes: &[u8]) -> Vec<Finding> {
        self.event(C2S, 0, false, bytes)
    }

    fn cf(&mut self, bytes: &[u8], fds: u32) -> Vec<Finding> {
        self.event(C2S, fds, false, bytes)
    }

    /// A server-to-client message.
    fn s(&mut self, bytes: &[u8]) -> Vec<Finding> {
        self.event(S2C, 0, false, bytes)
    }

    fn sf(&mut self, bytes: &[u8], fds: u32) -> Vec<Finding> {
        self.event(S2C, fds, false, bytes)
    }

    /// Sends a command and its success reply, both of which must raise nothing.
    #[track_caller]
    fn ok(&mut self, request: &[u8], reply: &[u8]) {
        let f = self.c(request);
        none(&f);
        let f = self.s(reply);
        none(&f);
    }
}

/// A session after a clean VERSION exchange with the given capability texts.
#[track_caller]
fn negotiated_with(p: Profile, client: Option<&[u8]>, server: Option<&[u8]>) -> S {
    let mut s = S::new(p);
    s.ok(
        &enc(cmd(0xfff0, Command::VERSION), version(client)),
        &enc(rep(0xfff0, Command::VERSION), version(server)),
    );
    s
}

#[track_caller]
fn negotiated(p: Profile) -> S {
    negotiated_with(p, None, None)
}

/// After DEVICE_GET_INFO: a PCI device with 9 regions and 5 IRQ indices.
#[track_caller]
fn with_device(p: Profile) -> S {
    let mut s = negotiated(p);
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
    s
}

fn pairs(f: &[Finding]) -> Vec<(&'static str, usize)> {
    f.iter().map(|x| (x.rule.id, x.offset)).collect()
}

#[track_caller]
fn none(f: &[Finding]) {
    assert!(f.is_empty(), "expected no findings, got {f:#?}");
}

/// Exactly one finding: `id` at `offset`.
#[track_caller]
fn only(f: &[Finding], id: &str, offset: usize) {
    assert_eq!(pairs(f), vec![(id, offset)], "{f:#?}");
}

/// Among the findings, `id` at `offset`.
#[track_caller]
fn has(f: &[Finding], id: &str, offset: usize) {
    assert!(
        pairs(f).contains(&(id, offset)),
        "expected {id} at {offset}, got {f:#?}"
    );
}

// ---- the rule table ---------------------------------------------------------------------------------

#[test]
fn rule_table_is_consistent() {
    assert_eq!(RULES.len(), Rule::ALL.len());
    let mut ids = std::collections::HashSet::new();
    for (i, r) in Rule::ALL.iter().enumerate() {
        assert_eq!(r.info(), &RULES[i]);
        assert!(ids.insert(r.id()), "duplicate id {}", r.id());
        let id = r.id().strip_prefix("decode/").unwrap_or(r.id());
        assert!(
            id.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{id} is not kebab-case"
        );
        assert!(!r.info().description.is_empty() && !r.info().section.is_empty());
        assert_eq!(rule_by_id(r.id()), Some(r.info()));
    }
    assert_eq!(
        Rule::for_decode(&vfu_codec::Rule::JsonNotTerminated).id(),
        "decode/version-json-not-terminated"
    );
}

#[test]
fn profile_names_parse_back() {
    for p in Profile::ALL {
        assert_eq!(p.name().parse::<Profile>(), Ok(p));
    }
    assert_eq!("lvu".parse::<Profile>(), Ok(Profile::LibvfioUser));
    assert!("kvm".parse::<Profile>().is_err());
}

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

// ---- VERSION ----------------------------------------------------------------------------------------

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

// ---- DMA --------------------------------------------------------------------------------------------

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

// ---- device, regions, interrupts --------------------------------------------------------------------

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

// ---- device features and migration ------------------------------------------------------------------

fn feat(id: u16, h: DeviceFeature, data: FeatureData<'_>) -> Vec<u8> {
    enc(
        cmd(id, Command::DEVICE_FEATURE),
        Body::DeviceFeature { head: &h, data },
    )
}

fn feat_rep(id: u16, h: DeviceFeature, data: FeatureData<'_>) -> Vec<u8> {
    enc(
        rep(id, Command::DEVICE_FEATURE),
        Body::DeviceFeature { head: &h, data },
    )
}

fn set_state(s: &mut S, id: u16, state: u32) -> Vec<Finding> {
    let st = mig_state(state, 0);
    let f = s.c(&feat(
        id,
        feature(16, SET | F_STATE),
        FeatureData::MigState(&st),
    ));
    let mut g = s.s(&feat_rep(
        id,
        feature(16, SET | F_STATE),
        FeatureData::MigState(&st),
    ));
    let mut f = f;
    f.append(&mut g);
    f
}

#[test]
fn feature_operations() {
    let mut s = negotiated(Profile::Spec);
    only(
        &s.c(&feat(
            1,
            feature(16, GET | SET | F_STATE),
            FeatureData::None,
        )),
        "feature-flags",
        20,
    );
    none(&s.c(&feat(
        1,
        feature(16, GET | SET | PROBE | F_STATE),
        FeatureData::None,
    )));
    only(
        &s.c(&feat(1, feature(16, F_STATE), FeatureData::None)),
        "feature-flags",
        20,
    );
    only(
        &s.c(&feat(1, feature(16, SET | F_MIGRATION), FeatureData::None)),
        "feature-flags",
        20,
    );
    only(
        &s.c(&feat(1, feature(16, GET | 3), FeatureData::None)),
        "feature-unknown",
        20,
    );
    only(
        &s.c(&feat(
            1,
            feature(16, GET | 0x80000 | F_MIGRATION),
            FeatureData::None,
        )),
        "flags-reserved",
        20,
    );
    only(
        &s.c(&feat(1, feature(16, SET | F_STATE), FeatureData::None)),
        "feature-data",
        24,
    );
    only(
        &s.c(&feat(1, feature(8, GET | F_MIGRATION), FeatureData::None)),
        "argsz-too-small",
        16,
    );
}

#[test]
fn migration_transitions_follow_the_state_machine() {
    let mut s = negotiated(Profile::Spec);
    // A fresh device is RUNNING, so a destination reaches RESUMING (through STOP) at once.
    none(&set_state(&mut s, 1, 4));
    none(&set_state(&mut s, 2, 1));
    none(&set_state(&mut s, 3, 3)); // STOP -> STOP_COPY
    only(&set_state(&mut s, 4, 6), "mig-transition", 24); // STOP_COPY -> PRE_COPY
    // The illegal SET was answered with success: the state is tracked from the reply (PRE_COPY), so
    // PRE_COPY -> RUNNING is now legal.
    none(&set_state(&mut s, 5, 2));
    // ERROR can never be requested; refused, as it should be.
    only(
        &s.c(&feat(
            6,
            feature(16, SET | F_STATE),
            FeatureData::MigState(&mig_state(0, 0)),
        )),
        "mig-transition",
        24,
    );
    none(&s.s(&enc(
        Header::error_reply(6, Command::DEVICE_FEATURE, 22),
        Body::Error,
    )));
    // A refused SET leaves the state unknown: only what does not depend on it is checked.
    none(&s.c(&feat(
        7,
        feature(16, SET | F_STATE),
        FeatureData::MigState(&mig_state(3, 0)),
    )));
    only(
        &s.s(&enc(
            Header::error_reply(7, Command::DEVICE_FEATURE, 22),
            Body::Error,
        )),
        "request-rejected",
        12,
    );
    s.ok(
        &enc(
            cmd(30, Command::MIG_DATA_WRITE),
            Body::MigData {
                head: &mig_data(24, 16),
                data: &[0; 16],
            },
        ),
        &enc(rep(30, Command::MIG_DATA_WRITE), Body::Empty),
    );
    // A MIG_DEVICE_STATE GET reply says where the device is.
    none(&s.c(&feat(8, feature(16, GET | F_STATE), FeatureData::None)));
    none(&s.s(&feat_rep(
        8,
        feature(16, GET | F_STATE),
        FeatureData::MigState(&mig_state(3, 0)),
    )));
    only(&set_state(&mut s, 9, 6), "mig-transition", 24);
}

#[test]
fn pre_copy_needs_support() {
    let mut s = negotiated(Profile::Spec);
    none(&s.c(&feat(1, feature(16, GET | F_MIGRATION), FeatureData::None)));
    none(&s.s(&feat_rep(
        1,
        feature(16, GET | F_MIGRATION),
        FeatureData::Migration(&FeatureMigration { flags: U64::new(1) }),
    )));
    only(&set_state(&mut s, 2, 6), "mig-transition", 24);
    none(&s.c(&feat(3, feature(16, GET | F_MIGRATION), FeatureData::None)));
    only(
        &s.s(&feat_rep(
            3,
            feature(16, GET | F_MIGRATION),
            FeatureData::Migration(&FeatureMigration { flags: U64::new(4) }),
        )),
        "migration-flags",
        24,
    );
}

#[test]
fn migration_data_only_in_its_states() {
    let mut s = negotiated(Profile::Spec);
    let read = enc(
        cmd(1, Command::MIG_DATA_READ),
        Body::MigData {
            head: &mig_data(72, 64),
            data: &[],
        },
    );
    let write = enc(
        cmd(2, Command::MIG_DATA_WRITE),
        Body::MigData {
            head: &mig_data(24, 16),
            data: &[0; 16],
        },
    );
    only(&s.c(&read), "mig-data-state", 2);
    only(&s.c(&write), "mig-data-state", 2);
    none(&set_state(&mut s, 3, 6));
    none(&s.c(&read));
    only(&s.c(&write), "mig-data-state", 2);
    none(&set_state(&mut s, 4, 1));
    none(&set_state(&mut s, 5, 4));
    none(&s.c(&write));
    only(&s.c(&read), "mig-data-state", 2);
}

#[test]
fn migration_data_read_reply_padding() {
    let req = enc(
        cmd(1, Command::MIG_DATA_READ),
        Body::MigData {
            head: &mig_data(1032, 1024),
            data: &[],
        },
    );
    let reply = exact(
        rep(1, Command::MIG_DATA_READ),
        Body::MigData {
            head: &mig_data(16, 8),
            data: &[1; 8],
        },
        &[0; 1016],
    );
    for (p, want) in [(Profile::Spec, true), (Profile::LibvfioUser, false)] {
        let mut s = negotiated(p);
        none(&set_state(&mut s, 9, 6));
        none(&s.c(&req));
        let f = s.s(&reply);
        if want {
            only(&f, "payload-length", 16 + 16);
        } else {
            none(&f);
        }
    }
}

#[test]
fn data_fd_is_info_and_not_under_libvfio_user() {
    let st = mig_state(1, -1);
    let msg = feat(1, feature(16, SET | F_STATE), FeatureData::MigState(&st));
    let f = negotiated(Profile::Spec).c(&msg);
    only(&f, "mig-state-data-fd", 28);
    assert_eq!(f[0].severity, Severity::Info);
    none(&negotiated(Profile::LibvfioUser).c(&msg));
}

#[test]
fn dma_logging_report_only_after_start() {
    let report = DmaLoggingReport {
        iova: U64::new(0),
        length: U64::new(0x1000),
        page_size: U64::new(0x1000),
    };
    let ask = feat(
        1,
        feature(40, GET | F_LOG_REPORT),
        FeatureData::LoggingReport {
            report: &report,
            bitmap: &[],
        },
    );
    let mut s = negotiated(Profile::Spec);
    only(&s.c(&ask), "logging-not-started", 20);
    s.s(&enc(
        Header::error_reply(1, Command::DEVICE_FEATURE, 22),
        Body::Error,
    ));
    let control = DmaLoggingControl {
        page_size: U64::new(4096),
        ..Default::default()
    };
    let start = FeatureData::LoggingControl {
        control: &control,
        ranges: &[],
    };
    s.ok(
        &feat(2, feature(24, SET | F_LOG_START), start),
        &feat_rep(2, feature(24, SET | F_LOG_START), start),
    );
    none(&s.c(&ask));
    // One page: only bit 0 may be set.
    only(
        &s.s(&feat_rep(
            1,
            feature(40, GET | F_LOG_REPORT),
            FeatureData::LoggingReport {
                report: &report,
                bitmap: &[3, 0, 0, 0, 0, 0, 0, 0],
            },
        )),
        "logging-report-bitmap",
        48,
    );
    let bad = DmaLoggingReport {
        page_size: U64::new(0x1800),
        ..report
    };
    only(
        &s.c(&feat(
            3,
            feature(40, GET | F_LOG_REPORT),
            FeatureData::LoggingReport {
                report: &bad,
                bitmap: &[],
            },
        )),
        "feature-data",
        40,
    );
    let stop = FeatureData::None;
    s.ok(
        &feat(4, feature(8, SET | F_LOG_STOP), stop),
        &feat_rep(4, feature(8, SET | F_LOG_STOP), stop),
    );
    only(&s.c(&ask), "logging-not-started", 20);
}

#[test]
fn reset_leaves_error_for_running() {
    let mut s = negotiated(Profile::Spec);
    none(&s.c(&feat(1, feature(16, GET | F_STATE), FeatureData::None)));
    none(&s.s(&feat_rep(
        1,
        feature(16, GET | F_STATE),
        FeatureData::MigState(&mig_state(0, 0)),
    )));
    only(&set_state(&mut s, 2, 1), "mig-transition", 24);
    s.ok(
        &enc(cmd(3, Command::DEVICE_RESET), Body::Empty),
        &enc(rep(3, Command::DEVICE_RESET), Body::Empty),
    );
    none(&set_state(&mut s, 4, 1));
}

// ---- VDUSE ------------------------------------------------------------------------------------------

fn vduse(v: &mut Validator, index: u64, direction: Direction, bytes: &[u8]) -> Vec<Finding> {
    v.check_event(&Event {
        conn: 3,
        index,
        direction,
        protocol: Protocol::Vduse,
        fds: 0,
        truncated: false,
        bytes,
    })
}

fn vq_request(id: u32, index: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 152];
    encode_request(
        id,
        &RequestBody::GetVqState(&VduseVqState::new_split(index, 0)),
        &mut buf,
    )
    .expect("encode");
    buf
}

fn vq_response(id: u32, result: u32, index: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 152];
    encode_response(
        id,
        result,
        &ResponseBody::GetVqState(&VduseVqState::new_split(index, 9)),
        &mut buf,
    )
    .expect("encode");
    buf
}

#[test]
fn vduse_pairs_by_request_id() {
    let mut v = Validator::new(Profile::Spec);
    none(&vduse(&mut v, 0, C2S, &vq_request(1, 2)));
    let mut status = vec![0u8; 152];
    encode_request(
        2,
        &RequestBody::SetStatus(&VduseDevStatus { status: 0x0f }),
        &mut status,
    )
    .expect("encode");
    none(&vduse(&mut v, 1, C2S, &status));
    // Answered out of order, by request_id.
    let mut ok = vec![0u8; 152];
    encode_response(2, 0, &ResponseBody::Raw(&[0; 128]), &mut ok).expect("encode");
    none(&vduse(&mut v, 2, S2C, &ok));
    none(&vduse(&mut v, 3, S2C, &vq_response(1, 0, 2)));
    only(
        &vduse(&mut v, 4, S2C, &vq_response(1, 0, 2)),
        "vduse-response-unexpected",
        0,
    );
    none(&vduse(&mut v, 5, C2S, &vq_request(7, 0)));
    only(
        &vduse(&mut v, 6, C2S, &vq_request(7, 0)),
        "vduse-duplicate-id",
        4,
    );
    let f = v.finish();
    assert_eq!(
        pairs(&f),
        vec![("request-unanswered", 0), ("request-unanswered", 0)]
    );
    assert_eq!((f[0].index, f[1].index), (5, 6));
}

#[test]
fn vduse_fields() {
    let mut v = Validator::new(Profile::Spec);
    let mut req = vq_request(1, 2);
    req[16] = 1;
    only(&vduse(&mut v, 0, C2S, &req), "vduse-reserved", 16);
    only(
        &vduse(&mut v, 1, S2C, &vq_response(1, 2, 2)),
        "vduse-result",
        4,
    );
    none(&vduse(&mut v, 2, C2S, &vq_request(2, 2)));
    only(
        &vduse(&mut v, 3, S2C, &vq_response(2, 0, 3)),
        "vduse-vq-index",
        24,
    );
    let mut req = vq_request(3, 2);
    req[24 + 40] = 1;
    only(&vduse(&mut v, 4, C2S, &req), "vduse-union-padding", 64);
    let mut resp = vq_response(3, 0, 2);
    resp[24 + 12] = 1;
    only(&vduse(&mut v, 5, S2C, &resp), "vduse-union-padding", 36);
    let mut unknown = vq_request(4, 0);
    unknown[0] = 9;
    let f = vduse(&mut v, 6, C2S, &unknown);
    only(&f, "vduse-unknown-type", 0);
    assert_eq!(f[0].severity, Severity::Info);
    only(
        &vduse(&mut v, 7, C2S, &[0u8; 100]),
        "decode/vduse-size",
        100,
    );
    let f = v.check_event(&Event {
        conn: 3,
        index: 8,
        direction: C2S,
        protocol: Protocol::Vduse,
        fds: 0,
        truncated: true,
        bytes: &[0; 40],
    });
    only(&f, "truncated-message", 40);
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
    none(&s.c(&m(2, 0x11000)));
    none(&s.s(&enc(rep(1, Command::DMA_MAP), Body::Empty)));
    only(
        &s.s(&enc(rep(2, Command::DMA_MAP), Body::Empty)),
        "dma-map-overlap-reply",
        0,
    );
}
