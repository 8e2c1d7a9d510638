//! Captures with messages over Wireshark's 256 KiB record limit: `--snaplen` on `convert` and
//! `proxy -w` cuts them with their original length in the record, tshark opens the result (and
//! stops at the first long record of the uncut one), and `read` and `validate` treat the cut
//! messages as whole messages the capture holds only the start of.

#![allow(clippy::unwrap_used)] // test helpers: a failure is a test failure

#[path = "common/cli.rs"]
mod cli;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vfu_codec::vfio::RegionAccess;
use vfu_codec::vfio::caps::Version;
use vfu_codec::{Body, Command as Cmd, Direction, Header, VersionBody, encode};
use vfu_dump::capture::{PcapngWriter, Protocol, RecordRef};

use cli::{ProxyChild, Tmp, run};

const MIB: usize = 1 << 20;
const SNAP: usize = 262_144;
/// The exported-PDU tags of a `vfio_user` record.
const TAGS: usize = 28;

/// Encodes one message.
fn message(h: Header, body: &Body<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 2 * MIB];
    let n = encode(&h, body, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// A session with two 1 MiB transfers: VERSION, a REGION_WRITE of 1 MiB and its reply, a
/// REGION_READ of 1 MiB and its reply.
fn session() -> Vec<(Direction, Vec<u8>)> {
    let caps = br#"{"capabilities":{"max_data_xfer_size":1048576}}"#;
    let v = Version::new(0, 1);
    let version = VersionBody::new(&v, Some(caps));
    let data: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();
    let access = RegionAccess::new(0, 0, MIB as u32);
    let c2s = Direction::ClientToServer;
    let s2c = Direction::ServerToClient;
    vec![
        (
            c2s,
            message(Header::command(1, Cmd::VERSION), &Body::Version(version)),
        ),
        (
            s2c,
            message(Header::reply(1, Cmd::VERSION), &Body::Version(version)),
        ),
        (
            c2s,
            message(
                Header::command(2, Cmd::REGION_WRITE),
                &Body::RegionRw {
                    access: &access,
                    data: &data,
                },
            ),
        ),
        (
            s2c,
            message(
                Header::reply(2, Cmd::REGION_WRITE),
                &Body::RegionRw {
                    access: &access,
                    data: &[],
                },
            ),
        ),
        (
            c2s,
            message(
                Header::command(3, Cmd::REGION_READ),
                &Body::RegionRw {
                    access: &access,
                    data: &[],
                },
            ),
        ),
        (
            s2c,
            message(
                Header::reply(3, Cmd::REGION_READ),
                &Body::RegionRw {
                    access: &access,
                    data: &data,
                },
            ),
        ),
    ]
}

fn write_capture(path: &Path, msgs: &[(Direction, Vec<u8>)]) {
    let mut w = PcapngWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    w.add_connection("vfio-user:0:/run/dev.sock", Protocol::VfioUser)
        .unwrap();
    for (i, (direction, data)) in msgs.iter().enumerate() {
        w.write_record(&RecordRef {
            conn: 0,
            ts_ns: 1_700_000_000_000_000_000 + i as u64 * 1000,
            direction: *direction,
            protocol: Protocol::VfioUser,
            fds: 0,
            fd_kinds: &[],
            truncated: false,
            data,
            orig_len: data.len(),
            index: 0,
            file_offset: 0,
        })
        .unwrap();
    }
    w.into_inner().unwrap();
}

/// The findings of `validate --info` other than `capture-cut`, and the exit status.
fn findings(path: &str) -> (i32, Vec<String>, usize) {
    let (code, out, _) = run(&["validate", "--info", path]);
    let cut = out.lines().filter(|l| l.contains(" capture-cut ")).count();
    let rest = out
        .lines()
        .filter(|l| !l.contains(" capture-cut "))
        .map(str::to_owned)
        .collect();
    (code, rest, cut)
}

fn have_tshark() -> bool {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: snaplen_capture_opens_in_tshark: needs tshark (apt-get install tshark)"
        );
    }
    ok
}

