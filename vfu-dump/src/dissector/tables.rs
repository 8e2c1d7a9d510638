//! What follows the header of each message, as data: the table the generated dissector interprets.
//!
//! [`VFIO_USER_BODIES`] says, for every command and for its request and its reply, which structs and
//! data runs follow the 16-byte header, in wire order, with the conditions and counts that choose
//! them. It mirrors `vfu_codec::message::decode_body` (and `Message::for_each_part` for the order of
//! the parts) step for step; the unit tests in `dissector/tests.rs` walk every corpus message with this
//! table and compare the parts and the decode errors with the codec's own, so a change on one side
//! that is not made on the other fails `cargo test`. [`VDUSE`] does the same for the VDUSE union.
//!
//! No field is named here: structs are [`Layout`]s from the codec and fields are located with
//! `offset_of!` on the codec's own struct types ([`FieldRef`]), so a renamed or moved field fails to
//! compile; masks, feature numbers, capability ids and command numbers are the codec's constants.
//!
//! The codec could own this table (a `BODY_LAYOUTS` constant that `decode_body` itself reads); until it
//! does, it lives here.

use vfu_codec::vduse::{
    VDUSE_GET_VQ_STATE, VDUSE_MSG_SIZE, VDUSE_PAYLOAD_OFFSET, VDUSE_REQ_RESULT_OK,
    VDUSE_SET_STATUS, VDUSE_SET_VQ_GROUP_ASID, VDUSE_UPDATE_IOTLB, VduseDevRequest,
    VduseDevResponse, VduseDevStatus, VduseIovaRange, VduseVqGroupAsid, VduseVqState,
    VduseVqStatePacked, VduseVqStateSplit,
};
use vfu_codec::vfio::caps::Version;
use vfu_codec::vfio::device::{
    CapHeader, CapSparseMmap, CapSparseMmapFds, CapType, DeviceInfo, IoFdEntry, IoFdShadowEntry,
    IrqInfo, IrqSet, MAX_REGION_CAPS, RegionInfo, RegionIoFds, SparseMmapArea, SparseMmapFdArea,
    VFIO_IRQ_SET_DATA_BOOL, VFIO_REGION_INFO_CAP_SPARSE_MMAP, VFIO_REGION_INFO_CAP_SPARSE_MMAP_FDS,
    VFIO_REGION_INFO_CAP_TYPE, VFIO_REGION_INFO_FLAG_CAPS,
};
use vfu_codec::vfio::dma::{DirtyBitmap, DmaMap, DmaUnmap, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP};
use vfu_codec::vfio::feature::{
    DeviceFeature, DirtyPages, DirtyPagesRange, DmaLoggingControl, DmaLoggingRange,
    DmaLoggingReport, FeatureMigState, FeatureMigration, MigData, PrecopyInfo,
    VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
    VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, VFIO_DEVICE_FEATURE_MASK,
    VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, VFIO_DEVICE_FEATURE_MIGRATION,
    VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
};
use vfu_codec::vfio::rw::{DmaAccess, RegionAccess, RegionWriteEntry, RegionWriteMulti};
use vfu_codec::wire::{Layout, WireStruct};
use vfu_codec::{Command, DataKind, Header};

/// One field of a wire struct: the struct's layout and the field's byte offset in it (found with
/// `offset_of!`, so the reference is checked by the compiler). [`FieldRef::field`] finds the table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldRef {
    /// The struct.
    pub layout: Layout,
    /// The field's offset within it.
    pub offset: usize,
}

impl FieldRef {
    /// The field-table entry at this offset.
    pub fn field(&self) -> Option<&'static vfu_codec::wire::Field> {
        self.layout.fields.iter().find(|f| f.offset == self.offset)
    }
}

/// A [`FieldRef`] to `$field` of the wire struct `$ty`.
macro_rules! field {
    ($ty:ty, $field:ident) => {
        FieldRef {
            layout: Layout::of::<$ty>(),
            offset: ::core::mem::offset_of!($ty, $field),
        }
    };
}

