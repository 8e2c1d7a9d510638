//! Shared helpers for the end-to-end tests in `tests/tests/`.

use std::path::{Path, PathBuf};

use vfu_dump::capture::{self, OpenOptions, Record};

/// The repository's `corpus/` directory.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus")
}

/// Every record of a capture in `corpus/`, owned.
pub fn load(name: &str) -> Vec<Record> {
    let path = corpus_dir().join(name);
    let mut r = capture::open(&path, &OpenOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut v = Vec::new();
    while let Some(rec) = r
        .next_record()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    {
        v.push(rec.to_owned());
    }
    v
}

/// Whether `VFU_BLESS=1` asks tests to rewrite their golden files.
pub fn bless() -> bool {
    std::env::var_os("VFU_BLESS").is_some_and(|v| v == "1")
}

/// Compares `actual` with the golden file `path` (relative to the repository root), or rewrites it
/// under `VFU_BLESS=1`.
pub fn golden(path: &str, actual: &[u8]) {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    if bless() {
        std::fs::create_dir_all(full.parent().expect("golden path has a parent"))
            .expect("create golden dir");
        std::fs::write(&full, actual).expect("write golden file");
        return;
    }
    let want = std::fs::read(&full).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with VFU_BLESS=1 to create it)",
            full.display()
        )
    });
    if want != actual {
        let a = String::from_utf8_lossy(actual);
        let w = String::from_utf8_lossy(&want);
        for (i, (x, y)) in a.lines().zip(w.lines()).enumerate() {
            assert_eq!(
                x,
                y,
                "{}: first difference at line {} (VFU_BLESS=1 rewrites)",
                full.display(),
                i + 1
            );
        }
        panic!(
            "{}: differs in length ({} vs {} bytes; VFU_BLESS=1 rewrites)",
            full.display(),
            actual.len(),
            want.len()
        );
    }
}
