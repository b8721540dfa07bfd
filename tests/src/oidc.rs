//! The real OpenID provider (`tests/oidc-provider/server.mjs`, panva/oidc-provider) started on loopback, and a
//! client that drives its login and consent forms the way a browser would. Used by vestibule-oidc's tests and
//! benchmark, the `vestibule` binary's end-to-end tests and the conformance run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use vestibule_core::CallbackParams;

/// The provider's directory in the workspace.
pub fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc-provider")
}

/// A running `node server.mjs`; killed (and reaped) on drop, so no test leaves a stray node behind. Its stdin is
/// a pipe held by this process: if the test binary dies without running destructors, the pipe closes and the
/// server exits by itself.
#[derive(Debug)]
pub struct NodeProvider {
    child: Child,
    // Held open: closing it stops the provider.
    _stdin: ChildStdin,
    /// `http://127.0.0.1:PORT`.
    pub issuer: String,
}

/// What the provider is started with.
#[derive(Debug, Clone, Copy)]
pub struct NodeOptions<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
    /// The broker's callback URL. Ignored by [`NodeProvider::listen`], which takes it later.
    pub redirect_uri: &'a str,
    /// `id_token` or `userinfo` (email/profile claims only at the userinfo endpoint).
    pub claims_in: &'a str,
    /// 0 (the normal case): the provider binds port 0 and prints the port it got. A fixed port only for a test
    /// that configured a source with the address before the provider existed ("down, then up"); see
    /// [`crate::net::RefusingPort::release`].
    pub port: u16,
}

/// A provider that listens (so its issuer is known) but waits for the broker's callback URL before it serves: for
/// a test that must configure a broker with the issuer before the broker, and so its callback URL, exists. Dropped
/// without [`ListeningProvider::serve`], it closes the provider's stdin, and the provider exits.
#[derive(Debug)]
pub struct ListeningProvider {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    /// `http://127.0.0.1:PORT`.
    pub issuer: String,
}