/// One step of walking a message body. Every step starts where the previous one ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// One struct; a payload too short for it is `short-body`.
    Struct(Layout),
    /// `count` structs, the count read from a field decoded earlier; too few bytes is
    /// `count-exceeds-payload`.
    Array {
        /// The element.
        elem: Layout,
        /// The field holding the number of elements.
        count: FieldRef,
    },
    /// A run of bytes whose length is a field decoded earlier (empty runs are not shown); too few bytes
    /// is `count-exceeds-payload`.
    Data {
        /// What the bytes are.
        kind: DataKind,
        /// The field holding the length.
        len: FieldRef,
    },
    /// Every byte left in the message, when there is any.
    Rest(DataKind),
    /// Ends the body (everything after is trailing) when no payload byte is left: the header-only
    /// replies some implementations send in place of an echo.
    StopIfEmpty,
    /// `then` when any bit of `mask` is set in `field`.
    IfFlag {
        /// The flags field.
        field: FieldRef,
        /// The bits.
        mask: u64,
        /// The steps to run.
        then: &'static [Step],
    },
    /// The steps when payload bytes are left.
    IfNonEmpty(&'static [Step]),
    /// The first case whose values hold `field & mask`, else `default`.
    Switch {
        /// The field.
        field: FieldRef,
        /// The bits that select.
        mask: u64,
        /// The cases.
        cases: &'static [Case],
        /// When no case matches.
        default: &'static [Step],
    },
    /// VERSION's capabilities: the rest of the payload must be empty, or JSON text ending in one NUL
    /// (`version-json-not-terminated`, `version-json-syntax`, `version-json-too-large`).
    Json,
    /// A region-info reply's capability area: the chain from `first` when `flags` has `caps_flag`,
    /// checked as the codec's `CapIter` checks it, each capability shown by its id; else bytes.
    RegionCaps(&'static RegionCaps),
    /// IO_FDS reply entries (when any bytes are left): `count` entries of the layout whose size is
    /// `(argsz - head) / count`, else `bytes left / count` (`io-fds-stride`, `short-body`).
    IoFdEntries {
        /// The head before the entries (its size is subtracted from `argsz`).
        head: Layout,
        /// The `argsz` field.
        argsz: FieldRef,
        /// The `count` field.
        count: FieldRef,
        /// The entry layouts, told apart by size.
        entries: &'static [Layout],
    },
    /// The DMA_LOGGING_REPORT reply bitmap: `ceil(ceil(length / page_size) / 64) * 8` bytes when that
    /// many are left, else every byte left.
    ReportBitmap {
        /// The range length.
        length: FieldRef,
        /// The page size.
        page_size: FieldRef,
    },
}

/// A case of [`Step::Switch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    /// The values that select it.
    pub values: &'static [u64],
    /// Its steps.
    pub steps: &'static [Step],
}

/// How to walk a region capability chain (vfio-user spec §2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionCaps {
    /// The fixed part; capability offsets count from the payload start, so they are at least its size.
    pub info: Layout,
    /// Its flags field.
    pub flags: FieldRef,
    /// The flag that says a chain is present.
    pub caps_flag: u64,
    /// The field holding the first capability's payload offset (0 = none).
    pub first: FieldRef,
    /// A capability's `id`.
    pub id: FieldRef,
    /// A capability's `next`.
    pub next: FieldRef,
    /// The capabilities known by id.
    pub kinds: &'static [CapKind],
    /// Capabilities past this many are a loop.
    pub max: usize,
}

/// One known capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapKind {
    /// Its id.
    pub id: u64,
    /// Its fixed part.
    pub head: Layout,
    /// Areas that follow: the count field (in `head`) and the area layout.
    pub areas: Option<(FieldRef, Layout)>,
}

/// The body of one command, as a request and as a reply (not an error reply: its payload is trailing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyRule {
    /// The command.
    pub command: Command,
    /// The request's steps.
    pub request: &'static [Step],
    /// The reply's steps.
    pub reply: &'static [Step],
}

const fn st<T: WireStruct>() -> Step {
    Step::Struct(Layout::of::<T>())
}

