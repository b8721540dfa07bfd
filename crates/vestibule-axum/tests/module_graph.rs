//! The crate's modules form no import circle: each imports only modules that do not import it back, directly or
//! through others. A circle is how "where does this live" stops having an answer; this test keeps it from coming
//! back. It reads the sources (non-test code) for `crate::module` paths (grouped ones included, `crate::{a, b::{c}}`),
//! `super::` paths of a top-level module (the crate root), and names re-exported by `lib.rs` (`crate::Name` is the
//! module that defines `Name`). The reader is checked too: it must find edges known to exist, and it must report a
//! circle planted in made-up sources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// The text with line comments removed (a doc link is not an import) and every `#[cfg(test)]` item cut out: a
/// `;`-terminated one up to its `;`, a block up to its matching `}`. Whatever follows a test module is kept.
fn non_test_code(src: &str) -> String {
    let code: String = src
        .lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string (`"https://..."`) is not a comment; no import path contains one either way.
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = String::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let item = &rest[i..];
        let end = match (item.find('{'), item.find(';')) {
            (Some(open), semi) if semi.is_none_or(|s| open < s) => {
                let mut depth = 0usize;
                let mut end = item.len();
                for (k, c) in item[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (_, Some(semi)) => semi + 1,
            _ => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The first word of each path in a `{...}` group (the text after the `{`), splitting on top-level commas only:
/// `a, b::{c, d}, e}` gives `a`, `b`, `e`.
fn group_heads(group: &str) -> Vec<&str> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                heads.extend(words(&group[start..i]).next());
                return heads;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                heads.extend(words(&group[start..i]).next());
                start = i + 1;
            }
            _ => {}
        }
    }
    heads.extend(words(&group[start..]).next());
    heads
}

/// Every name a `pub use module::...;` of `lib.rs` re-exports, mapped to that module (statements may span lines).
fn reexports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let code = non_test_code(lib);
    let mut rest = code.as_str();
    while let Some(i) = rest.find("pub use ") {
        rest = &rest[i + "pub use ".len()..];
        let statement = &rest[..rest.find(';').unwrap_or(rest.len())];
        let mut w = words(statement);
        if let Some(m) = w.next().filter(|m| modules.contains(*m)) {
            for name in w {
                out.insert(name.to_owned(), m.to_owned());
            }
        }
    }
    out
}

/// Which modules each module imports, from `lib.rs` and the modules' sources.
fn graph_of(lib: &str, sources: &BTreeMap<String, String>) -> Graph {
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let reexported = reexports(lib, &modules);
    let mut g = Graph::new();
    for (m, src) in sources {
        let code = non_test_code(src);
        let mut deps = BTreeSet::new();
        for prefix in ["crate::", "super::"] {
            let mut rest = code.as_str();
            while let Some(i) = rest.find(prefix) {
                // `super::` inside a word (`a_super::`) is not one.
                let inside_word = rest[..i]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
                rest = &rest[i + prefix.len()..];
                if inside_word {
                    continue;
                }
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(group) => group_heads(group),
                    None => words(rest).take(1).collect(),
                };
                for n in names {
                    if modules.contains(n) {
                        deps.insert(n.to_owned());
                    } else if let Some(owner) = reexported.get(n) {
                        deps.insert(owner.clone());
                    }
                }
            }
        }
        deps.remove(m);
        g.insert(m.clone(), deps);
    }
    g
}

/// The crate's own graph: every `src/*.rs` but `lib.rs` is a module (the crate has no module folders; the test
/// fails if one appears, so that it is read too).
fn graph() -> Graph {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(dir.join("lib.rs")).expect("lib.rs");
    let mut sources = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("src") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            !entry.file_type().expect("file type").is_dir(),
            "src/{name}/: a module folder; teach this test to read it"
        );
        if let Some(m) = name.strip_suffix(".rs").filter(|m| *m != "lib") {
            sources.insert(m.to_owned(), std::fs::read_to_string(entry.path()).expect("module"));
        }
    }
    graph_of(&lib, &sources)
}

/// Every circle through each module, as `a -> b -> a`.
fn circles(g: &Graph) -> Vec<String> {
    let mut circles = Vec::new();
    for start in g.keys() {
        // Everything reachable from `start`; a path back to it is a circle.
        let mut seen = BTreeSet::new();
        let mut todo: Vec<Vec<String>> = vec![vec![start.clone()]];
        while let Some(path) = todo.pop() {
            let last = path.last().expect("non-empty");
            for next in g.get(last).into_iter().flatten() {
                if next == start {
                    circles.push(format!("{} -> {start}", path.join(" -> ")));
                } else if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    todo.push(p);
                }
            }
        }
    }
    circles
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let g = graph();
    assert!(g.len() > 5, "read the modules: {g:?}");
    let circles = circles(&g);
    assert!(circles.is_empty(), "import circles:\n{}", circles.join("\n"));
}

/// The reader sees imports that are there: plain, grouped and through a re-exported name.
#[test]
fn the_reader_finds_imports_known_to_exist() {
    let g = graph();
    for (from, to) in [
        ("layer", "context"),   // use crate::context::{AuthContext, SessionId};
        ("layer", "cookies"),   // use crate::{client, cookies, respond, Vestibule};
        ("layer", "state"),     // ... Vestibule, re-exported from state
        ("extract", "context"), // use crate::context::AuthContext;
        ("extract", "error"),   // use crate::AppError; (re-exported)
    ] {
        assert!(
            g[from].contains(to),
            "{from} imports {to}, but the reader found {:?}",
            g[from]
        );
    }
}

/// Circles are reported however the import is written, and test code and comments do not count.
#[test]
fn a_planted_circle_is_reported() {
    let lib = "mod a;\nmod b;\nmod c;\npub use c::{\n    Thing,\n    Other,\n};\n";
    let sources = |b: &str| -> BTreeMap<String, String> {
        [
            ("a", "use crate::{x::{y}, b::Foo};\n"),
            ("b", b),
            ("c", "pub struct Thing;\npub struct Other;\n"),
            ("x", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    };
    let two_way = |b: &str| circles(&graph_of(lib, &sources(b)));
    // Nothing back from b: no circle.
    assert!(two_way("// crate::a::Bar is only mentioned here\n").is_empty());
    assert!(two_way("#[cfg(test)]\nmod tests {\n    use crate::a::Bar;\n}\n").is_empty());
    assert!(two_way("#[cfg(test)]\nuse crate::a::Bar;\n").is_empty());
    // b imports a back, in each way an import can be written.
    for back in [
        "use crate::a::Bar;\n",
        "use crate::{c::Thing, a::Bar};\n",
        "fn f() { super::a::bar() }\n",
        "#[cfg(test)]\nmod tests {}\nuse crate::a::Bar;\n",
    ] {
        let found = two_way(back);
        assert!(found.iter().any(|c| c == "a -> b -> a"), "{back:?}: {found:?}");
    }
    // A re-exported name (from a multi-line `pub use`) counts as its module.
    let lib_c = "pub use c::{\n    Thing,\n};\n";
    let mut s = sources("use crate::a::Bar;\n");
    s.insert("a".into(), "use crate::Thing;\n".into());
    s.insert("c".into(), "use crate::b::Foo;\npub struct Thing;\n".into());
    let found = circles(&graph_of(lib_c, &s));
    assert!(found.iter().any(|c| c == "a -> c -> b -> a"), "{found:?}");
}
