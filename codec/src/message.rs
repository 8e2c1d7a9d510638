//! The decode entry point ([`decode`]) and the encoders ([`encode`], [`encode_exact`]).
//!
//! A [`Message`] is a view over one whole message: the header, the body chosen by command and type
//! ([`Body`]), and any bytes the body does not account for ([`Message::trailing`]). Fixed parts are
//! `&'a` references into the input (zero-copy); variable parts are sub-slices.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::error::{DecodeError, EncodeError, Rule};
use crate::header::{Command, HEADER_SIZE, Header, MessageType};
use crate::vfio::caps::{Version, check_capabilities};
use crate::vfio::device::{
    CapIter, DeviceInfo, IoFdEntries, IrqInfo, IrqSet, RegionInfo, RegionIoFds,
    VFIO_IRQ_SET_DATA_BOOL, VFIO_REGION_INFO_FLAG_CAPS,
};
use crate::vfio::dma::{DirtyBitmap, DmaMap, DmaUnmap, VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP};
use crate::vfio::feature::{
    DeviceFeature, DirtyPages, DirtyPagesRange, DmaLoggingControl, DmaLoggingRange,
    DmaLoggingReport, FeatureMigState, FeatureMigration, MigData, PrecopyInfo,
    VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
    VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
    VFIO_DEVICE_FEATURE_MIGRATION, VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
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

/// The body of a message, chosen by its command and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body<'a> {
    /// No payload: DEVICE_RESET, and the replies of DMA_MAP, SET_IRQS and MIG_DATA_WRITE; also the
    /// header-only replies that implementations send in place of an echo (see [`decode`]).
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

/// A decoded vfio-user message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Which way it travelled (as given to [`decode`]).
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
}

/// Reads a `T` at `at` in `payload`; errors name the message offset.
#[inline(always)]
fn take<'a, T: FromBytes + KnownLayout + Immutable>(
    payload: &'a [u8],
    at: usize,
    what: &'static str,
) -> Result<(&'a T, &'a [u8]), DecodeError> {
    let have = payload.len().saturating_sub(at);
    payload
        .get(at..)
        .and_then(|rest| T::ref_from_prefix(rest).ok())
        .ok_or(DecodeError::short(
            HEADER_SIZE + at,
            what,
            core::mem::size_of::<T>(),
            have,
        ))
}

/// Takes `n` elements of `T` at `at` in `payload`.
fn take_n<'a, T: FromBytes + Immutable>(
    payload: &'a [u8],
    at: usize,
    n: u64,
    field: &'static str,
) -> Result<(&'a [T], &'a [u8]), DecodeError> {
    let rest = payload.get(at..).unwrap_or(&[]);
    let fits = usize::try_from(n).ok().filter(|&n| {
        n.checked_mul(core::mem::size_of::<T>())
            .is_some_and(|b| b <= rest.len())
    });
    match fits.and_then(|n| <[T]>::ref_from_prefix_with_elems(rest, n).ok()) {
        Some(r) => Ok(r),
        None => Err(DecodeError::new(
            HEADER_SIZE + at,
            Rule::CountExceedsPayload {
                field,
                count: n,
                have: rest.len(),
            },
        )),
    }
}

/// Splits `n` data bytes at `at` in `payload`.
fn take_bytes<'a>(
    payload: &'a [u8],
    at: usize,
    n: u64,
    field: &'static str,
) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
    take_n::<u8>(payload, at, n, field)
}

