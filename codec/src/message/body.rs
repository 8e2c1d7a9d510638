//! The decoded form of a message: [`Message`], its [`Body`] chosen by command and type, and the
//! [`Direction`] it travelled.

use crate::header::{Command, HEADER_SIZE, Header, MessageType};
use crate::vfio::caps::Version;
use crate::vfio::device::{
    CapIter, DeviceInfo, IoFdEntries, IrqInfo, IrqSet, RegionInfo, RegionIoFds,
    VFIO_REGION_INFO_FLAG_CAPS,
};
use crate::vfio::dma::{DirtyBitmap, DmaMap, DmaUnmap};
use crate::vfio::feature::{
    DeviceFeature, DirtyPages, DirtyPagesRange, DmaLoggingControl, DmaLoggingRange,
    DmaLoggingReport, FeatureMigState, FeatureMigration, MigData, PrecopyInfo,
};
use crate::vfio::rw::{DmaAccess, RegionAccess, RegionWriteEntry, RegionWriteMulti};

/// Which way a message travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client (VMM) to server (device); for VDUSE, kernel to daemon.
    ClientToServer,
    /// Server to client; for VDUSE, daemon to kernel.
    ServerToClient,
}

impl Direction {
    /// The other direction.
    pub fn reverse(self) -> Self {
        match self {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        }
    }

    /// `"c2s"` or `"s2c"`.
    pub fn short(self) -> &'static str {
        match self {
            Direction::ClientToServer => "c2s",
            Direction::ServerToClient => "s2c",
        }
    }
}

