//! The emitter: a [`Capabilities`] value written back as compact JSON text.

use super::value::{Capabilities, Scope};
use crate::error::EncodeError;

impl Capabilities<'_> {
    /// Writes the capabilities as compact JSON, without a NUL; returns the length.
    ///
    /// The text is `{"capabilities":{…}}`. Known members come in this fixed order, each only when `Some`:
    /// `max_msg_fds`, `max_data_xfer_size`, `max_dma_maps`, `pgsizes`, `write_multiple`,
    /// `migration {pgsize, max_bitmap_size}`, `twin_socket {supported, fd_index}` (so libvfio-user's reply
    /// comes out byte for byte). Then each object's [`unknown`](Self::unknown) members, in their stored
    /// order, raw as stored: they must be valid JSON for the result to be. The `migration` and
    /// `twin_socket` objects are also written when only unknown members are in them; the `capabilities`
    /// object is left out when an ill-typed top-level `capabilities` member stands in its place.
    ///
    /// Parsing the output gives back an equal value when this one has no duplicate count, no ill-typed
    /// member whose field is also set, and its unknown members in the order they are written: those of
    /// `migration`, then `twin_socket`, then `capabilities`, then the top level (as any value parsed from
    /// this emitter's output has).
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Out { buf: out, len: 0 };
        self.write(&mut w);
        if w.len > w.buf.len() {
            return Err(EncodeError::BufferTooShort {
                need: w.len,
                have: w.buf.len(),
            });
        }
        Ok(w.len)
    }

    /// The number of bytes [`emit`](Self::emit) writes.
    pub fn emitted_len(&self) -> usize {
        let mut w = Out {
            buf: &mut [],
            len: 0,
        };
        self.write(&mut w);
        w.len
    }

    fn write(&self, w: &mut Out<'_>) {
        w.put(b"{");
        let mut top = Members::default();
        let caps_ill_typed = self
            .unknown_in(Scope::TopLevel)
            .any(|u| u.ill_typed && u.key_eq("capabilities"));
        if !caps_ill_typed {
            top.key(w, "capabilities");
            w.put(b"{");
            let mut m = Members::default();
            m.uint(w, "max_msg_fds", self.max_msg_fds);
            m.uint(w, "max_data_xfer_size", self.max_data_xfer_size);
            m.uint(w, "max_dma_maps", self.max_dma_maps);
            m.uint(w, "pgsizes", self.pgsizes);
            m.boolean(w, "write_multiple", self.write_multiple);
            if self.migration.is_some() || self.unknown_in(Scope::Migration).next().is_some() {
                let mig = self.migration.unwrap_or_default();
                m.key(w, "migration");
                w.put(b"{");
                let mut n = Members::default();
                n.uint(w, "pgsize", mig.pgsize);
                n.uint(w, "max_bitmap_size", mig.max_bitmap_size);
                self.write_unknown(w, &mut n, Scope::Migration);
                w.put(b"}");
            }
            if self.twin_socket.is_some() || self.unknown_in(Scope::TwinSocket).next().is_some() {
                let twin = self.twin_socket.unwrap_or_default();
                m.key(w, "twin_socket");
                w.put(b"{");
                let mut n = Members::default();
                n.boolean(w, "supported", twin.supported);
                n.uint(w, "fd_index", twin.fd_index);
                self.write_unknown(w, &mut n, Scope::TwinSocket);
                w.put(b"}");
            }
            self.write_unknown(w, &mut m, Scope::Capabilities);
            w.put(b"}");
        }
        self.write_unknown(w, &mut top, Scope::TopLevel);
        w.put(b"}");
    }

    fn write_unknown(&self, w: &mut Out<'_>, m: &mut Members, scope: Scope) {
        for u in self.unknown_in(scope) {
            m.key(w, u.key);
            w.put(u.value.as_bytes());
        }
    }
}

/// Output that counts what it could not write, so one walk gives both the bytes and the length.
struct Out<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
    }

    fn put_u64(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            if let Some(d) = digits.get_mut(at) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || at == 0 {
                break;
            }
        }
        self.put(digits.get(at..).unwrap_or(&[]));
    }
}

/// Writes the members of one object, with commas between them.
#[derive(Default)]
struct Members {
    any: bool,
}

impl Members {
    fn key(&mut self, w: &mut Out<'_>, raw: &str) {
        if self.any {
            w.put(b",");
        }
        self.any = true;
        w.put(b"\"");
        w.put(raw.as_bytes());
        w.put(b"\":");
    }

    fn uint(&mut self, w: &mut Out<'_>, name: &str, v: Option<u64>) {
        if let Some(n) = v {
            self.key(w, name);
            w.put_u64(n);
        }
    }

    fn boolean(&mut self, w: &mut Out<'_>, name: &str, v: Option<bool>) {
        if let Some(b) = v {
            self.key(w, name);
            w.put(if b { b"true" } else { b"false" });
        }
    }
}