#[test]
fn convert_snaplen_cuts_long_messages_and_read_shows_them_cut() {
    let t = Tmp::new("snaplen-convert");
    let (big, cut) = (t.path("big.pcapng"), t.path("cut.pcapng"));
    write_capture(Path::new(&big), &session());

    // Without --snaplen: whole messages, and a note on what Wireshark cannot read.
    let (code, _, err) = run(&["convert", &big, &t.path("copy.pcapng")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("2 records are longer than 262144 bytes") && err.contains("--snaplen 262144"),
        "{err}"
    );

    let (code, _, err) = run(&["convert", "--snaplen", "262144", &big, &cut]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 messages cut to 262144 bytes"), "{err}");
    let (code, _, err) = run(&["convert", "--snaplen", "100", &big, &cut]);
    assert_eq!(code, 2);
    assert!(err.contains("below 256"), "{err}");

    // Text: the same lines, the two long messages marked cut.
    let (_, whole, _) = run(&["read", &big]);
    let (code, text, err) = run(&["read", &cut]);
    assert_eq!(code, 0, "{err}");
    let kept = SNAP - TAGS;
    let total = 16 + 16 + MIB;
    let mark = format!(" [cut: {kept} of {total} bytes captured]");
    for (i, (w, c)) in whole.lines().zip(text.lines()).enumerate() {
        if i == 2 || i == 5 {
            let want = match w.split_once(" rtt=") {
                Some((head, rtt)) => format!("{head}{mark} rtt={rtt}"),
                None => format!("{w}{mark}"),
            };
            assert_eq!(c, want, "line {i}");
            assert!(
                c.contains("count=1048576") && c.contains("data=1048576B"),
                "{c}"
            );
        } else {
            assert_eq!(c, w, "line {i}");
        }
    }
    assert_eq!(text.lines().count(), 6);

    // JSON: the captured and the original length.
    let (_, json, _) = run(&["read", "--format", "json", &cut]);
    let third = json.lines().nth(2).unwrap();
    assert!(
        third.contains(&format!("\"len\":{kept},\"cut\":true,\"orig_len\":{total}")),
        "{third}"
    );
    let first = json.lines().next().unwrap();
    assert!(first.contains("\"cut\":false"), "{first}");
    assert!(third.contains("\"body\":["), "decoded: {third}");

    // -v and -x: how much of the data was captured; nothing dumped beyond it.
    let (_, v, _) = run(&["read", "-v", "--id", "2", &cut]);
    assert!(
        v.contains(&format!(
            "Data @0x20 1048576 bytes ({} captured)",
            kept - 32
        )),
        "{v}"
    );
    let (_, x, _) = run(&["read", "-x", "--id", "2", &cut]);
    assert!(
        x.contains(&format!("… {} bytes not in the capture", total - kept)),
        "{x}"
    );
    let dumped = x.lines().filter(|l| l.starts_with("    0")).count();
    assert!(
        dumped < kept / 16 + 40,
        "{dumped} hex lines for {kept} bytes"
    );

    // --stats counts the messages' whole lengths.
    let (_, a, _) = run(&["read", "--stats", &big]);
    let (_, b, _) = run(&["read", "--stats", &cut]);
    assert_eq!(a.lines().next(), b.lines().next());

    // The validator: the same findings, and an info finding per cut message, not a protocol error.
    let (code_a, fa, cut_a) = findings(&big);
    let (code_b, fb, cut_b) = findings(&cut);
    assert_eq!((code_a, cut_a), (code_b, 0));
    assert_eq!(fa, fb);
    assert_eq!(cut_b, 2);
    let (code, out, err) = run(&["validate", &cut]);
    assert_eq!(code, code_a, "{out}{err}");
    assert!(
        !out.contains("decode/") && !out.contains("truncated"),
        "{out}"
    );

    // A cut capture converted again stays cut, with its original lengths.
    let again = t.path("again.pcapng");
    let (code, _, err) = run(&["convert", &cut, &again]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("longer than"), "{err}");
    let (_, text2, _) = run(&["read", &again]);
    assert_eq!(text2, text);
}

#[test]
fn snaplen_capture_opens_in_tshark() {
    if !have_tshark() {
        return;
    }
    let t = Tmp::new("snaplen-tshark");
    let (big, cut) = (t.path("big.pcapng"), t.path("cut.pcapng"));
    write_capture(Path::new(&big), &session());
    let (code, _, err) = run(&["convert", "--snaplen", "262144", &big, &cut]);
    assert_eq!(code, 0, "{err}");
    let tshark = |path: &str| {
        let out = Command::new("tshark")
            .args([
                "-r",
                path,
                "-T",
                "fields",
                "-e",
                "frame.len",
                "-e",
                "frame.cap_len",
            ])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The uncut capture: tshark 4.0 stops at the first record over 256 KiB, after the two
    // VERSION messages, and says why.
    let (ok, out, err) = tshark(&big);
    let frames = out.lines().count();
    assert!(
        !ok || frames < 6,
        "tshark read every record of the uncut capture: has its limit changed?\n{out}"
    );
    assert_eq!(frames, 2, "{out}{err}");
    assert!(err.contains("larger than"), "{err}");
    // The cut one: every record, the long ones with their original length.
    let (ok, out, err) = tshark(&cut);
    assert!(ok, "{err}");
    let rows: Vec<(usize, usize)> = out
        .lines()
        .map(|l| {
            let (a, b) = l.split_once('\t').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 6, "{out}");
    let total = TAGS + 16 + 16 + MIB;
    assert_eq!(rows[2], (total, SNAP));
    assert_eq!(rows[5], (total, SNAP));
    assert_eq!(rows[3].0, rows[3].1);

    // With the generated plugin: the cut messages decode (no malformed-message error), say they
    // are cut, and show `vfu-dump read`'s line.
    let lua = t.path("vfio_user.lua");
    let (_, script, _) = run(&["wireshark-dissector"]);
    std::fs::write(&lua, script).unwrap();
    let lua_arg = format!("lua_script:{lua}");
    let fields = |filter: &str| {
        let out = Command::new("tshark")
            .args([
                "-X",
                &lua_arg,
                "-r",
                &cut,
                "-Y",
                filter,
                "-T",
                "fields",
                "-e",
                "_ws.col.Info",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("Lua Error"), "{err}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(fields("vfio_user.malformed").lines().count(), 0);
    let info = fields("vfio_user.cut_by_capture");
    let (_, read, _) = run(&["read", &cut]);
    let read: Vec<&str> = read.lines().collect();
    let info: Vec<&str> = info.lines().collect();
    assert_eq!(info.len(), 2, "{info:?}");
    for (i, want) in [(0, 2), (1, 5)] {
        let line = read[want]
            .split_once(" rtt=")
            .map_or(read[want], |(l, _)| l);
        assert!(
            line.ends_with(info[i]),
            "tshark: {}
read:   {line}",
            info[i]
        );
        assert!(
            info[i].contains("[cut: 262116 of 1048608 bytes captured]"),
            "{}",
            info[i]
        );
    }
}

#[test]
fn proxy_snaplen_cuts_the_capture_and_forwards_everything() {
    let t = Tmp::new("snaplen-proxy");
    let server_path = t.0.join("s.sock");
    let listener = UnixListener::bind(&server_path).unwrap();
    let msgs = session();
    let write = msgs[2].1.clone();
    let reply = msgs[3].1.clone();
    let want = write.clone();
    // The server reads the whole REGION_WRITE and answers it.
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).unwrap();
        assert!(got == want, "the server got other bytes than were sent");
        s.write_all(&reply).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    });
    let cap = t.0.join("cap.pcapng");
    let client_path = t.0.join("c.sock");
    let (child, mut c) =
        ProxyChild::start(&["--snaplen", "262144"], &client_path, &server_path, &cap);
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(&write).unwrap();
    let mut got = vec![0u8; msgs[3].1.len()];
    c.read_exact(&mut got).unwrap();
    assert_eq!(got, msgs[3].1);
    let out = child.interrupt();
    assert!(out.status.success(), "{:?}", out.status);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("capture: 1 message cut to 262144 bytes"),
        "{said}"
    );
    drop(c);
    server.join().unwrap();
    let (code, json, err) = run(&["read", "--format", "json", cap.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 2, "{json}");
    assert!(
        lines[0].contains(&format!(
            "\"len\":{},\"cut\":true,\"orig_len\":{}",
            SNAP - TAGS,
            write.len()
        )),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("\"cut\":false"), "{}", lines[1]);
    // `--snaplen` needs `-w`.
    let (code, _, err) = run(&[
        "proxy",
        "--snaplen",
        "262144",
        "--listen",
        "a.sock",
        "--connect",
        "b.sock",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--write"), "{err}");
}

#[test]
fn the_validator_checks_what_a_cut_holds_and_pairs_the_rest_by_header() {
    use vfu_dump::validate::{Event, Profile, Protocol as VProtocol, Validator};
    let msgs = session();
    let mut v = Validator::new(Profile::Spec);
    let mut all = Vec::new();
    for (i, (direction, data)) in msgs.iter().enumerate() {
        let ev = Event {
            conn: 0,
            index: i as u64,
            direction: *direction,
            protocol: VProtocol::VfioUser,
            fds: 0,
            truncated: false,
            bytes: data,
        };
        let mut out = Vec::new();
        match i {
            // VERSION cut inside its capabilities text: checked by header, paired with its reply.
            0 => {
                let mut laid_out = data[..24].to_vec();
                laid_out.resize(data.len(), 0);
                v.check_cut(
                    &Event {
                        bytes: &laid_out,
                        ..ev
                    },
                    24,
                    data.len(),
                    &mut out,
                );
            }
            // REGION_WRITE cut inside its data: checked whole, the data read as zeros.
            2 => {
                let mut laid_out = data[..1000].to_vec();
                laid_out.resize(data.len(), 0);
                v.check_cut(
                    &Event {
                        bytes: &laid_out,
                        ..ev
                    },
                    1000,
                    data.len(),
                    &mut out,
                );
            }
            // A cut that could not be laid out (its bytes alone): its header still pairs it.
            5 => v.check_cut(
                &Event {
                    bytes: &data[..300],
                    ..ev
                },
                300,
                data.len(),
                &mut out,
            ),
            _ => v.check(&ev, &mut out),
        }
        all.extend(out);
    }
    all.extend(v.finish());
    let ids: Vec<(u64, &str)> = all.iter().map(|f| (f.index, f.rule.id)).collect();
    assert_eq!(
        ids,
        [(0, "capture-cut"), (2, "capture-cut"), (5, "capture-cut")],
        "{all:#?}"
    );
    assert_eq!(all[0].offset, 24);
    assert!(
        all[0].message.contains("first 24 of the message's"),
        "{}",
        all[0].message
    );
}

/// Every golden message (corpus/messages) cut at every length, as a capture written by another tool
/// might hold it: `read` never calls one malformed nor shows a field it lacks, `--format json` gives
/// those fields as null, and `validate` finds no decode error and no truncation in them.
#[test]
fn messages_cut_at_every_length_are_shown_as_cut_never_malformed() {
    use vfu_codec::capture::{self as pcapng, DISSECTOR_VFIO_USER, Packet};
    let t = Tmp::new("snaplen-every-length");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/messages");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    names.sort();
    let mut file = vec![0u8; pcapng::SHB_LEN + pcapng::idb_len("vfio-user:0:/s")];
    let mut n = pcapng::write_shb(&mut file).unwrap();
    n += pcapng::write_idb("vfio-user:0:/s", &mut file[n..]).unwrap();
    file.truncate(n);
    let mut cuts = Vec::new();
    for name in &names {
        let msg = std::fs::read(name).unwrap();
        let reply = name.to_string_lossy().contains("-reply");
        for keep in 1..msg.len() {
            let p = Packet {
                interface: 0,
                ts_ns: 1_700_000_000_000_000_000,
                dissector: DISSECTOR_VFIO_USER,
                direction: if reply {
                    Direction::ServerToClient
                } else {
                    Direction::ClientToServer
                },
                fds: 0,
                truncated: false,
                data: &msg[..keep],
                orig_len: msg.len(),
            };
            let at = file.len();
            file.resize(at + pcapng::epb_len(&p), 0);
            pcapng::write_epb(&p, &mut file[at..]).unwrap();
            cuts.push((keep, msg.len()));
        }
    }
    assert!(cuts.len() > 1000, "{}", cuts.len());
    let cap = t.path("cut.pcapng");
    std::fs::write(&cap, &file).unwrap();

    let (code, text, err) = run(&["read", &cap]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), cuts.len());
    for (line, (keep, len)) in lines.iter().zip(&cuts) {
        assert!(!line.contains("malformed"), "{line}");
        let mark = format!(" [cut: {keep} of {len} bytes captured]");
        assert!(
            line.split(" rtt=").next().unwrap().ends_with(&mark),
            "{line}"
        );
        if *keep < 16 {
            assert!(line.contains("cut inside the header"), "{line}");
        }
    }
    let (code, json, _) = run(&["read", "--format", "json", &cap]);
    assert_eq!(code, 0);
    assert!(
        !json.contains("decode_error"),
        "a cut message reported as malformed"
    );
    assert!(json.contains(":null"), "fields the capture lacks are null");
    let (_, findings, _) = run(&["validate", "--info", &cap]);
    for f in findings.lines() {
        assert!(
            !f.contains("decode/") && !f.contains("truncated-message"),
            "a cut reported as a protocol error: {f}"
        );
    }
    assert_eq!(
        findings
            .lines()
            .filter(|l| l.contains(" capture-cut "))
            .count(),
        cuts.len()
    );
    let (code, _, err) = run(&["read", "-v", "-x", &cap]);
    assert_eq!(code, 0, "{err}");
}
