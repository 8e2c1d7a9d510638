//! The replaying client's memory: the DMA windows it mapped, each backed by the memfd it passed with
//! the DMA_MAP or, when the original mapping had no descriptor, by a buffer of its own.
//!
//! Reads and writes of a memfd use positioned I/O (`pread`/`pwrite` at the DMA_MAP's `offset`), so no
//! mapping (and no `unsafe`) is needed. A buffer is sparse, in 4 KiB pages made when first written, so
//! a window the size of a guest's RAM costs nothing until the server writes to it.

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use vfu_codec::errno;
use vfu_codec::vfio::{VFIO_DMA_UNMAP_FLAG_ALL, VFIO_USER_F_DMA_REGION_WRITE};

const PAGE: u64 = 4096;

/// EFAULT: no window covers the range.
pub(crate) const EFAULT: u32 = 14;
/// EPERM: the window does not allow the access.
pub(crate) const EPERM: u32 = 1;
/// EIO: reading or writing the memfd failed.
pub(crate) const EIO: u32 = 5;

enum Backing {
    Fd { fd: OwnedFd, offset: u64 },
    Pages(HashMap<u64, Box<[u8]>>),
}

struct Window {
    address: u64,
    size: u64,
    flags: u32,
    backing: Backing,
}

impl Window {
    fn covers(&self, address: u64, count: u64) -> bool {
        address >= self.address
            && address
                .checked_add(count)
                .is_some_and(|end| end <= self.address + self.size)
    }
}

/// The DMA windows.
#[derive(Default)]
pub(crate) struct Memory {
    windows: Vec<Window>,
    fd_backed: bool,
    /// Address ranges `[start, end)` the live server wrote with DMA_WRITE: seeding leaves them be.
    written: Vec<(u64, u64)>,
}

impl Memory {
    /// Maps a window; `fd` is the memfd sent with the DMA_MAP (the replay keeps it), `offset` the
    /// DMA_MAP's offset into it.
    pub(crate) fn map(&mut self, address: u64, size: u64, flags: u32, fd: Option<(OwnedFd, u64)>) {
        let backing = match fd {
            Some((fd, offset)) => {
                self.fd_backed = true;
                Backing::Fd { fd, offset }
            }
            None => Backing::Pages(HashMap::new()),
        };
        self.windows.push(Window {
            address,
            size: size.min(u64::MAX - address),
            flags,
            backing,
        });
    }

    /// Unmaps the window at exactly `address`/`size`, or everything with UNMAP_ALL.
    pub(crate) fn unmap(&mut self, address: u64, size: u64, flags: u32) {
        if flags & VFIO_DMA_UNMAP_FLAG_ALL != 0 {
            self.windows.clear();
            self.written.clear();
        } else {
            self.windows
                .retain(|w| !(w.address == address && w.size == size));
            let end = address.saturating_add(size);
            self.written.retain(|&(s, e)| e <= address || s >= end);
        }
    }

    /// Writes what the original client's memory held at `address` (the data of its DMA_READ
    /// reply), except where the live server has written since: there the live client's memory
    /// would hold what the server wrote.
    pub(crate) fn seed(&mut self, address: u64, data: &[u8]) {
        let end = address.saturating_add(data.len() as u64);
        let mut cuts: Vec<(u64, u64)> = self
            .written
            .iter()
            .filter(|&&(s, e)| s < end && e > address)
            .map(|&(s, e)| (s.max(address), e.min(end)))
            .collect();
        cuts.sort_unstable();
        let mut at = address;
        for (s, e) in cuts.into_iter().chain([(end, end)]) {
            if s > at {
                let part = &data[(at - address) as usize..(s - address) as usize];
                let _ = self.write(at, part, false);
            }
            at = at.max(e);
        }
    }

    /// Whether some window was ever backed by a descriptor: the server may then have read client
    /// memory directly, which the replay does not see.
    pub(crate) fn ever_fd_backed(&self) -> bool {
        self.fd_backed
    }

    fn window(&mut self, address: u64, count: u64) -> Result<&mut Window, u32> {
        self.windows
            .iter_mut()
            .rev()
            .find(|w| w.covers(address, count))
            .ok_or(EFAULT)
    }

