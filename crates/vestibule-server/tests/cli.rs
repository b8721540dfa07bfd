//! The operator commands of the real `vestibule` binary: `check-config` names the key path of every mistake, and
//! `user show|disable|enable TARGET` reach any account — here one that only signs in through GitHub (GitHub-shaped
//! endpoints served in process by `vestibule_tests::github`) — by `source:subject`, email
//! or id, and refuse an email shared by several accounts.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use vestibule_tests::browser::{urlencode, Browser};
use vestibule_tests::github::{Account, FakeGithub, CLIENT_ID, CLIENT_SECRET};
use vestibule_tests::pg::TempDatabase;
use vestibule_tests::server::{cli, Server, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_vestibule");
const PASSWORD: &str = "correct horse battery";
/// The subject the fake GitHub asserts for octocat: the numeric user id.
const OCTOCAT: &str = "github:583231";

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
fn check_config_names_the_key_path_of_every_wrong_type() {
    let cases = [
        (
            "[server]\nbind = 8080\n",
            "bad.toml:2:8: `server.bind`: invalid type: integer `8080`",
        ),
        (
            "[session]\nidle_timeout_secs = \"x\"\n",
            "bad.toml:2:21: `session.idle_timeout_secs`: invalid type: string \"x\"",
        ),
        (
            "[[sources]]\nid = \"local\"\nkind = \"local\"\n\n[[sources]]\nid = \"corp\"\nkind = \"ldap\"\nurl = 3\n",
            "bad.toml:8:7: `sources[1].url`: invalid type: integer `3`",
        ),
        (
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", true]\n",
            "bad.toml:2:34: `server.trusted_proxies[1]`: invalid type: boolean `true`",
        ),
        (
            "[server]\nbnid = 1\n",
            "bad.toml:2:1: `server.bnid`: unknown field `bnid`",
        ),
    ];
    for (text, expected) in cases {
        let (ok, out) = check(text);
        assert!(
            !ok && out.contains(expected),
            "{text:?}\nexpected {expected:?}\ngot {out}"
        );
    }
}

/// `check-config` applies the transport rule `serve` applies, at the file's own `bind`: plain HTTP off loopback is
/// refused at the key with the way out, HTTPS here (a certificate that loads) or a TLS proxy is accepted on any
/// address, and a certificate that does not load is refused as `serve` would refuse it.
#[test]
fn check_config_refuses_what_serve_refuses_before_it_listens() {
    let (ok, out) = check("[server]\nbind = \"0.0.0.0:8080\"\n");
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "bad.toml:2:1: `server.bind`: refusing to serve plain HTTP on the non-loopback address 0.0.0.0:8080"
        ) && out.contains("behind_tls_proxy = true"),
        "{out}"
    );
    let (ok, out) =
        check("[server]\nbind = \"0.0.0.0:8080\"\npublic_url = \"http://id.example.com\"\nbehind_tls_proxy = true\n");
    assert!(
        !ok && out.contains("`server.bind`: refusing"),
        "an http public_url behind a proxy: {out}"
    );

    let (ok, out) = check(
        "[server]\nbind = \"0.0.0.0:8080\"\npublic_url = \"https://id.example.com\"\nbehind_tls_proxy = true\n\
         trusted_proxies = [\"10.0.0.0/8\"]\n",
    );
    assert!(
        ok && out.contains("ok (1 source(s))") && !out.contains("warning"),
        "{out}"
    );

    let certs = TempDir::new("vestibule-check-tls");
    vestibule_tests::server::make_certificates(&certs.0);
    let tls = |cert: &str| {
        format!(
            "[server]\nbind = \"0.0.0.0:8443\"\npublic_url = \"https://id.example.com:8443\"\n[server.tls]\n\
             cert_file = \"{0}/{cert}\"\nkey_file = \"{0}/server.key\"\n",
            certs.0.display()
        )
    };
    let (ok, out) = check(&tls("server.crt"));
    assert!(
        ok && out.contains("ok (1 source(s))") && !out.contains("warning"),
        "{out}"
    );
    let (ok, out) = check(&tls("missing.crt"));
    assert!(
        !ok && out.contains("server.tls.cert_file") && out.contains("missing.crt"),
        "{out}"
    );
}

/// Whether a line of `out` is a warning (`warning: PATH:LINE:COLUMN: `KEY`: ...`) holding `expected`.
fn warned(out: &str, expected: &str) -> bool {
    out.lines().any(|l| l.starts_with("warning: ") && l.contains(expected))
}

