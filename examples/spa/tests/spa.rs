//! The single-page app end to end in a real browser: the app (`example_spa::app_and_broker`, what
//! `cargo run -p example-spa` serves) on a free loopback port over a fresh SQLite file, its public URL
//! `http://127.0.0.1:PORT`, and its page driven by a headless Chromium by typing and clicking. What runs is the
//! page's own script under the page's own CSP (nothing is injected into the page but the test's reads, and the
//! `fetch` calls that stand for the visitor's other tabs).
//!
//! Login CSRF is tried from a page of another site, `http://localhost:PORT2`: an auto-submitted form and a
//! credentialed `fetch`, against the app as it is and against the app wrapped in a permissive CORS layer.
//!
//! Chromium and chromedriver come from `tests/browser/install.sh` (run by `scripts/test`).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::Router;
use example_spa::{DEMO_NAME, DEMO_PASSWORD, DEMO_USER};
use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use vestibule::{AccountLookup, Broker};
use vestibule_core::AuthSource;
use vestibule_oidc::{OidcConfig, OidcSource};
use vestibule_store::Store;
use vestibule_tests::browser::Browser;
use vestibule_tests::chrome::{axe_source, axe_violations, Chrome, WAIT};
use vestibule_tests::server::TempDir;
use vestibule_tests::totp;

/// The API's words for every failed sign-in, `invalid_credentials` (Chromium runs in English).
const GENERIC_FAILURE: &str = "We could not sign you in. Please try again.";
/// The broker's words for a wrong second-factor code.
const WRONG_CODE: &str = "That code is not valid. Check your authenticator app and try again.";
/// The line `/api/hello` answers the demo account.
const HELLO: &str = "Hello, Demo User! This line comes from the app's own /api/hello.";

/// Every request that reached the app, as `METHOD PATH from ORIGIN`.
type Seen = Arc<Mutex<Vec<String>>>;

/// The app on `127.0.0.1:PORT` (its public URL), its broker, the requests it saw, and a fresh browser.
struct Env {
    base: String,
    broker: Arc<Broker>,
    seen: Seen,
    chrome: Chrome,
    _dir: TempDir,
}

impl Env {
    /// The app as `cargo run -p example-spa` serves it.
    async fn start() -> Env {
        Env::start_wrapped(|app| app).await
    }

    /// The app inside `wrap` (a weakened setup), with a recorder of the requests that reach it around that.
    async fn start_wrapped(wrap: impl FnOnce(Router) -> Router) -> Env {
        Env::start_full(wrap, Vec::new()).await
    }

    /// [`Env::start_wrapped`] with `more` sources after the local one.
    async fn start_full(wrap: impl FnOnce(Router) -> Router, more: Vec<Arc<dyn AuthSource>>) -> Env {
        let dir = TempDir::new("example-spa");
        let store = Store::connect(&format!("sqlite://{}/spa.db", dir.0.display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (app, broker) = example_spa::app_and_broker_with(store, &base, more).await.unwrap();
        let seen = Seen::default();
        let app = wrap(app).layer(from_fn_with_state(seen.clone(), record));
        tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .await
                .unwrap();
        });
        Env {
            base,
            broker,
            seen,
            chrome: Chrome::start().await,
            _dir: dir,
        }
    }

    fn b(&self) -> &Client {
        self.chrome.client()
    }

    /// Opens the page and waits for the sign-in form it draws from `/auth/api/sources`.
    async fn open(&self) {
        self.b().goto(&format!("{}/", self.base)).await.unwrap();
        self.visible("#sign-in form.password-source input[name=username]").await;
    }

    /// Waits until the element `css` is in the page and not hidden.
    async fn visible(&self, css: &str) -> fantoccini::elements::Element {
        let shown = format!(
            "const e = document.querySelector({}); return !!e && e.offsetParent !== null;",
            json!(css)
        );
        self.until(&shown).await;
        self.b().find(Locator::Css(css)).await.unwrap()
    }