const fn data(kind: DataKind, len: FieldRef) -> Step {
    Step::Data { kind, len }
}

const VERSION: &[Step] = &[st::<Version>(), Step::Json];
const DMA_MAP: &[Step] = &[st::<DmaMap>()];
const DMA_UNMAP_REQUEST: &[Step] = &[
    st::<DmaUnmap>(),
    Step::IfFlag {
        field: field!(DmaUnmap, flags),
        mask: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP as u64,
        then: &[st::<DirtyBitmap>()],
    },
];
const DMA_UNMAP_REPLY: &[Step] = &[
    st::<DmaUnmap>(),
    Step::IfFlag {
        field: field!(DmaUnmap, flags),
        mask: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP as u64,
        then: &[
            st::<DirtyBitmap>(),
            data(DataKind::Bitmap, field!(DirtyBitmap, size)),
        ],
    },
];
const DEVICE_GET_INFO: &[Step] = &[st::<DeviceInfo>()];
const REGION_INFO_REQUEST: &[Step] = &[st::<RegionInfo>(), Step::Rest(DataKind::CapArea)];
const REGION_CAPS: RegionCaps = RegionCaps {
    info: Layout::of::<RegionInfo>(),
    flags: field!(RegionInfo, flags),
    caps_flag: VFIO_REGION_INFO_FLAG_CAPS as u64,
    first: field!(RegionInfo, cap_offset),
    id: field!(CapHeader, id),
    next: field!(CapHeader, next),
    kinds: &[
        CapKind {
            id: VFIO_REGION_INFO_CAP_SPARSE_MMAP as u64,
            head: Layout::of::<CapSparseMmap>(),
            areas: Some((
                field!(CapSparseMmap, nr_areas),
                Layout::of::<SparseMmapArea>(),
            )),
        },
        CapKind {
            id: VFIO_REGION_INFO_CAP_TYPE as u64,
            head: Layout::of::<CapType>(),
            areas: None,
        },
        CapKind {
            id: VFIO_REGION_INFO_CAP_SPARSE_MMAP_FDS as u64,
            head: Layout::of::<CapSparseMmapFds>(),
            areas: Some((
                field!(CapSparseMmapFds, nr_areas),
                Layout::of::<SparseMmapFdArea>(),
            )),
        },
    ],
    max: MAX_REGION_CAPS,
};
/// The layout a capability with an id not in [`RegionCaps::kinds`] is shown as.
pub const UNKNOWN_CAP: Layout = Layout::of::<CapHeader>();
const REGION_INFO_REPLY: &[Step] = &[st::<RegionInfo>(), Step::RegionCaps(&REGION_CAPS)];
const IO_FDS_REQUEST: &[Step] = &[st::<RegionIoFds>()];
const IO_FDS_REPLY: &[Step] = &[
    st::<RegionIoFds>(),
    Step::IoFdEntries {
        head: Layout::of::<RegionIoFds>(),
        argsz: field!(RegionIoFds, argsz),
        count: field!(RegionIoFds, count),
        entries: &[Layout::of::<IoFdEntry>(), Layout::of::<IoFdShadowEntry>()],
    },
];
const IRQ_INFO: &[Step] = &[st::<IrqInfo>()];
const SET_IRQS_REQUEST: &[Step] = &[
    st::<IrqSet>(),
    Step::IfFlag {
        field: field!(IrqSet, flags),
        mask: VFIO_IRQ_SET_DATA_BOOL as u64,
        then: &[data(DataKind::Data, field!(IrqSet, count))],
    },
];
const REGION_ACCESS: &[Step] = &[st::<RegionAccess>()];
const REGION_ACCESS_DATA: &[Step] = &[
    st::<RegionAccess>(),
    data(DataKind::Data, field!(RegionAccess, count)),
];
const REGION_READ_REPLY: &[Step] = &[
    Step::StopIfEmpty,
    st::<RegionAccess>(),
    data(DataKind::Data, field!(RegionAccess, count)),
];
const REGION_WRITE_REPLY: &[Step] = &[Step::StopIfEmpty, st::<RegionAccess>()];
const DMA_ACCESS: &[Step] = &[st::<DmaAccess>()];
const DMA_ACCESS_DATA: &[Step] = &[
    st::<DmaAccess>(),
    data(DataKind::Data, field!(DmaAccess, count)),
];
const DMA_WRITE_REPLY: &[Step] = &[Step::StopIfEmpty, st::<DmaAccess>()];
const DIRTY_PAGES_REQUEST: &[Step] = &[
    st::<DirtyPages>(),
    Step::IfFlag {
        field: field!(DirtyPages, flags),
        mask: VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP as u64,
        then: &[st::<DirtyPagesRange>()],
    },
];
const DIRTY_PAGES_REPLY: &[Step] = &[
    st::<DirtyPages>(),
    Step::IfFlag {
        field: field!(DirtyPages, flags),
        mask: VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP as u64,
        then: &[
            st::<DirtyPagesRange>(),
            data(DataKind::Bitmap, field!(DirtyPagesRange, bitmap_size)),
        ],
    },
];
const WRITE_MULTI_REQUEST: &[Step] = &[
    st::<RegionWriteMulti>(),
    Step::Array {
        elem: Layout::of::<RegionWriteEntry>(),
        count: field!(RegionWriteMulti, wr_cnt),
    },
];
const WRITE_MULTI_REPLY: &[Step] = &[st::<RegionWriteMulti>()];
const FEATURE_COMMON: &[Case] = &[
    Case {
        values: &[VFIO_DEVICE_FEATURE_MIGRATION as u64],
        steps: &[st::<FeatureMigration>()],
    },
    Case {
        values: &[VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE as u64],
        steps: &[st::<FeatureMigState>()],
    },
    Case {
        values: &[
            VFIO_DEVICE_FEATURE_DMA_LOGGING_START as u64,
            VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP as u64,
        ],
        steps: &[
            st::<DmaLoggingControl>(),
            Step::Array {
                elem: Layout::of::<DmaLoggingRange>(),
                count: field!(DmaLoggingControl, num_ranges),
            },
        ],
    },
];
const fn feature(report: &'static [Step]) -> [Case; 4] {
    [
        FEATURE_COMMON[0],
        FEATURE_COMMON[1],
        FEATURE_COMMON[2],
        Case {
            values: &[VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT as u64],
            steps: report,
        },
    ]
}
const FEATURE_REQUEST_CASES: [Case; 4] = feature(&[st::<DmaLoggingReport>()]);
const FEATURE_REPLY_CASES: [Case; 4] = feature(&[
    st::<DmaLoggingReport>(),
    Step::ReportBitmap {
        length: field!(DmaLoggingReport, length),
        page_size: field!(DmaLoggingReport, page_size),
    },
]);
const DEVICE_FEATURE_REQUEST: &[Step] = &[
    st::<DeviceFeature>(),
    Step::IfNonEmpty(&[Step::Switch {
        field: field!(DeviceFeature, flags),
        mask: VFIO_DEVICE_FEATURE_MASK as u64,
        cases: &FEATURE_REQUEST_CASES,
        default: &[Step::Rest(DataKind::Raw)],
    }]),
];
const DEVICE_FEATURE_REPLY: &[Step] = &[
    st::<DeviceFeature>(),
    Step::IfNonEmpty(&[Step::Switch {
        field: field!(DeviceFeature, flags),
        mask: VFIO_DEVICE_FEATURE_MASK as u64,
        cases: &FEATURE_REPLY_CASES,
        default: &[Step::Rest(DataKind::Raw)],
    }]),
];
const MIG_DATA: &[Step] = &[st::<MigData>()];
const MIG_DATA_DATA: &[Step] = &[st::<MigData>(), data(DataKind::Data, field!(MigData, size))];
const MIG_DATA_WRITE_REPLY: &[Step] = &[Step::StopIfEmpty, st::<MigData>()];
const PRECOPY_INFO: &[Step] = &[st::<PrecopyInfo>()];

