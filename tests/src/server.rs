//! Starting the real `vestibule` binary on a free loopback port, and stopping it when the test ends.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `vestibule serve`, killed on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The folder holding its config and SQLite file.
    pub dir: PathBuf,
    /// The config file.
    pub config: PathBuf,
    bin: PathBuf,
}

/// A temporary folder, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty folder under the system temp dir.
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("{prefix}-{}", crate::random_suffix()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Output of one CLI run.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit status success.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `vestibule ARGS` with optional standard input.
pub fn cli(bin: &Path, args: &[&str], stdin: Option<&str>, cwd: &Path) -> CliOutput {
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vestibule");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().expect("wait");
    CliOutput {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Server {
    /// Writes `config` (TOML; `{dir}` is replaced by the server's folder) and starts `vestibule serve` on
    /// 127.0.0.1:0, waiting for its "listening" line.
    pub fn start(bin: &Path, dir: &Path, config: &str) -> Server {
        let config_path = dir.join("vestibule.toml");
        std::fs::write(&config_path, config.replace("{dir}", &dir.display().to_string())).expect("write config");
        let config_arg = config_path.display().to_string();
        Server::launch(bin, dir, &["--config", &config_arg], config_path, "127.0.0.1:0")
    }

    /// As [`Server::start`], listening on `bind`: for a public URL that must name the port before the server
    /// starts (a passkey's origin is checked against it). The caller reserved the port and released it just
    /// before; should another process take it in that instant, the server exits and this panics.
    pub fn start_at(bin: &Path, dir: &Path, config: &str, bind: &str) -> Server {
        let config_path = dir.join("vestibule.toml");
        std::fs::write(&config_path, config.replace("{dir}", &dir.display().to_string())).expect("write config");
        let config_arg = config_path.display().to_string();
        Server::launch(bin, dir, &["--config", &config_arg], config_path, bind)
    }

    /// Starts `vestibule serve` with no configuration file (the embedded defaults: `./vestibule.db`, the local
    /// source, the development outbox `./vestibule-outbox`) in `dir`, on 127.0.0.1:0. [`Server::cli`] then runs
    /// commands without `--config` too.
    pub fn start_embedded(bin: &Path, dir: &Path) -> Server {
        Server::launch(bin, dir, &[], PathBuf::new(), "127.0.0.1:0")
    }

    fn launch(bin: &Path, dir: &Path, config_args: &[&str], config_path: PathBuf, bind: &str) -> Server {
        let mut child = Command::new(bin)
            .arg("serve")
            .args(config_args)
            .args(["--bind", bind])
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn vestibule serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("vestibule listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            if let Ok(a) = rx.recv_timeout(Duration::from_millis(100)) {
                break a;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("vestibule serve exited before listening: {status}");
            }
            assert!(Instant::now() < deadline, "vestibule serve did not start within 60 s");
        };
        Server {
            child,
            base: format!("http://{addr}"),
            dir: dir.to_owned(),
            config: config_path,
            bin: bin.to_owned(),
        }
    }

    /// Runs a CLI command against the same configuration.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> CliOutput {
        let mut all: Vec<&str> = args.to_vec();
        let config = self.config.display().to_string();
        if !config.is_empty() {
            all.extend(["--config", &config]);
        }
        cli(&self.bin, &all, stdin, &self.dir)
    }

    /// `vestibule user add NAME --email E --password-stdin`.
    pub fn add_user(&self, name: &str, email: &str, password: &str) {
        let out = self.cli(
            &["user", "add", name, "--email", email, "--password-stdin"],
            Some(&format!("{password}\n")),
        );
        assert!(out.success, "user add failed: {}", out.stderr);
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
