//! What the command-line tests share (`tests/errors.rs`, `tests/snaplen.rs`, `tests/trace.rs`,
//! `tests/proxy.rs`):
//! running vfu-dump, a scratch directory, waiting for something to happen, and a proxy child
//! stopped when the test ends. Each includes it with `#[path = "common/cli.rs"] mod cli;`, so
//! that the tests of the rust-vmm session (`common/mod.rs`) do not compile it unused.

#![allow(dead_code)] // each test file uses some of it

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs vfu-dump in the repository root; returns (status, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vfu-dump"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run vfu-dump");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh scratch directory (`vfu-NAME-PID-N` in the temporary directory), removed when dropped.
pub struct Tmp(pub PathBuf);

impl Tmp {
    pub fn new(name: &str) -> Tmp {
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "vfu-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }

    /// `name` in the directory, as a string (for arguments).
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    /// The names of the files in the directory, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl std::ops::Deref for Tmp {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits until `f` holds, failing the test after 20 s (`what`: what is waited for).
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `vfu-dump proxy` child, killed when dropped unless [`interrupt`](Self::interrupt) ended it.
pub struct ProxyChild(Option<Child>);

impl ProxyChild {
    /// Starts `vfu-dump proxy --quiet EXTRA --listen LISTEN --connect CONNECT -w CAPTURE` and
    /// connects a client to its listen socket once it is there.
    pub fn start(
        extra: &[&str],
        listen: &Path,
        connect: &Path,
        capture: &Path,
    ) -> (ProxyChild, UnixStream) {
        let child = Command::new(env!("CARGO_BIN_EXE_vfu-dump"))
            .args(["proxy", "--quiet"])
            .args(extra)
            .arg("--listen")
            .arg(listen)
            .arg("--connect")
            .arg(connect)
            .arg("-w")
            .arg(capture)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let child = ProxyChild(Some(child));
        let mut c = None;
        wait_until("the listen socket", || {
            c = UnixStream::connect(listen).ok();
            c.is_some()
        });
        (child, c.unwrap())
    }

    /// Stops it with SIGINT, as a person's ^C does, and returns what it printed.
    pub fn interrupt(mut self) -> Output {
        let child = self.0.take().unwrap();
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::INT,
        )
        .unwrap();
        child.wait_with_output().unwrap()
    }
}

impl Drop for ProxyChild {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
