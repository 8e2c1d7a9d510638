//! Every example of every `--help` (the tool's and each subcommand's) that uses the shipped corpus
//! runs as written: in the repository root, with `vfu-dump` on the PATH, through `bash` (pipes,
//! redirections and `# comments` as a shell reads them), with HOME and `/tmp/` pointing at a scratch
//! directory so that nothing outside it is written. Each must exit 0 and print something (for
//! `validate`, whose findings are none, its summary on standard error), or write a non-empty file
//! where it redirects or converts to. Examples that need a live peer or a file of
//! the reader's own (`session.pcapng`, `--connect /run/device.sock`) are not run.
//!
//! An example that needs a program this machine lacks (`jq`, `tshark`) is skipped with the marker
//! `SKIPPED: <test>: needs … (apt-get install …)`.

#![allow(clippy::unwrap_used)] // test helpers: a failure is a test failure

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vfu-dump"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?} --help: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands `vfu-dump --help` lists (without `help`).
fn subcommands(top: &str) -> Vec<String> {
    top.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// The example lines of a help text: the indented lines after `Examples:`, up to a blank line,
/// that are commands (the first word is `vfu-dump`, `cat`, `mkdir` or `tshark`). The others must
/// be descriptions (ending in `:`) or notes (in parentheses): a command clap wrapped would show up
/// as a line of neither kind, and fails.
fn examples(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in text
        .lines()
        .skip_while(|l| l.trim() != "Examples:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
    {
        // Short enough that an 80-column terminal does not wrap it: it is pasted as shown.
        assert!(
            l.chars().count() <= 80,
            "an example line longer than 80 columns: {l}"
        );
        let l = l.trim();
        let first = l.split_whitespace().next().unwrap_or("");
        if ["vfu-dump", "cat", "mkdir", "tshark"].contains(&first) {
            out.push(l.to_owned());
        } else {
            assert!(
                l.ends_with(':') || l.starts_with('('),
                "an example line that is neither a command nor a description (wrapped?): {l}"
            );
        }
    }
    out
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn skipped(why: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: help_examples_on_the_corpus_run_as_written: {why}"
    );
}

/// The file an example writes, if any: the target of its last `>`, or the last argument of a
/// `convert`.
fn written_file(example: &str) -> Option<String> {
    let code = example.split(" #").next().unwrap_or(example);
    if let Some((_, target)) = code.rsplit_once('>') {
        return target.split_whitespace().next().map(str::to_owned);
    }
    if code.contains(" convert ") {
        return code.split_whitespace().last().map(str::to_owned);
    }
    None
}

#[test]
fn help_examples_on_the_corpus_run_as_written() {
    let scratch = std::env::temp_dir().join(format!("vfu-help-examples-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let home = scratch.join("home");
    let tmp = scratch.join("tmp");
    let bin = scratch.join("bin");
    for d in [&home, &tmp, &bin] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_vfu-dump"), bin.join("vfu-dump")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let top = help(&[]);
    let subs = subcommands(&top);
    for want in [
        "read",
        "validate",
        "convert",
        "proxy",
        "replay",
        "wireshark-dissector",
    ] {
        assert!(subs.iter().any(|s| s == want), "{want} not in {subs:?}");
    }
    let mut blocks = vec![(String::from("vfu-dump"), examples(&top))];
    for s in &subs {
        let ex = examples(&help(&[s]));
        assert!(!ex.is_empty(), "vfu-dump {s} --help has no examples");
        blocks.push((format!("vfu-dump {s}"), ex));
    }

    let mut ran = 0;
    for (what, lines) in &blocks {
        for example in lines {
            let code = example.split(" #").next().unwrap_or(example);
            if !code.contains("corpus/") && !code.contains("~/") {
                continue;
            }
            let mut missing = None;
            for (tool, package) in [("jq", "jq"), ("tshark", "tshark")] {
                if code.split_whitespace().any(|w| w == tool) && !have(tool) {
                    missing = Some(format!("needs {tool} (apt-get install {package})"));
                }
            }
            if let Some(why) = missing {
                skipped(&format!("{why} for the {what} example `{example}`"));
                continue;
            }
            let script = example.replace("/tmp/", &format!("{}/", tmp.display()));
            let out = Command::new("bash")
                .arg("-c")
                .arg(format!("set -o pipefail; {script}"))
                .current_dir(root())
                .env("PATH", &path)
                .env("HOME", &home)
                .env_remove("XDG_CONFIG_HOME")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "{what} example exits {:?}: {example}\n{stderr}",
                out.status.code()
            );
            // `validate` on a clean capture prints only its summary line, on standard error.
            if let Some(dir) = code.strip_prefix("mkdir -p ").filter(|d| !d.contains(' ')) {
                let dir = dir.replacen('~', &home.display().to_string(), 1);
                assert!(Path::new(&dir).is_dir(), "{what}: {example} made no {dir}");
            } else if out.stdout.is_empty() && (stderr.is_empty() || !code.contains(" validate ")) {
                let file = written_file(&script).unwrap_or_else(|| {
                    panic!("{what} example prints nothing and writes no file: {example}")
                });
                let file = file.replacen('~', &home.display().to_string(), 1);
                let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                assert!(len > 0, "{what} example wrote nothing to {file}: {example}");
            }
            assert!(
                !stderr.contains("warning:"),
                "{what} example warns: {example}\n{stderr}"
            );
            ran += 1;
        }
    }
    assert!(ran >= 12, "only {ran} examples ran");
    let _ = std::fs::remove_dir_all(&scratch);
}
