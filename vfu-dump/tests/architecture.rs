//! The shape of the sources (`docs/architecture.md`), checked so that it cannot drift:
//!
//! - no two files import each other (`use crate::…`, `super::…`, `self::…` and paths written out in
//!   code, resolved to the file that defines the module), in `vfu-dump/src` and `codec/src`;
//! - a subcommand module (`vfu-dump/src/cmd/*.rs`) imports no other subcommand module, nor
//!   `cmd/mod.rs`; nothing below the subcommands imports them (only `main.rs` does);
//! - no source file is over [`MAX_LINES`] lines, its test module aside.
//!
//! The few exceptions are named below with the branch that removes them; an exception that no longer
//! holds is an error too, so that the list only shrinks.

#![allow(clippy::unwrap_used)] // test helpers: a failure is a test failure

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a source file may be, its test module aside.
const MAX_LINES: usize = 800;

/// Pairs of files that import each other today, each to be untangled by the branch that owns them.
const KNOWN_CYCLES: &[(&str, &str, &str)] = &[];

/// Files longer than [`MAX_LINES`] today, each being split by the branch that owns it.
const KNOWN_LONG: &[(&str, &str, &str)] = &[];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One source file: its path under `src/`, its module path, and its text before any inline test
/// module.
struct File {
    rel: String,
    module: Vec<String>,
    text: String,
}

fn files(src: &Path) -> Vec<File> {
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p
                    .strip_prefix(src)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = std::fs::read_to_string(&p).unwrap();
                out.push(File {
                    module: module_of(&rel),
                    text: without_tests(&text).to_owned(),
                    rel,
                });
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

/// `lib.rs`, `main.rs` → the crate root; `a/mod.rs` and `a.rs` → `a`; `a/b.rs` → `a::b`.
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel.split('/').map(str::to_owned).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !(stem == "mod" || (parts.is_empty() && (stem == "lib" || stem == "main"))) {
        parts.push(stem.to_owned());
    }
    parts
}

/// The text before an inline `#[cfg(test)] mod tests {` (which this codebase puts last).
fn without_tests(text: &str) -> &str {
    let mut at = 0;
    while let Some(i) = text[at..].find("#[cfg(test)]") {
        let i = at + i;
        let rest = text[i + "#[cfg(test)]".len()..].trim_start();
        if rest.starts_with("mod ") && rest.split('\n').next().unwrap().contains('{') {
            return &text[..i];
        }
        at = i + 1;
    }
    text
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// What a file names: every path of its `use` trees (expanded, with the name each one brings into
/// scope), every path written in its code (two segments or more), and the modules it declares.
#[derive(Default)]
struct Names {
    uses: Vec<(String, Vec<String>)>,
    code: Vec<Vec<String>>,
    mods: Vec<String>,
}

fn names(text: &str) -> Names {
    let code = strip_comments_and_strings(text);
    let mut n = Names::default();
    // `use` trees.
    let mut rest = code.as_str();
    while let Some(i) = find_word(rest, "use") {
        let after = &rest[i + 3..];
        let Some(end) = after.find(';') else { break };
        expand_tree(after[..end].trim(), &mut Vec::new(), &mut n.uses);
        rest = &after[end..];
    }
    // `mod x;` declarations.
    let mut rest = code.as_str();
    while let Some(i) = find_word(rest, "mod") {
        let after = rest[i + 3..].trim_start();
        let name: String = after.chars().take_while(|&c| is_ident(c)).collect();
        if after[name.len()..].trim_start().starts_with(';') {
            n.mods.push(name);
        }
        rest = &rest[i + 3..];
    }
    // Paths written out in code.
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts =
            (i == 0 || (!is_ident(chars[i - 1]) && chars[i - 1] != ':')) && is_ident(chars[i]);
        if !starts {
            i += 1;
            continue;
        }
        let mut segs = Vec::new();
        loop {
            let s = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            segs.push(chars[s..i].iter().collect::<String>());
            if i + 2 < chars.len()
                && chars[i] == ':'
                && chars[i + 1] == ':'
                && is_ident(chars[i + 2])
            {
                i += 2;
            } else {
                break;
            }
        }
        if segs.len() > 1 {
            n.code.push(segs);
        }
    }
    n
}

