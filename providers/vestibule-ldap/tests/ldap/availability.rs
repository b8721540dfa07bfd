//! A directory that is down, comes back, or accepts connections and never answers.

use std::time::{Duration, Instant};

use vestibule_core::{PasswordFlow, RejectReason};

use crate::slapd::{Options, Slapd};
use crate::support::*;

/// Accepts TCP connections and never sends a byte.
async fn silent_listener() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    (port, task)
}

#[tokio::test]
async fn down_then_back_without_recreating_the_source() {
    let mut s = Slapd::start(Options {
        tls: false,
        allow_bind_anon_dn: false,
    });
    let mut c = search_config(&s);
    c.connect_timeout_secs = 1;
    c.timeout_secs = 1;
    let src = source(c);
    let before = sign_in(&src, "alice", "alice-password").await.expect("up");

    s.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let r = guarded(6, src.authenticate("alice", &"alice-password".into())).await;
        assert_unavailable(r, "directory down");
        // Connection refused on loopback: well under the timeouts (a loose bound, not a timing test).
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    s.restart();
    let after = sign_in(&src, "alice", "alice-password")
        .await
        .expect("back up, same source");
    assert_eq!(after.subject, before.subject);
    assert_rejected(
        sign_in(&src, "alice", "nope").await,
        RejectReason::InvalidCredentials,
        "after restart",
    );
}

#[tokio::test]
async fn kept_connections_survive_a_restart_while_idle() {
    // The service connection is open and idle when the server restarts: the next sign-in must not fail.
    let mut s = Slapd::start(Options {
        tls: false,
        allow_bind_anon_dn: false,
    });
    let mut c = search_config(&s);
    c.pool_size = 1;
    let src = source(c);
    sign_in(&src, "bob", "bob-password").await.expect("up");
    s.stop();
    s.restart();
    sign_in(&src, "bob", "bob-password")
        .await
        .expect("first sign-in after a restart");
}

#[tokio::test]
async fn a_listener_that_never_answers_gives_unavailable_in_bounded_time() {
    let (port, task) = silent_listener().await;
    let shared = Slapd::shared();
    let configs = {
        let mut plain = search_config(shared);
        plain.url = format!("ldap://127.0.0.1:{port}");
        let mut direct = direct_config(shared);
        direct.url = format!("ldap://127.0.0.1:{port}");
        let mut ldaps = search_config(shared);
        ldaps.url = format!("ldaps://127.0.0.1:{port}");
        ldaps.ca_file = Some(shared.ca_file());
        let mut starttls = direct_config(shared);
        starttls.url = format!("ldap://127.0.0.1:{port}");
        starttls.starttls = true;
        starttls.ca_file = Some(shared.ca_file());
        [
            ("search (service bind hangs)", plain),
            ("direct (user bind hangs)", direct),
            ("ldaps (handshake hangs)", ldaps),
            ("starttls (extended op hangs)", starttls),
        ]
    };
    for (what, mut c) in configs {
        c.connect_timeout_secs = 1;
        c.timeout_secs = 1;
        let src = source(c);
        // Outer guard: 3x the configured connect + operation timeouts. Not a timing assertion, a "never hangs" one.
        let r = guarded(6, src.authenticate("alice", &"alice-password".into())).await;
        assert_unavailable(r, what);
    }
    task.abort();
}

#[tokio::test]
async fn concurrent_sign_ins_against_a_silent_directory_all_return() {
    let (port, task) = silent_listener().await;
    let mut c = search_config(Slapd::shared());
    c.url = format!("ldap://127.0.0.1:{port}");
    c.connect_timeout_secs = 1;
    c.timeout_secs = 1;
    let src = std::sync::Arc::new(source(c));
    let mut handles = Vec::new();
    for _ in 0..20 {
        let src = src.clone();
        handles.push(tokio::spawn(async move {
            src.authenticate("alice", &"alice-password".into()).await
        }));
    }
    guarded(10, async {
        for h in handles {
            assert_unavailable(h.await.expect("task"), "concurrent, silent directory");
        }
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let mut c = search_config(Slapd::shared());
    // Bound but not listening, held until the end of the test: connections are refused.
    let down = vestibule_tests::net::RefusingPort::new();
    c.url = format!("ldap://{}", down.addr());
    assert_unavailable(sign_in(&source(c), "alice", "alice-password").await, "refused");
}
