//! Records the commit the binary is built from, for `vestibule --version`: `VESTIBULE_COMMIT` when set (a
//! container build has no `.git` in its context and passes it as a build argument), else what git says of this
//! checkout (`-dirty` with uncommitted changes), else `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=VESTIBULE_COMMIT");
    let commit = match std::env::var("VESTIBULE_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_owned(),
        _ => {
            // Rebuilt when HEAD moves or the index changes (a commit, a checkout), not on every build.
            if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
                println!("cargo:rerun-if-changed={dir}/HEAD");
                println!("cargo:rerun-if-changed={dir}/index");
                if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
                    if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
                        println!("cargo:rerun-if-changed={common}/{head}");
                    }
                }
            }
            match git(&["rev-parse", "--short=12", "HEAD"]) {
                Some(hash) => {
                    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some();
                    if dirty {
                        format!("{hash}-dirty")
                    } else {
                        hash
                    }
                }
                None => "unknown".to_owned(),
            }
        }
    };
    // Only the characters a commit id or a tag has: the value ends up in a terminal and in logs.
    let commit: String = commit
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '+'))
        .take(64)
        .collect();
    println!("cargo:rustc-env=VESTIBULE_COMMIT={commit}");
}