    /// Runs `script` (a function body) in the page until it returns something truthy, and returns that; fails
    /// after [`WAIT`] with the page's text. A script that fails (the page is navigating) is tried again.
    async fn until(&self, script: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.b().execute(script, vec![]).await;
            if let Ok(v) = &got {
                if !matches!(v, Value::Null | Value::Bool(false)) && v != "" {
                    return v.clone();
                }
            }
            if Instant::now() > deadline {
                let text = self
                    .b()
                    .execute("return document.body.innerText;", vec![])
                    .await
                    .unwrap_or_default();
                panic!(
                    "never true: {script}\nlast answer: {got:?}\nthe page shows:\n{}",
                    text.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The text of `css` once it is shown with some text.
    async fn text_of(&self, css: &str) -> String {
        self.visible(css).await;
        let script = format!("return document.querySelector({}).textContent.trim();", json!(css));
        self.until(&script).await.as_str().unwrap().to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self.visible(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.visible(css).await.click().await.unwrap();
    }

    /// No WCAG 2.0/2.1 A or AA violation that axe-core finds in what the page shows now (`what`, for the message).
    async fn assert_accessible(&self, what: &str) {
        let found = axe_violations(self.b(), &axe_source()).await;
        assert!(found.is_empty(), "{what}: {found:#?}");
    }

    /// Types a username and password into the page's form and clicks its button.
    async fn sign_in_by_typing(&self, username: &str, password: &str) {
        self.type_into("form.password-source input[name=username]", username)
            .await;
        self.type_into("form.password-source input[name=password]", password)
            .await;
        self.click("form.password-source button[type=submit]").await;
    }

    /// `fetch` from the page's origin, as another tab of the app would: status and JSON body (`null` for none).
    async fn fetch(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let got = self
            .b()
            .execute_async(
                "const [method, path, body, done] = arguments;
                 fetch(path, { method, body, credentials: 'same-origin',
                               headers: { 'Content-Type': 'application/json', 'X-Vestibule-Request': '1' } })
                   .then(async r => done([r.status, await r.text()]), e => done([0, String(e)]));",
                vec![json!(method), json!(path), json!(body)],
            )
            .await
            .unwrap();
        let status = got[0].as_u64().unwrap() as u16;
        let text = got[1].as_str().unwrap();
        assert_ne!(status, 0, "fetch {path} failed: {text}");
        (status, serde_json::from_str(text).unwrap_or(Value::Null))
    }

    /// Who `/auth/api/me` says is signed in, from the app's page (opened unless the browser is on it: the
    /// broker's own pages allow no `fetch`): its status and body.
    async fn me(&self) -> (u16, Value) {
        let page = format!("{}/", self.base);
        if self.b().current_url().await.unwrap().as_str() != page {
            self.b().goto(&page).await.unwrap();
        }
        self.fetch("GET", "/auth/api/me", None).await
    }

    /// How many sessions the demo account has, by the broker's own count (not only in this browser).
    async fn demo_sessions(&self) -> usize {
        let AccountLookup::Found { id, .. } = self.broker.find_accounts(DEMO_USER).await.unwrap() else {
            panic!("no demo account");
        };
        self.broker.account_details(&id).await.unwrap().unwrap().sessions.len()
    }

    /// Nobody is signed in: not in this browser (`/auth/api/me` from the app's page is 401), and the broker holds
    /// no session of the demo account at all (a sign-in whose cookie the browser dropped would count here).
    async fn assert_nobody_signed_in(&self) {
        assert_eq!(self.me().await.0, 401);
        assert_eq!(self.demo_sessions().await, 0);
    }

    /// The attacker's request body sent from the app's own page signs in: the credentials were right, so what
    /// kept the visitor signed out before was where the request came from.
    async fn assert_the_attack_body_signs_in_from_the_app(&self) {
        let (status, answer) = self.fetch("POST", "/auth/api/login", Some(&attack_body())).await;
        assert_eq!((status, &answer["status"]), (200, &json!("signed_in")), "{answer}");
        let (status, me) = self.me().await;
        assert_eq!((status, &me["display_name"]), (200, &json!(DEMO_NAME)));
    }

    /// The requests that reached `path` so far, as `METHOD from ORIGIN`.
    fn seen_at(&self, path: &str) -> Vec<String> {
        let prefix = format!("{path} ");
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| line.split_once(' '))
            .filter(|(_, rest)| rest.starts_with(&prefix))
            .map(|(method, rest)| format!("{method} {}", &rest[prefix.len()..]))
            .collect()
    }

    async fn finish(self) {
        self.chrome.finish().await;
    }
}

/// Records every request that reaches the app (see [`Seen`]).
async fn record(State(seen): State<Seen>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(ORIGIN)
        .and_then(|o| o.to_str().ok())
        .unwrap_or("none");
    let line = format!("{} {} from {origin}", req.method(), req.uri().path());
    seen.lock().unwrap().push(line);
    next.run(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_signs_in_by_typing_shows_the_account_and_app_data_and_signs_out() {
    let env = Env::start().await;
    env.open().await;
    // The form is drawn from /auth/api/sources: headed with the local source's display name.
    assert_eq!(env.text_of("form.password-source h3").await, "Example app account");
    // The page came with its own CSP, which allows no inline script, and has none: the script that drew the form
    // is the file.
    let page = env
        .b()
        .execute_async(
            "const done = arguments[0];
             fetch('/').then(r => done([r.headers.get('content-security-policy'),
                                        document.querySelectorAll('script:not([src])').length]));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(page, json!([example_spa::CSP, 0]));
    env.assert_accessible("signed out").await;

    // A wrong password: the API's generic words, still the form, and nobody signed in. An unknown name reads the
    // same.
    env.sign_in_by_typing(DEMO_USER, "not the password").await;
    assert_eq!(env.text_of("#error").await, GENERIC_FAILURE);
    env.sign_in_by_typing("nobody", DEMO_PASSWORD).await;
    assert_eq!(env.text_of("#error").await, GENERIC_FAILURE);
    env.visible("#sign-in").await;
    assert_eq!(env.me().await.0, 401);
    env.assert_accessible("a failed sign-in's message").await;

    // The right ones: the account, the app's own data and this session, on the same page.
    env.sign_in_by_typing(DEMO_USER, DEMO_PASSWORD).await;
    assert_eq!(env.text_of("#account-name").await, DEMO_NAME);
    assert_eq!(env.text_of("#hello").await, HELLO);
    assert_eq!(env.b().current_url().await.unwrap().as_str(), format!("{}/", env.base));
    let hidden = env
        .b()
        .execute("return document.getElementById('error').hidden;", vec![])
        .await;
    assert_eq!(hidden.unwrap(), true, "the earlier error is cleared");
    let this = env.text_of("#sessions li.current").await;
    assert!(
        this.starts_with("This session: ") && this.contains("HeadlessChrome"),
        "{this}"
    );
    assert_eq!(env.b().find_all(Locator::Css("#sessions li")).await.unwrap().len(), 1);
    assert!(env
        .b()
        .find_all(Locator::Css("#sessions button"))
        .await
        .unwrap()
        .is_empty());
    let (status, me) = env.me().await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["display_name"], DEMO_NAME);
    assert_eq!(me["amr"], json!(["pwd"]));
    assert_eq!(env.demo_sessions().await, 1);
    env.assert_accessible("signed in").await;

    // Opened again, the page finds the session and shows the app straight away.
    env.b().goto(&format!("{}/", env.base)).await.unwrap();
    assert_eq!(env.text_of("#account-name").await, DEMO_NAME);

    // Sign out: the form again, and the session is gone, at the broker too.
    env.click("#sign-out").await;
    env.visible("#sign-in form.password-source input[name=username]").await;
    let left = env
        .b()
        .execute("return document.getElementById('signed-in').innerText;", vec![]);
    assert!(!left.await.unwrap().as_str().unwrap().contains(DEMO_NAME));
    env.assert_nobody_signed_in().await;
    // And the app's own data is for signed-in people only.
    let (status, hello) = env.fetch("GET", "/api/hello", None).await;
    assert_eq!((status, &hello["error"]), (401, &json!("unauthenticated")), "{hello}");
    env.finish().await;
}

/// The client secret the Node provider and the `sso` source share.
const OP_SECRET: &str = "spa-example-provider-secret-5c1e";

/// A redirect source on the page: its button hands the browser to a real OpenID provider (the workspace's Node
/// `oidc-provider`), where the person signs in by typing into the provider's own login form, and the provider
/// sends the browser back through the broker's callback to the page, which finds the session and shows the
/// account the provider vouched for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_button_signs_in_at_the_provider_and_comes_back_to_the_page() {
    let listening = vestibule_tests::oidc::NodeProvider::listen(vestibule_tests::oidc::NodeOptions {
        client_id: "spa",
        client_secret: OP_SECRET,
        redirect_uri: "",
        claims_in: "id_token",
        port: 0,
    });
    let var = format!("EXAMPLE_SPA_OP_SECRET_{}", std::process::id());
    std::env::set_var(&var, OP_SECRET);
    let config: OidcConfig = toml::from_str(&format!(
        "id = \"sso\"\ndisplay_name = \"Company SSO\"\nissuer = \"{}\"\nclient_id = \"spa\"\nclient_secret_env = \"{var}\"\n",
        listening.issuer
    ))
    .unwrap();
    let issuer = listening.issuer.clone();
    let sso: Arc<dyn AuthSource> = Arc::new(OidcSource::new(config).unwrap());
    let env = Env::start_full(|app| app, vec![sso]).await;
    let _provider = listening.serve(&format!("{}/auth/callback/sso", env.base));

    env.open().await;
    let button = "#redirect-sources button";
    assert_eq!(env.text_of(button).await, "Sign in with Company SSO");
    env.assert_accessible("signed out, with a provider's button").await;
    env.click(button).await;
    // The provider's login form, on the provider's origin.
    env.type_into("input[name=login]", "alice").await;
    env.type_into("input[name=password]", "anything").await;
    let at = env.b().current_url().await.unwrap();
    assert!(at.as_str().starts_with(&issuer), "not at the provider: {at}");
    env.click("button[type=submit]").await;
    // Its consent page, then back through /auth/callback/sso to the page.
    env.click("button[type=submit]").await;
    assert_eq!(env.text_of("#account-name").await, "Alice Liddell");
    assert_eq!(env.b().current_url().await.unwrap().as_str(), format!("{}/", env.base));
    let (status, me) = env.me().await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["identities"][0]["source"], "sso", "{me}");
    assert_eq!(me["amr"], json!(["fed"]), "{me}");
    // Its app data is for the provider's person too.
    let (status, hello) = env.fetch("GET", "/api/hello", None).await;
    assert_eq!(status, 200, "{hello}");
    assert!(env.seen_at("/auth/callback/sso").iter().any(|s| s.starts_with("GET ")));
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_session_is_listed_and_ended_from_the_page() {
    let env = Env::start().await;
    env.open().await;
    env.sign_in_by_typing(DEMO_USER, DEMO_PASSWORD).await;
    assert_eq!(env.text_of("#account-name").await, DEMO_NAME);

    // Another device signs in (the broker's own login form), then the page is opened again.
    let mut phone = Browser::new(&format!("{}/auth", env.base));
    phone.user_agent = "Another phone".into();
    assert_eq!(phone.sign_in("local", DEMO_USER, DEMO_PASSWORD, "/").await.status, 303);
    assert_eq!(phone.get_json("/api/me").await.status, 200);
    env.b().goto(&format!("{}/", env.base)).await.unwrap();
    let other = env.text_of("#sessions li.other").await;
    assert!(
        other.starts_with("Another session: Another phone, from 127.0.0.1"),
        "{other}"
    );
    assert!(env.text_of("#sessions li.current").await.contains("HeadlessChrome"));

    env.click("#sessions li.other button").await;
    env.until("return document.querySelectorAll('#sessions li').length === 1;")
        .await;
    assert_eq!(
        env.b()
            .find_all(Locator::Css("#sessions li.other"))
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        phone.get_json("/api/me").await.status,
        401,
        "the other device is signed out"
    );
    assert_eq!(env.me().await.0, 200, "this one is not");
    assert_eq!(env.demo_sessions().await, 1);
    env.finish().await;
}

/// A six-digit code that is none of the key's codes near now (the server accepts one step either side).
fn wrong_code(key: &str) -> String {
    let now = totp::now_secs();
    let near: Vec<String> = (-2..=2).map(|step| totp::code(key, now + step * 30)).collect();
    (0..10)
        .map(|d| d.to_string().repeat(6))
        .find(|c| !near.contains(c))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_asks_for_the_second_factor_and_signs_in_with_a_typed_code() {
    let env = Env::start().await;
    // The demo account sets up an authenticator app on the broker's account page (another browser).
    let mut setup = Browser::new(&format!("{}/auth", env.base));
    assert_eq!(setup.sign_in("local", DEMO_USER, DEMO_PASSWORD, "/").await.status, 303);
    let (key, recovery) = setup.enrol_totp().await;
    assert_eq!(recovery.len(), 10);

    env.open().await;
    env.sign_in_by_typing(DEMO_USER, DEMO_PASSWORD).await;
    // The password alone: the page asks for a code, and nobody is signed in yet.
    env.visible("#second-factor #code").await;
    assert_eq!(env.me().await.0, 401);

    env.type_into("#code", &wrong_code(&key)).await;
    env.click("#code-form button[type=submit]").await;
    assert_eq!(env.text_of("#error").await, WRONG_CODE);
    env.visible("#second-factor #code").await;
    env.assert_accessible("the second step, after a wrong code").await;

    // The enrolment spent the code of its time step; the next step's is accepted.
    env.type_into("#code", &totp::code(&key, totp::now_secs() + 30)).await;
    env.click("#code-form button[type=submit]").await;
    assert_eq!(env.text_of("#account-name").await, DEMO_NAME);
    assert_eq!(env.text_of("#hello").await, HELLO);
    let (status, me) = env.me().await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["amr"], json!(["pwd", "otp"]));
    assert_eq!(me["assurance"], "multi");
    env.finish().await;
}

/// The demo account's credentials, as the body of a sign-in request; the attacker knows them (it is their own
/// account, in a login CSRF).
fn attack_body() -> String {
    json!({ "source": "local", "username": DEMO_USER, "password": DEMO_PASSWORD }).to_string()
}

/// The attacker's site, served on `127.0.0.1:0` and opened as `http://localhost:PORT` (another site than
/// `127.0.0.1`): `/form` auto-submits a `text/plain` form whose body is the JSON of [`attack_body`] to the app's
/// `/auth/api/login`; `/fetch` sends the same body with `fetch`, credentials and the custom header, and writes
/// what came back into `#outcome`. Returns the site's URL.
async fn attacker_site(target: &str) -> String {
    let body = attack_body();
    // `name=value` of a text/plain form, with the `=` swallowed into a last string member: `{...,"pad":"="}`.
    let name = format!("{},\"pad\":\"", &body[..body.len() - 1]);
    let form = format!(
        "<!doctype html><title>attacker</title>\
         <form method=post enctype=text/plain action='{target}/auth/api/login'>\
         <input type=hidden name='{name}' value='\"}}'></form>\
         <script>document.forms[0].submit()</script>"
    );
    let fetch = format!(
        "<!doctype html><title>attacker</title><pre id=outcome></pre><script>
         fetch('{target}/auth/api/login', {{ method: 'POST', credentials: 'include',
           headers: {{ 'Content-Type': 'application/json', 'X-Vestibule-Request': '1' }}, body: '{body}' }})
           .then(async r => ({{ status: r.status, body: await r.text() }}), e => ({{ blocked: String(e) }}))
           .then(o => {{ document.getElementById('outcome').textContent = JSON.stringify(o); }});
         </script>"
    );
    let site = Router::new()
        .route("/form", axum::routing::get(move || async move { Html(form) }))
        .route("/fetch", axum::routing::get(move || async move { Html(fetch) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, site).await.unwrap() });
    format!("http://localhost:{port}")
}

impl Env {
    /// Opens the attacker's `/fetch` and returns what its `fetch` got.
    async fn attacker_fetch(&self, site: &str) -> Value {
        self.b().goto(&format!("{site}/fetch")).await.unwrap();
        let outcome = self
            .until("return document.getElementById('outcome').textContent;")
            .await;
        serde_json::from_str(outcome.as_str().unwrap()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_another_site_cannot_sign_the_visitor_in_by_form_or_fetch() {
    let env = Env::start().await;
    let site = attacker_site(&env.base).await;

    // (a) The form: the browser posts it and shows the answer, the API's refusal of a request from elsewhere.
    env.b().goto(&format!("{site}/form")).await.unwrap();
    let shown = env.text_of("pre").await;
    let at = env.b().current_url().await.unwrap();
    assert_eq!(at.as_str(), format!("{}/auth/api/login", env.base));
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["error"], "cross_origin", "{shown}");
    assert_eq!(env.seen_at("/auth/api/login"), [format!("POST from {site}")]);
    env.assert_nobody_signed_in().await;

    // (b) The fetch: the browser's preflight finds no CORS grant, so the POST is never sent.
    let outcome = env.attacker_fetch(&site).await;
    assert!(
        outcome["blocked"]
            .as_str()
            .is_some_and(|e| e.contains("Failed to fetch")),
        "{outcome}"
    );
    assert_eq!(
        env.seen_at("/auth/api/login"),
        [format!("POST from {site}"), format!("OPTIONS from {site}")]
    );
    env.assert_nobody_signed_in().await;

    env.assert_the_attack_body_signs_in_from_the_app().await;
    env.finish().await;
}

/// A CORS layer that lets every origin in, with credentials: the mistake an app could make around the broker. It
/// answers every preflight itself and echoes the request's origin on every answer.
async fn permissive_cors(req: Request, next: Next) -> Response {
    let origin = req.headers().get(ORIGIN).cloned();
    let preflight = req.method() == Method::OPTIONS && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    let mut res = if preflight {
        let mut res = StatusCode::NO_CONTENT.into_response();
        for (asked, granted) in [
            (ACCESS_CONTROL_REQUEST_METHOD, ACCESS_CONTROL_ALLOW_METHODS),
            (ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_ALLOW_HEADERS),
        ] {
            if let Some(v) = req.headers().get(asked).cloned() {
                res.headers_mut().insert(granted, v);
            }
        }
        res
    } else {
        next.run(req).await
    };
    if let Some(origin) = origin {
        let h = res.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        h.insert(VARY, HeaderValue::from_static("Origin"));
    }
    res
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_permissive_cors_layer_the_origin_check_alone_refuses_the_cross_site_fetch() {
    let env = Env::start_wrapped(|app| app.layer(from_fn(permissive_cors))).await;
    let site = attacker_site(&env.base).await;

    // The preflight is granted, so the POST reaches the API with the custom header; the attacker's page reads the
    // answer, and it is the API's refusal.
    let outcome = env.attacker_fetch(&site).await;
    assert_eq!(outcome["status"], 403, "{outcome}");
    let body: Value = serde_json::from_str(outcome["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "cross_origin", "{body}");
    assert_eq!(
        env.seen_at("/auth/api/login"),
        [format!("OPTIONS from {site}"), format!("POST from {site}")]
    );
    env.assert_nobody_signed_in().await;

    env.assert_the_attack_body_signs_in_from_the_app().await;
    env.finish().await;
}