/// Decodes one whole message: `bytes` must be exactly `msg_size` long (see [`crate::frame`] for streams).
///
/// The body is chosen by command and type; an error reply's body is [`Body::Error`]. Fixed parts are
/// checked to fit; counts are checked against the bytes present; the VERSION JSON and the region
/// capability chain are checked. Rules that need the conversation (argsz against the request, indices
/// against the device) belong to a validator, not here.
///
/// Replies that the spec gives an echo but that some implementations send header-only are accepted as
/// [`Body::Empty`]: REGION_READ/WRITE (libvfio-user with count 0), DMA_WRITE (QEMU 10.1) and
/// MIG_DATA_WRITE (current spec; 8 bytes in the pending one).
pub fn decode(bytes: &[u8], direction: Direction) -> Result<Message<'_>, DecodeError> {
    let Ok((header, payload)) = Header::ref_from_prefix(bytes) else {
        return Err(DecodeError::new(0, Rule::ShortHeader { have: bytes.len() }));
    };
    let msg_size = header.msg_size.get();
    if (msg_size as usize) < HEADER_SIZE {
        return Err(DecodeError::new(4, Rule::MsgSizeBelowHeader { msg_size }));
    }
    if bytes.len() < msg_size as usize {
        return Err(DecodeError::new(
            bytes.len(),
            Rule::MsgTruncated {
                msg_size,
                have: bytes.len(),
            },
        ));
    }
    if bytes.len() > msg_size as usize {
        return Err(DecodeError::new(
            msg_size as usize,
            Rule::MsgOverlong {
                msg_size,
                have: bytes.len(),
            },
        ));
    }
    let kind = header.message_type().ok_or(DecodeError::new(
        8,
        Rule::BadMessageType {
            bits: header.type_bits(),
        },
    ))?;
    let reply = kind == MessageType::Reply;
    let (body, trailing) = if reply && header.is_error() {
        (Body::Error, payload)
    } else {
        decode_body(header.cmd(), reply, payload)?
    };
    Ok(Message {
        direction,
        header,
        body,
        trailing,
    })
}