fn find_word(s: &str, w: &str) -> Option<usize> {
    let mut at = 0;
    while let Some(i) = s[at..].find(w) {
        let i = at + i;
        let before = s[..i].chars().next_back();
        let after = s[i + w.len()..].chars().next();
        if before.is_none_or(|c| !is_ident(c)) && after.is_some_and(char::is_whitespace) {
            return Some(i);
        }
        at = i + w.len();
    }
    None
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`, each with the name it brings into scope
/// (`x as y` brings `y`; `a::{self}` brings `a`; a glob brings nothing by name).
fn expand_tree(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<(String, Vec<String>)>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let n = prefix.len();
        prefix.extend(head);
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_tree(&inner[start..i], prefix, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_tree(&inner[start..], prefix, out);
        prefix.truncate(n);
    } else if !tree.is_empty() {
        let mut parts = tree.split(" as ");
        let tree = parts.next().unwrap().trim();
        let alias = parts.next().map(|a| a.trim().to_owned());
        let mut p = prefix.clone();
        p.extend(
            tree.split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty() && *s != "*")
                .map(str::to_owned),
        );
        if p.last().is_some_and(|s| s == "self") {
            p.pop();
        }
        let glob = tree.ends_with('*');
        if let Some(last) = p.last().cloned() {
            let name = if glob {
                String::new()
            } else {
                alias.unwrap_or(last)
            };
            out.push((name, p));
        }
    }
}

/// The text with comments, string and char literals blanked out (so that doc examples and
/// messages naming paths do not count).
fn strip_comments_and_strings(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if b[i] == '/' && b.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == 'r'
            && matches!(b.get(i + 1), Some('"' | '#'))
            && (i == 0 || !is_ident(b[i - 1]))
        {
            // Raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(b[i]);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if b[i] == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let close = (i + 2..(i + 12).min(b.len())).find(|&j| b[j] == '\'');
            match close {
                Some(j) if b[i + 1] == '\\' || j == i + 2 => {
                    out.push_str("' '");
                    i = j + 1;
                }
                _ => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// file → the files it imports from.
fn graph(files: &[File], lib: &str) -> BTreeMap<String, BTreeSet<String>> {
    let by_module: BTreeMap<Vec<String>, &str> = files
        .iter()
        .filter(|f| f.rel != "main.rs")
        .map(|f| (f.module.clone(), f.rel.as_str()))
        .collect();
    let mut g = BTreeMap::new();
    for f in files {
        let n = names(&f.text);
        // A path's first segment: `crate`, the library, `self`, `super`, a module this file declares
        // (2018 paths), or a name a `use` brought in; anything else (std, other crates, local items)
        // is not ours.
        let absolute =
            |p: &[String], aliases: &BTreeMap<String, Vec<String>>| -> Option<Vec<String>> {
                let first = p[0].as_str();
                let mut m = if first == "crate" || first == lib {
                    Vec::new()
                } else if first == "self" {
                    f.module.clone()
                } else if first == "super" {
                    let ups = p.iter().take_while(|s| s.as_str() == "super").count();
                    let mut m = f.module.clone();
                    for _ in 0..ups {
                        m.pop();
                    }
                    m.extend(p[ups..].iter().cloned());
                    return Some(m);
                } else if n.mods.iter().any(|x| x == first) {
                    let mut m = f.module.clone();
                    m.push(first.to_owned());
                    m
                } else if let Some(full) = aliases.get(first) {
                    full.clone()
                } else {
                    return None;
                };
                m.extend(p[1..].iter().cloned());
                Some(m)
            };
        let mut aliases = BTreeMap::new();
        let mut resolved = Vec::new();
        for (name, p) in &n.uses {
            if let Some(m) = absolute(p, &BTreeMap::new()) {
                if !name.is_empty() {
                    aliases.insert(name.clone(), m.clone());
                }
                resolved.push(m);
            }
        }
        for p in &n.code {
            if let Some(m) = absolute(p, &aliases) {
                resolved.push(m);
            }
        }
        let mut to = BTreeSet::new();
        for m in resolved {
            if let Some(t) = deepest(&by_module, &m)
                && t != f.rel
            {
                to.insert(t.to_owned());
            }
        }
        g.insert(f.rel.clone(), to);
    }
    g
}

/// The file of the deepest module that `path` starts with (none for the crate root itself).
fn deepest<'a>(by_module: &BTreeMap<Vec<String>, &'a str>, path: &[String]) -> Option<&'a str> {
    (1..=path.len())
        .rev()
        .find_map(|n| by_module.get(&path[..n]).copied())
}

fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (a, tos) in g {
        for b in tos {
            if a < b && g.get(b).is_some_and(|t| t.contains(a)) {
                out.insert((a.clone(), b.clone()));
            }
        }
    }
    out
}

fn check_cycles(krate: &str, lib: &str) -> Vec<String> {
    let src = root().join(krate).join("src");
    let g = graph(&files(&src), lib);
    let found = cycles(&g);
    let known: BTreeSet<(String, String)> = KNOWN_CYCLES
        .iter()
        .filter(|(k, ..)| *k == krate)
        .map(|(_, a, b)| (a.to_string(), b.to_string()))
        .collect();
    let mut errors = Vec::new();
    for (a, b) in found.difference(&known) {
        errors.push(format!("{krate}/src: {a} and {b} import each other"));
    }
    for (a, b) in known.difference(&found) {
        errors.push(format!(
            "{krate}/src: {a} and {b} no longer import each other: remove them from KNOWN_CYCLES"
        ));
    }
    errors
}

#[test]
fn no_two_files_import_each_other() {
    let mut errors = check_cycles("vfu-dump", "vfu_dump");
    errors.extend(check_cycles("codec", "vfu_codec"));
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// The top-level module a file belongs to: `pipeline/engine.rs` → `pipeline`, `proxy.rs` → `proxy`.
fn top(rel: &str) -> &str {
    rel.split('/').next().unwrap().trim_end_matches(".rs")
}

#[test]
fn layers_form_no_circle() {
    // Between top-level modules (capture, validate, render, pipeline, proxy, cmd, …), imports go one
    // way only: a circle of any length is an error, which is what makes them layers.
    let g = graph(&files(&root().join("vfu-dump/src")), "vfu_dump");
    let mut tops: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, tos) in &g {
        let e = tops.entry(top(from)).or_default();
        for to in tos {
            if top(to) != top(from) {
                e.insert(top(to));
            }
        }
    }
    fn visit<'a>(
        n: &'a str,
        g: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(i) = path.iter().position(|p| *p == n) {
            let mut c = path[i..].to_vec();
            c.push(n);
            return Some(c);
        }
        if !done.insert(n) {
            return None;
        }
        path.push(n);
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for n in tops.keys() {
        if let Some(c) = visit(n, &tops, &mut Vec::new(), &mut done) {
            panic!(
                "the top-level modules import in a circle: {}",
                c.join(" → ")
            );
        }
    }
    assert!(tops["pipeline"].contains("render") && tops["cmd"].contains("pipeline"));
}

#[test]
fn subcommands_import_no_subcommand() {
    let files = files(&root().join("vfu-dump/src"));
    let g = graph(&files, "vfu_dump");
    let mut errors = Vec::new();
    for (from, tos) in &g {
        for to in tos.iter().filter(|t| t.starts_with("cmd/")) {
            let ok = from == "main.rs" || (from == "cmd/mod.rs" && to != "cmd/mod.rs");
            if !ok {
                errors.push(format!("{from} imports the subcommand module {to}"));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // The check sees the imports it is about: main.rs dispatches to every subcommand.
    let subcommands: BTreeSet<&String> = files
        .iter()
        .map(|f| &f.rel)
        .filter(|r| r.starts_with("cmd/") && *r != "cmd/mod.rs")
        .collect();
    assert!(subcommands.len() >= 7, "{subcommands:?}");
    for s in subcommands {
        assert!(g["main.rs"].contains(s), "main.rs does not dispatch to {s}");
    }
}

#[test]
fn files_fit_in_a_head() {
    let mut errors = Vec::new();
    for krate in ["vfu-dump", "codec"] {
        let files = files(&root().join(krate).join("src"));
        for f in &files {
            if f.rel.ends_with("tests.rs")
                || f.rel.starts_with("tests/")
                || f.rel.contains("/tests/")
            {
                continue;
            }
            let lines = f.text.lines().count();
            let known = KNOWN_LONG
                .iter()
                .find(|(k, r, _)| *k == krate && *r == f.rel);
            match known {
                None if lines > MAX_LINES => errors.push(format!(
                    "{krate}/src/{}: {lines} lines outside its tests (at most {MAX_LINES})",
                    f.rel
                )),
                Some(_) if lines <= MAX_LINES => errors.push(format!(
                    "{krate}/src/{}: {lines} lines now: remove it from KNOWN_LONG",
                    f.rel
                )),
                _ => {}
            }
        }
        for (_, rel, _) in KNOWN_LONG.iter().filter(|(k, ..)| *k == krate) {
            if !files.iter().any(|f| f.rel == *rel) {
                errors.push(format!(
                    "{krate}/src/{rel} is gone: remove it from KNOWN_LONG"
                ));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn the_scanner_resolves_imports() {
    let text = "mod k;\nuse crate::{a::{b, c as d}, e::{self}};\nuse super::f::G;\nfn x() { crate::h::i(); e::y(); k::z(); let s = \"crate::j::k\"; }\n// crate::l::m\n";
    let n = names(text);
    let uses: Vec<String> = n
        .uses
        .iter()
        .map(|(a, p)| format!("{a}={}", p.join("::")))
        .collect();
    assert_eq!(
        uses,
        [
            "b=crate::a::b",
            "d=crate::a::c",
            "e=crate::e",
            "G=super::f::G"
        ]
    );
    assert_eq!(n.mods, ["k"]);
    assert!(
        n.code
            .contains(&vec!["crate".into(), "h".into(), "i".into()])
    );
    assert!(
        !n.code
            .iter()
            .any(|p| p.contains(&"j".to_owned()) || p.contains(&"l".to_owned()))
    );
    assert_eq!(module_of("a/mod.rs"), ["a"]);
    assert_eq!(module_of("a/b.rs"), ["a", "b"]);
    assert!(module_of("lib.rs").is_empty());
    let file = |rel: &str, module: &[&str], text: &str| File {
        rel: rel.into(),
        module: module.iter().map(|s| s.to_string()).collect(),
        text: text.into(),
    };
    let files = vec![
        file("a.rs", &["a"], "use crate::b::X;"),
        file(
            "b/mod.rs",
            &["b"],
            "pub mod c; mod d; fn f() { super::a::y(); d::z(); }",
        ),
        file("b/c.rs", &["b", "c"], "use super::Z;"),
        file(
            "b/d.rs",
            &["b", "d"],
            "use crate::e::{self};\nfn g() { e::h(); }",
        ),
        file("e.rs", &["e"], ""),
        file(
            "main.rs",
            &[],
            "use lib::b::{self};\nfn main() { b::c::run(); }",
        ),
    ];
    let g = graph(&files, "lib");
    assert_eq!(
        cycles(&g),
        BTreeSet::from([("a.rs".to_owned(), "b/mod.rs".to_owned())])
    );
    assert!(g["b/c.rs"].contains("b/mod.rs"));
    assert!(g["b/mod.rs"].contains("b/d.rs"), "a declared module's path");
    assert!(
        !g["b/mod.rs"].contains("b/c.rs"),
        "a declaration is no import"
    );
    assert!(g["b/d.rs"].contains("e.rs"));
    assert!(g["main.rs"].contains("b/c.rs"), "through a use alias");
}
