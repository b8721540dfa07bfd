//! End-to-end: the real `vestibule` binary with LDAP, OpenID Connect and GitHub sources configured from TOML,
//! driven through the login page like a browser, against real servers started by this test binary: a throwaway
//! OpenLDAP slapd, the Node `oidc-provider` (`tests/oidc-provider/server.mjs`) and GitHub-shaped endpoints served
//! in process, all launched by the `vestibule-tests` crate (`vestibule_tests::{ldap, oidc, github}`), as the
//! provider crates' own tests do. Nothing is skipped: without slapd or node the tests fail and name the script that installs them
//! (`scripts/test`).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use vestibule_tests::browser::{urlencode, Browser, Page};
use vestibule_tests::ldap::{Options, Slapd, ADMIN_DN, ADMIN_PASSWORD, PEOPLE, SVC_DN, SVC_PASSWORD};
use vestibule_tests::net::RefusingPort;
use vestibule_tests::oidc as node;
use vestibule_tests::server::{series, Server, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_vestibule");
/// The local account every server has, to show the other sources keep working.
const LOCAL_USER: &str = "carol";
const LOCAL_PASSWORD: &str = "correct horse battery";
/// What every failed password sign-in says, whatever the source and the cause.
const GENERIC_FAILURE: &str = "Sign-in failed. Check your username and password and try again.";
const UNAVAILABLE: &str = "Sign-in provider unavailable";
/// Outer guard on anything that talks to a stopped or missing server: a hang fails the test instead of blocking it.
const GUARD_SECS: u64 = 20;

async fn guarded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(GUARD_SECS), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {GUARD_SECS} s (a hang, not a timeout page)"))
}

/// Fails early, naming the setup script, when a real server's software is missing.
fn require(tool: &str, path_hint: &[&str]) {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
        .unwrap_or(false);
    assert!(
        on_path || path_hint.iter().any(|p| Path::new(p).exists()),
        "`{tool}` is not installed; these end-to-end tests need the real server. Run `scripts/test` (it installs \
         slapd, ldap-utils, node and the test OpenID provider), or `sudo tests/ldap/install.sh` and \
         `tests/oidc-provider/install.sh`, then run the tests again"
    );
}

fn require_slapd() {
    require(
        "slapd",
        &["/usr/sbin/slapd", "/usr/local/sbin/slapd", "/usr/local/libexec/slapd"],
    );
    require("ldapsearch", &[]);
}

fn require_node() {
    require("node", &[]);
    assert!(
        node::provider_dir()
            .join("node_modules/oidc-provider/package.json")
            .is_file(),
        "the test OpenID provider is not installed; run `scripts/test` (or tests/oidc-provider/install.sh) and run \
         the tests again"
    );
}

/// A running `vestibule serve` with a local source (holding `carol`) first and then `sources` (TOML), plus its
/// folder.
struct Env {
    server: Server,
    _dir: TempDir,
}

impl Env {
    /// `sources` may use `{dir}` for the server's folder; `files` are written there first (secrets).
    fn start(sources: &str, files: &[(&str, &str)]) -> Env {
        Env::start_with("", sources, files)
    }

    /// [`Env::start`] with `head` (TOML tables such as `[metrics]`) before the sources.
    fn start_with(head: &str, sources: &str, files: &[(&str, &str)]) -> Env {
        let dir = TempDir::new("vestibule-providers");
        for (name, content) in files {
            std::fs::write(dir.0.join(name), content).unwrap();
        }
        let config = format!(
            "[database]\nurl = \"sqlite://{{dir}}/v.db\"\n{head}\n[[sources]]\nkind = \"local\"\nid = \"local\"\n\n{sources}"
        );
        let server = Server::start(Path::new(BIN), &dir.0, &config);
        server.add_user(LOCAL_USER, "carol@example.org", LOCAL_PASSWORD);
        Env { server, _dir: dir }
    }

    fn browser(&self) -> Browser {
        Browser::new(&self.server.base)
    }

    fn callback(&self, source: &str) -> String {
        format!("{}/callback/{source}", self.server.base)
    }
}

fn sets_session(page: &Page) -> bool {
    page.set_cookies()
        .iter()
        .any(|c| c.starts_with("vestibule-session=") && !c.starts_with("vestibule-session=;"))
}

/// Signs in with a password and checks the outcome a person sees: 303 to `next` with a session cookie.
async fn sign_in_ok(b: &mut Browser, source: &str, user: &str, password: &str) {
    let res = guarded("sign-in", b.sign_in(source, user, password, "/me")).await;
    assert_eq!(res.status, 303, "{user} at {source}: {}", res.body);
    assert_eq!(res.location(), Some("/me"));
    assert!(sets_session(&res), "no session cookie: {:?}", res.set_cookies());
}

/// `/me` of a signed-in browser.
async fn me(b: &mut Browser) -> serde_json::Value {
    let me = b.get_json("/me").await;
    assert_eq!(me.status, 200, "{}", me.body);
    me.json()
}

/// A refused password sign-in: 401, the generic words, no session.
async fn assert_generic_failure(b: &mut Browser, source: &str, user: &str, password: &str, what: &str) {
    let res = guarded(what, b.sign_in(source, user, password, "/me")).await;
    assert_eq!(res.status, 401, "{what}: {}", res.body);
    assert!(res.body.contains(GENERIC_FAILURE), "{what}: {}", res.body);
    assert!(
        !sets_session(&res),
        "{what}: session cookie set: {:?}",
        res.set_cookies()
    );
    assert!(!b.cookies.contains_key("vestibule-session"), "{what}");
    assert_eq!(b.get_json("/me").await.status, 401, "{what}: /me without a session");
}

