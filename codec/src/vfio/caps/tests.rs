//! The capabilities parser's and emitter's tests: both paths against each other, every error offset, and
//! round trips.

extern crate std;

use std::string::String;
use std::vec::Vec;

use proptest::prelude::*;

use super::fast::fast_document;
use super::general::{EOF, PLAIN, number, plain_len};
use super::num::{plain_uint, uint};
use super::value::{Key, Known, keys_equal};
use super::*;
use crate::error::EncodeError;

/// The fast path takes the texts real senders write and gives up on everything else, and either way
/// the result is the general parser's.
#[test]
fn fast_path_takes_what_senders_write() {
    let mut scratch = Capabilities::default();
    for (text, fast) in [
        (LVU_REPLY, true),
        (QEMU_REQUEST, true),
        (&br#"{"capabilities":{"max_msg_fds":1}}"#[..], true),
        (
            br#"{"capabilities":{"write_multiple":false,"pgsizes":4096}}"#,
            true,
        ),
        (
            br#"{"capabilities":{"max_msg_fds":1,"max_msg_fds":2}}"#,
            false,
        ),
        (br#"{"capabilities":{"max_msg_fds": 1}}"#, false),
        (br#"{"capabilities":{"max_msg_fds":01}}"#, false),
        (br#"{"capabilities":{"max_msg_fds":1.0}}"#, false),
        (
            br#"{"capabilities":{"max_msg_fds":18446744073709551616}}"#,
            false,
        ),
        (
            br#"{"capabilities":{"max_msg_fds":18446744073709551615}}"#,
            true,
        ),
        (br#"{"capabilities":{"vendor":1}}"#, false),
        (br#"{"capabilities":{"migration":{}}}"#, false),
        (
            br#"{"capabilities":{"twin_socket":{"supported":truex}}}"#,
            false,
        ),
        (br#"{"capabilities":{"max_msg_fds":1}} "#, false),
        (br#"{"capabilities":{}}"#, false),
        (br#"{"capabilities":{"max\u005fmsg_fds":1}}"#, false),
    ] {
        let took = fast_document(text, &mut scratch).is_some();
        scratch = Capabilities::default();
        assert_eq!(took, fast, "{}", String::from_utf8_lossy(text));
        assert_eq!(parse_capabilities(text), parse_capabilities_general(text));
    }
}

/// The word-at-a-time scan stops exactly where a byte-at-a-time scan does: every byte value at
/// every position of a 0- to 24-byte run of plain text, so each lane of a word and the tail are
/// each tried with each stopping byte.
#[test]
fn plain_len_matches_a_byte_scan() {
    let reference = |s: &[u8]| s.iter().take_while(|&&b| PLAIN[usize::from(b)]).count();
    for len in 0..=24usize {
        for at in 0..len {
            for b in 0..=255u8 {
                let mut s: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                s[at] = b;
                assert_eq!(
                    plain_len(&s),
                    reference(&s),
                    "byte {b:#04x} at {at} of {len}"
                );
            }
        }
        let plain: Vec<u8> = (0..len).map(|i| b' ' + (i % 95) as u8).collect();
        assert_eq!(plain_len(&plain), reference(&plain), "plain run of {len}");
    }
}

/// The one-pass integer path agrees with the general lexer on every shape of number.
#[test]
fn plain_uint_agrees_with_the_lexer() {
    for text in [
        "0",
        "7",
        "10",
        "01",
        "1048576",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999",
        "1234567890123456789",
        "1.5",
        "1e3",
        "1E3",
        "12,",
        "12}",
        "-1",
        "",
        "x",
    ] {
        let general = number(text.as_bytes()).ok().and_then(|(rest, raw)| {
            let ends = !matches!(rest.first(), Some(b'.' | b'e' | b'E'));
            uint(raw).filter(|_| ends).map(|n| (rest, n))
        });
        assert_eq!(plain_uint(text.as_bytes()), general, "{text:?}");
    }
}

/// libvfio-user's VERSION reply with migration and twin-socket on (§2.1).
static LVU_REPLY: &[u8] = br#"{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576,"migration":{"pgsize":4096},"twin_socket":{"supported":true,"fd_index":0}}}"#;

/// QEMU 10.1's VERSION request (hw/vfio-user/proxy.c member order; §2.1).
static QEMU_REQUEST: &[u8] = br#"{"capabilities":{"migration":{"pgsize":4096,"max_bitmap_size":268435456},"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096,"max_dma_maps":65535,"write_multiple":true}}"#;

fn parse(json: &str) -> Capabilities<'_> {
    parse_capabilities(json.as_bytes()).expect("valid capabilities")
}

fn err(json: &[u8]) -> (usize, Rule) {
    parse_capabilities(json).expect_err("invalid capabilities")
}

fn syntax(at: usize, reason: &'static str) -> (usize, Rule) {
    (at, Rule::JsonSyntax { reason })
}

fn emit_string(caps: &Capabilities<'_>) -> String {
    let mut buf = std::vec![0xa5u8; caps.emitted_len() + 8];
    let n = caps.emit(&mut buf).expect("emit");
    assert_eq!(n, caps.emitted_len());
    assert!(buf[n..].iter().all(|&b| b == 0xa5), "wrote past the end");
    String::from_utf8(buf[..n].to_vec()).expect("UTF-8")
}

fn unknown<'a>(scope: Scope, key: &'a str, value: &'a str, ill_typed: bool) -> UnknownKey<'a> {
    UnknownKey {
        scope,
        key,
        value,
        ill_typed,
    }
}

#[test]
fn parse_lvu_reply() {
    let caps = parse_capabilities(LVU_REPLY).expect("lvu reply");
    let want = Capabilities {
        max_msg_fds: Some(8),
        max_data_xfer_size: Some(1048576),
        migration: Some(Migration {
            pgsize: Some(4096),
            max_bitmap_size: None,
        }),
        twin_socket: Some(TwinSocket {
            supported: Some(true),
            fd_index: Some(0),
        }),
        ..Capabilities::default()
    };
    assert_eq!(caps, want);
    assert!(caps.effective_twin_socket());
    assert_eq!(caps.effective_max_msg_fds(), 8);
    assert_eq!(caps.effective_max_dma_maps(), DEFAULT_MAX_DMA_MAPS);
    assert_eq!(caps.effective_pgsizes(), DEFAULT_PGSIZES);
    assert!(!caps.effective_write_multiple());
}

#[test]
fn emit_lvu_reply_byte_for_byte() {
    let caps = parse_capabilities(LVU_REPLY).expect("lvu reply");
    assert_eq!(emit_string(&caps).as_bytes(), LVU_REPLY);
}

#[test]
fn parse_qemu_request() {
    let caps = parse_capabilities(QEMU_REQUEST).expect("qemu request");
    assert_eq!(
        caps,
        Capabilities {
            max_msg_fds: Some(16),
            max_data_xfer_size: Some(1048576),
            max_dma_maps: Some(65535),
            pgsizes: Some(4096),
            write_multiple: Some(true),
            migration: Some(Migration {
                pgsize: Some(4096),
                max_bitmap_size: Some(268435456),
            }),
            ..Capabilities::default()
        }
    );
    assert!(caps.effective_write_multiple());
    assert!(!caps.effective_twin_socket());
    // Re-emitted in this crate's order; the same value comes back.
    let text = emit_string(&caps);
    assert_eq!(
        text,
        r#"{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"max_dma_maps":65535,"pgsizes":4096,"write_multiple":true,"migration":{"pgsize":4096,"max_bitmap_size":268435456}}}"#
    );
    assert_eq!(parse(&text), caps);
}

#[test]
fn defaults_when_absent() {
    for json in ["{}", r#"{"capabilities":{}}"#] {
        let caps = parse(json);
        assert_eq!(caps, Capabilities::default());
        assert_eq!(caps.effective_max_msg_fds(), 1);
        assert_eq!(caps.effective_max_data_xfer_size(), 1048576);
        assert_eq!(caps.effective_max_dma_maps(), 65535);
        assert_eq!(caps.effective_pgsizes(), 4096);
        assert!(!caps.effective_write_multiple());
        assert!(!caps.effective_twin_socket());
    }
    assert_eq!(
        emit_string(&Capabilities::default()),
        r#"{"capabilities":{}}"#
    );
    // An empty twin_socket object is kept as present.
    let caps = parse(r#"{"capabilities":{"twin_socket":{}}}"#);
    assert_eq!(caps.twin_socket, Some(TwinSocket::default()));
    assert!(!caps.effective_twin_socket());
}

#[test]
fn whitespace_everywhere() {
    let json = " \t\r\n{ \"capabilities\" \n:\t{ \"max_msg_fds\" : 8 ,\r\n \"twin_socket\" : { \"supported\" : false } , \"x\" : [ 1 , { } , [ ] ] , \"y\" : { } } } \n";
    let caps = parse(json);
    assert_eq!(caps.max_msg_fds, Some(8));
    assert_eq!(
        caps.twin_socket,
        Some(TwinSocket {
            supported: Some(false),
            fd_index: None
        })
    );
    assert_eq!(
        &caps.unknown[..],
        &[
            unknown(Scope::Capabilities, "x", "[ 1 , { } , [ ] ]", false),
            unknown(Scope::Capabilities, "y", "{ }", false),
        ]
    );
    // The pytest corpus's spacing.
    let caps = parse(
        r#"{ "capabilities": { "max_msg_fds": 8, "max_data_xfer_size": 1048576, "migration": { "pgsize": 4096 } } }"#,
    );
    assert_eq!(caps.migration.and_then(|m| m.pgsize), Some(4096));
}

#[test]
fn escapes_in_strings() {
    let json = r#"{"capabilities":{"max\u005fmsg_fds":4,"v\"q":"a\\b\/c\b\f\n\r\t\u00e9\uD83D\uDE00","\u00e9t\u00e9":"\ud800"}}"#;
    let caps = parse(json);
    assert_eq!(caps.max_msg_fds, Some(4));
    assert_eq!(caps.unknown.len(), 2);
    let q = caps.unknown[0];
    assert_eq!(q.key, r#"v\"q"#);
    assert!(q.key_eq("v\"q"));
    assert_eq!(q.value, r#""a\\b\/c\b\f\n\r\t\u00e9\uD83D\uDE00""#);
    assert!(caps.unknown[1].key_eq("été"));
    assert_eq!(caps.unknown[1].key_chars().collect::<String>(), "été");
    // Surrogate pairs decode; a lone surrogate is U+FFFD.
    let s = parse(r#"{"\uD83D\uDE00":1,"\udc00x":2,"\uD83Dx":3}"#);
    let keys: Vec<String> = s.unknown.iter().map(|u| u.key_chars().collect()).collect();
    assert_eq!(keys, ["\u{1F600}", "\u{FFFD}x", "\u{FFFD}x"]);
    // Keys compare as UTF-16 code units: a pair equals the raw character, two lone surrogates differ.
    let s = parse(r#"{"\uD83D\uDE00":1,"😀":2,"\udc00":3,"\ud800":4,"\/":5,"/":6}"#);
    assert_eq!(s.duplicate_keys, 2);
    assert_eq!(s.unknown.len(), 4);
    // Raw UTF-8 in strings is fine.
    let caps = parse("{\"ключ\":\"значение 😀\"}");
    assert_eq!(caps.unknown[0].key, "ключ");
}

#[test]
fn nested_unknowns_any_shape() {
    let json = r#"{"capabilities":{"vendor":{"a":[1,-2.5e+3,true,false,null,"s",{"b":[[],{}]}],"c":{}},"max_dma_maps":10,"list":[0,1E9,-0,0.25e-2]},"extra":null,"n":-1}"#;
    let caps = parse(json);
    assert_eq!(caps.max_dma_maps, Some(10));
    assert_eq!(
        &caps.unknown[..],
        &[
            unknown(
                Scope::Capabilities,
                "vendor",
                r#"{"a":[1,-2.5e+3,true,false,null,"s",{"b":[[],{}]}],"c":{}}"#,
                false
            ),
            unknown(Scope::Capabilities, "list", "[0,1E9,-0,0.25e-2]", false),
            unknown(Scope::TopLevel, "extra", "null", false),
            unknown(Scope::TopLevel, "n", "-1", false),
        ]
    );
    // Known names outside their object are just unknown.
    let caps = parse(r#"{"max_msg_fds":1,"capabilities":{"pgsize":2,"migration":{"pgsizes":3}}}"#);
    assert_eq!(caps.max_msg_fds, None);
    assert_eq!(caps.migration, Some(Migration::default()));
    assert_eq!(caps.unknown.len(), 3);
    assert!(caps.unknown.iter().all(|u| !u.ill_typed));
    assert_eq!(caps.unknown[2].scope.path(), "capabilities.migration");
}

#[test]
fn ill_typed_known_keys() {
    let json = r#"{"capabilities":{"max_msg_fds":"8","max_data_xfer_size":-1,"max_dma_maps":1.0,"pgsizes":18446744073709551616,"write_multiple":1,"twin_socket":{"supported":"yes","fd_index":1e2},"migration":23}}"#;
    let caps = parse(json);
    assert_eq!(caps.max_msg_fds, None);
    assert_eq!(caps.effective_max_msg_fds(), 1);
    assert_eq!(caps.twin_socket, Some(TwinSocket::default()));
    assert_eq!(caps.migration, None);
    let got: Vec<_> = caps
        .ill_typed()
        .map(|u| (u.scope, u.key, u.value))
        .collect();
    assert_eq!(
        got,
        [
            (Scope::Capabilities, "max_msg_fds", r#""8""#),
            (Scope::Capabilities, "max_data_xfer_size", "-1"),
            (Scope::Capabilities, "max_dma_maps", "1.0"),
            (Scope::Capabilities, "pgsizes", "18446744073709551616"),
            (Scope::Capabilities, "write_multiple", "1"),
            (Scope::TwinSocket, "supported", r#""yes""#),
            (Scope::TwinSocket, "fd_index", "1e2"),
            (Scope::Capabilities, "migration", "23"),
        ]
    );
    // u64::MAX itself fits.
    assert_eq!(
        parse(r#"{"capabilities":{"pgsizes":18446744073709551615}}"#).pgsizes,
        Some(u64::MAX)
    );
    // A non-object capabilities, as libvfio-user's tests send.
    let caps = parse(r#"{ "capabilities": "23" }"#);
    assert_eq!(
        &caps.unknown[..],
        &[unknown(Scope::TopLevel, "capabilities", r#""23""#, true)]
    );
    assert_eq!(emit_string(&caps), r#"{"capabilities":"23"}"#);
}

#[test]
fn duplicate_keys_last_wins() {
    let caps = parse(r#"{"capabilities":{"max_msg_fds":1,"max_msg_fds":2,"x":1,"x":[2]}}"#);
    assert_eq!(caps.max_msg_fds, Some(2));
    assert_eq!(caps.duplicate_keys, 2);
    assert_eq!(
        &caps.unknown[..],
        &[unknown(Scope::Capabilities, "x", "[2]", false)]
    );

    // An ill-typed value, then a good one: the good one wins and the bad one is forgotten.
    let caps = parse(r#"{"capabilities":{"max_msg_fds":"a","max\u005fmsg_fds":3}}"#);
    assert_eq!((caps.max_msg_fds, caps.duplicate_keys), (Some(3), 1));
    assert!(caps.unknown.is_empty());
    // And the other way round.
    let caps = parse(r#"{"capabilities":{"max_msg_fds":3,"max_msg_fds":"a"}}"#);
    assert_eq!(caps.max_msg_fds, None);
    assert_eq!(caps.ill_typed().count(), 1);

    // A repeated object replaces the whole earlier one, its unknown members included.
    let caps = parse(
        r#"{"capabilities":{"migration":{"pgsize":1,"x":1},"migration":{"max_bitmap_size":2},"max_dma_maps":9},"capabilities":{"max_msg_fds":5,"twin_socket":{"y":0}},"t":0}"#,
    );
    assert_eq!(caps.max_dma_maps, None);
    assert_eq!(caps.migration, None);
    assert_eq!(caps.max_msg_fds, Some(5));
    assert_eq!(caps.twin_socket, Some(TwinSocket::default()));
    assert_eq!(caps.duplicate_keys, 2);
    assert_eq!(
        &caps.unknown[..],
        &[
            unknown(Scope::TwinSocket, "y", "0", false),
            unknown(Scope::TopLevel, "t", "0", false),
        ]
    );
    let caps = parse(
        r#"{"capabilities":{"migration":{"pgsize":1,"x":1},"migration":{"max_bitmap_size":2}}}"#,
    );
    assert_eq!(
        caps.migration,
        Some(Migration {
            pgsize: None,
            max_bitmap_size: Some(2)
        })
    );
    assert!(caps.unknown.is_empty());
}

#[test]
fn too_many_unknown_keys() {
    let mut json = String::from("{");
    for n in 0..MAX_UNKNOWN_KEYS {
        json.push_str(&std::format!("\"k{n}\":{n},"));
    }
    // 16 unknown keys are fine, and a repeat takes no room.
    let ok = std::format!("{json}\"k0\":0}}");
    assert_eq!(parse(&ok).unknown.len(), MAX_UNKNOWN_KEYS);
    let at = json.len();
    json.push_str("\"k16\":16}");
    assert_eq!(
        err(json.as_bytes()),
        (
            at,
            Rule::JsonTooLarge {
                what: "more than 16 unknown keys"
            }
        )
    );
}

#[test]
fn syntax_errors_with_offsets() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, EOF),
        ("   ", 3, EOF),
        ("[]", 0, "top level is not an object"),
        ("\"s\"", 0, "top level is not an object"),
        (" 1", 1, "top level is not an object"),
        ("null", 0, "top level is not an object"),
        ("{", 1, EOF),
        ("{}x", 2, "trailing characters after the object"),
        ("{} {}", 3, "trailing characters after the object"),
        ("{,}", 1, "expected a string key"),
        ("{a:1}", 1, "expected a string key"),
        ("{'a':1}", 1, "expected a string key"),
        (r#"{"a":1,}"#, 7, "expected a string key"),
        (r#"{"a" 1}"#, 5, "expected ':' after a key"),
        (r#"{"a":}"#, 5, "expected a value"),
        (r#"{"a":1 "b":2}"#, 7, "expected ',' or '}' after a member"),
        (r#"{"a":1]"#, 6, "expected ',' or '}' after a member"),
        (r#"{"a":[1 2]}"#, 8, "expected ',' or ']' after an element"),
        (r#"{"a":[1,]}"#, 8, "expected a value"),
        (r#"{"a":[,]}"#, 6, "expected a value"),
        (
            r#"{"a":tru}"#,
            5,
            "invalid literal (expected true, false or null)",
        ),
        (
            r#"{"a":nul}"#,
            5,
            "invalid literal (expected true, false or null)",
        ),
        (r#"{"a":True}"#, 5, "expected a value"),
        (r#"{"a":01}"#, 5, "leading zero in number"),
        (r#"{"a":-01}"#, 6, "leading zero in number"),
        (r#"{"a":-}"#, 6, "invalid number (expected a digit)"),
        (r#"{"a":+1}"#, 5, "expected a value"),
        (r#"{"a":.5}"#, 5, "expected a value"),
        (r#"{"a":1.}"#, 7, "invalid number (expected a digit)"),
        (r#"{"a":1.e3}"#, 7, "invalid number (expected a digit)"),
        (r#"{"a":1e}"#, 7, "invalid number (expected a digit)"),
        (r#"{"a":1e+}"#, 8, "invalid number (expected a digit)"),
        (r#"{"a":0x10}"#, 6, "expected ',' or '}' after a member"),
        (r#"{"a":NaN}"#, 5, "expected a value"),
        (r#"{"a":"x\q"}"#, 7, "invalid escape"),
        (
            r#"{"a":"\u12G4"}"#,
            6,
            "invalid \\u escape (needs 4 hex digits)",
        ),
        (
            r#"{"a":"\u12"}"#,
            6,
            "invalid \\u escape (needs 4 hex digits)",
        ),
        ("{\"a\":\"x\ty\"}", 7, "control character in string"),
        ("{\"a\nb\":1}", 3, "control character in string"),
        (r#"{"a":"x}"#, 8, "unterminated string"),
        (r#"{"a":"x\"#, 8, "unterminated string"),
        (r#"{"a":"\u00"#, 10, "unterminated string"),
        (r#"{"a":t"#, 6, EOF),
        (r#"{"a":-"#, 6, EOF),
        (r#"{"a" "#, 5, EOF),
        ("{\"a\":1}\0", 7, "trailing characters after the object"),
        (
            r#"{"capabilities":{"max_msg_fds":8,}}"#,
            33,
            "expected a string key",
        ),
        (
            r#"{"capabilities":{"max_msg_fds":08}}"#,
            31,
            "leading zero in number",
        ),
        (
            r#"{"capabilities":{"migration":{"pgsize"}}}"#,
            38,
            "expected ':' after a key",
        ),
        (r#"{"capabilities" {}}"#, 16, "expected ':' after a key"),
    ];
    for &(json, at, reason) in cases {
        assert_eq!(err(json.as_bytes()), syntax(at, reason), "{json:?}");
    }
}

#[test]
fn not_utf8() {
    // A bad byte inside a string: in a key, in a value, after good multi-byte characters.
    assert_eq!(err(b"{\"\xff\":1}"), syntax(2, "not UTF-8"));
    assert_eq!(err(b"{\"a\":\"\xff\"}"), syntax(6, "not UTF-8"));
    assert_eq!(
        err("{\"a\":\"é😀\u{7f}é"
            .as_bytes()
            .iter()
            .chain(b"\xe9\x80\"}")
            .copied()
            .collect::<Vec<u8>>()
            .as_slice()),
        syntax(15, "not UTF-8")
    );
    // A surrogate encoded in UTF-8, and an overlong encoding.
    assert_eq!(err(b"{\"a\":\"\xed\xa0\x80\"}"), syntax(6, "not UTF-8"));
    assert_eq!(err(b"{\"a\":\"\xc0\xaf\"}"), syntax(6, "not UTF-8"));
    // Outside strings a non-ASCII byte is just unexpected.
    assert_eq!(
        err(b"{\"a\":1\xc3}"),
        syntax(6, "expected ',' or '}' after a member")
    );
    assert_eq!(
        err(b"\xef\xbb\xbf{}"),
        syntax(0, "top level is not an object")
    );
    // A syntax error before a bad byte is reported first.
    assert_eq!(err(b"{\"a\":x,\"\xff\"}"), syntax(5, "expected a value"));
    // A multi-byte sequence cut by the end of the text.
    assert_eq!(err(b"{\"\xc3"), syntax(2, "not UTF-8"));
}

#[test]
fn depth_bombs() {
    let bomb = |open: &str, n: usize| {
        let mut s = String::from(r#"{"x":"#);
        for _ in 0..n {
            s.push_str(open);
        }
        s
    };
    let too_deep = Rule::JsonTooLarge {
        what: "nesting deeper than 16",
    };
    // 10000 unclosed arrays: refused at the 16th, the 17th level.
    assert_eq!(err(bomb("[", 10_000).as_bytes()), (5 + 15, too_deep));
    let objects = bomb(r#"{"a":"#, 10_000);
    assert_eq!(err(objects.as_bytes()), (5 + 15 * 5, too_deep));
    // 15 levels inside the top-level object are fine.
    let mut ok = bomb("[", 15);
    ok.push_str(&"]".repeat(15));
    ok.push('}');
    assert_eq!(parse(&ok).unknown.len(), 1);
    // Known objects count too.
    let mut deep = String::from(r#"{"capabilities":{"migration":{"x":"#);
    deep.push_str(&"[".repeat(13));
    deep.push_str(&"]".repeat(13));
    deep.push_str("}}}");
    assert!(parse_capabilities(deep.as_bytes()).is_ok());
    let deeper = deep.replacen("[", "[[", 1).replacen("]", "]]", 1);
    assert_eq!(err(deeper.as_bytes()), (34 + 13, too_deep));
    // Top-level bombs that are not objects.
    assert_eq!(
        err("[".repeat(10_000).as_bytes()),
        syntax(0, "top level is not an object")
    );
    assert_eq!(
        err("{".repeat(10_000).as_bytes()),
        syntax(1, "expected a string key")
    );
}

#[test]
fn truncated_at_every_length() {
    let docs: &[&[u8]] = &[
        LVU_REPLY,
        QEMU_REQUEST,
        br#"{ "k" : [ "a\"\u00e9" , -1.5e-3 , true , false , null , { } ] , "capabilities" : { "twin_socket" : { "supported" : true } } }"#,
    ];
    for doc in docs {
        for n in 0..doc.len() {
            let (at, rule) = err(&doc[..n]);
            assert!(at <= n, "offset {at} past the end of {n} bytes");
            assert_eq!(rule.id(), "version-json-syntax");
            if let Rule::JsonSyntax { reason } = rule {
                assert!(
                    at == n && (reason == EOF || reason == "unterminated string"),
                    "{n}: {at} {reason}"
                );
            }
        }
        assert!(parse_capabilities(doc).is_ok());
    }
}

#[test]
fn emit_buffer_too_short() {
    let caps = parse_capabilities(LVU_REPLY).expect("lvu reply");
    assert_eq!(caps.emitted_len(), LVU_REPLY.len());
    let mut buf = [0xa5u8; 64];
    assert_eq!(
        caps.emit(&mut buf),
        Err(EncodeError::BufferTooShort {
            need: LVU_REPLY.len(),
            have: 64
        })
    );
    let mut exact = std::vec![0u8; LVU_REPLY.len()];
    assert_eq!(caps.emit(&mut exact), Ok(LVU_REPLY.len()));
    assert_eq!(&exact[..], LVU_REPLY);
}

#[test]
fn emit_unknowns_in_their_objects() {
    let json = r#"{"v":[1, 2],"capabilities":{"z":{"q":"\u0041"},"twin_socket":{"fd_index":2,"t":1},"migration":{"m":null},"pgsizes":"x"}}"#;
    let caps = parse(json);
    let text = emit_string(&caps);
    assert_eq!(
        text,
        r#"{"capabilities":{"migration":{"m":null},"twin_socket":{"fd_index":2,"t":1},"z":{"q":"\u0041"},"pgsizes":"x"},"v":[1, 2]}"#
    );
    let again = parse(&text);
    assert_eq!(emit_string(&again), text);
    assert_eq!(again.ill_typed().count(), 1);
    assert_eq!(again.unknown.len(), caps.unknown.len());
}

// ---- emit/parse round trip ----

const VALUES: &[&str] = &[
    "0",
    "-12",
    "1.5e3",
    "true",
    "null",
    r#""s\"\u00e9""#,
    "[]",
    r#"{"a":[1,{"b":null}]}"#,
];
const ILL_VALUES: &[&str] = &[r#""8""#, "-1", "1.5", "18446744073709551616", "null", "[1]"];
const NAMES: &[&str] = &[
    "x",
    "vendor_ext",
    "a\\u0062",
    "\\u00e9t\\u00e9",
    "with space",
    "max_msg_fds",
    "pgsize",
    "supported",
    "capabilities",
    "migration",
];

fn scope_of(n: u8) -> Scope {
    match n % 4 {
        0 => Scope::Migration,
        1 => Scope::TwinSocket,
        2 => Scope::Capabilities,
        _ => Scope::TopLevel,
    }
}

fn rank(s: Scope) -> u8 {
    match s {
        Scope::Migration => 0,
        Scope::TwinSocket => 1,
        Scope::Capabilities => 2,
        Scope::TopLevel => 3,
    }
}

prop_compose! {
    fn arb_caps()(
        nums in proptest::array::uniform4(proptest::option::of(any::<u64>())),
        write_multiple in proptest::option::of(any::<bool>()),
        twin in proptest::option::of((proptest::option::of(any::<bool>()), proptest::option::of(any::<u64>()))),
        mig in proptest::option::of((proptest::option::of(any::<u64>()), proptest::option::of(any::<u64>()))),
        extra in proptest::collection::vec((any::<u8>(), 0..NAMES.len(), 0..VALUES.len()), 0..12),
        ill in proptest::collection::vec((0..7usize, 0..ILL_VALUES.len()), 0..4),
    ) -> Capabilities<'static> {
        let mut c = Capabilities {
            max_msg_fds: nums[0],
            max_data_xfer_size: nums[1],
            max_dma_maps: nums[2],
            pgsizes: nums[3],
            write_multiple,
            twin_socket: twin.map(|(supported, fd_index)| TwinSocket { supported, fd_index }),
            migration: mig.map(|(pgsize, max_bitmap_size)| Migration { pgsize, max_bitmap_size }),
            ..Capabilities::default()
        };
        let mut all: Vec<UnknownKey<'static>> = Vec::new();
        for (s, name, value) in extra {
            let scope = scope_of(s);
            let key = NAMES[name];
            if Known::lookup(scope, Key { body: key.as_bytes(), escaped: key.contains('\\') }).is_some() || all.iter().any(|u| u.scope == scope && keys_equal(u.key, key)) {
                continue;
            }
            // Members of nested objects need the object.
            match scope {
                Scope::Migration if c.migration.is_none() => continue,
                Scope::TwinSocket if c.twin_socket.is_none() => continue,
                _ => {}
            }
            all.push(unknown(scope, key, VALUES[value], false));
        }
        for (which, value) in ill {
            let k = Scope::Capabilities.known()[which];
            let unset = match k {
                Known::MaxMsgFds => c.max_msg_fds.is_none(),
                Known::MaxDataXferSize => c.max_data_xfer_size.is_none(),
                Known::MaxDmaMaps => c.max_dma_maps.is_none(),
                Known::Pgsizes => c.pgsizes.is_none(),
                Known::WriteMultiple => c.write_multiple.is_none(),
                Known::Migration => c.migration.is_none(),
                _ => c.twin_socket.is_none(),
            };
            if unset && !all.iter().any(|u| u.scope == Scope::Capabilities && u.key == k.name()) {
                all.push(unknown(Scope::Capabilities, k.name(), ILL_VALUES[value], true));
            }
        }
        all.sort_by_key(|u| rank(u.scope));
        for u in all.into_iter().take(MAX_UNKNOWN_KEYS) {
            let _ = c.unknown.push(u);
        }
        c
    }
}

proptest! {
    #[test]
    fn emit_then_parse_round_trips(caps in arb_caps()) {
        let mut buf = std::vec![0xa5u8; caps.emitted_len() + 3];
        let n = caps.emit(&mut buf).expect("emit");
        prop_assert_eq!(n, caps.emitted_len());
        prop_assert!(buf[n..].iter().all(|&b| b == 0xa5));
        let back = parse_capabilities(&buf[..n]).expect("parse emitted");
        prop_assert_eq!(back, caps);
    }

    #[test]
    fn fast_path_agrees_with_the_general_parser(caps in arb_caps(), cut in any::<prop::sample::Index>()) {
        let text = emit_string(&caps);
        prop_assert_eq!(parse_capabilities(text.as_bytes()), parse_capabilities_general(text.as_bytes()));
        // And on every prefix (where the fast path gives up part way through).
        let cut = cut.index(text.len() + 1);
        let part = &text.as_bytes()[..cut];
        prop_assert_eq!(parse_capabilities(part), parse_capabilities_general(part));
    }

    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Err((at, _)) = parse_capabilities(&bytes) {
            prop_assert!(at <= bytes.len());
        }
    }

    #[test]
    fn never_panics_near_json(
        base in 0..3usize,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let docs: [&[u8]; 3] = [LVU_REPLY, QEMU_REQUEST, br#"{"a":[1,{"b":"\u00e9"}],"capabilities":{"x":-1.5e3}}"#];
        let mut doc = docs[base].to_vec();
        for (at, byte) in edits {
            let at = at.index(doc.len());
            let set = b"{}[],:\"\\ 0-.eEtfnu";
            doc[at] = set[usize::from(byte) % set.len()];
        }
        prop_assert_eq!(parse_capabilities(&doc), parse_capabilities_general(&doc));
        match parse_capabilities(&doc) {
            Ok(caps) => {
                // Whatever parses re-emits to text that parses to a value that re-emits the same.
                let text = emit_string(&caps);
                let again = parse(&text);
                prop_assert_eq!(emit_string(&again), text.clone());
            }
            Err((at, _)) => prop_assert!(at <= doc.len()),
        }
    }
}