/// What `check-config` accepts but is probably a mistake: each a `warning:` line naming the key, its line and
/// column, and the exit status still 0. A careful file has none.
#[test]
fn check_config_warns_about_likely_mistakes() {
    let certs = TempDir::new("vestibule-check-tls");
    vestibule_tests::server::make_certificates(&certs.0);
    let tls_without_public_url = format!(
        "[server]\nbind = \"0.0.0.0:8443\"\n[server.tls]\ncert_file = \"{0}/server.crt\"\nkey_file = \"{0}/server.key\"\n\
         [metrics]\nbind = \"0.0.0.0:9464\"\n\n\
         [[sources]]\nid = \"local\"\nkind = \"local\"\n\n\
         [[sources]]\nid = \"corp\"\nkind = \"ldap\"\nurl = \"ldaps://ldap.example.com\"\n\
         user_dn_template = \"uid={{username}},dc=example,dc=com\"\ntls_verify = false\n",
        certs.0.display()
    );
    let (ok, out) = check(&tls_without_public_url);
    assert!(ok, "warnings do not fail the check: {out}");
    for expected in [
        "bad.toml:3:9: `server.tls`: no server.public_url: links, redirect callbacks and cookies will name \
         https://0.0.0.0:8443",
        "bad.toml:7:1: `metrics.bind`: 0.0.0.0:9464 is not a loopback address",
        "bad.toml:18:1: `sources[1].tls_verify`: false: the directory's certificate is not verified",
    ] {
        assert!(warned(&out, expected), "expected a warning {expected:?}\ngot {out}");
    }
    assert_eq!(out.matches("warning:").count(), 3, "{out}");
    assert!(out.contains("bad.toml: ok (2 source(s))"), "{out}");

    let ip_behind_a_proxy = "[server]\nbind = \"0.0.0.0:8080\"\npublic_url = \"https://192.0.2.10\"\n\
                             behind_tls_proxy = true\n\n\
                             [[sources]]\nid = \"google\"\nkind = \"google\"\n\
                             client_id = \"x.apps.googleusercontent.com\"\nclient_secret_env = \"GOOGLE_SECRET\"\n";
    let (ok, out) = check(ip_behind_a_proxy);
    assert!(ok, "{out}");
    for expected in [
        "bad.toml:3:1: `server.public_url`: its host is the IP address 192.0.2.10, and the callback URL of \
         source `google` is built from it",
        "bad.toml:4:1: `server.behind_tls_proxy`: set, but server.trusted_proxies is empty",
    ] {
        assert!(warned(&out, expected), "expected a warning {expected:?}\ngot {out}");
    }
    assert_eq!(out.matches("warning:").count(), 2, "{out}");

    let (ok, out) = check("");
    assert!(ok && !out.contains("warning"), "the embedded defaults: {out}");
}

/// Clicks the GitHub button, plays GitHub's consent for octocat and follows the callback: a signed-in browser.
async fn github_sign_in(server: &Server, gh: &FakeGithub) -> Browser {
    let mut b = Browser::new(&server.base);
    let login = b.get("/login?next=%2Fme").await;
    let token = login.csrf_token().unwrap();
    let res = b
        .post("/login/github", &[("csrf_token", &token), ("next", "/me")])
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let url = reqwest::Url::parse(res.location().unwrap()).unwrap();
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let code = gh.grant(&q["code_challenge"], Account::Octocat);
    let back = format!("{}?code={code}&state={}", q["redirect_uri"], urlencode(&q["state"]));
    let res = b.get(&back).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(b.get_json("/me").await.status, 200);
    b
}

