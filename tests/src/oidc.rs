//! Starts the real OpenID provider (`tests/oidc-provider/server.mjs`, panva/oidc-provider) on loopback and drives
//! its login and consent forms the way a browser would. Shared by the integration tests and the benchmark.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use vestibule_core::CallbackParams;

/// The provider's directory in the workspace.
pub fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc-provider")
}

/// A running `node server.mjs`; killed (and reaped) on drop, so no test leaves a stray node behind. Its stdin is
/// a pipe held by this process: if the test binary dies without running destructors, the pipe closes and the
/// server exits by itself.
pub struct NodeProvider {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub issuer: String,
}

/// What the provider is started with.
pub struct NodeOptions<'a> {
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub redirect_uri: &'a str,
    /// `id_token` or `userinfo` (email/profile claims only at the userinfo endpoint).
    pub claims_in: &'a str,
    /// 0: any free port.
    pub port: u16,
}

impl NodeProvider {
    pub fn start(opts: NodeOptions<'_>) -> NodeProvider {
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
            .env("OP_REDIRECT_URI", opts.redirect_uri)
            .env("OP_CLAIMS_IN", opts.claims_in)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `node` (install Node.js 20+): {e}"));
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut provider = NodeProvider {
            child,
            issuer: String::new(),
        };
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the OpenID provider did not start within 30 s");
        provider.issuer = line
            .trim()
            .strip_prefix("OIDC_PROVIDER_READY ")
            .unwrap_or_else(|| panic!("unexpected provider output: {line:?}"))
            .to_owned();
        provider
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

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A secret in a temporary environment variable, as deployments pass `client_secret_env`.
pub fn secret_env(name: &str, value: &str) -> String {
    // Tests in one binary share the environment; unique names keep them apart.
    let var = format!("VESTIBULE_OIDC_TEST_{name}_{}", std::process::id());
    std::env::set_var(&var, value);
    var
}