fn decode_body(cmd: Command, reply: bool, p: &[u8]) -> Result<(Body<'_>, &[u8]), DecodeError> {
    Ok(match cmd {
        Command::VERSION => {
            let (version, rest) = take::<Version>(p, 0, "VERSION")?;
            let json = match rest.split_last() {
                None => None,
                Some((&0, text)) => {
                    // `contains` searches a word at a time; the position only on the error path.
                    if text.contains(&0)
                        && let Some(nul) = text.iter().position(|&b| b == 0)
                    {
                        return Err(DecodeError::new(
                            HEADER_SIZE + 4 + nul,
                            Rule::JsonNotTerminated,
                        ));
                    }
                    check_capabilities(text)
                        .map_err(|(at, rule)| DecodeError::new(HEADER_SIZE + 4 + at, rule))?;
                    Some(text)
                }
                Some(_) => {
                    return Err(DecodeError::new(
                        HEADER_SIZE + p.len() - 1,
                        Rule::JsonNotTerminated,
                    ));
                }
            };
            (Body::Version(VersionBody { version, json }), &[][..])
        }
        Command::DMA_MAP if reply => (Body::Empty, p),
        Command::DMA_MAP => {
            let (m, rest) = take::<DmaMap>(p, 0, "DMA_MAP")?;
            (Body::DmaMap(m), rest)
        }
        Command::DMA_UNMAP => {
            let (unmap, mut rest) = take::<DmaUnmap>(p, 0, "DMA_UNMAP")?;
            let (mut bitmap, mut data) = (None, &[][..]);
            if unmap.flags.get() & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP != 0 {
                let (b, r) = take::<DirtyBitmap>(p, 24, "DMA_UNMAP dirty bitmap header")?;
                bitmap = Some(b);
                rest = r;
                if reply {
                    (data, rest) = take_bytes(p, 40, b.size.get(), "bitmap.size")?;
                }
            }
            (
                Body::DmaUnmap {
                    unmap,
                    bitmap,
                    data,
                },
                rest,
            )
        }
        Command::DEVICE_GET_INFO => {
            let (i, rest) = take::<DeviceInfo>(p, 0, "DEVICE_GET_INFO")?;
            (Body::DeviceInfo(i), rest)
        }
        Command::DEVICE_GET_REGION_INFO => {
            let (info, caps) = take::<RegionInfo>(p, 0, "DEVICE_GET_REGION_INFO")?;
            let body = Body::RegionInfo { info, caps };
            if reply && let Some(iter) = body.region_caps() {
                for cap in iter {
                    cap?;
                }
            }
            (body, &[][..])
        }
        Command::DEVICE_GET_REGION_IO_FDS => {
            let (head, rest) = take::<RegionIoFds>(p, 0, "DEVICE_GET_REGION_IO_FDS")?;
            if reply && !rest.is_empty() {
                let entries =
                    IoFdEntries::parse(rest, head.argsz.get(), head.count.get(), HEADER_SIZE + 16)?;
                let used = entries.as_bytes().len();
                (Body::RegionIoFds { head, entries }, &rest[used..])
            } else {
                (
                    Body::RegionIoFds {
                        head,
                        entries: IoFdEntries::Spec(&[]),
                    },
                    rest,
                )
            }
        }
        Command::DEVICE_GET_IRQ_INFO => {
            let (i, rest) = take::<IrqInfo>(p, 0, "DEVICE_GET_IRQ_INFO")?;
            (Body::IrqInfo(i), rest)
        }
        Command::DEVICE_SET_IRQS if reply => (Body::Empty, p),
        Command::DEVICE_SET_IRQS => {
            let (set, rest) = take::<IrqSet>(p, 0, "DEVICE_SET_IRQS")?;
            if set.flags.get() & VFIO_IRQ_SET_DATA_BOOL != 0 {
                let (data, rest) = take_bytes(p, 20, u64::from(set.count.get()), "count")?;
                (Body::SetIrqs { set, data }, rest)
            } else {
                (Body::SetIrqs { set, data: &[] }, rest)
            }
        }
        Command::REGION_READ | Command::REGION_WRITE => {
            if reply && p.is_empty() {
                return Ok((Body::Empty, p));
            }
            let (access, rest) = take::<RegionAccess>(p, 0, "REGION_READ/WRITE")?;
            let carries = (cmd == Command::REGION_WRITE) != reply;
            if carries {
                let (data, rest) = take_bytes(p, 16, u64::from(access.count.get()), "count")?;
                (Body::RegionRw { access, data }, rest)
            } else {
                (Body::RegionRw { access, data: &[] }, rest)
            }
        }
        Command::DMA_READ | Command::DMA_WRITE => {
            if reply && cmd == Command::DMA_WRITE && p.is_empty() {
                return Ok((Body::Empty, p));
            }
            let (access, rest) = take::<DmaAccess>(p, 0, "DMA_READ/WRITE")?;
            let carries = (cmd == Command::DMA_WRITE) != reply;
            if carries {
                let (data, rest) = take_bytes(p, 16, access.count.get(), "count")?;
                (Body::DmaRw { access, data }, rest)
            } else {
                (Body::DmaRw { access, data: &[] }, rest)
            }
        }
        Command::DEVICE_RESET => (Body::Empty, p),
        Command::DIRTY_PAGES => {
            let (head, mut rest) = take::<DirtyPages>(p, 0, "DIRTY_PAGES")?;
            let (mut range, mut bitmap) = (None, &[][..]);
            if head.flags.get() & VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP != 0 {
                let (r, after) = take::<DirtyPagesRange>(p, 8, "DIRTY_PAGES range")?;
                range = Some(r);
                rest = after;
                if reply {
                    (bitmap, rest) = take_bytes(p, 40, r.bitmap_size.get(), "bitmap_size")?;
                }
            }
            (
                Body::DirtyPages {
                    head,
                    range,
                    bitmap,
                },
                rest,
            )
        }
        Command::REGION_WRITE_MULTI => {
            let (head, rest) = take::<RegionWriteMulti>(p, 0, "REGION_WRITE_MULTI")?;
            if reply {
                (Body::WriteMulti { head, entries: &[] }, rest)
            } else {
                let (entries, rest) =
                    take_n::<RegionWriteEntry>(p, 8, head.wr_cnt.get(), "wr_cnt")?;
                (Body::WriteMulti { head, entries }, rest)
            }
        }
        Command::DEVICE_FEATURE => {
            let (head, rest) = take::<DeviceFeature>(p, 0, "DEVICE_FEATURE")?;
            let (data, rest) = decode_feature(head, reply, p, rest)?;
            (Body::DeviceFeature { head, data }, rest)
        }
        Command::MIG_DATA_READ | Command::MIG_DATA_WRITE => {
            if reply && cmd == Command::MIG_DATA_WRITE && p.is_empty() {
                return Ok((Body::Empty, p));
            }
            let (head, rest) = take::<MigData>(p, 0, "MIG_DATA_READ/WRITE")?;
            let carries = (cmd == Command::MIG_DATA_WRITE) != reply;
            if carries {
                let (data, rest) = take_bytes(p, 8, u64::from(head.size.get()), "size")?;
                (Body::MigData { head, data }, rest)
            } else {
                (Body::MigData { head, data: &[] }, rest)
            }
        }
        Command::GET_PRECOPY_INFO => {
            let (i, rest) = take::<PrecopyInfo>(p, 0, "GET_PRECOPY_INFO")?;
            (Body::PrecopyInfo(i), rest)
        }
        _ => (Body::Unknown(p), &[][..]),
    })
}

