//! Errors a person can act on: the OS's reason once on every I/O error, options that cannot apply
//! refused or warned about, filters that match nothing said so, and outputs that appear whole or not
//! at all (`convert`, `proxy -w` interrupted by SIGINT).

#![allow(clippy::unwrap_used)] // test helpers: a failure is a test failure

#[path = "common/cli.rs"]
mod cli;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use cli::{ProxyChild, Tmp, root, run};

const SAMPLE: &str = "corpus/lvu-sample-client.pcapng";

#[test]
fn io_errors_name_the_path_once_and_the_os_reason() {
    let (code, _, err) = run(&["read", "missing.pcapng"]);
    assert_eq!(code, 2);
    assert_eq!(
        err.trim_end(),
        "error: cannot open missing.pcapng: No such file or directory (os error 2)"
    );
    assert_eq!(err.matches("missing.pcapng").count(), 1, "{err}");

    let dir = std::env::temp_dir();
    let (code, _, err) = run(&["read", dir.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("is a directory"), "{err}");
    assert!(!err.contains("read failed"), "{err}");

    let t = Tmp::new("errors-io");
    let out = t.0.join("no/such/dir/out.pcapng");
    let (code, _, err) = run(&["convert", SAMPLE, out.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("No such file or directory"), "{err}");
    let (code, _, err) = run(&["convert", SAMPLE, t.0.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn options_that_cannot_apply_are_refused_or_warned_about() {
    // --direction without --raw does nothing: refused, with the filter that was probably meant.
    let (code, out, err) = run(&["read", "--direction", "c2s", SAMPLE]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("needs --raw") && err.contains("--dir c2s"),
        "{err}"
    );
    let (code, _, err) = run(&["convert", "--direction", "s2c", SAMPLE, "-"]);
    assert_eq!(code, 2);
    assert!(err.contains("needs --raw"), "{err}");

    // --raw on a pcapng: read as the capture it is, with a warning.
    let (code, out, err) = run(&["read", "--raw", "--direction", "c2s", SAMPLE]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 224);
    assert!(
        err.contains("warning:") && err.contains("a pcapng capture, read as one"),
        "{err}"
    );

    // --profile chooses --validate's rules.
    let (code, _, err) = run(&["read", "--profile", "qemu", SAMPLE]);
    assert_eq!(code, 2);
    assert!(err.contains("--validate"), "{err}");

    // --stats is text: no JSON form.
    let (code, _, err) = run(&["read", "--stats", "--format", "json", SAMPLE]);
    assert_eq!(code, 2);
    assert!(err.contains("--stats"), "{err}");

    // Filters and -x select and dump message lines, which --stats alone leaves out.
    let (code, _, err) = run(&["read", "--stats", "--cmd", "DMA_MAP", SAMPLE]);
    assert_eq!(code, 0);
    assert!(
        err.contains("warning: --cmd DMA_MAP selects message lines"),
        "{err}"
    );

    // Text-only options with JSON.
    let (code, out, err) = run(&["read", "-x", "--format", "json", "--id", "4660", SAMPLE]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2);
    assert!(err.contains("warning: -x is a text form"), "{err}");

    // --list-rules takes no input.
    let (code, _, err) = run(&["validate", "--list-rules", SAMPLE]);
    assert_eq!(code, 2);
    assert!(err.contains("--list-rules"), "{err}");

    // --validate with --stats alone: the findings are printed, not dropped.
    let (code, out, _) = run(&[
        "read",
        "--stats",
        "--validate",
        "corpus/lvu-pytest-subset.pcapng",
    ]);
    assert_eq!(code, 0);
    let (_, findings, _) = run(&["validate", "--info", "corpus/lvu-pytest-subset.pcapng"]);
    let first = findings.lines().next().unwrap();
    assert!(out.contains(first), "{first} not in:\n{out}");
}

#[test]
fn a_filter_that_matches_nothing_says_so() {
    let (code, out, err) = run(&["read", "--cmd", "9999", SAMPLE]);
    assert_eq!(code, 0);
    assert!(out.is_empty());
    assert_eq!(
        err.trim_end(),
        "read: no message matched --cmd 9999 (the input has 224 messages on 1 connection, numbered 0)"
    );
    let (_, out, err) = run(&["read", "--conn", "7", SAMPLE]);
    assert!(out.is_empty());
    assert!(err.contains("there is no connection 7"), "{err}");
    // A filter that matched something says nothing.
    let (_, out, err) = run(&["read", "--cmd", "VERSION", SAMPLE]);
    assert_eq!(out.lines().count(), 2);
    assert!(err.is_empty(), "{err}");
}

#[test]
fn convert_of_a_damaged_capture_leaves_no_file_and_says_so() {
    let t = Tmp::new("errors-convert");
    let sample = std::fs::read(root().join(SAMPLE)).unwrap();
    let damaged = t.0.join("damaged.pcapng");
    std::fs::write(&damaged, &sample[..30_000]).unwrap();
    let out = t.0.join("out.pcapng");
    let (code, _, err) = run(&["convert", damaged.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("offset 0x"), "{err}");
    assert!(err.contains("out.pcapng was not written"), "{err}");
    assert_eq!(
        t.files(),
        ["damaged.pcapng"],
        "no output, no temporary file"
    );

    // An existing file at the path is left as it was.
    std::fs::write(&out, b"keep").unwrap();
    let (code, _, _) = run(&["convert", damaged.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(std::fs::read(&out).unwrap(), b"keep");

    // A whole input: the output appears whole.
    let (code, _, err) = run(&["convert", SAMPLE, out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(t.files(), ["damaged.pcapng", "out.pcapng"]);
    let (_, a, _) = run(&["read", SAMPLE]);
    let (_, b, _) = run(&["read", out.to_str().unwrap()]);
    assert_eq!(a, b);
}

/// A 16-byte vfio-user header.
fn header(id: u16, cmd: u16, reply: bool) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..2].copy_from_slice(&id.to_le_bytes());
    h[2..4].copy_from_slice(&cmd.to_le_bytes());
    h[4..8].copy_from_slice(&16u32.to_le_bytes());
    h[8] = u8::from(reply);
    h
}

#[test]
fn proxy_interrupted_by_sigint_keeps_its_capture() {
    let t = Tmp::new("errors-sigint");
    let server_path = t.0.join("s.sock");
    let listener = UnixListener::bind(&server_path).unwrap();
    // The server answers one DEVICE_RESET.
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut h = [0u8; 16];
        s.read_exact(&mut h).unwrap();
        s.write_all(&header(1, 13, true)).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let cap = t.0.join("cap.pcapng");
    let client_path = t.0.join("c.sock");
    let (child, mut c) = ProxyChild::start(&[], &client_path, &server_path, &cap);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(&header(1, 13, false)).unwrap();
    let mut reply = [0u8; 16];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(reply, header(1, 13, true));
    // While it runs, the capture is being written beside its path.
    assert!(!cap.exists());
    let out = child.interrupt();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    drop(c);
    server.join().unwrap();
    // Everything captured is at the path, and nothing else is left.
    let (code, text, err) = run(&["read", cap.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains("DEVICE_RESET cmd") && text.contains("DEVICE_RESET ok"),
        "{text}"
    );
    assert_eq!(t.files(), ["cap.pcapng", "s.sock"]);
}
