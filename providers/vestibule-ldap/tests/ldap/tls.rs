//! ldaps and StartTLS: CA file trust, bad certificates, certificate pinning, no plaintext fallback.

use vestibule_core::SourceError;

use crate::slapd::{Options, Slapd, PEOPLE, SVC_DN, SVC_PASSWORD};
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

#[tokio::test]
async fn a_self_signed_ca_certificate_as_ca_file_is_refused_saying_what_to_do() {
    let s = Slapd::start_self_signed();
    // What an operator sees work first: OpenLDAP's own client takes the file as its CA and connects.
    let out = std::process::Command::new("ldapsearch")
        .env("LDAPTLS_CACERT", s.self_signed_cert_file())
        .env("LDAPTLS_REQCERT", "demand")
        .args(["-x", "-H", &s.ldaps_url(), "-D", SVC_DN, "-w", SVC_PASSWORD])
        .args(["-b", PEOPLE, "(uid=alice)", "1.1"])
        .output()
        .expect("ldapsearch");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("uid=alice"),
        "ldapsearch with the same file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // rustls refuses it (webpki: CaUsedAsEndEntity); the error says what is wrong and what to do.
    for starttls in [false, true] {
        let mut c = search_config(&s);
        if starttls {
            c.starttls = true;
        } else {
            c.url = s.ldaps_url();
        }
        c.ca_file = Some(s.self_signed_cert_file());
        let (logs, _guard) = capture_logs();
        let e = sign_in(&source(c), "alice", "alice-password")
            .await
            .expect_err("refused");
        assert!(matches!(e, SourceError::Unavailable(_)), "{e:?}");
        let text = error_text(&e);
        for wanted in [
            "the certificate in ca_file is a CA certificate used as the server's own certificate",
            "issue a server certificate from a CA, or set tls_pinned_cert_file to pin this one",
        ] {
            assert!(
                text.contains(wanted),
                "starttls {starttls}: error lacks {wanted:?}: {text}"
            );
            assert!(
                logs.text().contains(wanted),
                "starttls {starttls}: log lacks {wanted:?}: {}",
                logs.text()
            );
        }
    }
}

#[tokio::test]
async fn a_pinned_certificate_is_accepted_and_nothing_else() {
    let s = Slapd::start_self_signed();
    // Exactly this certificate, by the address it names: ldaps and StartTLS, search and direct bind.
    for mut c in [search_config(&s), direct_config(&s)] {
        c.url = s.ldaps_url();
        c.tls_pinned_cert_file = Some(s.self_signed_cert_file());
        let who = sign_in(&source(c), "alice", "alice-password")
            .await
            .expect("pinned, ldaps");
        assert_eq!(who.groups, vec!["admins".to_owned(), "staff".to_owned()]);
    }
    let mut c = search_config(&s);
    c.starttls = true;
    c.tls_pinned_cert_file = Some(s.self_signed_cert_file());
    sign_in(&source(c), "bob", "bob-password")
        .await
        .expect("pinned, StartTLS");

    // Another certificate for the same address, with another key: refused.
    let mut c = search_config(&s);
    c.url = s.ldaps_url();
    c.tls_pinned_cert_file = Some(s.other_self_signed_cert_file());
    let e = sign_in(&source(c), "alice", "alice-password")
        .await
        .expect_err("another certificate");
    assert!(matches!(e, SourceError::Unavailable(_)), "{e:?}");
    assert!(error_text(&e).contains("not the one pinned"), "{}", error_text(&e));

    // The pinned certificate, but the server reached by a name it does not carry (localhost): refused.
    let mut c = search_config(&s);
    c.url = s.ldaps_url().replace("127.0.0.1", "localhost");
    c.tls_pinned_cert_file = Some(s.self_signed_cert_file());
    let e = sign_in(&source(c), "alice", "alice-password")
        .await
        .expect_err("wrong host name");
    assert!(matches!(e, SourceError::Unavailable(_)), "{e:?}");
    assert!(error_text(&e).contains("not valid for name"), "{}", error_text(&e));

    // Another server (the shared one presents its CA-signed server.crt): refused.
    let shared = Slapd::shared();
    let mut c = search_config(shared);
    c.url = shared.ldaps_url();
    c.tls_pinned_cert_file = Some(s.self_signed_cert_file());
    assert_unavailable(sign_in(&source(c), "alice", "alice-password").await, "other server");
}