    /// Reads `count` bytes at `address`.
    pub(crate) fn read(&mut self, address: u64, count: u64) -> Result<Vec<u8>, u32> {
        let w = self.window(address, count)?;
        let mut out = vec![0u8; count as usize];
        let at = address - w.address;
        match &w.backing {
            Backing::Fd { fd, offset } => {
                let mut done = 0;
                while done < out.len() {
                    match rustix::io::pread(fd, &mut out[done..], offset + at + done as u64) {
                        Ok(0) => break, // past the end of the file: zeros
                        Ok(n) => done += n,
                        Err(rustix::io::Errno::INTR) => {}
                        Err(_) => return Err(EIO),
                    }
                }
            }
            Backing::Pages(pages) => {
                let mut done = 0u64;
                while done < count {
                    let pos = at + done;
                    let (page, off) = (pos / PAGE, pos % PAGE);
                    let n = (PAGE - off).min(count - done);
                    if let Some(p) = pages.get(&page) {
                        out[done as usize..(done + n) as usize]
                            .copy_from_slice(&p[off as usize..(off + n) as usize]);
                    }
                    done += n;
                }
            }
        }
        Ok(out)
    }

    /// Writes `data` at `address`; `check` marks a server's DMA_WRITE: the window's WRITE permission
    /// is enforced and the range is remembered as written by the server.
    pub(crate) fn write(&mut self, address: u64, data: &[u8], check: bool) -> Result<(), u32> {
        let w = self.window(address, data.len() as u64)?;
        if check && w.flags & VFIO_USER_F_DMA_REGION_WRITE == 0 {
            return Err(EPERM);
        }
        let at = address - w.address;
        match &mut w.backing {
            Backing::Fd { fd, offset } => {
                let mut done = 0;
                while done < data.len() {
                    match rustix::io::pwrite(&*fd, &data[done..], *offset + at + done as u64) {
                        Ok(0) => return Err(EIO),
                        Ok(n) => done += n,
                        Err(rustix::io::Errno::INTR) => {}
                        Err(_) => return Err(EIO),
                    }
                }
            }
            Backing::Pages(pages) => {
                let mut done = 0usize;
                while done < data.len() {
                    let pos = at + done as u64;
                    let (page, off) = (pos / PAGE, (pos % PAGE) as usize);
                    let n = (PAGE as usize - off).min(data.len() - done);
                    let p = pages
                        .entry(page)
                        .or_insert_with(|| vec![0u8; PAGE as usize].into_boxed_slice());
                    p[off..off + n].copy_from_slice(&data[done..done + n]);
                    done += n;
                }
            }
        }
        if check && !data.is_empty() {
            self.written
                .push((address, address.saturating_add(data.len() as u64)));
        }
        Ok(())
    }
}

/// `EFAULT (14)`-style text for an errno the replay answers with.
pub(crate) fn errno_text(e: u32) -> String {
    format!("{} ({e})", errno::name(e).unwrap_or("?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_window_reads_back_and_zero_fills() {
        let mut m = Memory::default();
        m.map(0x10_0000, 3 * PAGE, 3, None);
        m.write(0x10_0ffe, b"abcd", true).unwrap();
        assert_eq!(m.read(0x10_0ffc, 8).unwrap(), b"\0\0abcd\0\0");
        assert_eq!(m.read(0x10_0000 + 3 * PAGE - 1, 2), Err(EFAULT));
        assert_eq!(m.read(0xfff, 1), Err(EFAULT));
        m.unmap(0x10_0000, 3 * PAGE, 0);
        assert_eq!(m.read(0x10_0000, 1), Err(EFAULT));
        assert!(!m.ever_fd_backed());
    }

    #[test]
    fn memfd_window_uses_the_offset_and_permissions() {
        let fd = rustix::fs::memfd_create("t", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 0x3000).unwrap();
        let probe = fd.try_clone().unwrap();
        let mut m = Memory::default();
        m.map(0x4000, 0x1000, 1, Some((fd, 0x2000)));
        assert_eq!(m.write(0x4010, b"x", true), Err(EPERM));
        m.write(0x4010, b"xy", false).unwrap();
        let mut b = [0u8; 2];
        rustix::io::pread(&probe, &mut b, 0x2010).unwrap();
        assert_eq!(&b, b"xy");
        assert_eq!(m.read(0x4010, 2).unwrap(), b"xy");
        assert!(m.ever_fd_backed());
        m.unmap(0, 0, VFIO_DMA_UNMAP_FLAG_ALL);
        assert_eq!(m.read(0x4010, 2), Err(EFAULT));
    }

    #[test]
    fn seeding_keeps_what_the_server_wrote() {
        let mut m = Memory::default();
        m.map(0x1000, 0x1000, 3, None);
        m.write(0x1004, b"SRV", true).unwrap();
        m.seed(0x1000, b"abcdefghij");
        assert_eq!(m.read(0x1000, 10).unwrap(), b"abcdSRVhij");
        m.unmap(0x1000, 0x1000, 0);
        m.map(0x1000, 0x1000, 3, None);
        m.seed(0x1000, b"abcdefghij");
        assert_eq!(m.read(0x1000, 10).unwrap(), b"abcdefghij");
    }
}