/// The body of every known command (mirrors `decode_body` in `vfu_codec::message`).
pub const VFIO_USER_BODIES: &[BodyRule] = &[
    BodyRule {
        command: Command::VERSION,
        request: VERSION,
        reply: VERSION,
    },
    BodyRule {
        command: Command::DMA_MAP,
        request: DMA_MAP,
        reply: &[],
    },
    BodyRule {
        command: Command::DMA_UNMAP,
        request: DMA_UNMAP_REQUEST,
        reply: DMA_UNMAP_REPLY,
    },
    BodyRule {
        command: Command::DEVICE_GET_INFO,
        request: DEVICE_GET_INFO,
        reply: DEVICE_GET_INFO,
    },
    BodyRule {
        command: Command::DEVICE_GET_REGION_INFO,
        request: REGION_INFO_REQUEST,
        reply: REGION_INFO_REPLY,
    },
    BodyRule {
        command: Command::DEVICE_GET_REGION_IO_FDS,
        request: IO_FDS_REQUEST,
        reply: IO_FDS_REPLY,
    },
    BodyRule {
        command: Command::DEVICE_GET_IRQ_INFO,
        request: IRQ_INFO,
        reply: IRQ_INFO,
    },
    BodyRule {
        command: Command::DEVICE_SET_IRQS,
        request: SET_IRQS_REQUEST,
        reply: &[],
    },
    BodyRule {
        command: Command::REGION_READ,
        request: REGION_ACCESS,
        reply: REGION_READ_REPLY,
    },
    BodyRule {
        command: Command::REGION_WRITE,
        request: REGION_ACCESS_DATA,
        reply: REGION_WRITE_REPLY,
    },
    BodyRule {
        command: Command::DMA_READ,
        request: DMA_ACCESS,
        reply: DMA_ACCESS_DATA,
    },
    BodyRule {
        command: Command::DMA_WRITE,
        request: DMA_ACCESS_DATA,
        reply: DMA_WRITE_REPLY,
    },
    BodyRule {
        command: Command::DEVICE_RESET,
        request: &[],
        reply: &[],
    },
    BodyRule {
        command: Command::DIRTY_PAGES,
        request: DIRTY_PAGES_REQUEST,
        reply: DIRTY_PAGES_REPLY,
    },
    BodyRule {
        command: Command::REGION_WRITE_MULTI,
        request: WRITE_MULTI_REQUEST,
        reply: WRITE_MULTI_REPLY,
    },
    BodyRule {
        command: Command::DEVICE_FEATURE,
        request: DEVICE_FEATURE_REQUEST,
        reply: DEVICE_FEATURE_REPLY,
    },
    BodyRule {
        command: Command::MIG_DATA_READ,
        request: MIG_DATA,
        reply: MIG_DATA_DATA,
    },
    BodyRule {
        command: Command::MIG_DATA_WRITE,
        request: MIG_DATA_DATA,
        reply: MIG_DATA_WRITE_REPLY,
    },
    BodyRule {
        command: Command::GET_PRECOPY_INFO,
        request: PRECOPY_INFO,
        reply: PRECOPY_INFO,
    },
];

