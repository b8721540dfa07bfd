//! Lists the built-in page templates (`templates/*.html`) and the language catalogues (`templates/i18n/*.ftl`)
//! for `include_str!`, so a new page or a new language is a file, found here rather than named in the code.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn files(dir: &Path, ext: &str) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == ext))
        .filter_map(|p| Some((p.file_name()?.to_str()?.to_owned(), p)))
        .collect();
    found.sort();
    found
}

fn list(out: &mut String, name: &str, entries: &[(String, PathBuf)]) {
    let _ = writeln!(out, "pub(crate) const {name}: &[(&str, &str)] = &[");
    for (key, path) in entries {
        let _ = writeln!(out, "    ({key:?}, include_str!({:?})),", path.display().to_string());
    }
    out.push_str("];\n");
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    // `templates` links to the workspace's top-level templates/ folder; a packaged crate holds it as files.
    let templates = manifest.join("templates");
    let i18n = templates.join("i18n");
    println!("cargo:rerun-if-changed={}", templates.display());
    println!("cargo:rerun-if-changed={}", i18n.display());
    let mut out = String::new();
    list(&mut out, "BUILTIN_TEMPLATES", &files(&templates, "html"));
    let catalogues: Vec<(String, PathBuf)> = files(&i18n, "ftl")
        .into_iter()
        .map(|(name, path)| (name.trim_end_matches(".ftl").to_owned(), path))
        .collect();
    list(&mut out, "CATALOGUES", &catalogues);
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("embedded.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}