/// Waits until the running server refuses the browser's session (announced revocations arrive in milliseconds;
/// the hour of cache configured below could not explain a refusal).
async fn until_signed_out(b: &mut Browser, what: &str) {
    let started = Instant::now();
    while b.get_json("/me").await.status != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: the running server still honours it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `user add NAME --email E`, returning the new account's id.
fn add_user(server: &Server, name: &str, email: &str) -> String {
    let out = server.cli(
        &["user", "add", name, "--email", email, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.success, "{}", out.stderr);
    out.stdout
        .strip_prefix("created account ")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_commands_reach_an_account_that_only_signs_in_through_github() {
    let gh = FakeGithub::start().await;
    let pg = TempDatabase::create().await;
    let dir = TempDir::new("vestibule-cli");
    std::fs::write(dir.0.join("gh-secret"), CLIENT_SECRET).unwrap();
    let config = format!(
        "[database]\nurl = \"{}\"\n\n[session]\ncache_ttl_secs = 3600\n\n\
         [[sources]]\nkind = \"local\"\nid = \"local\"\n\n\
         [[sources]]\nkind = \"github\"\nid = \"github\"\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret_file = \"{{dir}}/gh-secret\"\ntimeout_secs = 2\n{}",
        pg.url,
        gh.endpoints_toml()
    );
    let server = Server::start(Path::new(BIN), &dir.0, &config);
    let mut first = github_sign_in(&server, &gh).await;
    let id = first.get_json("/me").await.json()["id"].as_str().unwrap().to_owned();

    // Show: the account, its identity, its session.
    let out = server.cli(&["user", "show", OCTOCAT], None);
    assert!(out.success, "{}", out.stderr);
    for line in [
        format!("account: {id}"),
        "status: enabled".into(),
        "email: octocat@github.com".into(),
        format!("  {OCTOCAT} login octocat"),
        "sessions: 1".into(),
    ] {
        assert!(out.stdout.contains(&line), "{line:?} missing from:\n{}", out.stdout);
    }

    // Disable by source:subject: its session is refused at once, by the running server.
    let out = server.cli(&["user", "disable", OCTOCAT], None);
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stdout.contains(&format!("disabled account {id}")) && out.stdout.contains("1 session(s) ended"),
        "{}",
        out.stdout
    );
    until_signed_out(&mut first, "disabled by source:subject").await;
    let shown = server.cli(&["user", "show", &id], None);
    assert!(shown.stdout.contains("status: disabled"), "{}", shown.stdout);
    let store = vestibule_store::Store::connect(&pg.url).await.unwrap();
    let audit = store.recent_audit(50).await.unwrap();
    assert!(
        audit.iter().any(|e| e.event == "account_disabled"
            && e.account_id.as_deref() == Some(id.as_str())
            && e.detail.as_deref() == Some("cli")),
        "{audit:?}"
    );

    // Enable by email (any case), sign in again; disable by account id.
    let out = server.cli(&["user", "enable", "OctoCat@GitHub.com"], None);
    assert!(out.success, "{}", out.stderr);
    assert!(out.stdout.contains(&format!("enabled account {id}")), "{}", out.stdout);
    let mut second = github_sign_in(&server, &gh).await;
    let out = server.cli(&["user", "disable", &id], None);
    assert!(
        out.success && out.stdout.contains("1 session(s) ended"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    until_signed_out(&mut second, "disabled by id").await;
    let audit = store.recent_audit(50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.event == "account_enabled" && e.account_id.as_deref() == Some(id.as_str())),
        "{audit:?}"
    );

    // An email two accounts share is refused with both ids; neither account is touched.
    let dave = add_user(&server, "dave", "shared@example.org");
    let erin = add_user(&server, "erin", "Shared@Example.org");
    let out = server.cli(&["user", "disable", "shared@example.org"], None);
    assert!(!out.success, "{}", out.stdout);
    assert!(
        out.stderr.contains(&dave) && out.stderr.contains(&erin) && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    let mut b = Browser::new(&server.base);
    assert_eq!(
        b.sign_in("local", "dave", PASSWORD, "").await.status,
        303,
        "dave untouched"
    );
    let mut b = Browser::new(&server.base);
    assert_eq!(
        b.sign_in("local", "erin", PASSWORD, "").await.status,
        303,
        "erin untouched"
    );

    // A local login name still works; so does a login name with a ':' that is not a configured source.
    let out = server.cli(&["user", "disable", "dave"], None);
    assert!(
        out.success && out.stdout.contains(&format!("disabled account {dave}")),
        "{}",
        out.stderr
    );
    let colon = add_user(&server, "team:frank", "frank@example.org");
    let out = server.cli(&["user", "show", "team:frank"], None);
    assert!(
        out.success && out.stdout.contains(&format!("account: {colon}")),
        "{}",
        out.stderr
    );

    let out = server.cli(&["user", "disable", "nobody"], None);
    assert!(
        !out.success && out.stderr.contains("no account matches `nobody`"),
        "{}",
        out.stderr
    );
    let out = server.cli(&["user", "show", "gitlab:583231"], None);
    assert!(
        !out.success,
        "an unconfigured source is not an identity key: {}",
        out.stdout
    );

    store.close().await;
    drop(server);
    pg.drop_db().await;
}

/// `vestibule --version` names the package version and the commit of this checkout (the one the test binary was
/// built from; `-dirty` when it had uncommitted changes), so an operator can tell which build runs.
#[test]
fn version_names_the_commit() {
    let out = std::process::Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .unwrap();
    let head = String::from_utf8(head.stdout).unwrap();
    let expected = format!("vestibule {} (commit {}", env!("CARGO_PKG_VERSION"), head.trim());
    assert!(text.starts_with(&expected), "{text:?} vs {expected:?}");
}

/// `vestibule audit`: the events operators caused, newest first; filtered by account (any TARGET form), event
/// and time; paged with `--before`; `--json` one object per line; an unknown event name is refused with the list.
#[tokio::test]
async fn audit_lists_filters_and_pages_the_log() {
    let dir = TempDir::new("vestibule-audit");
    let server = Server::start(Path::new(BIN), &dir.0, "[database]\nurl = \"sqlite://{dir}/v.db\"\n");
    let alice = add_user(&server, "alice", "alice@example.org");
    let bob = add_user(&server, "bob", "bob@example.org");
    for (what, who) in [("disable", "alice"), ("enable", "alice"), ("disable", "bob")] {
        let out = server.cli(&["user", what, who], None);
        assert!(out.success, "{}", out.stderr);
    }
    let json = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["audit", "--json"];
        all.extend_from_slice(args);
        let out = server.cli(&all, None);
        assert!(out.success, "{}", out.stderr);
        out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let everything = json(&[]);
    assert!(everything.len() >= 3, "{everything:?}");
    assert!(
        everything.windows(2).all(|w| w[0]["id"].as_i64() > w[1]["id"].as_i64()),
        "newest first"
    );
    let disabled = json(&["--event", "account_disabled"]);
    let who: Vec<&str> = disabled.iter().map(|e| e["account_id"].as_str().unwrap()).collect();
    assert_eq!(who, [bob.as_str(), alice.as_str()]);
    assert!(disabled.iter().all(|e| e["detail"] == "cli"), "{disabled:?}");
    // By login name, as `user` takes it: alice's events only, the newest first, one page of one, then the next.
    let alices = json(&["--account", "alice"]);
    assert!(alices.iter().all(|e| e["account_id"] == alice.as_str()), "{alices:?}");
    let first = json(&["--account", "alice", "--limit", "1"]);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["event"], "account_enabled");
    let before = first[0]["id"].as_i64().unwrap().to_string();
    let next = json(&["--account", "alice", "--limit", "1", "--before", &before]);
    assert_eq!(next[0]["event"], "account_disabled");
    assert_eq!(json(&["--since-hours", "1"]).len(), everything.len());
    // The readable form names each field.
    let text = server.cli(&["audit", "--event", "account_enabled"], None);
    assert!(text.success);
    assert!(
        text.stdout.contains("account_enabled") && text.stdout.contains(&format!("account={alice}")),
        "{}",
        text.stdout
    );
    let bad = server.cli(&["audit", "--event", "nonsense"], None);
    assert!(!bad.success);
    assert!(
        bad.stderr.contains("unknown event `nonsense`") && bad.stderr.contains("account_disabled"),
        "{}",
        bad.stderr
    );
}

// --- Operator administration: user list|show|delete|unlink|end-sessions|groups (#15) ---

/// A server on SQLite whose cache keeps nothing: a command run in another process (which cannot announce to a
/// SQLite server) is seen by its very next request, so no test here waits.
fn sqlite_server(prefix: &str) -> (TempDir, Server, String) {
    let dir = TempDir::new(prefix);
    let url = format!("sqlite://{}/v.db", dir.0.display());
    let server = Server::start(
        Path::new(BIN),
        &dir.0,
        "[database]\nurl = \"sqlite://{dir}/v.db\"\n\n[session]\ncache_ttl_secs = 0\n",
    );
    (dir, server, url)
}

/// A browser signed in as `name` with its password.
async fn signed_in(server: &Server, name: &str) -> Browser {
    let mut b = Browser::new(&server.base);
    assert_eq!(b.sign_in("local", name, PASSWORD, "").await.status, 303);
    assert_eq!(b.get_json("/me").await.status, 200);
    b
}

/// `/me` with a bearer token: its status.
async fn bearer_status(server: &Server, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/me", server.base))
        .bearer_auth(token)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn json_lines(out: &vestibule_tests::server::CliOutput) -> Vec<serde_json::Value> {
    assert!(out.success, "{}{}", out.stdout, out.stderr);
    out.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `user list`: every account once over pages smaller than the list, in id order; a search that ignores case
/// and takes `%` and `_` literally; the readable table says how to get the next page.
#[tokio::test]
async fn user_list_pages_and_searches() {
    let (_dir, server, _) = sqlite_server("vestibule-list");
    let mut ids = Vec::new();
    for (name, email) in [
        ("alice", "alice@example.org"),
        ("bob", "bob@example.org"),
        ("carol", "carol@example.org"),
        ("dave", "dave@example.org"),
        ("per%cent_name", "pc@example.org"),
    ] {
        ids.push(add_user(&server, name, email));
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut args = vec!["user", "list", "--json", "--limit", "2"];
        if let Some(a) = &after {
            args.extend(["--after", a]);
        }
        let page = json_lines(&server.cli(&args, None));
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last["id"].as_str().unwrap().to_owned());
        seen.extend(page.iter().map(|a| a["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(seen, ids);
    let found = |text: &str| -> Vec<String> {
        json_lines(&server.cli(&["user", "list", "--json", "--search", text], None))
            .iter()
            .map(|a| a["identities"][0]["login"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(found("ALI"), ["alice"]);
    assert_eq!(found("CAROL@example"), ["carol"]);
    assert_eq!(found("%"), ["per%cent_name"]);
    assert_eq!(found("t_n"), ["per%cent_name"]);
    assert!(found("r_l").is_empty(), "`_` matched a character");
    let alice = &json_lines(&server.cli(&["user", "list", "--json", "--search", "alice"], None))[0];
    for key in [
        "id",
        "display_name",
        "email",
        "email_verified",
        "disabled",
        "created_at",
        "groups",
    ] {
        assert!(alice.get(key).is_some(), "{key} missing: {alice}");
    }
    assert_eq!(alice["identities"][0]["source"], "local");
    let table = server.cli(&["user", "list", "--limit", "2"], None);
    assert!(table.success, "{}", table.stderr);
    assert!(
        table.stdout.contains("ways in") && table.stdout.contains(&format!("--after {}", ids[1])),
        "{}",
        table.stdout
    );
    let bad = server.cli(&["user", "list", "--after", "not an id"], None);
    assert!(
        !bad.success && bad.stderr.contains("--after takes an account id"),
        "{}",
        bad.stderr
    );
}

/// `user show`: identities, groups, sessions (a hash prefix, never the cookie), tokens (never the value), factors
/// and recent audit, as text and as JSON.
#[tokio::test]
async fn user_show_prints_the_whole_account() {
    let (_dir, server, _) = sqlite_server("vestibule-show");
    let id = add_user(&server, "alice", "alice@example.org");
    let mut b = signed_in(&server, "alice").await;
    let token = b.create_token("ci", "read").await;
    let out = server.cli(&["user", "show", "alice", "--json"], None);
    let shown: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["identities"][0]["login"], "alice");
    assert_eq!(shown["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(shown["sessions"][0]["user_agent"], "e2e-browser");
    assert_eq!(shown["sessions"][0]["ip"], "127.0.0.1");
    assert_eq!(shown["tokens"][0]["name"], "ci");
    assert_eq!(shown["tokens"][0]["scopes"], serde_json::json!(["read"]));
    assert_eq!(shown["factors"]["totp"], false);
    assert_eq!(shown["factors"]["recovery_codes_left"], 0);
    let events: Vec<&str> = shown["recent_audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        events.contains(&"login_success") && events.contains(&"token_created") && events.contains(&"account_created"),
        "{events:?}"
    );
    let cookies = b.get("/account").await;
    let text = server.cli(&["user", "show", "alice"], None);
    assert!(text.success, "{}", text.stderr);
    for line in [
        "sessions: 1",
        "tokens: 1",
        "`ci` scopes read",
        "authenticator app: off",
        "recovery codes left: 0",
    ] {
        assert!(text.stdout.contains(line), "{line:?} missing from:\n{}", text.stdout);
    }
    // Neither output holds a secret: not the token, not the session cookie's value.
    let secret = &token[4..];
    assert!(!out.stdout.contains(secret) && !text.stdout.contains(secret));
    for c in cookies.set_cookies() {
        let value = c.split(';').next().unwrap().split('=').nth(1).unwrap_or("");
        assert!(value.len() < 16 || !text.stdout.contains(value), "{c}");
    }
}

/// `user delete`: without --yes nothing goes; with it the account's sign-in, session cookie and token stop
/// working at once, its rows are gone, its audit rows stay and `account_deleted` says who asked.
#[tokio::test]
async fn user_delete_removes_the_account_and_everything_it_holds() {
    let (_dir, server, url) = sqlite_server("vestibule-delete");
    let id = add_user(&server, "alice", "alice@example.org");
    add_user(&server, "bob", "bob@example.org");
    let mut b = Browser::new(&server.base);
    assert_eq!(b.sign_in_remembered("local", "alice", PASSWORD).await.status, 303);
    let token = b.create_token("ci", "read").await;

    let refused = server.cli(&["user", "delete", "alice"], None);
    assert!(!refused.success);
    assert!(
        refused.stdout.contains(&format!("would delete account {id}"))
            && refused.stdout.contains("sessions: 1")
            && refused.stdout.contains("personal access tokens: 1")
            && refused.stderr.contains("--yes"),
        "{}{}",
        refused.stdout,
        refused.stderr
    );
    assert_eq!(b.get_json("/me").await.status, 200, "nothing was deleted");

    let out = server.cli(&["user", "delete", "alice", "--yes"], None);
    assert!(out.success, "{}", out.stderr);
    assert!(out.stdout.contains(&format!("deleted account {id}")), "{}", out.stdout);
    assert_eq!(b.get_json("/me").await.status, 401, "the session cookie still works");
    assert_eq!(bearer_status(&server, &token).await, 401, "the token still works");
    let mut again = Browser::new(&server.base);
    assert_ne!(again.sign_in("local", "alice", PASSWORD, "").await.status, 303);
    let gone = server.cli(&["user", "show", &id], None);
    assert!(
        !gone.success && gone.stderr.contains("no account matches"),
        "{}",
        gone.stderr
    );

    let store = vestibule_store::Store::connect(&url).await.unwrap();
    let account = vestibule_core::AccountId::new(id.clone()).unwrap();
    assert!(store.get_account(&account).await.unwrap().is_none());
    assert!(store.identities_of(&account).await.unwrap().is_empty());
    assert!(store.sessions_of(&account).await.unwrap().is_empty());
    assert!(store.tokens_of(&account).await.unwrap().is_empty());
    let audit = store
        .query_audit(&vestibule_core::storage::AuditQuery {
            account_id: Some(id.clone()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.event == "login_success"),
        "the account's audit rows stay"
    );
    let deleted = audit.iter().find(|e| e.event == "account_deleted").unwrap();
    assert!(deleted.detail.as_deref().unwrap().starts_with("cli; "), "{deleted:?}");
    // Bob is untouched.
    signed_in(&server, "bob").await;
    // An email two accounts share names neither: refused with both ids, both accounts stay.
    let dave = add_user(&server, "dave", "shared@example.org");
    let erin = add_user(&server, "erin", "Shared@Example.org");
    let out = server.cli(&["user", "delete", "shared@example.org", "--yes"], None);
    assert!(!out.success, "{}", out.stdout);
    assert!(
        out.stderr.contains(&dave) && out.stderr.contains(&erin) && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    signed_in(&server, "dave").await;
    signed_in(&server, "erin").await;
}

/// `user unlink`: removing the password ends the sessions it opened and the password sign-in; the last way in
/// is refused with a pointer to `user delete`.
#[tokio::test]
async fn user_unlink_removes_one_way_in_but_never_the_last() {
    let (_dir, server, url) = sqlite_server("vestibule-unlink");
    let id = add_user(&server, "alice", "alice@example.org");
    let store = vestibule_store::Store::connect(&url).await.unwrap();
    let account = vestibule_core::AccountId::new(id.clone()).unwrap();
    let github = vestibule_core::ExternalIdentity::new(
        vestibule_core::SourceId::new("github").unwrap(),
        vestibule_core::Subject::new("583231").unwrap(),
    );
    store
        .link_identity(&github, &account, vestibule_core::Timestamp(0))
        .await
        .unwrap();
    let mut b = signed_in(&server, "alice").await;

    let missing = server.cli(&["user", "unlink", &id, "github:999"], None);
    assert!(
        !missing.success && missing.stderr.contains("has no identity github:999"),
        "{}",
        missing.stderr
    );
    let malformed = server.cli(&["user", "unlink", &id, "github"], None);
    assert!(
        !malformed.success && malformed.stderr.contains("SOURCE:SUBJECT"),
        "{}",
        malformed.stderr
    );

    let local = format!("local:{id}");
    let out = server.cli(&["user", "unlink", "alice", &local], None);
    assert!(out.success, "{}", out.stderr);
    assert!(out.stdout.contains("1 session(s)"), "{}", out.stdout);
    assert_eq!(
        b.get_json("/me").await.status,
        401,
        "the session the password opened still works"
    );
    let mut again = Browser::new(&server.base);
    assert_ne!(again.sign_in("local", "alice", PASSWORD, "").await.status, 303);

    let last = server.cli(&["user", "unlink", &id, "github:583231"], None);
    assert!(!last.success);
    assert!(
        last.stderr.contains("last way into account") && last.stderr.contains("vestibule user delete"),
        "{}",
        last.stderr
    );
    let identities = store.identities_of(&account).await.unwrap();
    assert_eq!(identities.len(), 1, "{identities:?}");
    let audit = store.recent_audit(20).await.unwrap();
    assert!(
        audit.iter().any(|e| e.event == "identity_unlinked"
            && e.subject.as_deref() == Some(id.as_str())
            && e.detail.as_deref() == Some("cli")),
        "{audit:?}"
    );
}

/// `user end-sessions`: every session and remember-me series ends (the account still signs in); tokens only
/// with --tokens.
#[tokio::test]
async fn user_end_sessions_ends_sessions_and_with_tokens_tokens() {
    let (_dir, server, _) = sqlite_server("vestibule-end");
    add_user(&server, "alice", "alice@example.org");
    let mut one = signed_in(&server, "alice").await;
    let mut two = Browser::new(&server.base);
    assert_eq!(two.sign_in_remembered("local", "alice", PASSWORD).await.status, 303);
    let token = one.create_token("ci", "read").await;

    let out = server.cli(&["user", "end-sessions", "alice"], None);
    assert!(out.success, "{}", out.stderr);
    assert!(out.stdout.contains("2 session(s) ended"), "{}", out.stdout);
    assert_eq!(one.get_json("/me").await.status, 401);
    // The remember-me cookie does not bring the session back: its series ended too.
    assert_eq!(two.get_json("/me").await.status, 401);
    assert_eq!(
        bearer_status(&server, &token).await,
        200,
        "tokens stay without --tokens"
    );

    let out = server.cli(&["user", "end-sessions", "alice", "--tokens"], None);
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stdout.contains("0 session(s) and 1 token(s) ended"),
        "{}",
        out.stdout
    );
    assert_eq!(bearer_status(&server, &token).await, 401);
    signed_in(&server, "alice").await;
    let audit = json_lines(&server.cli(&["audit", "--json", "--event", "sessions_revoked"], None));
    assert_eq!(audit[0]["detail"], "cli; all sessions and 1 token(s)");
    assert_eq!(audit[1]["detail"], "cli; all sessions");
}

/// `user groups`: assigned groups show in /me and /verify, survive a local sign-in, change by --add, --remove
/// and --clear, are audited with before and after; bad names and accounts without a password are refused.
#[tokio::test]
async fn user_groups_are_assigned_to_local_accounts_and_survive_sign_in() {
    let (_dir, server, url) = sqlite_server("vestibule-groups");
    let id = add_user(&server, "alice", "alice@example.org");
    let mut before = signed_in(&server, "alice").await;

    let out = server.cli(&["user", "groups", "alice", "--set", "ops,admins"], None);
    assert!(out.success, "{}", out.stderr);
    assert!(out.stdout.contains("were [], are now [admins,ops]"), "{}", out.stdout);
    // A session from before the change sees them at its next request.
    assert_eq!(
        before.get_json("/me").await.json()["groups"],
        serde_json::json!(["admins", "ops"])
    );
    // A local sign-in keeps them, in /me and in /verify's header.
    let mut b = signed_in(&server, "alice").await;
    assert_eq!(
        b.get_json("/me").await.json()["groups"],
        serde_json::json!(["admins", "ops"])
    );
    let verify = b.get("/verify").await;
    assert_eq!(verify.status, 200);
    assert_eq!(verify.header("x-vestibule-groups"), Some("admins,ops"));

    let step = |args: &[&str]| {
        let mut all = vec!["user", "groups", "alice", "--json"];
        all.extend_from_slice(args);
        json_lines(&server.cli(&all, None)).remove(0)
    };
    assert_eq!(
        step(&["--add", "dev"])["after"],
        serde_json::json!(["admins", "dev", "ops"])
    );
    assert_eq!(
        step(&["--remove", "ops"])["after"],
        serde_json::json!(["admins", "dev"])
    );
    let shown = step(&[]);
    assert_eq!(shown["assigned_groups"], serde_json::json!(["admins", "dev"]));
    assert_eq!(step(&["--clear"])["after"], serde_json::json!([]));
    assert_eq!(b.get_json("/me").await.json()["groups"], serde_json::json!([]));

    let bad = server.cli(&["user", "groups", "alice", "--add", "cn=admins dc=x"], None);
    assert!(
        !bad.success && bad.stderr.contains("invalid group name"),
        "{}",
        bad.stderr
    );
    let both = server.cli(&["user", "groups", "alice", "--add", "a", "--clear"], None);
    assert!(!both.success, "two changes at once were accepted");

    // An account that signs in elsewhere only: its groups are its source's.
    let store = vestibule_store::Store::connect(&url).await.unwrap();
    let github = vestibule_core::ExternalIdentity::new(
        vestibule_core::SourceId::new("github").unwrap(),
        vestibule_core::Subject::new("583231").unwrap(),
    );
    let other = store
        .create_account_for_identity(&github, false, vestibule_core::Timestamp(0))
        .await
        .unwrap();
    let refused = server.cli(&["user", "groups", other.as_str(), "--set", "admins"], None);
    assert!(
        !refused.success && refused.stderr.contains("no local password"),
        "{}",
        refused.stderr
    );

    let audit = json_lines(&server.cli(&["audit", "--json", "--event", "groups_changed"], None));
    assert_eq!(audit.len(), 4, "{audit:?}");
    assert!(audit.iter().all(|e| e["account_id"] == id.as_str()));
    assert_eq!(audit[3]["detail"], "cli; before []; after [admins,ops]");
}

/// Assigned groups count for the second-factor policy: once `admins` is assigned under `required_for_groups`,
/// the password alone no longer opens a session, and a single-factor session from before ends.
#[tokio::test]
async fn assigned_groups_count_for_the_second_factor_policy() {
    let dir = TempDir::new("vestibule-groups-2fa");
    let server = Server::start(
        Path::new(BIN),
        &dir.0,
        "[database]\nurl = \"sqlite://{dir}/v.db\"\n\n[session]\ncache_ttl_secs = 0\n\n\
         [second_factor]\npolicy = \"required_for_groups\"\ngroups = [\"admins\"]\n",
    );
    add_user(&server, "alice", "alice@example.org");
    let mut before = Browser::new(&server.base);
    let res = before.sign_in("local", "alice", PASSWORD, "/me").await;
    assert_eq!(
        res.location(),
        Some("/me"),
        "not yet in the group: the password suffices"
    );
    assert_eq!(before.get_json("/me").await.status, 200);

    let out = server.cli(&["user", "groups", "alice", "--add", "admins"], None);
    assert!(out.success, "{}", out.stderr);
    assert_eq!(
        before.get_json("/me").await.status,
        401,
        "the single-factor session lives on"
    );
    let mut after = Browser::new(&server.base);
    let res = after.sign_in("local", "alice", PASSWORD, "/me").await;
    assert_eq!(res.location(), Some("/login/second-factor"), "{}", res.body);
}

/// On PostgreSQL a running server whose cache would keep sessions for an hour refuses them at once after
/// `end-sessions` and `delete`: both announce what they ended, as `disable` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_sessions_and_delete_are_announced_to_running_servers() {
    let pg = TempDatabase::create().await;
    let dir = TempDir::new("vestibule-announce");
    let config = format!("[database]\nurl = \"{}\"\n\n[session]\ncache_ttl_secs = 3600\n", pg.url);
    let server = Server::start(Path::new(BIN), &dir.0, &config);
    add_user(&server, "alice", "alice@example.org");
    add_user(&server, "bob", "bob@example.org");
    let mut alice = signed_in(&server, "alice").await;
    let mut bob = signed_in(&server, "bob").await;
    let token = bob.create_token("ci", "read").await;
    assert_eq!(bearer_status(&server, &token).await, 200);

    let out = server.cli(&["user", "end-sessions", "alice"], None);
    assert!(out.success, "{}", out.stderr);
    until_signed_out(&mut alice, "end-sessions").await;
    assert_eq!(bob.get_json("/me").await.status, 200, "another account's session ended");

    let out = server.cli(&["user", "delete", "bob", "--yes"], None);
    assert!(out.success, "{}", out.stderr);
    until_signed_out(&mut bob, "delete").await;
    let started = Instant::now();
    while bearer_status(&server, &token).await != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the deleted account's token still works"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `[ui]` is checked as `serve` would load it: a template override that does not compile is refused with its file
/// and line, a file that is no built-in template's name is refused, and so is a missing, unsupported or oversized
/// logo; a good set passes.
#[test]
fn check_config_refuses_broken_ui_overrides_with_file_and_line() {
    let dir = TempDir::new("vestibule-ui");
    let templates = dir.0.join("templates");
    std::fs::create_dir(&templates).unwrap();
    let logo = dir.0.join("logo.svg");
    std::fs::write(&logo, "<svg xmlns=\"http://www.w3.org/2000/svg\"/>").unwrap();
    let config = |logo: &Path| {
        format!(
            "[ui]\nproduct_name = \"Acme\"\nlogo = {:?}\ntemplates = {:?}\n",
            logo.display().to_string(),
            templates.display().to_string()
        )
    };

    std::fs::write(
        templates.join("base.html"),
        "<!doctype html>\n<title>{% block title %}{% endblock %}</title>\n{% block content %}{% endblock %}\n",
    )
    .unwrap();
    let (ok, out) = check(&config(&logo));
    assert!(ok, "{out}");

    // Line 3 has a stray parenthesis.
    std::fs::write(
        templates.join("base.html"),
        "<!doctype html>\n<title>{% block title %}{% endblock %}</title>\n<p>{{ ui.product_name ) }}</p>\n{% block content %}{% endblock %}\n",
    )
    .unwrap();
    let (ok, out) = check(&config(&logo));
    let expected = format!(
        "`ui.templates`: {}:3: syntax error",
        templates.join("base.html").display()
    );
    assert!(!ok && out.contains(&expected), "{out}");
    std::fs::remove_file(templates.join("base.html")).unwrap();

    std::fs::write(templates.join("lgoin.html"), "{{ x }}").unwrap();
    let (ok, out) = check(&config(&logo));
    assert!(
        !ok && out.contains("lgoin.html: not the name of a built-in template"),
        "{out}"
    );
    std::fs::remove_file(templates.join("lgoin.html")).unwrap();

    let (ok, out) = check(&config(&dir.0.join("missing.svg")));
    assert!(
        !ok && out.contains("`ui.logo`") && out.contains("cannot read the logo"),
        "{out}"
    );
    let gif = dir.0.join("logo.gif");
    std::fs::write(&gif, "GIF89a").unwrap();
    let (ok, out) = check(&config(&gif));
    assert!(!ok && out.contains("a logo must be a .svg or .png file"), "{out}");
    let big = dir.0.join("big.png");
    std::fs::write(&big, vec![0u8; vestibule_axum::MAX_LOGO_BYTES + 1]).unwrap();
    let (ok, out) = check(&config(&big));
    assert!(!ok && out.contains("at most"), "{out}");

    let (ok, out) = check("[ui]\nproduct_name = \"  \"\n");
    assert!(
        !ok && out.contains("`ui.product_name`: must be 1 to 100 characters"),
        "{out}"
    );
}
