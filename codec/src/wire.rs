//! Field tables: the one description of every wire struct's layout.
//!
//! Every wire struct in this crate is declared with the [`wire_struct!`](crate::wire_struct) macro, which
//! emits the `#[repr(C)]` zerocopy struct, a compile-time size assertion, and a constant table of its
//! fields ([`WireStruct::FIELDS`]): name, offset, size, scalar type and how to show the value. The dump
//! tool's verbose and hex views, its JSON output and the Wireshark dissector are all generated from these
//! tables, so no second list of field names exists anywhere in the project.

/// Byte order of a scalar field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endian {
    /// Little-endian: every vfio-user field (see the crate docs on byte order), and VDUSE's
    /// native-endian fields on a little-endian host.
    Little,
    /// Big-endian: VDUSE's native-endian fields on a big-endian host.
    Big,
}

/// The machine type of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scalar {
    /// One byte.
    U8,
    /// Unsigned 16-bit integer.
    U16(Endian),
    /// Unsigned 32-bit integer.
    U32(Endian),
    /// Signed 32-bit integer.
    I32(Endian),
    /// Unsigned 64-bit integer.
    U64(Endian),
    /// An opaque byte array (names, reserved words, unions, padding).
    Bytes,
}

/// One named value of an enumerated field, or of a multi-bit part of a flags field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Named {
    /// The raw value.
    pub value: u64,
    /// The name it has in the spec or the C header.
    pub name: &'static str,
}

/// Shorthand for a [`Named`] entry.
pub const fn named(value: u64, name: &'static str) -> Named {
    Named { value, name }
}

/// What a part of a flags word means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlagKind {
    /// A single bit (or a group that is set as a whole): shown by name when all of `mask` is set.
    Bit,
    /// A multi-bit field whose value (after masking and shifting) is one of these names.
    Value(&'static [Named]),
    /// A multi-bit field holding a plain number (a feature index, say).
    Number,
}

/// One part of a flags word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlagSpec {
    /// The bits this part occupies.
    pub mask: u64,
    /// The spec name of the bit or of the field.
    pub name: &'static str,
    /// How to read it.
    pub kind: FlagKind,
}

impl FlagSpec {
    /// A single-bit flag.
    pub const fn bit(mask: u64, name: &'static str) -> Self {
        Self {
            mask,
            name,
            kind: FlagKind::Bit,
        }
    }
    /// A multi-bit enumerated field.
    pub const fn value(mask: u64, name: &'static str, values: &'static [Named]) -> Self {
        Self {
            mask,
            name,
            kind: FlagKind::Value(values),
        }
    }
    /// A multi-bit numeric field.
    pub const fn number(mask: u64, name: &'static str) -> Self {
        Self {
            mask,
            name,
            kind: FlagKind::Number,
        }
    }
    /// The value of this part within `raw`, shifted down to bit 0.
    pub const fn extract(&self, raw: u64) -> u64 {
        if self.mask == 0 {
            return 0;
        }
        (raw & self.mask) >> self.mask.trailing_zeros()
    }
}

/// How a field's value is best shown to a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Show {
    /// A decimal number (sizes, counts, indices).
    Dec,
    /// A hexadecimal number (addresses, offsets).
    Hex,
    /// A flags word made of the given parts; bits no part covers are reserved and should be zero.
    Flags(&'static [FlagSpec]),
    /// An enumerated value; values not listed are shown as raw numbers.
    Enum(&'static [Named]),
    /// A Linux errno value, shown with its symbolic name.
    Errno,
    /// A vfio-user command number, shown with its spec name.
    Command,
    /// Opaque bytes, shown in hex.
    Bytes,
    /// Text in a fixed-size NUL-padded array (VDUSE device names).
    Text,
    /// Reserved or padding: should be zero, shown only in verbose views.
    Reserved,
}

/// One field of a wire struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    /// The field's name, the spec's name in snake_case.
    pub name: &'static str,
    /// Byte offset from the start of the struct.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// Machine type and byte order.
    pub scalar: Scalar,
    /// How to show it.
    pub show: Show,
    /// The field's doc comment.
    pub doc: &'static str,
    /// Whether the field is one of the few shown in a one-line summary of the message.
    pub key: bool,
    /// With `key`: the field means something only in a reply (a request carries 0 there), so a
    /// summary of a request leaves it out.
    pub reply_only: bool,
}

impl Field {
    /// Reads this field as an unsigned number from `bytes`, which starts at the struct's first byte.
    ///
    /// Returns `None` for byte arrays or when `bytes` is too short; never panics.
    pub fn read_u64(&self, bytes: &[u8]) -> Option<u64> {
        let raw = bytes.get(self.offset..self.offset.checked_add(self.size)?)?;
        let le = |b: &[u8]| {
            b.iter()
                .rev()
                .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
        };
        let be = |b: &[u8]| b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
        match self.scalar {
            Scalar::U8 => raw.first().map(|&b| u64::from(b)),
            Scalar::U16(Endian::Little)
            | Scalar::U32(Endian::Little)
            | Scalar::U64(Endian::Little) => Some(le(raw)),
            Scalar::U16(Endian::Big) | Scalar::U32(Endian::Big) | Scalar::U64(Endian::Big) => {
                Some(be(raw))
            }
            Scalar::I32(e) => {
                let v = if e == Endian::Little {
                    le(raw)
                } else {
                    be(raw)
                };
                Some(v as u32 as i32 as i64 as u64)
            }
            Scalar::Bytes => None,
        }
    }

    /// The raw bytes of this field within `bytes` (which starts at the struct's first byte).
    pub fn bytes<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        bytes.get(self.offset..self.offset.checked_add(self.size)?)
    }
}