fn spawn(opts: NodeOptions<'_>, redirect_uri: &str) -> (Child, ChildStdin, mpsc::Receiver<String>) {
    let dir = provider_dir();
    assert!(
        dir.join("node_modules/oidc-provider/package.json").is_file(),
        "the test OpenID provider is not installed: run tests/oidc-provider/install.sh (needs node and npm) \
         and run the tests again"
    );
    let mut child = Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .env("OP_PORT", opts.port.to_string())
        .env("OP_CLIENT_ID", opts.client_id)
        .env("OP_CLIENT_SECRET", opts.client_secret)
        .env("OP_REDIRECT_URI", redirect_uri)
        .env("OP_CLAIMS_IN", opts.claims_in)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Its own errors reach the test's output: a provider that fails to start says why there.
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node` (install Node.js 20+): {e}"));
    let stdout = child.stdout.take().expect("stdout piped");
    let stdin = child.stdin.take().expect("stdin piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, stdin, rx)
}

/// Waits for `PREFIX <issuer>` on the provider's stdout; `None` (the process killed) when nothing came within 30 s.
fn wait_line(child: &mut Child, lines: &mpsc::Receiver<String>, prefix: &str) -> Option<String> {
    match lines.recv_timeout(Duration::from_secs(30)) {
        Ok(line) => Some(expect_prefix(child, &line, prefix)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

/// Starts the provider, and once more when the first did not answer within 30 s: a full test run once saw one
/// node process print nothing for 30 s while two others started at once (not reproduced alone, where it starts
/// in about a second). Its stderr is in the test output either way.
fn spawn_until(
    opts: NodeOptions<'_>,
    redirect_uri: &str,
    prefix: &str,
) -> (Child, ChildStdin, mpsc::Receiver<String>, String) {
    for attempt in 1..=2 {
        let (mut child, stdin, lines) = spawn(opts, redirect_uri);
        if let Some(issuer) = wait_line(&mut child, &lines, prefix) {
            return (child, stdin, lines, issuer);
        }
        eprintln!("the OpenID provider did not print `{prefix}` within 30 s (attempt {attempt} of 2)");
    }
    panic!("the OpenID provider did not print `{prefix}` within 30 s, twice (did it fail to bind its port?)");
}

/// Waits for `PREFIX <issuer>` on the provider's stdout.
fn expect_line(child: &mut Child, lines: &mpsc::Receiver<String>, prefix: &str) -> String {
    let line = match lines.recv_timeout(Duration::from_secs(30)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the OpenID provider did not print `{prefix}` within 30 s (did it fail to bind its port?)");
        }
    };
    expect_prefix(child, &line, prefix)
}

/// The issuer after `prefix` on a line of the provider's stdout; anything else ends the provider and the test.
fn expect_prefix(child: &mut Child, line: &str, prefix: &str) -> String {
    match line.trim().strip_prefix(prefix) {
        Some(issuer) => issuer.trim().to_owned(),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("unexpected provider output: {line:?}");
        }
    }
}

impl NodeProvider {
    /// Starts the provider and waits until it serves.
    pub fn start(opts: NodeOptions<'_>) -> NodeProvider {
        let (child, stdin, _lines, issuer) = spawn_until(opts, opts.redirect_uri, "OIDC_PROVIDER_READY ");
        NodeProvider {
            child,
            _stdin: stdin,
            issuer,
        }
    }

    /// Starts the provider up to the point where it listens; [`ListeningProvider::serve`] then gives it the
    /// callback URL. `opts.redirect_uri` is not used.
    pub fn listen(opts: NodeOptions<'_>) -> ListeningProvider {
        let (child, stdin, lines, issuer) = spawn_until(opts, "-", "OIDC_PROVIDER_LISTENING ");
        ListeningProvider {
            child,
            stdin,
            lines,
            issuer,
        }
    }
}

impl ListeningProvider {
    /// Registers `redirect_uri` as the client's only callback and waits until the provider serves.
    pub fn serve(self, redirect_uri: &str) -> NodeProvider {
        let ListeningProvider {
            mut child,
            mut stdin,
            lines,
            issuer: listening,
        } = self;
        writeln!(stdin, "{redirect_uri}").expect("hand the callback URL to the provider");
        let issuer = expect_line(&mut child, &lines, "OIDC_PROVIDER_READY ");
        assert_eq!(issuer, listening, "the provider moved");
        NodeProvider {
            child,
            _stdin: stdin,
            issuer,
        }
    }
}

impl Drop for NodeProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser stand-in: a cookie jar, no automatic redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// How the person acts at the provider.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Person<'a> {
    /// Signs in as this account and consents.
    SignIn(&'a str),
    /// Presses cancel at the login page.
    Cancel,
}

/// Follows the authorization request through the provider's login and consent pages until it redirects to
/// `callback`, and returns that redirect's parameters (without requesting the callback itself).
pub async fn authorize(
    browser: &reqwest::Client,
    authorize_url: &str,
    callback: &str,
    person: Person<'_>,
) -> CallbackParams {
    callback_params(&authorize_redirect(browser, authorize_url, callback, person).await)
}

/// Like [`authorize`], but returns the whole redirect to `callback` (absolute), for a test that hands it to a
/// real broker.
pub async fn authorize_redirect(
    browser: &reqwest::Client,
    authorize_url: &str,
    callback: &str,
    person: Person<'_>,
) -> reqwest::Url {
    let mut url = reqwest::Url::parse(authorize_url).expect("authorize url");
    let mut response = browser.get(url.clone()).send().await.expect("authorization request");
    for _ in 0..20 {
        if response.status().is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .expect("redirect without Location")
                .to_owned();
            // oidc-provider sends relative Locations.
            let next = url.join(&location).expect("location");
            if next.as_str().starts_with(callback) {
                return next;
            }
            url = next;
            response = browser.get(url.clone()).send().await.expect("follow redirect");
            continue;
        }
        let status = response.status();
        let body = response.text().await.expect("body");
        assert!(status.is_success(), "provider answered {status}: {body}");
        let action = attr_after(&body, "<form", "action=").expect("a form on the interaction page");
        let action = url.join(&action).expect("form action");
        let form: Vec<(&str, &str)> = if body.contains("name=\"prompt\" value=\"login\"") {
            match person {
                Person::SignIn(login) => vec![("prompt", "login"), ("login", login), ("password", "any")],
                Person::Cancel => {
                    let abort = url.join(&format!("{}/abort", url.path())).expect("abort url");
                    url = abort;
                    response = browser.get(url.clone()).send().await.expect("abort");
                    continue;
                }
            }
        } else if body.contains("name=\"prompt\" value=\"consent\"") {
            vec![("prompt", "consent")]
        } else {
            panic!("unexpected interaction page: {body}");
        };
        url = action;
        response = browser.post(url.clone()).form(&form).send().await.expect("submit form");
    }
    panic!("the provider never redirected to the callback");
}

fn attr_after(html: &str, tag: &str, attr: &str) -> Option<String> {
    let start = html.find(tag)?;
    let rest = &html[start..];
    let at = rest.find(attr)? + attr.len();
    let rest = &rest[at..];
    let quote = rest.chars().next()?;
    let rest = &rest[1..];
    let end = rest.find(quote)?;
    Some(rest[..end].replace("&amp;", "&"))
}

/// The callback's query as the broker would hand it to `finish`.
pub fn callback_params(url: &reqwest::Url) -> CallbackParams {
    let mut params = CallbackParams::default();
    let mut extra = BTreeMap::new();
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "state" => params.state = Some(v.into_owned().into()),
            "code" => params.code = Some(v.into_owned().into()),
            "error" => params.error = Some(v.into_owned()),
            "iss" => params.iss = Some(v.into_owned()),
            _ => {
                extra.insert(k.into_owned(), v.into_owned());
            }
        }
    }
    params.extra = extra;
    params
}

/// A secret in a temporary environment variable, as deployments pass `client_secret_env`.
pub fn secret_env(name: &str, value: &str) -> String {
    // Tests in one binary share the environment; unique names keep them apart.
    let var = format!("VESTIBULE_OIDC_TEST_{name}_{}", std::process::id());
    std::env::set_var(&var, value);
    var
}
