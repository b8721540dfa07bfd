//! A real OpenAPI validator: `tests/openapi/validate.mjs` runs `@apidevtools/swagger-parser` (pinned in
//! `tests/openapi/package-lock.json`, installed by `tests/openapi/install.sh`) on a document.

use std::path::PathBuf;
use std::process::Command;

/// Validates `document` (JSON text): `Ok(what the validator printed)` or `Err(the problems it found)`. Panics with
/// the fix when the validator is not installed: tests never skip.
pub fn validate(document: &str) -> Result<String, String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi");
    assert!(
        dir.join("node_modules/@apidevtools/swagger-parser/package.json")
            .is_file(),
        "the OpenAPI validator is not installed: run tests/openapi/install.sh (needs node and npm)"
    );
    let scratch = crate::server::TempDir::new("vestibule-openapi");
    let file = scratch.0.join("openapi.json");
    std::fs::write(&file, document).expect("write the document");
    let out = Command::new("node")
        .arg(dir.join("validate.mjs"))
        .arg(&file)
        .output()
        .expect("run node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}