/// The data of a DEVICE_FEATURE message after its 8-byte head, typed by feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureData<'a> {
    /// No data (a GET request of MIGRATION, PROBE, or an empty DMA_LOGGING_STOP).
    None,
    /// MIGRATION reply: the supported flags.
    Migration(&'a FeatureMigration),
    /// MIG_DEVICE_STATE: a requested, echoed or current state.
    MigState(&'a FeatureMigState),
    /// DMA_LOGGING_START/STOP control and its ranges.
    LoggingControl {
        /// The control block.
        control: &'a DmaLoggingControl,
        /// `num_ranges` ranges.
        ranges: &'a [DmaLoggingRange],
    },
    /// DMA_LOGGING_REPORT: the range and, in a reply, its bitmap.
    LoggingReport {
        /// The report head.
        report: &'a DmaLoggingReport,
        /// The bitmap (empty in a request).
        bitmap: &'a [u8],
    },
    /// An unknown feature: raw bytes.
    Raw(&'a [u8]),
}

/// VERSION body: the fixed part and the capabilities JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionBody<'a> {
    /// Major and minor.
    pub version: &'a Version,
    /// The JSON text without its terminating NUL; `None` when the payload is only the 4 fixed bytes.
    pub json: Option<&'a [u8]>,
}

impl<'a> VersionBody<'a> {
    /// A VERSION body: the fixed part and, when given, the capabilities JSON text without its NUL (the
    /// encoder adds it); see [`Capabilities::emit`](crate::vfio::caps::Capabilities::emit).
    pub fn new(version: &'a Version, json: Option<&'a [u8]>) -> Self {
        VersionBody { version, json }
    }
}

/// The body of a message, chosen by its command and type.
///
/// Decoding gives the variant the header calls for ([`decode`](crate::decode)); encoding takes any
/// body that [belongs](Self::belongs_to) to the header. Fixed parts are references to wire structs,
/// variable parts slices.
///
/// ```
/// use vfu_codec::{decode, encode, Body, Command, Direction, Header};
/// use vfu_codec::vfio::{IrqSet, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_BOOL};
///
/// // Trigger vectors 0 and 2 of MSI-X (index 2) with DATA_BOOL: the bools follow the fixed part.
/// let set = IrqSet::new(VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, 2, 0, 3);
/// let mut buf = [0u8; 64];
/// let n = encode(&Header::command(9, Command::DEVICE_SET_IRQS), &Body::SetIrqs { set: &set, data: &[1, 0, 1] }, &mut buf)?;
///
/// match decode(&buf[..n], Direction::ClientToServer).unwrap().body {
///     Body::SetIrqs { set, data } => {
///         assert_eq!((set.index.get(), set.count.get(), set.argsz.get()), (2, 3, 23));
///         assert_eq!(data, &[1, 0, 1]);
///     }
///     Body::Error => unreachable!("only replies are errors"),
///     other => panic!("{} body", other.name()),
/// }
/// # Ok::<(), vfu_codec::EncodeError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body<'a> {
    /// No payload: DEVICE_RESET, and the replies of DMA_MAP, SET_IRQS and MIG_DATA_WRITE; also the
    /// header-only replies that implementations send in place of an echo (see [`decode`](crate::decode)).
    Empty,
    /// An error reply (ERROR set). Any payload is left in [`Message::trailing`].
    Error,
    /// VERSION request or reply (§2.1).
    Version(VersionBody<'a>),
    /// DMA_MAP request (§2.2).
    DmaMap(&'a DmaMap),
    /// DMA_UNMAP request or reply (§2.3), with the legacy dirty bitmap when GET_DIRTY_BITMAP is set.
    DmaUnmap {
        /// The unmap entry.
        unmap: &'a DmaUnmap,
        /// The bitmap header (GET_DIRTY_BITMAP only).
        bitmap: Option<&'a DirtyBitmap>,
        /// The bitmap bytes (reply with GET_DIRTY_BITMAP only).
        data: &'a [u8],
    },
    /// DEVICE_GET_INFO request or reply (§2.4).
    DeviceInfo(&'a DeviceInfo),
    /// DEVICE_GET_REGION_INFO request or reply (§2.5).
    RegionInfo {
        /// The fixed part.
        info: &'a RegionInfo,
        /// Payload bytes after the fixed part (the capability area of a reply; see [`Body::region_caps`]).
        caps: &'a [u8],
    },
    /// DEVICE_GET_REGION_IO_FDS request or reply (§2.6).
    RegionIoFds {
        /// The head.
        head: &'a RegionIoFds,
        /// Reply entries (empty in a request, or when the reply was cut to the head).
        entries: IoFdEntries<'a>,
    },
    /// DEVICE_GET_IRQ_INFO request or reply (§2.7).
    IrqInfo(&'a IrqInfo),
    /// DEVICE_SET_IRQS request (§2.8).
    SetIrqs {
        /// The fixed part.
        set: &'a IrqSet,
        /// DATA_BOOL bytes (`count` of them); empty otherwise.
        data: &'a [u8],
    },
    /// REGION_READ or REGION_WRITE, request or reply (§2.9, §2.10).
    RegionRw {
        /// The head.
        access: &'a RegionAccess,
        /// `count` data bytes (WRITE request, READ reply); empty otherwise.
        data: &'a [u8],
    },
    /// DMA_READ or DMA_WRITE, request or reply (§2.11, §2.12).
    DmaRw {
        /// The head.
        access: &'a DmaAccess,
        /// `count` data bytes (WRITE request, READ reply); empty otherwise.
        data: &'a [u8],
    },
    /// REGION_WRITE_MULTI request or reply (§2.14).
    WriteMulti {
        /// `wr_cnt`.
        head: &'a RegionWriteMulti,
        /// The writes (request only).
        entries: &'a [RegionWriteEntry],
    },
    /// DEVICE_FEATURE request or reply (§2.15).
    DeviceFeature {
        /// argsz and flags.
        head: &'a DeviceFeature,
        /// The feature data.
        data: FeatureData<'a>,
    },
    /// MIG_DATA_READ or MIG_DATA_WRITE, request or reply (§2.16, §2.17).
    MigData {
        /// argsz and size.
        head: &'a MigData,
        /// `size` data bytes (READ reply, WRITE request); empty otherwise.
        data: &'a [u8],
    },
    /// GET_PRECOPY_INFO request or reply \[pending\] (§2.18).
    PrecopyInfo(&'a PrecopyInfo),
    /// Legacy DIRTY_PAGES request or reply (§4).
    DirtyPages {
        /// argsz and flags.
        head: &'a DirtyPages,
        /// The range (GET_BITMAP only).
        range: Option<&'a DirtyPagesRange>,
        /// The bitmap (GET_BITMAP reply only).
        bitmap: &'a [u8],
    },
    /// A command this crate does not know: the payload, uninterpreted.
    Unknown(&'a [u8]),
}

/// A decoded vfio-user message: a view over the bytes given to [`decode`](crate::decode), which it
/// borrows.
///
/// ```
/// use vfu_codec::{decode, encode_exact, Body, Command, DataKind, Direction, Header, Part};
/// use vfu_codec::vfio::RegionAccess;
///
/// // A REGION_READ reply carrying 4 bytes of BAR0, plus 2 bytes of padding a peer added.
/// let access = RegionAccess::new(0, 0x10, 4);
/// let mut buf = [0u8; 64];
/// let body = Body::RegionRw { access: &access, data: &[1, 2, 3, 4] };
/// let n = encode_exact(&Header::reply(3, Command::REGION_READ), &body, &[0, 0], &mut buf)?;
///
/// let msg = decode(&buf[..n], Direction::ServerToClient).unwrap();
/// assert_eq!(msg.command(), Command::REGION_READ);
/// assert!(msg.is_reply());
/// assert_eq!(msg.header.msg_id.get(), 3);
/// assert_eq!(msg.trailing, &[0, 0]); // what the body does not account for
///
/// // Its parts in wire order, each with its message offset: header, head, data, trailing bytes.
/// let mut parts = Vec::new();
/// msg.for_each_part(|p| parts.push(match p {
///     Part::Struct { layout, offset, .. } => (layout.name, offset),
///     Part::Data { kind: DataKind::Data, offset, .. } => ("data", offset),
///     Part::Data { offset, .. } => ("other", offset),
/// }));
/// assert_eq!(parts, [("Header", 0), ("RegionAccess", 16), ("data", 32), ("other", 36)]);
/// # Ok::<(), vfu_codec::EncodeError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Which way it travelled (as given to [`decode`](crate::decode)).
    pub direction: Direction,
    /// The header.
    pub header: &'a Header,
    /// The body for its command and type.
    pub body: Body<'a>,
    /// Payload bytes after the body: padding some implementations add, or an error reply's payload.
    pub trailing: &'a [u8],
}

impl<'a> Message<'a> {
    /// The command.
    pub fn command(&self) -> Command {
        self.header.cmd()
    }

    /// Whether this is a reply.
    pub fn is_reply(&self) -> bool {
        self.header.is_reply()
    }
}

impl<'a> Body<'a> {
    /// The capability chain of a DEVICE_GET_REGION_INFO reply (empty unless CAPS is set).
    #[inline]
    pub fn region_caps(&self) -> Option<CapIter<'a>> {
        match *self {
            Body::RegionInfo { info, caps } => {
                let first = if info.flags.get() & VFIO_REGION_INFO_FLAG_CAPS != 0 {
                    info.cap_offset.get()
                } else {
                    0
                };
                Some(CapIter::new(caps, first, HEADER_SIZE))
            }
            _ => None,
        }
    }

    /// The variant's name (`"DmaMap"`, `"RegionRw"`), as [`EncodeError::BodyMismatch`] names it.
    ///
    /// [`EncodeError::BodyMismatch`]: crate::error::EncodeError::BodyMismatch
    pub fn name(&self) -> &'static str {
        match self {
            Body::Empty => "Empty",
            Body::Error => "Error",
            Body::Version(_) => "Version",
            Body::DmaMap(_) => "DmaMap",
            Body::DmaUnmap { .. } => "DmaUnmap",
            Body::DeviceInfo(_) => "DeviceInfo",
            Body::RegionInfo { .. } => "RegionInfo",
            Body::RegionIoFds { .. } => "RegionIoFds",
            Body::IrqInfo(_) => "IrqInfo",
            Body::SetIrqs { .. } => "SetIrqs",
            Body::RegionRw { .. } => "RegionRw",
            Body::DmaRw { .. } => "DmaRw",
            Body::WriteMulti { .. } => "WriteMulti",
            Body::DeviceFeature { .. } => "DeviceFeature",
            Body::MigData { .. } => "MigData",
            Body::PrecopyInfo(_) => "PrecopyInfo",
            Body::DirtyPages { .. } => "DirtyPages",
            Body::Unknown(_) => "Unknown",
        }
    }

    /// Whether this body belongs to a message with `header`'s command and type: whether the decoder
    /// chooses this variant for such a message. The encoders refuse any other body
    /// ([`EncodeError::BodyMismatch`]), so that what they write decodes as what was given.
    ///
    /// - A typed body goes with its command, in both types, except [`Body::DmaMap`] and
    ///   [`Body::SetIrqs`], which are requests only (their replies are [`Body::Empty`]).
    /// - An error reply (type reply, ERROR set) takes [`Body::Error`] or [`Body::Empty`]: both write
    ///   no payload. [`Body::Error`] goes with nothing else.
    /// - [`Body::Empty`] also goes wherever the decoder accepts a message without payload:
    ///   DEVICE_RESET, the replies of DMA_MAP, DEVICE_SET_IRQS and MIG_DATA_WRITE, the header-only
    ///   replies of REGION_READ, REGION_WRITE and DMA_WRITE, a command number this crate does not
    ///   know, and a header whose type bits are neither command nor reply.
    /// - [`Body::Unknown`] is raw payload bytes and goes with any header: the way to write a payload
    ///   this crate has no type for, or a deliberately malformed one.
    ///
    /// ```
    /// use vfu_codec::{Body, Command, Header};
    /// use vfu_codec::vfio::DmaMap;
    ///
    /// let map = DmaMap::new(3, 0, 0x1_0000, 0x1000);
    /// assert!(Body::DmaMap(&map).belongs_to(&Header::command(1, Command::DMA_MAP)));
    /// assert!(!Body::DmaMap(&map).belongs_to(&Header::reply(1, Command::DMA_MAP)));
    /// assert!(!Body::DmaMap(&map).belongs_to(&Header::command(1, Command::VERSION)));
    /// assert!(Body::Empty.belongs_to(&Header::reply(1, Command::DMA_MAP)));
    /// assert!(Body::Empty.belongs_to(&Header::error_reply(1, Command::VERSION, 22)));
    /// ```
    ///
    /// [`EncodeError::BodyMismatch`]: crate::error::EncodeError::BodyMismatch
    #[inline]
    pub fn belongs_to(&self, header: &Header) -> bool {
        let cmd = header.cmd();
        let reply = match header.message_type() {
            Some(t) => t == MessageType::Reply,
            None => return matches!(self, Body::Empty | Body::Unknown(_)),
        };
        if reply && header.is_error() {
            return matches!(self, Body::Error | Body::Empty | Body::Unknown(_));
        }
        match self {
            Body::Unknown(_) => true,
            Body::Error => false,
            Body::Empty => match cmd {
                Command::DEVICE_RESET => true,
                Command::DMA_MAP
                | Command::DEVICE_SET_IRQS
                | Command::REGION_READ
                | Command::REGION_WRITE
                | Command::DMA_WRITE
                | Command::MIG_DATA_WRITE => reply,
                c => c.name().is_none(),
            },
            Body::Version(_) => cmd == Command::VERSION,
            Body::DmaMap(_) => cmd == Command::DMA_MAP && !reply,
            Body::DmaUnmap { .. } => cmd == Command::DMA_UNMAP,
            Body::DeviceInfo(_) => cmd == Command::DEVICE_GET_INFO,
            Body::RegionInfo { .. } => cmd == Command::DEVICE_GET_REGION_INFO,
            Body::RegionIoFds { .. } => cmd == Command::DEVICE_GET_REGION_IO_FDS,
            Body::IrqInfo(_) => cmd == Command::DEVICE_GET_IRQ_INFO,
            Body::SetIrqs { .. } => cmd == Command::DEVICE_SET_IRQS && !reply,
            Body::RegionRw { .. } => matches!(cmd, Command::REGION_READ | Command::REGION_WRITE),
            Body::DmaRw { .. } => matches!(cmd, Command::DMA_READ | Command::DMA_WRITE),
            Body::WriteMulti { .. } => cmd == Command::REGION_WRITE_MULTI,
            Body::DeviceFeature { .. } => cmd == Command::DEVICE_FEATURE,
            Body::MigData { .. } => {
                matches!(cmd, Command::MIG_DATA_READ | Command::MIG_DATA_WRITE)
            }
            Body::PrecopyInfo(_) => cmd == Command::GET_PRECOPY_INFO,
            Body::DirtyPages { .. } => cmd == Command::DIRTY_PAGES,
        }
    }
}