fn decode_feature<'a>(
    head: &DeviceFeature,
    reply: bool,
    p: &'a [u8],
    rest: &'a [u8],
) -> Result<(FeatureData<'a>, &'a [u8]), DecodeError> {
    if rest.is_empty() {
        return Ok((FeatureData::None, rest));
    }
    Ok(match head.feature() {
        VFIO_DEVICE_FEATURE_MIGRATION => {
            let (m, rest) = take::<FeatureMigration>(p, 8, "MIGRATION feature data")?;
            (FeatureData::Migration(m), rest)
        }
        VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE => {
            let (m, rest) = take::<FeatureMigState>(p, 8, "MIG_DEVICE_STATE feature data")?;
            (FeatureData::MigState(m), rest)
        }
        VFIO_DEVICE_FEATURE_DMA_LOGGING_START | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP => {
            let (control, _) = take::<DmaLoggingControl>(p, 8, "DMA_LOGGING control")?;
            let (ranges, rest) = take_n::<DmaLoggingRange>(
                p,
                24,
                u64::from(control.num_ranges.get()),
                "num_ranges",
            )?;
            (FeatureData::LoggingControl { control, ranges }, rest)
        }
        VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT => {
            let (report, rest) = take::<DmaLoggingReport>(p, 8, "DMA_LOGGING_REPORT")?;
            if reply {
                // The bitmap is ceil(length / page_size) bits rounded up to u64 words; take what the
                // message carries when that cannot be computed.
                let want = report
                    .length
                    .get()
                    .checked_div(report.page_size.get())
                    .map(|_| {
                        crate::vfio::dma::dirty_bitmap_bytes(
                            report.length.get(),
                            report.page_size.get(),
                        )
                    });
                match want.flatten() {
                    Some(n) if n as usize <= rest.len() => {
                        let (bitmap, rest) = rest.split_at(n as usize);
                        (FeatureData::LoggingReport { report, bitmap }, rest)
                    }
                    _ => (
                        FeatureData::LoggingReport {
                            report,
                            bitmap: rest,
                        },
                        &[][..],
                    ),
                }
            } else {
                (
                    FeatureData::LoggingReport {
                        report,
                        bitmap: &[],
                    },
                    rest,
                )
            }
        }
        _ => (FeatureData::Raw(rest), &[][..]),
    })
}

/// How the encoder treats `argsz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Argsz {
    /// Compute it by the spec's rules (§1 rule 8): a reply's `argsz` is its payload length (region info and
    /// IO_FDS: at least that, since a cut reply names the full size); DMA_MAP's and SET_IRQS's is the
    /// request payload length; any other request's is at least its own payload length (a caller's larger
    /// value, the buffer it offers, is kept).
    Compute,
    /// Write every field as given (re-encoding a captured message byte for byte).
    Keep,
}

struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self
            .len
            .checked_add(bytes.len())
            .ok_or(EncodeError::TooLarge { need: usize::MAX })?;
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = end;
                Ok(())
            }
            None => Err(EncodeError::BufferTooShort {
                need: end,
                have: self.buf.len(),
            }),
        }
    }

    fn put_struct<T: IntoBytes + Immutable>(&mut self, t: &T) -> Result<(), EncodeError> {
        self.put(t.as_bytes())
    }

    fn patch_u32(&mut self, at: usize, v: u32) {
        if let Some(dst) = self.buf.get_mut(at..at + 4) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
    }

    fn read_u32(&self, at: usize) -> u32 {
        self.buf
            .get(at..at + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The number of bytes `body` and `trailing` take after a header.
pub fn body_len(body: &Body<'_>, trailing: &[u8]) -> usize {
    let n = match body {
        Body::Empty | Body::Error => 0,
        Body::Version(v) => 4 + v.json.map_or(0, |j| j.len() + 1),
        Body::DmaMap(_) => 32,
        Body::DmaUnmap { bitmap, data, .. } => 24 + bitmap.map_or(0, |_| 16) + data.len(),
        Body::DeviceInfo(_) | Body::IrqInfo(_) => 16,
        Body::RegionInfo { caps, .. } => 32 + caps.len(),
        Body::RegionIoFds { entries, .. } => 16 + entries.as_bytes().len(),
        Body::SetIrqs { data, .. } => 20 + data.len(),
        Body::RegionRw { data, .. } | Body::DmaRw { data, .. } => 16 + data.len(),
        Body::WriteMulti { entries, .. } => 8 + entries.len() * 24,
        Body::DeviceFeature { data, .. } => 8 + feature_len(data),
        Body::MigData { data, .. } => 8 + data.len(),
        Body::PrecopyInfo(_) => 24,
        Body::DirtyPages { range, bitmap, .. } => 8 + range.map_or(0, |_| 32) + bitmap.len(),
        Body::Unknown(p) => p.len(),
    };
    n + trailing.len()
}

fn feature_len(d: &FeatureData<'_>) -> usize {
    match d {
        FeatureData::None => 0,
        FeatureData::Migration(_) | FeatureData::MigState(_) => 8,
        FeatureData::LoggingControl { ranges, .. } => 16 + ranges.len() * 16,
        FeatureData::LoggingReport { bitmap, .. } => 24 + bitmap.len(),
        FeatureData::Raw(r) => r.len(),
    }
}

/// Encodes a message into `buf`, computing `msg_size` and `argsz` ([`Argsz::Compute`]); returns its length.
///
/// The header's type, id, command, flags and errno are written as given.
pub fn encode(header: &Header, body: &Body<'_>, buf: &mut [u8]) -> Result<usize, EncodeError> {
    encode_with(header, body, &[], Argsz::Compute, buf)
}

/// Encodes a message with every field as given except `msg_size`, appending `trailing`
/// ([`Argsz::Keep`]): `encode_exact(m.header, &m.body, m.trailing, ..)` reproduces a decoded message.
pub fn encode_exact(
    header: &Header,
    body: &Body<'_>,
    trailing: &[u8],
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    encode_with(header, body, trailing, Argsz::Keep, buf)
}

/// Encodes a message with the given `argsz` policy; see [`encode`] and [`encode_exact`].
pub fn encode_with(
    header: &Header,
    body: &Body<'_>,
    trailing: &[u8],
    argsz: Argsz,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let total = HEADER_SIZE + body_len(body, trailing);
    let msg_size = u32::try_from(total).map_err(|_| EncodeError::TooLarge { need: total })?;
    if buf.len() < total {
        return Err(EncodeError::BufferTooShort {
            need: total,
            have: buf.len(),
        });
    }
    let mut w = Writer { buf, len: 0 };
    let mut h = *header;
    h.msg_size.set(msg_size);
    w.put_struct(&h)?;
    match body {
        Body::Empty | Body::Error => {}
        Body::Unknown(p) => w.put(p)?,
        Body::Version(v) => {
            w.put_struct(v.version)?;
            if let Some(json) = v.json {
                w.put(json)?;
                w.put(&[0])?;
            }
        }
        Body::DmaMap(m) => w.put_struct(*m)?,
        Body::DmaUnmap {
            unmap,
            bitmap,
            data,
        } => {
            w.put_struct(*unmap)?;
            if let Some(b) = bitmap {
                w.put_struct(*b)?;
            }
            w.put(data)?;
        }
        Body::DeviceInfo(i) => w.put_struct(*i)?,
        Body::RegionInfo { info, caps } => {
            w.put_struct(*info)?;
            w.put(caps)?;
        }
        Body::RegionIoFds { head, entries } => {
            w.put_struct(*head)?;
            w.put(entries.as_bytes())?;
        }
        Body::IrqInfo(i) => w.put_struct(*i)?,
        Body::SetIrqs { set, data } => {
            w.put_struct(*set)?;
            w.put(data)?;
        }
        Body::RegionRw { access, data } => {
            w.put_struct(*access)?;
            w.put(data)?;
        }
        Body::DmaRw { access, data } => {
            w.put_struct(*access)?;
            w.put(data)?;
        }
        Body::WriteMulti { head, entries } => {
            w.put_struct(*head)?;
            w.put(entries.as_bytes())?;
        }
        Body::DeviceFeature { head, data } => {
            w.put_struct(*head)?;
            match data {
                FeatureData::None => {}
                FeatureData::Migration(m) => w.put_struct(*m)?,
                FeatureData::MigState(m) => w.put_struct(*m)?,
                FeatureData::LoggingControl { control, ranges } => {
                    w.put_struct(*control)?;
                    w.put(ranges.as_bytes())?;
                }
                FeatureData::LoggingReport { report, bitmap } => {
                    w.put_struct(*report)?;
                    w.put(bitmap)?;
                }
                FeatureData::Raw(r) => w.put(r)?,
            }
        }
        Body::MigData { head, data } => {
            w.put_struct(*head)?;
            w.put(data)?;
        }
        Body::PrecopyInfo(i) => w.put_struct(*i)?,
        Body::DirtyPages {
            head,
            range,
            bitmap,
        } => {
            w.put_struct(*head)?;
            if let Some(r) = range {
                w.put_struct(*r)?;
            }
            w.put(bitmap)?;
        }
    }
    w.put(trailing)?;
    if argsz == Argsz::Compute {
        compute_argsz(&mut w, header, body, total - HEADER_SIZE);
    }
    Ok(w.len)
}

fn compute_argsz(w: &mut Writer<'_>, header: &Header, body: &Body<'_>, payload: usize) {
    let reply = header.is_reply();
    let payload = payload as u32;
    let at = HEADER_SIZE;
    let given = w.read_u32(at);
    let value = match body {
        // Bodies without an argsz field.
        Body::Empty
        | Body::Error
        | Body::Unknown(_)
        | Body::Version(_)
        | Body::RegionRw { .. }
        | Body::DmaRw { .. }
        | Body::WriteMulti { .. } => return,
        Body::DmaMap(_) | Body::SetIrqs { .. } => payload,
        Body::RegionInfo { .. } | Body::RegionIoFds { .. } => given.max(payload),
        Body::MigData { head, .. } if reply => 8 + head.size.get(),
        _ if reply => payload,
        _ => given.max(payload),
    };
    w.patch_u32(at, value);
}

/// A message encoded into a fixed-capacity heapless buffer of `N` bytes.
///
/// ```
/// use vfu_codec::{encode_vec, Body, Command, Header, vfio::DmaMap};
/// let map = DmaMap::new(3, 0, 0x10000, 0x1000);
/// let msg = encode_vec::<64>(&Header::command(1, Command::DMA_MAP), &Body::DmaMap(&map)).unwrap();
/// assert_eq!(msg.len(), 48);
/// ```
pub fn encode_vec<const N: usize>(
    header: &Header,
    body: &Body<'_>,
) -> Result<heapless::Vec<u8, N>, EncodeError> {
    let need = HEADER_SIZE + body_len(body, &[]);
    let mut v = heapless::Vec::<u8, N>::new();
    v.resize(need, 0)
        .map_err(|_| EncodeError::BufferTooShort { need, have: N })?;
    let n = encode(header, body, &mut v)?;
    v.truncate(n);
    Ok(v)
}

/// What a run of variable bytes in a message holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// Data being transferred (region, DMA, migration data, DATA_BOOL bytes).
    Data,
    /// VERSION capabilities JSON text (without the NUL).
    Json,
    /// The NUL that terminates the JSON text.
    Nul,
    /// A dirty bitmap.
    Bitmap,
    /// The capability area of a region-info reply that is not part of a capability (padding, or
    /// everything when the chain could not be walked).
    CapArea,
    /// An unknown command's payload, or unknown feature data.
    Raw,
    /// Bytes after the body ([`Message::trailing`]).
    Trailing,
}

/// One piece of a message, in wire order, with its offset in the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part<'a> {
    /// A fixed-layout struct (the header, a body, a capability, an array element).
    Struct {
        /// Its field table.
        layout: Layout,
        /// Offset of its first byte in the message.
        offset: usize,
        /// Its bytes.
        bytes: &'a [u8],
        /// Its position when it is an element of an array.
        index: Option<usize>,
    },
    /// Variable bytes.
    Data {
        /// What they are.
        kind: DataKind,
        /// Offset of the first byte in the message.
        offset: usize,
        /// The bytes.
        bytes: &'a [u8],
    },
}

