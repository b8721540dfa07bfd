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
