//! Decode and encode errors: every error names the byte offset and the rule broken.

use core::fmt;

use crate::header::{Command, MessageType};

/// The structural rule a message broke. Each variant has a stable id ([`Rule::id`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// Fewer than 16 bytes: not even a header.
    ShortHeader {
        /// Bytes present.
        have: usize,
    },
    /// `msg_size` is below the 16-byte header (§1).
    MsgSizeBelowHeader {
        /// The declared size.
        msg_size: u32,
    },
    /// The buffer holds fewer bytes than `msg_size` declares.
    MsgTruncated {
        /// The declared size.
        msg_size: u32,
        /// Bytes present.
        have: usize,
    },
    /// The buffer holds more bytes than `msg_size` declares (a decoder is given one whole message).
    MsgOverlong {
        /// The declared size.
        msg_size: u32,
        /// Bytes present.
        have: usize,
    },
    /// The type bits of `flags` are neither 0 (command) nor 1 (reply) (§1 rule 1).
    BadMessageType {
        /// The type bits.
        bits: u32,
    },
    /// A fixed part or array does not fit in the payload.
    ShortBody {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// A length or count field claims more data than the message holds.
    CountExceedsPayload {
        /// The field.
        field: &'static str,
        /// Its value.
        count: u64,
        /// Bytes present for it.
        have: usize,
    },
    /// VERSION: the capabilities text does not end with a NUL as its last byte (§2.1).
    JsonNotTerminated,
    /// VERSION: the capabilities text is not the JSON the spec's grammar allows (§2.1).
    JsonSyntax {
        /// Why.
        reason: &'static str,
    },
    /// VERSION: the JSON nests or lists more than the fixed-capacity parser holds.
    JsonTooLarge {
        /// Which limit.
        what: &'static str,
    },
    /// Region capability inside the 32-byte fixed part (§2.5).
    CapOverlapsFixed {
        /// The capability's payload offset.
        cap_offset: u32,
    },
    /// Region capability header outside the payload (§2.5).
    CapOutOfBounds {
        /// The capability's payload offset.
        cap_offset: u32,
        /// Payload length.
        payload: usize,
    },
    /// Region capability chain loops or does not move forward (§2.5).
    CapLoop {
        /// The capability's payload offset.
        cap_offset: u32,
        /// Its `next`.
        next: u32,
    },
    /// Region capability body does not fit in the payload (§2.5).
    CapTruncated {
        /// Capability id.
        id: u16,
        /// Bytes needed from the capability's start.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// IO_FDS: no entry stride (40 or 48) fits `argsz`, `count` and the bytes present (§2.6).
    IoFdStride {
        /// The reply's argsz.
        argsz: u32,
        /// The reply's count.
        count: u32,
        /// Entry bytes present.
        have: usize,
    },
    /// VDUSE: a request or response is not exactly 152 bytes.
    VduseSize {
        /// Bytes present.
        have: usize,
    },
}

impl Rule {
    /// A stable, kebab-case identifier for the rule.
    pub fn id(&self) -> &'static str {
        match self {
            Rule::ShortHeader { .. } => "short-header",
            Rule::MsgSizeBelowHeader { .. } => "msg-size-below-header",
            Rule::MsgTruncated { .. } => "msg-truncated",
            Rule::MsgOverlong { .. } => "msg-overlong",
            Rule::BadMessageType { .. } => "bad-message-type",
            Rule::ShortBody { .. } => "short-body",
            Rule::CountExceedsPayload { .. } => "count-exceeds-payload",
            Rule::JsonNotTerminated => "version-json-not-terminated",
            Rule::JsonSyntax { .. } => "version-json-syntax",
            Rule::JsonTooLarge { .. } => "version-json-too-large",
            Rule::CapOverlapsFixed { .. } => "region-cap-overlaps-fixed",
            Rule::CapOutOfBounds { .. } => "region-cap-out-of-bounds",
            Rule::CapLoop { .. } => "region-cap-loop",
            Rule::CapTruncated { .. } => "region-cap-truncated",
            Rule::IoFdStride { .. } => "io-fds-stride",
            Rule::VduseSize { .. } => "vduse-size",
        }
    }

    /// The spec section the rule comes from.
    pub fn spec(&self) -> &'static str {
        match self {
            Rule::ShortHeader { .. }
            | Rule::MsgSizeBelowHeader { .. }
            | Rule::MsgTruncated { .. }
            | Rule::MsgOverlong { .. }
            | Rule::BadMessageType { .. } => "§1",
            Rule::ShortBody { .. } | Rule::CountExceedsPayload { .. } => "§2",
            Rule::JsonNotTerminated | Rule::JsonSyntax { .. } | Rule::JsonTooLarge { .. } => "§2.1",
            Rule::CapOverlapsFixed { .. }
            | Rule::CapOutOfBounds { .. }
            | Rule::CapLoop { .. }
            | Rule::CapTruncated { .. } => "§2.5",
            Rule::IoFdStride { .. } => "§2.6",
            Rule::VduseSize { .. } => "vduse.h",
        }
    }

    /// How many more bytes would be needed, when the rule is about a message being short.
    pub fn needed(&self) -> Option<usize> {
        match *self {
            Rule::ShortHeader { have } => Some(16 - have.min(16)),
            Rule::MsgTruncated { msg_size, have } => Some((msg_size as usize).saturating_sub(have)),
            Rule::ShortBody { need, have, .. } | Rule::CapTruncated { need, have, .. } => {
                Some(need.saturating_sub(have))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rule::ShortHeader { have } => write!(f, "only {have} bytes, a header needs 16"),
            Rule::MsgSizeBelowHeader { msg_size } => {
                write!(f, "msg_size {msg_size} is smaller than the 16-byte header")
            }
            Rule::MsgTruncated { msg_size, have } => {
                write!(
                    f,
                    "msg_size says {msg_size} bytes but only {have} are present"
                )
            }
            Rule::MsgOverlong { msg_size, have } => {
                write!(f, "msg_size says {msg_size} bytes but {have} were given")
            }
            Rule::BadMessageType { bits } => write!(
                f,
                "message type {bits} is neither command (0) nor reply (1)"
            ),
            Rule::ShortBody { what, need, have } => {
                write!(f, "{what} needs {need} bytes, payload has {have}")
            }
            Rule::CountExceedsPayload { field, count, have } => {
                write!(f, "{field} = {count} but only {have} bytes follow")
            }
            Rule::JsonNotTerminated => {
                f.write_str("capabilities JSON must end with a NUL as the last payload byte")
            }
            Rule::JsonSyntax { reason } => write!(f, "capabilities JSON: {reason}"),
            Rule::JsonTooLarge { what } => write!(
                f,
                "capabilities JSON exceeds the parser's capacity ({what})"
            ),
            Rule::CapOverlapsFixed { cap_offset } => {
                write!(
                    f,
                    "capability at {cap_offset} lies inside the 32-byte vfio_region_info"
                )
            }
            Rule::CapOutOfBounds {
                cap_offset,
                payload,
            } => {
                write!(
                    f,
                    "capability at {cap_offset} does not fit in the {payload}-byte payload"
                )
            }
            Rule::CapLoop { cap_offset, next } => {
                write!(
                    f,
                    "capability at {cap_offset} has next = {next}, which does not move forward (loop)"
                )
            }
            Rule::CapTruncated { id, need, have } => {
                write!(
                    f,
                    "capability id {id} needs {need} bytes, only {have} remain"
                )
            }
            Rule::IoFdStride { argsz, count, have } => write!(
                f,
                "no entry stride (40 or 48) fits argsz {argsz}, count {count} and {have} entry bytes"
            ),
            Rule::VduseSize { have } => write!(f, "VDUSE messages are 152 bytes, got {have}"),
        }
    }
}

