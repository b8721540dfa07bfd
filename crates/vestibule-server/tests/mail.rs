//! End-to-end mail: the real `vestibule` binary mailing a real SMTP server (Python aiosmtpd on loopback, see
//! `vestibule_tests::smtp`), and the development outbox of the embedded defaults. Each test reads the message that
//! arrived, follows its link, and finishes what it offers.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use vestibule_tests::browser::Browser;
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
    let out = server.cli(
        &[
            "user",
            "add",
            "alice",
            "--email",
            "alice@example.org",
            "--email-verified",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.success, "{}", out.stderr);
    assert!(!out.stdout.contains("confirmation"), "{}", out.stdout);
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

/// Follows a reset link: the form, then the new password. Returns the final page.
async fn finish_reset(server: &Server, public: &str, link: &str, password: &str) -> vestibule_tests::browser::Page {
    let mut b = Browser::new(&server.base);
    let path = path_of(link, public);
    let form = b.get(&path).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert_eq!(form.header("referrer-policy"), Some("no-referrer"));
    let token = form.csrf_token().unwrap();
    b.post(&path, &[("csrf_token", &token), ("new_password", password)])
        .await
}

async fn signs_in(server: &Server, password: &str) -> bool {
    let mut b = Browser::new(&server.base);
    b.sign_in("local", "alice", password, "").await.status == 303
}

#[tokio::test]
async fn confirm_then_reset_over_smtp_ends_every_session() {
    let sink = SmtpSink::start(SinkOptions::default());
    let dir = TempDir::new("vestibule-mail");
    let config = format!(
        "[server]\npublic_url = \"{PUBLIC}\"\n[database]\nurl = \"sqlite://{{dir}}/v.db\"\n\
         [email]\nfrom = \"Vestibule <id@example.org>\"\nsmtp_url = \"smtp://127.0.0.1:{}?tls=none\"\n",
        sink.port
    );
    let server = Server::start(Path::new(BIN), &dir.0, &config);
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
    sink.wait_for(|m| m.contains("Subject: Reset your password"));
    let resets = || {
        sink.messages()
            .iter()
            .filter(|m| m.contains("Subject: Reset your password"))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while resets() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(resets(), 2);
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
