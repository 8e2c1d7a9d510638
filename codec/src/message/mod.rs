//! The decode entry point ([`decode`]) and the encoders ([`encode`], [`encode_exact`]).
//!
//! A [`Message`] is a view over one whole message: the header, the body chosen by command and type
//! ([`Body`]), and any bytes the body does not account for ([`Message::trailing`]). Fixed parts are
//! `&'a` references into the input (zero-copy); variable parts are sub-slices.

// One file each: the decoded form (`body.rs`), the decoder, the encoders, and the walk over a decoded
// message's parts. This file only gathers them; none of them imports it.
mod body;
mod decode;
mod encode;
mod parts;

pub use body::{Body, Direction, FeatureData, Message, VersionBody};
pub use decode::decode;
#[cfg(feature = "alloc")]
pub use encode::encode_to_vec;
pub use encode::{Argsz, body_len, encode, encode_exact, encode_vec, encode_with};
pub use parts::{DataKind, Part};
