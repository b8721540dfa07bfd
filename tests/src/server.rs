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
    /// Every line it printed on standard output so far.
    printed: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
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

/// Writes `config` (`{dir}` replaced by `dir`) to `dir/vestibule.toml`; its path, and as an argument.
fn write_config(dir: &Path, config: &str) -> (PathBuf, String) {
    let config_path = dir.join("vestibule.toml");
    std::fs::write(&config_path, config.replace("{dir}", &dir.display().to_string())).expect("write config");
    let config_arg = config_path.display().to_string();
    (config_path, config_arg)
}

/// Makes a throwaway CA and certificates signed by it in `dir` with `tests/ldap/gen-cert.sh` (openssl): `ca.crt`,
/// and `server.crt` / `server.key` for 127.0.0.1 and localhost, among others (the script lists them).
pub fn make_certificates(dir: &Path) {
    let status = Command::new("sh")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("ldap/gen-cert.sh"))
        .arg(dir)
        .status()
        .expect("run tests/ldap/gen-cert.sh (openssl)");
    assert!(status.success(), "making the test certificates failed");
}

/// Every file directly in `dir`, concatenated: to prove a secret is nowhere in a SQLite database's files. A file
/// that vanishes between the listing and the read is skipped: SQLite folds its `-wal` file into the database and
/// deletes it as the last connection closes, and what it held is then in the database file, which is read too.
pub fn files_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list the folder") {
        match std::fs::read(entry.expect("a folder entry").path()) {
            Ok(b) => bytes.extend(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("{e}"),
        }
    }
    bytes
}

impl Server {
    /// Writes `config` (TOML; `{dir}` is replaced by the server's folder) and starts `vestibule serve` on
    /// 127.0.0.1:0, waiting for its "listening" line.
    pub fn start(bin: &Path, dir: &Path, config: &str) -> Server {
        let (config_path, config_arg) = write_config(dir, config);
        Server::launch(bin, dir, &["--config", &config_arg], config_path, None, "127.0.0.1:0")
    }

    /// [`Server::start`] with the log at `info` written to [`Server::log_file`] instead of the test's output, for
    /// tests that read the log.
    pub fn start_logged(bin: &Path, dir: &Path, config: &str) -> Server {
        let (config_path, config_arg) = write_config(dir, config);
        let log = dir.join("vestibule.log");
        Server::launch(
            bin,
            dir,
            &["--config", &config_arg],
            config_path,
            Some(&log),
            "127.0.0.1:0",
        )
    }

    /// Where [`Server::start_logged`] writes the log.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("vestibule.log")
    }

    /// The server's process id (to send it a signal).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// As [`Server::start`] on a port chosen first, for a public URL that must name the port before the server
    /// starts (a passkey's origin is checked against it): `config` gets the port. The `vestibule` binary cannot be
    /// handed a listener, so the port is held, released, then bound by the server; should another process take it
    /// in that instant, the server exits and this tries again on another port (up to five times).
    pub fn start_at(bin: &Path, dir: &Path, config: impl Fn(u16) -> String) -> Server {
        let mut last = String::new();
        for _ in 0..5 {
            let port = crate::net::RefusingPort::new().release();
            let (config_path, config_arg) = write_config(dir, &config(port));
            let bind = format!("127.0.0.1:{port}");
            match Server::try_launch(bin, dir, &["--config", &config_arg], config_path, None, &bind) {
                Ok(server) => return server,
                Err(e) => last = e,
            }
        }
        panic!("vestibule serve did not start on a chosen port, five times: {last}");
    }

    /// Starts `vestibule serve` with no configuration file (the embedded defaults: `./vestibule.db`, the local
    /// source, the development outbox `./vestibule-outbox`) in `dir`, on 127.0.0.1:0. [`Server::cli`] then runs
    /// commands without `--config` too.
    pub fn start_embedded(bin: &Path, dir: &Path) -> Server {
        Server::launch(bin, dir, &[], PathBuf::new(), None, "127.0.0.1:0")
    }

    fn launch(
        bin: &Path,
        dir: &Path,
        config_args: &[&str],
        config_path: PathBuf,
        log: Option<&Path>,
        bind: &str,
    ) -> Server {
        Server::try_launch(bin, dir, config_args, config_path, log, bind).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `vestibule serve` and waits for its "listening" line; `Err` when it exits first (a port taken).
    fn try_launch(
        bin: &Path,
        dir: &Path,
        config_args: &[&str],
        config_path: PathBuf,
        log: Option<&Path>,
        bind: &str,
    ) -> Result<Server, String> {
        let (level, stderr) = match log {
            Some(path) => (
                "info",
                Stdio::from(std::fs::File::create(path).expect("create the log file")),
            ),
            None => ("warn", Stdio::inherit()),
        };
        let mut child = Command::new(bin)
            .arg("serve")
            .args(config_args)
            .args(["--bind", bind])
            .current_dir(dir)
            .env("RUST_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn vestibule serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = printed.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("vestibule listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
                keep.lock().expect("stdout lines").push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            if let Ok(a) = rx.recv_timeout(Duration::from_millis(100)) {
                break a;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("vestibule serve exited before listening: {status}"));
            }
            assert!(Instant::now() < deadline, "vestibule serve did not start within 60 s");
        };
        Ok(Server {
            child,
            base: format!("http://{addr}"),
            dir: dir.to_owned(),
            config: config_path,
            bin: bin.to_owned(),
            printed,
        })
    }

    /// What follows `prefix` on the first line of standard output that starts with it, waiting up to 10 s for it
    /// (`"vestibule redirecting http on "` gives that listener's address).
    pub fn printed(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .printed
                .lock()
                .expect("stdout lines")
                .iter()
                .find_map(|l| l.strip_prefix(prefix).map(|v| v.trim().to_owned()));
            if let Some(v) = found {
                return v;
            }
            assert!(Instant::now() < deadline, "vestibule never printed {prefix:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET /metrics` on the server's `[metrics]` listener (its configuration must set `[metrics] bind`): the
    /// Prometheus text. Read values with [`series`].
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.printed("vestibule metrics on "));
        let res = reqwest::get(&url).await.expect("GET /metrics");
        assert_eq!(res.status(), reqwest::StatusCode::OK, "GET {url}");
        res.text().await.expect("the metrics text")
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

    /// `vestibule user add NAME --email E --password-stdin`; the new account's id.
    pub fn add_user(&self, name: &str, email: &str, password: &str) -> String {
        let out = self.cli(
            &["user", "add", name, "--email", email, "--password-stdin"],
            Some(&format!("{password}\n")),
        );
        assert!(out.success, "user add failed: {}", out.stderr);
        out.stdout
            .strip_prefix("created account ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("user add printed no id: {}", out.stdout))
            .to_owned()
    }

    /// Waits up to `limit` for the process to exit by itself; its status, or `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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

/// The value of the series `name` whose labels include every `label="value"` given, in Prometheus text (the
/// first such series).
pub fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (head, value) = l.rsplit_once(' ')?;
        let (metric, rest) = head.split_once('{').unwrap_or((head, ""));
        if metric != name || !labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))) {
            return None;
        }
        value.parse().ok()
    })
}
