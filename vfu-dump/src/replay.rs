//! `vfu-dump replay`: play one side of a captured vfio-user connection against a live peer and
//! compare what the peer sends with what the original peer sent.
//!
//! ```text
//!  capture ─▶ replay (client side) ──▶ --connect SERVER.sock ◀── live server
//!  capture ─▶ replay (server side) ──▶ --serve SERVER.sock   ◀── live client
//! ```
//!
//! [`plan::load`] reads one connection of a capture and checks it before anything is sent;
//! [`client::play`] plays the client side, [`serve::Serving`] the server side; `cmd/replay.rs` is
//! the command-line wrapper. Tests call the library directly.
//!
//! # Before anything is sent
//!
//! The connection is read whole (up to `--until`) and refused, naming the message, when:
//! - a message is truncated (the capture ends inside it, or the file itself is cut short), shorter
//!   than a header, or its `msg_size` disagrees with the record;
//! - a reply has no request: no earlier command of the other side with its id and command waits
//!   for one (a reply to a NO_REPLY command included);
//! - the connection never negotiated: its first client message is not a VERSION command, or that
//!   VERSION got no reply, or an error reply;
//! - the VERSION reply negotiated a twin socket (see "Not supported");
//! - a message the replay has to send carried descriptors it does not know how to make.
//!
//! # Playing the client (`--connect`)
//!
//! The captured messages are played in capture order. A client command is sent as captured (same
//! bytes, same `msg_id`), with fresh descriptors where the original carried some: a memfd of
//! `offset + size` bytes for DMA_MAP, eventfds for SET_IRQS (as many as the original had). Where the
//! capture has a server message, the replay waits for it (`--timeout`, 5 s by default); a client
//! command whose reply the original client did not wait for is not waited for either, so pipelining
//! is reproduced. Whatever the server sends is handled when it arrives: replies are paired with the
//! commands in flight by id and command, server commands with the captured ones in order.
//!
//! The server's DMA_READ and DMA_WRITE requests are answered from the replay's memory: the memfd
//! passed with each DMA_MAP (positioned reads and writes at the DMA_MAP's `offset`), or a buffer of
//! its own when the original mapping had no descriptor. Before answering a DMA_READ, the replay
//! writes into its memory the data the original client answered the same captured request with
//! (when the address and count match), so the server reads what it read originally. A range no
//! window covers is answered EFAULT, a DMA_WRITE to a window without WRITE EPERM, a count above the
//! client's `max_data_xfer_size` EINVAL; any other server command ENOSYS (as the QEMU client does).
//!
//! After the last message the replay half-closes the socket and reads for up to 0.5 s more (less
//! when the server closes first), so that messages the capture does not have are reported. With
//! `--until N` it stops after the first N messages of the connection (both directions) and reads
//! nothing more.
//!
//! # Playing the server (`--serve`)
//!
//! The replay listens, accepts one client and answers each client command with the captured reply
//! of the next captured command **with the same command number** (matched by order and command, not
//! by id), its `msg_id` replaced by the live request's, with fresh descriptors where the original
//! reply carried some (memfds of the region's `offset + size` for DEVICE_GET_REGION_INFO, eventfds
//! for DEVICE_GET_REGION_IO_FDS). A command the capture has no (more) request of is reported and
//! answered EINVAL. Captured server commands are sent in capture order: those the original sent
//! between a request and its reply go before that reply (each awaited when the original server had
//! its reply first), the others once every client command before them has arrived. Captured client
//! commands the live client never sent are reported when it closes the connection.
//!
//! # The comparison rule
//!
//! Every message the live peer sends is compared with its captured counterpart, field by field
//! from the codec's field tables ([`vfu_codec::Message::for_each_part`]): the header's `msg_id`,
//! `command`, `msg_size`, `flags` and `error_no`, every field of every body struct, capability and
//! array element, and every run of data bytes. A part present on one side only is a divergence
//! (`body`). A message that does not decode (on either side) is compared byte for byte after the
//! header. What is **not** compared, and why:
//!
//! | Left out | Why |
//! |---|---|
//! | timing (and round-trip times) | never the same twice; `--timing original` only paces what the replay sends |
//! | the number of descriptors: only their presence is compared | a server may pass one descriptor per area or share one; the descriptors themselves are new in every run |
//! | `RegionInfo.offset` of a message that carries descriptors | the mmap offset into that descriptor's file, chosen by the server for the file it made |
//! | `SparseMmapFdArea.fd_offset`, `IoFdShadowEntry.shadow_offset` | offsets into descriptors |
//! | `DmaMap.offset` of a DMA_MAP with a descriptor (`--serve`) | the offset into the client's memory file |
//! | the payload of an error reply (and so its `msg_size`) | receivers must ignore it (spec §1, header rule 5); libvfio-user attaches whatever it had prepared |
//! | the data of a server's DMA_WRITE, once any DMA window was backed by a descriptor (`--connect`) | the server may have computed it from client memory it read through its mapping, which starts zeroed in the replay; its address and count are compared |
//! | the data of the client's DMA_READ replies (`--serve`) | the live client's memory is its own |
//!
//! `msg_id` **is** compared: the replay sends the captured ids, so replies must echo them; a server
//! numbers its own requests, so a fresh server numbers them as the original did. In `--serve` the
//! live client's requests are compared with the captured ones by the same rule (ids included).
//!
//! Each divergence is printed as a diff that names the captured message (`#N`, its number in the
//! capture as `vfu-dump read` shows it) and the live one (`replay #N`, its number in the replay and
//! in the `-w` capture), with one `-` (captured) and one `+` (replayed) line per field. A message
//! that never came, or that the capture does not have, is a divergence too. `vfu-dump replay`
//! ([`cmd::replay::run`](crate::cmd::replay::run)) exits 0 when nothing diverged, 1 otherwise, 2 on
//! errors (nothing replayable, a socket that cannot be used).
//!
//! # Not supported
//!
//! - **Twin sockets.** A connection whose VERSION reply negotiated a twin socket is refused before
//!   anything is sent: its server requests travelled on a second socket (a connection of its own
//!   in a proxy capture), and the replay plays one socket. Offering `twin_socket` in the replayed
//!   VERSION request is fine as long as the original server declined.
//! - Descriptors other than the ones above (a VERSION request with descriptors, unknown commands
//!   with descriptors) are refused before sending.
//! - One connection per run; `--serve` serves one client.
//! - VDUSE captures.

pub mod client;
pub mod compare;
mod error;
mod fds;
mod memory;
mod options;
pub mod plan;
pub mod report;
pub mod serve;
mod wire;

pub use compare::FieldDiff;
pub use error::ReplayError;
pub use options::{Options, Timing};
pub use plan::{Plan, Side, load};
pub use report::{Divergence, Output, Report, What};
pub use serve::Serving;
