//! A real headless Chromium for end-to-end tests, driven through chromedriver (W3C WebDriver, via fantoccini):
//! [`Chrome::start`] gives a fresh profile and a [`Client`]; [`Ext`] sends WebDriver extension commands
//! (WebAuthn's virtual authenticator, Chromium's DevTools) that fantoccini has no method for.
//!
//! Chromium and chromedriver come from `tests/browser/install.sh` (run by `scripts/test`). Nothing skips: when
//! either is missing, [`Chrome::start`] fails and says so.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

use crate::server::TempDir;

/// Where tests/browser/install.sh puts Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Where tests/browser/install.sh puts chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The longest any single wait for the browser may take.
pub const WAIT: Duration = Duration::from_secs(20);
/// The window's width, in CSS px.
pub const WIDTH: u32 = 1000;
/// The window's height, in CSS px.
pub const HEIGHT: u32 = 800;

/// A WebDriver extension command, sent as is with [`Client::issue_cmd`] (fantoccini has none for WebAuthn or
/// Chromium's DevTools): `path` is relative to the session (`webauthn/authenticator`, `goog/cdp/execute`).
#[derive(Debug)]
pub struct Ext {
    /// The HTTP method of the command.
    pub method: http::Method,
    /// The command's path after `session/{id}/`.
    pub path: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Ext {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/{}", session.unwrap_or_default(), self.path))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (self.method.clone(), self.body.as_ref().map(Value::to_string))
    }
}

/// A chromedriver and the Chromium it starts, all in one process group that is killed on drop.
#[derive(Debug)]
pub struct Chrome {
    driver: Child,
    client: Option<Client>,
    profile: TempDir,
}

impl Chrome {
    /// Starts chromedriver on a free loopback port and opens a session with a fresh headless Chromium profile
    /// (English, [`WIDTH`]×[`HEIGHT`]).
    pub async fn start() -> Chrome {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the browser tests need Chromium and chromedriver. Run `scripts/test` (which \
                 runs tests/browser/install.sh), or run tests/browser/install.sh as root once."
            );
        }
        // One folder for the driver's log and a fresh Chromium profile, removed after both are gone.
        let profile = TempDir::new("vestibule-chromium");
        let (driver, port) = start_driver(&profile.0.join("chromedriver.log"));
        let mut chrome = Chrome {
            driver,
            client: None,
            profile,
        };
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--lang=en-US",
                    format!("--window-size={WIDTH},{HEIGHT}"),
                    format!("--user-data-dir={}", chrome.profile.0.join("profile").display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start Chromium ({CHROMIUM}): {e}"));
        chrome.client = Some(client);
        chrome
    }

    /// The WebDriver session.
    pub fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Ends the WebDriver session (chromedriver closes Chromium), then the drop kills what is left.
    pub async fn finish(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        // chromedriver was made the leader of its own process group, which its Chromium processes inherit: kill
        // the whole group (that id is ours), then reap the driver.
        let pgid = self.driver.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Starts chromedriver (see [`start_driver_once`]), again when it lost a race for its port: with `--port=0` it
/// takes a free IPv4 loopback port and then binds the same number on IPv6 loopback, which another test's server
/// may hold by then ("bind() failed: Address already in use", seen in CI with tests running side by side).
fn start_driver(log: &Path) -> (Child, u16) {
    for _ in 1..5 {
        match start_driver_once(log) {
            Ok(started) => return started,
            Err(err) if err.contains("Address already in use") => continue,
            Err(err) => panic!("{err}"),
        }
    }
    start_driver_once(log).unwrap_or_else(|err| panic!("{err}"))
}

/// Starts chromedriver in a new process group with `--port=0` (the kernel picks a free loopback port, which the
/// driver names in its "started successfully on port N." line) and waits for that line. Its standard error goes
/// to `log` (a file, so that a chatty driver never blocks on a full pipe). An early exit is an `Err` with the log.
fn start_driver_once(log: &Path) -> Result<(Child, u16), String> {
    let mut child = Command::new(CHROMEDRIVER)
        // Without --allowed-ips it listens on loopback only.
        .arg("--port=0")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {CHROMEDRIVER}: {e} (run tests/browser/install.sh)"));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((_, rest)) = line.split_once("started successfully on port ") {
                let _ = tx.send(rest.trim_end_matches('.').trim().parse::<u16>().ok());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(port)) => return Ok((child, port)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromedriver named no port it listens on");
            }
            Err(_) => {}
        }
        if let Ok(Some(status)) = child.try_wait() {
            let err = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("chromedriver exited ({status}): {err}"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromedriver did not start within 30 s");
        }
    }
}

/// The axe rule tags checked by [`axe_violations`]: WCAG 2.0 and 2.1, levels A and AA.
pub const AXE_TAGS: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/// axe-core's script (pinned by tests/browser/package-lock.json, installed by tests/browser/install.sh).
pub fn axe_source() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. axe-core is missing: run tests/browser/install.sh (scripts/test runs it).",
            path.display()
        )
    })
}

/// The axe violations ([`AXE_TAGS`]) of the page the browser shows, one line each (rule, impact, what it asks,
/// where). Injecting the script over WebDriver bypasses the page's CSP, which is what a checker needs.
pub async fn axe_violations(b: &Client, axe: &str) -> Vec<String> {
    // The library defines `window.axe` when it runs in a window.
    b.execute(&format!("{axe}\n;return typeof window.axe;"), vec![])
        .await
        .expect("axe-core loads");
    let found = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             window.axe
               .run(document, { runOnly: { type: 'tag', values: arguments[0] }, resultTypes: ['violations'] })
               .then(r => done(r.violations.map(v => `${v.id} (${v.impact}): ${v.help} at ` +
                                                    v.nodes.map(n => n.target.join(' ')).join(', '))),
                     e => done([`axe did not run: ${e}`]));",
            vec![json!(AXE_TAGS)],
        )
        .await
        .expect("axe-core runs");
    found
        .as_array()
        .unwrap_or_else(|| panic!("axe answered {found}"))
        .iter()
        .map(|v| v.as_str().unwrap_or("?").to_owned())
        .collect()
}
