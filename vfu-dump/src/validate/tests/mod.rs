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

mod dma;
mod layout;
mod migration;
mod order;
mod regions;
mod session;
mod vduse;
mod version;

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

/// A DEVICE_FEATURE command.
fn feat(id: u16, h: DeviceFeature, data: FeatureData<'_>) -> Vec<u8> {
    enc(
        cmd(id, Command::DEVICE_FEATURE),
        Body::DeviceFeature { head: &h, data },
    )
}

/// A DEVICE_FEATURE reply.
fn feat_rep(id: u16, h: DeviceFeature, data: FeatureData<'_>) -> Vec<u8> {
    enc(
        rep(id, Command::DEVICE_FEATURE),
        Body::DeviceFeature { head: &h, data },
    )
}

/// MIG_DEVICE_STATE SET to `state` and its success reply; their findings.
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
