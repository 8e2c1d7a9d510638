//! Golden CLI tests: `vfu-dump` run on the corpus, its output compared with `corpus/expected/cli/*`

#![allow(clippy::unwrap_used)] // test helpers: a failure is a test failure
//! (`VFU_BLESS=1` rewrites them), plus exit statuses and the README's rule table.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bless() -> bool {
    std::env::var_os("VFU_BLESS").is_some_and(|v| v == "1")
}

/// Runs vfu-dump in the repository root; returns (status, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vfu-dump"))
        .args(args)
        .current_dir(root())
        .env_remove("NO_COLOR")
        .output()
        .expect("run vfu-dump");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn golden(name: &str, actual: &str) {
    let path = root().join("corpus/expected/cli").join(name);
    if bless() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (VFU_BLESS=1 creates it)", path.display()));
    for (i, (a, w)) in actual.lines().zip(want.lines()).enumerate() {
        assert_eq!(
            a,
            w,
            "{name}: line {} differs (VFU_BLESS=1 rewrites)",
            i + 1
        );
    }
    assert_eq!(
        actual.lines().count(),
        want.lines().count(),
        "{name}: line count differs"
    );
}

#[test]
fn read_sample_session_text() {
    let (code, out, err) = run(&["read", "corpus/lvu-sample-client.pcapng"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 224);
    assert!(!out.contains('\u{1b}'), "no colour when not a terminal");
    golden("read-lvu-sample-client.txt", &out);
}

#[test]
fn read_verbose_hex_of_one_exchange() {
    let (code, out, err) = run(&[
        "read",
        "-v",
        "-x",
        "--id",
        "4660",
        "corpus/lvu-sample-client.pcapng",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("DmaMap.address"), "{out}");
    golden("read-verbose-hex-dma-map.txt", &out);
}

#[test]
fn read_json_is_one_object_per_line() {
    let (code, out, err) = run(&[
        "read",
        "--format",
        "json",
        "corpus/lvu-sample-client-migrated.pcapng",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines.len(), 90);
    for l in &lines {
        assert!(l.starts_with("{\"index\":") && l.ends_with('}'), "{l}");
    }
    golden("read-json-lvu-sample-client-migrated.jsonl", &out);
}

#[test]
fn read_filters_combine() {
    let (code, out, _) = run(&[
        "read",
        "--cmd",
        "DMA_MAP",
        "--dir",
        "c2s",
        "corpus/lvu-sample-client.pcapng",
    ]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 16, "{out}");
    assert!(out.lines().all(|l| l.contains("DMA_MAP cmd")));
    let (_, out, _) = run(&["read", "--errors", "corpus/lvu-sample-client.pcapng"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("EINVAL(22)"));
    let (_, out, _) = run(&["read", "--errors", "corpus/lvu-pytest-subset.pcapng"]);
    golden("read-errors-lvu-pytest-subset.txt", &out);
    let (code, _, err) = run(&[
        "read",
        "--cmd",
        "NOT_A_COMMAND",
        "corpus/lvu-sample-client.pcapng",
    ]);
    assert_eq!(code, 2);
    assert!(err.starts_with("error: --cmd NOT_A_COMMAND"), "{err}");
}

#[test]
fn read_stats() {
    let (code, out, err) = run(&["read", "--stats", "corpus/lvu-sample-client.pcapng"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("224 messages"), "{out}");
    assert!(
        out.contains("REGION_READ") && out.contains("EINVAL=1"),
        "{out}"
    );
    assert!(out.contains("negotiated capabilities"), "{out}");
}

#[test]
fn unreadable_input_exits_2() {
    let (code, _, err) = run(&["read", "does-not-exist.pcapng"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: cannot open does-not-exist.pcapng: No such file or directory"),
        "{err}"
    );
    let (code, _, err) = run(&["read", "README.md"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--raw"),
        "an unknown magic suggests --raw: {err}"
    );
}

#[test]
fn convert_then_read_gives_the_same_messages() {
    let dir = std::env::temp_dir().join(format!("vfu-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("copy.pcapng");
    let (code, _, err) = run(&[
        "convert",
        "corpus/lvu-pytest-subset.pcapng",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, a, _) = run(&[
        "read",
        "--format",
        "json",
        "corpus/lvu-pytest-subset.pcapng",
    ]);
    let (_, b, _) = run(&["read", "--format", "json", out.to_str().unwrap()]);
    assert_eq!(a, b);
    std::fs::remove_dir_all(&dir).ok();
}

/// `convert` (pcapng to pcapng) keeps what the descriptors are (the `fd=` comment words `trace -w`
/// writes), and `read` of either file shows them.
#[test]
fn convert_keeps_descriptor_descriptions() {
    use vfu_codec::Direction;
    use vfu_dump::capture::{PcapngWriter, Protocol, RecordRef};
    let dir = std::env::temp_dir().join(format!("vfu-cli-fd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (input, out) = (dir.join("in.pcapng"), dir.join("out.pcapng"));
    // A DEVICE_RESET command (16 bytes), twice: with two described descriptors, then with a count
    // only.
    let mut reset = [0u8; 16];
    reset[2] = 13;
    reset[4] = 16;
    let kinds = ["/memfd:guest ram (deleted)".to_string(), "100%".to_string()];
    let mut w = PcapngWriter::new(Vec::new()).unwrap();
    w.add_connection("vfio-user:0:/s", Protocol::VfioUser)
        .unwrap();
    for (i, k) in [&kinds[..], &[]].into_iter().enumerate() {
        w.write_record(&RecordRef {
            conn: 0,
            ts_ns: 1_000 + i as u64,
            direction: Direction::ClientToServer,
            protocol: Protocol::VfioUser,
            fds: 2,
            fd_kinds: k,
            truncated: false,
            data: &reset,
            orig_len: 16,
            index: 0,
            file_offset: 0,
        })
        .unwrap();
    }
    std::fs::write(&input, w.into_inner().unwrap()).unwrap();
    let (code, _, err) = run(&["convert", input.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&input).unwrap());
    let (_, a, _) = run(&["read", input.to_str().unwrap()]);
    let (_, b, _) = run(&["read", out.to_str().unwrap()]);
    assert_eq!(a, b);
    let fds: Vec<&str> = b.lines().filter(|l| l.starts_with("    fds: ")).collect();
    assert_eq!(
        fds,
        ["    fds: [0] /memfd:guest ram (deleted), [1] 100%"],
        "{b}"
    );
    let (_, j, _) = run(&["read", "--format", "json", out.to_str().unwrap()]);
    assert!(
        j.contains(
            r#"{"event":"fds","conn":0,"index":0,"fds":["/memfd:guest ram (deleted)","100%"]}"#
        ),
        "{j}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn help_has_examples_and_completions_generate() {
    for sub in [
        "read",
        "validate",
        "convert",
        "proxy",
        "replay",
        "wireshark-dissector",
        "completions",
    ] {
        let (code, out, _) = run(&[sub, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("Examples:"), "{sub} --help has no examples");
    }
    let (code, out, _) = run(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(out.contains("vfu-dump"));
}

#[test]
fn readme_rule_table_matches_the_code() {
    let (code, rules, _) = run(&["validate", "--list-rules"]);
    assert_eq!(code, 0);
    let mut table =
        String::from("| rule | severity | section | description |\n|---|---|---|---|\n");
    for r in vfu_dump::validate::RULES {
        table.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            r.id,
            r.severity.name(),
            r.section,
            r.description.replace('|', "\\|")
        ));
    }
    assert_eq!(rules.lines().count(), vfu_dump::validate::RULES.len());
    let readme_path = root().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let (start, end) = ("<!-- rules:start -->\n", "<!-- rules:end -->");
    let a = readme.find(start).expect("rules:start marker") + start.len();
    let b = readme.find(end).expect("rules:end marker");
    if bless() {
        let new = format!("{}{}{}", &readme[..a], table, &readme[b..]);
        std::fs::write(&readme_path, new).unwrap();
    } else {
        assert_eq!(
            &readme[a..b],
            table,
            "README rule table is stale (VFU_BLESS=1 rewrites)"
        );
    }
}

/// `1 error`, `2 errors`.
fn count_of(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[test]
fn validate_ends_with_a_summary_line() {
    // The counts by severity are those of the findings printed (every one, with --info).
    let (code, out, err) = run(&[
        "validate",
        "--info",
        "--format",
        "json",
        "--profile",
        "libvfio-user",
        "corpus/lvu-sample-client.pcapng",
    ]);
    let of = |sev: &str| {
        out.lines()
            .filter(|l| l.contains(&format!("\"severity\":\"{sev}\"")))
            .count()
    };
    let (errors, warnings, info) = (of("error"), of("warning"), of("info"));
    assert_eq!(errors + warnings + info, out.lines().count(), "{out}");
    assert_eq!(
        err,
        format!(
            "validate: 224 messages, 1 connection; {}, {}, {info} info; profile libvfio-user\n",
            count_of(errors, "error"),
            count_of(warnings, "warning")
        )
    );
    assert_eq!(code, i32::from(errors + warnings > 0));
    // Without --info, info findings are counted, not printed, and the line says so; two files count
    // their connections together.
    let (_, out, err) = run(&[
        "validate",
        "corpus/lvu-sample-client.pcapng",
        "corpus/vduse-6.12-blk.pcapng",
    ]);
    assert!(!out.contains("info conn"), "{out}");
    assert!(
        err.starts_with("validate: 256 messages, 2 connections; "),
        "{err}"
    );
    assert!(
        err.ends_with(" info (shown with --info); profile spec\n"),
        "{err}"
    );
    // The list of rules is no run: no summary.
    let (_, _, err) = run(&["validate", "--list-rules"]);
    assert_eq!(err, "");
}

#[test]
fn read_stats_counts_malformed_messages_in_their_rows() {
    let (_, json, _) = run(&[
        "read",
        "--format",
        "json",
        "corpus/lvu-pytest-subset.pcapng",
    ]);
    let version_cmds: Vec<&str> = json
        .lines()
        .filter(|l| l.contains("\"cmd\":1,") && l.contains("\"type\":\"command\""))
        .collect();
    let malformed = version_cmds
        .iter()
        .filter(|l| l.contains("\"decode_error\""))
        .count();
    assert!(malformed > 0);
    let (code, stats, err) = run(&["read", "--stats", "corpus/lvu-pytest-subset.pcapng"]);
    assert_eq!(code, 0, "{err}");
    let row = stats
        .lines()
        .find(|l| l.starts_with("VERSION ") && l.contains(" c2s cmd "))
        .unwrap();
    let count: usize = row.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(count, version_cmds.len(), "{row}");
    assert!(row.ends_with(&format!("malformed={malformed}")), "{row}");
    // The reply to a malformed command has its round trip: #0 is a malformed VERSION, #1 its reply.
    let reply = json.lines().nth(1).unwrap();
    assert!(
        reply.starts_with("{\"index\":1,") && reply.contains("\"rtt_ns\":"),
        "{reply}"
    );
}

#[test]
fn read_validate_conn_prints_that_connections_findings_only() {
    let findings = |args: &[&str]| -> Vec<String> {
        let (_, out, _) = run(args);
        out.lines()
            .filter(|l| l.starts_with("    ! "))
            .map(str::to_owned)
            .collect()
    };
    let all = findings(&["read", "--validate", "corpus/lvu-pytest-subset.pcapng"]);
    let one = findings(&[
        "read",
        "--validate",
        "--conn",
        "1",
        "corpus/lvu-pytest-subset.pcapng",
    ]);
    assert!(!one.is_empty());
    assert!(one.iter().all(|l| l.contains(" conn 1 #")), "{one:?}");
    let of_conn_1: Vec<&String> = all.iter().filter(|l| l.contains(" conn 1 #")).collect();
    assert_eq!(one.iter().collect::<Vec<_>>(), of_conn_1);
    assert!(all.len() > one.len());
}

#[test]
fn read_vduse_like_vfio_user() {
    let cap = "corpus/vduse-6.12-blk.pcapng";
    // Lines with timestamps; the annotated hex dump; every field; JSON; --stats per request type.
    let (code, text, err) = run(&["read", cap]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(text.lines().count(), 32);
    golden("read-vduse-6.12-blk.txt", &text);
    let (_, hex, _) = run(&["read", "-v", "-x", "--id", "12", cap]);
    assert!(hex.contains("| VduseVqState.index = 0"), "{hex}");
    golden("read-verbose-hex-vduse-get-vq-state.txt", &hex);
    let (_, json, _) = run(&["read", "--format", "json", cap]);
    golden("read-json-vduse-6.12-blk.jsonl", &json);
    let (_, stats, _) = run(&["read", "--stats", cap]);
    golden("read-stats-vduse-6.12-blk.txt", &stats);
    // The rows agree with the messages: each request type's count, and every response OK.
    let requests = |ty: &str| {
        json.lines()
            .filter(|l| l.contains(&format!("\"cmd_name\":\"{ty}\",\"type\":\"request\"")))
            .count()
    };
    for ty in ["GET_VQ_STATE", "SET_STATUS", "UPDATE_IOTLB"] {
        let n = requests(ty);
        assert!(n > 0, "{ty}");
        let row = |kind: &str| {
            stats
                .lines()
                .find(|l| l.starts_with(&format!("{ty} ")) && l.contains(kind))
                .unwrap_or_else(|| panic!("{ty} {kind}: {stats}"))
                .to_owned()
        };
        let count = |l: &str| {
            l.split_whitespace()
                .nth(3)
                .unwrap()
                .parse::<usize>()
                .unwrap()
        };
        assert_eq!(count(&row(" req ")), n);
        assert_eq!(count(&row(" resp ")), n);
        assert!(
            row(" resp ").ends_with(&format!("OK={n}")),
            "{}",
            row(" resp ")
        );
    }
    // --cmd by name or number (responses follow their request's type), --id by request_id.
    let (_, by_name, _) = run(&["read", "--cmd", "UPDATE_IOTLB", cap]);
    let (_, by_number, _) = run(&["read", "--cmd", "2", cap]);
    let (_, prefixed, _) = run(&["read", "--cmd", "vduse_update_iotlb", cap]);
    assert_eq!(by_name.lines().count(), 2 * requests("UPDATE_IOTLB"));
    assert_eq!(by_name, by_number);
    assert_eq!(by_name, prefixed);
    assert!(by_name.lines().any(|l| l.contains("← VDUSE response")));
    let (_, one, _) = run(&["read", "--id", "12", cap]);
    assert_eq!(one.lines().count(), 2, "{one}");
    assert!(one.contains("VDUSE_GET_VQ_STATE (0) id 12") && one.contains("response id 12 OK"));
    // A vfio-user command name leaves no VDUSE record, and a VDUSE name no vfio-user one.
    let (_, none, _) = run(&["read", "--cmd", "DMA_MAP", cap]);
    assert_eq!(none, "");
    let (_, none, _) = run(&[
        "read",
        "--cmd",
        "SET_STATUS",
        "corpus/lvu-sample-client.pcapng",
    ]);
    assert_eq!(none, "");
    // --relative: the first record at 0.
    let (_, rel, _) = run(&["read", "--relative", cap]);
    assert!(rel.starts_with("#0     0.000000000 c0 → VDUSE"), "{rel}");
}

/// Every sample of `vfu-dump`'s output in the README and docs/ (a ```text block whose first line is
/// `$ vfu-dump …`) is what the command prints now: run in the repository root, each run of lines
/// between `...` lines must appear in its output, whole lines, in that order, the first run at the
/// start.
#[test]
fn readme_samples_are_what_the_tool_prints() {
    let mut docs = vec![root().join("README.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push(p);
        }
    }
    let mut checked = 0;
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for block in text.split("```text\n").skip(1) {
            let block = block.split("```").next().unwrap();
            let mut lines = block.lines();
            let Some(cmd) = lines.next().and_then(|l| l.strip_prefix("$ vfu-dump ")) else {
                continue;
            };
            let args: Vec<&str> = cmd.split_whitespace().collect();
            let (code, out, err) = run(&args);
            assert_eq!(code, 0, "{}: `vfu-dump {cmd}`: {err}", doc.display());
            let out: Vec<&str> = out.lines().collect();
            let mut at = 0;
            let mut first = true;
            let sample: Vec<&str> = lines.collect();
            for run_of in sample.split(|l| l.trim() == "...") {
                if run_of.is_empty() {
                    first = false;
                    continue;
                }
                let found = (at..=out.len().saturating_sub(run_of.len()))
                    .find(|&i| out[i..i + run_of.len()] == *run_of)
                    .unwrap_or_else(|| {
                        panic!(
                            "{}: the sample of `vfu-dump {cmd}` is not what it prints now; from \
                             line {at} it prints:\n{}\nthe sample has:\n{}",
                            doc.display(),
                            out[at..]
                                .iter()
                                .take(run_of.len() + 2)
                                .copied()
                                .collect::<Vec<_>>()
                                .join("\n"),
                            run_of.join("\n")
                        )
                    });
                assert!(
                    !first || found == 0,
                    "{}: the sample of `vfu-dump {cmd}` does not start where its output does",
                    doc.display()
                );
                first = false;
                at = found + run_of.len();
            }
            checked += 1;
        }
    }
    assert!(checked >= 1, "no vfu-dump sample found in the README");
}
