//! [`CaptureError`]: what went wrong while reading a capture, and where.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// An error while opening or reading a capture.
///
/// Every variant that comes from the file's contents names the byte offset in the file (for standard
/// input: the offset from the first byte read) of the block, record or message concerned.
#[derive(Debug)]
#[non_exhaustive]
pub enum CaptureError {
    /// The file could not be opened.
    Open {
        /// The path given.
        path: PathBuf,
        /// The error from the system.
        source: io::Error,
    },
    /// A read failed.
    Io {
        /// The file offset at which the read was made.
        offset: u64,
        /// The error from the system.
        source: io::Error,
    },
    /// The first bytes are not a pcapng or pcap magic number, and raw input was not asked for.
    UnknownFormat {
        /// The first bytes of the input (at most 4).
        first_bytes: [u8; 4],
        /// How many of `first_bytes` the input had.
        len: usize,
    },
    /// Raw input needs the direction of its bytes ([`OpenOptions::direction`](super::OpenOptions)).
    RawNeedsDirection,
    /// A structure in the file breaks a rule of its format.
    Malformed {
        /// File offset of the block, record or message.
        offset: u64,
        /// What is at `offset` (`"pcapng block"`, `"pcap record"`, …).
        context: &'static str,
        /// The rule that was broken, with the values found.
        reason: String,
    },
    /// The input ends inside a block, record or header: everything before it was delivered.
    Incomplete {
        /// File offset of the block, record or header.
        offset: u64,
        /// What is at `offset`.
        context: &'static str,
        /// How many bytes it needs.
        needed: u64,
        /// How many the input still had.
        available: u64,
    },
    /// A block, record or message is longer than [`MAX_RECORD_LEN`](super::MAX_RECORD_LEN).
    TooLarge {
        /// File offset of the block, record or message.
        offset: u64,
        /// What is at `offset`.
        context: &'static str,
        /// The length it declares (or has reached, for a reassembled message).
        len: u64,
        /// The limit.
        limit: u64,
    },
}

impl CaptureError {
    /// The file offset the error refers to, if it comes from the file's contents or a read.
    pub fn offset(&self) -> Option<u64> {
        match self {
            CaptureError::Io { offset, .. }
            | CaptureError::Malformed { offset, .. }
            | CaptureError::Incomplete { offset, .. }
            | CaptureError::TooLarge { offset, .. } => Some(*offset),
            CaptureError::UnknownFormat { .. } => Some(0),
            CaptureError::Open { .. } | CaptureError::RawNeedsDirection => None,
        }
    }

    pub(crate) fn malformed(offset: u64, context: &'static str, reason: impl Into<String>) -> Self {
        CaptureError::Malformed {
            offset,
            context,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(offset: u64, source: io::Error) -> Self {
        CaptureError::Io { offset, source }
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Open { path, source } => {
                write!(f, "cannot open {}: {source}", path.display())
            }
            CaptureError::Io { offset, source } => {
                write!(f, "reading at offset {offset:#x} failed: {source}")
            }
            CaptureError::UnknownFormat { first_bytes, len } => {
                let shown = &first_bytes[..(*len).min(4)];
                if shown.is_empty() {
                    return f.write_str("the input is empty: not a pcapng or pcap capture");
                }
                f.write_str("not a pcapng or pcap capture: the first bytes are")?;
                for b in shown {
                    write!(f, " {b:02x}")?;
                }
                f.write_str(
                    " (pcapng starts 0a 0d 0d 0a, pcap d4 c3 b2 a1 or a1 b2 c3 d4); \
                     for a raw byte stream of one direction use --raw",
                )
            }
            CaptureError::RawNeedsDirection => f.write_str(
                "raw input needs the direction of its bytes (client-to-server or server-to-client)",
            ),
            CaptureError::Malformed {
                offset,
                context,
                reason,
            } => write!(f, "{context} at offset {offset:#x}: {reason}"),
            CaptureError::Incomplete {
                offset,
                context,
                needed,
                available,
            } => write!(
                f,
                "{context} at offset {offset:#x}: the input ends after {available} of its {needed} bytes"
            ),
            CaptureError::TooLarge {
                offset,
                context,
                len,
                limit,
            } => write!(
                f,
                "{context} at offset {offset:#x}: length {len} is above the limit of {limit} bytes"
            ),
        }
    }
}

impl std::error::Error for CaptureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CaptureError::Open { source, .. } | CaptureError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_offset() {
        let e = CaptureError::malformed(0x1a4, "pcapng block", "block length 12 below minimum 28");
        assert_eq!(
            e.to_string(),
            "pcapng block at offset 0x1a4: block length 12 below minimum 28"
        );
        assert_eq!(e.offset(), Some(0x1a4));
        let e = CaptureError::Incomplete {
            offset: 0x40,
            context: "pcap record",
            needed: 100,
            available: 7,
        };
        assert_eq!(
            e.to_string(),
            "pcap record at offset 0x40: the input ends after 7 of its 100 bytes"
        );
    }

    #[test]
    fn io_errors_give_the_os_reason() {
        let e = CaptureError::Open {
            path: PathBuf::from("missing.pcapng"),
            source: io::Error::from_raw_os_error(2),
        };
        assert_eq!(
            e.to_string(),
            "cannot open missing.pcapng: No such file or directory (os error 2)"
        );
        let e = CaptureError::io(0, io::Error::from_raw_os_error(21));
        assert_eq!(
            e.to_string(),
            "reading at offset 0x0 failed: Is a directory (os error 21)"
        );
    }

    #[test]
    fn unknown_format_shows_the_bytes_and_suggests_raw() {
        let e = CaptureError::UnknownFormat {
            first_bytes: [0x01, 0x00, 0x02, 0x00],
            len: 4,
        };
        let s = e.to_string();
        assert!(s.contains("01 00 02 00"), "{s}");
        assert!(s.contains("--raw"), "{s}");
        let e = CaptureError::UnknownFormat {
            first_bytes: [0; 4],
            len: 0,
        };
        assert!(e.to_string().contains("empty"));
    }
}