// ------------------------------------------------------------------------------------------------------------
// LDAP

fn ldap_source(s: &Slapd, extra: &str) -> String {
    format!(
        "[[sources]]\nkind = \"ldap\"\nid = \"corp\"\ndisplay_name = \"Directory\"\nurl = \"{url}\"\n\
         bind_dn = \"{SVC_DN}\"\nbind_password_file = \"{{dir}}/ldap-secret\"\nuser_base = \"{PEOPLE}\"\n\
         user_filter = \"(uid={{username}})\"\nconnect_timeout_secs = 1\ntimeout_secs = 2\n{extra}\n",
        url = s.ldap_url()
    )
}

fn ldap_env(s: &Slapd, extra: &str) -> Env {
    ldap_env_with(s, "", extra)
}

/// [`ldap_env`] with `head` before the sources ([`Env::start_with`]).
fn ldap_env_with(s: &Slapd, head: &str, extra: &str) -> Env {
    Env::start_with(
        head,
        &ldap_source(s, extra),
        &[("ldap-secret", &format!("{SVC_PASSWORD}\n"))],
    )
}

/// The entry's `entryUUID`, read as the rootdn with ldapsearch (not through vestibule).
fn entry_uuid(s: &Slapd, dn: &str) -> String {
    let out = Command::new("ldapsearch")
        .args(["-x", "-LLL", "-H", &s.ldap_url(), "-D", ADMIN_DN, "-w", ADMIN_PASSWORD])
        .args(["-b", dn, "-s", "base", "entryUUID"])
        .output()
        .expect("run ldapsearch (install with scripts/test)");
    assert!(
        out.status.success(),
        "ldapsearch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let uuid = text
        .lines()
        .find_map(|l| l.strip_prefix("entryUUID: "))
        .unwrap_or_else(|| panic!("no entryUUID for {dn}: {text}"));
    uuid.trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_sign_in_creates_then_reuses_the_account_even_after_a_rename() {
    require_slapd();
    let s = Slapd::shared();
    let env = ldap_env(s, "");

    // The login page offers the directory as a choice of its one password form (beside the local source).
    let mut b = env.browser();
    let login = b.get("/login").await;
    assert!(
        login.body.contains("name=\"source\" value=\"corp\"") && login.body.contains("Directory"),
        "{}",
        login.body
    );

    // First sign-in: a new account linked to (corp, entryUUID); groups as short names.
    let alice_uuid = entry_uuid(s, &format!("uid=alice,{PEOPLE}"));
    sign_in_ok(&mut b, "corp", "alice", "alice-password").await;
    let first = me(&mut b).await;
    assert_eq!(
        first["identities"],
        json!([{"source": "corp", "subject": alice_uuid}]),
        "{first}"
    );
    assert_eq!(first["groups"], json!(["admins", "staff"]), "{first}");
    assert_eq!(first["display_name"], "Alice Liddell", "{first}");
    let alice_id = first["id"].as_str().unwrap().to_owned();

    // Second sign-in, another browser: the same account, not a second one.
    let mut again = env.browser();
    sign_in_ok(&mut again, "corp", "alice", "alice-password").await;
    let second = me(&mut again).await;
    assert_eq!(second["id"], alice_id.as_str(), "{second}");
    assert_eq!(second["identities"], first["identities"]);

    // Another person gets another account.
    let mut d = env.browser();
    sign_in_ok(&mut d, "corp", "dora", "dora-password").await;
    let dora = me(&mut d).await;
    let dora_uuid = entry_uuid(s, &format!("uid=dora,{PEOPLE}"));
    assert_ne!(dora["id"], alice_id.as_str());
    assert_eq!(dora["identities"], json!([{"source": "corp", "subject": dora_uuid}]));
    assert_eq!(dora["groups"], json!(["staff"]));

    // Renamed in the directory: she signs in with the new uid and lands in the same account.
    s.modify(&format!(
        "dn: uid=dora,{PEOPLE}\nchangetype: modrdn\nnewrdn: uid=dora.renamed\ndeleteoldrdn: 1\n"
    ));
    let mut renamed = env.browser();
    sign_in_ok(&mut renamed, "corp", "dora.renamed", "dora-password").await;
    let after = me(&mut renamed).await;
    assert_eq!(after["id"], dora["id"], "a rename keeps the account: {after}");
    assert_eq!(after["identities"], json!([{"source": "corp", "subject": dora_uuid}]));
    assert_eq!(after["groups"], json!(["staff"]), "refint kept the membership");
    assert_generic_failure(&mut env.browser(), "corp", "dora", "dora-password", "the old uid").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_failures_look_like_local_failures_and_set_no_session() {
    require_slapd();
    // A directory that itself accepts a DN with an empty password as an anonymous bind (RFC 4513 5.1.2): only
    // the broker stands between an empty password and a session.
    let s = Slapd::start(Options {
        tls: false,
        allow_bind_anon_dn: true,
    });
    let user_dn = format!("uid=alice,{PEOPLE}");
    let anon = Command::new("ldapwhoami")
        .args(["-x", "-H", &s.ldap_url(), "-D", &user_dn, "-w", ""])
        .output()
        .expect("run ldapwhoami");
    assert!(
        anon.status.success(),
        "this slapd should accept the empty-password bind: {}",
        String::from_utf8_lossy(&anon.stderr)
    );
    let env = ldap_env(&s, "");

    // The right password works on this server, so the refusals below are the broker's.
    sign_in_ok(&mut env.browser(), "corp", "alice", "alice-password").await;

    // The local source's words for a wrong password are the reference.
    assert_generic_failure(
        &mut env.browser(),
        "local",
        LOCAL_USER,
        "wrong password!",
        "local wrong password",
    )
    .await;
    for (user, password, what) in [
        ("alice", "not-her-password", "wrong password"),
        ("nobody", "whatever-password", "unknown user"),
        ("alice", "", "empty password"),
        ("alice", "\0alice-password", "password starting with NUL"),
        ("*", "alice-password", "wildcard user"),
    ] {
        assert_generic_failure(&mut env.browser(), "corp", user, password, what).await;
    }
    // A signed-in browser that fails another sign-in keeps its session (and gets no new one).
    let mut b = env.browser();
    sign_in_ok(&mut b, "local", LOCAL_USER, LOCAL_PASSWORD).await;
    let res = b.sign_in("corp", "alice", "", "/me").await;
    assert_eq!(res.status, 401);
    assert!(!sets_session(&res));
    assert_eq!(me(&mut b).await["identities"][0]["source"], "local");
}

/// Throttling with the real binary in front of a real directory: after the free failures, an attempt is answered
/// 429 with `Retry-After` before anything reaches the directory — slapd completes no bind for it, so the
/// directory's own lockout counter could not move — even with the right password, and the same for an unknown name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_ldap_attempts_never_reach_the_directory() {
    require_slapd();
    let s = Slapd::start(Options {
        tls: false,
        allow_bind_anon_dn: false,
    });
    let env = ldap_env(&s, "");
    for (user, right) in [("alice", "alice-password"), ("nobody", "whatever-password")] {
        for i in 0..6 {
            let what = format!("{user}: failure {i}");
            assert_generic_failure(&mut env.browser(), "corp", user, "not-the-password", &what).await;
        }
        let binds = s.binds();
        let mut b = env.browser();
        let res = guarded("throttled sign-in", b.sign_in("corp", user, right, "/me")).await;
        assert_eq!(res.status, 429, "{user}: {}", res.body);
        let wait: u32 = res
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{user}: Retry-After in seconds"));
        assert!(wait >= 1, "{wait}");
        assert!(res.body.contains("Too many attempts."), "{user}: {}", res.body);
        assert!(!sets_session(&res), "{user}: no session");
        assert_eq!(s.binds(), binds, "{user}: the throttled attempt reached the directory");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_require_group_refuses_non_members_with_the_generic_failure() {
    require_slapd();
    let s = Slapd::shared();
    let env = ldap_env(s, "require_group = \"admins\"");
    // bob has the right password but is only in staff.
    assert_generic_failure(&mut env.browser(), "corp", "bob", "bob-password", "non-member").await;
    // alice is in admins.
    let mut b = env.browser();
    sign_in_ok(&mut b, "corp", "alice", "alice-password").await;
    assert_eq!(me(&mut b).await["groups"], json!(["admins", "staff"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_directory_down_is_a_503_page_and_recovers_without_a_restart() {
    require_slapd();
    let mut s = Slapd::start(Options {
        tls: false,
        allow_bind_anon_dn: false,
    });
    let env = ldap_env_with(&s, "[metrics]\nbind = \"127.0.0.1:0\"\n", "");
    // Up: signs in (the service connection is now open and pooled), and the node says it is ready.
    sign_in_ok(&mut env.browser(), "corp", "alice", "alice-password").await;
    let ready = readyz_until(&mut env.browser(), 200).await;
    assert_eq!(
        ready,
        json!({"status": "ready", "store": "up", "sources": {"local": "not_checked", "corp": "up"}})
    );

    s.stop();
    // Not ready while the directory is down; the answer names it and nothing internal.
    let down = readyz_until(&mut env.browser(), 503).await;
    assert_eq!(
        down,
        json!({"status": "unavailable", "store": "up", "sources": {"local": "not_checked", "corp": "down"}})
    );
    for attempt in 0..2 {
        let mut b = env.browser();
        let res = guarded(
            "sign-in with the directory down",
            b.sign_in("corp", "alice", "alice-password", "/me"),
        )
        .await;
        assert_eq!(res.status, 503, "attempt {attempt}: {}", res.body);
        assert!(res.body.contains(UNAVAILABLE), "{}", res.body);
        assert!(
            !res.body.contains("127.0.0.1"),
            "no internal detail on the page: {}",
            res.body
        );
        assert!(!sets_session(&res));
        assert_eq!(b.get_json("/me").await.status, 401);
    }
    // The metrics say the same: the failed calls by outcome, and the source down.
    let text = env.server.metrics().await;
    let unavailable = series(
        &text,
        "vestibule_source_calls_total",
        &[("source", "corp"), ("outcome", "unavailable")],
    );
    assert!(unavailable.is_some_and(|n| n >= 2.0), "{unavailable:?} in:\n{text}");
    assert_eq!(
        series(&text, "vestibule_source_up", &[("source", "corp")]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "vestibule_source_up", &[("source", "local")]),
        Some(1.0),
        "{text}"
    );
    // The other sources keep working on the same server.
    let mut local = env.browser();
    sign_in_ok(&mut local, "local", LOCAL_USER, LOCAL_PASSWORD).await;
    assert_eq!(me(&mut local).await["identities"][0]["source"], "local");

    // The directory comes back on the same port: the next sign-in works, vestibule untouched, and ready again.
    s.restart();
    let mut b = env.browser();
    sign_in_ok(&mut b, "corp", "alice", "alice-password").await;
    assert_eq!(me(&mut b).await["identities"][0]["source"], "corp");
    assert_eq!(readyz_until(&mut b, 200).await["sources"]["corp"], "up");
    let text = env.server.metrics().await;
    assert_eq!(
        series(&text, "vestibule_source_up", &[("source", "corp")]),
        Some(1.0),
        "{text}"
    );
}

/// Asks `/readyz` until it answers `status` (its answer is shared for two seconds, so a change shows within a few
/// of them), for at most 30 s; returns the JSON body.
async fn readyz_until(b: &mut Browser, status: u16) -> serde_json::Value {
    let mut last = None;
    for _ in 0..60 {
        let res = guarded("readyz", b.get_json("/readyz")).await;
        if res.status == status {
            assert!(!res.body.contains("127.0.0.1"), "no internal detail: {}", res.body);
            return serde_json::from_str(&res.body).expect("JSON");
        }
        last = Some((res.status, res.body));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("/readyz never answered {status}: last {last:?}");
}

// ------------------------------------------------------------------------------------------------------------
// OpenID Connect, against the real oidc-provider

const OP_SECRET: &str = "e2e-oidc-provider-secret-6f1d2c3b4a5e";

/// A vestibule with `kind = "oidc"` (id `sso`) pointing at a real oidc-provider whose only redirect URI is
/// vestibule's `/callback/sso`. The provider's port is chosen first so that vestibule's config can name the issuer
/// and the provider can be told vestibule's callback once vestibule is up (discovery is lazy).
struct OidcEnv {
    env: Env,
    op: Option<node::NodeProvider>,
    issuer: String,
}

fn oidc_env(extra_sources: &str) -> OidcEnv {
    oidc_env_with(extra_sources, &[])
}

/// [`oidc_env`] with more secret files for the extra sources.
fn oidc_env_with(extra_sources: &str, files: &[(&str, &str)]) -> OidcEnv {
    require_node();
    // The server is configured with the issuer, and the provider with the server's callback URL: the provider
    // binds port 0 and tells its issuer first, and learns the callback once the server is up.
    let listening = node::NodeProvider::listen(node::NodeOptions {
        client_id: "vestibule",
        client_secret: OP_SECRET,
        redirect_uri: "",
        claims_in: "id_token",
        port: 0,
    });
    let issuer = listening.issuer.clone();
    let env = Env::start(
        &format!(
            "[[sources]]\nkind = \"oidc\"\nid = \"sso\"\ndisplay_name = \"Company SSO\"\nissuer = \"{issuer}\"\n\
             client_id = \"vestibule\"\nclient_secret_file = \"{{dir}}/op-secret\"\ntimeout_secs = 2\n\n{extra_sources}"
        ),
        &[&[("op-secret", OP_SECRET)], files].concat(),
    );
    let op = listening.serve(&env.callback("sso"));
    OidcEnv {
        env,
        op: Some(op),
        issuer,
    }
}

/// Clicks a redirect source's button on the login page: expects the 303 to the provider and the flow cookie.
async fn click(b: &mut Browser, source: &str, next: &str) -> String {
    let login = b.get(&format!("/login?next={}", urlencode(next))).await;
    assert_eq!(login.status, 200);
    assert!(
        login.body.contains(&format!("/login/{source}")),
        "no button for {source}: {}",
        login.body
    );
    let token = login.csrf_token().unwrap();
    let res = guarded(
        "starting a redirect sign-in",
        b.post(&format!("/login/{source}"), &[("csrf_token", &token), ("next", next)]),
    )
    .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(
        res.set_cookies().iter().any(|c| c.starts_with("vestibule-flow=")),
        "no flow cookie: {:?}",
        res.set_cookies()
    );
    res.location().unwrap().to_owned()
}

impl OidcEnv {
    /// Clicks the `sso` button and plays the person at the provider; returns the provider's redirect back to
    /// vestibule (not yet requested).
    async fn to_provider_and_back(&self, b: &mut Browser, person: node::Person<'_>) -> String {
        let authorize = click(b, "sso", "/me").await;
        assert!(authorize.starts_with(&self.issuer), "{authorize}");
        for p in ["code_challenge_method=S256", "nonce=", "state="] {
            assert!(authorize.contains(p), "{p} missing from {authorize}");
        }
        let callback = self.env.callback("sso");
        let back = guarded(
            "the provider's login and consent",
            node::authorize_redirect(&node::browser(), &authorize, &callback, person),
        )
        .await;
        back.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_through_the_login_page() {
    let o = oidc_env("");
    let mut b = o.env.browser();
    let back = o.to_provider_and_back(&mut b, node::Person::SignIn("alice")).await;
    assert!(back.contains("code=") && back.contains("state="), "{back}");

    let res = guarded("callback", b.get(&back)).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/me"));
    assert!(sets_session(&res), "{:?}", res.set_cookies());
    assert!(
        !b.cookies.contains_key("vestibule-flow"),
        "the flow cookie is deleted on use"
    );
    let who = me(&mut b).await;
    assert_eq!(
        who["identities"],
        json!([{"source": "sso", "subject": "alice"}]),
        "{who}"
    );
    assert_eq!(who["display_name"], "Alice Liddell", "{who}");
    let id = who["id"].clone();

    // Signing in again reuses the account.
    let mut again = o.env.browser();
    let back = o.to_provider_and_back(&mut again, node::Person::SignIn("alice")).await;
    assert_eq!(guarded("callback", again.get(&back)).await.status, 303);
    assert_eq!(me(&mut again).await["id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_replayed_or_foreign_callbacks_are_refused() {
    let o = oidc_env("");

    // Replay: the same browser state (flow cookie included) sends the used callback again.
    let mut a = o.env.browser();
    let back = o.to_provider_and_back(&mut a, node::Person::SignIn("alice")).await;
    let mut replayer = a.clone();
    assert_eq!(guarded("callback", a.get(&back)).await.status, 303);
    let res = guarded("replayed callback", replayer.get(&back)).await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(res.body.contains("Sign-in expired"), "{}", res.body);
    assert!(!sets_session(&res));
    assert_eq!(replayer.get_json("/me").await.status, 401);

    // Another browser, without the flow cookie, with a fresh callback URL.
    let mut victim = o.env.browser();
    let back = o.to_provider_and_back(&mut victim, node::Person::SignIn("alice")).await;
    let mut other = o.env.browser();
    let res = guarded("foreign callback", other.get(&back)).await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(!sets_session(&res));
    assert_eq!(other.get_json("/me").await.status, 401);

    // Another browser holding a flow cookie of its own (it started its own sign-in).
    let back = o.to_provider_and_back(&mut victim, node::Person::SignIn("bob")).await;
    let mut attacker = o.env.browser();
    click(&mut attacker, "sso", "/me").await;
    assert!(attacker.cookies.contains_key("vestibule-flow"));
    let res = guarded("another browser's state", attacker.get(&back)).await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(!sets_session(&res));
    assert_eq!(attacker.get_json("/me").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_cancel_at_the_provider_is_a_friendly_page() {
    let o = oidc_env("");
    let mut b = o.env.browser();
    let back = o.to_provider_and_back(&mut b, node::Person::Cancel).await;
    assert!(back.contains("error=access_denied"), "{back}");
    let res = guarded("cancel callback", b.get(&back)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.body.contains("Sign-in cancelled"), "{}", res.body);
    assert!(!sets_session(&res));
    assert_eq!(b.get_json("/me").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider_down_is_a_503_page_and_local_still_works() {
    // `down` points at a port that refuses connections (bound, not listening, held for the whole test); `sso` is
    // the real provider, stopped mid-flow below.
    let dead = RefusingPort::new();
    let mut o = oidc_env(&format!(
        "[[sources]]\nkind = \"oidc\"\nid = \"down\"\nissuer = \"http://{}\"\nclient_id = \"vestibule\"\n\
         client_secret_file = \"{{dir}}/op-secret\"\ntimeout_secs = 2\n",
        dead.addr()
    ));
    let mut b = o.env.browser();
    // The node is not ready: one provider's discovery cannot be fetched; the real one answers.
    let down = readyz_until(&mut b, 503).await;
    assert_eq!(down["sources"]["down"], "down", "{down}");
    assert_eq!(down["sources"]["sso"], "up", "{down}");
    let login = b.get("/login").await;
    let token = login.csrf_token().unwrap();
    let res = guarded(
        "starting a sign-in at a provider that is down",
        b.post("/login/down", &[("csrf_token", &token), ("next", "/me")]),
    )
    .await;
    assert_eq!(res.status, 503, "{}", res.body);
    assert!(res.body.contains(UNAVAILABLE), "{}", res.body);
    assert!(
        !res.body.contains("127.0.0.1"),
        "no internal detail on the page: {}",
        res.body
    );
    assert!(!sets_session(&res));

    // The provider goes away between the redirect and the callback: the code exchange cannot happen.
    let back = o.to_provider_and_back(&mut b, node::Person::SignIn("alice")).await;
    drop(o.op.take());
    let res = guarded("callback with the provider down", b.get(&back)).await;
    assert_eq!(res.status, 503, "{}", res.body);
    assert!(res.body.contains(UNAVAILABLE), "{}", res.body);
    assert!(!sets_session(&res));
    assert_eq!(b.get_json("/me").await.status, 401);

    // The local source keeps working on the same server.
    sign_in_ok(&mut b, "local", LOCAL_USER, LOCAL_PASSWORD).await;
    assert_eq!(me(&mut b).await["identities"][0]["source"], "local");
}

// ------------------------------------------------------------------------------------------------------------
// GitHub (plain OAuth2) against GitHub-shaped endpoints served by this test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_sign_in_through_the_login_page_keys_on_the_numeric_id() {
    use vestibule_tests::github::{Account, FakeGithub, CLIENT_ID, CLIENT_SECRET};
    let gh = FakeGithub::start().await;
    let g = &gh.base;
    let env = Env::start(
        &format!(
            "[[sources]]\nkind = \"github\"\nid = \"github\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret_file = \"{{dir}}/gh-secret\"\ntimeout_secs = 2\n{}",
            gh.endpoints_toml()
        ),
        &[("gh-secret", CLIENT_SECRET)],
    );
    let mut b = env.browser();
    let authorize = click(&mut b, "github", "/me").await;
    assert!(
        authorize.starts_with(&format!("{g}/login/oauth/authorize?")),
        "{authorize}"
    );
    let url = reqwest::Url::parse(&authorize).unwrap();
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(
        q.get("redirect_uri"),
        Some(&env.callback("github")),
        "built from the public URL"
    );
    assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"));
    // The person approves at "GitHub", which sends the browser back with a code and the state.
    let code = gh.grant(&q["code_challenge"], Account::Octocat);
    let back = format!("{}?code={code}&state={}", q["redirect_uri"], urlencode(&q["state"]));

    let res = guarded("github callback", b.get(&back)).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/me"));
    assert!(sets_session(&res));
    let who = me(&mut b).await;
    assert_eq!(
        who["identities"],
        json!([{"source": "github", "subject": "583231"}]),
        "{who}"
    );
    assert_eq!(who["email"], "octocat@github.com", "{who}");

    // The used code and state are not accepted again.
    let res = guarded("replayed github callback", env.browser().get(&back)).await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(!sets_session(&res));
}

// ------------------------------------------------------------------------------------------------------------
// Linking, through the pages

/// The account page's CSRF token and whether it offers a button or form for `what`.
async fn account_page(b: &mut Browser) -> Page {
    let page = b.get("/account").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_person_adds_sso_from_the_account_page_and_me_lists_both() {
    require_slapd();
    let s = Slapd::shared();
    let o = oidc_env_with(&ldap_source(s, ""), &[("ldap-secret", &format!("{SVC_PASSWORD}\n"))]);
    let mut b = o.env.browser();
    sign_in_ok(&mut b, "corp", "alice", "alice-password").await;
    let uuid = entry_uuid(s, &format!("uid=alice,{PEOPLE}"));
    let account = me(&mut b).await["id"].clone();

    let page = account_page(&mut b).await;
    assert!(page.body.contains("action=\"/account/link/sso\""), "{}", page.body);
    let token = page.csrf_token().unwrap();
    let start = b.post("/account/link/sso", &[("csrf_token", &token)]).await;
    assert_eq!(start.status, 303, "{}", start.body);
    let authorize = start.location().unwrap().to_owned();
    assert!(authorize.starts_with(&o.issuer), "{authorize}");
    let back = guarded(
        "the provider's login and consent",
        node::authorize_redirect(
            &node::browser(),
            &authorize,
            &o.env.callback("sso"),
            node::Person::SignIn("alice"),
        ),
    )
    .await;
    let done = guarded("callback", b.get(back.as_ref())).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), Some("/account?done=linked"));

    let who = me(&mut b).await;
    assert_eq!(who["id"], account, "still the same account");
    assert_eq!(
        who["identities"],
        json!([{"source": "corp", "subject": uuid}, {"source": "sso", "subject": "alice"}]),
        "{who}"
    );
    // SSO alone now signs in to that same account.
    let mut other = o.env.browser();
    let back = o.to_provider_and_back(&mut other, node::Person::SignIn("alice")).await;
    assert_eq!(guarded("callback", other.get(&back)).await.status, 303);
    assert_eq!(me(&mut other).await["id"], account);

    // Removing SSO (fresh sign-in, CSRF) leaves the directory; the last way in cannot go.
    let token = account_page(&mut b).await.csrf_token().unwrap();
    let res = b
        .post(
            "/account/unlink",
            &[("csrf_token", &token), ("source", "sso"), ("subject", "alice")],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/account?done=unlinked"));
    assert_eq!(
        me(&mut b).await["identities"],
        json!([{"source": "corp", "subject": uuid}])
    );
    let res = b
        .post(
            "/account/unlink",
            &[("csrf_token", &token), ("source", "corp"), ("subject", &uuid)],
        )
        .await;
    assert_eq!(res.status, 409, "{}", res.body);
    let res = b
        .post("/account/unlink", &[("source", "corp"), ("subject", &uuid)])
        .await;
    assert_eq!(res.status, 403, "no CSRF token, nothing changed");
    assert_eq!(me(&mut b).await["identities"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sso_first_login_matching_a_local_email_asks_for_proof_before_linking() {
    let o = oidc_env("");
    // Local accounts that carry the provider's addresses for alice and bob.
    o.env
        .server
        .add_user("alice.local", "alice@example.com", LOCAL_PASSWORD);
    o.env.server.add_user("bob.local", "bob@example.com", LOCAL_PASSWORD);

    let mut b = o.env.browser();
    let back = o.to_provider_and_back(&mut b, node::Person::SignIn("alice")).await;
    let res = guarded("callback", b.get(&back)).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/link"));
    assert!(!sets_session(&res), "no session before proof");
    assert_eq!(b.get_json("/me").await.status, 401);
    let page = b.get("/link").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("You may already have an account"), "{}", page.body);

    // A browser without the link cookie sees nothing.
    assert_eq!(o.env.browser().get("/link").await.status, 400);

    // Proof: sign in to the local account from the link page; the broker brings the browser back to confirm.
    let token = page.csrf_token().unwrap();
    let res = b
        .post(
            "/login/local",
            &[
                ("csrf_token", &token),
                ("username", "alice.local"),
                ("password", LOCAL_PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/link"));
    let confirm = b.get("/link").await;
    assert!(confirm.body.contains("Add Company SSO"), "{}", confirm.body);
    let token = confirm.csrf_token().unwrap();
    let res = b.post("/link/confirm", &[("csrf_token", &token)]).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/account?done=linked"));
    let who = me(&mut b).await;
    let sources: Vec<_> = who["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].clone())
        .collect();
    assert_eq!(sources, vec![json!("local"), json!("sso")], "{who}");
    // The link token is gone: a second confirm does nothing.
    assert_eq!(b.post("/link/confirm", &[("csrf_token", &token)]).await.status, 400);

    // Bob chooses a separate account instead of proving ownership of bob.local.
    let mut c = o.env.browser();
    let back = o.to_provider_and_back(&mut c, node::Person::SignIn("bob")).await;
    assert_eq!(guarded("callback", c.get(&back)).await.location(), Some("/link"));
    let page = c.get("/link").await;
    assert!(page.body.contains("Create a separate account"));
    let res = c
        .post("/link/new", &[("csrf_token", &page.csrf_token().unwrap())])
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(sets_session(&res));
    let bob = me(&mut c).await;
    assert_eq!(bob["identities"], json!([{"source": "sso", "subject": "bob"}]), "{bob}");
    let mut d = o.env.browser();
    sign_in_ok(&mut d, "local", "bob.local", LOCAL_PASSWORD).await;
    assert_ne!(me(&mut d).await["id"], bob["id"], "bob.local was not taken over");
}

/// The provider reports how each person signed in (`amr`: carol with `mfa`, alice with `pwd` only). With a second
/// factor required for everyone, carol's provider MFA counts as it only where the source has
/// `trust_upstream_mfa = true`; elsewhere, and for alice, the person is sent to set up an authenticator and holds
/// no session until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_amr_is_the_second_factor_only_where_trusted() {
    for trusted in [true, false] {
        // The first line belongs to the `sso` source's table, the rest is a table of its own.
        let extra = format!("trust_upstream_mfa = {trusted}\n\n[second_factor]\npolicy = \"required\"\n");
        let o = oidc_env(&extra);
        let mut b = o.env.browser();
        let back = o.to_provider_and_back(&mut b, node::Person::SignIn("carol")).await;
        let res = guarded("callback", b.get(&back)).await;
        assert_eq!(res.status, 303, "{}", res.body);
        if trusted {
            assert_eq!(res.location(), Some("/me"), "trusted: signed in");
            assert!(sets_session(&res), "{:?}", res.set_cookies());
            let who = me(&mut b).await;
            assert_eq!(who["assurance"], "multi", "{who}");
            assert_eq!(who["amr"], json!(["fed", "mfa"]), "{who}");
            let verify = b.get("/verify").await;
            assert_eq!(verify.status, 200);
            assert_eq!(verify.header("x-vestibule-amr"), Some("fed mfa"));
            // The provider's `auth_time` is when its second factor was proven: carol just signed in there, dave's
            // sign-in is answered from a login two hours old (the provider's single sign-on), so his session is
            // multi-factor with a second factor two hours old, which step-up will not take as fresh.
            let now = vestibule_tests::totp::now_secs();
            let at = who["second_factor_at"].as_i64().expect("a time");
            assert!((now - 120..=now + 5).contains(&at), "carol: {at} vs {now}");
            let mut d = o.env.browser();
            let back = o.to_provider_and_back(&mut d, node::Person::SignIn("dave")).await;
            let res = guarded("callback", d.get(&back)).await;
            assert_eq!(res.location(), Some("/me"), "{}", res.body);
            let dave = me(&mut d).await;
            assert_eq!(dave["assurance"], "multi", "{dave}");
            let at = dave["second_factor_at"].as_i64().expect("a time");
            assert!(
                (now - 7200 - 120..=now - 7200 + 120).contains(&at),
                "dave: {at} vs {now}"
            );
        } else {
            assert_eq!(res.location(), Some("/login/second-factor"), "not trusted: enrolment");
            assert!(!sets_session(&res), "{:?}", res.set_cookies());
            assert_eq!(b.get_json("/me").await.status, 401);
            let page = b.get("/login/second-factor").await;
            assert_eq!(page.status, 200);
            assert!(page.body.contains("otpauth://totp/"), "{}", page.body);
        }
        // A password-only sign-in at the provider is no second factor, trusted or not.
        let mut a = o.env.browser();
        let back = o.to_provider_and_back(&mut a, node::Person::SignIn("alice")).await;
        let res = guarded("callback", a.get(&back)).await;
        assert_eq!(res.location(), Some("/login/second-factor"), "{}", res.body);
        assert!(!sets_session(&res));
        assert_eq!(a.get_json("/me").await.status, 401);
    }
}

/// Step-up at the provider: a signed-in person whose provider's own multi-factor sign-in is trusted is offered
/// "Sign in again with Company SSO" on the step-up page; the button asks the provider for a new login
/// (`prompt=login`, `max_age=0`) and the callback renews that session with a fresh second factor. dave's provider
/// answers from a login two hours old, which proves nothing now: refused, audited, his session as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_provider_steps_up_the_session_with_a_new_login() {
    let o = oidc_env("trust_upstream_mfa = true\n");
    // Starts the step-up from the step-up page of the signed-in browser `b` and plays `person` at the provider.
    async fn step_up(o: &OidcEnv, b: &mut Browser, person: &str) -> Page {
        let page = b.get("/login/second-factor?next=/me").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.body.contains("Sign in again with Company SSO"), "{}", page.body);
        assert!(
            page.body.contains("action=\"/login/second-factor/sso\""),
            "{}",
            page.body
        );
        assert!(
            !page.body.contains("name=\"code\""),
            "no factor here, no code field: {}",
            page.body
        );
        let token = page.csrf_token().unwrap();
        // Without the page's token the form is refused (a cross-site form cannot start it).
        let forged = b.post("/login/second-factor/sso", &[("next", "/me")]).await;
        assert_eq!(forged.status, 403, "{}", forged.body);
        let res = guarded(
            "starting the step-up",
            b.post("/login/second-factor/sso", &[("csrf_token", &token), ("next", "/me")]),
        )
        .await;
        assert_eq!(res.status, 303, "{}", res.body);
        let authorize = res.location().unwrap().to_owned();
        assert!(authorize.starts_with(&o.issuer), "{authorize}");
        for p in [
            "prompt=login",
            "max_age=0",
            "code_challenge_method=S256",
            "nonce=",
            "state=",
        ] {
            assert!(authorize.contains(p), "{p} missing from {authorize}");
        }
        let back = guarded(
            "the provider's new login",
            node::authorize_redirect(
                &node::browser(),
                &authorize,
                &o.env.callback("sso"),
                node::Person::SignIn(person),
            ),
        )
        .await;
        guarded("callback", b.get(back.as_str())).await
    }

    let mut c = o.env.browser();
    let back = o.to_provider_and_back(&mut c, node::Person::SignIn("carol")).await;
    assert_eq!(guarded("callback", c.get(&back)).await.location(), Some("/me"));
    let before = me(&mut c).await;
    assert_eq!(before["assurance"], "multi", "{before}");
    let done = step_up(&o, &mut c, "carol").await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), Some("/me"));
    assert!(sets_session(&done), "renewed under a new id: {:?}", done.set_cookies());
    let after = me(&mut c).await;
    assert_eq!(after["id"], before["id"], "{after}");
    assert_eq!(after["assurance"], "multi", "{after}");
    let now = vestibule_tests::totp::now_secs();
    let at = after["second_factor_at"].as_i64().expect("a time");
    assert!((now - 60..=now + 5).contains(&at), "fresh: {at} vs {now}");

    let mut d = o.env.browser();
    let back = o.to_provider_and_back(&mut d, node::Person::SignIn("dave")).await;
    assert_eq!(guarded("callback", d.get(&back)).await.location(), Some("/me"));
    let before = me(&mut d).await;
    let refused = step_up(&o, &mut d, "dave").await;
    assert!(!sets_session(&refused), "{:?}", refused.set_cookies());
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(
        refused.body.contains("We could not sign you in"),
        "the generic failure: {}",
        refused.body
    );
    let after = me(&mut d).await;
    assert_eq!(after["id"], before["id"], "still signed in: {after}");
    assert_eq!(after["second_factor_at"], before["second_factor_at"], "{after}");
}

/// A second factor required for the `admins` group only: carol (an admin at the provider, whose own MFA is not
/// trusted here) is sent to set up an authenticator right after the provider's sign-in, with no session until its
/// first code; alice (no group) is signed in as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_for_a_group_sends_its_members_to_enrolment() {
    let o = oidc_env(
        "groups_claim = \"groups\"\n\n[second_factor]\npolicy = \"required_for_groups\"\ngroups = [\"admins\"]\n",
    );
    let mut a = o.env.browser();
    let back = o.to_provider_and_back(&mut a, node::Person::SignIn("alice")).await;
    let res = guarded("callback", a.get(&back)).await;
    assert_eq!(res.location(), Some("/me"), "{}", res.body);
    assert_eq!(me(&mut a).await["assurance"], "single");

    let mut c = o.env.browser();
    let back = o.to_provider_and_back(&mut c, node::Person::SignIn("carol")).await;
    let res = guarded("callback", c.get(&back)).await;
    assert_eq!(res.location(), Some("/login/second-factor"), "{}", res.body);
    assert!(!sets_session(&res));
    assert_eq!(c.get_json("/me").await.status, 401);
    assert_eq!(c.get("/verify").await.status, 401);
    let page = c.get("/login/second-factor").await;
    assert_eq!(page.status, 200);
    let key = vestibule_tests::totp::code_elements(&page.body)[0].clone();
    let code = vestibule_tests::totp::code(&key, vestibule_tests::totp::now_secs());
    let token = page.csrf_token().unwrap();
    let done = c
        .post("/login/second-factor", &[("csrf_token", &token), ("code", &code)])
        .await;
    assert_eq!(done.status, 200, "recovery codes shown once: {}", done.body);
    let who = me(&mut c).await;
    assert_eq!(who["assurance"], "multi", "{who}");
    assert_eq!(who["groups"], json!(["admins"]), "{who}");
}