impl Part<'_> {
    /// Offset of the part's first byte in the message.
    pub fn offset(&self) -> usize {
        match *self {
            Part::Struct { offset, .. } | Part::Data { offset, .. } => offset,
        }
    }

    /// Length of the part.
    pub fn len(&self) -> usize {
        match *self {
            Part::Struct { bytes, .. } | Part::Data { bytes, .. } => bytes.len(),
        }
    }

    /// Whether the part is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

use crate::vfio::device::{RegionCap, SparseMmapArea, SparseMmapFdArea};
use crate::wire::{Layout, WireStruct};

struct PartWalker<'a, F: FnMut(Part<'a>)> {
    at: usize,
    f: F,
    _p: core::marker::PhantomData<&'a ()>,
}

impl<'a, F: FnMut(Part<'a>)> PartWalker<'a, F> {
    fn one<T: WireStruct>(&mut self, t: &'a T) {
        let bytes = t.as_bytes();
        (self.f)(Part::Struct {
            layout: Layout::of::<T>(),
            offset: self.at,
            bytes,
            index: None,
        });
        self.at += bytes.len();
    }

    fn many<T: WireStruct>(&mut self, ts: &'a [T]) {
        for (i, t) in ts.iter().enumerate() {
            let bytes = t.as_bytes();
            (self.f)(Part::Struct {
                layout: Layout::of::<T>(),
                offset: self.at,
                bytes,
                index: Some(i),
            });
            self.at += bytes.len();
        }
    }

    fn data(&mut self, kind: DataKind, bytes: &'a [u8]) {
        if !bytes.is_empty() {
            (self.f)(Part::Data {
                kind,
                offset: self.at,
                bytes,
            });
            self.at += bytes.len();
        }
    }

    /// The capability area: walks the chain when it is sound, else shows it as bytes.
    fn caps(&mut self, info: &'a RegionInfo, area: &'a [u8], reply: bool) {
        let start = self.at;
        let body = Body::RegionInfo { info, caps: area };
        let chain_ok = reply
            && body
                .region_caps()
                .is_some_and(|mut it| it.all(|c| c.is_ok()));
        if !chain_ok || info.flags.get() & VFIO_REGION_INFO_FLAG_CAPS == 0 {
            self.data(DataKind::CapArea, area);
            return;
        }
        // Capabilities may appear in any forward order with gaps: emit them sorted by offset (the chain
        // only moves forward, so chain order is offset order), with gaps as CapArea bytes.
        let mut pos = 32usize; // payload offset reached
        for cap in body.region_caps().into_iter().flatten().flatten() {
            let at = cap.offset();
            if at > pos {
                self.at = start + (pos - 32);
                self.data(DataKind::CapArea, &area[pos - 32..at - 32]);
            }
            self.at = start + (at - 32);
            match cap {
                RegionCap::SparseMmap { head, areas, .. } => {
                    self.one(head);
                    self.many::<SparseMmapArea>(areas);
                }
                RegionCap::Type { cap, .. } => self.one(cap),
                RegionCap::SparseMmapFds { head, areas, .. } => {
                    self.one(head);
                    self.many::<SparseMmapFdArea>(areas);
                }
                RegionCap::Unknown { header, .. } => self.one(header),
            }
            pos = pos.max(self.at - start + 32);
        }
        if pos - 32 < area.len() {
            self.at = start + (pos - 32);
            self.data(DataKind::CapArea, &area[pos - 32..]);
        }
        self.at = start + area.len();
    }
}

