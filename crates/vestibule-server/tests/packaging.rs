//! Packaging (issue #14): the Dockerfile passes hadolint, and where a container runtime answers (`docker info` or
//! `podman info`) the image is built and runs `--version` on a read-only root file system; the systemd unit passes
//! `systemd-analyze verify` and its sandboxing rates "OK" or better, and the container's health check command
//! works against a running server. scripts/test installs hadolint and systemd-analyze (tests/docker/install.sh); a
//! container runtime is used when one is there, never installed.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vestibule_tests::server::{Server, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_vestibule");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let hadolint = repo().join("tests/docker/.venv/bin/hadolint");
    assert!(
        hadolint.exists(),
        "hadolint is missing: run tests/docker/install.sh (scripts/test does)"
    );
    let out = Command::new(&hadolint)
        .arg("--no-color")
        .arg(repo().join("Dockerfile"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What the image promises, read from the file: a non-root numeric user, a health check, the version's commit.
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert!(text.lines().any(|l| l.starts_with("USER 65532")), "non-root user");
    assert!(
        text.contains("HEALTHCHECK") && text.contains("\"healthcheck\""),
        "health check"
    );
    assert!(text.contains("VESTIBULE_COMMIT"), "the commit reaches --version");
}

/// The container runtime whose daemon answers `info` within 10 s, if any. A CLI without a daemon does not count
/// (this project's machines have a docker CLI and no daemon).
fn container_runtime() -> Option<&'static str> {
    for runtime in ["docker", "podman"] {
        let Ok(mut child) = Command::new(runtime)
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            continue;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Some(runtime),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                _ => break,
            }
        }
    }
    None
}

/// Where a container runtime answers: the image builds from the Dockerfile, and the binary in it runs on a
/// read-only root file system as its user and prints the commit given as the build argument. Elsewhere the
/// Dockerfile is only linted ([`the_dockerfile_passes_hadolint`]), and this says so.
#[test]
fn the_image_builds_and_runs_read_only_where_a_container_runtime_answers() {
    let Some(runtime) = container_runtime() else {
        println!(
            "no container runtime answers here (`docker info`, `podman info`): the image is not built; the \
             Dockerfile is checked by hadolint (the_dockerfile_passes_hadolint)"
        );
        return;
    };
    let suffix = vestibule_tests::random_suffix();
    let commit = format!("test{}", &suffix[..8]);
    let tag = format!("vestibule-test:{suffix}");
    let run = |args: &[&str]| {
        let out = Command::new(runtime).args(args).output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    };
    let context = repo().display().to_string();
    let (built, said) = run(&[
        "build",
        "--build-arg",
        &format!("VESTIBULE_COMMIT={commit}"),
        "-t",
        &tag,
        &context,
    ]);
    assert!(built, "{runtime} build failed:\n{said}");
    let (ran, said) = run(&["run", "--rm", "--read-only", &tag, "--version"]);
    let _ = run(&["image", "rm", "--force", &tag]);
    assert!(ran, "{runtime} run failed:\n{said}");
    assert!(said.contains(&format!("(commit {commit})")), "{said}");
}

#[test]
fn the_systemd_unit_verifies_and_is_sandboxed() {
    let dir = TempDir::new("vestibule-unit");
    // The unit as installed, with ExecStart pointing at the binary this test built.
    let unit = std::fs::read_to_string(repo().join("deploy/vestibule.service"))
        .unwrap()
        .replace("/usr/local/bin/vestibule", BIN);
    let path = dir.0.join("vestibule.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let level = said
        .lines()
        .find_map(|l| l.split("Overall exposure level for vestibule.service: ").nth(1))
        .unwrap_or_else(|| panic!("{said}"));
    let score: f64 = level.split_whitespace().next().unwrap().parse().unwrap();
    assert!(score <= 2.0, "exposure {level}");
}

/// `vestibule healthcheck --config FILE` (the image's HEALTHCHECK): exit 0 while the server answers `/healthz`,
/// non-zero once it is gone.
#[test]
fn the_health_check_command_follows_the_server() {
    let dir = TempDir::new("vestibule-hc");
    let mut server = Server::start(Path::new(BIN), &dir.0, "[database]\nurl = \"sqlite://{dir}/v.db\"\n");
    // The server was started on port 0: point the check at the port it got.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let config = server.config.clone();
    let check = || {
        Command::new(BIN)
            .args(["healthcheck", "--config"])
            .arg(&config)
            .args(["--address", &addr])
            .output()
            .unwrap()
    };
    let out = check();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    server.stop();
    let out = check();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unhealthy"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
