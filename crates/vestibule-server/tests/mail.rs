//! End-to-end mail: the real `vestibule` binary mailing a real SMTP server (Python aiosmtpd on loopback, see
//! `vestibule_tests::smtp`), and the development outbox of the embedded defaults. Each test reads the message that
//! arrived, follows its link, and finishes what it offers.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use vestibule_tests::browser::Browser;
use vestibule_tests::browser::Page;
use vestibule_tests::server::{Server, TempDir};
use vestibule_tests::smtp::{link_in, wait_for_eml, SinkOptions, SmtpSink};

const BIN: &str = env!("CARGO_BIN_EXE_vestibule");
const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "a brand new password";
/// The public URL configured where a test sets one: the server binds a free port, and links must name this URL
/// (never the `Host` a request came with).
const PUBLIC: &str = "http://id.example.test";

/// The path of a link under `base`, to follow it on the test's own server address.
fn path_of(link: &str, base: &str) -> String {
    link.strip_prefix(base)
        .unwrap_or_else(|| panic!("{link} is not under {base}"))
        .to_owned()
}

/// `user add NAME --email E` (not verified: a confirmation link is mailed).
fn add_unverified(server: &Server, name: &str, email: &str) {
    let out = server.cli(
        &["user", "add", name, "--email", email, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.success, "user add failed: {}", out.stderr);
    assert!(out.stdout.contains("confirmation link was sent"), "{}", out.stdout);
}

/// `user add alice --email alice@example.org --email-verified`: nothing is mailed.
fn add_verified(server: &Server) {
    add_verified_as(server, "alice", "alice@example.org");
}

/// `user add NAME --email EMAIL --email-verified` (password [`PASSWORD`]).
fn add_verified_as(server: &Server, name: &str, email: &str) {
    let out = server.cli(
        &[
            "user",
            "add",
            name,
            "--email",
            email,
            "--email-verified",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.success, "{}", out.stderr);
    assert!(!out.stdout.contains("confirmation"), "{}", out.stdout);
}

/// A configuration mailing `sink`, with [`PUBLIC`] as the public URL and SQLite in the test's folder; `extra`
/// TOML goes at the end.
fn sink_config(sink: &SmtpSink, extra: &str) -> String {
    format!(
        "[server]\npublic_url = \"{PUBLIC}\"\n[database]\nurl = \"sqlite://{{dir}}/v.db\"\n\
         [email]\nfrom = \"Vestibule <id@example.org>\"\nsmtp_url = \"smtp://127.0.0.1:{}?tls=none\"\n{extra}",
        sink.port
    )
}

/// A server mailing a sink of its own, in a folder of its own.
struct Mailed {
    dir: TempDir,
    sink: SmtpSink,
    server: Server,
}

/// Starts a sink and a server mailing it ([`sink_config`] with `extra`).
fn mailed(extra: &str) -> Mailed {
    let sink = SmtpSink::start(SinkOptions::default());
    let dir = TempDir::new("vestibule-mail");
    let server = Server::start(Path::new(BIN), &dir.0, &sink_config(&sink, extra));
    Mailed { dir, sink, server }
}

/// A new browser signed in as `name` with [`PASSWORD`]: a fresh session.
async fn signed_in_as(server: &Server, name: &str) -> Browser {
    let mut b = Browser::new(&server.base);
    let res = b.sign_in("local", name, PASSWORD, "").await;
    assert_eq!(res.status, 303, "{}", res.body);
    b
}

/// Asks from the account page to change the address to `email`; returns the answer.
async fn ask_email_change(b: &mut Browser, email: &str) -> Page {
    let token = b.get("/account").await.csrf_token().unwrap();
    b.post("/account/email", &[("csrf_token", &token), ("email", email)])
        .await
}

/// The audit log's event names for the server's SQLite database, oldest first.
async fn audit_events(dir: &Path) -> Vec<String> {
    let store = vestibule_store::Store::connect(&format!("sqlite://{}/v.db", dir.display()))
        .await
        .unwrap();
    let mut events: Vec<String> = store
        .recent_audit(500)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    store.close().await;
    events.reverse();
    events
}

/// Asks for a reset of `login` from a fresh browser; returns the page.
async fn ask_reset(server: &Server, login: &str, extra_headers: &[(&str, &str)]) -> vestibule_tests::browser::Page {
    let mut b = Browser::new(&server.base);
    let form = b.get("/reset").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let token = form.csrf_token().unwrap();
    b.post_with("/reset", &[("csrf_token", &token), ("login", login)], extra_headers)
        .await
}

/// Follows a reset link as a browser does: the link moves its token into a cookie and redirects to the form's
/// token-free address; then the new password. Returns the final page.
async fn finish_reset(server: &Server, public: &str, link: &str, password: &str) -> vestibule_tests::browser::Page {
    let mut b = Browser::new(&server.base);
    let path = path_of(link, public);
    let opened = b.get(&path).await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    assert_eq!(opened.header("referrer-policy"), Some("no-referrer"));
    let to = opened.location().unwrap().to_owned();
    let token = path.rsplit('/').next().unwrap();
    assert!(!to.contains(token), "{to}");
    assert!(b.cookies.contains_key("vestibule-reset"), "{:?}", opened.set_cookies());
    let form = b.get(&to).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert_eq!(form.header("referrer-policy"), Some("no-referrer"));
    assert!(!form.body.contains(token));
    let csrf = form.csrf_token().unwrap();
    b.post(&to, &[("csrf_token", &csrf), ("new_password", password)]).await
}

async fn signs_in(server: &Server, password: &str) -> bool {
    let mut b = Browser::new(&server.base);
    b.sign_in("local", "alice", password, "").await.status == 303
}

#[tokio::test]
async fn confirm_then_reset_over_smtp_ends_every_session() {
    let Mailed {
        dir: _dir,
        sink,
        server,
    } = mailed("");
    add_unverified(&server, "alice", "alice@example.org");
    let mut early = Browser::new(&server.base);
    assert_eq!(early.sign_in("local", "alice", PASSWORD, "").await.status, 303);
    let page = early.get("/account").await.body;
    assert!(page.contains("alice@example.org (not confirmed"), "{page}");

    // (That an unconfirmed address gets no reset link is the broker test `a_confirmation_link_verifies_the_address_once`:
    // here the lookup runs after the answer, so a race with the confirmation below could not be ruled out.)
    let confirm = sink.wait_for(|m| m.contains("Subject: Confirm your email address"));
    assert!(confirm.contains("X-Envelope-To: alice@example.org"), "{confirm}");
    let link = link_in(&confirm, PUBLIC, "email/verify").unwrap_or_else(|| panic!("{confirm}"));
    let mut b = Browser::new(&server.base);
    let confirmed = b.get(&path_of(&link, PUBLIC)).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert!(
        confirmed.body.contains("alice@example.org is confirmed"),
        "{}",
        confirmed.body
    );
    assert_eq!(b.get(&path_of(&link, PUBLIC)).await.status, 400, "single use");
    let page = early.get("/account").await.body;
    assert!(
        page.contains("alice@example.org") && !page.contains("not confirmed"),
        "{page}"
    );
    assert!(!sink
        .messages()
        .iter()
        .any(|m| m.contains("Subject: Reset your password")));

    // Two sessions; then a reset asked with a forged Host: the link still names the configured public URL.
    let mut here = Browser::new(&server.base);
    assert_eq!(here.sign_in("local", "alice", PASSWORD, "").await.status, 303);
    let mut there = Browser::new(&server.base);
    assert_eq!(there.sign_in("local", "alice", PASSWORD, "").await.status, 303);
    let forged = [("host", "evil.example"), ("x-forwarded-host", "evil.example")];
    assert_eq!(ask_reset(&server, "alice@example.org", &forged).await.status, 200);
    let mail = sink.wait_for(|m| m.contains("Subject: Reset your password"));
    assert!(!mail.contains("evil.example"), "{mail}");
    let link = link_in(&mail, PUBLIC, "reset").unwrap_or_else(|| panic!("a link under the public URL: {mail}"));

    // A password the policy refuses keeps the link; a good one sets it and ends both sessions.
    let short = finish_reset(&server, PUBLIC, &link, "short").await;
    assert_eq!(short.status, 400);
    assert!(short.body.contains("at least 8 characters"), "{}", short.body);
    let done = finish_reset(&server, PUBLIC, &link, NEW_PASSWORD).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Password set"), "{}", done.body);
    assert_eq!(here.get_json("/me").await.status, 401);
    assert_eq!(early.get_json("/me").await.status, 401);
    assert_eq!(there.get_json("/me").await.status, 401);
    assert_eq!(
        Browser::new(&server.base).get(&path_of(&link, PUBLIC)).await.status,
        400,
        "used up"
    );

    assert!(!signs_in(&server, PASSWORD).await);
    assert!(signs_in(&server, NEW_PASSWORD).await);
    sink.wait_for(|m| m.contains("Subject: Your password was reset"));
}

#[tokio::test]
async fn the_reset_answer_is_the_same_for_every_input() {
    let sink = SmtpSink::start(SinkOptions::default());
    let dir = TempDir::new("vestibule-mail");
    let config = format!(
        "[database]\nurl = \"sqlite://{{dir}}/v.db\"\n[email]\nsmtp_url = \"smtp://127.0.0.1:{}?tls=none\"\n",
        sink.port
    );
    let server = Server::start(Path::new(BIN), &dir.0, &config);
    add_verified(&server);
    // One browser, so that the CSRF token in the page is the same too: the whole body must match.
    let mut b = Browser::new(&server.base);
    let token = b.get("/reset").await.csrf_token().unwrap();
    let mut bodies = Vec::new();
    for login in ["alice", "nobody", "alice@example.org", "nobody@example.org", ""] {
        let page = b.post("/reset", &[("csrf_token", &token), ("login", login)]).await;
        assert_eq!(page.status, 200, "{login}: {}", page.body);
        bodies.push(page.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    // Only the two that name alice mailed her.
    assert_eq!(sink.wait_for_count("Reset your password", "alice@example.org", 2), 2);
    assert!(sink
        .messages()
        .iter()
        .all(|m| m.contains("X-Envelope-To: alice@example.org")));
}

#[tokio::test]
async fn starttls_with_authentication_and_a_private_ca() {
    let sink = SmtpSink::start(SinkOptions {
        starttls: true,
        auth: Some(("mailer".into(), "mail secret".into())),
    });
    let dir = TempDir::new("vestibule-mail");
    std::fs::write(dir.0.join("smtp-password"), "mail secret\n").unwrap();
    let config = format!(
        "[database]\nurl = \"sqlite://{{dir}}/v.db\"\n[email]\nsmtp_url = \"smtp://mailer@localhost:{}\"\n\
         password_file = \"{{dir}}/smtp-password\"\nca_file = \"{}\"\n",
        sink.port,
        sink.ca_file().display()
    );
    let server = Server::start(Path::new(BIN), &dir.0, &config);
    add_unverified(&server, "alice", "alice@example.org");
    let confirm = sink.wait_for(|m| m.contains("Subject: Confirm your email address"));
    assert!(
        confirm.contains("X-Sink-TLS: yes") && confirm.contains("X-Sink-Auth: yes"),
        "{confirm}"
    );
}

#[tokio::test]
async fn the_embedded_defaults_reset_through_the_outbox() {
    let dir = TempDir::new("vestibule-outbox");
    let server = Server::start_embedded(Path::new(BIN), &dir.0);
    add_verified(&server);
    let login = Browser::new(&server.base).get("/login").await;
    assert!(login.body.contains("/reset\">Forgot your password?"), "{}", login.body);
    assert_eq!(ask_reset(&server, "alice", &[]).await.status, 200);
    let outbox = dir.0.join("vestibule-outbox");
    let mail = wait_for_eml(&outbox, |m| m.contains("Subject: Reset your password"));
    let link = link_in(&mail, &server.base, "reset").unwrap();
    assert_eq!(
        finish_reset(&server, &server.base, &link, NEW_PASSWORD).await.status,
        200
    );
    assert!(signs_in(&server, NEW_PASSWORD).await);
    wait_for_eml(&outbox, |m| m.contains("Subject: Your password was reset"));
}

#[tokio::test]
async fn an_address_change_waits_for_the_new_address_and_tells_the_old_one() {
    let Mailed { dir, sink, server } = mailed("");
    add_verified(&server);
    let mut b = signed_in_as(&server, "alice").await;
    assert!(b.get("/account").await.body.contains("/account/email\""));

    // Without its CSRF token the form does nothing.
    let forged = b.post("/account/email", &[("email", "mallory@example.org")]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(!b.get("/account").await.body.contains("mallory@example.org"));

    // The new address gets a link; the old one a notice naming the new one masked; nothing changes yet.
    let asked = ask_email_change(&mut b, "nora@example.org").await;
    assert_eq!(asked.status, 303, "{}", asked.body);
    assert_eq!(asked.location(), Some("/account?done=email_change_sent"));
    let confirm = sink.wait_for_mail("Confirm your new email address", "nora@example.org");
    let first_link = link_in(&confirm, PUBLIC, "email/verify").unwrap_or_else(|| panic!("{confirm}"));
    let notice = sink.wait_for_mail("A change of your email address was requested", "alice@example.org");
    assert!(
        notice.contains("n***@example.org") && !notice.contains("nora@"),
        "{notice}"
    );
    let page = b.get("/account").await.body;
    assert!(
        page.contains("Waiting for confirmation: nora@example.org (pending"),
        "{page}"
    );
    assert!(
        page.contains("alice@example.org") && !page.contains("not confirmed"),
        "{page}"
    );
    assert_eq!(b.get_json("/me").await.json()["email"], "alice@example.org");
    assert_eq!(
        b.get("/verify").await.header("x-vestibule-email"),
        Some("alice@example.org")
    );

    // The pending address is nobody's yet: a reset asked for it mails nothing there (checked at the end: it is
    // never confirmed, so no ordering of the background lookup could make this pass wrongly).
    assert_eq!(ask_reset(&server, "nora@example.org", &[]).await.status, 200);

    // A newer request replaces it: the first link opens nothing.
    assert_eq!(ask_email_change(&mut b, "olga@example.org").await.status, 303);
    let confirm = sink.wait_for_mail("Confirm your new email address", "olga@example.org");
    let link = link_in(&confirm, PUBLIC, "email/verify").unwrap_or_else(|| panic!("{confirm}"));
    let page = b.get("/account").await.body;
    assert!(
        page.contains("olga@example.org (pending") && !page.contains("nora@example.org"),
        "{page}"
    );
    // Opened in another browser, signed out: the link is the proof. Superseded first, then once, then never.
    let mut elsewhere = Browser::new(&server.base);
    let superseded = elsewhere.get(&path_of(&first_link, PUBLIC)).await;
    assert_eq!(superseded.status, 400, "{}", superseded.body);
    // Opening the link (as a mail scanner or a link preview would) changes nothing: it shows a button.
    let path = path_of(&link, PUBLIC);
    let opened = elsewhere.get(&path).await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    assert!(
        opened.body.contains("Confirm the change") && opened.body.contains("olga@example.org"),
        "{}",
        opened.body
    );
    assert_eq!(
        elsewhere.get(&path).await.status,
        200,
        "opening it again still shows the button"
    );
    assert_eq!(
        b.get_json("/me").await.json()["email"],
        "alice@example.org",
        "changed by a GET"
    );
    let forged = elsewhere.post(&path, &[]).await;
    assert_eq!(forged.status, 403, "without its CSRF token: {}", forged.body);
    let done = elsewhere
        .post(&path, &[("csrf_token", &opened.csrf_token().unwrap())])
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("olga@example.org is confirmed"), "{}", done.body);
    assert_eq!(elsewhere.get(&path).await.status, 400, "single use");
    let again = elsewhere
        .post(&path, &[("csrf_token", &opened.csrf_token().unwrap())])
        .await;
    assert_eq!(again.status, 400, "single use: {}", again.body);

    // The old address hears of it; the account has the new one, verified; this session goes on and shows it.
    let changed = sink.wait_for_mail("Your email address was changed", "alice@example.org");
    assert!(changed.contains("o***@example.org"), "{changed}");
    assert_eq!(b.get_json("/me").await.json()["email"], "olga@example.org");
    // So does /verify (the change drops the account's cached sessions on every node).
    assert_eq!(
        b.get("/verify").await.header("x-vestibule-email"),
        Some("olga@example.org")
    );
    let page = b.get("/account").await.body;
    assert!(
        page.contains("olga@example.org")
            && !page.contains("Waiting for confirmation")
            && !page.contains("not confirmed"),
        "{page}"
    );

    // Reset mail now goes to the new address only.
    assert_eq!(ask_reset(&server, "alice", &[]).await.status, 200);
    sink.wait_for_mail("Reset your password", "olga@example.org");
    assert_eq!(sink.count("Reset your password", "alice@example.org"), 0);
    assert_eq!(sink.count("Reset your password", "nora@example.org"), 0);
    let events = audit_events(&dir.0).await;
    let change: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|e| e.starts_with("email_change"))
        .collect();
    assert_eq!(
        change,
        ["email_change_requested", "email_change_requested", "email_changed"],
        "{events:?}"
    );
}

#[tokio::test]
async fn a_stale_session_cannot_change_the_address() {
    let Mailed {
        dir: _dir,
        sink,
        server,
    } = mailed("");
    add_verified(&server);
    // A session restored from remember-me is not fresh.
    let mut b = Browser::new(&server.base);
    assert_eq!(b.sign_in_remembered("local", "alice", PASSWORD).await.status, 303);
    b.cookies.remove("vestibule-session");
    let refused = ask_email_change(&mut b, "mallory@example.org").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("sign in again"), "{}", refused.body);
    assert!(!b.get("/account").await.body.contains("mallory@example.org"));
    // Signing in again makes it fresh. The queue delivers in order: had the refused request mailed anything, it
    // would have arrived before this.
    assert_eq!(b.sign_in("local", "alice", PASSWORD, "").await.status, 303);
    assert_eq!(ask_email_change(&mut b, "nora@example.org").await.status, 303);
    sink.wait_for_mail("Confirm your new email address", "nora@example.org");
    sink.wait_for_mail("A change of your email address was requested", "alice@example.org");
    assert!(
        sink.messages()
            .iter()
            .all(|m| !m.contains("mallory@example.org") && !m.contains("m***@")),
        "{:?}",
        sink.messages()
    );
    assert_eq!(
        sink.count("A change of your email address was requested", "alice@example.org"),
        1
    );
}

#[tokio::test]
async fn another_accounts_address_is_not_revealed_to_the_requester() {
    let Mailed {
        dir: _dir,
        sink,
        server,
    } = mailed("");
    add_verified(&server);
    add_verified_as(&server, "bob", "bob@example.org");
    let mut b = signed_in_as(&server, "alice").await;

    // Bob's address and a free one: the same answer, the same page (but for the address typed).
    let taken = ask_email_change(&mut b, "bob@example.org").await;
    let taken_page = b.get("/account").await.body;
    let free = ask_email_change(&mut b, "carol@example.org").await;
    let free_page = b.get("/account").await.body;
    assert_eq!((taken.status, taken.location()), (free.status, free.location()));
    assert_eq!(taken_page.replace("bob@", "carol@"), free_page);
    // Only the mailbox learns it: Bob's gets no link, only a message saying the address is taken.
    let in_use = sink.wait_for_mail("This email address is already in use", "bob@example.org");
    assert!(link_in(&in_use, PUBLIC, "email/verify").is_none(), "{in_use}");
    assert_eq!(sink.count("Confirm your new email address", "bob@example.org"), 0);
    assert_eq!(
        sink.wait_for_count("A change of your email address was requested", "alice@example.org", 2),
        2
    );

    // An address another account confirms after the link was mailed: the link changes nothing, and says why to
    // its holder (who reads that mailbox).
    let confirm = sink.wait_for_mail("Confirm your new email address", "carol@example.org");
    let link = link_in(&confirm, PUBLIC, "email/verify").unwrap_or_else(|| panic!("{confirm}"));
    add_verified_as(&server, "carol", "carol@example.org");
    let mut elsewhere = Browser::new(&server.base);
    let path = path_of(&link, PUBLIC);
    let opened = elsewhere.get(&path).await;
    let refused = elsewhere
        .post(&path, &[("csrf_token", &opened.csrf_token().unwrap())])
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("already another account"), "{}", refused.body);
    assert_eq!(b.get_json("/me").await.json()["email"], "alice@example.org");
    assert_eq!(sink.count("Your email address was changed", "alice@example.org"), 0);
}

#[tokio::test]
async fn a_replayed_remember_me_cookie_is_reported_to_the_verified_address() {
    // No grace window: the replay right after the owner's use counts as theft.
    let Mailed { dir, sink, server } = mailed("[session]\nremember_grace_secs = 0\n");
    add_verified(&server);
    let mut owner = Browser::new(&server.base);
    assert_eq!(owner.sign_in_remembered("local", "alice", PASSWORD).await.status, 303);
    let mut thief = Browser::new(&server.base);
    thief
        .cookies
        .insert("vestibule-remember".into(), owner.cookies["vestibule-remember"].clone());
    // The owner comes back (session cookie gone): restored, the token rotates; then the copy is replayed.
    owner.cookies.remove("vestibule-session");
    assert_eq!(owner.get_json("/me").await.status, 200);
    assert_eq!(thief.get_json("/me").await.status, 401);
    let notice = sink.wait_for_mail("Your sessions were signed out", "alice@example.org");
    assert!(notice.contains("stolen copy"), "{notice}");
    assert!(audit_events(&dir.0).await.iter().any(|e| e == "remember_theft"));
}

#[tokio::test]
async fn the_outbox_keeps_only_its_retention() {
    let dir = TempDir::new("vestibule-outbox");
    let outbox = dir.0.join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    // Messages an earlier run left: two from long ago, three recent; and a file that is not the outbox's.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let name = |age_ms: u128, n: u64| format!("{}-{n:016x}.eml", now - age_ms);
    let day = 86_400_000;
    for (age, n) in [(30 * day, 1), (10 * day, 2), (3_000, 3), (2_000, 4), (1_000, 5)] {
        std::fs::write(outbox.join(name(age, n)), "Subject: old\r\n\r\nx").unwrap();
    }
    std::fs::write(outbox.join("README.txt"), "mine").unwrap();
    let config = format!(
        "[database]\nurl = \"sqlite://{{dir}}/v.db\"\n[email]\noutbox_dir = \"{}\"\n\
         outbox_max_age_hours = 168\noutbox_max_files = 2\n",
        outbox.display()
    );
    // The janitor runs once at start, then every five minutes.
    let _server = Server::start(Path::new(BIN), &dir.0, &config);
    let left = || {
        let mut v: Vec<String> = std::fs::read_dir(&outbox)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while left().len() > 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "not pruned within 20 s: {:?}",
            left()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut expected = vec![name(2_000, 4), name(1_000, 5), "README.txt".to_owned()];
    expected.sort();
    assert_eq!(left(), expected);
}
