//! A throwaway OpenLDAP `slapd` for tests and benchmarks: its own config, data folder, certificates and loopback
//! ports, loaded with `tests/ldap/directory.ldif`. Used by the LDAP provider's tests and example, the `vestibule`
//! binary's end-to-end tests, the LDAP benchmark and the conformance run, so all run against the same server setup.
//! It never skips: when slapd is not installed it panics with the command that installs it.
//!
//! Lifetime: slapd runs in the foreground under `tests/ldap/run-slapd.sh`, which stops it as soon as our end of its
//! standard-input pipe closes: on [`Slapd::stop`], on drop, or when the test process exits or dies (the kernel
//! closes the pipe). That is what lets [`Slapd::shared`] live in a `static` that is never dropped without leaving
//! a stray slapd behind.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The directory's suffix.
pub const BASE: &str = "dc=example,dc=org";
/// Where people live.
pub const PEOPLE: &str = "ou=people,dc=example,dc=org";
/// Where groups live.
pub const GROUPS: &str = "ou=groups,dc=example,dc=org";
/// The rootdn (bypasses ACLs): for fixtures only.
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
/// The rootdn's password.
pub const ADMIN_PASSWORD: &str = "admin-secret";
/// The least-privileged service account.
pub const SVC_DN: &str = "cn=svc,ou=services,dc=example,dc=org";
/// Its password.
pub const SVC_PASSWORD: &str = "svc-secret";

/// How to configure one server.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Offer ldaps on a second port and StartTLS on the plain one.
    pub tls: bool,
    /// `allow bind_anon_dn`: a DN with an empty password binds as anonymous (RFC 4513 5.1.2).
    pub allow_bind_anon_dn: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tls: true,
            allow_bind_anon_dn: false,
        }
    }
}

/// One running (or stopped, restartable) slapd.
#[derive(Debug)]
pub struct Slapd {
    /// Config, data, certificates and log.
    pub dir: PathBuf,
    /// Plain LDAP (and StartTLS when TLS is on).
    pub ldap_port: u16,
    /// LDAPS, when TLS is on.
    pub ldaps_port: Option<u16>,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// Reads of the bind counter so far: each is a bind of its own, left out of what [`Slapd::binds`] returns.
    counter_reads: AtomicU64,
}

/// `tests/ldap` in the workspace: the config template, schema, fixtures and scripts.
pub fn support_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ldap")
}

fn find_slapd() -> PathBuf {
    for candidate in ["/usr/sbin/slapd", "/usr/local/sbin/slapd", "/usr/local/libexec/slapd"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    if let Ok(path) = which("slapd") {
        return path;
    }
    panic!(
        "slapd (OpenLDAP) is not installed; the LDAP tests need a real server. Run `sudo tests/ldap/install.sh` \
         from the repository root (installs slapd, ldap-utils and openssl), then run the tests again."
    );
}

fn which(name: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .ok_or(())
}

fn require_tool(name: &str) {
    if which(name).is_err() {
        panic!("`{name}` is not installed; run `sudo tests/ldap/install.sh` from the repository root");
    }
}

/// A port to offer slapd. slapd binds the ports named in its `-h` URLs itself and cannot be handed a listener, and
/// with two URLs on port 0 we could not tell which port is which; so this is the kernel's pick of a free port,
/// released at once, and [`Slapd::launch`] starts again on fresh ports when slapd reports it could not bind
/// (another process took the port in between). For slapd only: never use a port from here for a server that
/// cannot retry.
fn candidate_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address").port()
}

