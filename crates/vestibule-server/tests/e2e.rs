//! End-to-end: the real `vestibule` binary on a free loopback port, with SQLite and with PostgreSQL, driven over
//! HTTP like a browser.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use vestibule_tests::browser::{urlencode, Browser};
use vestibule_tests::pg::TempDatabase;
use vestibule_tests::server::{cli, Server, TempDir};
use vestibule_tests::totp::{code_elements, now_secs};

const BIN: &str = env!("CARGO_BIN_EXE_vestibule");
const PASSWORD: &str = "correct horse battery";

/// A server on a fresh database of the given backend, with alice already created.
struct Env {
    server: Server,
    _dir: TempDir,
    pg: Option<TempDatabase>,
}

impl Env {
    async fn sqlite(extra: &str) -> Env {
        let dir = TempDir::new("vestibule-e2e");
        let config = format!("[database]\nurl = \"sqlite://{{dir}}/v.db\"\n{extra}");
        let server = Server::start(Path::new(BIN), &dir.0, &config);
        server.add_user("alice", "alice@example.org", PASSWORD);
        Env {
            server,
            _dir: dir,
            pg: None,
        }
    }

    async fn postgres(extra: &str) -> Env {
        let pg = TempDatabase::create().await;
        let dir = TempDir::new("vestibule-e2e");
        let config = format!("[database]\nurl = \"{}\"\n{extra}", pg.url);
        let server = Server::start(Path::new(BIN), &dir.0, &config);
        server.add_user("alice", "alice@example.org", PASSWORD);
        Env {
            server,
            _dir: dir,
            pg: Some(pg),
        }
    }

    fn browser(&self) -> Browser {
        Browser::new(&self.server.base)
    }

    async fn finish(mut self) {
        self.server.stop();
        if let Some(pg) = self.pg.take() {
            pg.drop_db().await;
        }
    }
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { let env = super::Env::sqlite("").await; super::$name(&env).await; env.finish().await; } )* }
        mod postgres { $( #[tokio::test] async fn $name() { let env = super::Env::postgres("").await; super::$name(&env).await; env.finish().await; } )* }
    };
}

on_both!(
    sign_in_me_and_logout,
    replayed_cookie_after_logout_is_refused,
    csrf_failures_change_nothing,
    open_redirect_payloads_fall_back,
    bad_logins_look_the_same,
    session_id_rotates_on_sign_in,
    security_headers_on_every_page,
    health_check_answers,
    sessions_are_listed_and_revoked_one_others_all,
    a_password_change_ends_the_other_sessions,
    verify_answers_for_cookies_and_refuses_without,
);

async fn sign_in_me_and_logout(env: &Env) {
    let mut b = env.browser();
    let res = b.sign_in("local", "alice", PASSWORD, "/me").await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/me"));
    let set = res.set_cookies().join("\n");
    assert!(set.contains("vestibule-session="), "{set}");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax"), "{set}");

    let me = b.get_json("/me").await;
    assert_eq!(me.status, 200);
    let me = me.json();
    assert_eq!(me["display_name"], "alice");
    assert_eq!(me["email"], "alice@example.org");
    assert_eq!(me["identities"][0]["source"], "local");
    assert_eq!(me["identities"][0]["subject"], me["id"]);
    assert_eq!(me["groups"], serde_json::json!([]));

    let account = b.get("/account").await;
    assert_eq!(account.status, 200);
    assert!(account.body.contains("alice@example.org") && account.body.contains("This session"));
    let token = account.csrf_token().unwrap();
    let out = b.post("/logout", &[("csrf_token", &token)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), Some("/login"));
    let me = b.get_json("/me").await;
    assert_eq!(me.status, 401);
    assert_eq!(me.json()["error"], "unauthenticated");
    // A browser asking for the account page is sent to sign in, with the way back.
    let account = b.get("/account").await;
    assert_eq!(account.status, 303);
    assert_eq!(account.location(), Some("/login?next=/account"));
}

async fn replayed_cookie_after_logout_is_refused(env: &Env) {
    let mut b = env.browser();
    assert_eq!(b.sign_in("local", "alice", PASSWORD, "").await.status, 303);
    let stolen = b.cookies.get("vestibule-session").unwrap().clone();
    let token = b.get("/account").await.csrf_token().unwrap();
    assert_eq!(b.post("/logout", &[("csrf_token", &token)]).await.status, 303);
    let mut thief = env.browser();
    thief.cookies.insert("vestibule-session".into(), stolen);
    assert_eq!(
        thief.get_json("/me").await.status,
        401,
        "the server-side session is gone"
    );
}

