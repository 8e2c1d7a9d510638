//! The encoders: [`encode`], [`encode_exact`], [`encode_with`], [`encode_vec`] and (feature `alloc`)
//! [`encode_to_vec`], writing a header and a [`Body`] into the caller's buffer.

use zerocopy::{Immutable, IntoBytes};

use super::body::{Body, FeatureData};
use crate::error::EncodeError;
use crate::header::{HEADER_SIZE, Header};

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
/// The header's type, id, command, flags and errno are written as given. A body that does not belong to
/// the header's command and type ([`Body::belongs_to`]: a DMA_MAP body under a VERSION header, a typed
/// body on an error reply) is refused with [`EncodeError::BodyMismatch`] before anything is written;
/// so is a buffer too short for the message ([`EncodeError::BufferTooShort`]).
///
/// ```
/// use vfu_codec::{encode, Body, Command, EncodeError, Header};
/// use vfu_codec::vfio::{DmaMap, RegionAccess};
///
/// // A 4-byte REGION_WRITE to offset 0x10 of BAR0: 16-byte header, 16-byte head, the data.
/// let access = RegionAccess::new(0, 0x10, 4);
/// let body = Body::RegionRw { access: &access, data: &[0xde, 0xad, 0xbe, 0xef] };
/// let mut buf = [0u8; 64];
/// let n = encode(&Header::command(12, Command::REGION_WRITE), &body, &mut buf)?;
/// assert_eq!(n, 36);
/// assert_eq!(&buf[4..8], &36u32.to_le_bytes()); // msg_size, filled in
/// assert_eq!(&buf[32..36], &[0xde, 0xad, 0xbe, 0xef]);
///
/// // A body of another command is refused, naming both; so is a buffer too short.
/// let map = DmaMap::new(3, 0, 0x1_0000, 0x1000);
/// let err = encode(&Header::command(7, Command::VERSION), &Body::DmaMap(&map), &mut buf).unwrap_err();
/// assert_eq!(err.to_string(), "a DmaMap body does not belong to a VERSION command");
/// let err = encode(&Header::command(12, Command::REGION_WRITE), &body, &mut buf[..35]).unwrap_err();
/// assert_eq!(err, EncodeError::BufferTooShort { need: 36, have: 35 });
/// # Ok::<(), EncodeError>(())
/// ```
pub fn encode(header: &Header, body: &Body<'_>, buf: &mut [u8]) -> Result<usize, EncodeError> {
    encode_with(header, body, &[], Argsz::Compute, buf)
}

/// Encodes a message with every field as given except `msg_size`, appending `trailing`
/// ([`Argsz::Keep`]): `encode_exact(m.header, &m.body, m.trailing, ..)` reproduces a decoded message.
/// Refuses what [`encode`] refuses.
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
    if !body.belongs_to(header) {
        return Err(mismatch(header, body));
    }
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

/// The error for a body that does not belong to `header`.
#[cold]
fn mismatch(header: &Header, body: &Body<'_>) -> EncodeError {
    EncodeError::BodyMismatch {
        body: body.name(),
        command: header.cmd(),
        message_type: header.message_type(),
        error: header.is_reply() && header.is_error(),
    }
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

/// Encodes a message into a new `Vec`, computing `msg_size` and `argsz` (feature `alloc`).
#[cfg(feature = "alloc")]
pub fn encode_to_vec(header: &Header, body: &Body<'_>) -> Result<alloc::vec::Vec<u8>, EncodeError> {
    let mut v = alloc::vec![0u8; HEADER_SIZE + body_len(body, &[])];
    let n = encode(header, body, &mut v)?;
    v.truncate(n);
    Ok(v)
}
