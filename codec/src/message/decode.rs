//! [`decode`]: one whole message's bytes and its direction to a [`Message`].

use zerocopy::{FromBytes, Immutable, KnownLayout};

use super::body::{Body, Direction, FeatureData, Message, VersionBody};
use crate::error::{DecodeError, Rule};
use crate::header::{Command, HEADER_SIZE, Header, MessageType};
use crate::vfio::caps::{Version, check_capabilities};
use crate::vfio::device::{
    DeviceInfo, IoFdEntries, IrqInfo, IrqSet, RegionInfo, RegionIoFds, VFIO_IRQ_SET_DATA_BOOL,
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
///
/// ```
/// use vfu_codec::{decode, Body, Command, Direction};
///
/// // A DEVICE_GET_INFO reply as it comes off the socket: msg_id 5, command 4, msg_size 32, type reply;
/// // argsz 16, flags RESET|PCI, 9 regions, 5 IRQs.
/// let bytes = [
///     5, 0, 4, 0, 32, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, // header
///     16, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0, 5, 0, 0, 0, // struct vfio_device_info
/// ];
/// let msg = decode(&bytes, Direction::ServerToClient)?;
/// assert_eq!((msg.command(), msg.is_reply()), (Command::DEVICE_GET_INFO, true));
/// let Body::DeviceInfo(info) = msg.body else { panic!("not DEVICE_GET_INFO") };
/// assert_eq!((info.num_regions.get(), info.num_irqs.get()), (9, 5));
///
/// // Cut one byte short, the message is refused at the offset where it ends, naming the rule.
/// let err = decode(&bytes[..31], Direction::ServerToClient).unwrap_err();
/// assert_eq!((err.offset, err.rule.id(), err.needed()), (31, "msg-truncated", Some(1)));
/// assert_eq!(
///     err.to_string(),
///     "msg_size says 32 bytes but only 31 are present at offset 0x1f [msg-truncated §1]"
/// );
/// # Ok::<(), vfu_codec::DecodeError>(())
/// ```
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
