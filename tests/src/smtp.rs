//! A throwaway SMTP server for the mail tests: the PyPI package aiosmtpd (in `tests/smtp/.venv`, made by
//! `tests/smtp/install.sh`) running `tests/smtp/sink.py` on a free loopback port. Every message it receives is
//! an `.eml` file in its folder, which the tests read ([`SmtpSink::wait_for`]). It never skips: when aiosmtpd is not
//! installed it panics with the command that installs it.
//!
//! Lifetime: the sink stops when our end of its standard input closes: on drop, or when the test process exits.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How the sink should talk.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// Offer and require STARTTLS with a certificate for `localhost` / `127.0.0.1` signed by a throwaway CA
    /// ([`SmtpSink::ca_file`]).
    pub starttls: bool,
    /// Require AUTH with this user and password (over TLS when `starttls`).
    pub auth: Option<(String, String)>,
}

/// One running sink.
#[derive(Debug)]
pub struct SmtpSink {
    /// Where received messages are written.
    pub dir: PathBuf,
    /// The port on 127.0.0.1.
    pub port: u16,
    child: Child,
    _stdin: ChildStdin,
}

fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/.venv/bin/python");
    let ok = p.exists()
        && Command::new(&p)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        panic!(
            "the SMTP sink (Python aiosmtpd) is not installed; the mail tests need a real SMTP server. Run \
             `tests/smtp/install.sh` from the repository root, then run the tests again."
        );
    }
    p
}

impl SmtpSink {
    /// Starts a sink with its own folder.
    pub fn start(opts: SinkOptions) -> SmtpSink {
        let dir = std::env::temp_dir().join(format!("vestibule-smtp-{}", crate::random_suffix()));
        std::fs::create_dir_all(dir.join("mail")).unwrap();
        let mut cmd = Command::new(python());
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/sink.py"))
            .arg(dir.join("mail"));
        if opts.starttls {
            crate::server::make_certificates(&dir);
            cmd.arg("--tls-cert").arg(dir.join("server.crt"));
            cmd.arg("--tls-key").arg(dir.join("server.key"));
        }
        if let Some((user, password)) = &opts.auth {
            cmd.args(["--user", user, "--password", password]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP sink");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the sink's port");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the SMTP sink did not start: {line:?}"));
        SmtpSink {
            dir,
            port,
            child,
            _stdin: stdin,
        }
    }

    /// The CA that signed the STARTTLS certificate (PEM), for the client's `ca_file`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// Every message received so far (sorted by content, not by arrival).
    pub fn messages(&self) -> Vec<String> {
        read_eml_dir(&self.dir.join("mail"))
    }

    /// Waits (at most 20 s) until a received message satisfies `pred`, and returns it.
    pub fn wait_for(&self, pred: impl Fn(&str) -> bool) -> String {
        wait_for_eml(&self.dir.join("mail"), pred)
    }

    /// Waits (at most 20 s) for a message with this subject to this address, and returns it unfolded
    /// ([`unfold`]).
    pub fn wait_for_mail(&self, subject: &str, to: &str) -> String {
        let (subject, to) = (format!("Subject: {subject}\r\n"), format!("X-Envelope-To: {to}\r\n"));
        unfold(&self.wait_for(|m| m.contains(&subject) && m.contains(&to)))
    }

    /// How many messages received so far have this subject and go to this address.
    pub fn count(&self, subject: &str, to: &str) -> usize {
        let (subject, to) = (format!("Subject: {subject}\r\n"), format!("X-Envelope-To: {to}\r\n"));
        self.messages()
            .iter()
            .filter(|m| m.contains(&subject) && m.contains(&to))
            .count()
    }

    /// Waits (at most 20 s) until at least `n` messages with this subject went to this address; returns how many
    /// there are then (more than `n` is for the caller to judge).
    pub fn wait_for_count(&self, subject: &str, to: &str, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = self.count(subject, to);
            if found >= n || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The complete `.eml` files of a folder (a sink's, or the broker's development outbox).
pub fn read_eml_dir(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    out.sort();
    out
}

/// Waits (at most 20 s) until an `.eml` file of `dir` satisfies `pred`, and returns it.
pub fn wait_for_eml(dir: &Path, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(m) = read_eml_dir(dir).into_iter().find(|m| pred(m)) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no matching message in {} within 20 s",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A message with quoted-printable soft line breaks removed, so that a phrase or link split across lines reads
/// whole.
pub fn unfold(message: &str) -> String {
    message.replace("=\r\n", "").replace("=\n", "")
}

/// The first `{base}/{path}/TOKEN` link in a message (the text part: quoted-printable may wrap the HTML one).
pub fn link_in(message: &str, base: &str, path: &str) -> Option<String> {
    let unfolded = unfold(message);
    let prefix = format!("{base}/{path}/");
    let start = unfolded.find(&prefix)?;
    let rest = &unfolded[start + prefix.len()..];
    let token: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    Some(format!("{prefix}{token}"))
}
