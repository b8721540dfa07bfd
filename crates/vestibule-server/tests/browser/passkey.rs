//! Passkeys in the real browser: Chromium's virtual authenticator (WebDriver's WebAuthn extension commands)
//! stands in for a device. Everything is done by clicking the pages' own buttons, so what runs is the page
//! script Vestibule serves, under its CSP (a script injected over WebDriver would bypass the CSP and prove
//! nothing about it).
//!
//! The server's public URL is `http://localhost:PORT`: WebAuthn refuses IP addresses as relying party ids, and
//! `localhost` is a secure context over plain http. The browser therefore talks to `localhost`, not `127.0.0.1`.

use std::path::Path;

use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use vestibule_tests::chrome::{Chrome, Ext, WAIT};
use vestibule_tests::server::{Server, TempDir};

use super::{BIN, PASSWORD};

/// A vestibule at `http://localhost:PORT` with alice, and a browser with a virtual platform authenticator that
/// keeps discoverable credentials and verifies its user.
struct PasskeyEnv {
    server: Server,
    chrome: Chrome,
    base: String,
    authenticator: String,
    _dir: TempDir,
}

impl PasskeyEnv {
    async fn start() -> PasskeyEnv {
        let dir = TempDir::new("vestibule-passkeys");
        // The public URL names the port, so the port is chosen first (see `Server::start_at`).
        let server = Server::start_at(Path::new(BIN), &dir.0, |port| {
            format!(
                "[server]\npublic_url = \"http://localhost:{port}\"\n[database]\nurl = \"sqlite://{{dir}}/v.db\"\n\
                 [second_factor]\npasskeys = \"on\"\n"
            )
        });
        server.add_user("alice", "alice@example.org", PASSWORD);
        let chrome = Chrome::start().await;
        let authenticator = chrome
            .client()
            .issue_cmd(Ext {
                method: http::Method::POST,
                path: "webauthn/authenticator".into(),
                body: Some(json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserConsenting": true,
                    "isUserVerified": true,
                })),
            })
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        PasskeyEnv {
            base: server.base.replace("127.0.0.1", "localhost"),
            server,
            chrome,
            authenticator,
            _dir: dir,
        }
    }

    fn b(&self) -> &Client {
        self.chrome.client()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn authenticator_cmd(&self, method: http::Method, what: &str, body: Option<Value>) -> Value {
        self.b()
            .issue_cmd(Ext {
                method,
                path: format!("webauthn/authenticator/{}/{what}", self.authenticator),
                body,
            })
            .await
            .unwrap()
    }

    async fn wait_for_path(&self, path: &str) {
        let want = url::Url::parse(&self.url(path)).unwrap();
        if let Err(e) = self.b().wait().at_most(WAIT).for_url(&want).await {
            let at = self.b().current_url().await.map(|u| u.to_string()).unwrap_or_default();
            let body = self.b().source().await.unwrap_or_default();
            panic!("browser never reached {want} (at {at}): {e}\n{body}");
        }
    }

    async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.b()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    async fn click(&self, label: &str) {
        let xpath = format!("//button[normalize-space()='{label}']");
        self.b()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button {label}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn me(&self) -> Value {
        self.b().goto(&self.url("/me")).await.unwrap();
        let text = self.element("pre").await.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// Password sign-in by typing and clicking, asking to land on /me.
    async fn password(&self) {
        self.b().goto(&self.url("/login?next=/me")).await.unwrap();
        self.element("input[name=username]")
            .await
            .send_keys("alice")
            .await
            .unwrap();
        self.element("input[name=password]")
            .await
            .send_keys(PASSWORD)
            .await
            .unwrap();
        self.click("Sign in").await;
    }

    async fn sign_out(&self) {
        self.b().goto(&self.url("/account")).await.unwrap();
        self.element("form[action$='/logout'] button")
            .await
            .click()
            .await
            .unwrap();
        self.wait_for_path("/login").await;
    }

    async fn finish(mut self) {
        self.chrome.finish().await;
        self.server.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_a_passkey_then_sign_in_with_it_as_second_step_and_alone() {
    let env = PasskeyEnv::start().await;
    let b = env.b();

    // Signed in with the password, alice adds a passkey from her account page.
    env.password().await;
    env.wait_for_path("/me").await;
    b.goto(&env.url("/account")).await.unwrap();
    env.click("Add a passkey").await;
    env.wait_for_path("/account/passkeys").await;
    let name = env.element("input[name=name]").await;
    name.clear().await.unwrap();
    name.send_keys("Chromium").await.unwrap();
    env.click("Create passkey").await;
    // Its first second factor: the recovery codes, once.
    env.wait_for_path("/account/passkeys/finish").await;
    let codes = b.find_all(Locator::Css("ul.codes code.token")).await.unwrap();
    assert_eq!(codes.len(), 10);
    let creds = env.authenticator_cmd(http::Method::GET, "credentials", None).await;
    let creds = creds.as_array().unwrap();
    assert_eq!(creds.len(), 1, "{creds:?}");
    assert_eq!(
        creds[0]["isResidentCredential"], true,
        "a discoverable credential: {creds:?}"
    );
    assert_eq!(creds[0]["rpId"], "localhost", "{creds:?}");
    b.goto(&env.url("/account")).await.unwrap();
    let listed = env.element("ul.passkeys").await.text().await.unwrap();
    assert!(listed.contains("Chromium"), "{listed}");
    let me = env.me().await;
    assert_eq!(me["amr"], json!(["pwd", "hwk"]), "{me}");
    env.sign_out().await;

    // Password, then the passkey as the second step.
    env.password().await;
    env.wait_for_path("/login/second-factor").await;
    // The half-signed-in state grants nothing.
    assert_eq!(env.me().await["error"], "unauthenticated");
    b.goto(&env.url("/account")).await.unwrap();
    env.wait_for_path("/login?next=/account").await;
    b.goto(&env.url("/login/second-factor")).await.unwrap();
    env.click("Use a passkey").await;
    env.wait_for_path("/me").await;
    let me = env.me().await;
    assert_eq!(me["display_name"], "alice", "{me}");
    assert_eq!(me["amr"], json!(["pwd", "hwk"]), "{me}");
    assert_eq!(me["assurance"], "multi", "{me}");
    env.sign_out().await;

    // Passwordless: one click on the login page.
    b.goto(&env.url("/login?next=/me")).await.unwrap();
    env.click("Sign in with a passkey").await;
    env.wait_for_path("/me").await;
    let me = env.me().await;
    assert_eq!(me["display_name"], "alice", "{me}");
    assert_eq!(me["amr"], json!(["hwk", "user"]), "{me}");
    assert_eq!(me["assurance"], "multi", "{me}");
    let creds = env.authenticator_cmd(http::Method::GET, "credentials", None).await;
    // Chromium counts the registration as one signature, then each assertion.
    assert_eq!(
        creds[0]["signCount"], 3,
        "two assertions after the registration: {creds}"
    );
    env.sign_out().await;

    // An authenticator that does not verify its user does not sign in alone.
    env.authenticator_cmd(http::Method::POST, "uv", Some(json!({ "isUserVerified": false })))
        .await;
    b.goto(&env.url("/login?next=/me")).await.unwrap();
    env.click("Sign in with a passkey").await;
    env.wait_for_path("/login/passkey").await;
    // The browser itself refuses: the server asked for user verification.
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(
            "//p[contains(@class,'passkey-status') and contains(., 'NotAllowedError')]",
        ))
        .await
        .unwrap();
    // Someone in control of their own browser (holding a stolen authenticator without its PIN) edits the
    // options to ask for no verification: the authenticator then signs, and the server refuses the answer.
    b.execute(
        "const el = document.getElementById('passkey-options');
         const o = JSON.parse(el.textContent);
         o.publicKey.userVerification = 'discouraged';
         el.textContent = JSON.stringify(o);",
        vec![],
    )
    .await
    .unwrap();
    env.click("Use a passkey").await;
    env.wait_for_path("/login/passkey/finish").await;
    let alert = env.element("p[role=alert]").await.text().await.unwrap();
    assert!(alert.contains("not accepted"), "{alert}");
    assert_eq!(env.me().await["error"], "unauthenticated");
    // That answer was signed: the authenticator's counter moved, the server still said no.
    let creds = env.authenticator_cmd(http::Method::GET, "credentials", None).await;
    assert_eq!(creds[0]["signCount"], 4, "{creds}");

    // Verifying again, alice signs in alone and removes the passkey from her account page (a fresh sign-in with a
    // second factor: this one); her recovery codes go with her last factor.
    env.authenticator_cmd(http::Method::POST, "uv", Some(json!({ "isUserVerified": true })))
        .await;
    b.goto(&env.url("/login?next=/account")).await.unwrap();
    env.click("Sign in with a passkey").await;
    env.wait_for_path("/account").await;
    env.element("ul.passkeys form button").await.click().await.unwrap();
    env.wait_for_path("/account?done=passkey_removed").await;
    let notice = env.element("p[role=status]").await.text().await.unwrap();
    assert!(notice.contains("passkey was removed"), "{notice}");
    assert!(b.find_all(Locator::Css("ul.passkeys li")).await.unwrap().is_empty());
    let page = b.source().await.unwrap();
    assert!(!page.contains("recovery codes left"), "no factor, no codes");

    env.finish().await;
}