impl<'a> Message<'a> {
    /// Calls `f` with every part of the message in wire order: the header, the body's fixed parts,
    /// arrays element by element, capabilities, and variable data, each with its message offset.
    /// Parts that overlap (capabilities that overlap each other) are shown as laid out by the chain.
    pub fn for_each_part(&self, f: impl FnMut(Part<'a>)) {
        let mut w = PartWalker {
            at: 0,
            f,
            _p: core::marker::PhantomData,
        };
        w.one(self.header);
        let reply = self.is_reply();
        match self.body {
            Body::Empty | Body::Error => {}
            Body::Version(v) => {
                w.one(v.version);
                if let Some(j) = v.json {
                    w.data(DataKind::Json, j);
                    w.data(DataKind::Nul, &[0]);
                }
            }
            Body::DmaMap(m) => w.one(m),
            Body::DmaUnmap {
                unmap,
                bitmap,
                data,
            } => {
                w.one(unmap);
                if let Some(b) = bitmap {
                    w.one(b);
                }
                w.data(DataKind::Bitmap, data);
            }
            Body::DeviceInfo(i) => w.one(i),
            Body::RegionInfo { info, caps } => {
                w.one(info);
                w.caps(info, caps, reply);
            }
            Body::RegionIoFds { head, entries } => {
                w.one(head);
                match entries {
                    IoFdEntries::Spec(e) => w.many(e),
                    IoFdEntries::Shadow(e) => w.many(e),
                }
            }
            Body::IrqInfo(i) => w.one(i),
            Body::SetIrqs { set, data } => {
                w.one(set);
                w.data(DataKind::Data, data);
            }
            Body::RegionRw { access, data } => {
                w.one(access);
                w.data(DataKind::Data, data);
            }
            Body::DmaRw { access, data } => {
                w.one(access);
                w.data(DataKind::Data, data);
            }
            Body::WriteMulti { head, entries } => {
                w.one(head);
                w.many(entries);
            }
            Body::DeviceFeature { head, data } => {
                w.one(head);
                match data {
                    FeatureData::None => {}
                    FeatureData::Migration(m) => w.one(m),
                    FeatureData::MigState(m) => w.one(m),
                    FeatureData::LoggingControl { control, ranges } => {
                        w.one(control);
                        w.many(ranges);
                    }
                    FeatureData::LoggingReport { report, bitmap } => {
                        w.one(report);
                        w.data(DataKind::Bitmap, bitmap);
                    }
                    FeatureData::Raw(r) => w.data(DataKind::Raw, r),
                }
            }
            Body::MigData { head, data } => {
                w.one(head);
                w.data(DataKind::Data, data);
            }
            Body::PrecopyInfo(i) => w.one(i),
            Body::DirtyPages {
                head,
                range,
                bitmap,
            } => {
                w.one(head);
                if let Some(r) = range {
                    w.one(r);
                }
                w.data(DataKind::Bitmap, bitmap);
            }
            Body::Unknown(p) => w.data(DataKind::Raw, p),
        }
        w.data(DataKind::Trailing, self.trailing);
    }
}

/// Encodes a message into a new `Vec`, computing `msg_size` and `argsz` (feature `alloc`).
#[cfg(feature = "alloc")]
pub fn encode_to_vec(header: &Header, body: &Body<'_>) -> Result<alloc::vec::Vec<u8>, EncodeError> {
    let mut v = alloc::vec![0u8; HEADER_SIZE + body_len(body, &[])];
    let n = encode(header, body, &mut v)?;
    v.truncate(n);
    Ok(v)
}