/// Implemented by every type that can be a field of a wire struct.
pub trait WireScalar {
    /// The scalar kind of this type.
    const SCALAR: Scalar;
}

macro_rules! scalar_impls {
    ($($t:ty => $s:expr;)*) => { $(impl WireScalar for $t { const SCALAR: Scalar = $s; })* };
}
scalar_impls! {
    u8 => Scalar::U8;
    zerocopy::little_endian::U16 => Scalar::U16(Endian::Little);
    zerocopy::little_endian::U32 => Scalar::U32(Endian::Little);
    zerocopy::little_endian::U64 => Scalar::U64(Endian::Little);
    zerocopy::little_endian::I32 => Scalar::I32(Endian::Little);
    zerocopy::big_endian::U16 => Scalar::U16(Endian::Big);
    zerocopy::big_endian::U32 => Scalar::U32(Endian::Big);
    zerocopy::big_endian::U64 => Scalar::U64(Endian::Big);
    zerocopy::big_endian::I32 => Scalar::I32(Endian::Big);
}
impl<T, const N: usize> WireScalar for [T; N] {
    const SCALAR: Scalar = Scalar::Bytes;
}

/// A fixed-layout wire struct with a field table.
pub trait WireStruct:
    zerocopy::FromBytes
    + zerocopy::IntoBytes
    + zerocopy::KnownLayout
    + zerocopy::Immutable
    + zerocopy::Unaligned
    + Copy
{
    /// The Rust type name (also the name used in generated artefacts).
    const NAME: &'static str;
    /// Where the layout is defined: a section of the vfio-user spec or a C header.
    const SPEC: &'static str;
    /// Size in bytes on the wire.
    const SIZE: usize = core::mem::size_of::<Self>();
    /// Every field, in order.
    const FIELDS: &'static [Field];

    /// Looks a field up by name.
    fn field(name: &str) -> Option<&'static Field> {
        Self::FIELDS.iter().find(|f| f.name == name)
    }
}

/// A type-erased reference to a struct's table, for code that walks several layouts (renderers, generators).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    /// See [`WireStruct::NAME`].
    pub name: &'static str,
    /// See [`WireStruct::SPEC`].
    pub spec: &'static str,
    /// See [`WireStruct::SIZE`].
    pub size: usize,
    /// See [`WireStruct::FIELDS`].
    pub fields: &'static [Field],
}

impl Layout {
    /// The layout of `T`.
    pub const fn of<T: WireStruct>() -> Self {
        Self {
            name: T::NAME,
            spec: T::SPEC,
            size: T::SIZE,
            fields: T::FIELDS,
        }
    }

    /// The layout of the type of `_value`.
    pub const fn of_val<T: WireStruct>(_value: &T) -> Self {
        Self::of::<T>()
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __key {
    () => {
        false
    };
    (key) => {
        true
    };
    (reply_key) => {
        true
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __reply_only {
    () => {
        false
    };
    (key) => {
        false
    };
    (reply_key) => {
        true
    };
}

/// Declares a wire struct: the zerocopy `#[repr(C)]` struct with public fields, a compile-time size
/// assertion, and its [`WireStruct`] field table.
///
/// ```
/// use vfu_codec::wire::{Show, WireStruct};
/// use zerocopy::little_endian::U32;
/// vfu_codec::wire_struct! {
///     /// An example.
///     pub struct Pair("example §0", size 8) {
///         /// First.
///         a: U32 = Show::Dec,
///         /// Second; `; key` marks it for one-line summaries.
///         b: U32 = Show::Hex; key,
///     }
/// }
/// assert_eq!(Pair::FIELDS[1].offset, 4);
/// assert_eq!(Pair::FIELDS[1].name, "b");
/// assert!(Pair::FIELDS[1].key);
/// ```
#[macro_export]
macro_rules! wire_struct {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident ($spec:literal, size $size:literal) {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty = $show:expr $(; $key:ident)?
            ),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        #[doc = ""]
        #[doc = concat!("Layout: ", $spec, "; ", stringify!($size), " bytes.")]
        #[derive(
            $crate::__zerocopy::FromBytes,
            $crate::__zerocopy::IntoBytes,
            $crate::__zerocopy::KnownLayout,
            $crate::__zerocopy::Immutable,
            $crate::__zerocopy::Unaligned,
            Clone, Copy, PartialEq, Eq, Hash, Debug,
        )]
        #[repr(C)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        const _: () = assert!(::core::mem::size_of::<$name>() == $size);

        impl $crate::wire::WireStruct for $name {
            const NAME: &'static str = stringify!($name);
            const SPEC: &'static str = $spec;
            const FIELDS: &'static [$crate::wire::Field] = &[
                $( $crate::wire::Field {
                    name: stringify!($field),
                    offset: ::core::mem::offset_of!($name, $field),
                    size: ::core::mem::size_of::<$ty>(),
                    scalar: <$ty as $crate::wire::WireScalar>::SCALAR,
                    show: $show,
                    doc: concat!($($doc),*),
                    key: $crate::__key!($($key)?),
                    reply_only: $crate::__reply_only!($($key)?),
                }, )*
            ];
        }

        impl Default for $name {
            fn default() -> Self {
                <Self as $crate::__zerocopy::FromZeros>::new_zeroed()
            }
        }
    )*};
}

// The macro is exported at the crate root (`vfu_codec::wire_struct!`); the codec's own files name it
// through this module, where it is defined, rather than through the root that re-exports them.
#[doc(hidden)]
pub use crate::wire_struct;
