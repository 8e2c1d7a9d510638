//! Message boundaries as a receiver sees them, from the headers alone.

use vfu_codec::{Command, HEADER_SIZE, Header};

/// The size a receiver gives a message with this header: its `msg_size`, or the 16 header bytes when
/// `msg_size` is below that (as receivers take them).
pub(super) fn frame_size(header: &[u8]) -> u64 {
    vfu_codec::frame::msg_size(header)
        .map_or(HEADER_SIZE as u64, |s| u64::from(s).max(HEADER_SIZE as u64))
}

/// Where the opaque data of a message with this header starts in its body (after the fixed part), for
/// the commands whose variable part is bytes that nothing decodes: REGION_READ/WRITE, DMA_READ/WRITE
/// and MIG_DATA_READ/WRITE, in the direction that carries the data, not error replies.
pub(super) fn opaque_data_from(h: &Header) -> u64 {
    if h.is_error() {
        return u64::MAX;
    }
    let reply = h.is_reply();
    match (h.cmd(), reply) {
        (Command::REGION_WRITE | Command::DMA_WRITE, false)
        | (Command::REGION_READ | Command::DMA_READ, true) => 16,
        (Command::MIG_DATA_WRITE, false) | (Command::MIG_DATA_READ, true) => 8,
        _ => u64::MAX,
    }
}

/// The message a read's descriptors belong to: of the messages that start in `buf[..end]` (one
/// starts at 0, and the others follow from the headers' sizes), the last one that starts at or after
/// `start`, where the read began; 0, the message held from earlier reads, when none does. Linux ends
/// a read right after the `sendmsg` that carried descriptors (`unix_stream_read_generic`) and every
/// vfio-user sender puts them with the message's first byte, so the last message that starts in a
/// read is theirs.
pub(super) fn fds_owner(buf: &[u8], start: usize, end: usize) -> usize {
    let mut owner = 0;
    let mut pos = 0usize;
    while pos < end {
        if pos >= start {
            owner = pos;
        }
        if end - pos < HEADER_SIZE {
            break;
        }
        let size = frame_size(&buf[pos..]);
        pos = pos.saturating_add(usize::try_from(size).unwrap_or(usize::MAX));
    }
    owner
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(size: u32) -> [u8; 16] {
        let mut h = [0u8; 16];
        h[4..8].copy_from_slice(&size.to_le_bytes());
        h
    }

    #[test]
    fn a_reads_descriptors_go_to_the_last_message_that_starts_in_it() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&header(20));
        stream.extend_from_slice(&[0; 4]);
        stream.extend_from_slice(&header(16));
        // A read of everything: the second message (at 20) is the last to start in it.
        assert_eq!(fds_owner(&stream, 0, stream.len()), 20);
        // A read that ends inside the first message: its own.
        assert_eq!(fds_owner(&stream, 0, 10), 0);
        // A read that continues the first message (held from 0) and holds the second: the second.
        assert_eq!(fds_owner(&stream, 10, stream.len()), 20);
        // A read that only continues the first: the held one.
        assert_eq!(fds_owner(&stream, 10, 18), 0);
        // Three whole headers and a partial one: the partial one at 48.
        let mut four = [header(16), header(16), header(16)].concat();
        four.extend_from_slice(&header(40)[..8]);
        assert_eq!(fds_owner(&four, 0, four.len()), 48);
        // msg_size below 16 takes the 16 header bytes, as receivers do; a huge one ends the scan.
        let bad = [header(3), header(16)].concat();
        assert_eq!(fds_owner(&bad, 0, bad.len()), 16);
        let huge = [header(u32::MAX), header(16)].concat();
        assert_eq!(fds_owner(&huge, 0, huge.len()), 0);
    }

    #[test]
    fn frame_sizes_as_receivers_take_them() {
        assert_eq!(frame_size(&header(0)), 16);
        assert_eq!(frame_size(&header(15)), 16);
        assert_eq!(frame_size(&header(16416)), 16416);
        assert_eq!(frame_size(&header(u32::MAX)), u64::from(u32::MAX));
    }

    #[test]
    fn transfer_data_starts_after_the_fixed_part() {
        let mut h = header(132);
        h[2..4].copy_from_slice(&10u16.to_le_bytes()); // REGION_WRITE
        assert_eq!(opaque_data_from(Header::peek(&h).unwrap()), 16);
        h[8..12].copy_from_slice(&1u32.to_le_bytes()); // its reply carries no data
        assert_eq!(opaque_data_from(Header::peek(&h).unwrap()), u64::MAX);
        h[2..4].copy_from_slice(&9u16.to_le_bytes()); // REGION_READ reply does
        assert_eq!(opaque_data_from(Header::peek(&h).unwrap()), 16);
        h[8..12].copy_from_slice(&(1u32 | 0x20).to_le_bytes()); // not an error reply
        assert_eq!(opaque_data_from(Header::peek(&h).unwrap()), u64::MAX);
    }
}