/// The body of a command not in [`VFIO_USER_BODIES`]: the payload, uninterpreted.
pub const UNKNOWN_BODY: &[Step] = &[Step::Rest(DataKind::Raw)];

/// The header's layout.
pub const HEADER: Layout = Layout::of::<Header>();

/// Header fields with a short display-filter name (`vfio_user.id` …), and that name: the key
/// `vfu-dump read --format json` gives the field.
pub const HEADER_ALIASES: &[(FieldRef, &str)] = &[
    (field!(Header, msg_id), "id"),
    (field!(Header, command), "cmd"),
    (field!(Header, msg_size), "size"),
    (field!(Header, flags), "flags"),
    (field!(Header, error_no), "errno"),
];

/// The header fields the dissector's logic reads.
pub struct HeaderFields {
    /// `msg_id`.
    pub id: FieldRef,
    /// `command`.
    pub command: FieldRef,
    /// `msg_size`.
    pub size: FieldRef,
    /// `flags`.
    pub flags: FieldRef,
    /// `error_no`.
    pub errno: FieldRef,
}

/// See [`HeaderFields`].
pub const HEADER_FIELDS: HeaderFields = HeaderFields {
    id: field!(Header, msg_id),
    command: field!(Header, command),
    size: field!(Header, msg_size),
    flags: field!(Header, flags),
    errno: field!(Header, error_no),
};

