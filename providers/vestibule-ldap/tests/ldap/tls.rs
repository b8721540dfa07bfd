//! ldaps and StartTLS: CA file trust, bad certificates, no plaintext fallback.

use crate::slapd::{Options, Slapd};
use crate::support::*;

#[tokio::test]
async fn ldaps_with_the_ca_file() {
    let s = Slapd::shared();
    let mut c = search_config(s);
    c.url = s.ldaps_url();
    c.ca_file = Some(s.ca_file());
    let who = sign_in(&source(c), "alice", "alice-password").await.expect("ldaps");
    assert_eq!(who.groups, vec!["admins".to_owned(), "staff".to_owned()]);
    // The certificate also names localhost: a DNS name is verified as well.
    let mut c = direct_config(s);
    c.url = s.ldaps_url().replace("127.0.0.1", "localhost");
    c.ca_file = Some(s.ca_file());
    sign_in(&source(c), "bob", "bob-password").await.expect("ldaps by name");
}

#[tokio::test]
async fn ldaps_to_a_self_signed_server_without_its_ca_fails() {
    let s = Slapd::shared();
    // No ca_file: the system store, which does not know the test CA.
    let mut c = search_config(s);
    c.url = s.ldaps_url();
    assert_unavailable(sign_in(&source(c), "alice", "alice-password").await, "system roots");
    // A CA file with another CA.
    let mut c = direct_config(s);
    c.url = s.ldaps_url();
    c.ca_file = Some(s.other_ca_file());
    assert_unavailable(sign_in(&source(c), "alice", "alice-password").await, "wrong CA");
}

#[tokio::test]
async fn tls_verify_false_is_an_explicit_opt_out() {
    let s = Slapd::shared();
    let mut c = search_config(s);
    c.url = s.ldaps_url();
    c.tls_verify = false;
    sign_in(&source(c), "alice", "alice-password")
        .await
        .expect("unverified ldaps");
}

#[tokio::test]
async fn starttls_with_the_ca_file() {
    let s = Slapd::shared();
    for mut c in [search_config(s), direct_config(s)] {
        c.starttls = true;
        c.ca_file = Some(s.ca_file());
        sign_in(&source(c), "alice", "alice-password").await.expect("starttls");
    }
    let mut c = search_config(s);
    c.starttls = true;
    c.ca_file = Some(s.other_ca_file());
    assert_unavailable(
        sign_in(&source(c), "alice", "alice-password").await,
        "starttls, wrong CA",
    );
}

#[tokio::test]
async fn starttls_refused_by_the_server_never_falls_back_to_plaintext() {
    let shared = Slapd::shared();
    let s = Slapd::start(Options {
        tls: false,
        allow_bind_anon_dn: false,
    });
    // Plain LDAP to this server works (so what fails below is StartTLS itself)...
    sign_in(&source(search_config(&s)), "alice", "alice-password")
        .await
        .expect("plain");
    // ...and with starttls = true, the sign-in fails rather than continuing in clear.
    for mut c in [search_config(&s), direct_config(&s)] {
        c.starttls = true;
        c.ca_file = Some(shared.ca_file());
        assert_unavailable(
            sign_in(&source(c), "alice", "alice-password").await,
            "no StartTLS on server",
        );
    }
}