impl Slapd {
    /// The server shared by every test of one test binary: TLS on, `bind_anon_dn` off. Started on first use,
    /// stopped when the test process exits.
    pub fn shared() -> &'static Slapd {
        static SHARED: OnceLock<Slapd> = OnceLock::new();
        SHARED.get_or_init(|| {
            let mut s = Slapd::create(Options::default());
            s.launch();
            s.load_fixtures();
            s
        })
    }

    /// A server of its own, for tests that stop it or need a different configuration.
    pub fn start(opts: Options) -> Slapd {
        let mut s = Slapd::create(opts);
        s.launch();
        s.load_fixtures();
        s
    }

    /// A server of its own, TLS on, presenting `self-signed.crt` ([`Slapd::self_signed_cert_file`]): a
    /// certificate made by `openssl req -x509` with the default configuration, so marked a CA
    /// (basicConstraints CA:TRUE), for `127.0.0.1` only (so `localhost` is a wrong name for it).
    pub fn start_self_signed() -> Slapd {
        let mut s = Slapd::create(Options::default());
        let conf = s.dir.join("slapd.conf");
        let text = std::fs::read_to_string(&conf).unwrap();
        let d = s.dir.display();
        let text = text
            .replace(&format!("{d}/server.crt"), &format!("{d}/self-signed.crt"))
            .replace(&format!("{d}/server.key"), &format!("{d}/self-signed.key"));
        std::fs::write(&conf, text).unwrap();
        s.launch();
        s.load_fixtures();
        s
    }

    fn create(opts: Options) -> Slapd {
        // Fail early, with the install hint, before making any files.
        find_slapd();
        require_tool("ldapadd");
        if opts.tls {
            require_tool("openssl");
        }
        // Kept on disk by us; run-slapd.sh removes it when the server stops for good, which also covers a test
        // process killed before any destructor runs.
        let dir = std::env::temp_dir().join(format!("vestibule-slapd-{}", crate::random_suffix()));
        std::fs::create_dir_all(dir.join("data")).expect("create the slapd folder");
        if opts.tls {
            crate::server::make_certificates(&dir);
        }
        // Copied rather than included from the source tree, whose path may hold characters slapd.conf cannot.
        std::fs::copy(support_dir().join("ad-like.schema"), dir.join("ad-like.schema")).unwrap();
        let template = std::fs::read_to_string(support_dir().join("slapd.conf.in")).unwrap();
        let d = dir.display().to_string();
        let tls = if opts.tls {
            format!(
                "TLSCACertificateFile {d}/ca.crt\nTLSCertificateFile {d}/server.crt\nTLSCertificateKeyFile {d}/server.key"
            )
        } else {
            String::new()
        };
        let allow = if opts.allow_bind_anon_dn {
            "allow bind_anon_dn"
        } else {
            ""
        };
        let conf = template
            .replace("@DIR@", &d)
            .replace("@ALLOW@", allow)
            .replace("@TLS@", &tls);
        std::fs::write(dir.join("slapd.conf"), conf).unwrap();
        Slapd {
            dir,
            ldap_port: 0,
            ldaps_port: if opts.tls { Some(0) } else { None },
            child: None,
            stdin: None,
            counter_reads: AtomicU64::new(0),
        }
    }

    /// Starts slapd on fresh ports (first start, retried on fresh ports when a bind fails) or on the same ports
    /// again (restart: the ports are part of the configuration the test already handed out, so no retry; the
    /// window in which another process could take them is the test's stop-to-restart pause), and waits until it
    /// answers.
    fn launch(&mut self) {
        let first = self.ldap_port == 0;
        let mut last_log = String::new();
        for _attempt in 0..5 {
            if first {
                self.ldap_port = candidate_port();
                if self.ldaps_port.is_some() {
                    self.ldaps_port = Some(candidate_port());
                }
            }
            let mut urls = format!("ldap://127.0.0.1:{}/", self.ldap_port);
            if let Some(p) = self.ldaps_port {
                urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
            }
            let log = self.dir.join("slapd.log");
            let _ = std::fs::remove_file(&log);
            let mut cmd = Command::new("sh");
            cmd.arg(support_dir().join("run-slapd.sh"))
                .arg(find_slapd())
                .arg(self.dir.join("slapd.conf"))
                .arg(&urls)
                .arg(&log)
                .arg(&self.dir);
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            self.stdin = child.stdin.take();
            self.child = Some(child);
            if self.wait_ready(Duration::from_secs(10)) {
                return;
            }
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
            self.stop();
            if !first {
                break;
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        panic!("slapd did not start; its log:\n{last_log}");
    }

    fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut ports = vec![self.ldap_port];
        ports.extend(self.ldaps_port);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
            }
            // The wrapper outlives a slapd that failed to start: look at the pid file slapd writes once its
            // listeners are open, then at the ports themselves.
            let all_up = ports.iter().all(|p| {
                let addr = SocketAddr::from(([127, 0, 0, 1], *p));
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            });
            if all_up && self.dir.join("slapd.pid").exists() {
                return true;
            }
            let log = std::fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default();
            if log.contains("slapd stopped") || log.contains("daemon: bind(") {
                return false;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        false
    }

    fn load_fixtures(&self) {
        self.ldap_cmd(
            "ldapadd",
            &std::fs::read_to_string(support_dir().join("directory.ldif")).unwrap(),
        );
    }

    /// Applies LDIF with `ldapmodify` as the rootdn (adds need `changetype: add`).
    pub fn modify(&self, ldif: &str) {
        self.ldap_cmd("ldapmodify", ldif);
    }

    /// Like [`Slapd::modify`] with the ManageDsaIT control, to add or change referral objects themselves.
    pub fn modify_manage_dsa_it(&self, ldif: &str) {
        self.ldap_cmd_args("ldapmodify", &["-M"], ldif);
    }

    fn ldap_cmd(&self, tool: &str, ldif: &str) {
        self.ldap_cmd_args(tool, &[], ldif);
    }

    fn ldap_cmd_args(&self, tool: &str, extra: &[&str], ldif: &str) {
        use std::io::Write;
        let mut child = Command::new(tool)
            .args(["-x", "-H", &self.ldap_url(), "-D", ADMIN_DN, "-w", ADMIN_PASSWORD])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(ldif.as_bytes()).unwrap();
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{tool} failed: {err}");
    }

    /// How many binds this server has completed, from its monitor backend (`cn=Bind,cn=Operations,cn=Monitor`),
    /// leaving out the binds made to read it: a structural measure of the work a source does per sign-in.
    pub fn binds(&self) -> u64 {
        let out = Command::new("ldapsearch")
            .args([
                "-x",
                "-LLL",
                "-H",
                &self.ldap_url(),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
            ])
            .args([
                "-b",
                "cn=Bind,cn=Operations,cn=Monitor",
                "-s",
                "base",
                "monitorOpCompleted",
            ])
            .output()
            .expect("run ldapsearch");
        assert!(
            out.status.success(),
            "ldapsearch on cn=Monitor failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reads = self.counter_reads.fetch_add(1, Ordering::SeqCst) + 1;
        let text = String::from_utf8_lossy(&out.stdout);
        let completed: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("monitorOpCompleted: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no monitorOpCompleted in {text}"));
        completed - reads
    }

    /// Stops slapd and waits until it is gone; the data stays for [`Slapd::restart`].
    pub fn stop(&mut self) {
        self.halt(true);
    }

    /// Closing the pipe is the stop signal (see run-slapd.sh); "keep" first saves the folder.
    fn halt(&mut self, keep: bool) {
        use std::io::Write;
        if let Some(mut stdin) = self.stdin.take() {
            if keep {
                let _ = stdin.write_all(b"keep");
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Starts a stopped server again on the same ports with the same data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running slapd");
        self.launch();
    }

    /// `ldap://127.0.0.1:PORT`
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    /// `ldaps://127.0.0.1:PORT`
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port.unwrap())
    }

    /// The CA that signed the server certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A CA that signed nothing here.
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.join("other-ca.crt")
    }

    /// The certificate a [`Slapd::start_self_signed`] server presents (every TLS server has the file).
    pub fn self_signed_cert_file(&self) -> PathBuf {
        self.dir.join("self-signed.crt")
    }

    /// Another self-signed certificate for `127.0.0.1`, with another key, presented by no server.
    pub fn other_self_signed_cert_file(&self) -> PathBuf {
        self.dir.join("other-self-signed.crt")
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.halt(false);
    }
}
