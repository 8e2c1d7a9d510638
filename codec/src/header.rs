//! The 16-byte vfio-user message header (spec §1 "Header").

use core::fmt;

use zerocopy::little_endian::{U16, U32};

use crate::wire::{FlagSpec, Named, Show, named};

/// Size of the header: every message starts with one.
pub const HEADER_SIZE: usize = 16;

/// A vfio-user command number (spec §2). An open type: every `u16` is representable, unknown values
/// print as raw numbers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Command(pub u16);

macro_rules! commands {
    ($($(#[$m:meta])* $konst:ident = $v:literal, $spec:literal;)*) => {
        impl Command {
            $( $(#[$m])* pub const $konst: Command = Command($v); )*
        }
        /// Every named command: value and spec name (`VFIO_USER_DMA_MAP`).
        pub const COMMAND_NAMES: &[Named] = &[ $( named($v, $spec), )* ];
    };
}

commands! {
    /// 1: version and capability negotiation (§2.1).
    VERSION = 1, "VFIO_USER_VERSION";
    /// 2: map a DMA region (§2.2).
    DMA_MAP = 2, "VFIO_USER_DMA_MAP";
    /// 3: unmap a DMA region (§2.3).
    DMA_UNMAP = 3, "VFIO_USER_DMA_UNMAP";
    /// 4: device information (§2.4).
    DEVICE_GET_INFO = 4, "VFIO_USER_DEVICE_GET_INFO";
    /// 5: region information (§2.5).
    DEVICE_GET_REGION_INFO = 5, "VFIO_USER_DEVICE_GET_REGION_INFO";
    /// 6: region I/O file descriptors (§2.6).
    DEVICE_GET_REGION_IO_FDS = 6, "VFIO_USER_DEVICE_GET_REGION_IO_FDS";
    /// 7: interrupt information (§2.7).
    DEVICE_GET_IRQ_INFO = 7, "VFIO_USER_DEVICE_GET_IRQ_INFO";
    /// 8: set interrupts (§2.8).
    DEVICE_SET_IRQS = 8, "VFIO_USER_DEVICE_SET_IRQS";
    /// 9: read a device region (§2.9).
    REGION_READ = 9, "VFIO_USER_REGION_READ";
    /// 10: write a device region (§2.10).
    REGION_WRITE = 10, "VFIO_USER_REGION_WRITE";
    /// 11: server reads client memory (§2.11).
    DMA_READ = 11, "VFIO_USER_DMA_READ";
    /// 12: server writes client memory (§2.12).
    DMA_WRITE = 12, "VFIO_USER_DMA_WRITE";
    /// 13: reset the device (§2.13).
    DEVICE_RESET = 13, "VFIO_USER_DEVICE_RESET";
    /// 14: legacy dirty-page tracking of the 2021 draft (§4); unassigned in the current spec.
    DIRTY_PAGES = 14, "VFIO_USER_DIRTY_PAGES";
    /// 15: several small region writes in one message (§2.14).
    REGION_WRITE_MULTI = 15, "VFIO_USER_REGION_WRITE_MULTI";
    /// 16: device features, migration v2 (§2.15).
    DEVICE_FEATURE = 16, "VFIO_USER_DEVICE_FEATURE";
    /// 17: read migration data (§2.16).
    MIG_DATA_READ = 17, "VFIO_USER_MIG_DATA_READ";
    /// 18: write migration data (§2.17).
    MIG_DATA_WRITE = 18, "VFIO_USER_MIG_DATA_WRITE";
    /// 19: pre-copy information, pending extension (§2.18).
    GET_PRECOPY_INFO = 19, "VFIO_USER_GET_PRECOPY_INFO";
}

impl Command {
    /// The spec name (`VFIO_USER_DMA_MAP`), if the value is known.
    pub fn name(self) -> Option<&'static str> {
        crate::errno::lookup(COMMAND_NAMES, u64::from(self.0))
    }

    /// The short name (`DMA_MAP`), if the value is known.
    pub fn short_name(self) -> Option<&'static str> {
        self.name().map(|n| n.trim_start_matches("VFIO_USER_"))
    }

    /// Parses a command name (`DMA_MAP`, `VFIO_USER_DMA_MAP`, `dma_map`) or number (`2`, `0x2`).
    pub fn parse(s: &str) -> Option<Command> {
        if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            return u16::from_str_radix(hex, 16).ok().map(Command);
        }
        if let Ok(v) = s.parse::<u16>() {
            return Some(Command(v));
        }
        COMMAND_NAMES
            .iter()
            .find(|n| n.name.eq_ignore_ascii_case(s) || n.name[10..].eq_ignore_ascii_case(s))
            .map(|n| Command(n.value as u16))
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({:#x})", self.0),
            None => write!(f, "Command({})", self.0),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.short_name() {
            Some(n) => f.write_str(n),
            None => write!(f, "UNKNOWN({})", self.0),
        }
    }
}

/// `flags` bits 0–3: message type mask.
pub const VFIO_USER_F_TYPE_MASK: u32 = 0xf;
/// Message type: a command.
pub const VFIO_USER_F_TYPE_COMMAND: u32 = 0x0;
/// Message type: a reply.
pub const VFIO_USER_F_TYPE_REPLY: u32 = 0x1;
/// `flags` bit 4: the sender expects no reply.
pub const VFIO_USER_F_NO_REPLY: u32 = 0x10;
/// `flags` bit 5: this reply reports an error in `error_no`.
pub const VFIO_USER_F_ERROR: u32 = 0x20;
/// `flags` bits that no spec version defines (bits 6–31): must be zero.
pub const VFIO_USER_F_RESERVED: u32 =
    !(VFIO_USER_F_TYPE_MASK | VFIO_USER_F_NO_REPLY | VFIO_USER_F_ERROR);

/// Parts of the header's `flags` word.
pub const HEADER_FLAGS: &[FlagSpec] = &[
    FlagSpec::value(0xf, "type", &[named(0, "COMMAND"), named(1, "REPLY")]),
    FlagSpec::bit(0x10, "NO_REPLY"),
    FlagSpec::bit(0x20, "ERROR"),
];

/// Whether a message is a command (request) or a reply, from the header's type bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Type 0.
    Command,
    /// Type 1.
    Reply,
}

crate::wire::wire_struct! {
    /// The header that starts every vfio-user message.
    ///
    /// ```
    /// use vfu_codec::{Command, Header, MessageType, HEADER_SIZE};
    ///
    /// let h = Header::error_reply(7, Command::DMA_MAP, 17); // EEXIST
    /// assert_eq!((h.message_type(), h.is_error(), h.error_no.get()), (Some(MessageType::Reply), true, 17));
    /// assert_eq!(h.cmd(), Command::DMA_MAP);
    /// assert_eq!(format!("{:?}", h.cmd()), "VFIO_USER_DMA_MAP (0x2)");
    ///
    /// // Reading one from bytes: `peek` needs only the 16 bytes, and checks nothing else.
    /// let bytes = [1, 0, 1, 0, 16, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0];
    /// let h = Header::peek(&bytes).unwrap();
    /// assert_eq!((h.msg_id.get(), h.cmd(), h.msg_size.get() as usize), (1, Command::VERSION, HEADER_SIZE));
    /// assert!(h.no_reply() && !h.is_reply());
    /// assert!(Header::peek(&bytes[..15]).is_none());
    /// ```
    pub struct Header("vfio-user spec §1 Header", size 16) {
        /// Chosen by the sender; echoed in the reply (`msg_id`).
        msg_id: U16 = Show::Dec,
        /// Command number; the reply carries the same value.
        command: U16 = Show::Command,
        /// Size of the whole message, header included (`msg_size`).
        msg_size: U32 = Show::Dec,
        /// Message type, NO_REPLY and ERROR bits.
        flags: U32 = Show::Flags(HEADER_FLAGS),
        /// Errno of an error reply; reserved (0) otherwise.
        error_no: U32 = Show::Errno,
    }
}

impl Header {
    /// A header with every field given; `msg_size` is filled in by the encoder.
    pub fn new(msg_id: u16, command: Command, flags: u32, error_no: u32) -> Self {
        Header {
            msg_id: U16::new(msg_id),
            command: U16::new(command.0),
            msg_size: U32::new(HEADER_SIZE as u32),
            flags: U32::new(flags),
            error_no: U32::new(error_no),
        }
    }

    /// A command header.
    pub fn command(msg_id: u16, command: Command) -> Self {
        Self::new(msg_id, command, VFIO_USER_F_TYPE_COMMAND, 0)
    }

    /// A success reply header.
    pub fn reply(msg_id: u16, command: Command) -> Self {
        Self::new(msg_id, command, VFIO_USER_F_TYPE_REPLY, 0)
    }

    /// An error reply header.
    pub fn error_reply(msg_id: u16, command: Command, errno: u32) -> Self {
        Self::new(
            msg_id,
            command,
            VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
            errno,
        )
    }

    /// The header at the start of `bytes`, if 16 bytes are present (no other check).
    pub fn peek(bytes: &[u8]) -> Option<&Header> {
        <Header as zerocopy::FromBytes>::ref_from_prefix(bytes)
            .ok()
            .map(|(h, _)| h)
    }

    /// The command number.
    pub fn cmd(&self) -> Command {
        Command(self.command.get())
    }

    /// The raw type bits (0 command, 1 reply; anything else is invalid).
    pub fn type_bits(&self) -> u32 {
        self.flags.get() & VFIO_USER_F_TYPE_MASK
    }

    /// The message type, or `None` when the type bits are neither 0 nor 1.
    pub fn message_type(&self) -> Option<MessageType> {
        match self.type_bits() {
            VFIO_USER_F_TYPE_COMMAND => Some(MessageType::Command),
            VFIO_USER_F_TYPE_REPLY => Some(MessageType::Reply),
            _ => None,
        }
    }

    /// Whether this is a reply (type 1).
    pub fn is_reply(&self) -> bool {
        self.type_bits() == VFIO_USER_F_TYPE_REPLY
    }

    /// Whether the NO_REPLY bit is set.
    pub fn no_reply(&self) -> bool {
        self.flags.get() & VFIO_USER_F_NO_REPLY != 0
    }

    /// Whether the ERROR bit is set.
    pub fn is_error(&self) -> bool {
        self.flags.get() & VFIO_USER_F_ERROR != 0
    }

    /// The reserved bits 6–31 of `flags` (should be zero).
    pub fn reserved_flags(&self) -> u32 {
        self.flags.get() & VFIO_USER_F_RESERVED
    }
}
