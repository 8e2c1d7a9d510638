//! The `.msgs` files of `testdata/`: captured vfio-user messages one after another, each as one
//! direction byte (0 client to server, 1 server to client), its length (u32, little-endian) and its
//! bytes, as captured (a malformed message's `msg_size` need not match its length).

use vfu_codec::Direction;

/// The records of a `.msgs` file, in order. Panics on a malformed file (it is test data).
pub fn records(file: &[u8]) -> Vec<(Direction, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < file.len() {
        let direction = match file[at] {
            0 => Direction::ClientToServer,
            1 => Direction::ServerToClient,
            b => panic!("direction byte {b} at offset {at}"),
        };
        let len = file
            .get(at + 1..at + 5)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .unwrap_or_else(|| panic!("no length after offset {at}"));
        let message = file
            .get(at + 5..at + 5 + len)
            .unwrap_or_else(|| panic!("{len} bytes do not fit after offset {at}"));
        out.push((direction, message));
        at += 5 + len;
    }
    out
}

/// A `.msgs` file holding `records`.
#[allow(dead_code)] // used by the test that derives the files, not by the others that include this
pub fn file(records: &[(Direction, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (d, m) in records {
        out.push(u8::from(*d == Direction::ServerToClient));
        out.extend_from_slice(&(m.len() as u32).to_le_bytes());
        out.extend_from_slice(m);
    }
    out
}
