//! Raw input: one direction's vfio-user byte stream, framed by `msg_size` straight in the read buffer.

use std::io::Read;

use vfu_codec::{Direction, HEADER_SIZE};

use super::error::CaptureError;
use super::input::Input;
use super::record::{Connection, MAX_RECORD_LEN, Meta, Protocol};

const CTX_MESSAGE: &str = "raw message";

pub(crate) struct RawReader<R> {
    input: Input<R>,
    direction: Direction,
    connections: Vec<Connection>,
    pending: usize,
}

impl<R: Read> RawReader<R> {
    pub(crate) fn new(input: Input<R>, direction: Direction) -> Self {
        RawReader {
            input,
            direction,
            connections: vec![Connection {
                id: 0,
                name: "vfio-user:0:".to_owned(),
                protocol: Protocol::VfioUser,
            }],
            pending: 0,
        }
    }

    pub(crate) fn connections(&self) -> &[Connection] {
        &self.connections
    }

    pub(crate) fn data(&self, m: &Meta) -> &[u8] {
        self.input.data().get(..m.len).unwrap_or(&[])
    }

    pub(crate) fn advance(&mut self) -> Result<Option<Meta>, CaptureError> {
        self.input.consume(std::mem::take(&mut self.pending));
        let offset = self.input.offset();
        let io = |e| CaptureError::io(offset, e);
        let have = self.input.fill(HEADER_SIZE).map_err(io)?;
        if have == 0 {
            return Ok(None);
        }
        let (len, truncated) = match vfu_codec::frame::msg_size(self.input.data()) {
            None => (have, true),
            // Receivers consume the 16 header bytes of a header whose msg_size is below 16.
            Some(size) if (size as usize) < HEADER_SIZE => (HEADER_SIZE, false),
            Some(size) => {
                let size = size as usize;
                let have = self.input.fill(size.min(MAX_RECORD_LEN + 1)).map_err(io)?;
                if have > MAX_RECORD_LEN {
                    return Err(CaptureError::TooLarge {
                        offset,
                        context: CTX_MESSAGE,
                        len: size as u64,
                        limit: MAX_RECORD_LEN as u64,
                    });
                }
                (have, have < size)
            }
        };
        self.pending = len;
        Ok(Some(Meta {
            conn: 0,
            ts_ns: 0,
            direction: self.direction,
            protocol: Protocol::VfioUser,
            fds: 0,
            truncated,
            orig_len: len,
            file_offset: offset,
            start: 0,
            len,
            stream: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{CaptureReader, OpenOptions};

    fn msg(size: u32, len: usize) -> Vec<u8> {
        let mut m = vec![0x5Au8; len];
        m[0..4].copy_from_slice(&[1, 0, 1, 0]);
        m[4..8].copy_from_slice(&size.to_le_bytes());
        m
    }

    #[test]
    fn frames_and_keeps_the_tail() {
        let mut s = msg(40, 40);
        s.extend(msg(3, 16)); // msg_size below 16: its header alone
        s.extend(msg(16, 16));
        s.extend(msg(100, 30)); // the stream ends inside it
        let mut r =
            CaptureReader::new(&s[..], &OpenOptions::raw(Direction::ServerToClient)).unwrap();
        let mut got = vec![];
        while let Some(rec) = r.next_record().unwrap() {
            assert_eq!(rec.direction, Direction::ServerToClient);
            got.push((rec.file_offset, rec.data.len(), rec.truncated));
        }
        assert_eq!(
            got,
            vec![
                (0, 40, false),
                (40, 16, false),
                (56, 16, false),
                (72, 30, true)
            ]
        );
        // A tail shorter than a header.
        let mut r =
            CaptureReader::new(&s[..60], &OpenOptions::raw(Direction::ClientToServer)).unwrap();
        r.next_record().unwrap();
        r.next_record().unwrap();
        let tail = r.next_record().unwrap().unwrap();
        assert_eq!((tail.data.len(), tail.truncated), (4, true));
        assert!(r.next_record().unwrap().is_none());
    }

    #[test]
    fn huge_msg_size_in_a_short_stream_is_a_truncated_record() {
        let s = msg(u32::MAX, 64);
        let mut r =
            CaptureReader::new(&s[..], &OpenOptions::raw(Direction::ClientToServer)).unwrap();
        let rec = r.next_record().unwrap().unwrap();
        assert_eq!((rec.data.len(), rec.truncated), (64, true));
    }
}