/// How VDUSE messages are laid out: one 152-byte struct per direction, and a union at a fixed offset
/// whose member is chosen by the request type (mirrors `VduseDevRequest::body` and
/// `VduseDevResponse::body`).
pub struct VduseRules {
    /// Bytes in every request and response.
    pub msg_size: usize,
    /// Kernel to daemon.
    pub request: Layout,
    /// Daemon to kernel.
    pub response: Layout,
    /// The request's type.
    pub req_type: FieldRef,
    /// The request's id.
    pub request_id: FieldRef,
    /// The response's copy of it.
    pub response_id: FieldRef,
    /// The response's result.
    pub result: FieldRef,
    /// The result that means success.
    pub result_ok: u32,
    /// Offset of the union.
    pub union_offset: usize,
    /// Request type → the request's union member.
    pub request_members: &'static [(u64, Layout)],
    /// Type of the request answered → the response's union member.
    pub response_members: &'static [(u64, Layout)],
    /// Byte fields that are themselves unions, and the views to show them as.
    pub views: &'static [(FieldRef, &'static [Layout])],
}

/// See [`VduseRules`].
pub const VDUSE: VduseRules = VduseRules {
    msg_size: VDUSE_MSG_SIZE,
    request: Layout::of::<VduseDevRequest>(),
    response: Layout::of::<VduseDevResponse>(),
    req_type: field!(VduseDevRequest, req_type),
    request_id: field!(VduseDevRequest, request_id),
    response_id: field!(VduseDevResponse, request_id),
    result: field!(VduseDevResponse, result),
    result_ok: VDUSE_REQ_RESULT_OK,
    union_offset: VDUSE_PAYLOAD_OFFSET,
    request_members: &[
        (VDUSE_GET_VQ_STATE as u64, Layout::of::<VduseVqState>()),
        (VDUSE_SET_STATUS as u64, Layout::of::<VduseDevStatus>()),
        (VDUSE_UPDATE_IOTLB as u64, Layout::of::<VduseIovaRange>()),
        (
            VDUSE_SET_VQ_GROUP_ASID as u64,
            Layout::of::<VduseVqGroupAsid>(),
        ),
    ],
    response_members: &[(VDUSE_GET_VQ_STATE as u64, Layout::of::<VduseVqState>())],
    views: &[(
        field!(VduseVqState, state),
        &[
            Layout::of::<VduseVqStateSplit>(),
            Layout::of::<VduseVqStatePacked>(),
        ],
    )],
};

/// Every [`DataKind`], for generators; the match keeps the list complete.
pub const DATA_KINDS: &[DataKind] = &[
    DataKind::Data,
    DataKind::Json,
    DataKind::Nul,
    DataKind::Bitmap,
    DataKind::CapArea,
    DataKind::Raw,
    DataKind::Trailing,
];

/// A description of each data kind, and the word `vfu-dump read` uses for it in a one-line summary
/// (`render::key_fields`; `None` when the summary leaves it out).
pub const fn data_kind_text(kind: DataKind) -> (&'static str, Option<&'static str>) {
    match kind {
        DataKind::Data => (
            "Data being transferred (region, DMA, migration data, DATA_BOOL bytes)",
            Some("data"),
        ),
        DataKind::Json => (
            "VERSION capabilities JSON text (without the NUL)",
            Some("caps"),
        ),
        DataKind::Nul => ("The NUL that terminates the capabilities JSON", None),
        DataKind::Bitmap => ("A dirty bitmap", Some("bitmap")),
        DataKind::CapArea => (
            "Region-info capability area bytes outside any capability",
            Some("cap_area"),
        ),
        DataKind::Raw => (
            "An unknown command's payload, or unknown feature data",
            Some("raw"),
        ),
        DataKind::Trailing => ("Bytes after the body", Some("trailing")),
    }
}