async fn csrf_failures_change_nothing(env: &Env) {
    let mut b = env.browser();
    let login = b.get("/login").await;
    let good = login.csrf_token().unwrap();
    // No token, a wrong token, and a token minted for another browser: all 403, and no session.
    let mut other = env.browser();
    let foreign = other.get("/login").await.csrf_token().unwrap();
    for token in [None, Some("not-a-token"), Some(foreign.as_str())] {
        let mut fields = vec![("username", "alice"), ("password", PASSWORD)];
        if let Some(t) = token {
            fields.push(("csrf_token", t));
        }
        let res = b.post("/login/local", &fields).await;
        assert_eq!(res.status, 403, "token {token:?}");
        assert!(res.body.contains("Nothing was changed"), "{}", res.body);
        assert!(!b.cookies.contains_key("vestibule-session"));
    }
    // Without the pre-session cookie the page's own token is worthless too (it is bound to that cookie).
    let mut cookieless = env.browser();
    let res = cookieless
        .post(
            "/login/local",
            &[("csrf_token", &good), ("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status, 403);

    // Signed in, a logout without the right token leaves the session alive.
    assert_eq!(
        b.post(
            "/login/local",
            &[("csrf_token", &good), ("username", "alice"), ("password", PASSWORD)]
        )
        .await
        .status,
        303
    );
    let res = b.post("/logout", &[("csrf_token", &good)]).await;
    assert_eq!(res.status, 403, "the pre-sign-in token is not the session's token");
    assert_eq!(b.get_json("/me").await.status, 200);
}

async fn open_redirect_payloads_fall_back(env: &Env) {
    for payload in [
        "//evil.example",
        "///evil.example",
        "/\\evil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "/%2F%2Fevil.example",
        "%2F%2Fevil.example",
        "/%5Cevil.example",
        "/%252F%252Fevil.example",
        "\t//evil.example",
    ] {
        let mut b = env.browser();
        let res = b.sign_in("local", "alice", PASSWORD, payload).await;
        assert_eq!(res.status, 303, "{payload}");
        assert_eq!(res.location(), Some("/account"), "next={payload:?}");
    }
    let mut b = env.browser();
    let res = b.sign_in("local", "alice", PASSWORD, "/me?x=1").await;
    assert_eq!(res.location(), Some("/me?x=1"));
    // The login page never echoes an unsafe next into its form.
    let page = b.get(&format!("/login?next={}", urlencode("//evil.example"))).await;
    assert!(!page.body.contains("evil.example"));
}

async fn bad_logins_look_the_same(env: &Env) {
    let mut b = env.browser();
    let wrong = b.sign_in("local", "alice", "wrong password!", "").await;
    let unknown = b.sign_in("local", "nobody", "wrong password!", "").await;
    let empty = b.sign_in("local", "alice", "", "").await;
    for page in [&wrong, &unknown, &empty] {
        assert_eq!(page.status, 401);
        assert!(page
            .body
            .contains("Sign-in failed. Check your username and password and try again."));
        assert!(!b.cookies.contains_key("vestibule-session"));
    }
    // Apart from the echoed username, the pages are identical.
    assert_eq!(
        wrong.body.replace("value=\"alice\"", ""),
        unknown.body.replace("value=\"nobody\"", "")
    );
    // An unknown source is a 404 page, not a hint.
    let token = b.get("/login").await.csrf_token().unwrap();
    let res = b
        .post(
            "/login/nosuch",
            &[("csrf_token", &token), ("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status, 404);
}

async fn session_id_rotates_on_sign_in(env: &Env) {
    let mut b = env.browser();
    assert_eq!(b.sign_in("local", "alice", PASSWORD, "").await.status, 303);
    let first = b.cookies.get("vestibule-session").unwrap().clone();
    assert_eq!(b.sign_in("local", "alice", PASSWORD, "").await.status, 303);
    let second = b.cookies.get("vestibule-session").unwrap().clone();
    assert_ne!(first, second);
    let mut old = env.browser();
    old.cookies.insert("vestibule-session".into(), first);
    assert_eq!(old.get_json("/me").await.status, 401, "the pre-rotation id is dead");
    // A fixated (attacker-chosen) id is never adopted: the server issues its own.
    let mut victim = env.browser();
    victim.cookies.insert("vestibule-session".into(), "A".repeat(43));
    assert_eq!(victim.sign_in("local", "alice", PASSWORD, "").await.status, 303);
    assert_ne!(victim.cookies.get("vestibule-session").unwrap(), &"A".repeat(43));
}

async fn security_headers_on_every_page(env: &Env) {
    let mut b = env.browser();
    for path in ["/login", "/account", "/nope", "/me"] {
        let p = b.get(path).await;
        let csp = p.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(p.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(p.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(p.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(p.header("cache-control"), Some("no-store"), "{path}");
        assert!(!p.body.contains("<script"), "{path}");
        assert!(p.header("server").is_none(), "{path}: no version disclosure");
    }
    let nope = b.get("/nope").await;
    assert_eq!(nope.status, 404);
    assert!(nope.body.contains("There is nothing here"));
}

async fn health_check_answers(env: &Env) {
    let mut b = env.browser();
    let h = b.get_json("/healthz").await;
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "ok");
}

#[tokio::test]
async fn https_public_url_gives_host_prefixed_secure_cookies() {
    let env = Env::sqlite("[server]\npublic_url = \"https://id.example.com\"\n").await;
    let mut b = env.browser();
    let login = b.get("/login").await;
    let set = login.set_cookies().join("\n");
    assert!(
        set.contains("__Host-vestibule-csrf=") && set.contains("; Secure"),
        "{set}"
    );
    assert!(login
        .header("strict-transport-security")
        .unwrap_or_default()
        .contains("max-age=31536000"));
    let res = b.sign_in("local", "alice", PASSWORD, "").await;
    let set = res.set_cookies().join("\n");
    assert!(
        set.contains("__Host-vestibule-session=") && set.contains("Path=/") && set.contains("Secure"),
        "{set}"
    );
    assert!(!set.contains("Domain="));
    env.finish().await;
}

#[tokio::test]
async fn password_stdin_keeps_inner_spaces_and_drops_the_newline() {
    let env = Env::sqlite("").await;
    env.server.add_user("bob", "bob@example.org", "  spaced  out  ");
    let mut b = env.browser();
    assert_eq!(b.sign_in("local", "bob", "  spaced  out  ", "").await.status, 303);
    let mut c = env.browser();
    assert_eq!(
        c.sign_in("local", "bob", "spaced  out", "").await.status,
        401,
        "no trimming"
    );
    // Policy and duplicates are refused with a clear message.
    let short = env
        .server
        .cli(&["user", "add", "carol", "--password-stdin"], Some("short\n"));
    assert!(
        !short.success && short.stderr.contains("at least 8 characters"),
        "{}",
        short.stderr
    );
    let dup = env
        .server
        .cli(&["user", "add", "bob", "--password-stdin"], Some("another password\n"));
    assert!(!dup.success && dup.stderr.contains("taken"), "{}", dup.stderr);
    env.finish().await;
}

#[test]
fn non_loopback_plain_http_refuses_to_start() {
    let dir = TempDir::new("vestibule-e2e");
    let out = cli(Path::new(BIN), &["serve", "--bind", "0.0.0.0:0"], None, &dir.0);
    assert!(!out.success);
    assert!(out.stderr.contains("behind_tls_proxy = true"), "{}", out.stderr);
    assert!(
        !dir.0.join("vestibule.db").exists(),
        "refused before touching the database"
    );
}

fn check(text: &str) -> (bool, String) {
    let dir = TempDir::new("vestibule-check");
    let file = dir.0.join("bad.toml");
    std::fs::write(&file, text).unwrap();
    let out = cli(
        Path::new(BIN),
        &["check-config", &file.display().to_string()],
        None,
        &dir.0,
    );
    (out.success, format!("{}{}", out.stdout, out.stderr))
}

#[test]
fn check_config_locates_every_kind_of_mistake() {
    let (ok, out) = check("[server]\nbind = \"127.0.0.1:8080\"\n\n[[sources]]\nid = \"local\"\nkind = \"local\"\n");
    assert!(ok, "{out}");
    assert!(out.contains("ok (1 source(s))"));

    let (ok, out) = check("[server]\nbind = \"127.0.0.1:8080\"\nbindd = 1\n");
    assert!(
        !ok && out.contains("bad.toml:3:1") && out.contains("unknown field `bindd`"),
        "{out}"
    );

    let (ok, out) = check("[session]\nidle_timeout_secs = \"ten\"\n");
    assert!(
        !ok && out.contains("bad.toml:2:") && out.contains("invalid type"),
        "{out}"
    );

    let (ok, out) = check("[[sources]]\nid = \"x\"\nkind = \"local\"\n[[sources]]\nid = \"x\"\nkind = \"ldap\"\nurl = \"ldap://127.0.0.1\"\n");
    assert!(
        !ok && out.contains("bad.toml:5:1") && out.contains("`sources[1].id`: duplicate source id `x`"),
        "{out}"
    );

    let (ok, out) = check(
        "[[sources]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldaps://127.0.0.1\"\nbind_dn = \"cn=svc,dc=example,dc=org\"\n\
         bind_password_env = \"VESTIBULE_E2E_SURELY_UNSET\"\nuser_base = \"dc=example,dc=org\"\n",
    );
    assert!(
        !ok && out.contains("bind_password") && out.contains("VESTIBULE_E2E_SURELY_UNSET"),
        "{out}"
    );
    assert!(out.contains("bad.toml:6:1"), "{out}");

    let (ok, out) = check("[[sources]]\nid = \"x\"\nkind = \"kerberos\"\n");
    assert!(!ok && out.contains("unknown variant `kerberos`"), "{out}");
}

/// Signs in a new browser as alice and returns it.
async fn signed_in_browser(env: &Env, agent: &str) -> Browser {
    let mut b = env.browser();
    b.user_agent = agent.into();
    assert_eq!(b.sign_in("local", "alice", PASSWORD, "").await.status, 303);
    b
}

/// The sessions listed on the account page as (id, the list item's text), and the page's CSRF token.
async fn listed_sessions(b: &mut Browser) -> (Vec<(String, String)>, String) {
    let page = b.get("/account").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let list = page
        .body
        .split("<ul class=\"sessions\">")
        .nth(1)
        .unwrap()
        .split("</ul>")
        .next()
        .unwrap();
    let rows = list
        .split("<li>")
        .skip(1)
        .map(|li| {
            let id = li
                .split("name=\"session\" value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (id.to_owned(), li.to_owned())
        })
        .collect();
    (rows, page.csrf_token().unwrap())
}

async fn sessions_are_listed_and_revoked_one_others_all(env: &Env) {
    let mut laptop = signed_in_browser(env, "laptop-browser").await;
    let mut phone = signed_in_browser(env, "phone-browser").await;
    let mut tablet = signed_in_browser(env, "tablet-browser").await;
    let (rows, token) = listed_sessions(&mut laptop).await;
    assert_eq!(rows.len(), 3);
    let row = |agent: &str| rows.iter().find(|(_, li)| li.contains(agent)).unwrap().clone();
    assert!(row("laptop-browser").1.contains("This session"));
    assert!(!row("phone-browser").1.contains("This session"));

    // Revoke one: the phone is out, the others stay.
    let res = laptop
        .post(
            "/account/sessions/revoke",
            &[("csrf_token", &token), ("session", &row("phone-browser").0)],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(phone.get_json("/me").await.status, 401);
    assert_eq!(tablet.get_json("/me").await.status, 200);
    // A made-up (or another account's) id is a 404 and changes nothing.
    let res = laptop
        .post(
            "/account/sessions/revoke",
            &[("csrf_token", &token), ("session", &"0".repeat(64))],
        )
        .await;
    assert_eq!(res.status, 404);
    // Without a CSRF token nothing happens.
    assert_eq!(
        laptop
            .post("/account/sessions/revoke", &[("session", "others")])
            .await
            .status,
        403
    );
    assert_eq!(tablet.get_json("/me").await.status, 200);

    // Revoke all others: the tablet is out, the laptop stays.
    let res = laptop
        .post(
            "/account/sessions/revoke",
            &[("csrf_token", &token), ("session", "others")],
        )
        .await;
    assert_eq!(res.status, 303);
    assert_eq!(tablet.get_json("/me").await.status, 401);
    assert_eq!(laptop.get_json("/me").await.status, 200);

    // Revoke all: this session too, and the browser is sent to sign in.
    let mut again = signed_in_browser(env, "again").await;
    let res = laptop
        .post(
            "/account/sessions/revoke",
            &[("csrf_token", &token), ("session", "all")],
        )
        .await;
    assert_eq!(res.location(), Some("/login"));
    assert_eq!(laptop.get_json("/me").await.status, 401);
    assert_eq!(again.get_json("/me").await.status, 401);
}

async fn a_password_change_ends_the_other_sessions(env: &Env) {
    let mut here = signed_in_browser(env, "here").await;
    let mut elsewhere = signed_in_browser(env, "elsewhere").await;
    let token = here.get("/account").await.csrf_token().unwrap();
    let wrong = here
        .post(
            "/account/password",
            &[
                ("csrf_token", &token),
                ("current_password", "not it"),
                ("new_password", "new password 1"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.body.contains("current password is not right"), "{}", wrong.body);
    let short = here
        .post(
            "/account/password",
            &[
                ("csrf_token", &token),
                ("current_password", PASSWORD),
                ("new_password", "short"),
            ],
        )
        .await;
    assert_eq!(short.status, 400);
    assert!(short.body.contains("at least 8 characters"), "{}", short.body);
    assert_eq!(
        elsewhere.get_json("/me").await.status,
        200,
        "refused changes end nothing"
    );

    let ok = here
        .post(
            "/account/password",
            &[
                ("csrf_token", &token),
                ("current_password", PASSWORD),
                ("new_password", "new password 1"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(here.get_json("/me").await.status, 200, "this session stays");
    assert_eq!(elsewhere.get_json("/me").await.status, 401, "the other session ended");
    let mut fresh = env.browser();
    assert_eq!(
        fresh.sign_in("local", "alice", PASSWORD, "").await.status,
        401,
        "old password dead"
    );
    assert_eq!(fresh.sign_in("local", "alice", "new password 1", "").await.status, 303);
}

async fn verify_answers_for_cookies_and_refuses_without(env: &Env) {
    let mut anonymous = env.browser();
    let res = anonymous.get("/verify").await;
    assert_eq!(res.status, 401);
    assert!(res.header("x-vestibule-user").is_none());
    let mut b = signed_in_browser(env, "proxy-user").await;
    let id = b.get_json("/me").await.json()["id"].as_str().unwrap().to_owned();
    let res = b.get("/verify").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("x-vestibule-user"), Some(id.as_str()));
    // alice's address is not confirmed (`user add` without `--email-verified`): it is not passed on.
    assert_eq!(res.header("x-vestibule-email"), None);
    assert_eq!(res.header("x-vestibule-groups"), Some(""));
    let token = b.get("/account").await.csrf_token().unwrap();
    b.post("/logout", &[("csrf_token", &token)]).await;
    let mut replay = env.browser();
    replay.cookies = b.cookies.clone();
    assert_eq!(replay.get("/verify").await.status, 401);
}

#[tokio::test]
async fn two_nodes_on_one_postgres_share_sessions_and_revocations() {
    let pg = TempDatabase::create().await;
    let dir_a = TempDir::new("vestibule-node-a");
    let dir_b = TempDir::new("vestibule-node-b");
    // Node B's cache would keep a revoked session for an hour if the push did not work.
    let config = format!("[database]\nurl = \"{}\"\n[session]\ncache_ttl_secs = 3600\n", pg.url);
    let mut a = Server::start(Path::new(BIN), &dir_a.0, &config);
    let mut b = Server::start(Path::new(BIN), &dir_b.0, &config);
    a.add_user("alice", "alice@example.org", PASSWORD);

    let mut on_a = Browser::new(&a.base);
    assert_eq!(on_a.sign_in("local", "alice", PASSWORD, "").await.status, 303);
    let mut on_b = Browser::new(&b.base);
    on_b.cookies = on_a.cookies.clone();
    assert_eq!(
        on_b.get_json("/me").await.status,
        200,
        "a session made on A is valid on B"
    );
    assert_eq!(on_b.get("/verify").await.status, 200, "and now cached on B");

    let token = on_a.get("/account").await.csrf_token().unwrap();
    let started = std::time::Instant::now();
    assert_eq!(on_a.post("/logout", &[("csrf_token", &token)]).await.status, 303);
    let refused_after = loop {
        if on_b.get("/verify").await.status == 401 {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "B still serves a session revoked on A"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // Measured, not asserted tightly (see BENCHMARKS.md for the figure); the cache lifetime is an hour.
    eprintln!("revocation on A refused on B after {refused_after:?}");
    a.stop();
    b.stop();
    pg.drop_db().await;
}

/// Signs in with "remember me" ticked.
async fn sign_in_remembered(env: &Env) -> Browser {
    let mut b = env.browser();
    let res = b.sign_in_remembered("local", "alice", PASSWORD).await;
    assert_eq!(res.status, 303);
    let remember = res
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("vestibule-remember="))
        .expect("remember cookie");
    assert!(
        remember.contains("HttpOnly") && remember.contains("SameSite=Lax"),
        "{remember}"
    );
    assert!(remember.contains("Max-Age=2592000"), "30 days by default: {remember}");
    b
}

#[tokio::test]
async fn remember_me_survives_a_lost_session_cookie_and_is_not_fresh() {
    let env = Env::sqlite("").await;
    let mut b = sign_in_remembered(&env).await;
    let first = b.cookies["vestibule-remember"].clone();
    b.cookies.remove("vestibule-session");
    let me = b.get_json("/me").await;
    assert_eq!(me.status, 200, "restored from the remember-me cookie");
    assert!(
        b.cookies.contains_key("vestibule-session"),
        "a new session cookie was set"
    );
    assert_ne!(b.cookies["vestibule-remember"], first, "the token rotated");
    // Restored sessions are not fresh: sensitive actions ask to sign in again.
    let token = b.get("/account").await.csrf_token().unwrap();
    let res = b
        .post(
            "/account/sessions/revoke",
            &[("csrf_token", &token), ("session", "others")],
        )
        .await;
    assert_eq!(res.status, 403);
    assert!(res.body.contains("sign in again"), "{}", res.body);
    // Signing out ends the series: the remember cookie no longer works.
    let stolen = b.cookies["vestibule-remember"].clone();
    assert_eq!(b.post("/logout", &[("csrf_token", &token)]).await.status, 303);
    let mut later = env.browser();
    later.cookies.insert("vestibule-remember".into(), stolen);
    assert_eq!(later.get_json("/me").await.status, 401);
    env.finish().await;
}

#[tokio::test]
async fn a_stolen_remember_cookie_used_after_the_owner_revokes_everything() {
    // No grace window, so that "later" needs no waiting in the test.
    let env = Env::sqlite("[session]\nremember_grace_secs = 0\n").await;
    let mut victim = sign_in_remembered(&env).await;
    let mut thief = env.browser();
    thief.cookies.insert(
        "vestibule-remember".into(),
        victim.cookies["vestibule-remember"].clone(),
    );
    // The victim comes back the next day (session cookie gone): restored, token rotated.
    victim.cookies.remove("vestibule-session");
    assert_eq!(victim.get_json("/me").await.status, 200);
    // The thief presents the old token of the live series: refused, and the victim's sessions end too.
    assert_eq!(thief.get_json("/me").await.status, 401);
    assert!(
        !thief.cookies.contains_key("vestibule-remember"),
        "the cookie is cleared"
    );
    assert_eq!(
        victim.get_json("/me").await.status,
        401,
        "theft revokes every session of the account"
    );
    victim.cookies.remove("vestibule-session");
    assert_eq!(victim.get_json("/me").await.status, 401, "and the series");
    env.finish().await;
}

#[tokio::test]
async fn a_password_change_ends_every_remember_me_series() {
    let env = Env::sqlite("").await;
    let mut other_device = sign_in_remembered(&env).await;
    let mut here = signed_in_browser(&env, "here").await;
    let token = here.get("/account").await.csrf_token().unwrap();
    let res = here
        .post(
            "/account/password",
            &[
                ("csrf_token", &token),
                ("current_password", PASSWORD),
                ("new_password", "new password 2"),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    other_device.cookies.remove("vestibule-session");
    assert_eq!(other_device.get_json("/me").await.status, 401);
    env.finish().await;
}

#[tokio::test]
async fn personal_access_tokens_work_as_bearer_until_revoked() {
    let env = Env::sqlite("").await;
    let mut b = signed_in_browser(&env, "token-maker").await;
    let token = b.get("/account").await.csrf_token().unwrap();
    let bad = b
        .post(
            "/account/tokens",
            &[("csrf_token", &token), ("name", "ci"), ("scopes", "read")],
        )
        .await;
    assert_eq!(bad.status, 400, "the expiry is required");
    let value = b.create_token("ci", "read").await;
    assert!(value.starts_with("vst_") && value.len() == 47, "{value}");
    let account = b.get("/account").await;
    assert!(
        account.body.contains("<strong>ci</strong>") && !account.body.contains(&value),
        "listed, never shown again"
    );

    let client = reqwest::Client::new();
    let me = client
        .get(format!("{}/me", env.server.base))
        .bearer_auth(&value)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["display_name"], "alice");
    let verify = client
        .get(format!("{}/verify", env.server.base))
        .bearer_auth(&value)
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 200);
    // A bearer request cannot drive the broker's forms: there is no CSRF binding for it.
    let out = client
        .post(format!("{}/logout", env.server.base))
        .bearer_auth(&value)
        .form(&[("csrf_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 403);
    // A stale session cookie sent along does not hide the token.
    let with_stale_cookie = client
        .get(format!("{}/me", env.server.base))
        .header("cookie", format!("vestibule-session={}", "A".repeat(43)))
        .bearer_auth(&value)
        .send()
        .await
        .unwrap();
    assert_eq!(with_stale_cookie.status(), 200);
    let wrong = client
        .get(format!("{}/me", env.server.base))
        .bearer_auth("vst_not-a-real-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let id = account
        .body
        .split("/account/tokens/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let res = b
        .post(&format!("/account/tokens/{id}/revoke"), &[("csrf_token", &token)])
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let me = client
        .get(format!("{}/me", env.server.base))
        .bearer_auth(&value)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401, "revoked");
    env.finish().await;
}

#[tokio::test]
async fn strong_protection_ends_a_session_used_by_another_browser() {
    let env = Env::sqlite("[session]\nprotection = \"strong\"\n").await;
    let b = signed_in_browser(&env, "browser-one").await;
    let mut copy = env.browser();
    copy.cookies = b.cookies.clone();
    copy.user_agent = "some-other-browser".into();
    assert_eq!(copy.get_json("/me").await.status, 401);
    let mut original = b;
    assert_eq!(
        original.get_json("/me").await.status,
        401,
        "the session is gone for everyone"
    );
    env.finish().await;
}

#[tokio::test]
async fn basic_protection_keeps_the_session_but_asks_for_a_new_sign_in() {
    let env = Env::sqlite("").await;
    let b = signed_in_browser(&env, "browser-one").await;
    let mut copy = env.browser();
    copy.cookies = b.cookies.clone();
    copy.user_agent = "some-other-browser".into();
    assert_eq!(copy.get_json("/me").await.status, 200, "basic (the default) keeps it");
    let token = copy.get("/account").await.csrf_token().unwrap();
    let res = copy
        .post(
            "/account/sessions/revoke",
            &[("csrf_token", &token), ("session", "others")],
        )
        .await;
    assert_eq!(res.status, 403, "but sensitive actions need a new sign-in");
    env.finish().await;
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    for (extra, expected) in [
        ("", "127.0.0.1"),
        ("[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n", "203.0.113.9"),
    ] {
        let env = Env::sqlite(extra).await;
        let mut b = env.browser();
        let login = b.get("/login").await;
        let token = login.csrf_token().unwrap();
        // reqwest through the support Browser cannot add headers per request: use a raw client with the cookies.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let cookie: String = b
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let res = client
            .post(format!("{}/login/local", env.server.base))
            .header("cookie", cookie)
            .header("x-forwarded-for", "203.0.113.9")
            .form(&[
                ("csrf_token", token.as_str()),
                ("username", "alice"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        let session = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("vestibule-session="))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        b.cookies.insert("vestibule-session".into(), session);
        let page = b.get("/account").await;
        assert!(
            page.body.contains(&format!("from {expected}")),
            "{extra:?}: {}",
            page.body
        );
        env.finish().await;
    }
}

#[tokio::test]
async fn disabling_an_account_from_the_cli_ends_its_sessions_on_a_running_server() {
    // PostgreSQL, and an hour of cache: only the announced revocation can explain a quick refusal.
    let env = Env::postgres("[session]\ncache_ttl_secs = 3600\n").await;
    let mut b = signed_in_browser(&env, "soon-disabled").await;
    assert_eq!(b.get_json("/me").await.status, 200);
    let out = env.server.cli(&["user", "disable", "alice"], None);
    assert!(out.success, "{}", out.stderr);
    assert!(out.stdout.contains("1 session(s) ended"), "{}", out.stdout);
    let started = std::time::Instant::now();
    while b.get_json("/me").await.status != 401 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the running server still honours it"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut again = env.browser();
    assert_eq!(
        again.sign_in("local", "alice", PASSWORD, "").await.status,
        401,
        "a disabled account cannot sign in"
    );
    let out = env.server.cli(&["user", "enable", "alice"], None);
    assert!(out.success, "{}", out.stderr);
    assert_eq!(again.sign_in("local", "alice", PASSWORD, "").await.status, 303);
    let missing = env.server.cli(&["user", "disable", "nobody"], None);
    assert!(
        !missing.success && missing.stderr.contains("no account matches `nobody`"),
        "{}",
        missing.stderr
    );
    env.finish().await;
}

/// One sign-in attempt through a trusted proxy claiming the client address `forwarded` (`X-Forwarded-For`): the
/// login page for its CSRF token and cookie, then the post. Returns the status and `Retry-After`.
async fn attempt_from(base: &str, forwarded: &str, username: &str, password: &str) -> (u16, Option<String>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client
        .get(format!("{base}/login"))
        .header("x-forwarded-for", forwarded)
        .send()
        .await
        .unwrap();
    let cookie: Vec<String> = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next().map(str::to_owned))
        .collect();
    let html = page.text().await.unwrap();
    let token = vestibule_tests::browser::hidden_value(&html, "csrf_token").expect("csrf_token");
    let body = format!(
        "csrf_token={}&username={}&password={}",
        urlencode(&token),
        urlencode(username),
        urlencode(password)
    );
    let res = client
        .post(format!("{base}/login/local"))
        .header("x-forwarded-for", forwarded)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie.join("; "))
        .body(body)
        .send()
        .await
        .unwrap();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (res.status().as_u16(), retry)
}

/// One name guessed from many addresses (each forwarded by a trusted proxy, each under its own allowances): the
/// per-name layer still stops it, so spreading a guess over a botnet does not help; the addresses come from
/// `X-Forwarded-For` only because the peer is a trusted proxy.
#[tokio::test]
async fn one_name_from_many_forwarded_addresses_is_throttled_per_name() {
    // A first delay of a minute, so that a slow machine cannot outlast it between the steps below.
    let env = Env::sqlite("[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n[throttle]\nfirst_delay_secs = 60\n").await;
    let base = env.server.base.clone();
    for i in 0..10 {
        let (status, _) = attempt_from(&base, &format!("198.51.100.{}", i + 1), "alice", "wrong horse").await;
        assert_eq!(status, 401, "failure {i} is free");
    }
    // Five more from five more addresses: the name's allowance (10) is spent; each address has failed once.
    let mut throttled = 0;
    for i in 10..15 {
        let (status, retry) = attempt_from(&base, &format!("198.51.100.{}", i + 1), "alice", "wrong horse").await;
        if status == 429 {
            assert!(retry.is_some_and(|r| r.parse::<u32>().is_ok_and(|s| s >= 1)));
            throttled += 1;
        } else {
            assert_eq!(status, 401);
        }
    }
    assert_eq!(
        throttled, 4,
        "after the 11th failure, the per-name layer answers 429 from fresh addresses"
    );
    // The right password from yet another address is refused while the name waits.
    let (status, _) = attempt_from(&base, "203.0.113.77", "alice", PASSWORD).await;
    assert_eq!(status, 429, "the right password during the delay");
    // Another name from the same addresses is not affected.
    let (status, _) = attempt_from(&base, "198.51.100.1", "nobody-else", "wrong horse").await;
    assert_eq!(status, 401);
    env.finish().await;
}

/// Two servers on one PostgreSQL database enforce one limit: failures from one address at one name, spread over
/// both, hold both back (each alone would still allow them), and `vestibule throttle lift` frees the name on both.
#[tokio::test]
async fn two_servers_on_one_postgres_share_the_throttle_and_an_operator_lifts_it() {
    let extra = "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n[throttle]\nfirst_delay_secs = 60\n";
    let env = Env::postgres(extra).await;
    let dir_b = TempDir::new("vestibule-e2e-b");
    let config = std::fs::read_to_string(&env.server.config).unwrap();
    let mut b = Server::start(Path::new(BIN), &dir_b.0, &config);
    let (a_base, b_base) = (env.server.base.clone(), b.base.clone());
    // The pair's allowance is five failures: three on A and three on B make six, counted together.
    for i in 0..6 {
        let base = if i % 2 == 0 { &a_base } else { &b_base };
        let (status, _) = attempt_from(base, "198.51.100.60", "alice", "wrong horse").await;
        assert_eq!(status, 401, "failure {i}");
    }
    for base in [&a_base, &b_base] {
        let (status, retry) = attempt_from(base, "198.51.100.60", "alice", PASSWORD).await;
        assert_eq!(status, 429, "the right password waits on {base}");
        assert!(retry.is_some());
    }
    // What the operator sees: the name as typed next to its counters, the pair refusing.
    let out = env.server.cli(&["throttle", "list", "--name", "alice", "--json"], None);
    assert!(out.success, "{}", out.stderr);
    let lines: Vec<serde_json::Value> = out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let pair = lines
        .iter()
        .find(|l| l["layer"] == "pair")
        .unwrap_or_else(|| panic!("a pair counter in {}", out.stdout));
    assert_eq!(pair["name"], "local:alice");
    assert_eq!(pair["address"], "198.51.100.60");
    assert_eq!(pair["failures"], 6);
    assert_eq!(pair["refusing"], "pair");
    // The table never shows a name it was not given.
    let table = env.server.cli(&["throttle", "list"], None);
    assert!(table.success && !table.stdout.contains("alice"), "{}", table.stdout);
    assert!(table.stdout.contains("198.51.100.60"), "{}", table.stdout);

    let out = env.server.cli(&["throttle", "lift", "alice"], None);
    assert!(out.success, "{}", out.stderr);
    assert!(out.stdout.contains("lifted 2 counter(s)"), "{}", out.stdout);
    let (status, _) = attempt_from(&b_base, "198.51.100.60", "alice", PASSWORD).await;
    assert_eq!(status, 303, "signed in on B after the lift on the shared database");
    b.stop();
    env.finish().await;
}

/// The hourly ceiling (ASVS 2.2.1): one name fails from many addresses, each within its own allowances and with
/// the per-name delays set out of the way; once the hour's failures are spent, even the right password from a new
/// address waits for the hour to end.
#[tokio::test]
async fn the_hourly_ceiling_holds_a_name_whatever_the_spread_of_addresses() {
    let env = Env::sqlite(
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
         [throttle]\naccount_free_failures = 100\naccount_failures_per_hour = 6\n",
    )
    .await;
    let base = env.server.base.clone();
    for i in 0..6 {
        let (status, _) = attempt_from(&base, &format!("203.0.113.{}", i + 1), "alice", "wrong horse").await;
        assert_eq!(status, 401, "failure {i}");
    }
    let (status, retry) = attempt_from(&base, "203.0.113.100", "alice", PASSWORD).await;
    assert_eq!(status, 429);
    let retry: u32 = retry.expect("Retry-After").parse().unwrap();
    assert!((3000..=3600).contains(&retry), "until the hour ends: {retry}");
    // Another name is not held.
    let (status, _) = attempt_from(&base, "203.0.113.100", "bob", "wrong horse").await;
    assert_eq!(status, 401);
    env.finish().await;
}

/// A delay ends by itself: after the pair's free failures the right password is answered 429 with `Retry-After`,
/// and once that wait has passed it signs in (no operator, no lockout).
#[tokio::test]
async fn a_throttling_delay_ends_by_itself() {
    let env = Env::sqlite("[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n").await;
    let base = env.server.base.clone();
    for i in 0..6 {
        let (status, _) = attempt_from(&base, "192.0.2.80", "alice", "wrong horse").await;
        assert_eq!(status, 401, "failure {i}");
    }
    let (status, retry) = attempt_from(&base, "192.0.2.80", "alice", PASSWORD).await;
    assert_eq!(status, 429, "the right password during the delay");
    let wait: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&wait), "the first delay: {wait}");
    // Retry-After is whole seconds, rounded up; one more second covers a clock tick between the two reads.
    tokio::time::sleep(std::time::Duration::from_secs(wait + 1)).await;
    let (status, _) = attempt_from(&base, "192.0.2.80", "alice", PASSWORD).await;
    assert_eq!(status, 303, "signed in once the delay has passed");
    env.finish().await;
}

/// Many names guessed from one address: each name stays within its own allowances, and the address's bucket
/// stops the spray once its burst is spent (a 429 naming no account), while another address is not affected.
#[tokio::test]
async fn many_names_from_one_address_hit_the_address_bucket() {
    let env = Env::sqlite(
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n[throttle]\naddress_burst = 8\naddress_refill_secs = 600\n",
    )
    .await;
    let base = env.server.base.clone();
    for i in 0..8 {
        let (status, _) = attempt_from(&base, "198.51.100.99", &format!("user{i}"), "wrong horse").await;
        assert_eq!(status, 401, "name {i}: one failure each");
    }
    let (status, retry) = attempt_from(&base, "198.51.100.99", "alice", PASSWORD).await;
    assert_eq!(
        status, 429,
        "a ninth name from the spent address, the right password too"
    );
    let wait: u32 = retry.expect("Retry-After").parse().unwrap();
    assert!(
        (500..=600).contains(&wait),
        "one attempt earned back every 600 s: {wait}"
    );
    let (status, _) = attempt_from(&base, "198.51.100.100", "alice", PASSWORD).await;
    assert_eq!(status, 303, "another address signs alice in");
    env.finish().await;
}

/// Signs alice in with her password in a new browser: the second step is due, and nothing is granted yet.
async fn half_signed_in(env: &Env) -> Browser {
    let mut b = env.browser();
    let res = b.sign_in("local", "alice", PASSWORD, "/me").await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location(), Some("/login/second-factor"));
    assert!(b.cookies.contains_key("vestibule-2fa"), "{:?}", res.set_cookies());
    assert!(!b.cookies.contains_key("vestibule-session"), "{:?}", res.set_cookies());
    b
}

/// Posts a code on the second-factor page.
async fn post_code(b: &mut Browser, code: &str) -> vestibule_tests::browser::Page {
    let page = b.get("/login/second-factor").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let token = page.csrf_token().unwrap();
    b.post("/login/second-factor", &[("csrf_token", &token), ("code", code)])
        .await
}

/// Enrols TOTP for alice from the account page, reading the key from the page; returns the key and the recovery
/// codes shown.
async fn enrol_totp(env: &Env) -> (String, Vec<String>) {
    let mut owner = signed_in_browser(env, "owner").await;
    let account = owner.get("/account").await;
    assert!(account.body.contains("/account/totp"), "{}", account.body);
    let token = account.csrf_token().unwrap();
    let page = owner.post("/account/totp", &[("csrf_token", &token)]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<svg"), "a QR code drawn on the page");
    let shown = code_elements(&page.body);
    let (key, uri) = (shown[0].clone(), shown[1].clone());
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={key}")),
        "{uri}"
    );
    let confirm_token = page.csrf_token().unwrap();
    let wrong = owner
        .post(
            "/account/totp/confirm",
            &[("csrf_token", &confirm_token), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let code = vestibule_tests::totp::code(&key, now_secs());
    let codes_page = owner
        .post(
            "/account/totp/confirm",
            &[("csrf_token", &confirm_token), ("code", &code)],
        )
        .await;
    assert_eq!(codes_page.status, 200, "{}", codes_page.body);
    let recovery = code_elements(&codes_page.body);
    assert_eq!(recovery.len(), 10, "{}", codes_page.body);
    let me = owner.get_json("/me").await.json();
    assert_eq!(me["amr"], serde_json::json!(["pwd", "otp"]), "{me}");
    (key, recovery)
}

/// Enrols TOTP, then signs in with password and code; the half-signed-in state grants nothing; a recovery code
/// works once; wrong codes are throttled (429).
async fn totp_end_to_end(env: &Env) {
    let (key, recovery) = enrol_totp(env).await;

    // Password alone: the half-signed-in state, which grants nothing.
    let mut b = half_signed_in(env).await;
    assert_eq!(b.get_json("/me").await.status, 401);
    assert_eq!(b.get("/verify").await.status, 401);
    assert_eq!(b.get("/account").await.status, 303);
    let wrong = post_code(&mut b, "123456").await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    // The code the enrolment used is spent for its step; the next step's is accepted (one step of drift).
    let next = vestibule_tests::totp::code(&key, now_secs() + 30);
    let done = post_code(&mut b, &next).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), Some("/me"));
    assert!(!b.cookies.contains_key("vestibule-2fa"));
    let me = b.get_json("/me").await.json();
    assert_eq!(me["assurance"], "multi", "{me}");
    let verify = b.get("/verify").await;
    assert_eq!(verify.status, 200);
    assert_eq!(verify.header("x-vestibule-amr"), Some("pwd otp"));

    // A recovery code works once.
    let mut r = half_signed_in(env).await;
    assert_eq!(post_code(&mut r, &recovery[3]).await.status, 303);
    assert_eq!(
        r.get_json("/me").await.json()["amr"],
        serde_json::json!(["pwd", "recovery"])
    );
    let mut again = half_signed_in(env).await;
    assert_eq!(post_code(&mut again, &recovery[3]).await.status, 401);

    // Wrong codes are throttled per account: past the free failures (two from one address here), 429.
    let mut t = half_signed_in(env).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(post_code(&mut t, "999999").await.status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 429], "{statuses:?}");
    let throttled = post_code(&mut t, &recovery[4]).await;
    assert_eq!(throttled.status, 429, "even the right code: {}", throttled.body);
    assert!(throttled.header("retry-after").is_some());
}

const TOTP_CONFIG: &str = "[throttle]\npair_free_failures = 2\nfirst_delay_secs = 120\n";

#[tokio::test]
async fn totp_end_to_end_on_sqlite() {
    let env = Env::sqlite(TOTP_CONFIG).await;
    totp_end_to_end(&env).await;
    env.finish().await;
}

#[tokio::test]
async fn totp_end_to_end_on_postgres() {
    let env = Env::postgres(TOTP_CONFIG).await;
    totp_end_to_end(&env).await;
    env.finish().await;
}

/// With a second factor required for everyone, the password leads straight to setting one up: the page shows
/// the key, and its first code issues the session (and the recovery codes, once).
#[tokio::test]
async fn required_policy_sends_to_enrolment_before_any_page() {
    let env = Env::sqlite("[second_factor]\npolicy = \"required\"\n").await;
    let mut b = half_signed_in(&env).await;
    assert_eq!(b.get_json("/me").await.status, 401);
    let page = b.get("/login/second-factor").await;
    assert_eq!(page.status, 200);
    let key = code_elements(&page.body)[0].clone();
    let done = post_code(&mut b, &vestibule_tests::totp::code(&key, now_secs())).await;
    assert_eq!(done.status, 200, "the recovery codes, then on: {}", done.body);
    assert_eq!(code_elements(&done.body).len(), 10);
    assert!(done.body.contains("href=\"/me\""), "{}", done.body);
    assert_eq!(b.get_json("/me").await.json()["assurance"], "multi");
    env.finish().await;
}

/// `vestibule user reset-2fa alice` (the operator helping a locked-out person): every factor goes, and the password
/// alone signs in again.
#[tokio::test]
async fn reset_2fa_from_the_cli_removes_every_factor() {
    let env = Env::sqlite("").await;
    enrol_totp(&env).await;
    half_signed_in(&env).await;
    let out = env.server.cli(&["user", "reset-2fa", "alice"], None);
    assert!(out.success, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("removed every second factor"), "{}", out.stdout);
    let mut b = env.browser();
    let res = b.sign_in("local", "alice", PASSWORD, "/me").await;
    assert_eq!(res.location(), Some("/me"), "no code asked any more: {}", res.body);
    assert_eq!(b.get_json("/me").await.json()["assurance"], "single");
    // The recovery codes went with the authenticator.
    assert!(!b.get("/account").await.body.contains("recovery codes left"));
    let again = env.server.cli(&["user", "reset-2fa", "alice"], None);
    assert!(
        again.success && again.stdout.contains("had no second factor"),
        "{}",
        again.stdout
    );
    let missing = env.server.cli(&["user", "reset-2fa", "nobody@example.org"], None);
    assert!(!missing.success);
    env.finish().await;
}