/// A message could not be decoded: where, and which rule it broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecodeError {
    /// Byte offset within the message (0 = first header byte).
    pub offset: usize,
    /// The rule broken.
    pub rule: Rule,
}

impl DecodeError {
    /// An error at `offset`.
    pub const fn new(offset: usize, rule: Rule) -> Self {
        DecodeError { offset, rule }
    }

    /// A [`Rule::ShortBody`] at `offset`.
    pub const fn short(offset: usize, what: &'static str, need: usize, have: usize) -> Self {
        DecodeError {
            offset,
            rule: Rule::ShortBody { what, need, have },
        }
    }

    /// Bytes still needed, when the message was short.
    pub fn needed(&self) -> Option<usize> {
        self.rule.needed()
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at offset {:#x} [{} {}]",
            self.rule,
            self.offset,
            self.rule.id(),
            self.rule.spec()
        )
    }
}

impl core::error::Error for DecodeError {}

/// A message could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is too small.
    BufferTooShort {
        /// Bytes the message needs.
        need: usize,
        /// Bytes the buffer has.
        have: usize,
    },
    /// The message would be larger than `msg_size` can say (4 GiB).
    TooLarge {
        /// Bytes the message needs.
        need: usize,
    },
    /// A length field cannot hold the variable part's length.
    FieldOverflow {
        /// The field.
        field: &'static str,
    },
    /// The body is not one a message with the header's command and type carries (see
    /// `Body::belongs_to`): written, it would decode as something else.
    BodyMismatch {
        /// The body's variant (`Body::name`): `"DmaMap"`.
        body: &'static str,
        /// The header's command.
        command: Command,
        /// The header's type, `None` when its type bits are neither command (0) nor reply (1).
        message_type: Option<MessageType>,
        /// Whether the header is an error reply (a reply with ERROR set).
        error: bool,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EncodeError::BufferTooShort { need, have } => {
                write!(
                    f,
                    "buffer too short: message needs {need} bytes, buffer has {have}"
                )
            }
            EncodeError::TooLarge { need } => {
                write!(f, "message of {need} bytes does not fit msg_size (u32)")
            }
            EncodeError::FieldOverflow { field } => {
                write!(f, "{field} cannot hold the data length")
            }
            EncodeError::BodyMismatch {
                body,
                command,
                message_type,
                error,
            } => {
                // "an UNKNOWN(99) command", "an Empty body": the article by the word's first letter.
                fn an(word: &str) -> &'static str {
                    match word.as_bytes().first() {
                        Some(b'A' | b'E' | b'I' | b'O' | b'U') => "an",
                        _ => "a",
                    }
                }
                let name = command.short_name().unwrap_or("UNKNOWN");
                write!(
                    f,
                    "{} {body} body does not belong to {} {command} ",
                    an(body),
                    an(name)
                )?;
                match (message_type, error) {
                    (Some(MessageType::Command), _) => f.write_str("command"),
                    (Some(MessageType::Reply), false) => f.write_str("reply"),
                    (Some(MessageType::Reply), true) => f.write_str("error reply"),
                    (None, _) => f.write_str("message of invalid type"),
                }
            }
        }
    }
}

impl core::error::Error for EncodeError {}
