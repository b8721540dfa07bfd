//! The crate's modules form no import circle: each imports only modules that do not import it back, directly or
//! through others. A circle is how "where does this live" stops having an answer; this test keeps it from coming
//! back. It reads the sources (non-test code) for `crate::module` paths and re-exported names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(dir.join("lib.rs")).expect("lib.rs");
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("src") {
        let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
        if let Some(m) = name.strip_suffix(".rs").filter(|m| *m != "lib") {
            modules.insert(m.to_owned());
        }
    }
    // `pub use module::{Name, ...};` in lib.rs: `crate::Name` means that module.
    let mut reexported = BTreeMap::new();
    for line in lib.lines().filter_map(|l| l.trim().strip_prefix("pub use ")) {
        let mut w = words(line);
        if let Some(m) = w.next().filter(|m| modules.contains(*m)) {
            for name in w {
                reexported.insert(name.to_owned(), m.to_owned());
            }
        }
    }
    let mut g = BTreeMap::new();
    for m in &modules {
        let src = std::fs::read_to_string(dir.join(format!("{m}.rs"))).expect("module");
        // Non-test code, without comments: a doc link is not an import.
        let code: String = src
            .split("#[cfg(test)]")
            .next()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let code = code.as_str();
        let mut deps = BTreeSet::new();
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            // `crate::x`, or `crate::{a, b::c}`: the first word of each path.
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                group[..end].split(',').filter_map(|p| words(p).next()).collect()
            } else {
                words(rest).take(1).collect()
            };
            for n in names {
                if modules.contains(n) {
                    deps.insert(n.to_owned());
                } else if let Some(owner) = reexported.get(n) {
                    deps.insert(owner.clone());
                }
            }
        }
        deps.remove(m);
        g.insert(m.clone(), deps);
    }
    g
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let g = graph();
    assert!(g.len() > 5, "read the modules: {g:?}");
    let mut circles = Vec::new();
    for start in g.keys() {
        // Everything reachable from `start`; a path back to it is a circle.
        let mut seen = BTreeSet::new();
        let mut todo: Vec<Vec<String>> = vec![vec![start.clone()]];
        while let Some(path) = todo.pop() {
            let last = path.last().expect("non-empty");
            for next in &g[last] {
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
    assert!(circles.is_empty(), "import circles:\n{}", circles.join("\n"));
}
