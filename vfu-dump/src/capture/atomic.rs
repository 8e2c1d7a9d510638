//! [`AtomicFile`]: an output file that appears whole or not at all.
//!
//! Every capture vfu-dump writes (`convert`, `proxy -w`, `replay -w`) is written under a temporary
//! name beside its path, `.NAME.vfu-PID.tmp` in the same directory (so that the rename cannot cross
//! file systems), and renamed onto the path by [`AtomicFile::commit`] once it is complete. When the
//! run fails, the [`AtomicFile`] is dropped without a commit and the temporary file is removed: no
//! partial capture is left where a complete one is expected, and an existing file at the path is
//! left as it was.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The temporary file behind an output path until [`commit`](Self::commit); see the module
/// documentation.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: PathBuf,
    path: PathBuf,
    committed: bool,
}

/// Distinguishes the temporary files of one process.
static NEXT: AtomicU32 = AtomicU32::new(0);

impl AtomicFile {
    /// Creates the temporary file for `path` and returns it with the [`File`] to write. Fails at
    /// once, with the OS's reason and the path, when `path` is a directory or its directory cannot
    /// be written.
    pub fn create(path: &Path) -> io::Result<(AtomicFile, File)> {
        let named = |e: io::Error, what: &str| {
            io::Error::new(e.kind(), format!("{}: {what}{e}", path.display()))
        };
        if fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{}: is a directory", path.display()),
            ));
        }
        let Some(name) = path.file_name() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a file name", path.display()),
            ));
        };
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(
            ".vfu-{}-{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = path.with_file_name(tmp_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| named(e, "cannot create a file in its directory: "))?;
        Ok((
            AtomicFile {
                tmp,
                path: path.to_path_buf(),
                committed: false,
            },
            file,
        ))
    }

    /// The temporary file's path.
    pub fn temporary_path(&self) -> &Path {
        &self.tmp
    }

    /// The path the file appears at when committed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the temporary file onto the path. Call it once everything is written and flushed.
    pub fn commit(mut self) -> io::Result<()> {
        fs::rename(&self.tmp, &self.path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{}: cannot rename {} onto it: {e}",
                    self.path.display(),
                    self.tmp.display()
                ),
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vfu-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn appears_only_when_committed() {
        let d = dir("commit");
        let path = d.join("out.pcapng");
        let (a, mut f) = AtomicFile::create(&path).unwrap();
        f.write_all(b"data").unwrap();
        assert!(!path.exists());
        assert!(a.temporary_path().exists());
        assert_eq!(a.temporary_path().parent(), path.parent());
        a.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"data");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1, "no temporary left");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn dropped_leaves_nothing_and_keeps_an_existing_file() {
        let d = dir("drop");
        let path = d.join("out.pcapng");
        fs::write(&path, b"old").unwrap();
        let (a, mut f) = AtomicFile::create(&path).unwrap();
        f.write_all(b"partial").unwrap();
        drop(a);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1, "temporary removed");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_a_directory_and_an_unwritable_place_with_the_reason() {
        let d = dir("refuse");
        let e = AtomicFile::create(&d).unwrap_err();
        assert!(e.to_string().ends_with("is a directory"), "{e}");
        let e = AtomicFile::create(&d.join("no/such/dir/out.pcapng")).unwrap_err();
        assert!(e.to_string().contains("No such file or directory"), "{e}");
        assert!(e.to_string().contains("no/such/dir/out.pcapng"), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }
}
