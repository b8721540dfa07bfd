//! Empty and NUL passwords, against a server that would itself accept the empty one (RFC 4513 5.1.2).

use vestibule_core::RejectReason;

use crate::slapd::{Options, Slapd};
use crate::support::*;

#[tokio::test]
async fn empty_password_is_refused_even_where_the_server_would_accept_it() {
    let s = Slapd::start(Options {
        tls: false,
        allow_bind_anon_dn: true,
    });
    // The weakness is real on this server: a DN with an empty password binds (as anonymous), result 0...
    let res = raw_bind(&s.ldap_url(), &dn_of("alice"), "").await;
    assert_eq!(
        res.rc, 0,
        "slapd with `allow bind_anon_dn` accepts DN + empty password: {res:?}"
    );
    // ...whereas the default configuration refuses it (unwillingToPerform).
    let res = raw_bind(&Slapd::shared().ldap_url(), &dn_of("alice"), "").await;
    assert_eq!(res.rc, 53, "default slapd refuses DN + empty password");

    for (mode, src) in [
        ("search", source(search_config(&s))),
        ("direct", source(direct_config(&s))),
    ] {
        for password in ["", "\0", "\0alice-password", "alice-password\0", "alice\0-password"] {
            assert_rejected(
                sign_in(&src, "alice", password).await,
                RejectReason::EmptyPassword,
                &format!("{mode}: {password:?}"),
            );
        }
        // The same source signs alice in with her real password: the refusals above are not an outage.
        sign_in(&src, "alice", "alice-password")
            .await
            .expect("real password works");
        // Unknown users too get EmptyPassword: the check comes before any lookup.
        assert_rejected(
            sign_in(&src, "nobody", "").await,
            RejectReason::EmptyPassword,
            "unknown user",
        );
    }
}

#[tokio::test]
async fn empty_password_is_refused_before_any_traffic() {
    // Nothing listens on this port: had the source tried to connect, the answer would be Unavailable.
    let mut c = direct_config(Slapd::shared());
    // Bound but not listening, held until the end of the test: connections are refused.
    let down = vestibule_tests::net::RefusingPort::new();
    c.url = format!("ldap://{}", down.addr());
    let src = source(c);
    assert_rejected(
        sign_in(&src, "alice", "").await,
        RejectReason::EmptyPassword,
        "no server",
    );
    assert_unavailable(sign_in(&src, "alice", "x").await, "no server, real attempt");
}
